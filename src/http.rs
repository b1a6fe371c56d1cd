//! The hyper listener: routes, body spooling with limits and timeouts, graceful shutdown.

use crate::auth_limit::{Api, Attempt};
use crate::body::{Body, MEMORY_LIMIT};
use crate::config::Config;
use crate::domain::violation::Violations;
use crate::domain::{Rule, Violation};
use crate::intake::{Intake, Outcome, Received};
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
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let header_timeout = Duration::from_secs(state.config.header_timeout_secs);
    // Each connection holds a permit; at the cap the gateway stops accepting and
    // the kernel's backlog holds new connections until one closes (idle ones close
    // after the header timeout).
    let permits = Arc::new(tokio::sync::Semaphore::new(
        state.config.max_connections.max(1),
    ));
    tokio::pin!(shutdown);
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
                let state = state.clone();
                let service = hyper::service::service_fn(move |request| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(state, request, peer).await) }
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
    let grace = Duration::from_secs(state.config.shutdown_grace_secs);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("shutdown grace period over; closing remaining connections"),
    }
    Ok(())
}

fn respond(reply: Reply, request_id: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", value);
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

fn problem(status: StatusCode, detail: &str) -> Reply {
    Reply {
        status,
        content_type: "application/problem+json",
        body: serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "detail": detail,
        })
        .to_string(),
        receipt_id: None,
    }
}

async fn handle(
    state: Arc<AppState>,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let request_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
    let span = tracing::info_span!("request", request_id = %request_id, method = %request.method(), path = crate::logging::clip(request.uri().path()).as_ref(), %peer);
    if crate::query::owns(request.uri().path()) {
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
        let mut response = respond(answer.reply, &request_id);
        for (name, value) in answer.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        return response;
    }
    let reply = route(&state, request, &request_id, peer)
        .instrument(span)
        .await;
    respond(reply, &request_id)
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

async fn route(
    state: &AppState,
    request: Request<Incoming>,
    request_id: &str,
    peer: SocketAddr,
) -> Reply {
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let method = request.method().clone();
    if path == "/health" {
        return match method {
            Method::GET | Method::HEAD => health(state),
            _ => fault::refusal(&Refusal::MethodNotAllowed),
        };
    }
    if path == state.config.service_path {
        return match method {
            Method::POST => soap_call(state, request, request_id, peer).await,
            Method::GET | Method::HEAD => contract_file(state, &query),
            _ => fault::refusal(&Refusal::MethodNotAllowed),
        };
    }
    if let Some(id) = path.strip_prefix("/api/v1/receipts/") {
        return match method {
            Method::GET => receipt(state, &request, id, peer),
            _ => fault::refusal(&Refusal::MethodNotAllowed),
        };
    }
    if path == "/api/v1/admin/leerlingen" {
        return match method {
            Method::POST => admin_import(state, request, peer).await,
            _ => fault::refusal(&Refusal::MethodNotAllowed),
        };
    }
    if let Some(rest) = path.strip_prefix("/api/v1/admin/schools/") {
        return match method {
            Method::DELETE => admin_erase(state, request, peer, rest, &query).await,
            _ => fault::refusal(&Refusal::MethodNotAllowed),
        };
    }
    fault::refusal(&Refusal::NotFound)
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
            serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}),
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
    if let Some(refusal) = refused {
        if drain_refused {
            drain(&mut body).await;
        }
        return fault::refusal(&refusal);
    }
    let idle = Duration::from_secs(state.config.body_idle_timeout_secs);
    let whole = Duration::from_secs(state.config.body_timeout_secs);
    let received = match spool(body, &state.spool_dir, limit, idle, whole, drain_refused).await {
        Ok(received) => Received {
            peer: Some(peer.ip()),
            ..received
        },
        Err(SpoolError::Refused(refusal)) => {
            tracing::info!(?refusal, "request refused while reading the body");
            return fault::refusal(&refusal);
        }
        Err(SpoolError::Io(error)) => {
            tracing::error!(%error, "cannot spool the request body");
            return fault::internal(request_id);
        }
    };
    if received.size == 0 {
        return fault::rejected(
            &Violations::single(Violation::new(Rule::Bericht, "the request body is empty")),
            None,
        );
    }
    let size = received.size;
    let outcome = state.intake.receive(received).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(Outcome::Accepted {
            receipt_id,
            counts,
            replay,
        }) => {
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
            fault::rejected(&violations, receipt_id.as_deref())
        }
        Err(error) => {
            tracing::error!(error = %error, size, duration_ms, "message failed on our side");
            fault::internal(request_id)
        }
    }
}

