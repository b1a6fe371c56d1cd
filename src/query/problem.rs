//! The one place where HTTP API errors (read API, receipts, admin) become RFC 9457 problem details.

use super::Answer;
use crate::soap::fault::Reply;
use crate::store::readers::Scope;
use crate::store::StoreError;
use hyper::StatusCode;

/// Why a read request got no data.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
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
    /// Our side failed; the cause is logged once, where the answer is made.
    #[error("internal error; quote the request id to the operator")]
    Store(#[from] StoreError),
}

impl QueryError {
    pub fn bad_parameter(name: &str, reason: impl Into<String>) -> QueryError {
        QueryError::BadParameter {
            name: name.to_string(),
            reason: reason.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            QueryError::Unauthenticated => StatusCode::UNAUTHORIZED,
            QueryError::ApiOutOfScope(_)
            | QueryError::SchoolOutOfScope(_)
            | QueryError::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            QueryError::BadParameter { .. }
            | QueryError::BadHeader { .. }
            | QueryError::BadBody(_) => StatusCode::BAD_REQUEST,
            QueryError::NotFound(_) => StatusCode::NOT_FOUND,
            QueryError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            QueryError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            QueryError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem type: a stable URN per kind of error.
    fn problem_type(&self) -> &'static str {
        match self {
            QueryError::Unauthenticated => "urn:uwlr-gateway:problem:unauthenticated",
            QueryError::ApiOutOfScope(_) | QueryError::SchoolOutOfScope(_) => {
                "urn:uwlr-gateway:problem:out-of-scope"
            }
            QueryError::BadParameter { .. } => "urn:uwlr-gateway:problem:bad-parameter",
            QueryError::BadHeader { .. } => "urn:uwlr-gateway:problem:bad-header",
            QueryError::NotFound(_) => "urn:uwlr-gateway:problem:not-found",
            QueryError::MethodNotAllowed(_) => "urn:uwlr-gateway:problem:method-not-allowed",
            QueryError::BodyTooLarge(_) => "urn:uwlr-gateway:problem:body-too-large",
            QueryError::BadBody(_) => "urn:uwlr-gateway:problem:bad-body",
            QueryError::OriginNotAllowed(_) => "urn:uwlr-gateway:problem:origin-not-allowed",
            QueryError::Store(_) => "urn:uwlr-gateway:problem:internal",
        }
    }

    /// The answer: `application/problem+json`, with `WWW-Authenticate` on 401 and `Allow` on 405.
    pub fn answer(&self, request_id: &str, instance: &str) -> Answer {
        if let QueryError::Store(error) = self {
            tracing::error!(%error, "a read request failed on our side");
        }
        let mut body = document(
            self.status(),
            self.problem_type(),
            &self.to_string(),
            request_id,
            instance,
        );
        if let QueryError::BadParameter { name, .. } = self {
            body["parameter"] = serde_json::Value::String(name.clone());
        }
        let mut headers = Vec::new();
        match self {
            QueryError::Unauthenticated => headers.push((
                "www-authenticate",
                "Bearer realm=\"uwlr-gateway\"".to_string(),
            )),
            QueryError::MethodNotAllowed(allow) => headers.push(("allow", allow.to_string())),
            _ => {}
        }
        problem_answer(self.status(), body, headers)
    }
}

/// Why a request to the gateway's other HTTP resources (receipts API, admin API, `/health`,
/// unknown paths) got no data; answered in the same problem details style as `QueryError`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
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
    /// The request names something in a form the resource cannot read (a path segment, a school code).
    #[error("{0}")]
    BadRequest(String),
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
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NoCredentials | ApiError::BadCredentials | ApiError::BadAdminToken => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::NoReceipt
            | ApiError::AdminOff
            | ApiError::NotFound
            | ApiError::NoSuchLeerling => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn problem_type(&self) -> &'static str {
        match self {
            ApiError::NoCredentials | ApiError::BadCredentials | ApiError::BadAdminToken => {
                "urn:uwlr-gateway:problem:unauthenticated"
            }
            ApiError::NoReceipt
            | ApiError::AdminOff
            | ApiError::NotFound
            | ApiError::NoSuchLeerling => "urn:uwlr-gateway:problem:not-found",
            ApiError::BadRequest(_) => "urn:uwlr-gateway:problem:bad-request",
            ApiError::TooLarge(_) => "urn:uwlr-gateway:problem:too-large",
            ApiError::Unprocessable(_) => "urn:uwlr-gateway:problem:unprocessable",
            ApiError::MethodNotAllowed(_) => "urn:uwlr-gateway:problem:method-not-allowed",
            ApiError::Internal(_) => "urn:uwlr-gateway:problem:internal",
            ApiError::NotReady(_) => "urn:uwlr-gateway:problem:not-ready",
        }
    }

    /// The answer, with `WWW-Authenticate` on 401 and `Allow` on 405.
    pub fn answer(&self, request_id: &str, instance: &str) -> Answer {
        let body = document(
            self.status(),
            self.problem_type(),
            &self.to_string(),
            request_id,
            instance,
        );
        let headers = match self {
            ApiError::NoCredentials | ApiError::BadCredentials => vec![(
                "www-authenticate",
                "Basic realm=\"uwlr-gateway receipts\"".to_string(),
            )],
            ApiError::BadAdminToken => vec![(
                "www-authenticate",
                "Bearer realm=\"uwlr-gateway admin\"".to_string(),
            )],
            ApiError::MethodNotAllowed(methods) => vec![("allow", methods.to_string())],
            _ => Vec::new(),
        };
        problem_answer(self.status(), body, headers)
    }
}

/// The problem details members every error of every HTTP API carries.
fn document(
    status: StatusCode,
    problem_type: &str,
    detail: &str,
    request_id: &str,
    instance: &str,
) -> serde_json::Value {
    serde_json::json!({
        "type": problem_type,
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "detail": detail,
        "instance": instance,
        "request_id": request_id,
    })
}

fn problem_answer(
    status: StatusCode,
    body: serde_json::Value,
    headers: Vec<(&'static str, String)>,
) -> Answer {
    Answer {
        reply: Reply {
            status,
            content_type: "application/problem+json",
            body: body.to_string(),
            receipt_id: None,
        },
        headers,
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
}
