//! The HTTP side of the gateway: the listener, body spooling, routing, and the resources besides the read API.
//!
//! `server` accepts connections (TLS, limits, graceful shutdown), `routes` dispatches by
//! method and path, `body` receives and spools request bodies, `soap` is the SOAP
//! endpoint, `receipts`, `admin` and `operations` the other resources. Every HTTP error
//! outside the SOAP service path is rendered by `query::problem`.

mod admin;
pub(crate) mod body;
mod operations;
mod receipts;
mod routes;
mod server;
mod soap;

pub(crate) use server::{serve, tls_acceptor, Surface};
pub(crate) use soap::render_wsdl;

use crate::budget::Budget;
use crate::config::Config;
use crate::intake::Intake;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Everything a request handler needs.
pub(crate) struct AppState {
    pub(crate) config: Config,
    pub(crate) intake: Intake,
    /// The WSDL with `soap:address` and schema locations pointing at this gateway.
    pub(crate) wsdl: String,
    pub(crate) endpoint_url: String,
    pub(crate) spool_dir: PathBuf,
    /// What the read API takes from the configuration (xAPI authority, CORS, profile).
    pub(crate) read: crate::query::ReadSettings,
    /// Open connections per source address (the total is the listener's semaphore).
    pub(crate) connections: Arc<Budget>,
    /// Bytes of bodies whose sender is not yet authenticated (held in memory only).
    pub(crate) preauth_memory: Arc<Budget>,
    /// Bytes of spooled bodies on disk, in total and per source address.
    pub(crate) spool_space: Arc<Budget>,
    /// Body bytes released since memory was last given back to the system.
    released_bytes: AtomicU64,
    /// Long prefixes identified at once on the blocking pool: more would only add
    /// threads (each with its stack and malloc arena), not throughput.
    identify_slots: tokio::sync::Semaphore,
}

impl AppState {
    pub(crate) fn new(
        config: Config,
        intake: Intake,
        local: SocketAddr,
    ) -> std::io::Result<AppState> {
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
