//! The register of disclosures: which readers and LRSs received a school's (or a learner's) data, and when.

use super::db::Db;
use super::outbox::list_subscriptions;
use super::StoreError;
use rusqlite::params;

/// A reader that read the school's data through the read API (from the read audit).
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct ReaderDisclosure {
    pub(crate) reader: String,
    pub(crate) api: String,
    pub(crate) first_read: String,
    pub(crate) last_read: String,
    /// Answered requests (2xx) that returned records.
    pub(crate) requests: u64,
    pub(crate) records: u64,
}

/// An LRS that received statements of the school (from its delivery cursor).
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct LrsDisclosure {
    pub(crate) lrs: String,
    pub(crate) url: String,
    /// Which learner identity it received: eckid, pseudonym or las.
    pub(crate) identity: String,
    /// Statements it received (at or below its cursor and through its filter), still stored.
    pub(crate) statements: u64,
    pub(crate) first_stored: Option<String>,
    pub(crate) last_stored: Option<String>,
    pub(crate) last_delivered_at: Option<String>,
}

/// The register of one school, or of one learner of it.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Register {
    pub(crate) school: String,
    pub(crate) readers: Vec<ReaderDisclosure>,
    pub(crate) lrs: Vec<LrsDisclosure>,
}

/// Who received the school's data: readers from the read audit (kept `audit_retention_days`),
/// LRSs from their cursors over the statements still stored. With `leerlingid`, only reads
/// that returned that learner and statements about them.
pub(crate) fn register(
    connection: &Db,
    school: &crate::domain::SchoolCode,
    leerlingid: Option<&str>,
    eckid: Option<&str>,
) -> Result<Register, StoreError> {
    let school_id = super::admin::school_id(connection, school)?.unwrap_or(-1);
    let mut statement = connection.prepare(connection.pick(
        "SELECT d.name, r.api, min(r.at), max(r.at), count(*), sum(r.records)
         FROM read_audit r JOIN readers d ON d.id = r.reader_id
         WHERE r.school = ?1 AND r.status BETWEEN 200 AND 299 AND r.records > 0
           AND (CAST(?2 AS TEXT) IS NULL OR EXISTS (SELECT 1 FROM json_each(r.leerlingen) WHERE value = ?2))
         GROUP BY d.name, r.api ORDER BY d.name, r.api",
        r#"SELECT d.name, r.api, min(r.at COLLATE "C"), max(r.at COLLATE "C"), count(*), sum(r.records)
         FROM read_audit r JOIN readers d ON d.id = r.reader_id
         WHERE r.school = ?1 AND r.status BETWEEN 200 AND 299 AND r.records > 0
           AND (CAST(?2 AS TEXT) IS NULL
             OR EXISTS (SELECT 1 FROM json_array_elements_text(r.leerlingen::json) WHERE value = ?2))
         GROUP BY d.name, r.api ORDER BY d.name COLLATE "C", r.api COLLATE "C""#,
    ))?;
    let readers = statement
        .query_map(params![school.as_str(), leerlingid], |row| {
            Ok(ReaderDisclosure {
                reader: row.get(0)?,
                api: row.get(1)?,
                first_read: row.get(2)?,
                last_read: row.get(3)?,
                requests: row.get::<_, i64>(4)? as u64,
                records: row.get::<_, i64>(5)? as u64,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut lrs = Vec::new();
    for subscription in list_subscriptions(connection)? {
        if !subscription.schools.is_empty()
            && !subscription
                .schools
                .iter()
                .any(|code| code == school.as_str())
        {
            continue;
        }
        let toetscodes =
            serde_json::to_string(&subscription.toetscodes).expect("strings serialize");
        let (statements, first_stored, last_stored): (i64, Option<String>, Option<String>) =
            connection.query_row(
                connection.pick(
                    "SELECT count(*), min(stored_at), max(stored_at) FROM xapi_statements
                     WHERE school_id = ?1 AND seq <= ?2
                       AND (CAST(?3 AS TEXT) = '[]' OR toetscode IN (SELECT value FROM json_each(?3)))
                       AND (CAST(?4 AS TEXT) IS NULL OR leerlingid = ?4
                         OR (CAST(?5 AS TEXT) IS NOT NULL AND eckid = ?5))",
                    r#"SELECT count(*), min(stored_at COLLATE "C"), max(stored_at COLLATE "C") FROM xapi_statements
                     WHERE school_id = ?1 AND seq <= ?2
                       AND (CAST(?3 AS TEXT) = '[]'
                         OR toetscode IN (SELECT json_array_elements_text(CAST(?3 AS TEXT)::json)))
                       AND (CAST(?4 AS TEXT) IS NULL OR leerlingid = ?4
                         OR (CAST(?5 AS TEXT) IS NOT NULL AND eckid = ?5))"#,
                ),
                params![
                    school_id,
                    subscription.cursor_seq,
                    toetscodes,
                    leerlingid,
                    eckid
                ],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )?;
        if statements == 0 {
            continue;
        }
        lrs.push(LrsDisclosure {
            lrs: subscription.name,
            url: subscription.url,
            identity: subscription.identity,
            statements: statements as u64,
            first_stored,
            last_stored,
            last_delivered_at: subscription.last_delivered_at,
        });
    }
    Ok(Register {
        school: school.as_str().to_string(),
        readers,
        lrs,
    })
}
