//! The read API for reader clients, scoped per school and audited: the LAS feed with its OpenAPI document, and the xAPI statements.
//!
//! Every request is answered in four steps: the route is matched, the bearer
//! token is checked (401), the reader's API scope and school grant are checked
//! (403, no data), the data is read in one snapshot; then the read is written to
//! the read audit, and only after that commit (and once the core groups its snapshot may
//! hold are durable, `Store::synced`) does the answer leave. A cursor or
//! a `next` link carries no authority: the school comes from the path and is
//! checked against the token on every request; an xAPI `more` link holds a
//! query and a position, and the reader's schools are applied to it anew.

pub(crate) mod las;
pub(crate) mod problem;
pub(crate) mod xapi;

use crate::soap::fault::Reply;
use crate::store::readers::{self, ReadAudit, Reader, Scope};
use crate::store::reading::Reading;
use crate::store::Store;
use hyper::header::AUTHORIZATION;
use hyper::{HeaderMap, Method, StatusCode};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use problem::QueryError;
use std::collections::BTreeMap;

/// The OpenAPI 3.1 document of the LAS feed, kept in the repository and served as is.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

/// What the read side needs from the configuration, built once at start.
#[derive(Clone, Debug)]
pub(crate) struct ReadSettings {
    /// The `authority` Agent of every statement served, as JSON text.
    pub(crate) authority: String,
    /// Origins admitted by CORS (`*` for any); empty: no CORS headers.
    pub(crate) cors_origins: Vec<String>,
    /// The xAPI Profile document (JSON-LD) and the paths it is served at.
    pub(crate) profile: String,
    pub(crate) profile_paths: Vec<String>,
}

impl ReadSettings {
    pub(crate) fn new(
        config: &crate::config::Config,
    ) -> Result<ReadSettings, crate::config::ConfigError> {
        let mapping = config.xapi_mapping()?;
        let profile = crate::bridge::profile::Profile::new(&mapping);
        let mut profile_paths = vec![xapi::PROFILE_PATH.to_string()];
        // The profile's own IRIs resolve here when xapi_base_iri is this gateway's `/xapi`.
        for iri in [profile.id(), profile.version_id()] {
            if let Some(path) = iri
                .split_once("://")
                .and_then(|(_, rest)| rest.find('/').map(|slash| rest[slash..].to_string()))
                .filter(|path| path.starts_with("/xapi/"))
            {
                profile_paths.push(path);
            }
        }
        Ok(ReadSettings {
            authority: crate::bridge::read::authority(
                &mapping,
                &config.xapi_authority_name,
                config.xapi_authority_mbox.as_deref(),
            ),
            cors_origins: config.xapi_cors_origins.clone(),
            profile: profile.document().to_string(),
            profile_paths,
        })
    }
}

/// An answer with the extra headers a read API answer may need.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) reply: Reply,
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        Answer {
            reply,
            headers: Vec::new(),
        }
    }
}

/// What a read request asked, taken from the HTTP request once.
#[derive(Clone, Debug)]
pub(crate) struct Asked {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: String,
    /// The reader token, if the request had one (as a bearer token, or as the
    /// password of HTTP Basic for xAPI clients that only know Basic); never logged.
    pub(crate) bearer: Option<String>,
    /// The `X-Experience-API-Version` header.
    pub(crate) xapi_version: Option<String>,
    /// `Accept-Language`, for `format=canonical`.
    pub(crate) accept_language: Option<String>,
    /// `Origin` and `Access-Control-Request-Method`, for CORS.
    pub(crate) origin: Option<String>,
    pub(crate) preflight_method: Option<String>,
    /// Why an alternate-syntax request could not be read, if it could not.
    pub(crate) body_problem: Option<BodyProblem>,
    pub(crate) request_id: String,
}

/// Why the body of an alternate-syntax request (xAPI Communication 1.3) was not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BodyProblem {
    /// Longer than `ALTERNATE_BODY_LIMIT` bytes.
    TooLarge,
    /// Broken off, or not complete within the body deadline.
    Unreadable(String),
    /// The query string held more than `method`.
    ExtraParameters,
}

/// The most bytes an alternate-syntax body may have: the form holds a query and a few headers.
pub(crate) const ALTERNATE_BODY_LIMIT: usize = 64 * 1024;

