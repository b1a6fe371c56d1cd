//! `serve`: build the application, print where it listens, run it until a signal.

use crate::app::Application;
use crate::config::Config;
use anyhow::Result;
use std::process::ExitCode;

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

fn serve(config: Config, demo: bool) -> Result<ExitCode> {
    crate::logging::init(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .build()?;
    runtime.block_on(async move {
        let application = Application::build(config.clone()).await?;
        if demo {
            application.seed_demo()?;
        }
        // The handlers are armed before the gateway says it is ready: a SIGTERM right after
        // the announcement must drain, not kill by the signal's default action.
        let shutdown = shutdown_signal()?;
        announce(&application, &config, demo)?;
        application.run(shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Prints where the gateway listens (the test harness reads the port from the first line)
/// and tells the service manager it is ready: requests arriving now queue on the socket.
fn announce(application: &Application, config: &Config, demo: bool) -> Result<()> {
    let addresses = application.addresses()?;
    let scheme = application.scheme();
    let endpoint = application.endpoint_url();
    println!("uwlr-gateway listening on {scheme}://{}", addresses.main);
    println!("SOAP endpoint {endpoint}  (WSDL: {endpoint}?wsdl)");
    println!("database {}", application.database_location());
    if let Some(operations) = addresses.operations {
        println!("metrics listening on http://{operations}  (/metrics, /status, /ready, /health)");
    }
    if demo {
        print_demo_help(endpoint);
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // systemd's Type=notify. Without NOTIFY_SOCKET this does nothing.
    let status = format!("STATUS=listening on {scheme}://{}", addresses.main);
    if let Err(error) = sd_notify::notify(
        false,
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Custom(&status),
        ],
    ) {
        tracing::warn!(%error, "cannot tell the service manager that the gateway is ready");
    }
    if config.xapi_base_iri == crate::config::DEFAULT_XAPI_BASE_IRI {
        tracing::warn!(base_iri = %config.xapi_base_iri, "xapi_base_iri is the placeholder; set it to a domain you control before publishing to a real LRS");
    }
    Ok(())
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

/// Registers SIGINT and SIGTERM now and returns the future that resolves on either.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested");
        // systemd shows the unit as deactivating while requests drain.
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    })
}
