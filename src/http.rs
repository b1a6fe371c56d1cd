//! The hyper listener: routes, body spooling with limits and timeouts, graceful shutdown.

use crate::auth_limit::{Api, Attempt};
use crate::body::{Body, MEMORY_LIMIT};
use crate::budget::{Budget, Exceeded, Held};
use crate::config::Config;
use crate::domain::violation::Violations;
use crate::domain::{Rule, Violation};
use crate::intake::{Identification, Identity, Intake, IntakeError, Outcome, Received, Scope};
use crate::metrics::{metrics, MessageOutcome};
use crate::query::problem::ApiError;
use crate::query::Answer;
use crate::soap::envelope::{soap_action_operation, OPERATION};
use crate::soap::fault::{self, Refusal, Reply};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tracing::Instrument;

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Builds the TLS acceptor from PEM files: the certificate chain and its private key.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let read = |path: &std::path::Path, error: rustls_pki_types::pem::Error| TlsError::Read {
        path: path.to_path_buf(),
        reason: error.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|error| read(cert, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| read(cert, error))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|error| read(key, error))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Which listener a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// `listen`: the SOAP service, the read and admin APIs, and the operators' resources
    /// (`/metrics` and the status data behind the admin token).
    Main,
    /// `metrics_listen`: only `/metrics`, `/status`, `/ready` and `/health`, without a token
    /// (a private address an operator's Prometheus scrapes).
    Operations,
}

/// Everything a request handler needs.
pub struct AppState {
    pub config: Config,
    pub intake: Intake,
    /// The WSDL with `soap:address` and schema locations pointing at this gateway.
    pub wsdl: String,
    pub endpoint_url: String,
    pub spool_dir: PathBuf,
    /// What the read API takes from the configuration (xAPI authority, CORS, profile).
    pub read: crate::query::ReadSettings,
    /// Open connections per source address (the total is the listener's semaphore).
    pub connections: Arc<Budget>,
    /// Bytes of bodies whose sender is not yet authenticated (held in memory only).
    pub preauth_memory: Arc<Budget>,
    /// Bytes of spooled bodies on disk, in total and per source address.
    pub spool_space: Arc<Budget>,
    /// Body bytes released since memory was last given back to the system.
    released_bytes: AtomicU64,
    /// Long prefixes identified at once on the blocking pool: more would only add
    /// threads (each with its stack and malloc arena), not throughput.
    identify_slots: tokio::sync::Semaphore,
}

impl AppState {
    pub fn new(config: Config, intake: Intake, local: SocketAddr) -> std::io::Result<AppState> {
        let endpoint_url = config.endpoint_url(local);
        let spool_dir = config.data_dir.join("spool");
        std::fs::create_dir_all(&spool_dir)?;
        // Bodies left by a crash are garbage: nothing was answered for them.
        if let Ok(entries) = std::fs::read_dir(&spool_dir) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let read = crate::query::ReadSettings::new(&config)
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        Ok(AppState {
            read,
            wsdl: render_wsdl(&endpoint_url),
            endpoint_url,
            spool_dir,
            connections: Budget::new(0, config.max_connections_per_address as u64),
            preauth_memory: Budget::new(config.preauth_memory_mib << 20, 0),
            spool_space: Budget::new(
                config.spool_max_mib << 20,
                config.spool_max_per_address_mib << 20,
            ),
            released_bytes: AtomicU64::new(0),
            identify_slots: tokio::sync::Semaphore::new(
                2 * std::thread::available_parallelism().map_or(2, |cores| cores.get()),
            ),
            config,
            intake,
        })
    }
}

/// Points the WSDL's address and imports at this gateway.
pub fn render_wsdl(endpoint_url: &str) -> String {
    replace_address(
        &rewrite_schema_locations(crate::schema::WSDL, endpoint_url),
        endpoint_url,
    )
}

fn replace_address(wsdl: &str, endpoint_url: &str) -> String {
    let marker = "address location=\"";
    let Some(start) = wsdl.find(marker).map(|index| index + marker.len()) else {
        return wsdl.to_string();
    };
    let Some(length) = wsdl[start..].find('"') else {
        return wsdl.to_string();
    };
    format!(
        "{}{}{}",
        &wsdl[..start],
        endpoint_url,
        &wsdl[start + length..]
    )
}

/// Rewrites every `schemaLocation="…/NAME.xsd"` to `ENDPOINT?xsd=NAME.xsd`, so imports resolve over HTTP.
pub fn rewrite_schema_locations(document: &str, endpoint_url: &str) -> String {
    let marker = "schemaLocation=\"";
    let mut out = String::with_capacity(document.len() + 256);
    let mut rest = document;
    while let Some(index) = rest.find(marker) {
        let start = index + marker.len();
        out.push_str(&rest[..start]);
        let Some(length) = rest[start..].find('"') else {
            rest = &rest[start..];
            break;
        };
        let location = &rest[start..start + length];
        let name = location.rsplit('/').next().unwrap_or(location);
        out.push_str(&format!("{endpoint_url}?xsd={name}"));
        rest = &rest[start + length..];
    }
    out.push_str(rest);
    out
}

