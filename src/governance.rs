//! Data governance jobs: the purge that enforces retention, and the erasure of one learner.
//!
//! The purge runs in `serve` every `purge_interval_secs` and from `uwlr-gateway purge --now`;
//! each step is a bounded job on a store writer (`purge_batch_rows` rows), with a pause
//! between steps, so the intake's jobs get the writer in between and a large school never
//! holds the write lock for long. The erasure runs from the CLI in one transaction.

use crate::domain::Clock;
use crate::domain::SchoolCode;
use crate::store::erasure::{self, ErasureCounts, Learner};
use crate::store::retention::{self, ExpiredSchool, PurgeCounts, PurgeStep, RetentionSettings};
use crate::store::session::Session;
use crate::store::{admin, Store, StoreError};
use std::time::Duration;

/// The least pause between two purge steps, leaving the writer to the intake.
const STEP_PAUSE: Duration = Duration::from_millis(20);

/// A purge step may take at most a tenth of a writer's time: after a step the purge waits
/// nine times as long as the step took (at least `STEP_PAUSE`), so however slow the disk or
/// busy the machine, senders find the writer free nine times out of ten. (A quarter still
/// doubled the drip's p50 on a busy machine; the purge is not urgent.)
async fn pause_after(started: std::time::Instant) {
    tokio::time::sleep(STEP_PAUSE.max(started.elapsed() * 9)).await;
}

/// Why an erasure failed; nothing of it is committed then.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GovernanceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bridge(#[from] crate::bridge::BridgeError),
}

/// What one purge did.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct PurgeReport {
    pub(crate) schools: Vec<ExpiredSchool>,
    pub(crate) counts: PurgeCounts,
}

/// Audits a purge step's counts (never data) on the core writer.
async fn audit_counts(
    store: &Store,
    action: &'static str,
    subject: String,
    counts: &PurgeCounts,
) -> Result<(), StoreError> {
    let detail = format!(
        "{subject} {}",
        serde_json::to_string(counts).expect("counts serialize")
    );
    store
        .write(move |connection| admin::audit(connection, "retention", action, &detail))
        .await?
}

/// Purges every school past retention, then everything past its own retention (receipts,
/// audit, tombstones), in bounded steps; one audit row per school purged and one for the rest.
pub(crate) async fn purge(
    store: &Store,
    clock: Clock,
    settings: RetentionSettings,
) -> Result<PurgeReport, StoreError> {
    let today = clock.today();
    let schools = store.read(move |connection| {
        retention::expired_schools(connection, today, settings.days_after_mandate)
    })?;
    let mut report = PurgeReport::default();
    for school in &schools {
        let counts = purge_school(store, clock, &settings, school).await?;
        report.counts.add(&counts);
    }
    let expired = purge_expired(store, clock, &settings).await?;
    report.counts.add(&expired);
    report.schools = schools;
    Ok(report)
}

/// Runs the steps `next` makes, each as a job on its writer with a pause after it, until
/// `done` says a step found nothing left; returns what they removed together.
async fn drain(
    store: &Store,
    done: fn(&PurgeCounts) -> bool,
    mut next: impl FnMut() -> PurgeStep,
) -> Result<PurgeCounts, StoreError> {
    let mut counts = PurgeCounts::default();
    loop {
        let step_started = std::time::Instant::now();
        let step = next();
        let step = if step.on_xapi() {
            store
                .write_xapi(move |connection| retention::run_step(connection, &step))
                .await??
        } else {
            store
                .write(move |connection| retention::run_step(connection, &step))
                .await??
        };
        counts.add(&step);
        if done(&step) {
            return Ok(counts);
        }
        pause_after(step_started).await;
    }
}