/// The form parameters of the alternate syntax that stand for headers (Communication 1.3).
const FORM_HEADERS: &[&str] = &[
    "Authorization",
    "X-Experience-API-Version",
    "Content-Type",
    "Content-Length",
    "If-Match",
    "If-None-Match",
];

/// The reader token of an `Authorization` value: a bearer token, or the password of HTTP Basic.
fn reader_token(value: &str) -> Option<String> {
    let (scheme, credentials) = value.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(credentials.trim().to_string());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    Some(password.to_string())
}

impl Asked {
    pub(crate) fn new(
        method: &Method,
        uri: &hyper::Uri,
        headers: &HeaderMap,
        request_id: &str,
    ) -> Asked {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        };
        let bearer = header(AUTHORIZATION.as_str()).and_then(|value| reader_token(&value));
        Asked {
            method: method.clone(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or("").to_string(),
            bearer,
            xapi_version: header("x-experience-api-version"),
            accept_language: header("accept-language"),
            origin: header("origin"),
            preflight_method: header("access-control-request-method"),
            body_problem: None,
            request_id: request_id.to_string(),
        }
    }

    /// Whether this is an xAPI request in the Alternate Request Syntax: a POST whose
    /// query string holds `method`.
    pub(crate) fn is_alternate(&self) -> bool {
        self.method == Method::POST
            && (self.path == "/xapi" || self.path.starts_with("/xapi/"))
            && form_urlencoded::parse(self.query.as_bytes()).any(|(name, _)| name == "method")
    }

    /// Rewrites an Alternate Request Syntax request (xAPI Communication 1.3) into the
    /// request it stands for: the method from `method`, the header form parameters as
    /// headers, every other form parameter but `content` as the query string.
    pub(crate) fn alternate(mut self, body: Result<bytes::Bytes, BodyProblem>) -> Asked {
        let mut method = None;
        let mut extra = false;
        for (name, value) in form_urlencoded::parse(self.query.as_bytes()) {
            if name == "method" && method.is_none() {
                method = Some(value.to_ascii_uppercase());
            } else {
                extra = true;
            }
        }
        if let Some(method) = method.and_then(|name| Method::from_bytes(name.as_bytes()).ok()) {
            self.method = method;
        }
        let body = match (extra, body) {
            (true, _) => Err(BodyProblem::ExtraParameters),
            (false, body) => body,
        };
        let body = match body {
            Ok(body) => body,
            Err(problem) => {
                self.body_problem = Some(problem);
                self.query = String::new();
                return self;
            }
        };
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in form_urlencoded::parse(&body) {
            match FORM_HEADERS
                .iter()
                .find(|header| header.eq_ignore_ascii_case(&name))
            {
                Some(&"Authorization") => self.bearer = reader_token(&value),
                Some(&"X-Experience-API-Version") => self.xapi_version = Some(value.into_owned()),
                // Content and its headers, and preconditions, mean nothing to a read.
                Some(_) => {}
                None if name == "content" => {}
                None => {
                    query.append_pair(&name, &value);
                }
            }
        }
        self.query = query.finish();
        self
    }

    /// Method, path and query, as the audit keeps them.
    fn request_line(&self) -> String {
        if self.query.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, self.query)
        }
    }
}

/// What one school's part of an answer held, for the audit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Touched {
    pub(crate) school: Option<String>,
    pub(crate) leerlingen: Vec<String>,
    pub(crate) records: u64,
}

impl Touched {
    /// One school with the distinct learners of the records returned.
    pub(crate) fn school<'a>(
        school: &str,
        leerlingen: impl Iterator<Item = &'a str>,
        records: u64,
    ) -> Touched {
        let mut leerlingen: Vec<String> = leerlingen.map(str::to_string).collect();
        leerlingen.sort();
        leerlingen.dedup();
        Touched {
            school: Some(school.to_string()),
            leerlingen,
            records,
        }
    }
}

/// A successful read, before it is audited.
pub(crate) struct Served {
    pub(crate) body: String,
    pub(crate) content_type: &'static str,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) touched: Vec<Touched>,
}

/// Whether a path belongs to the read API.
pub(crate) fn owns(path: &str) -> bool {
    path == "/api/v1/openapi.json"
        || path == "/api/v1/schools"
        || path.starts_with("/api/v1/schools/")
        || path == "/xapi"
        || path.starts_with("/xapi/")
}

