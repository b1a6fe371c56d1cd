//! The reads behind the status page's tables: the last faults, recent dead letters, the schools that sent today.

use super::db::Db;
use rusqlite::params;

use super::StoreError;

/// A rejected message, as the status page lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct FaultRow {
    pub(crate) received_at: String,
    pub(crate) receipt_id: String,
    pub(crate) klantcode: String,
    pub(crate) school: Option<String>,
    pub(crate) faultcode: Option<String>,
    /// The first violation's rule and text (the receipt holds them all).
    pub(crate) rule: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) violations: i64,
}

/// A school that sent at least one message since `since`.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct SchoolTodayRow {
    pub(crate) school: String,
    pub(crate) naam: Option<String>,
    pub(crate) messages: i64,
    pub(crate) accepted: i64,
    pub(crate) rejected: i64,
    pub(crate) resultaten: i64,
    pub(crate) last_received_at: String,
}

/// A dead letter, newest first, with the LRS's answer shortened.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct DeadLetterSummary {
    pub(crate) lrs: String,
    pub(crate) statement_id: String,
    pub(crate) status: Option<i64>,
    pub(crate) answer: String,
    pub(crate) failed_at: String,
    pub(crate) attempts: i64,
}

/// The newest `limit` rejected messages (receipts are kept for identified senders only).
pub(crate) fn last_faults(connection: &Db, limit: usize) -> Result<Vec<FaultRow>, StoreError> {
    let rows = connection
        .prepare_cached(connection.pick(
            "SELECT r.received_at, r.id, c.klantcode, s.code, r.faultcode,
                    json_extract(r.violations, '$[0].rule'),
                    substr(json_extract(r.violations, '$[0].message'), 1, 200),
                    json_array_length(r.violations) + r.violations_omitted
             FROM receipts r JOIN clients c ON c.id = r.client_id LEFT JOIN schools s ON s.id = r.school_id
             WHERE r.outcome = 'rejected' ORDER BY r.received_at DESC LIMIT ?1",
            r#"SELECT r.received_at, r.id, c.klantcode, s.code, r.faultcode,
                    r.violations::json -> 0 ->> 'rule',
                    substr(r.violations::json -> 0 ->> 'message', 1, 200),
                    json_array_length(r.violations::json) + r.violations_omitted
             FROM receipts r JOIN clients c ON c.id = r.client_id LEFT JOIN schools s ON s.id = r.school_id
             WHERE r.outcome = 'rejected' ORDER BY r.received_at COLLATE "C" DESC LIMIT ?1"#,
        ))?
        .query_map(params![limit as i64], |row| {
            Ok(FaultRow {
                received_at: row.get(0)?,
                receipt_id: row.get(1)?,
                klantcode: row.get(2)?,
                school: row.get(3)?,
                faultcode: row.get(4)?,
                rule: row.get(5)?,
                message: row.get(6)?,
                violations: row.get(7)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Schools with a receipt received at or after `since` (RFC 3339 UTC, as `received_at`).
pub(crate) fn schools_since(
    connection: &Db,
    since: &str,
    limit: usize,
) -> Result<Vec<SchoolTodayRow>, StoreError> {
    let rows = connection
        .prepare_cached(connection.pick(
            "SELECT s.code, s.naam, count(*), SUM(CASE WHEN r.outcome = 'accepted' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN r.outcome = 'rejected' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN r.outcome = 'accepted' THEN r.resultaten ELSE 0 END), MAX(r.received_at)
             FROM receipts r JOIN schools s ON s.id = r.school_id
             WHERE r.received_at >= ?1 GROUP BY s.id ORDER BY MAX(r.received_at) DESC LIMIT ?2",
            r#"SELECT s.code, s.naam, count(*), SUM(CASE WHEN r.outcome = 'accepted' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN r.outcome = 'rejected' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN r.outcome = 'accepted' THEN r.resultaten ELSE 0 END),
                    MAX(r.received_at COLLATE "C")
             FROM receipts r JOIN schools s ON s.id = r.school_id
             WHERE r.received_at >= ?1 COLLATE "C" GROUP BY s.id
             ORDER BY MAX(r.received_at COLLATE "C") DESC LIMIT ?2"#,
        ))?
        .query_map(params![since, limit as i64], |row| {
            Ok(SchoolTodayRow {
                school: row.get(0)?,
                naam: row.get(1)?,
                messages: row.get(2)?,
                accepted: row.get(3)?,
                rejected: row.get(4)?,
                resultaten: row.get(5)?,
                last_received_at: row.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// How many dead letters wait that were not requeued (`/ready`).
pub(crate) fn dead_letter_count(connection: &Db) -> Result<i64, StoreError> {
    Ok(connection.query_row(
        "SELECT count(*) FROM xapi_dead_letters WHERE requeued = 0",
        rusqlite::params![],
        |row| row.get(0),
    )?)
}

/// The newest `limit` dead letters that were not requeued.
pub(crate) fn recent_dead_letters(
    connection: &Db,
    limit: usize,
) -> Result<Vec<DeadLetterSummary>, StoreError> {
    let rows = connection
        .prepare_cached(connection.pick(
            "SELECT s.name, d.statement_id, d.status, substr(d.answer, 1, 200), d.failed_at, d.attempts
             FROM xapi_dead_letters d JOIN xapi_subscriptions s ON s.id = d.subscription_id
             WHERE d.requeued = 0 ORDER BY d.failed_at DESC LIMIT ?1",
            r#"SELECT s.name, d.statement_id, d.status, substr(d.answer, 1, 200), d.failed_at, d.attempts
             FROM xapi_dead_letters d JOIN xapi_subscriptions s ON s.id = d.subscription_id
             WHERE d.requeued = 0 ORDER BY d.failed_at COLLATE "C" DESC LIMIT ?1"#,
        ))?
        .query_map(params![limit as i64], |row| {
            Ok(DeadLetterSummary {
                lrs: row.get(0)?,
                statement_id: row.get(1)?,
                status: row.get(2)?,
                answer: row.get(3)?,
                failed_at: row.get(4)?,
                attempts: row.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