/// Removes one school past retention: its afnames (each leaving a tombstone), the rest of
/// its rows, then its statements; audits the counts and who had received its data.
async fn purge_school(
    store: &Store,
    clock: Clock,
    settings: &RetentionSettings,
    school: &ExpiredSchool,
) -> Result<PurgeCounts, StoreError> {
    let started = std::time::Instant::now();
    let limit = settings.batch_rows.max(1);
    let school_id = school.id;
    // Who received the school's data, for the audit row: the register loses it with the data.
    let code = SchoolCode::parse(&school.code)
        .map_err(|error| StoreError::corrupt(format!("stored school {}", school.code), error))?;
    let register = store.read(move |connection| {
        crate::store::disclosures::register(connection, &code, None, None)
    })?;
    let recipients: Vec<String> = register
        .lrs
        .iter()
        .map(|lrs| format!("lrs {}", lrs.lrs))
        .chain(
            register
                .readers
                .iter()
                .map(|reader| format!("reader {}", reader.reader)),
        )
        .collect();
    let mut counts = drain(
        store,
        |step| step.toetsafnames == 0,
        || PurgeStep::Afnames {
            school_id,
            limit,
            removed_at: clock
                .now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        },
    )
    .await?;
    counts.add(
        &drain(
            store,
            |step| step.total() == 0,
            || PurgeStep::SchoolRest { school_id, limit },
        )
        .await?,
    );
    let school_code = school.code.clone();
    counts.add(
        &drain(
            store,
            |step| step.total() == 0,
            || PurgeStep::SchoolReadAudit {
                school_code: school_code.clone(),
                limit,
            },
        )
        .await?,
    );
    // After the core: a statement the publisher writes for a change read before the
    // purge is caught here, or by the next run (the school still holds data then).
    counts.add(
        &drain(
            store,
            |step| step.total() == 0,
            || PurgeStep::Statements { school_id, limit },
        )
        .await?,
    );
    audit_counts(
        store,
        "retention.purge-school",
        format!(
            "{} (mandate ended {}, retention {} days; received by: {})",
            school.code,
            school.mandate_ended,
            settings.days_after_mandate,
            if recipients.is_empty() {
                "none".to_string()
            } else {
                recipients.join(", ")
            }
        ),
        &counts,
    )
    .await?;
    tracing::info!(
        school = %school.code,
        rows = counts.total(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "purged a school past retention"
    );
    Ok(counts)
}

/// Removes what outlived its own retention (receipts, audit rows, tombstones) and audits the counts.
async fn purge_expired(
    store: &Store,
    clock: Clock,
    settings: &RetentionSettings,
) -> Result<PurgeCounts, StoreError> {
    let limit = settings.batch_rows.max(1);
    let (receipt_days, audit_days, removal_days) = (
        settings.receipt_days,
        settings.audit_days,
        settings.removal_days,
    );
    let mut expired = drain(
        store,
        |step| step.total() == 0,
        || PurgeStep::Expired {
            now: clock.now(),
            receipt_days,
            audit_days,
            removal_days,
            limit,
        },
    )
    .await?;
    expired.add(
        &drain(
            store,
            |step| step.total() == 0,
            || PurgeStep::ExpiredReadAudit {
                now: clock.now(),
                audit_days,
                limit,
            },
        )
        .await?,
    );
    if expired.total() > 0 {
        audit_counts(
            store,
            "retention.expire",
            format!("receipts {receipt_days} days, audit {audit_days} days, removals {removal_days} days"),
            &expired,
        )
        .await?;
    }
    Ok(expired)
}

/// The purge job of `serve`: a purge at start and every `interval`, until `stop` turns true.
pub(crate) async fn run_purge(
    store: Store,
    settings: RetentionSettings,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if interval.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            outcome = purge(&store, Clock::System, settings) => {
                if let Err(error) = outcome {
                    tracing::error!(%error, "the purge failed; it runs again at the next interval");
                }
            }
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// What an erasure did: the counts and the LRSs that held statements about the learner.
#[derive(Debug, serde::Serialize)]
pub(crate) struct ErasureReport {
    pub(crate) school: String,
    /// The keyed hash that names the learner in the audit from now on.
    pub(crate) learner_hash: String,
    pub(crate) counts: ErasureCounts,
    /// LRSs that received statements about the learner (they now get voiding statements).
    pub(crate) lrs: Vec<String>,
}

/// Erases `learner` in one transaction over both files (the core's rows, then the statements:
/// live ones are voided through the normal delivery path, all are removed), rewrites the
/// rows that named them to name a keyed hash, and audits it with counts and that hash.
pub(crate) fn erase(
    session: &mut Session,
    keyring: &crate::secret::Keyring,
    mapping: &crate::bridge::Mapping,
    learner: &Learner,
    actor: &str,
) -> Result<ErasureReport, GovernanceError> {
    let erased = erasure::erase_learner(
        session,
        keyring,
        learner,
        actor,
        |statements| -> Result<_, GovernanceError> {
            Ok(crate::bridge::erasure::voiding_statements(
                mapping,
                learner.school_id,
                statements,
                Clock::System.now(),
            )?)
        },
    )?;
    Ok(ErasureReport {
        school: learner.school.clone(),
        learner_hash: erased.learner_hash,
        counts: erased.counts,
        lrs: erased.lrs,
    })
}

impl RetentionSettings {
    pub(crate) fn from_config(config: &crate::config::Config) -> RetentionSettings {
        RetentionSettings {
            days_after_mandate: config.retention_days_after_mandate,
            receipt_days: config.receipt_retention_days,
            audit_days: config.audit_retention_days,
            removal_days: config.removal_retention_days,
            batch_rows: config.purge_batch_rows,
        }
    }
}