/// The route template of a read API path, a bounded label for metrics (no school, learner
/// or toets values).
pub(crate) fn route_template(path: &str) -> &'static str {
    if path == "/api/v1/openapi.json" {
        return "/api/v1/openapi.json";
    }
    if let Some(rest) = path.strip_prefix("/api/v1/schools/") {
        let parts: Vec<&str> = rest.split('/').collect();
        return match parts.as_slice() {
            [_, "toetsafnames"] => "/api/v1/schools/{school}/toetsafnames",
            [_, "leerlingen", _, "toetsafnames"] => {
                "/api/v1/schools/{school}/leerlingen/{leerlingid}/toetsafnames"
            }
            [_, "toetsen", _] => "/api/v1/schools/{school}/toetsen/{toetscode}",
            _ => "other",
        };
    }
    match path {
        "/xapi/statements" => "/xapi/statements",
        "/xapi/about" => "/xapi/about",
        _ if path.starts_with("/xapi/") => "/xapi/other",
        _ => "other",
    }
}

/// Answers one read API request.
pub(crate) async fn route(store: &Store, settings: &ReadSettings, asked: Asked) -> Answer {
    if asked.path == "/api/v1/openapi.json" {
        return match asked.method {
            Method::GET => Answer {
                reply: Reply {
                    status: StatusCode::OK,
                    content_type: "application/json",
                    body: OPENAPI.to_string(),
                    receipt_id: None,
                },
                headers: Vec::new(),
            },
            _ => QueryError::MethodNotAllowed("GET").answer(&asked.request_id, &asked.path),
        };
    }
    if asked.path == "/xapi" || asked.path.starts_with("/xapi/") {
        let statement_resource = xapi::is_statement_resource(&asked.path);
        // Taken before anything is read: a statement committed after this moment is
        // stamped later, so the value stays true for any snapshot read afterwards.
        let now = xapi::stamp(chrono::Utc::now());
        let cors = xapi::cors_headers(&settings.cors_origins, asked.origin.as_deref());
        let mut answer = xapi_route(store, settings, &asked, cors.is_some()).await;
        // A statement read sets it from its own snapshot; every other answer of the
        // resource (errors included) gets it here.
        let has_through = answer
            .headers
            .iter()
            .any(|(name, _)| *name == xapi::CONSISTENT_THROUGH);
        if statement_resource && !has_through {
            let through = tokio::task::block_in_place(|| {
                store.read(|connection| {
                    // No reader's schools are known here: while changes wait, the epoch
                    // (nothing about any school's activity leaks through an error).
                    crate::store::statements::consistent_through(connection, &[], &now)
                })
            })
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "cannot read the publisher's position; consistent-through is the epoch");
                "1970-01-01T00:00:00.000Z".to_string()
            });
            answer.headers.push((xapi::CONSISTENT_THROUGH, through));
        }
        answer
            .headers
            .push(("x-experience-api-version", xapi::VERSION.to_string()));
        answer.headers.extend(cors.unwrap_or_default());
        return answer;
    }
    let route = match las::Route::parse(&asked.path) {
        Ok(route) => route,
        Err(error) => return error.answer(&asked.request_id, &asked.path),
    };
    if asked.method != Method::GET {
        return QueryError::MethodNotAllowed("GET").answer(&asked.request_id, &asked.path);
    }
    let school = route.school().to_string();
    let outcome = authorised(store, &asked, Scope::Las, |connection, reader, today| {
        las::answer(connection, reader, today, &route, &asked)
    })
    .await;
    finish(store, &asked, Scope::Las, Some(school), outcome).await
}

