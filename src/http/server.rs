//! The listener: plain or TLS connections within the connection limits, and graceful shutdown.

use super::AppState;
use crate::soap::fault;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Builds the TLS acceptor from PEM files: the certificate chain and its private key.
pub(crate) fn tls_acceptor(
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
pub(crate) enum Surface {
    /// `listen`: the SOAP service, the read and admin APIs, and the operators' resources
    /// (`/metrics` and the status data behind the admin token).
    Main,
    /// `metrics_listen`: only `/metrics`, `/status`, `/ready` and `/health`, without a token
    /// (a private address an operator's Prometheus scrapes).
    Operations,
}

/// Accepts connections until `shutdown` resolves, then lets in-flight requests finish
/// within the configured grace period.
pub(crate) async fn serve(
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
                    async move { Ok::<_, Infallible>(super::routes::handle(state, request, peer, surface).await) }
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
