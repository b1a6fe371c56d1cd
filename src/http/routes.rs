//! Dispatch by method and path, and the HTTP response every answer becomes (headers, gzip).

use super::{admin, operations, receipts, soap, AppState, Surface};
use crate::auth_limit::{Api, Attempt};
use crate::metrics::metrics;
use crate::query::problem::ApiError;
use crate::query::Answer;
use crate::soap::fault::{self, Refusal, Reply};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// JSON answers shorter than this go out as they are: gzip would save less than its cost.
const GZIP_MIN_BYTES: usize = 256;

/// Whether an `Accept-Encoding` header accepts gzip (`gzip`, `x-gzip` or `*`, with q > 0).
fn accepts_gzip(headers: &hyper::HeaderMap) -> bool {
    headers
        .get_all(hyper::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("").to_ascii_lowercase();
            let quality = parts
                .filter_map(|parameter| parameter.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            matches!(name.as_str(), "gzip" | "x-gzip" | "*") && quality > 0.0
        })
}

/// Builds the HTTP response with the answer's extra headers; JSON answers (data and problem
/// details) are gzip-compressed when the client accepts it and they are long enough to gain.
fn respond(answer: Answer, request_id: &str, accept_gzip: bool) -> Response<Full<Bytes>> {
    let Answer { reply, headers } = answer;
    let mut response = respond_reply(reply, request_id, accept_gzip);
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn respond_reply(reply: Reply, request_id: &str, accept_gzip: bool) -> Response<Full<Bytes>> {
    let json = reply.content_type.starts_with("application/json")
        || reply.content_type.starts_with("application/problem+json");
    let body = if json && accept_gzip && reply.body.len() >= GZIP_MIN_BYTES {
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(reply.body.len() / 4),
            flate2::Compression::fast(),
        );
        // Writing to a Vec cannot fail.
        let _ = encoder.write_all(reply.body.as_bytes());
        encoder.finish().ok().map(Bytes::from)
    } else {
        None
    };
    let compressed = body.is_some();
    let body = body.unwrap_or_else(|| Bytes::from(reply.body));
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if json {
        headers.insert(
            hyper::header::VARY,
            HeaderValue::from_static("accept-encoding"),
        );
    }
    if compressed {
        headers.insert(
            hyper::header::CONTENT_ENCODING,
            HeaderValue::from_static("gzip"),
        );
    }
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", value);
    }
    if reply.status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(
            hyper::header::RETRY_AFTER,
            HeaderValue::from(fault::BUSY_RETRY_AFTER_SECS),
        );
    }
    if let Some(receipt_id) = reply
        .receipt_id
        .and_then(|id| HeaderValue::from_str(&id).ok())
    {
        headers.insert("x-receipt-id", receipt_id);
    }
    response
}

pub(super) fn json_reply(status: StatusCode, value: serde_json::Value) -> Reply {
    Reply {
        status,
        content_type: "application/json",
        body: value.to_string(),
        receipt_id: None,
    }
}

pub(super) async fn handle(
    state: Arc<AppState>,
    request: Request<Incoming>,
    peer: SocketAddr,
    surface: Surface,
) -> Response<Full<Bytes>> {
    let request_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
    let accept_gzip = accepts_gzip(request.headers());
    let span = tracing::info_span!("request", request_id = %request_id, method = %request.method(), path = crate::logging::clip(request.uri().path()).as_ref(), %peer);
    // Every answer, problems included, is made inside the request's span, so that an error
    // logged while making it carries the request id the client is shown.
    let answer = async {
        if surface == Surface::Operations {
            operations_only(&state, &request, &request_id, peer).await
        } else if crate::query::owns(request.uri().path()) {
            read_api(&state, request, &request_id, peer).await
        } else {
            route(&state, request, &request_id, peer).await
        }
    }
    .instrument(span)
    .await;
    respond(answer, &request_id, accept_gzip)
}

/// The operations listener: the operators' resources and nothing else.
async fn operations_only(
    state: &AppState,
    request: &Request<Incoming>,
    request_id: &str,
    peer: SocketAddr,
) -> Answer {
    let path = request.uri().path();
    let operated = operations::operations(
        state,
        request.method(),
        path,
        request.headers(),
        peer,
        Surface::Operations,
    )
    .await;
    match operated {
        Some(Ok(reply)) => Answer::from(reply),
        Some(Err(error)) => error.answer(request_id, path),
        None => ApiError::NotFound.answer(request_id, path),
    }
}