/// The xAPI resources: About and the Profile (open to all, as the spec asks) and
/// Statements (scope `xapi`); GET, HEAD (the same answer, whose body hyper leaves out),
/// the Alternate Request Syntax (rewritten before this) and CORS preflights.
async fn xapi_route(store: &Store, settings: &ReadSettings, asked: &Asked, cors: bool) -> Answer {
    let more = asked.path.strip_prefix(xapi::MORE_PATH).map(str::to_string);
    let profile = settings.profile_paths.contains(&asked.path);
    let known = asked.path == "/xapi/about" || profile || xapi::is_statement_resource(&asked.path);
    if !known {
        return QueryError::NotFound(format!("no resource at {}", asked.path))
            .answer(&asked.request_id, &asked.path);
    }
    if asked.method == Method::OPTIONS {
        return match (&asked.origin, &asked.preflight_method, cors) {
            (Some(origin), Some(_), false) => {
                QueryError::OriginNotAllowed(origin.clone()).answer(&asked.request_id, &asked.path)
            }
            _ => Answer {
                reply: Reply {
                    status: StatusCode::NO_CONTENT,
                    content_type: "text/plain",
                    body: String::new(),
                    receipt_id: None,
                },
                headers: vec![("allow", xapi::ALLOW.to_string())],
            },
        };
    }
    if let Some(problem) = &asked.body_problem {
        let error = match problem {
            BodyProblem::TooLarge => QueryError::BodyTooLarge(ALTERNATE_BODY_LIMIT),
            BodyProblem::Unreadable(reason) => QueryError::BadBody(reason.clone()),
            BodyProblem::ExtraParameters => QueryError::bad_parameter(
                "method",
                "with the alternate request syntax every parameter but method goes in the form body",
            ),
        };
        return error.answer(&asked.request_id, &asked.path);
    }
    if !matches!(asked.method, Method::GET | Method::HEAD) {
        return QueryError::MethodNotAllowed(xapi::ALLOW).answer(&asked.request_id, &asked.path);
    }
    if asked.path == "/xapi/about" || profile {
        let (body, content_type) = if profile {
            (settings.profile.clone(), "application/ld+json")
        } else {
            (crate::bridge::read::about().to_string(), "application/json")
        };
        return Answer {
            reply: Reply {
                status: StatusCode::OK,
                content_type,
                body,
                receipt_id: None,
            },
            headers: Vec::new(),
        };
    }
    if let Err(error) = xapi::check_version(asked.xapi_version.as_deref()) {
        return error.answer(&asked.request_id, &asked.path);
    }
    let outcome = authorised(store, asked, Scope::Xapi, |connection, reader, today| {
        xapi::answer(connection, reader, today, asked, settings, more.as_deref())
    })
    .await;
    finish(store, asked, Scope::Xapi, None, outcome).await
}

/// The authenticated reader with the handler's result, or why no reader could be named.
type Outcome = Result<(Reader, Result<Served, QueryError>), QueryError>;

/// Checks the token and the API scope, then runs `handler` on a read connection.
async fn authorised(
    store: &Store,
    asked: &Asked,
    scope: Scope,
    handler: impl FnOnce(&Reading, &Reader, chrono::NaiveDate) -> Result<Served, QueryError>,
) -> Outcome {
    let token = asked.bearer.as_deref().ok_or(QueryError::Unauthenticated)?;
    // The read runs on this worker thread, so the runtime is told to move other tasks away.
    tokio::task::block_in_place(|| {
        store.read(|connection| {
            let Some(reader) = readers::authenticate_reader(connection, token)? else {
                return Ok(Err(QueryError::Unauthenticated));
            };
            let result = if reader.may_use(scope) {
                handler(&Reading::new(connection), &reader, crate::domain::today())
            } else {
                Err(QueryError::ApiOutOfScope(scope))
            };
            Ok(Ok((reader, result)))
        })
    })?
}

/// Audits an authenticated request and then answers it; a failed audit withholds the data.
async fn finish(
    store: &Store,
    asked: &Asked,
    scope: Scope,
    school: Option<String>,
    outcome: Outcome,
) -> Answer {
    let (reader, result) = match outcome {
        Ok(authenticated) => authenticated,
        Err(error) => {
            if let QueryError::Unauthenticated = error {
                tracing::info!(
                    path = crate::logging::clip(&asked.path).as_ref(),
                    "read refused: no valid bearer token"
                );
            }
            return error.answer(&asked.request_id, &asked.path);
        }
    };
    let entry = |touched: Touched, status: StatusCode| ReadAudit {
        request_id: asked.request_id.clone(),
        reader_id: reader.id,
        api: scope.as_str(),
        request: asked.request_line(),
        status: status.as_u16(),
        school: touched.school,
        leerlingen: touched.leerlingen,
        records: touched.records,
    };
    let entries: Vec<ReadAudit> = match &result {
        Ok(served) if served.touched.is_empty() => vec![entry(
            Touched {
                school,
                ..Touched::default()
            },
            StatusCode::OK,
        )],
        Ok(served) => served
            .touched
            .iter()
            .cloned()
            .map(|touched| entry(touched, StatusCode::OK))
            .collect(),
        Err(error) => vec![entry(
            Touched {
                school,
                ..Touched::default()
            },
            error.status(),
        )],
    };
    // On the xAPI writer (the read audit lives in `xapi.sqlite`): a batch's store pass holds
    // the core writer for seconds, and a read must not wait for it. Beside it, the wait for
    // the core groups the snapshot may hold to be durable (pipelined commits).
    let audit = store.write_xapi(move |connection| readers::audit_reads(connection, &entries));
    let (audited, synced) = tokio::join!(audit, store.synced());
    if let Err(error) = audited.and_then(|written| written).and(synced) {
        return QueryError::Store(error).answer(&asked.request_id, &asked.path);
    }
    match result {
        Ok(served) => {
            let records: u64 = served.touched.iter().map(|touched| touched.records).sum();
            tracing::info!(reader = %reader.name, records, "read served");
            Answer {
                reply: Reply {
                    status: StatusCode::OK,
                    content_type: served.content_type,
                    body: served.body,
                    receipt_id: None,
                },
                headers: served.headers,
            }
        }
        Err(error) => {
            tracing::info!(reader = %reader.name, status = error.status().as_u16(), "read refused");
            error.answer(&asked.request_id, &asked.path)
        }
    }
}

