//! The operators' view: the sampler that feeds `metrics`, readiness (`/ready`), and the `/status` page with its data.

use std::sync::{Arc, OnceLock};

use crate::metrics::{metrics, LrsState, StoreState, SAMPLE_INTERVAL};
use crate::query::problem::ApiError;
use crate::store::{Store, StoreError};

/// uPlot 1.6.32 from npm `uplot` (MIT, see `uPlot.LICENSE`), vendored so the page works offline.
const UPLOT_JS: &str = include_str!("uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("uPlot.min.css");
const PAGE: &str = include_str!("status.html");
const APP_JS: &str = include_str!("status.js");

/// Rows in each of the page's tables.
const TABLE_ROWS: usize = 20;

/// The status page: one self-contained HTML document (chart library, styles and script inline).
pub(crate) fn page() -> &'static str {
    static PAGE_HTML: OnceLock<String> = OnceLock::new();
    PAGE_HTML.get_or_init(|| {
        PAGE.replace("/*UPLOT_CSS*/", UPLOT_CSS)
            .replace("/*UPLOT_JS*/", UPLOT_JS)
            .replace("/*APP_JS*/", APP_JS)
    })
}

/// Samples the store's state every `SAMPLE_INTERVAL` into `metrics()`, until the task is aborted.
pub(crate) async fn run_sampler(store: Store, auth_limit: Arc<crate::auth_limit::AuthLimiter>) {
    let mut interval = tokio::time::interval(SAMPLE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let reader = store.clone();
        match tokio::task::spawn_blocking(move || read_state(&reader)).await {
            Ok(Ok(state)) => {
                metrics().auth_stats(&auth_limit.stats());
                metrics().sample(&state, chrono::Utc::now().timestamp());
            }
            Ok(Err(error)) => tracing::warn!(%error, "cannot sample the store's state"),
            Err(error) => tracing::warn!(%error, "the sampler failed"),
        }
    }
}

/// WAL sizes, the publisher's position and each LRS's delivery state.
pub(crate) fn read_state(store: &Store) -> Result<StoreState, StoreError> {
    let wal = |path: std::path::PathBuf| std::fs::metadata(path).map_or(0, |meta| meta.len());
    let (core_wal, xapi_wal) = match store.path() {
        Some(core) => {
            let mut core_wal = core.as_os_str().to_owned();
            core_wal.push("-wal");
            (core_wal.into(), core.with_file_name("xapi.sqlite-wal"))
        }
        // PostgreSQL: no WAL files of ours (the server's are its operators' to watch).
        None => (std::path::PathBuf::new(), std::path::PathBuf::new()),
    };
    let now = chrono::Utc::now();
    store.read(|connection| {
        let (publisher_cursor, change_end) = crate::store::outbox::publisher_progress(connection)?;
        let lrs = crate::store::outbox::outbox_status(connection)?
            .into_iter()
            .map(|row| LrsState {
                lag_secs: row
                    .oldest_pending_stored_at
                    .as_deref()
                    .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                    .map_or(0.0, |at| {
                        (now - at.with_timezone(&chrono::Utc))
                            .num_milliseconds()
                            .max(0) as f64
                            / 1000.0
                    }),
                last_error_class: crate::metrics::error_class(
                    row.last_status,
                    row.last_error.as_deref(),
                ),
                pending: row.pending,
                dead_letters: row.dead_letters - row.requeued,
                name: row.lrs,
            })
            .collect();
        Ok(StoreState {
            publisher_cursor,
            change_end,
            wal_bytes: [
                ("core", wal(std::path::PathBuf::from(&core_wal))),
                ("xapi", wal(xapi_wal.clone())),
            ],
            lrs,
        })
    })
}

/// What `/ready` checks against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadyLimits {
    pub(crate) max_publisher_lag_secs: u64,
    pub(crate) max_dead_letters: u64,
}