/// Accepts connections until `shutdown` resolves, then lets in-flight requests finish
/// within the configured grace period.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    surface: Surface,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    keep_large_buffers_out_of_the_heap();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let header_timeout = Duration::from_secs(state.config.header_timeout_secs);
    // Each connection holds a permit; at the cap the gateway stops accepting and
    // the kernel's backlog holds new connections until one closes (idle ones close
    // after the header timeout).
    let permits = Arc::new(tokio::sync::Semaphore::new(
        state.config.max_connections.max(1),
    ));
    tokio::pin!(shutdown);
    let trimmer = tokio::spawn(give_back_memory(state.clone()));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                // One address may hold only so many slots, or a slow-body flood from one
                // sender keeps every other sender (and /health) out.
                let held = match state.connections.take(peer.ip(), 1) {
                    Ok(held) => held,
                    Err(_) => {
                        drop(permit);
                        tracing::debug!(%peer, "too many connections from this address");
                        tokio::spawn(refuse_connection(stream, tls.is_none()));
                        continue;
                    }
                };
                let permit = (permit, held);
                let state = state.clone();
                let service = hyper::service::service_fn(move |request| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(state, request, peer, surface).await) }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder.timer(TokioTimer::new()).header_read_timeout(header_timeout).max_buf_size(64 * 1024);
                match &tls {
                    None => {
                        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                        tokio::spawn(async move {
                            if let Err(error) = connection.await {
                                tracing::debug!(%error, %peer, "connection ended with an error");
                            }
                            drop(permit);
                        });
                    }
                    Some(acceptor) => {
                        // The handshake runs on the connection's own task, within the header timeout,
                        // so a client that never finishes it holds a permit no longer than an idle one.
                        let (acceptor, watcher) = (acceptor.clone(), graceful.watcher());
                        tokio::spawn(async move {
                            match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => {
                                    let connection = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
                                    if let Err(error) = connection.await {
                                        tracing::debug!(%error, %peer, "connection ended with an error");
                                    }
                                }
                                Ok(Err(error)) => tracing::debug!(%error, %peer, "TLS handshake failed"),
                                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                            }
                            drop(permit);
                        });
                    }
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    trimmer.abort();
    let grace = Duration::from_secs(state.config.shutdown_grace_secs);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("shutdown grace period over; closing remaining connections"),
    }
    Ok(())
}

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

fn json_reply(status: StatusCode, value: serde_json::Value) -> Reply {
    Reply {
        status,
        content_type: "application/json",
        body: value.to_string(),
        receipt_id: None,
    }
}

async fn handle(
    state: Arc<AppState>,
    request: Request<Incoming>,
    peer: SocketAddr,
    surface: Surface,
) -> Response<Full<Bytes>> {
    let request_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
    let accept_gzip = accepts_gzip(request.headers());
    let span = tracing::info_span!("request", request_id = %request_id, method = %request.method(), path = crate::logging::clip(request.uri().path()).as_ref(), %peer);
    if surface == Surface::Operations {
        let path = request.uri().path().to_string();
        let answer = match operations(
            &state,
            request.method(),
            &path,
            request.headers(),
            peer,
            surface,
        )
        .instrument(span)
        .await
        {
            Some(Ok(reply)) => Answer::from(reply),
            Some(Err(error)) => error.answer(&request_id, &path),
            None => ApiError::NotFound.answer(&request_id, &path),
        };
        return respond(answer, &request_id, accept_gzip);
    }
    if crate::query::owns(request.uri().path()) {
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
        let mut asked =
            crate::query::Asked::new(&parts.method, &parts.uri, &parts.headers, &request_id);
        if asked.is_alternate() {
            let deadline = Duration::from_secs(state.config.body_idle_timeout_secs);
            asked = asked.alternate(read_small_body(body, deadline).await);
        }
        let presented = parts.headers.contains_key(AUTHORIZATION) || asked.bearer.is_some();
        let locked = presented && limiter.is_locked(&attempt);
        if locked {
            asked.bearer = None;
        }
        let answer = crate::query::route(&state.intake.store, &state.read, asked)
            .instrument(span)
            .await;
        if !locked && presented && answer.reply.status == StatusCode::UNAUTHORIZED {
            limiter.record_failure(&attempt);
        }
        metrics().read_request(route_template, answer.reply.status.as_u16());
        return respond(answer, &request_id, accept_gzip);
    }
    let answer = route(&state, request, &request_id, peer)
        .instrument(span)
        .await;
    respond(answer, &request_id, accept_gzip)
}

