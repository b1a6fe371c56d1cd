//! Retention: which schools are past their mandate plus retention, and the bounded deletes that purge them.
//!
//! Every function here does one bounded piece of work in the caller's transaction (a job on
//! a writer thread in `serve`, a write transaction of its own in the CLI), so a purge of a large
//! school never holds the write lock for long. `governance` loops them until nothing is left.

use super::db::Db;
use super::StoreError;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::params;

/// How much one purge removed (or, for a dry run, would remove). Counts only, never data.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct PurgeCounts {
    pub(crate) toetsafnames: u64,
    pub(crate) toetsafnames_history: u64,
    pub(crate) toetsafname_changes: u64,
    pub(crate) removals_written: u64,
    pub(crate) toetsen: u64,
    pub(crate) toetsen_history: u64,
    pub(crate) leerlingen: u64,
    pub(crate) receipts_cleared: u64,
    pub(crate) read_audit_cleared: u64,
    pub(crate) xapi_statements: u64,
    pub(crate) xapi_dead_letters: u64,
    pub(crate) receipts_expired: u64,
    pub(crate) audit_expired: u64,
    pub(crate) read_audit_expired: u64,
    pub(crate) removals_expired: u64,
}

impl PurgeCounts {
    pub(crate) fn add(&mut self, other: &PurgeCounts) {
        self.toetsafnames += other.toetsafnames;
        self.toetsafnames_history += other.toetsafnames_history;
        self.toetsafname_changes += other.toetsafname_changes;
        self.removals_written += other.removals_written;
        self.toetsen += other.toetsen;
        self.toetsen_history += other.toetsen_history;
        self.leerlingen += other.leerlingen;
        self.receipts_cleared += other.receipts_cleared;
        self.read_audit_cleared += other.read_audit_cleared;
        self.xapi_statements += other.xapi_statements;
        self.xapi_dead_letters += other.xapi_dead_letters;
        self.receipts_expired += other.receipts_expired;
        self.audit_expired += other.audit_expired;
        self.read_audit_expired += other.read_audit_expired;
        self.removals_expired += other.removals_expired;
    }

    /// Rows removed or rewritten in all.
    pub(crate) fn total(&self) -> u64 {
        self.toetsafnames
            + self.toetsafnames_history
            + self.toetsafname_changes
            + self.toetsen
            + self.toetsen_history
            + self.leerlingen
            + self.receipts_cleared
            + self.read_audit_cleared
            + self.xapi_statements
            + self.xapi_dead_letters
            + self.receipts_expired
            + self.audit_expired
            + self.read_audit_expired
            + self.removals_expired
    }
}

/// A school whose data must go: its last activation mandate ended more than the retention ago.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ExpiredSchool {
    pub(crate) id: i64,
    pub(crate) code: String,
    /// The last day any activation of the school was valid (or the day it was created, when it never had one).
    pub(crate) mandate_ended: String,
}