/// `/ready`: the store's writer commits, the schemas are in place, the publisher keeps up and
/// dead letters stay under the limit; otherwise `NotReady` naming every reason.
pub(crate) async fn ready(
    store: &Store,
    schemas: &crate::schema::SchemaSet,
    limits: ReadyLimits,
) -> Result<serde_json::Value, ApiError> {
    let mut reasons = Vec::new();
    // An empty job through the writer: its thread is alive and a (no-op) group commits.
    let probe = tokio::time::timeout(std::time::Duration::from_secs(5), store.write(|_| ())).await;
    match probe {
        Ok(Ok(())) => {}
        Ok(Err(error)) => reasons.push(format!("the store cannot commit: {error}")),
        Err(_) => reasons.push("the store's writer did not answer within 5 s".to_string()),
    }
    for driver in [&schemas.full, &schemas.streaming] {
        if !driver.is_file() {
            reasons.push(format!("the schema {} is missing", driver.display()));
        }
    }
    let lag_secs = metrics().publisher_lag_secs().unwrap_or(0.0);
    if lag_secs > limits.max_publisher_lag_secs as f64 {
        reasons.push(format!(
            "the publisher lags {lag_secs:.0} s behind (ready_max_publisher_lag_secs = {})",
            limits.max_publisher_lag_secs
        ));
    }
    let reader = store.clone();
    let dead_letters =
        tokio::task::spawn_blocking(move || reader.read(crate::store::status::dead_letter_count))
            .await;
    let dead_letters = match dead_letters {
        Ok(Ok(count)) => count,
        Ok(Err(error)) => {
            reasons.push(format!("the store cannot be read: {error}"));
            0
        }
        Err(error) => {
            reasons.push(format!("the store cannot be read: {error}"));
            0
        }
    };
    if dead_letters as u64 > limits.max_dead_letters {
        reasons.push(format!(
            "{dead_letters} dead letters (ready_max_dead_letters = {})",
            limits.max_dead_letters
        ));
    }
    if !reasons.is_empty() {
        return Err(ApiError::NotReady(reasons.join("; ")));
    }
    Ok(serde_json::json!({
        "status": "ready",
        "publisher_lag_secs": lag_secs,
        "dead_letters": dead_letters,
    }))
}

/// The status page's data: totals, the last hour's points, LRS state and the tables.
pub(crate) fn data(store: &Store) -> Result<serde_json::Value, StoreError> {
    let since = crate::domain::Clock::System
        .today()
        .and_hms_opt(0, 0, 0)
        .and_then(|midnight| {
            midnight
                .and_local_timezone(chrono_tz::Europe::Amsterdam)
                .earliest()
        })
        .map(|midnight| {
            midnight
                .with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
        .unwrap_or_default();
    let (faults, dead_letters, schools) = store.read(|connection| {
        Ok((
            crate::store::status::last_faults(connection, TABLE_ROWS)?,
            crate::store::status::recent_dead_letters(connection, TABLE_ROWS)?,
            crate::store::status::schools_since(connection, &since, 200)?,
        ))
    })?;
    let state = read_state(store)?;
    Ok(serde_json::json!({
        "version": crate::VERSION_WITH_COMMIT,
        "now": chrono::Utc::now().timestamp(),
        "sample_interval_secs": SAMPLE_INTERVAL.as_secs(),
        "totals": metrics().totals(),
        "points": metrics().history(),
        "publisher": {
            "lag_changes": (state.change_end - state.publisher_cursor).max(0),
            "lag_secs": metrics().publisher_lag_secs().unwrap_or(0.0),
        },
        "lrs": state.lrs.iter().map(|lrs| serde_json::json!({
            "name": lrs.name,
            "pending": lrs.pending,
            "lag_secs": lrs.lag_secs,
            "dead_letters": lrs.dead_letters,
            "last_error_class": lrs.last_error_class,
        })).collect::<Vec<_>>(),
        "last_faults": faults,
        "dead_letters": dead_letters,
        "schools_today": schools,
    }))
}