/// The operators' resources, on either listener: None when `request` is not for one of them.
/// On the main listener `/metrics` and `/status/data` need the admin token.
async fn operations(
    state: &AppState,
    method: &Method,
    path: &str,
    headers: &hyper::HeaderMap,
    peer: SocketAddr,
    surface: Surface,
) -> Option<Result<Reply, ApiError>> {
    if !matches!(
        path,
        "/metrics" | "/status" | "/status/data" | "/ready" | "/health"
    ) {
        return None;
    }
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Some(Err(ApiError::MethodNotAllowed("GET, HEAD")));
    }
    if surface == Surface::Main && matches!(path, "/metrics" | "/status/data") {
        if let Err(error) = check_admin_token(state, headers, peer) {
            return Some(Err(error));
        }
    }
    Some(match path {
        "/health" => Ok(health(state)),
        "/ready" => {
            let limits = crate::status::ReadyLimits {
                max_publisher_lag_secs: state.config.ready_max_publisher_lag_secs,
                max_dead_letters: state.config.ready_max_dead_letters,
            };
            crate::status::ready(&state.intake.store, &state.intake.schemas, limits)
                .await
                .map(|value| json_reply(StatusCode::OK, value))
        }
        "/metrics" => {
            metrics().auth_stats(&state.intake.auth_limit.stats());
            Ok(Reply {
                status: StatusCode::OK,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: metrics().render(),
                receipt_id: None,
            })
        }
        "/status" => Ok(Reply {
            status: StatusCode::OK,
            content_type: "text/html; charset=utf-8",
            body: crate::status::page().to_string(),
            receipt_id: None,
        }),
        _ => {
            let store = state.intake.store.clone();
            match tokio::task::spawn_blocking(move || crate::status::data(&store)).await {
                Ok(Ok(value)) => Ok(json_reply(StatusCode::OK, value)),
                Ok(Err(error)) => {
                    tracing::error!(%error, "cannot read the status data");
                    Err(ApiError::Internal("cannot read the status data"))
                }
                Err(error) => {
                    tracing::error!(%error, "the status data task failed");
                    Err(ApiError::Internal("cannot read the status data"))
                }
            }
        }
    })
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
            Method::POST => soap_call(state, request, request_id, peer).await,
            Method::GET | Method::HEAD => contract_file(state, &query),
            _ => fault::refusal(&Refusal::MethodNotAllowed),
        });
    }
    let operated = operations(
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
            Method::GET => receipt(state, &request, id, peer),
            _ => Err(ApiError::MethodNotAllowed("GET")),
        }
    } else if path == "/api/v1/admin/leerlingen" {
        match method {
            Method::POST => admin_import(state, request, peer).await,
            _ => Err(ApiError::MethodNotAllowed("POST")),
        }
    } else if let Some(rest) = path.strip_prefix("/api/v1/admin/schools/") {
        match method {
            Method::DELETE => admin_erase(state, request.headers(), peer, rest, &query).await,
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

/// `GET /health`: liveness (the database answers) and the version, nothing a stranger
/// may not know: no counts, no addresses, no configuration.
fn health(state: &AppState) -> Reply {
    let database = state
        .intake
        .store
        .read(|connection| Ok(connection.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?));
    match database {
        Ok(_) => json_reply(
            StatusCode::OK,
            serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "commit": crate::COMMIT}),
        ),
        Err(error) => {
            tracing::error!(%error, "health check cannot read the database");
            json_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"status": "database unavailable"}),
            )
        }
    }
}

fn contract_file(state: &AppState, query: &str) -> Reply {
    let xml = |body: String| Reply {
        status: StatusCode::OK,
        content_type: "text/xml; charset=utf-8",
        body,
        receipt_id: None,
    };
    if query.eq_ignore_ascii_case("wsdl") || query.to_ascii_lowercase().starts_with("wsdl=") {
        return xml(state.wsdl.clone());
    }
    if let Some(name) = query.strip_prefix("xsd=") {
        return match crate::schema::xsd_file(name) {
            Some(contents) => xml(rewrite_schema_locations(contents, &state.endpoint_url)),
            None => fault::refusal(&Refusal::NotFound),
        };
    }
    Reply {
        status: StatusCode::OK,
        content_type: "text/plain; charset=utf-8",
        body: format!(
            "UWLR 2.2 {OPERATION} endpoint. POST SOAP 1.1 here; the WSDL is at {}?wsdl\n",
            state.endpoint_url
        ),
        receipt_id: None,
    }
}