enum SpoolError {
    Refused(Refusal),
    Io(std::io::Error),
}

/// Receives the body, hashing it on the way: small bodies stay in memory, a body
/// that grows past `MEMORY_LIMIT` is spooled to a temporary file from then on.
async fn spool(
    mut body: Incoming,
    dir: &std::path::Path,
    limit: u64,
    idle: Duration,
    whole: Duration,
    drain_refused: bool,
) -> Result<Received, SpoolError> {
    let deadline = tokio::time::Instant::now() + whole;
    let mut memory: Vec<u8> = Vec::new();
    let mut file: Option<(std::io::BufWriter<std::fs::File>, tempfile::TempPath)> = None;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let wait_until = deadline.min(tokio::time::Instant::now() + idle);
        let frame = match tokio::time::timeout_at(wait_until, body.frame()).await {
            Err(_) if tokio::time::Instant::now() >= deadline => {
                return Err(SpoolError::Refused(Refusal::IncompleteBody(format!(
                    "the body took longer than {} seconds",
                    whole.as_secs()
                ))))
            }
            Err(_) => {
                return Err(SpoolError::Refused(Refusal::IncompleteBody(format!(
                    "no data for {} seconds",
                    idle.as_secs()
                ))))
            }
            Ok(None) => break,
            Ok(Some(Err(error))) => {
                return Err(SpoolError::Refused(Refusal::IncompleteBody(
                    error.to_string(),
                )))
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        size += data.len() as u64;
        if size > limit {
            if drain_refused {
                drain(&mut body).await;
            }
            return Err(SpoolError::Refused(Refusal::TooLarge(limit)));
        }
        hasher.update(&data);
        match file.as_mut() {
            Some((writer, _)) => writer.write_all(&data).map_err(SpoolError::Io)?,
            None if memory.len() + data.len() <= MEMORY_LIMIT => memory.extend_from_slice(&data),
            None => {
                let spooled = tempfile::Builder::new()
                    .prefix("body-")
                    .tempfile_in(dir)
                    .map_err(SpoolError::Io)?;
                let (handle, path) = spooled.into_parts();
                let mut writer = std::io::BufWriter::with_capacity(256 * 1024, handle);
                writer.write_all(&memory).map_err(SpoolError::Io)?;
                writer.write_all(&data).map_err(SpoolError::Io)?;
                memory = Vec::new();
                file = Some((writer, path));
            }
        }
    }
    let body = match file {
        Some((mut writer, path)) => {
            writer.flush().map_err(SpoolError::Io)?;
            Body::File(Arc::new(path))
        }
        None => Body::Memory(Bytes::from(memory)),
    };
    Ok(Received {
        body,
        size,
        sha256: hex::encode(hasher.finalize()),
        peer: None,
    })
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
fn receipt(state: &AppState, request: &Request<Incoming>, id: &str, peer: SocketAddr) -> Reply {
    let Some((klantcode, key)) = basic_credentials(request) else {
        let mut reply = problem(
            StatusCode::UNAUTHORIZED,
            "send HTTP Basic credentials: klantcode and autorisatiesleutel",
        );
        reply.receipt_id = None;
        return reply;
    };
    let limiter = &state.intake.auth_limit;
    let attempt = Attempt {
        api: Api::Receipts,
        klantcode: Some(&klantcode),
        address: Some(peer.ip()),
    };
    if limiter.is_locked(&attempt) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "klantcode or autorisatiesleutel is not valid",
        );
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
        Ok(Ok(json)) => json_reply(StatusCode::OK, json),
        Ok(Err(StatusCode::UNAUTHORIZED)) => {
            limiter.record_failure(&attempt);
            problem(
                StatusCode::UNAUTHORIZED,
                "klantcode or autorisatiesleutel is not valid",
            )
        }
        Ok(Err(status)) => problem(status, "no receipt with that id for this client"),
        Err(error) => {
            tracing::error!(%error, "cannot read a receipt");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
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
    request: Request<Incoming>,
    peer: SocketAddr,
    rest: &str,
    query: &str,
) -> Reply {
    if let Err(refused) = admin_authorized(state, &request, peer) {
        return refused;
    }
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
        _ => return problem(
            StatusCode::NOT_FOUND,
            "use /api/v1/admin/schools/{school}/leerlingen/{leerlingid} or …/leerlingen?eckid=…",
        ),
    };
    let (Ok(school), Ok(leerlingid)) = (school, leerlingid.transpose()) else {
        return problem(StatusCode::BAD_REQUEST, "the path is not UTF-8");
    };
    let Ok(school) = crate::domain::SchoolCode::parse(&school) else {
        return problem(StatusCode::BAD_REQUEST, "not a school code");
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
        Ok(Ok(Some(report))) => json_reply(
            StatusCode::OK,
            serde_json::to_value(&report).unwrap_or_default(),
        ),
        Ok(Ok(None)) => problem(
            StatusCode::NOT_FOUND,
            "the school holds nothing about that leerling",
        ),
        Ok(Err(error)) => {
            tracing::error!(%error, "erasure failed");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; nothing was erased",
            )
        }
        Err(error) => {
            tracing::error!(%error, "erasure failed");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; nothing was erased",
            )
        }
    }
}

