//! The application: one constructor that opens everything `serve` runs, and one run loop that drains it.
//!
//! `Application::build` opens the store (and its writer threads), the secrets keyring,
//! the schemas, vocabularies and xAPI mapping, and binds the listeners, so a caller can
//! read the bound addresses (port 0 allowed) before anything is served.
//! `Application::run` starts the publisher, the purge, the delivery worker and the status
//! sampler, serves until the shutdown future resolves, then drains in order: requests,
//! the operations listener, publishing and delivery, and last the writers.
//! `serve`, the in-process tests and anything embedding the gateway start this same thing.

use crate::config::Config;
use crate::http::{AppState, Surface};
use crate::intake::{Intake, IntakeConfig};
use crate::secret::Keyring;
use crate::store::Store;
use crate::vdex::Vocabularies;
use anyhow::{Context, Result};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A built gateway: store open, listeners bound, nothing served yet.
pub(crate) struct Application {
    store: Store,
    state: Arc<AppState>,
    keyring: Arc<Keyring>,
    mapping: Arc<crate::bridge::Mapping>,
    listener: TcpListener,
    /// `metrics_listen`, when configured: `/metrics`, `/status`, `/ready`, `/health` without a token.
    operations_listener: Option<TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// The addresses an application listens on, as bound (a configured port 0 is the real port here).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Addresses {
    /// The SOAP service and the read and admin APIs.
    pub(crate) main: SocketAddr,
    /// The operations listener, when `metrics_listen` is set.
    pub(crate) operations: Option<SocketAddr>,
}

impl Application {
    /// Opens the data dir (creating it when missing), the keyring, the contract and the
    /// bridge, and binds the listeners. Must be called inside a Tokio runtime.
    pub(crate) async fn build(config: Config) -> Result<Application> {
        require_shared_key(&config)?;
        let store = match config.store {
            crate::store::Engine::Postgres => {
                // The data dir holds only this instance's local files on PostgreSQL (the
                // contract it publishes); the data is in the database.
                crate::store::create_private_dir(&config.data_dir).with_context(|| {
                    format!("cannot create the data dir {}", config.data_dir.display())
                })?;
                crate::cli::open_postgres_pool(&config, config.database_pool_size as usize)?
            }
            crate::store::Engine::Sqlite => Store::open_serving(
                &config.data_dir,
                config.durability,
                config.wal_restart_mib << 20,
            )
            .with_context(|| {
                format!("cannot open the database in {}", config.data_dir.display())
            })?,
        };
        let keyring = Arc::new(load_keyring(&config, true)?);
        reseal_stored_secrets(&store, &keyring)?;
        let schemas = crate::schema::prepare(&contract_dir(&config), config.schema_dir.as_deref())?;
        let vocabularies = Vocabularies::load(config.vdex_dir.as_deref())?;
        let mapping = crate::bridge::ids::prepare(&store, &keyring, config.xapi_mapping()?)
            .context("cannot start the xAPI bridge")?;
        let intake = Intake {
            store: store.clone(),
            schemas,
            vocabularies: Arc::new(vocabularies),
            config: Arc::new(IntakeConfig {
                xsd_versions: config.xsd_versions.clone(),
                unknown_leerling: config.unknown_leerling,
                aanmaakdatum_max_skew: config.aanmaakdatum_max_skew(),
                clock: crate::domain::Clock::System,
            }),
            auth_limit: Arc::new(config.auth_limiter()),
        };
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(crate::http::tls_acceptor(cert, key)?),
            _ => None,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let operations_listener = match config.metrics_listen {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address} (metrics_listen)"))?,
            ),
            None => None,
        };
        let local = listener.local_addr()?;
        let state = Arc::new(AppState::new(config, intake, local)?);
        Ok(Application {
            store,
            state,
            keyring,
            mapping: Arc::new(mapping),
            listener,
            operations_listener,
            tls,
        })
    }

    /// Seeds the demo client, school and learners that samples/ uses (`serve --demo`).
    pub(crate) fn seed_demo(&self) -> Result<()> {
        crate::demo::seed(&self.store).context("cannot seed the demo data")
    }

    /// The bound addresses.
    pub(crate) fn addresses(&self) -> Result<Addresses> {
        Ok(Addresses {
            main: self.local_addr()?,
            operations: self
                .operations_listener
                .as_ref()
                .map(TcpListener::local_addr)
                .transpose()?,
        })
    }

    /// The bound address of the main listener.
    pub(crate) fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// `https` with a TLS certificate configured, else `http`.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The SOAP endpoint as senders reach it (`public_url`, or the bound address).
    pub(crate) fn endpoint_url(&self) -> &str {
        &self.state.endpoint_url
    }

    /// The core database file.
    /// Where the data lives: the core database file, or the redacted PostgreSQL URL.
    pub(crate) fn database_location(&self) -> String {
        self.store.location()
    }

    /// Serves until `shutdown` resolves, then lets requests finish, stops publishing,
    /// purging and delivery, and closes the writers.
    pub(crate) async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let Application {
            store,
            state,
            keyring,
            mapping,
            listener,
            operations_listener,
            tls,
        } = self;
        let config = &state.config;
        let (stop_outbox, outbox_stopped) = tokio::sync::watch::channel(false);
        let background = tokio::spawn(run_background(
            Background {
                store: store.clone(),
                mapping,
                keyring,
                config: config.clone(),
            },
            outbox_stopped,
        ));
        let sampler = tokio::spawn(crate::status::run_sampler(
            store.clone(),
            state.intake.auth_limit.clone(),
        ));
        let (stop_operations, mut operations_stopped) = tokio::sync::watch::channel(false);
        let operations = operations_listener.map(|listener| {
            tokio::spawn(crate::http::serve(
                state.clone(),
                listener,
                None,
                Surface::Operations,
                async move {
                    let _ = operations_stopped.changed().await;
                },
            ))
        });
        crate::http::serve(state, listener, tls, Surface::Main, shutdown).await?;
        let _ = stop_operations.send(true);
        if let Some(operations) = operations {
            let _ = operations.await;
        }
        sampler.abort();
        // Requests are done: stop publishing and delivery, then the writer.
        let _ = stop_outbox.send(true);
        let _ = background.await;
        store.release_background_lease();
        store.close();
        tracing::info!("stopped");
        Ok(())
    }
}