async fn soap_call(
    state: &AppState,
    request: Request<Incoming>,
    request_id: &str,
    peer: SocketAddr,
) -> Reply {
    let started = Instant::now();
    let (parts, mut body) = request.into_parts();
    let headers = &parts.headers;
    let drain_refused = !expects_continue(headers);
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let limit = state.config.max_body_bytes;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let action = headers
        .get("soapaction")
        .and_then(|value| value.to_str().ok());
    let refused = if !matches!(
        media.as_str(),
        "text/xml" | "application/xml" | "application/soap+xml"
    ) {
        Some(Refusal::UnsupportedMediaType(media))
    } else if let Some(action) = action.filter(|action| {
        soap_action_operation(action).is_some_and(|operation| operation != OPERATION)
    }) {
        Some(Refusal::UnknownAction(action.to_string()))
    } else if declared.is_some_and(|length| length > limit) {
        Some(Refusal::TooLarge(limit))
    } else {
        None
    };
    let record =
        |outcome: MessageOutcome, rule: Option<Rule>, klantcode: Option<&str>, size: u64| {
            metrics().message(outcome, rule, klantcode, size, started.elapsed());
        };
    if let Some(refusal) = refused {
        if drain_refused {
            drain(&mut body).await;
        }
        record(MessageOutcome::Refused, None, None, declared.unwrap_or(0));
        return fault::refusal(&refusal);
    }
    let spooled = match spool(state, body, peer, drain_refused).await {
        Ok(spooled) => spooled,
        Err(SpoolError::Refused(refusal)) => {
            tracing::info!(?refusal, "request refused while reading the body");
            record(MessageOutcome::Refused, None, None, declared.unwrap_or(0));
            return fault::refusal(&refusal);
        }
        Err(SpoolError::Io(error)) => {
            tracing::error!(%error, "cannot spool the request body");
            record(MessageOutcome::Error, None, None, declared.unwrap_or(0));
            return fault::internal(request_id);
        }
        Err(SpoolError::Identify(error)) => {
            tracing::error!(%error, "cannot identify the sender");
            record(MessageOutcome::Error, None, None, declared.unwrap_or(0));
            return fault::internal(request_id);
        }
        Err(SpoolError::Unidentified(violations, klantcode)) => {
            let rule = violations.leading_rule();
            tracing::info!(
                outcome = "rejected",
                receipt = "-",
                klantcode = crate::logging::clip(klantcode.as_deref().unwrap_or("-")).as_ref(),
                rule = rule.code(),
                violations = violations.total(),
                duration_ms = started.elapsed().as_millis() as u64,
                "message rejected before its body was read"
            );
            // Not authenticated: the klantcode it claimed must not become a label.
            record(
                MessageOutcome::Rejected,
                Some(rule),
                None,
                declared.unwrap_or(0),
            );
            return fault::rejected(&violations, None);
        }
    };
    let Spooled {
        received,
        spool_space,
    } = spooled;
    if received.size == 0 {
        record(MessageOutcome::Rejected, Some(Rule::Bericht), None, 0);
        return fault::rejected(
            &Violations::single(Violation::new(Rule::Bericht, "the request body is empty")),
            None,
        );
    }
    let size = received.size;
    let outcome = state.intake.receive(received).await;
    // The spooled file is gone once the intake has let go of the body.
    drop(spool_space);
    state
        .released_bytes
        .fetch_add(size.min(8 * MEMORY_LIMIT as u64), Ordering::Relaxed);
    let duration_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(Outcome::Accepted {
            receipt_id,
            counts,
            replay,
            klantcode,
        }) => {
            let outcome = if replay {
                MessageOutcome::Replay
            } else {
                MessageOutcome::Accepted
            };
            record(outcome, None, Some(&klantcode), size);
            metrics().results_stored(counts.resultaten as u64);
            tracing::info!(
                outcome = "accepted", receipt = %receipt_id, replay, size,
                toetsafnames = counts.toetsafnames, resultaten = counts.resultaten,
                created = counts.created, updated = counts.updated, duration_ms,
                "message accepted"
            );
            fault::bevestiging(&receipt_id)
        }
        Ok(Outcome::Rejected {
            receipt_id,
            violations,
            klantcode,
        }) => {
            let rule = violations.leading_rule();
            tracing::info!(
                outcome = "rejected",
                receipt = receipt_id.as_deref().unwrap_or("-"),
                klantcode = crate::logging::clip(klantcode.as_deref().unwrap_or("-")).as_ref(),
                rule = rule.code(),
                violations = violations.total(),
                size,
                duration_ms,
                "message rejected"
            );
            // A receipt is kept only for an authenticated sender; without one the klantcode
            // is whatever the message claimed and is counted as `unknown`.
            let known = receipt_id.as_ref().and(klantcode.as_deref());
            record(MessageOutcome::Rejected, Some(rule), known, size);
            fault::rejected(&violations, receipt_id.as_deref())
        }
        Err(error) => {
            tracing::error!(error = %error, size, duration_ms, "message failed on our side");
            record(MessageOutcome::Error, None, None, size);
            fault::internal(request_id)
        }
    }
}

enum SpoolError {
    Refused(Refusal),
    /// The prefix named no valid sender (or no envelope): refused before the rest was read.
    Unidentified(Violations, Option<String>),
    Identify(IntakeError),
    Io(std::io::Error),
}

/// A received body and the spool space it holds until the intake is done with it.
struct Spooled {
    received: Received,
    spool_space: Option<Held>,
}

/// Prefixes up to this size are identified on the request's own task (well under a
/// millisecond); longer ones on the blocking pool.
const INLINE_IDENTIFY_BYTES: usize = 64 << 10;

/// What a body may cost while it arrives, from the configuration.
struct SpoolLimits {
    max_bytes: u64,
    idle: Duration,
    whole: Duration,
    preauth: Duration,
    preauth_max_bytes: usize,
    min_bytes_per_sec: u64,
    rate_window: Duration,
}

impl SpoolLimits {
    fn of(config: &Config) -> SpoolLimits {
        SpoolLimits {
            max_bytes: config.max_body_bytes,
            idle: Duration::from_secs(config.body_idle_timeout_secs),
            whole: Duration::from_secs(config.body_timeout_secs),
            preauth: Duration::from_secs(config.preauth_timeout_secs),
            preauth_max_bytes: config.preauth_max_bytes as usize,
            min_bytes_per_sec: config.min_body_bytes_per_sec,
            rate_window: Duration::from_secs(config.body_rate_window_secs),
        }
    }
}

fn busy(exceeded: Exceeded, what: &str) -> SpoolError {
    SpoolError::Refused(Refusal::Busy(match exceeded {
        Exceeded::PerAddress => format!("your address holds too much {what}"),
        Exceeded::Total => format!("all senders together hold too much {what}"),
    }))
}

/// Receives the body, hashing it on the way (from authentication on).
///
/// Until the sender is authenticated the body stays in memory, within
/// `preauth_max_bytes`, `preauth_timeout_secs` and the gateway-wide pre-authentication
/// budget: as the prefix grows it is handed to `Intake::identify`, and a prefix that
/// names no valid sender is answered at once. After that, a body that grows past
/// `MEMORY_LIMIT` is spooled to a temporary file within the spool budget.
async fn spool(
    state: &AppState,
    mut body: Incoming,
    peer: SocketAddr,
    drain_refused: bool,
) -> Result<Spooled, SpoolError> {
    let spooled = receive_body(state, &mut body, peer, drain_refused).await;
    if drain_refused
        && matches!(
            spooled,
            Err(SpoolError::Unidentified(..) | SpoolError::Refused(Refusal::Busy(_)))
        )
    {
        // The answer goes out now, before the rest of the body; a bounded drain on the
        // side lets the client read it instead of a reset connection.
        tokio::spawn(async move { drain(&mut body).await });
    }
    spooled
}

