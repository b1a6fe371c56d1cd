//! `serve`: build the application, print where it listens, run it until a signal.

use super::{load_keyring, open_store};
use crate::config::Config;
use crate::intake::{Intake, IntakeConfig};
use crate::vdex::Vocabularies;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `serve`: `listen` overrides the configured address.
pub(super) fn run(
    mut config: Config,
    listen: Option<std::net::SocketAddr>,
    demo: bool,
) -> Result<ExitCode> {
    if let Some(listen) = listen {
        config.listen = listen;
    }
    serve(config, demo)
}

fn contract_dir(config: &Config) -> PathBuf {
    config.data_dir.join("contract")
}

fn serve(config: Config, demo: bool) -> Result<ExitCode> {
    crate::logging::init(config.log_format);
    let store = open_store(&config)?;
    if demo {
        crate::demo::seed(&store.connect()?).context("cannot seed the demo data")?;
    }
    let keyring = Arc::new(load_keyring(&config, true)?);
    // Seals what an older database holds in clear (and what an older key sealed) before delivery starts.
    let outcome = crate::store::outbox::reseal_secrets(&store.connect()?, &keyring)
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
    let schemas = crate::schema::prepare(&contract_dir(&config), config.schema_dir.as_deref())?;
    let vocabularies = Vocabularies::load(config.vdex_dir.as_deref())?;
    let mapping = crate::bridge::ids::prepare(&store.connect()?, &keyring, config.xapi_mapping()?)
        .context("cannot start the xAPI bridge")?;
    let intake = Intake {
        store: store.clone(),
        schemas,
        vocabularies: Arc::new(vocabularies),
        config: Arc::new(IntakeConfig {
            xsd_versions: config.xsd_versions.clone(),
            unknown_leerling: config.unknown_leerling,
            aanmaakdatum_max_skew: config.aanmaakdatum_max_skew(),
            clock: crate::clock::Clock::System,
        }),
        auth_limit: Arc::new(config.auth_limiter()),
    };
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(crate::http::tls_acceptor(cert, key)?),
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local = listener.local_addr()?;
        let state = Arc::new(crate::http::AppState::new(config.clone(), intake, local)?);
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("uwlr-gateway listening on {scheme}://{local}");
        println!("SOAP endpoint {}  (WSDL: {}?wsdl)", state.endpoint_url, state.endpoint_url);
        println!("database {}", store.path().display());
        let operations_listener = match config.metrics_listen {
            Some(address) => {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address} (metrics_listen)"))?;
                println!(
                    "metrics listening on http://{}  (/metrics, /status, /ready, /health)",
                    listener.local_addr()?
                );
                Some(listener)
            }
            None => None,
        };
        if demo {
            print_demo_help(&state.endpoint_url);
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // systemd's Type=notify: ready once the listener is bound and the state is built
        // (requests arriving now queue on the socket). Without NOTIFY_SOCKET this does nothing.
        let status = format!("STATUS=listening on {scheme}://{local}");
        if let Err(error) = sd_notify::notify(
            false,
            &[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Custom(&status)],
        ) {
            tracing::warn!(%error, "cannot tell the service manager that the gateway is ready");
        }
        if config.xapi_base_iri == crate::config::DEFAULT_XAPI_BASE_IRI {
            tracing::warn!(base_iri = %config.xapi_base_iri, "xapi_base_iri is the placeholder; set it to a domain you control before publishing to a real LRS");
        }
        let (stop_outbox, outbox_stopped) = tokio::sync::watch::channel(false);
        let mapping = Arc::new(mapping);
        let publisher = tokio::spawn(crate::bridge::run_publisher(
            store.clone(),
            mapping.clone(),
            config.outbox().poll_interval,
            std::time::Duration::from_millis(config.xapi_publish_pause_ms),
            outbox_stopped.clone(),
        ));
        let purge = tokio::spawn(crate::governance::run_purge(
            store.clone(),
            crate::store::retention::RetentionSettings::from_config(&config),
            std::time::Duration::from_secs(config.purge_interval_secs),
            outbox_stopped.clone(),
        ));
        let outbox = tokio::spawn(crate::bridge::outbox::run(
            store.clone(),
            mapping,
            keyring,
            config.outbox(),
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
                crate::http::Surface::Operations,
                async move {
                    let _ = operations_stopped.changed().await;
                },
            ))
        });
        crate::http::serve(
            state,
            listener,
            tls,
            crate::http::Surface::Main,
            shutdown_signal(),
        )
        .await?;
        let _ = stop_operations.send(true);
        if let Some(operations) = operations {
            let _ = operations.await;
        }
        sampler.abort();
        // Requests are done: stop publishing and delivery, then the writer.
        let _ = stop_outbox.send(true);
        let _ = publisher.await;
        let _ = purge.await;
        let _ = outbox.await;
        store.close();
        tracing::info!("stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn print_demo_help(endpoint: &str) {
    println!(
        "demo data: client {} ({}), key {}, school {} with leerlingen LL0001..LL0020",
        crate::demo::KLANTCODE,
        crate::demo::KLANTNAAM,
        crate::demo::AUTORISATIESLEUTEL,
        crate::demo::SCHOOL
    );
    println!("send a sample:");
    println!(
        "  curl -s -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: \"BrengLeerresultaten\"' --data-binary @samples/01-drip-een-resultaat.xml {endpoint}"
    );
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
    // systemd shows the unit as deactivating while requests drain.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}