/// Schools none of whose activations is valid after `today - days`: an activation counts until
/// its `valid_until` while active, until the day it was deactivated otherwise. A school that
/// never had an activation counts from the day it was created (a roster imported ahead of a
/// mandate that never came). Reader grants do not keep data: they let the school's own LAS
/// read while the data is there, and still see the removals afterwards.
pub(crate) fn expired_schools(
    connection: &Db,
    today: NaiveDate,
    days: u32,
) -> Result<Vec<ExpiredSchool>, StoreError> {
    let cutoff = (today - chrono::Duration::days(i64::from(days))).to_string();
    // The dialects differ in the earlier of two days (SQLite's scalar min is NULL when either
    // is; LEAST ignores a NULL, so the CASE keeps SQLite's answer) and in the order of codes.
    let mut statement = connection.prepare(connection.pick(
        "SELECT x.id, x.code, x.ended FROM (
           SELECT s.id, s.code,
             CASE
               WHEN NOT EXISTS (SELECT 1 FROM activations a WHERE a.school_id = s.id) THEN substr(s.created_at, 1, 10)
               WHEN EXISTS (SELECT 1 FROM activations a WHERE a.school_id = s.id AND a.active = 1 AND a.valid_until IS NULL) THEN NULL
               ELSE (SELECT max(CASE WHEN a.active = 1 THEN a.valid_until
                                     ELSE min(COALESCE(a.valid_until, '9999-12-31'), substr(a.deactivated_at, 1, 10)) END)
                     FROM activations a WHERE a.school_id = s.id)
             END AS ended
           FROM schools s) x
         WHERE x.ended IS NOT NULL AND x.ended < ?1
           AND (EXISTS (SELECT 1 FROM toetsafnames t WHERE t.school_id = x.id)
             OR EXISTS (SELECT 1 FROM toetsen t WHERE t.school_id = x.id)
             OR EXISTS (SELECT 1 FROM leerlingen l WHERE l.school_id = x.id)
             OR EXISTS (SELECT 1 FROM xapi_statements t WHERE t.school_id = x.id)
             OR EXISTS (SELECT 1 FROM receipts r WHERE r.school_id = x.id
                          AND (r.violations != '[]' OR r.unknown_vocabularies != '[]'))
             OR EXISTS (SELECT 1 FROM read_audit r WHERE r.school = x.code AND r.leerlingen != '[]'))
         ORDER BY x.code",
        r#"SELECT x.id, x.code, x.ended FROM (
           SELECT s.id, s.code,
             CASE
               WHEN NOT EXISTS (SELECT 1 FROM activations a WHERE a.school_id = s.id) THEN substr(s.created_at, 1, 10)
               WHEN EXISTS (SELECT 1 FROM activations a WHERE a.school_id = s.id AND a.active = 1 AND a.valid_until IS NULL) THEN NULL
               ELSE (SELECT max(CASE WHEN a.active = 1 THEN a.valid_until
                                     WHEN a.deactivated_at IS NULL THEN NULL
                                     ELSE LEAST(COALESCE(a.valid_until, '9999-12-31'), substr(a.deactivated_at, 1, 10)) END
                                COLLATE "C")
                     FROM activations a WHERE a.school_id = s.id)
             END AS ended
           FROM schools s) x
         WHERE x.ended IS NOT NULL AND x.ended < ?1 COLLATE "C"
           AND (EXISTS (SELECT 1 FROM toetsafnames t WHERE t.school_id = x.id)
             OR EXISTS (SELECT 1 FROM toetsen t WHERE t.school_id = x.id)
             OR EXISTS (SELECT 1 FROM leerlingen l WHERE l.school_id = x.id)
             OR EXISTS (SELECT 1 FROM xapi_statements t WHERE t.school_id = x.id)
             OR EXISTS (SELECT 1 FROM receipts r WHERE r.school_id = x.id
                          AND (r.violations != '[]' OR r.unknown_vocabularies != '[]'))
             OR EXISTS (SELECT 1 FROM read_audit r WHERE r.school = x.code AND r.leerlingen != '[]'))
         ORDER BY x.code COLLATE "C""#,
    ))?;
    let rows = statement.query_map([cutoff], |row| {
        Ok(ExpiredSchool {
            id: row.get(0)?,
            code: row.get(1)?,
            mandate_ended: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// An afname to remove, with what its tombstone keeps.
#[derive(Clone, Debug)]
pub(crate) struct RemovedAfname {
    pub(crate) id: i64,
    pub(crate) klantcode: String,
    pub(crate) afname_key: String,
    pub(crate) toetscode: String,
    pub(crate) quarantined: bool,
}

/// Removes these afnames with their history and change log rows, and writes a tombstone with
/// the school's next feed position for each one a reader could have seen (a quarantined afname
/// never was in the feed).
pub(crate) fn remove_afnames(
    connection: &Db,
    school_id: i64,
    afnames: &[RemovedAfname],
    reason: &str,
    removed_at: &str,
) -> Result<PurgeCounts, StoreError> {
    let mut counts = PurgeCounts::default();
    let visible = afnames.iter().filter(|afname| !afname.quarantined).count() as i64;
    let mut feed_seq: i64 = connection
        .prepare_cached(
            "UPDATE schools SET feed_seq = feed_seq + ?2 WHERE id = ?1 RETURNING feed_seq - ?2",
        )?
        .query_row(params![school_id, visible], |row| row.get(0))?;
    for afname in afnames {
        counts.toetsafnames_history += connection
            .prepare_cached("DELETE FROM toetsafnames_history WHERE afname_id = ?1")?
            .execute([afname.id])? as u64;
        counts.toetsafname_changes += connection
            .prepare_cached("DELETE FROM toetsafname_changes WHERE afname_id = ?1")?
            .execute([afname.id])? as u64;
        counts.toetsafnames += connection
            .prepare_cached("DELETE FROM toetsafnames WHERE id = ?1")?
            .execute([afname.id])? as u64;
        if !afname.quarantined {
            feed_seq += 1;
            connection
                .prepare_cached(
                    "INSERT INTO toetsafname_removals (school_id, klantcode, afname_key, toetscode, feed_seq, removed_at, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    school_id,
                    afname.klantcode,
                    afname.afname_key,
                    afname.toetscode,
                    feed_seq,
                    removed_at,
                    reason
                ])?;
            counts.removals_written += 1;
        }
    }
    Ok(counts)
}

fn removed_afnames(
    connection: &Db,
    sql: &str,
    params: impl super::db::SqlParams,
) -> Result<Vec<RemovedAfname>, StoreError> {
    let mut statement = connection.prepare_cached(sql)?;
    let rows = statement.query_map(params, |row| {
        Ok(RemovedAfname {
            id: row.get(0)?,
            klantcode: row.get(1)?,
            afname_key: row.get(2)?,
            toetscode: row.get(3)?,
            quarantined: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The afnames of a learner at a school, by LAS key or ECK iD.
pub(crate) fn learner_afnames(
    connection: &Db,
    school_id: i64,
    leerlingid: &str,
    eckid: Option<&str>,
) -> Result<Vec<RemovedAfname>, StoreError> {
    removed_afnames(
        connection,
        "SELECT a.id, c.klantcode, a.afname_key, a.toetscode, a.quarantined
         FROM toetsafnames a JOIN clients c ON c.id = a.client_id
         WHERE a.school_id = ?1 AND (a.leerlingid = ?2 OR (CAST(?3 AS TEXT) IS NOT NULL AND a.eckid = ?3))
         ORDER BY a.id",
        params![school_id, leerlingid, eckid],
    )
}

/// Removes up to `limit` afnames of the school (with history, change log rows and tombstones).
pub(crate) fn purge_afnames_batch(
    connection: &Db,
    school_id: i64,
    limit: u32,
    removed_at: &str,
) -> Result<PurgeCounts, StoreError> {
    let afnames = removed_afnames(
        connection,
        "SELECT a.id, c.klantcode, a.afname_key, a.toetscode, a.quarantined
         FROM toetsafnames a JOIN clients c ON c.id = a.client_id
         WHERE a.school_id = ?1 LIMIT ?2",
        params![school_id, limit],
    )?;
    if afnames.is_empty() {
        return Ok(PurgeCounts::default());
    }
    remove_afnames(connection, school_id, &afnames, "retention", removed_at)
}

/// Removes up to `limit` leerlingen of the school, then (once they are gone) its toetsen with
/// their history, and clears the personal fields of its receipts: the violations (which quote
/// values of the message). Call after `purge_afnames_batch` found nothing more: toetsen are
/// referenced by afnames.
pub(crate) fn purge_school_rest_batch(
    connection: &Db,
    school_id: i64,
    limit: u32,
) -> Result<PurgeCounts, StoreError> {
    let mut counts = PurgeCounts {
        leerlingen: connection.execute(
            "DELETE FROM leerlingen WHERE school_id = ?1 AND leerlingid IN
               (SELECT leerlingid FROM leerlingen WHERE school_id = ?1 LIMIT ?2)",
            params![school_id, limit],
        )? as u64,
        ..PurgeCounts::default()
    };
    if counts.leerlingen > 0 {
        return Ok(counts);
    }
    counts.toetsen_history = connection.execute(
        "DELETE FROM toetsen_history WHERE toets_id IN (SELECT id FROM toetsen WHERE school_id = ?1)",
        [school_id],
    )? as u64;
    counts.toetsen =
        connection.execute("DELETE FROM toetsen WHERE school_id = ?1", [school_id])? as u64;
    counts.receipts_cleared = connection.execute(
        "UPDATE receipts SET violations = '[]', unknown_vocabularies = '[]'
         WHERE id IN (SELECT id FROM receipts WHERE school_id = ?1
           AND (violations != '[]' OR unknown_vocabularies != '[]') LIMIT ?2)",
        params![school_id, limit],
    )? as u64;
    Ok(counts)
}

/// Clears the personal fields of up to `limit` read audit rows of the school (which learners a
/// read returned, and the request that may name one) in `xapi.sqlite` (a job on the xAPI
/// writer, or the CLI's transaction); the rows themselves stay until `audit_retention_days`.
pub(crate) fn purge_read_audit_batch(
    connection: &Db,
    school: &str,
    limit: u32,
) -> Result<PurgeCounts, StoreError> {
    let cleared = connection.execute(
        "UPDATE read_audit SET leerlingen = '[]', request = ''
         WHERE id IN (SELECT id FROM read_audit WHERE school = ?1
           AND (leerlingen != '[]' OR request != '') LIMIT ?2)",
        params![school, limit],
    )?;
    Ok(PurgeCounts {
        read_audit_cleared: cleared as u64,
        ..PurgeCounts::default()
    })
}

/// Removes up to `limit` statements of the school from `xapi.sqlite` with their dead letters
/// (a job on the xAPI writer, or the CLI's transaction).
pub(crate) fn purge_statements_batch(
    connection: &Db,
    school_id: i64,
    limit: u32,
) -> Result<PurgeCounts, StoreError> {
    let mut counts = PurgeCounts::default();
    let ids: Vec<(i64, String)> = {
        let mut statement = connection.prepare_cached(
            "SELECT seq, id FROM xapi_statements WHERE school_id = ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = statement.query_map(params![school_id, limit], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    for (seq, id) in ids {
        counts.xapi_dead_letters += connection
            .prepare_cached("DELETE FROM xapi_dead_letters WHERE statement_id = ?1")?
            .execute([&id])? as u64;
        counts.xapi_statements += connection
            .prepare_cached("DELETE FROM xapi_statements WHERE seq = ?1")?
            .execute([seq])? as u64;
    }
    Ok(counts)
}

/// The cut-off instant, as stored timestamps are written (RFC 3339 UTC, milliseconds).
pub(crate) fn cutoff(now: DateTime<Utc>, days: u32) -> String {
    (now - chrono::Duration::days(i64::from(days)))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The receipts received before `?1` that no stored row refers to any more: the ones
/// `purge_expired_batch` removes and `plan` counts.
const EXPIRED_RECEIPTS: &str = "FROM receipts WHERE received_at < ?1
    AND id NOT IN (SELECT receipt_id FROM toetsafnames)
    AND id NOT IN (SELECT replaced_by_receipt_id FROM toetsafnames_history)
    AND id NOT IN (SELECT created_receipt_id FROM toetsen)
    AND id NOT IN (SELECT updated_receipt_id FROM toetsen)
    AND id NOT IN (SELECT receipt_id FROM toetsen_history)
    AND id NOT IN (SELECT replaced_by_receipt_id FROM toetsen_history)
    AND id NOT IN (SELECT last_receipt_id FROM sender_state)";

/// Removes up to `limit` rows that outlived their own retention: receipts no afname, toets or
/// ordering state refers to any more, audit rows and tombstones (the read audit:
/// `expire_read_audit_batch`).
pub(crate) fn purge_expired_batch(
    connection: &Db,
    now: DateTime<Utc>,
    receipt_days: u32,
    audit_days: u32,
    removal_days: u32,
    limit: u32,
) -> Result<PurgeCounts, StoreError> {
    let mut counts = PurgeCounts {
        receipts_expired: connection.execute(
            &format!("DELETE FROM receipts WHERE id IN (SELECT id {EXPIRED_RECEIPTS} LIMIT ?2)"),
            params![cutoff(now, receipt_days), limit],
        )? as u64,
        ..PurgeCounts::default()
    };
    counts.audit_expired = connection.execute(
        "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ?1 LIMIT ?2)",
        params![cutoff(now, audit_days), limit],
    )? as u64;
    counts.removals_expired = connection.execute(
        "DELETE FROM toetsafname_removals WHERE id IN
           (SELECT id FROM toetsafname_removals WHERE removed_at < ?1 LIMIT ?2)",
        params![cutoff(now, removal_days), limit],
    )? as u64;
    Ok(counts)
}

/// Removes up to `limit` read audit rows older than `audit_days` from `xapi.sqlite` (a job on
/// the xAPI writer).
pub(crate) fn expire_read_audit_batch(
    connection: &Db,
    now: DateTime<Utc>,
    audit_days: u32,
    limit: u32,
) -> Result<PurgeCounts, StoreError> {
    let expired = connection.execute(
        "DELETE FROM read_audit WHERE id IN (SELECT id FROM read_audit WHERE at < ?1 LIMIT ?2)",
        params![cutoff(now, audit_days), limit],
    )?;
    Ok(PurgeCounts {
        read_audit_expired: expired as u64,
        ..PurgeCounts::default()
    })
}

/// What a purge would remove now, without removing it (`purge --dry-run`).
pub(crate) fn plan(
    connection: &Db,
    now: DateTime<Utc>,
    today: NaiveDate,
    settings: &RetentionSettings,
) -> Result<(Vec<ExpiredSchool>, PurgeCounts), StoreError> {
    let schools = expired_schools(connection, today, settings.days_after_mandate)?;
    let mut counts = PurgeCounts::default();
    let number = |sql: &str, value: &dyn rusqlite::ToSql| -> Result<u64, StoreError> {
        Ok(connection.query_row(sql, [value], |row| row.get::<_, i64>(0))? as u64)
    };
    for school in &schools {
        counts.toetsafnames += number(
            "SELECT count(*) FROM toetsafnames WHERE school_id = ?1",
            &school.id,
        )?;
        counts.toetsafnames_history += number(
            "SELECT count(*) FROM toetsafnames_history WHERE afname_id IN (SELECT id FROM toetsafnames WHERE school_id = ?1)",
            &school.id,
        )?;
        counts.toetsen += number(
            "SELECT count(*) FROM toetsen WHERE school_id = ?1",
            &school.id,
        )?;
        counts.leerlingen += number(
            "SELECT count(*) FROM leerlingen WHERE school_id = ?1",
            &school.id,
        )?;
        counts.xapi_statements += number(
            "SELECT count(*) FROM xapi_statements WHERE school_id = ?1",
            &school.id,
        )?;
    }
    let receipt_cutoff = cutoff(now, settings.receipt_days);
    counts.receipts_expired = number(
        &format!("SELECT count(*) {EXPIRED_RECEIPTS}"),
        &receipt_cutoff,
    )?;
    let audit_cutoff = cutoff(now, settings.audit_days);
    counts.audit_expired = number("SELECT count(*) FROM audit WHERE at < ?1", &audit_cutoff)?;
    counts.read_audit_expired = number(
        "SELECT count(*) FROM read_audit WHERE at < ?1",
        &audit_cutoff,
    )?;
    counts.removals_expired = number(
        "SELECT count(*) FROM toetsafname_removals WHERE removed_at < ?1",
        &cutoff(now, settings.removal_days),
    )?;
    Ok((schools, counts))
}

/// The retention periods (from `Config`), in days.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetentionSettings {
    pub(crate) days_after_mandate: u32,
    pub(crate) receipt_days: u32,
    pub(crate) audit_days: u32,
    pub(crate) removal_days: u32,
    pub(crate) batch_rows: u32,
}

/// One bounded purge step, as data: the purge job picks the next one, the store runs it.
#[derive(Clone, Debug)]
pub(crate) enum PurgeStep {
    /// `purge_afnames_batch`.
    Afnames {
        school_id: i64,
        limit: u32,
        removed_at: String,
    },
    /// `purge_school_rest_batch`.
    SchoolRest { school_id: i64, limit: u32 },
    /// `purge_statements_batch` (on `xapi.sqlite`'s writer).
    Statements { school_id: i64, limit: u32 },
    /// `purge_read_audit_batch` (on `xapi.sqlite`'s writer, where the read audit lives).
    SchoolReadAudit { school_code: String, limit: u32 },
    /// `expire_read_audit_batch` (on `xapi.sqlite`'s writer).
    ExpiredReadAudit {
        now: DateTime<Utc>,
        audit_days: u32,
        limit: u32,
    },
    /// `purge_expired_batch`.
    Expired {
        now: DateTime<Utc>,
        receipt_days: u32,
        audit_days: u32,
        removal_days: u32,
        limit: u32,
    },
}

impl PurgeStep {
    /// Whether the step writes `xapi.sqlite` (the xAPI writer), not the core.
    pub(crate) fn on_xapi(&self) -> bool {
        matches!(
            self,
            PurgeStep::Statements { .. }
                | PurgeStep::SchoolReadAudit { .. }
                | PurgeStep::ExpiredReadAudit { .. }
        )
    }
}

/// Runs one purge step as a job on its writer, in its own savepoint of the group.
pub(crate) fn run_step(connection: &Db, step: &PurgeStep) -> Result<PurgeCounts, StoreError> {
    super::connection::in_savepoint(connection, |savepoint| match step {
        PurgeStep::Afnames {
            school_id,
            limit,
            removed_at,
        } => purge_afnames_batch(savepoint, *school_id, *limit, removed_at),
        PurgeStep::SchoolRest { school_id, limit } => {
            purge_school_rest_batch(savepoint, *school_id, *limit)
        }
        PurgeStep::Statements { school_id, limit } => {
            purge_statements_batch(savepoint, *school_id, *limit)
        }
        PurgeStep::SchoolReadAudit { school_code, limit } => {
            purge_read_audit_batch(savepoint, school_code, *limit)
        }
        PurgeStep::ExpiredReadAudit {
            now,
            audit_days,
            limit,
        } => expire_read_audit_batch(savepoint, *now, *audit_days, *limit),
        PurgeStep::Expired {
            now,
            receipt_days,
            audit_days,
            removal_days,
            limit,
        } => purge_expired_batch(
            savepoint,
            *now,
            *receipt_days,
            *audit_days,
            *removal_days,
            *limit,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::*;

    fn insert_school(connection: &Db, id: i64, code: &str, created: &str) {
        connection
            .execute(
                "INSERT INTO schools (id, code, created_at) VALUES (?1, ?2, ?3)",
                params![id, code, created],
            )
            .unwrap();
    }

    fn activation(
        connection: &Db,
        school: i64,
        client: i64,
        until: Option<&str>,
        active: bool,
        deactivated: Option<&str>,
    ) {
        connection
            .execute(
                "INSERT INTO activations (client_id, school_id, mandate_ref, valid_from, valid_until, active, created_at, deactivated_at)
                 VALUES (?1, ?2, 'M', '2020-01-01', ?3, ?4, 'now', ?5)",
                params![client, school, until, active, deactivated],
            )
            .unwrap();
    }

    /// A school is past retention only when every activation ended more than the retention ago,
    /// and only while it still holds data.
    #[test]
    fn schools_expire_after_their_last_mandate_plus_retention() -> Result<(), StoreError> {
        let connection = database()?;
        connection.execute_batch(
            "INSERT INTO clients (id, klantcode, klantnaam, key_salt, key_hash, created_at)
             VALUES (1, 'A', 'A', x'00', x'00', 'now'), (2, 'B', 'B', x'00', x'00', 'now');",
        )?;
        insert_school(&connection, 1, "ENDED", "2020-01-01T00:00:00.000Z");
        insert_school(&connection, 2, "OPEN", "2020-01-01T00:00:00.000Z");
        insert_school(&connection, 3, "ONEOPEN", "2020-01-01T00:00:00.000Z");
        insert_school(&connection, 4, "DEACTIVATED", "2020-01-01T00:00:00.000Z");
        insert_school(&connection, 5, "NONE", "2026-01-01T00:00:00.000Z");
        activation(&connection, 1, 1, Some("2026-01-31"), true, None);
        activation(&connection, 2, 1, None, true, None);
        activation(&connection, 3, 1, Some("2025-01-31"), true, None);
        activation(&connection, 3, 2, Some("2026-12-31"), true, None);
        activation(
            &connection,
            4,
            1,
            Some("2030-01-01"),
            false,
            Some("2026-02-01T10:00:00.000Z"),
        );
        for school in 1..=5 {
            connection.execute(
                "INSERT INTO leerlingen (school_id, leerlingid, imported_at) VALUES (?1, 'L', 'now')",
                [school],
            )?;
        }
        let expired = |today: &str, days| -> Vec<String> {
            expired_schools(&connection, date(today), days)
                .unwrap()
                .into_iter()
                .map(|school| format!("{}:{}", school.code, school.mandate_ended))
                .collect()
        };
        // The 90th day after the end is the last one kept.
        assert_eq!(expired("2026-05-01", 90), ["NONE:2026-01-01"]);
        assert_eq!(
            expired("2026-05-02", 90),
            ["ENDED:2026-01-31", "NONE:2026-01-01"]
        );
        assert_eq!(
            expired("2026-05-03", 90),
            [
                "DEACTIVATED:2026-02-01",
                "ENDED:2026-01-31",
                "NONE:2026-01-01"
            ]
        );
        assert_eq!(
            expired("2026-05-03", 91),
            ["ENDED:2026-01-31", "NONE:2026-01-01"]
        );
        // ONEOPEN's other activation runs to the end of 2026; OPEN's never ends.
        assert_eq!(expired("2027-04-01", 90).len(), 4);
        assert!(!expired("2099-01-01", 90)
            .iter()
            .any(|school| school.starts_with("OPEN")));
        // Without data there is nothing to purge.
        connection.execute(
            "DELETE FROM leerlingen WHERE school_id = 1",
            rusqlite::params![],
        )?;
        assert_eq!(
            expired("2026-05-03", 90),
            ["DEACTIVATED:2026-02-01", "NONE:2026-01-01"]
        );
        Ok(())
    }
}