async fn receive_body(
    state: &AppState,
    body: &mut Incoming,
    peer: SocketAddr,
    drain_refused: bool,
) -> Result<Spooled, SpoolError> {
    let mut pacing = Pacing::new(SpoolLimits::of(&state.config));
    // Until authentication: the prefix, in memory only. None once the sender is known.
    let mut prefix = Some(Prefix::new(state, peer)?);
    let mut sink = Sink::default();
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut identity: Option<Box<Identity>> = None;
    // A body refused while it arrives leaves its memory here; one that is received
    // is counted when the intake is done with it.
    let mut refused_memory = ReleasedOnDrop {
        released: &state.released_bytes,
        bytes: 0,
    };
    loop {
        let frame = tokio::time::timeout_at(pacing.wait_until(), body.frame()).await;
        let now = tokio::time::Instant::now();
        pacing.check(now, identity.is_some())?;
        let frame = match frame {
            Err(_) if pacing.idle(now) => {
                return Err(incomplete(format!(
                    "no data for {} seconds",
                    pacing.limits.idle.as_secs()
                )))
            }
            Err(_) => continue,
            Ok(None) => break,
            Ok(Some(Err(error))) => return Err(incomplete(error.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pacing.received(now, data.len());
        size += data.len() as u64;
        refused_memory.bytes = size.min(8 * MEMORY_LIMIT as u64);
        if size > pacing.limits.max_bytes {
            if drain_refused {
                drain(body).await;
            }
            return Err(SpoolError::Refused(Refusal::TooLarge(
                pacing.limits.max_bytes,
            )));
        }
        let Some(unauthenticated) = prefix.as_mut() else {
            hasher.update(&data);
            sink.write(state, peer, &data)?;
            continue;
        };
        if !unauthenticated.push(&data, pacing.limits.preauth_max_bytes)? {
            continue;
        }
        match unauthenticated
            .identify(state, peer, pacing.limits.preauth_max_bytes)
            .await?
        {
            Identification::Incomplete => {}
            Identification::Refused(violations, klantcode) => {
                return Err(SpoolError::Unidentified(violations, klantcode));
            }
            Identification::Sender(sender) => {
                // Hashed only now: a body refused before this costs no hashing.
                let known = prefix.take().expect("the prefix").bytes;
                hasher.update(&known);
                sink.memory = known;
                identity = Some(sender);
                pacing.authenticated();
            }
        }
    }
    if let Some(unauthenticated) = prefix {
        // The whole body came before its sender could be identified: phase 1 does it.
        hasher.update(&unauthenticated.bytes);
        sink.memory = unauthenticated.bytes;
    }
    refused_memory.bytes = 0;
    let (body, spool_space) = sink.finish()?;
    Ok(Spooled {
        received: Received {
            body,
            size,
            sha256: hex::encode(hasher.finalize()),
            peer: Some(peer.ip()),
            identity,
        },
        spool_space,
    })
}

fn incomplete(reason: String) -> SpoolError {
    SpoolError::Refused(Refusal::IncompleteBody(reason))
}

/// When a body must arrive: the deadlines, the idle timeout and the minimum rate.
struct Pacing {
    limits: SpoolLimits,
    started: tokio::time::Instant,
    /// The pre-authentication deadline until the sender is known, then the whole-body one.
    deadline: tokio::time::Instant,
    last_data: tokio::time::Instant,
    window_start: tokio::time::Instant,
    window_bytes: u64,
}

impl Pacing {
    fn new(limits: SpoolLimits) -> Pacing {
        let started = tokio::time::Instant::now();
        Pacing {
            deadline: started + limits.preauth.min(limits.whole),
            limits,
            started,
            last_data: started,
            window_start: started,
            window_bytes: 0,
        }
    }

    /// How long to wait for the next frame before looking at the clock again.
    fn wait_until(&self) -> tokio::time::Instant {
        let wait_until = self.deadline.min(self.last_data + self.limits.idle);
        if self.limits.min_bytes_per_sec > 0 {
            wait_until.min(self.window_start + self.limits.rate_window)
        } else {
            wait_until
        }
    }

    /// Refuses a body past its deadline, or one that arrived slower than the minimum
    /// rate over the window that just ended.
    fn check(&mut self, now: tokio::time::Instant, authenticated: bool) -> Result<(), SpoolError> {
        let limits = &self.limits;
        if now >= self.deadline {
            return Err(incomplete(
                if !authenticated && limits.preauth < limits.whole {
                    format!(
                    "the autorisatie header and the school block did not arrive within {} seconds",
                    limits.preauth.as_secs()
                )
                } else {
                    format!(
                        "the body took longer than {} seconds",
                        limits.whole.as_secs()
                    )
                },
            ));
        }
        if limits.min_bytes_per_sec > 0 && now >= self.window_start + limits.rate_window {
            let window_secs = limits.rate_window.as_secs().max(1);
            if self.window_bytes < limits.min_bytes_per_sec * window_secs {
                return Err(incomplete(format!(
                    "the body arrived at {} bytes per second, slower than {} bytes per second",
                    self.window_bytes / window_secs,
                    limits.min_bytes_per_sec
                )));
            }
            (self.window_start, self.window_bytes) = (now, 0);
        }
        Ok(())
    }

    fn idle(&self, now: tokio::time::Instant) -> bool {
        now >= self.last_data + self.limits.idle
    }

    fn received(&mut self, now: tokio::time::Instant, bytes: usize) {
        self.last_data = now;
        self.window_bytes += bytes as u64;
    }

    /// From now on the whole-body deadline applies.
    fn authenticated(&mut self) {
        self.deadline = self.started + self.limits.whole;
    }
}

/// The start of a body whose sender is not yet authenticated: in memory only, within
/// `preauth_max_bytes` and the gateway-wide pre-authentication budget.
struct Prefix {
    bytes: Vec<u8>,
    held: Held,
    next_identify_at: usize,
    school_seen: bool,
}

impl Prefix {
    fn new(state: &AppState, peer: SocketAddr) -> Result<Prefix, SpoolError> {
        Ok(Prefix {
            bytes: Vec::new(),
            held: state
                .preauth_memory
                .take(peer.ip(), 0)
                .map_err(|exceeded| busy(exceeded, "unauthenticated data"))?,
            next_identify_at: 0,
            school_seen: false,
        })
    }

    /// Adds `data`; says whether the prefix is now worth identifying. The school block
    /// ends the part identification needs: scanning only once "school" has arrived, and
    /// then only after a quarter more, keeps the work linear in the prefix however the
    /// sender splits it.
    fn push(&mut self, data: &[u8], max_bytes: usize) -> Result<bool, SpoolError> {
        self.held
            .grow(data.len() as u64)
            .map_err(|exceeded| busy(exceeded, "unauthenticated data"))?;
        let overlap = self.bytes.len().saturating_sub(b"school".len() - 1);
        self.bytes.extend_from_slice(data);
        self.school_seen |= memchr::memmem::find(&self.bytes[overlap..], b"school").is_some();
        Ok(self.bytes.len() >= max_bytes
            || (self.school_seen && self.bytes.len() >= self.next_identify_at))
    }

    /// Hands the prefix (at most `max_bytes` of it) to `Intake::identify`.
    async fn identify(
        &mut self,
        state: &AppState,
        peer: SocketAddr,
        max_bytes: usize,
    ) -> Result<Identification, SpoolError> {
        let (length, scope) = if self.bytes.len() >= max_bytes {
            let length = max_bytes as u64;
            (max_bytes, Scope::LastPrefix { length })
        } else {
            (self.bytes.len(), Scope::Prefix)
        };
        let identification = if length <= INLINE_IDENTIFY_BYTES {
            state
                .intake
                .identify(&self.bytes[..length], scope, Some(peer.ip()))
        } else {
            // A long prefix is scanned on the blocking pool, as large bodies are,
            // so that many of them at once do not hold up every other connection.
            let _slot = state.identify_slots.acquire().await;
            let intake = state.intake.clone();
            let scanned = std::mem::take(&mut self.bytes);
            let (identification, scanned) = tokio::task::spawn_blocking(move || {
                (
                    intake.identify(&scanned[..length], scope, Some(peer.ip())),
                    scanned,
                )
            })
            .await
            .map_err(|error| SpoolError::Identify(IntakeError::Worker(error.to_string())))?;
            self.bytes = scanned;
            identification
        }
        .map_err(SpoolError::Identify)?;
        if let Identification::Incomplete = identification {
            self.next_identify_at = self.bytes.len() + (self.bytes.len() / 4).max(4096);
            self.school_seen = false;
        }
        Ok(identification)
    }
}

/// Where an authenticated body goes: memory up to `MEMORY_LIMIT`, then a temporary
/// file within the spool quotas.
#[derive(Default)]
struct Sink {
    memory: Vec<u8>,
    file: Option<(std::io::BufWriter<std::fs::File>, tempfile::TempPath)>,
    space: Option<Held>,
}

impl Sink {
    fn write(&mut self, state: &AppState, peer: SocketAddr, data: &[u8]) -> Result<(), SpoolError> {
        match self.file.as_mut() {
            Some((writer, _)) => {
                if let Some(held) = self.space.as_mut() {
                    held.grow(data.len() as u64)
                        .map_err(|exceeded| busy(exceeded, "spooled data"))?;
                }
                writer.write_all(data).map_err(SpoolError::Io)
            }
            None if self.memory.len() + data.len() <= MEMORY_LIMIT => {
                self.memory.extend_from_slice(data);
                Ok(())
            }
            None => {
                self.space = Some(
                    state
                        .spool_space
                        .take(peer.ip(), (self.memory.len() + data.len()) as u64)
                        .map_err(|exceeded| busy(exceeded, "spooled data"))?,
                );
                let spooled = tempfile::Builder::new()
                    .prefix("body-")
                    .tempfile_in(&state.spool_dir)
                    .map_err(SpoolError::Io)?;
                let (handle, path) = spooled.into_parts();
                let mut writer = std::io::BufWriter::with_capacity(256 * 1024, handle);
                writer.write_all(&self.memory).map_err(SpoolError::Io)?;
                writer.write_all(data).map_err(SpoolError::Io)?;
                self.memory = Vec::new();
                self.file = Some((writer, path));
                Ok(())
            }
        }
    }

    /// The received body, and the spool space it holds.
    fn finish(self) -> Result<(Body, Option<Held>), SpoolError> {
        let body = match self.file {
            Some((mut writer, path)) => {
                writer.flush().map_err(SpoolError::Io)?;
                Body::File(Arc::new(path))
            }
            None => Body::Memory(Bytes::from(self.memory)),
        };
        Ok((body, self.space))
    }
}

/// Adds `bytes` to the released-memory count when dropped.
struct ReleasedOnDrop<'a> {
    released: &'a AtomicU64,
    bytes: u64,
}

impl Drop for ReleasedOnDrop<'_> {
    fn drop(&mut self) {
        self.released.fetch_add(self.bytes, Ordering::Relaxed);
    }
}

/// Answers a connection over its address's cap with 503 (plain HTTP only; a TLS
/// connection is closed before its handshake) and closes it.
async fn refuse_connection(mut stream: tokio::net::TcpStream, plain: bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if !plain {
        return;
    }
    let body = "too many connections from your address; try again later\n";
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        fault::BUSY_RETRY_AFTER_SECS,
        body.len()
    );
    let bounded = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Read a little of what the client sent, so closing does not reset the
        // connection before the client has read the answer.
        let mut sink = [0u8; 16 * 1024];
        let mut read = 0;
        while read < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                count => read += count,
            }
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), bounded).await;
}

