//! TLS to PostgreSQL: `sslmode=require` in the database URL speaks TLS (rustls), trusting the system's roots and the CA certificates of `database_ca_file`, and verifying the server's name; any other mode connects in plain TCP.
//!
//! tokio-postgres knows `disable`, `prefer` (its default) and `require`; with a verifying
//! connector `prefer` would refuse a server whose certificate does not verify instead of
//! falling back, so only `require` turns TLS on, and then always with verification (what
//! libpq calls `verify-full`). The CA file is a process-wide setting, read once.

use crate::store::StoreError;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use tokio_postgres::config::SslMode;

static CA_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
static CONNECTOR: OnceLock<Result<tokio_postgres_rustls::MakeRustlsConnect, String>> =
    OnceLock::new();

/// Sets `database_ca_file` for this process (before the first connection; later calls
/// change nothing).
pub(crate) fn set_ca_file(path: Option<PathBuf>) {
    let _ = CA_FILE.set(path);
}

/// A connected client and the task that drives its socket (on the current runtime).
pub(crate) async fn connect(
    config: &tokio_postgres::Config,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), StoreError> {
    if config.get_ssl_mode() != SslMode::Require {
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        return Ok((client, tokio::spawn(drive(connection))));
    }
    let connector = CONNECTOR
        .get_or_init(connector)
        .clone()
        .map_err(|reason| StoreError::invalid_input("database_ca_file", reason))?;
    let (client, connection) = config.connect(connector).await?;
    Ok((client, tokio::spawn(drive(connection))))
}

async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(error) = connection.await {
        tracing::warn!(error = %super::describe(&error), "PostgreSQL connection ended");
    }
}

/// The rustls connector: the system's roots plus `database_ca_file`'s certificates.
fn connector() -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(Some(path)) = CA_FILE.get() {
        let pem = std::fs::read(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let certificates: Vec<_> = rustls_pki_types::pem::PemObject::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|error| format!("{} is not PEM: {error}", path.display()))?;
        if certificates.is_empty() {
            return Err(format!("{} holds no certificate", path.display()));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|error| format!("{}: {error}", path.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| error.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}
