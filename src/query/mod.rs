//! The read API for reader clients, scoped per school and audited: the LAS feed with its OpenAPI document, and the xAPI statements.
//!
//! Every request is answered in four steps: the route is matched, the bearer
//! token is checked (401), the reader's API scope and school grant are checked
//! (403, no data), the data is read in one snapshot; then the read is written to
//! the read audit, and only after that commit does the answer leave. A cursor or
//! a `next` link carries no authority: the school comes from the path and is
//! checked against the token on every request; an xAPI `more` link holds a
//! query and a position, and the reader's schools are applied to it anew.

pub mod las;
pub mod problem;
pub mod xapi;

use crate::soap::fault::Reply;
use crate::store::readers::{self, ReadAudit, Reader, Scope};
use crate::store::{Store, StoreError};
use hyper::header::AUTHORIZATION;
use hyper::{HeaderMap, Method, StatusCode};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use problem::QueryError;
use rusqlite::Connection;
use std::collections::BTreeMap;

/// The OpenAPI 3.1 document of the LAS feed, kept in the repository and served as is.
pub const OPENAPI: &str = include_str!("openapi.json");

/// An answer with the extra headers a read API answer may need.
#[derive(Debug)]
pub struct Answer {
    pub reply: Reply,
    pub headers: Vec<(&'static str, String)>,
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
pub struct Asked {
    pub method: Method,
    pub path: String,
    pub query: String,
    /// The reader token, if the request had one (as a bearer token, or as the
    /// password of HTTP Basic for xAPI clients that only know Basic); never logged.
    pub bearer: Option<String>,
    /// The `X-Experience-API-Version` header.
    pub xapi_version: Option<String>,
    pub request_id: String,
}

impl Asked {
    pub fn new(method: &Method, uri: &hyper::Uri, headers: &HeaderMap, request_id: &str) -> Asked {
        let bearer = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
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
            });
        Asked {
            method: method.clone(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or("").to_string(),
            bearer,
            xapi_version: headers
                .get("x-experience-api-version")
                .and_then(|value| value.to_str().ok())
                .map(str::to_string),
            request_id: request_id.to_string(),
        }
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
pub struct Touched {
    pub school: Option<String>,
    pub leerlingen: Vec<String>,
    pub records: u64,
}

impl Touched {
    /// One school with the distinct learners of the records returned.
    pub fn school<'a>(
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
pub struct Served {
    pub body: String,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub touched: Vec<Touched>,
}

/// Whether a path belongs to the read API.
pub fn owns(path: &str) -> bool {
    path == "/api/v1/openapi.json"
        || path == "/api/v1/schools"
        || path.starts_with("/api/v1/schools/")
        || path == "/xapi"
        || path.starts_with("/xapi/")
}

/// Answers one read API request.
pub async fn route(store: &Store, asked: Asked) -> Answer {
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
            _ => QueryError::MethodNotAllowed.answer(&asked.request_id, &asked.path),
        };
    }
    if asked.path == "/xapi" || asked.path.starts_with("/xapi/") {
        let mut answer = xapi_route(store, asked).await;
        answer
            .headers
            .push(("x-experience-api-version", xapi::VERSION.to_string()));
        return answer;
    }
    let route = match las::Route::parse(&asked.path) {
        Ok(route) => route,
        Err(error) => return error.answer(&asked.request_id, &asked.path),
    };
    if asked.method != Method::GET {
        return QueryError::MethodNotAllowed.answer(&asked.request_id, &asked.path);
    }
    let school = route.school().to_string();
    let outcome = authorised(store, &asked, Scope::Las, |connection, reader, today| {
        las::answer(connection, reader, today, &route, &asked)
    })
    .await;
    finish(store, &asked, Scope::Las, Some(school), outcome).await
}

/// The xAPI resources: About (open to all, as the spec asks) and Statements (scope `xapi`).
async fn xapi_route(store: &Store, asked: Asked) -> Answer {
    let more = asked.path.strip_prefix(xapi::MORE_PATH).map(str::to_string);
    let known = asked.path == "/xapi/about" || asked.path == "/xapi/statements" || more.is_some();
    if !known {
        return QueryError::NotFound(format!("no resource at {}", asked.path))
            .answer(&asked.request_id, &asked.path);
    }
    if asked.method != Method::GET {
        return QueryError::MethodNotAllowed.answer(&asked.request_id, &asked.path);
    }
    if asked.path == "/xapi/about" {
        return Answer {
            reply: Reply {
                status: StatusCode::OK,
                content_type: "application/json",
                body: crate::bridge::read::about().to_string(),
                receipt_id: None,
            },
            headers: Vec::new(),
        };
    }
    if let Err(error) = xapi::check_version(asked.xapi_version.as_deref()) {
        return error.answer(&asked.request_id, &asked.path);
    }
    let outcome = authorised(store, &asked, Scope::Xapi, |connection, reader, today| {
        xapi::answer(connection, reader, today, &asked, more.as_deref())
    })
    .await;
    finish(store, &asked, Scope::Xapi, None, outcome).await
}

/// Today in the Netherlands: the day mandates are checked against.
pub fn today() -> chrono::NaiveDate {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Amsterdam)
        .date_naive()
}

/// The authenticated reader with the handler's result, or why no reader could be named.
type Outcome = Result<(Reader, Result<Served, QueryError>), QueryError>;

/// Checks the token and the API scope, then runs `handler` on a read connection.
async fn authorised(
    store: &Store,
    asked: &Asked,
    scope: Scope,
    handler: impl FnOnce(&Connection, &Reader, chrono::NaiveDate) -> Result<Served, QueryError>,
) -> Outcome {
    let token = asked.bearer.as_deref().ok_or(QueryError::Unauthenticated)?;
    // The read runs on this worker thread, so the runtime is told to move other tasks away.
    tokio::task::block_in_place(|| {
        store.read(|connection| {
            let Some(reader) = readers::authenticate_reader(connection, token)? else {
                return Ok(Err(QueryError::Unauthenticated));
            };
            let result = if reader.may_use(scope) {
                handler(connection, &reader, today())
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
                tracing::info!(path = %asked.path, "read refused: no valid bearer token");
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
    let audited = store
        .write(move |connection| {
            let savepoint = connection.savepoint()?;
            readers::insert_read_audit(&savepoint, &entries)?;
            savepoint.commit()?;
            Ok::<_, StoreError>(())
        })
        .await;
    if let Err(error) = audited.and_then(|written| written) {
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
pub fn parse_params(query: &str, allowed: &[&str]) -> Result<BTreeMap<String, String>, QueryError> {
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
pub fn encode_segment(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

/// A percent-decoded path segment; `None` when it is not UTF-8.
pub fn decode_segment(segment: &str) -> Option<String> {
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

    #[test]
    fn segments_round_trip() {
        for value in ["99XX01", "school key/1", "é%?"] {
            assert_eq!(decode_segment(&encode_segment(value)).unwrap(), value);
        }
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(decode_segment("%FF"), None);
    }
}