/// Has glibc map every allocation over 128 KiB (request bodies in memory, read
/// buffers) on its own and unmap it when freed. By default glibc raises that threshold
/// to the largest block freed so far (up to 32 MiB), so after the first 1 MiB body
/// every body came from the heaps of the worker threads, where freed bodies stayed:
/// 80 unauthenticated 1 MB bodies raised the peak by 98 MB with a budget of 48 MiB.
fn keep_large_buffers_out_of_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a glibc tuning parameter; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

/// Gives freed heap memory back to the system after bursts: glibc keeps what many
/// bodies in memory used (1,500 unauthenticated 1 MB bodies left 1.8 GB resident).
async fn give_back_memory(state: Arc<AppState>) {
    const AFTER_BYTES: u64 = 32 << 20;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // Once more on the tick after a trim, for what the end of the burst freed since.
    let mut again = false;
    loop {
        tick.tick().await;
        let released = state.released_bytes.swap(0, Ordering::Relaxed);
        if released < AFTER_BYTES && !std::mem::take(&mut again) {
            state.released_bytes.fetch_add(released, Ordering::Relaxed);
            continue;
        }
        again = released >= AFTER_BYTES;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        let _ = tokio::task::spawn_blocking(|| {
            // SAFETY: malloc_trim only walks glibc's own arenas; it takes their locks.
            unsafe { libc::malloc_trim(0) }
        })
        .await;
    }
}