/// Query parameters, each allowed at most once; unknown names are refused.
pub(crate) fn parse_params(
    query: &str,
    allowed: &[&str],
) -> Result<BTreeMap<String, String>, QueryError> {
    let mut params = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if !allowed.contains(&name.as_ref()) {
            return Err(QueryError::bad_parameter(
                &name,
                format!("unknown parameter; known are {}", allowed.join(", ")),
            ));
        }
        if params
            .insert(name.to_string(), value.into_owned())
            .is_some()
        {
            return Err(QueryError::bad_parameter(&name, "given more than once"));
        }
    }
    Ok(params)
}

/// Characters left as they are in a path segment: RFC 3986 unreserved.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A value as one percent-encoded path segment.
pub(crate) fn encode_segment(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

/// A percent-decoded path segment; `None` when it is not UTF-8.
pub(crate) fn decode_segment(segment: &str) -> Option<String> {
    percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(|text| text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_strict() {
        let allowed = ["since", "limit"];
        assert_eq!(
            parse_params("since=3&limit=10", &allowed).unwrap()["since"],
            "3"
        );
        assert!(parse_params("", &allowed).unwrap().is_empty());
        assert!(matches!(
            parse_params("Since=3", &allowed),
            Err(QueryError::BadParameter { .. })
        ));
        assert!(matches!(
            parse_params("since=3&since=4", &allowed),
            Err(QueryError::BadParameter { .. })
        ));
    }

    fn alternate(query: &str, body: &str) -> Asked {
        let uri: hyper::Uri = format!("/xapi/statements?{query}").parse().unwrap();
        let asked = Asked::new(&Method::POST, &uri, &HeaderMap::new(), "r");
        assert!(asked.is_alternate());
        asked.alternate(Ok(bytes::Bytes::from(body.to_string())))
    }

    #[test]
    fn the_alternate_syntax_becomes_the_request_it_stands_for() {
        let asked = alternate(
            "method=GET",
            "limit=2&Authorization=Bearer%20tok&X-Experience-API-Version=1.0.3&content=&Content-Type=x&agent=%7B%7D",
        );
        assert_eq!(asked.method, Method::GET);
        assert_eq!(asked.bearer.as_deref(), Some("tok"));
        assert_eq!(asked.xapi_version.as_deref(), Some("1.0.3"));
        assert_eq!(asked.query, "limit=2&agent=%7B%7D");
        assert_eq!(asked.body_problem, None);
        assert_eq!(alternate("method=head", "").method, Method::HEAD);
        let extra = alternate("method=GET&limit=1", "Authorization=Bearer%20tok");
        assert_eq!(extra.body_problem, Some(BodyProblem::ExtraParameters));
        assert_eq!((extra.query.as_str(), extra.bearer), ("", None));
        let uri: hyper::Uri = "/xapi/statements".parse().unwrap();
        assert!(!Asked::new(&Method::POST, &uri, &HeaderMap::new(), "r").is_alternate());
    }

    #[test]
    fn segments_round_trip() {
        for value in ["99XX01", "school key/1", "é%?"] {
            assert_eq!(decode_segment(&encode_segment(value)).unwrap(), value);
        }
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(decode_segment("%FF"), None);
    }
}