/// What the background work needs: the work one instance at a time may do.
struct Background {
    store: Store,
    mapping: Arc<crate::bridge::Mapping>,
    keyring: Arc<Keyring>,
    config: Config,
}

/// How often an instance without the background lease asks for it, and one with it checks
/// it still holds it: a dead holder is replaced within about this long.
const LEASE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the publisher, the purge and the delivery worker while this instance holds the
/// background lease (always on SQLite; on PostgreSQL one instance at a time), stops them
/// when the lease is lost, and waits for it again; until `stop` turns true.
async fn run_background(work: Background, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match work.store.hold_background_lease().await {
            Ok(true) => {
                tracing::info!("this instance runs the publisher, delivery and purge");
                if run_leased(&work, &mut stop).await {
                    return;
                }
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "cannot ask for the background lease"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(LEASE_CHECK) => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// The leased work until `stop` (returns true) or the lease is lost (false).
async fn run_leased(work: &Background, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    let config = &work.config;
    let (stop_tasks, tasks_stopped) = tokio::sync::watch::channel(false);
    let publisher = tokio::spawn(crate::bridge::run_publisher(
        work.store.clone(),
        work.mapping.clone(),
        config.delivery().poll_interval,
        std::time::Duration::from_millis(config.xapi_publish_pause_ms),
        tasks_stopped.clone(),
    ));
    let purge = tokio::spawn(crate::governance::run_purge(
        work.store.clone(),
        crate::store::retention::RetentionSettings::from_config(config),
        std::time::Duration::from_secs(config.purge_interval_secs),
        tasks_stopped.clone(),
    ));
    let outbox = tokio::spawn(crate::bridge::delivery::run(
        work.store.clone(),
        work.mapping.clone(),
        work.keyring.clone(),
        config.delivery(),
        tasks_stopped,
    ));
    let stopping = loop {
        tokio::select! {
            _ = stop.changed() => {}
            () = tokio::time::sleep(LEASE_CHECK) => {}
        }
        if *stop.borrow() {
            break true;
        }
        if !matches!(work.store.hold_background_lease().await, Ok(true)) {
            tracing::warn!(
                "the background lease is lost: stopping the publisher, delivery and purge"
            );
            break false;
        }
    };
    let _ = stop_tasks.send(true);
    let _ = publisher.await;
    let _ = purge.await;
    let _ = outbox.await;
    stopping
}

/// Opens the data dir of `config`, creating it when missing: `serve` and `init` only.
pub(crate) fn open_store(config: &Config) -> Result<Store> {
    if config.store == crate::store::Engine::Postgres {
        return crate::cli::open_postgres(config);
    }
    Store::open(
        &config.data_dir,
        config.durability,
        config.wal_restart_mib << 20,
    )
    .with_context(|| format!("cannot open the database in {}", config.data_dir.display()))
}

/// The keys that seal stored secrets; `create` makes the data dir's default key file when missing.
///
/// On PostgreSQL the key must be configured (`secrets_key` or `secrets_key_file`): every
/// instance seals and opens the same stored secrets, so none may make a key of its own.
pub(crate) fn load_keyring(config: &Config, create: bool) -> Result<Keyring> {
    require_shared_key(config)?;
    Ok(Keyring::load(&config.secrets_key_source(), create)?)
}

/// On PostgreSQL the secrets key must be configured (see `load_keyring`).
fn require_shared_key(config: &Config) -> Result<()> {
    if config.store == crate::store::Engine::Postgres
        && config.secrets_key.is_none()
        && config.secrets_key_file.is_none()
    {
        anyhow::bail!("store = \"postgres\" needs secrets_key_file or UWLR_SECRETS_KEY: every instance must seal and open stored secrets with the same key, so none is made in a data dir");
    }
    Ok(())
}

/// Where `serve` writes the contract (the WSDL's schemas) it publishes.
fn contract_dir(config: &Config) -> PathBuf {
    config.data_dir.join("contract")
}

/// Seals what an older database holds in clear (and what an older key sealed) before delivery starts.
fn reseal_stored_secrets(store: &Store, keyring: &Keyring) -> Result<()> {
    let outcome = store
        .on_side_connection(|connection| crate::store::outbox::reseal_secrets(connection, keyring))
        .context("cannot seal the stored LRS secrets")?;
    if outcome.resealed > 0 {
        tracing::info!(
            resealed = outcome.resealed,
            "stored LRS secrets sealed under the current key"
        );
    }
    for error in &outcome.unopened {
        // The intake runs on; only delivery to that LRS waits for the right key (logged again by the worker).
        tracing::error!(%error, "a stored LRS secret does not open with the configured secrets key");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Application;
    use crate::config::Config;

    /// The application runs in-process: built on port 0 in a fresh data dir, it answers one
    /// demo message over real HTTP with a bevestiging, drains on shutdown, and the afname is stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn builds_on_port_zero_stores_a_message_and_drains() -> anyhow::Result<()> {
        let data_dir = tempfile::tempdir()?;
        let config = Config {
            data_dir: data_dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse()?,
            ..Config::default()
        };
        let application = Application::build(config).await?;
        application.seed_demo()?;
        let address = application.local_addr()?;
        assert_ne!(address.port(), 0, "the bound port is reported");
        let endpoint = application.endpoint_url().to_string();
        assert!(endpoint.contains(&address.to_string()), "{endpoint}");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(application.run(async {
            let _ = stopped.await;
        }));

        let message = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("samples/01-drip-een-resultaat.xml"),
        )?;
        let answer = reqwest::Client::new()
            .post(&endpoint)
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", "\"BrengLeerresultaten\"")
            .body(message)
            .send()
            .await?;
        let status = answer.status();
        let text = answer.text().await?;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("leerresultaten_bevestiging"), "{text}");

        let _ = stop.send(());
        tokio::time::timeout(std::time::Duration::from_secs(30), running).await???;

        let connection =
            crate::store::db::Db::owned_sqlite(crate::store::open_read_only(data_dir.path())?);
        let school =
            crate::domain::SchoolCode::parse(crate::demo::SCHOOL).map_err(anyhow::Error::msg)?;
        let learner =
            crate::store::erasure::find_learner(&connection, &school, Some("LL0001"), None)?
                .expect("the demo learner");
        let document =
            crate::store::access_request::export(&connection, &learner, "2026-12-02T00:00:00Z")?;
        assert_eq!(
            document["toetsafnames"].as_array().map_or(0, Vec::len),
            1,
            "{document:#}"
        );
        Ok(())
    }
}