/// How much of a refused request body is still read, and discarded, before the refusal is sent.
const DRAIN_MAX_BYTES: u64 = 16 << 20;
const DRAIN_MAX_TIME: Duration = Duration::from_secs(5);

/// Whether the client waits for `100 Continue` before sending its body; such a client
/// reads a refusal without sending the body, so nothing needs draining.
fn expects_continue(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(hyper::header::EXPECT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("100-continue"))
}

/// Reads and discards what is left of a refused body, within bounds. A connection
/// closed with request bytes still unread is reset by TCP, and the client then loses
/// the refusal already sent (it sees a broken pipe instead of the 413 fault).
/// Past the bounds the connection is closed anyway.
async fn drain(body: &mut Incoming) {
    let deadline = tokio::time::Instant::now() + DRAIN_MAX_TIME;
    let mut drained = 0u64;
    while drained <= DRAIN_MAX_BYTES {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    drained += data.len() as u64;
                }
            }
            _ => break,
        }
    }
}

/// `GET /api/v1/receipts/{id}`: the sender (HTTP Basic klantcode:autorisatiesleutel) asks what happened.
fn receipt(
    state: &AppState,
    request: &Request<Incoming>,
    id: &str,
    peer: SocketAddr,
) -> Result<Reply, ApiError> {
    let Some((klantcode, key)) = basic_credentials(request) else {
        return Err(ApiError::NoCredentials);
    };
    let limiter = &state.intake.auth_limit;
    let attempt = Attempt {
        api: Api::Receipts,
        klantcode: Some(&klantcode),
        address: Some(peer.ip()),
    };
    if limiter.is_locked(&attempt) {
        return Err(ApiError::BadCredentials);
    }
    let result = state.intake.store.read(|connection| {
        let Some(client_id) =
            crate::store::admin::authenticate_client(connection, &klantcode, &key)?
        else {
            return Ok(Err(StatusCode::UNAUTHORIZED));
        };
        match crate::store::intake::load_receipt(connection, id)? {
            Some((owner, json)) if owner == client_id => Ok(Ok(json)),
            _ => Ok(Err(StatusCode::NOT_FOUND)),
        }
    });
    match result {
        Ok(Ok(json)) => Ok(json_reply(StatusCode::OK, json)),
        Ok(Err(StatusCode::UNAUTHORIZED)) => {
            limiter.record_failure(&attempt);
            Err(ApiError::BadCredentials)
        }
        Ok(Err(_)) => Err(ApiError::NoReceipt),
        Err(error) => {
            tracing::error!(%error, "cannot read a receipt");
            Err(ApiError::Internal("quote the request id to the operator"))
        }
    }
}

