//! The one place where the gateway's HTTP errors (read API, receipts, admin, operations) become RFC 9457 problem details.

use super::Answer;
use crate::soap::fault::{Reply, BUSY_RETRY_AFTER_SECS};
use crate::store::readers::Scope;
use crate::store::StoreError;
use hyper::StatusCode;

/// Why a read request got no data.
#[derive(Debug, thiserror::Error)]
pub(crate) enum QueryError {
    /// No bearer token, or one that is unknown, wrong or revoked.
    #[error("a valid reader bearer token is required")]
    Unauthenticated,
    /// The reader's token does not cover this API (`las` or `xapi`).
    #[error("this reader may not use the {} API", .0.as_str())]
    ApiOutOfScope(Scope),
    /// The school is not among the reader's valid grants (never granted,
    /// withdrawn, mandate expired) or does not exist; the two look the same.
    #[error("this reader may not read school {0}")]
    SchoolOutOfScope(String),
    /// A query parameter is unknown, repeated or malformed.
    #[error("parameter {name}: {reason}")]
    BadParameter { name: String, reason: String },
    /// A request header the API needs is missing or has a value it does not support.
    #[error("header {name}: {reason}")]
    BadHeader { name: &'static str, reason: String },
    /// No such resource, or none that the reader may see.
    #[error("{0}")]
    NotFound(String),
    /// The resource exists but does not answer this method; carries the methods it answers.
    #[error("this resource answers {0} only")]
    MethodNotAllowed(&'static str),
    /// An alternate-syntax request body (xAPI Communication 1.3) over the limit, in bytes.
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// An alternate-syntax request body that did not arrive whole or in time.
    #[error("the request body could not be read: {0}")]
    BadBody(String),
    /// A CORS preflight from an origin that is not in `xapi_cors_origins`.
    #[error("origin {0} may not read this API from a browser")]
    OriginNotAllowed(String),
    /// The store failed; `Problem::of_store` says what the client sees and logs the cause.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl QueryError {
    pub(crate) fn bad_parameter(name: &str, reason: impl Into<String>) -> QueryError {
        QueryError::BadParameter {
            name: name.to_string(),
            reason: reason.into(),
        }
    }

    /// The problem this error is: the status, type and detail the client sees.
    fn problem(&self) -> Problem {
        let (status, kind) = match self {
            QueryError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            QueryError::ApiOutOfScope(_) | QueryError::SchoolOutOfScope(_) => {
                (StatusCode::FORBIDDEN, "out-of-scope")
            }
            QueryError::OriginNotAllowed(_) => (StatusCode::FORBIDDEN, "origin-not-allowed"),
            QueryError::BadParameter { .. } => (StatusCode::BAD_REQUEST, "bad-parameter"),
            QueryError::BadHeader { .. } => (StatusCode::BAD_REQUEST, "bad-header"),
            QueryError::BadBody(_) => (StatusCode::BAD_REQUEST, "bad-body"),
            QueryError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            QueryError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed")
            }
            QueryError::BodyTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body-too-large"),
            QueryError::Store(error) => return Problem::of_store(error),
        };
        let mut problem = Problem::new(status, kind, self.to_string());
        match self {
            QueryError::BadParameter { name, .. } => problem.parameter = Some(name.clone()),
            QueryError::Unauthenticated => problem.headers.push((
                "www-authenticate",
                "Bearer realm=\"uwlr-gateway\"".to_string(),
            )),
            QueryError::MethodNotAllowed(allow) => {
                problem.headers.push(("allow", allow.to_string()))
            }
            _ => {}
        }
        problem
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.problem().status
    }

    /// The answer: `application/problem+json`, with `WWW-Authenticate` on 401 and `Allow` on 405.
    pub(crate) fn answer(&self, request_id: &str, instance: &str) -> Answer {
        self.problem().answer(request_id, instance)
    }
}

/// Why a request to the gateway's other HTTP resources (receipts API, admin API, `/health`,
/// unknown paths) got no data; answered in the same problem details style as `QueryError`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The receipts API needs HTTP Basic klantcode:autorisatiesleutel.
    #[error("send HTTP Basic credentials: klantcode and autorisatiesleutel")]
    NoCredentials,
    /// Wrong klantcode or key, or a locked-out sender.
    #[error("klantcode or autorisatiesleutel is not valid")]
    BadCredentials,
    /// No receipt with that id belongs to this client (another client's looks the same).
    #[error("no receipt with that id for this client")]
    NoReceipt,
    /// The admin API is off because no admin token is configured.
    #[error("the admin API is off: set admin_token in the configuration")]
    AdminOff,
    /// Missing or wrong admin token, or a locked-out address.
    #[error("a valid admin bearer token is required")]
    BadAdminToken,
    /// The body is over the resource's limit or could not be read.
    #[error("cannot read the body: {0}")]
    TooLarge(String),
    /// The body was read but cannot be used (a roster that does not parse or fit).
    #[error("{0}")]
    Unprocessable(String),
    /// No resource at this path.
    #[error("no such resource")]
    NotFound,
    /// A path or query parameter in a form the resource cannot read (a school code, a
    /// segment that is not UTF-8); carries its name and why.
    #[error("parameter {name}: {reason}")]
    BadParameter { name: &'static str, reason: String },
    /// An erasure for a learner the school holds nothing about.
    #[error("the school holds nothing about that leerling")]
    NoSuchLeerling,
    /// The resource exists but not for this method; carries the methods it answers.
    #[error("this resource answers {0} only")]
    MethodNotAllowed(&'static str),
    /// Our side failed; logged where it happened. Carries what the client is told.
    #[error("internal error; {0}")]
    Internal(&'static str),
    /// `/ready`: the gateway should not get traffic now; carries every reason.
    #[error("not ready: {0}")]
    NotReady(String),
    /// `/health`: the database does not answer (the cause is logged where it happened).
    #[error("the database does not answer")]
    DatabaseUnavailable,
    /// The store failed; `Problem::of_store` says what the client sees.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    pub(crate) fn bad_parameter(name: &'static str, reason: impl Into<String>) -> ApiError {
        ApiError::BadParameter {
            name,
            reason: reason.into(),
        }
    }

    /// The problem this error is: the status, type and detail the client sees.
    fn problem(&self) -> Problem {
        let (status, kind) = match self {
            ApiError::NoCredentials | ApiError::BadCredentials | ApiError::BadAdminToken => {
                (StatusCode::UNAUTHORIZED, "unauthenticated")
            }
            ApiError::NoReceipt
            | ApiError::AdminOff
            | ApiError::NotFound
            | ApiError::NoSuchLeerling => (StatusCode::NOT_FOUND, "not-found"),
            ApiError::BadParameter { .. } => (StatusCode::BAD_REQUEST, "bad-parameter"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too-large"),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not-ready"),
            ApiError::DatabaseUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Store(error) => return Problem::of_store(error),
        };
        let mut problem = Problem::new(status, kind, self.to_string());
        match self {
            ApiError::NoCredentials | ApiError::BadCredentials => problem.headers.push((
                "www-authenticate",
                "Basic realm=\"uwlr-gateway receipts\"".to_string(),
            )),
            ApiError::BadAdminToken => problem.headers.push((
                "www-authenticate",
                "Bearer realm=\"uwlr-gateway admin\"".to_string(),
            )),
            ApiError::MethodNotAllowed(methods) => {
                problem.headers.push(("allow", methods.to_string()))
            }
            ApiError::BadParameter { name, .. } => problem.parameter = Some(name.to_string()),
            _ => {}
        }
        problem
    }

    /// The answer, with `WWW-Authenticate` on 401 and `Allow` on 405.
    pub(crate) fn answer(&self, request_id: &str, instance: &str) -> Answer {
        self.problem().answer(request_id, instance)
    }
}

/// One problem details document before it is rendered; every HTTP error of the gateway
/// outside the SOAP service path becomes one, and `answer` is its only renderer.
struct Problem {
    status: StatusCode,
    /// The last part of the problem type URN, stable per kind of error.
    kind: &'static str,
    detail: String,
    /// The query parameter at fault, for a bad parameter.
    parameter: Option<String>,
    headers: Vec<(&'static str, String)>,
}

impl Problem {
    fn new(status: StatusCode, kind: &'static str, detail: String) -> Problem {
        Problem {
            status,
            kind,
            detail,
            parameter: None,
            headers: Vec::new(),
        }
    }

    /// The one mapping of store errors to HTTP. The caller's mistakes name themselves
    /// (404, 409, 422); a busy store asks to try again (503, `Retry-After`); everything
    /// else is ours (500) and says nothing of what broke: the cause is logged here, once,
    /// under the request's id.
    fn of_store(error: &StoreError) -> Problem {
        let (status, kind) = match error {
            StoreError::NotFound { .. } => (StatusCode::NOT_FOUND, "not-found"),
            StoreError::AlreadyExists { .. } => (StatusCode::CONFLICT, "conflict"),
            StoreError::InvalidInput { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            _ if error.is_busy() => {
                tracing::warn!(%error, "the store is busy; the client is asked to retry");
                let mut problem = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    format!("the gateway is busy; try again in {BUSY_RETRY_AFTER_SECS} seconds"),
                );
                problem
                    .headers
                    .push(("retry-after", BUSY_RETRY_AFTER_SECS.to_string()));
                return problem;
            }
            StoreError::Corrupt { .. } => {
                tracing::error!(%error, "a stored row is corrupt; the client gets an internal error");
                return Problem::internal();
            }
            _ => {
                tracing::error!(%error, "a request failed on our side");
                return Problem::internal();
            }
        };
        let mut problem = Problem::new(status, kind, error.to_string());
        if let StoreError::InvalidInput { field, .. } = error {
            problem.parameter = Some(field.to_string());
        }
        problem
    }

    fn internal() -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; quote the request id to the operator".into(),
        )
    }

    /// The answer: `application/problem+json` with the members every error carries.
    fn answer(self, request_id: &str, instance: &str) -> Answer {
        let mut body = serde_json::json!({
            "type": format!("urn:uwlr-gateway:problem:{}", self.kind),
            "title": self.status.canonical_reason().unwrap_or("error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "instance": instance,
            "request_id": request_id,
        });
        if let Some(parameter) = self.parameter {
            body["parameter"] = serde_json::Value::String(parameter);
        }
        Answer {
            reply: Reply {
                status: self.status,
                content_type: "application/problem+json",
                body: body.to_string(),
                receipt_id: None,
            },
            headers: self.headers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_carry_status_type_and_detail() {
        let check = |error: QueryError, status: u16, header: Option<&str>| {
            let answer = error.answer("req-1", "/api/v1/schools/99XX01/toetsafnames");
            assert_eq!(answer.reply.status.as_u16(), status);
            assert_eq!(answer.reply.content_type, "application/problem+json");
            let body: serde_json::Value = serde_json::from_str(&answer.reply.body).unwrap();
            assert_eq!(body["status"], status);
            assert!(body["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:uwlr-gateway:problem:"));
            assert!(!body["detail"].as_str().unwrap().is_empty());
            assert_eq!(answer.headers.first().map(|(name, _)| *name), header);
        };
        check(QueryError::Unauthenticated, 401, Some("www-authenticate"));
        check(QueryError::SchoolOutOfScope("99YY".into()), 403, None);
        check(QueryError::ApiOutOfScope(Scope::Xapi), 403, None);
        check(
            QueryError::bad_parameter("limit", "must be 1 to 1000"),
            400,
            None,
        );
        check(QueryError::NotFound("no such toets".into()), 404, None);
        check(QueryError::MethodNotAllowed("GET"), 405, Some("allow"));
        check(QueryError::BodyTooLarge(65536), 413, None);
        check(QueryError::BadBody("timeout".into()), 400, None);
        check(QueryError::OriginNotAllowed("https://x".into()), 403, None);
        check(QueryError::Store(StoreError::WriterGone), 500, None);
    }

    #[test]
    fn store_errors_map_to_one_status_each_and_ours_say_nothing() {
        let check = |error: fn() -> StoreError, status: u16, detail: Option<&str>| {
            for answer in [
                ApiError::Store(error()).answer("req-2", "/x"),
                QueryError::Store(error()).answer("req-2", "/x"),
            ] {
                assert_eq!(answer.reply.status.as_u16(), status);
                assert_eq!(answer.reply.content_type, "application/problem+json");
                let body: serde_json::Value = serde_json::from_str(&answer.reply.body).unwrap();
                assert_eq!(body["status"], status);
                assert_eq!(body["request_id"], "req-2");
                let shown = body["detail"].as_str().unwrap();
                match detail {
                    Some(detail) => assert_eq!(shown, detail),
                    None => assert_eq!(
                        shown,
                        "internal error; quote the request id to the operator"
                    ),
                }
                let retry_after = answer
                    .headers
                    .iter()
                    .find(|(name, _)| *name == "retry-after");
                assert_eq!(retry_after.is_some(), status == 503);
            }
        };
        check(
            || StoreError::not_found("reader lezer"),
            404,
            Some("no reader lezer"),
        );
        check(
            || StoreError::already_exists("client EA"),
            409,
            Some("client EA already exists"),
        );
        check(
            || StoreError::invalid_input("valid_from", "2026-13-01 is not a date (YYYY-MM-DD)"),
            422,
            Some("valid_from: 2026-13-01 is not a date (YYYY-MM-DD)"),
        );
        check(
            || StoreError::corrupt("stored toets 7", "expected value at line 1 column 1"),
            500,
            None,
        );
        check(
            || StoreError::Busy {
                detail: "database is locked".into(),
            },
            503,
            Some("the gateway is busy; try again in 5 seconds"),
        );
        check(|| StoreError::WriterGone, 500, None);
    }
}