/// Checks the admin bearer token (with the failed-authentication limiter); the refusal otherwise.
fn admin_authorized(
    state: &AppState,
    request: &Request<Incoming>,
    peer: SocketAddr,
) -> Result<(), Reply> {
    let Some(expected) = state.config.admin_token.as_ref() else {
        return Err(problem(
            StatusCode::NOT_FOUND,
            "the admin API is off: set admin_token in the configuration",
        ));
    };
    let limiter = &state.intake.auth_limit;
    let attempt = Attempt {
        api: Api::Admin,
        klantcode: None,
        address: Some(peer.ip()),
    };
    if limiter.is_locked(&attempt) {
        return Err(problem(
            StatusCode::UNAUTHORIZED,
            "a valid admin bearer token is required",
        ));
    }
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    let matches: bool = Sha256::digest(presented.as_bytes())
        .ct_eq(&Sha256::digest(expected.expose().as_bytes()))
        .into();
    if !matches {
        limiter.record_failure(&attempt);
        return Err(problem(
            StatusCode::UNAUTHORIZED,
            "a valid admin bearer token is required",
        ));
    }
    Ok(())
}

/// `POST /api/v1/admin/leerlingen`: roster import (CSV or leerlinggegevens XML) with the admin token.
async fn admin_import(state: &AppState, request: Request<Incoming>, peer: SocketAddr) -> Reply {
    if let Err(refused) = admin_authorized(state, &request, peer) {
        return refused;
    }
    let limited = http_body_util::Limited::new(request.into_body(), 64 << 20);
    let body = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("cannot read the roster: {error}"),
            )
        }
    };
    let rows = match crate::roster::parse(&body) {
        Ok(rows) => rows,
        Err(error) => return problem(StatusCode::UNPROCESSABLE_ENTITY, &error.to_string()),
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
        Ok(Ok((imported, released))) => json_reply(
            StatusCode::OK,
            serde_json::json!({"imported": imported, "released_from_quarantine": released}),
        ),
        Ok(Err(crate::store::StoreError::Invalid(reason))) => {
            problem(StatusCode::UNPROCESSABLE_ENTITY, &reason)
        }
        Ok(Err(error)) | Err(error) => {
            tracing::error!(%error, "roster import failed");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; nothing was imported",
            )
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