fn basic_credentials(request: &Request<Incoming>) -> Option<(String, String)> {
    use base64::Engine;
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// `DELETE /api/v1/admin/schools/{school}/leerlingen/{leerlingid}` (or `…/leerlingen?eckid=…`):
/// erasure of one learner with the admin token (`governance::erase`, as `leerlingen erase`).
async fn admin_erase(
    state: &AppState,
    headers: &hyper::HeaderMap,
    peer: SocketAddr,
    rest: &str,
    query: &str,
) -> Result<Reply, ApiError> {
    check_admin_token(state, headers, peer)?;
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .map(|text| text.into_owned())
    };
    let eckid = form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "eckid")
        .map(|(_, value)| value.into_owned());
    let parts: Vec<&str> = rest.split('/').collect();
    let (school, leerlingid) = match (parts.as_slice(), &eckid) {
        ([school, "leerlingen", leerlingid], None) => (decode(school), Some(decode(leerlingid))),
        ([school, "leerlingen"], Some(_)) => (decode(school), None),
        _ => return Err(ApiError::NotFound),
    };
    let (Ok(school), Ok(leerlingid)) = (school, leerlingid.transpose()) else {
        return Err(ApiError::BadRequest("the path is not UTF-8".into()));
    };
    let Ok(school) = crate::domain::SchoolCode::parse(&school) else {
        return Err(ApiError::BadRequest(format!(
            "{school} is not a school code"
        )));
    };
    let config = state.config.clone();
    let store = state.intake.store.clone();
    let erased = tokio::task::spawn_blocking(move || {
        let keyring = crate::secret::Keyring::load(&config.secrets_key_source(), false)
            .map_err(|error| error.to_string())?;
        let mapping = config.xapi_mapping().map_err(|error| error.to_string())?;
        let mut connection = store.connect().map_err(|error| error.to_string())?;
        let Some(learner) = crate::store::erasure::find_learner(
            &connection,
            &school,
            leerlingid.as_deref(),
            eckid.as_deref(),
        )
        .map_err(|error| error.to_string())?
        else {
            return Ok(None);
        };
        crate::governance::erase(&mut connection, &keyring, &mapping, &learner, "admin-api")
            .map(Some)
            .map_err(|error| error.to_string())
    })
    .await;
    match erased {
        Ok(Ok(Some(report))) => Ok(json_reply(
            StatusCode::OK,
            serde_json::to_value(&report).unwrap_or_default(),
        )),
        Ok(Ok(None)) => Err(ApiError::NoSuchLeerling),
        Ok(Err(error)) => {
            tracing::error!(%error, "erasure failed");
            Err(ApiError::Internal("nothing was erased"))
        }
        Err(error) => {
            tracing::error!(%error, "erasure failed");
            Err(ApiError::Internal("nothing was erased"))
        }
    }
}

/// The admin bearer token, under the admin API's failed-authentication limit.
fn check_admin_token(
    state: &AppState,
    headers: &hyper::HeaderMap,
    peer: SocketAddr,
) -> Result<(), ApiError> {
    let Some(expected) = state.config.admin_token.as_ref() else {
        return Err(ApiError::AdminOff);
    };
    let limiter = &state.intake.auth_limit;
    let attempt = Attempt {
        api: Api::Admin,
        klantcode: None,
        address: Some(peer.ip()),
    };
    if limiter.is_locked(&attempt) {
        return Err(ApiError::BadAdminToken);
    }
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    let matches: bool = Sha256::digest(presented.as_bytes())
        .ct_eq(&Sha256::digest(expected.expose().as_bytes()))
        .into();
    if !matches {
        limiter.record_failure(&attempt);
        return Err(ApiError::BadAdminToken);
    }
    Ok(())
}

/// `POST /api/v1/admin/leerlingen`: roster import (CSV or leerlinggegevens XML) with the admin token.
async fn admin_import(
    state: &AppState,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Reply, ApiError> {
    check_admin_token(state, request.headers(), peer)?;
    let limited = http_body_util::Limited::new(request.into_body(), 64 << 20);
    let body = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return Err(ApiError::TooLarge(error.to_string())),
    };
    let rows = match crate::roster::parse(&body) {
        Ok(rows) => rows,
        Err(error) => return Err(ApiError::Unprocessable(error.to_string())),
    };
    let imported = state
        .intake
        .store
        .write(
            move |connection| -> Result<(usize, usize), crate::store::StoreError> {
                let savepoint = connection.savepoint()?;
                let imported =
                    crate::store::admin::import_leerlingen(&savepoint, &rows, "admin-api")?;
                let released = crate::bridge::release_quarantine(&savepoint)?;
                savepoint.commit()?;
                Ok((imported, released))
            },
        )
        .await;
    match imported {
        Ok(Ok((imported, released))) => Ok(json_reply(
            StatusCode::OK,
            serde_json::json!({"imported": imported, "released_from_quarantine": released}),
        )),
        Ok(Err(crate::store::StoreError::Invalid(reason))) => Err(ApiError::Unprocessable(reason)),
        Ok(Err(error)) | Err(error) => {
            tracing::error!(%error, "roster import failed");
            Err(ApiError::Internal("nothing was imported"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wsdl_points_at_this_gateway() {
        let wsdl = render_wsdl("http://gw.example:8080/uwlr/leerresultaten");
        assert!(wsdl.contains("location=\"http://gw.example:8080/uwlr/leerresultaten\""));
        assert!(wsdl.contains("schemaLocation=\"http://gw.example:8080/uwlr/leerresultaten?xsd=UWLR_Leerresultaten_v2p2.xsd\""));
        assert!(!wsdl.contains("../xsd/"));
    }
}