/// The read API (`query`), under the reader tokens' failed-authentication limit.
async fn read_api(
    state: &AppState,
    request: Request<Incoming>,
    request_id: &str,
    peer: SocketAddr,
) -> Answer {
    let route_template = crate::query::route_template(request.uri().path());
    // Reader tokens have a failed-authentication limit of their own per source network: a
    // locked-out network is asked as if it sent no token, and so gets the same 401 as a wrong one.
    let limiter = &state.intake.auth_limit;
    let attempt = Attempt {
        api: Api::Reader,
        klantcode: None,
        address: Some(peer.ip()),
    };
    let (parts, body) = request.into_parts();
    let mut asked = crate::query::Asked::new(&parts.method, &parts.uri, &parts.headers, request_id);
    if asked.is_alternate() {
        let deadline = Duration::from_secs(state.config.body_idle_timeout_secs);
        asked = asked.alternate(read_small_body(body, deadline).await);
    }
    let presented = parts.headers.contains_key(AUTHORIZATION) || asked.bearer.is_some();
    let locked = presented && limiter.is_locked(&attempt);
    if locked {
        asked.bearer = None;
    }
    let answer = crate::query::route(&state.intake.store, &state.read, asked).await;
    if !locked && presented && answer.reply.status == StatusCode::UNAUTHORIZED {
        limiter.record_failure(&attempt);
    }
    metrics().read_request(route_template, answer.reply.status.as_u16());
    answer
}

/// The body of an xAPI Alternate Request Syntax request: small, complete, in time.
async fn read_small_body(
    body: Incoming,
    deadline: Duration,
) -> Result<Bytes, crate::query::BodyProblem> {
    use crate::query::BodyProblem;
    let limited = http_body_util::Limited::new(body, crate::query::ALTERNATE_BODY_LIMIT);
    match tokio::time::timeout(deadline, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            Err(BodyProblem::TooLarge)
        }
        Ok(Err(error)) => Err(BodyProblem::Unreadable(error.to_string())),
        Err(_) => Err(BodyProblem::Unreadable(format!(
            "not complete within {} s",
            deadline.as_secs()
        ))),
    }
}

/// Routes everything but the read API: the SOAP service path answers as a SOAP service
/// (`soap::fault`), every other resource's errors are problem details (`query::problem`).
async fn route(
    state: &AppState,
    request: Request<Incoming>,
    request_id: &str,
    peer: SocketAddr,
) -> Answer {
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let method = request.method().clone();
    if path == state.config.service_path {
        return Answer::from(match method {
            Method::POST => soap::soap_call(state, request, request_id, peer).await,
            Method::GET | Method::HEAD => soap::contract_file(state, &query),
            _ => fault::refusal(&Refusal::MethodNotAllowed),
        });
    }
    let operated = operations::operations(
        state,
        &method,
        &path,
        request.headers(),
        peer,
        Surface::Main,
    )
    .await;
    let result = if let Some(result) = operated {
        result
    } else if let Some(id) = path.strip_prefix("/api/v1/receipts/") {
        match method {
            Method::GET => receipts::receipt(state, &request, id, peer).await,
            _ => Err(ApiError::MethodNotAllowed("GET")),
        }
    } else if path == "/api/v1/admin/leerlingen" {
        match method {
            Method::POST => admin::admin_import(state, request, peer).await,
            _ => Err(ApiError::MethodNotAllowed("POST")),
        }
    } else if let Some(rest) = path.strip_prefix("/api/v1/admin/schools/") {
        match method {
            Method::DELETE => {
                admin::admin_erase(state, request.headers(), peer, rest, &query).await
            }
            _ => Err(ApiError::MethodNotAllowed("DELETE")),
        }
    } else {
        Err(ApiError::NotFound)
    };
    // A problem never echoes a receipt id: a caller without credentials learns nothing of it.
    let instance = if path.starts_with("/api/v1/receipts/") {
        "/api/v1/receipts/"
    } else {
        &path
    };
    match result {
        Ok(reply) => Answer::from(reply),
        Err(error) => error.answer(request_id, instance),
    }
}
