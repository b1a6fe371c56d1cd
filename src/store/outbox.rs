//! Rows of the xAPI bridge: generated statements (the outbox), LRS subscriptions with their cursors, dead letters, the publisher's cursor.
//!
//! Statement JSON is opaque text here; only `bridge/` builds or reads it.

use super::db::Db;
use super::{now_text, StoreError};
use crate::secret::{Keyring, Sealed, Secret};
use rusqlite::{params, OptionalExtension};

/// The reserved xAPI verb of a voiding statement; such statements are never voided themselves.
pub(crate) const VERB_VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";

/// One generated statement, as `bridge::publish` writes it.
#[derive(Clone, Debug)]
pub(crate) struct StatementRow {
    pub(crate) id: String,
    pub(crate) school_id: i64,
    pub(crate) afname_id: Option<i64>,
    pub(crate) toetscode: String,
    pub(crate) verb_id: String,
    pub(crate) activity_id: Option<String>,
    pub(crate) registration: Option<String>,
    pub(crate) agent: Option<String>,
    pub(crate) leerlingid: Option<String>,
    pub(crate) eckid: Option<String>,
    pub(crate) statement: String,
    /// Whether the ids are keyed (`AfnameSource::keyed_ids`): an LRS with the pseudonym or
    /// LAS identity then gets them keyed once more with its own key.
    pub(crate) keyed: bool,
}

/// An afname whose statement must be (re)generated, with what the statement needs from other tables.
#[derive(Clone, Debug)]
pub(crate) struct AfnameSource {
    pub(crate) id: i64,
    pub(crate) school_id: i64,
    pub(crate) school_code: String,
    pub(crate) brincode: Option<String>,
    pub(crate) dependancecode: Option<String>,
    pub(crate) schoolkey: Option<String>,
    pub(crate) school_naam: Option<String>,
    pub(crate) afname_key: String,
    pub(crate) leerlingid: String,
    pub(crate) eckid: Option<String>,
    pub(crate) resultaatverwerkerid: Option<String>,
    pub(crate) toets_id: i64,
    pub(crate) toetscode: String,
    pub(crate) versie: String,
    pub(crate) toetsonderdeelcode: Option<String>,
    pub(crate) afnamedatum: String,
    pub(crate) derived: bool,
    pub(crate) result: String,
    pub(crate) aanmaakdatum: String,
    pub(crate) schooljaar: Option<String>,
    pub(crate) xsdversie: Option<String>,
    pub(crate) klantnaam: Option<String>,
    /// The klantcode of the client that owns the afname, which the statement id includes so
    /// that two clients' afnames with one key get two ids; `None` for afnames stored before
    /// ownership (core migration 6), whose statement ids never had it and must not change.
    pub(crate) id_klantcode: Option<String>,
    /// The revision of the toets definition the result was read against at intake; `None`
    /// for afnames stored before revisions were pinned (core migration 8), built from the
    /// current definition.
    pub(crate) toets_revision: Option<i64>,
    /// Whether the statement id and registration are keyed with the gateway's secret id key:
    /// afnames stored since core migration 8; older ones keep the ids LRSs already hold.
    pub(crate) keyed_ids: bool,
}

/// A subscribed LRS as stored. Its password and pseudonym key stay sealed (see `secret`):
/// only the delivery worker opens them, with the keyring.
#[derive(Clone, Debug)]
pub(crate) struct SubscriptionRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Sealed>,
    pub(crate) identity: String,
    /// The per-LRS HMAC key for pseudonyms.
    pub(crate) pseudonym_key: Sealed,
    pub(crate) schools: Vec<String>,
    pub(crate) toetscodes: Vec<String>,
    pub(crate) cursor_seq: i64,
    pub(crate) last_attempt_at: Option<String>,
    pub(crate) last_delivered_at: Option<String>,
    pub(crate) last_status: Option<i64>,
    pub(crate) last_error: Option<String>,
    pub(crate) delivered: i64,
    /// CA certificates (normalised PEM) trusted for this LRS besides the system's roots.
    pub(crate) ca_pem: Option<String>,
}

/// A subscription to add (`lrs add`).
#[derive(Clone, Debug)]
pub(crate) struct NewSubscription {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) identity: String,
    pub(crate) schools: Vec<String>,
    pub(crate) toetscodes: Vec<String>,
    /// Start after the newest statement instead of delivering the whole history.
    pub(crate) from_now: bool,
    /// CA certificates (normalised PEM, `bridge::trust::check_ca_pem`) to trust besides the system's roots.
    pub(crate) ca_pem: Option<String>,
}

/// A statement waiting for one LRS, with what identity rendering needs.
#[derive(Clone, Debug)]
pub(crate) struct PendingStatement {
    pub(crate) seq: i64,
    pub(crate) id: String,
    pub(crate) statement: String,
    pub(crate) leerlingid: Option<String>,
    pub(crate) eckid: Option<String>,
    pub(crate) brincode: Option<String>,
    pub(crate) dependancecode: Option<String>,
    pub(crate) schoolkey: Option<String>,
    /// See `StatementRow::keyed`.
    pub(crate) keyed: bool,
}

/// A statement an LRS refused, as `outbox dead-letters` lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct DeadLetterRow {
    pub(crate) lrs: String,
    pub(crate) statement_id: String,
    pub(crate) seq: i64,
    pub(crate) status: Option<i64>,
    pub(crate) answer: String,
    pub(crate) failed_at: String,
    pub(crate) attempts: i64,
    pub(crate) requeued: bool,
}

/// Delivery state of one subscription, as `outbox status` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OutboxStatusRow {
    pub lrs: String,
    pub cursor_seq: i64,
    pub pending: i64,
    pub oldest_pending_stored_at: Option<String>,
    pub dead_letters: i64,
    pub requeued: i64,
    pub delivered: i64,
    pub last_attempt_at: Option<String>,
    pub last_delivered_at: Option<String>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

/// Stores a generated statement under the next `seq`. Must run on the writer thread.
///
/// On PostgreSQL the number comes from `statement_counter` under its row lock, held to
/// COMMIT: statements commit in `seq` order even when the publisher and an erasure write at
/// once, so a delivery cursor never passes a statement that commits later.
pub(crate) fn insert_statement(connection: &Db, row: &StatementRow) -> Result<i64, StoreError> {
    let stored_at = now_text();
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![
        &row.id,
        &row.school_id,
        &row.afname_id,
        &row.toetscode,
        &stored_at,
        &row.verb_id,
        &row.activity_id,
        &row.registration,
        &row.agent,
        &row.leerlingid,
        &row.eckid,
        &row.statement,
        &row.keyed,
    ];
    if connection.is_postgres() {
        // The number and the row in one statement (one round trip per statement).
        return Ok(connection
            .prepare_cached(
                "WITH counter AS (UPDATE statement_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq)
                 INSERT INTO xapi_statements (id, seq, school_id, afname_id, toetscode, stored_at, verb_id, activity_id,
                   registration, agent, leerlingid, eckid, statement, keyed)
                 SELECT ?1, counter.seq, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13 FROM counter
                 RETURNING seq",
            )?
            .query_row(values, |found| found.get(0))?);
    }
    let seq: i64 = connection
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM xapi_statements")?
        .query_row(rusqlite::params![], |r| r.get(0))?;
    values.push(&seq);
    connection
        .prepare_cached(
            "INSERT INTO xapi_statements (id, seq, school_id, afname_id, toetscode, stored_at, verb_id, activity_id,
               registration, agent, leerlingid, eckid, statement, keyed)
             VALUES (?1, ?14, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?
        .execute(values)?;
    Ok(seq)
}

/// Inserts each of `rows` whose id is not stored yet (a repeated erasure writes a voiding
/// statement once); how many it inserted.
pub(crate) fn insert_new_statements(
    connection: &Db,
    rows: &[StatementRow],
) -> Result<u64, StoreError> {
    let mut inserted = 0;
    for row in rows {
        if !statement_exists(connection, &row.id)? {
            insert_statement(connection, row)?;
            inserted += 1;
        }
    }
    Ok(inserted)
}

pub(crate) fn statement_exists(connection: &Db, id: &str) -> Result<bool, StoreError> {
    Ok(connection
        .prepare_cached("SELECT 1 FROM xapi_statements WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The id and toetscode of the afname's statement that is not voided, if any.
pub(crate) fn live_statement(
    connection: &Db,
    afname_id: i64,
) -> Result<Option<(String, String)>, StoreError> {
    Ok(connection
        .prepare_cached(
            "SELECT id, toetscode FROM xapi_statements WHERE afname_id = ?1 AND voided_by IS NULL AND verb_id <> ?2
             ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(params![afname_id, VERB_VOIDED], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?)
}

pub(crate) fn set_voided_by(connection: &Db, id: &str, voided_by: &str) -> Result<(), StoreError> {
    connection
        .prepare_cached("UPDATE xapi_statements SET voided_by = ?2 WHERE id = ?1")?
        .execute(params![id, voided_by])?;
    Ok(())
}

/// The states afnames took with `from_seq < change_seq <= to_seq` that were not quarantined,
/// from the change log, in change order; `school_id` narrows to one school, `None` is every school.
pub(crate) fn changed_afnames(
    connection: &Db,
    school_id: Option<i64>,
    from_seq: i64,
    to_seq: i64,
) -> Result<Vec<AfnameSource>, StoreError> {
    // The state a change reached is the current row while the afname still has that
    // revision, else the history row the next update wrote for it. On PostgreSQL the round
    // is a range of publication positions (`order_changes`), not of change numbers.
    let mut statement = connection.prepare_cached(connection.pick(
        "SELECT a.id, a.school_id, s.code, s.brincode, s.dependancecode, s.schoolkey, s.naam, a.afname_key,
           CASE WHEN h.state IS NULL THEN a.leerlingid ELSE json_extract(h.state, '$.leerlingid') END,
           CASE WHEN h.state IS NULL THEN a.eckid ELSE json_extract(h.state, '$.eckid') END,
           CASE WHEN h.state IS NULL THEN a.resultaatverwerkerid ELSE json_extract(h.state, '$.resultaatverwerkerid') END,
           CASE WHEN h.state IS NULL THEN a.toets_id ELSE json_extract(h.state, '$.toets_id') END,
           CASE WHEN h.state IS NULL THEN a.toetscode ELSE json_extract(h.state, '$.toetscode') END,
           CASE WHEN h.state IS NULL THEN a.versie ELSE json_extract(h.state, '$.versie') END,
           CASE WHEN h.state IS NULL THEN a.toetsonderdeelcode ELSE json_extract(h.state, '$.toetsonderdeelcode') END,
           CASE WHEN h.state IS NULL THEN a.afnamedatum ELSE json_extract(h.state, '$.afnamedatum') END,
           CASE WHEN h.state IS NULL THEN a.derived ELSE json_extract(h.state, '$.derived') END,
           CASE WHEN h.state IS NULL THEN a.result ELSE json_extract(h.state, '$.result') END,
           CASE WHEN g.receipt_id IS NOT NULL AND r.aanmaakdatum IS NOT NULL THEN r.aanmaakdatum
             WHEN h.state IS NULL THEN a.aanmaakdatum ELSE json_extract(h.state, '$.aanmaakdatum') END,
           r.schooljaar, r.xsdversie, c.klantnaam,
           CASE WHEN a.legacy_statement_id THEN NULL ELSE o.klantcode END,
           CASE WHEN h.state IS NULL THEN a.toets_revision ELSE json_extract(h.state, '$.toets_revision') END,
           a.id > COALESCE((SELECT value FROM gateway_settings WHERE name = 'keyed_ids_after_afname_id'), 0)
         FROM toetsafname_changes g JOIN toetsafnames a ON a.id = g.afname_id JOIN schools s ON s.id = a.school_id
           JOIN clients o ON o.id = a.client_id
           LEFT JOIN toetsafnames_history h ON h.afname_id = g.afname_id AND h.revision = g.revision AND a.revision <> g.revision
           -- The receipt of the change itself (an identical resend later moves the afname's link on).
           LEFT JOIN receipts r ON r.id = COALESCE(g.receipt_id,
             CASE WHEN h.state IS NULL THEN a.receipt_id ELSE json_extract(h.state, '$.receipt_id') END)
           LEFT JOIN clients c ON c.id = r.client_id
         WHERE g.change_seq > ?2 AND g.change_seq <= ?3 AND g.quarantined = 0 AND (?1 IS NULL OR a.school_id = ?1)
         ORDER BY g.change_seq",
        "SELECT a.id, a.school_id, s.code, s.brincode, s.dependancecode, s.schoolkey, s.naam, a.afname_key,
           CASE WHEN h.state IS NULL THEN a.leerlingid ELSE (h.state::json->>'leerlingid') END,
           CASE WHEN h.state IS NULL THEN a.eckid ELSE (h.state::json->>'eckid') END,
           CASE WHEN h.state IS NULL THEN a.resultaatverwerkerid ELSE (h.state::json->>'resultaatverwerkerid') END,
           CASE WHEN h.state IS NULL THEN a.toets_id ELSE (h.state::json->>'toets_id')::bigint END,
           CASE WHEN h.state IS NULL THEN a.toetscode ELSE (h.state::json->>'toetscode') END,
           CASE WHEN h.state IS NULL THEN a.versie ELSE (h.state::json->>'versie') END,
           CASE WHEN h.state IS NULL THEN a.toetsonderdeelcode ELSE (h.state::json->>'toetsonderdeelcode') END,
           CASE WHEN h.state IS NULL THEN a.afnamedatum ELSE (h.state::json->>'afnamedatum') END,
           CASE WHEN h.state IS NULL THEN a.derived ELSE (h.state::json->>'derived')::bigint END,
           CASE WHEN h.state IS NULL THEN a.result ELSE (h.state::json->>'result') END,
           CASE WHEN g.receipt_id IS NOT NULL AND r.aanmaakdatum IS NOT NULL THEN r.aanmaakdatum
             WHEN h.state IS NULL THEN a.aanmaakdatum ELSE (h.state::json->>'aanmaakdatum') END,
           r.schooljaar, r.xsdversie, c.klantnaam,
           CASE WHEN a.legacy_statement_id <> 0 THEN NULL ELSE o.klantcode END,
           CASE WHEN h.state IS NULL THEN a.toets_revision ELSE (h.state::json->>'toets_revision')::bigint END,
           1
         FROM change_order po JOIN toetsafname_changes g ON g.change_seq = po.change_seq JOIN toetsafnames a ON a.id = g.afname_id JOIN schools s ON s.id = a.school_id
           JOIN clients o ON o.id = a.client_id
           LEFT JOIN toetsafnames_history h ON h.afname_id = g.afname_id AND h.revision = g.revision AND a.revision <> g.revision
           -- The receipt of the change itself (an identical resend later moves the link of the afname on).
           LEFT JOIN receipts r ON r.id = COALESCE(g.receipt_id,
             CASE WHEN h.state IS NULL THEN a.receipt_id ELSE (h.state::json->>'receipt_id') END)
           LEFT JOIN clients c ON c.id = r.client_id
         WHERE po.position > ?2 AND po.position <= ?3 AND g.quarantined = 0 AND (CAST(?1 AS BIGINT) IS NULL OR a.school_id = ?1)
         ORDER BY po.position",
    ))?;
    let rows = statement
        .query_map(params![school_id, from_seq, to_seq], |row| {
            Ok(AfnameSource {
                id: row.get(0)?,
                school_id: row.get(1)?,
                school_code: row.get(2)?,
                brincode: row.get(3)?,
                dependancecode: row.get(4)?,
                schoolkey: row.get(5)?,
                school_naam: row.get(6)?,
                afname_key: row.get(7)?,
                leerlingid: row.get(8)?,
                eckid: row.get(9)?,
                resultaatverwerkerid: row.get(10)?,
                toets_id: row.get(11)?,
                toetscode: row.get(12)?,
                versie: row.get(13)?,
                toetsonderdeelcode: row.get(14)?,
                afnamedatum: row.get(15)?,
                derived: row.get(16)?,
                result: row.get(17)?,
                aanmaakdatum: row.get(18)?,
                schooljaar: row.get(19)?,
                xsdversie: row.get(20)?,
                klantnaam: row.get(21)?,
                id_klantcode: row.get(22)?,
                toets_revision: row.get(23)?,
                keyed_ids: row.get(24)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The stored toets definition (JSON of `uwlr::Toets`) at `revision` (from history once a
/// correction replaced it), or the current one when no revision is pinned.
pub(crate) fn toets_definition(
    connection: &Db,
    toets_id: i64,
    revision: Option<i64>,
) -> Result<String, StoreError> {
    Ok(connection
        .prepare_cached(
            "SELECT definition FROM (
               SELECT 0 AS place, definition FROM toetsen WHERE id = ?1 AND (CAST(?2 AS BIGINT) IS NULL OR revision = ?2)
               UNION ALL
               SELECT 1 AS place, definition FROM toetsen_history WHERE toets_id = ?1 AND revision = ?2
             ) AS found ORDER BY place LIMIT 1",
        )?
        .query_row(params![toets_id, revision], |row| row.get(0))?)
}

fn json_list(text: String) -> Vec<String> {
    serde_json::from_str(&text).unwrap_or_default()
}

/// Whether an erasure removed this afname (`store::erasure::mark_erased`).
pub(crate) fn afname_erased(connection: &Db, afname_id: i64) -> Result<bool, StoreError> {
    Ok(connection
        .prepare_cached("SELECT 1 FROM xapi_erased_afnames WHERE afname_id = ?1")?
        .query_row([afname_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Where a subscription's password is sealed (the associated data that binds it to its row).
pub(crate) fn password_place(name: &str) -> String {
    format!("xapi_subscriptions.password/{name}")
}

/// Where a subscription's pseudonym key is sealed.
pub(crate) fn pseudonym_key_place(name: &str) -> String {
    format!("xapi_subscriptions.pseudonym_key/{name}")
}

/// Adds a subscription with its password and a new pseudonym key, both sealed with `keyring`.
pub(crate) fn add_subscription(
    connection: &Db,
    new: &NewSubscription,
    pseudonym_key: &[u8],
    keyring: &Keyring,
) -> Result<(), StoreError> {
    let exists = connection
        .query_row(
            "SELECT 1 FROM xapi_subscriptions WHERE name = ?1",
            [&new.name],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if exists {
        return Err(StoreError::already_exists(format!(
            "an LRS named {} (remove it first)",
            new.name
        )));
    }
    connection.execute(
        "INSERT INTO xapi_subscriptions (name, url, username, password, identity, pseudonym_key, schools, toetscodes,
           cursor_seq, created_at, ca_pem)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,
           CASE WHEN ?10 THEN (SELECT COALESCE(MAX(seq), 0) FROM xapi_statements) ELSE 0 END, ?9, ?11)",
        params![
            new.name,
            new.url,
            new.username,
            new.password
                .as_ref()
                .map(|password| keyring.seal(&password_place(&new.name), password.expose().as_bytes())),
            new.identity,
            keyring
                .seal(&pseudonym_key_place(&new.name), pseudonym_key)
                .into_bytes(),
            serde_json::to_string(&new.schools).unwrap_or_else(|_| "[]".into()),
            serde_json::to_string(&new.toetscodes).unwrap_or_else(|_| "[]".into()),
            now_text(),
            new.from_now,
            new.ca_pem,
        ],
    )?;
    super::admin::audit(
        connection,
        "cli",
        "lrs.add",
        &format!(
            "{} {}{}",
            new.name,
            new.url,
            if new.ca_pem.is_some() {
                " (own CA)"
            } else {
                ""
            }
        ),
    )?;
    Ok(())
}

pub(crate) fn remove_subscription(connection: &Db, name: &str) -> Result<bool, StoreError> {
    let removed = connection.execute("DELETE FROM xapi_subscriptions WHERE name = ?1", [name])? > 0;
    if removed {
        super::admin::audit(connection, "cli", "lrs.remove", name)?;
    }
    Ok(removed)
}

pub(crate) fn list_subscriptions(connection: &Db) -> Result<Vec<SubscriptionRow>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT id, name, url, username, password, identity, pseudonym_key, schools, toetscodes, cursor_seq,
           last_attempt_at, last_delivered_at, last_status, last_error, delivered, ca_pem
         FROM xapi_subscriptions ORDER BY name",
    )?;
    let rows = statement
        .query_map(rusqlite::params![], |row| {
            Ok(SubscriptionRow {
                id: row.get(0)?,
                name: row.get(1)?,
                url: row.get(2)?,
                username: row.get(3)?,
                password: row
                    .get::<_, Option<String>>(4)?
                    .map(|text| Sealed::new(text.into_bytes())),
                identity: row.get(5)?,
                pseudonym_key: Sealed::new(row.get::<_, Vec<u8>>(6)?),
                schools: json_list(row.get(7)?),
                toetscodes: json_list(row.get(8)?),
                cursor_seq: row.get(9)?,
                last_attempt_at: row.get(10)?,
                last_delivered_at: row.get(11)?,
                last_status: row.get(12)?,
                last_error: row.get(13)?,
                delivered: row.get(14)?,
                ca_pem: row.get(15)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

const PENDING_COLUMNS: &str =
    "x.seq, x.id, x.statement, x.leerlingid, x.eckid, s.brincode, s.dependancecode,
    s.schoolkey, x.keyed";

/// A subscription's filters (JSON lists of school codes and toetscodes, `[]` for all).
fn filter(connection: &Db) -> &'static str {
    connection.pick(
        "(CAST(?2 AS TEXT) = '[]' OR s.code IN (SELECT value FROM json_each(?2)))
         AND (CAST(?3 AS TEXT) = '[]' OR x.toetscode IN (SELECT value FROM json_each(?3)))",
        "(CAST(?2 AS TEXT) = '[]' OR s.code IN (SELECT json_array_elements_text(?2::json)))
         AND (CAST(?3 AS TEXT) = '[]' OR x.toetscode IN (SELECT json_array_elements_text(?3::json)))",
    )
}

fn pending_row(row: &super::db::Row<'_, '_>) -> rusqlite::Result<PendingStatement> {
    Ok(PendingStatement {
        seq: row.get(0)?,
        id: row.get(1)?,
        statement: row.get(2)?,
        leerlingid: row.get(3)?,
        eckid: row.get(4)?,
        brincode: row.get(5)?,
        dependancecode: row.get(6)?,
        schoolkey: row.get(7)?,
        keyed: row.get(8)?,
    })
}

fn filters(subscription: &SubscriptionRow) -> (String, String) {
    (
        serde_json::to_string(&subscription.schools).unwrap_or_else(|_| "[]".into()),
        serde_json::to_string(&subscription.toetscodes).unwrap_or_else(|_| "[]".into()),
    )
}

/// The next statements after the subscription's cursor that its filter lets through, in seq order.
pub(crate) fn pending_batch(
    connection: &Db,
    subscription: &SubscriptionRow,
    after_seq: i64,
    limit: usize,
) -> Result<Vec<PendingStatement>, StoreError> {
    let (schools, toetscodes) = filters(subscription);
    let sql = format!(
        "SELECT {PENDING_COLUMNS} FROM xapi_statements x JOIN schools s ON s.id = x.school_id
         WHERE x.seq > ?1 AND {filter} ORDER BY x.seq LIMIT ?4",
        filter = filter(connection)
    );
    let rows = connection
        .prepare_cached(&sql)?
        .query_map(
            params![after_seq, schools, toetscodes, limit as i64],
            pending_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Dead letters of this subscription that `outbox retry` requeued.
pub(crate) fn requeued_batch(
    connection: &Db,
    subscription_id: i64,
    limit: usize,
) -> Result<Vec<PendingStatement>, StoreError> {
    let sql = format!(
        "SELECT {PENDING_COLUMNS} FROM xapi_dead_letters d JOIN xapi_statements x ON x.id = d.statement_id
           JOIN schools s ON s.id = x.school_id
         WHERE d.subscription_id = ?1 AND d.requeued = 1 ORDER BY d.seq LIMIT ?2"
    );
    let rows = connection
        .prepare_cached(&sql)?
        .query_map(params![subscription_id, limit as i64], pending_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Records a delivered batch: the cursor moves to `to_seq` (never back) and requeued letters in it are cleared.
pub(crate) fn mark_delivered(
    connection: &Db,
    subscription_id: i64,
    to_seq: Option<i64>,
    statement_ids: &[String],
    status: u16,
) -> Result<(), StoreError> {
    let now = now_text();
    connection
        .prepare_cached(connection.pick(
            "UPDATE xapi_subscriptions SET cursor_seq = MAX(cursor_seq, COALESCE(?2, cursor_seq)),
               delivered = delivered + ?3, last_attempt_at = ?4, last_delivered_at = ?4, last_status = ?5,
               last_error = NULL
             WHERE id = ?1",
            "UPDATE xapi_subscriptions SET cursor_seq = GREATEST(cursor_seq, COALESCE(?2, cursor_seq)),
               delivered = delivered + ?3, last_attempt_at = ?4, last_delivered_at = ?4, last_status = ?5,
               last_error = NULL
             WHERE id = ?1",
        ))?
        .execute(params![subscription_id, to_seq, statement_ids.len() as i64, now, status])?;
    if to_seq.is_none() {
        let mut remove = connection.prepare_cached(
            "DELETE FROM xapi_dead_letters WHERE subscription_id = ?1 AND statement_id = ?2",
        )?;
        for id in statement_ids {
            remove.execute(params![subscription_id, id])?;
        }
    }
    Ok(())
}

/// Records a refused statement as a dead letter and, when it came from the cursor, moves past it.
pub(crate) fn dead_letter(
    connection: &Db,
    subscription_id: i64,
    statement: &PendingStatement,
    from_cursor: bool,
    status: Option<u16>,
    answer: &str,
) -> Result<(), StoreError> {
    let now = now_text();
    connection
        .prepare_cached(
            "INSERT INTO xapi_dead_letters (subscription_id, statement_id, seq, status, answer, failed_at, attempts, requeued)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, 1, 0 WHERE EXISTS (SELECT 1 FROM xapi_subscriptions WHERE id = ?1)
             ON CONFLICT (subscription_id, statement_id) DO UPDATE SET status = excluded.status,
               answer = excluded.answer, failed_at = excluded.failed_at, attempts = xapi_dead_letters.attempts + 1, requeued = 0",
        )?
        .execute(params![subscription_id, statement.id, statement.seq, status, answer, now])?;
    connection
        .prepare_cached(connection.pick(
            "UPDATE xapi_subscriptions SET cursor_seq = CASE WHEN ?2 THEN MAX(cursor_seq, ?3) ELSE cursor_seq END,
               last_attempt_at = ?4, last_status = ?5, last_error = ?6 WHERE id = ?1",
            "UPDATE xapi_subscriptions SET cursor_seq = CASE WHEN ?2 THEN GREATEST(cursor_seq, ?3) ELSE cursor_seq END,
               last_attempt_at = ?4, last_status = ?5, last_error = ?6 WHERE id = ?1",
        ))?
        .execute(params![subscription_id, from_cursor, statement.seq, now, status, truncate(answer, 500)])?;
    Ok(())
}

/// Records a failed attempt that will be retried.
pub(crate) fn record_failure(
    connection: &Db,
    subscription_id: i64,
    status: Option<u16>,
    error: &str,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "UPDATE xapi_subscriptions SET last_attempt_at = ?2, last_status = ?3, last_error = ?4 WHERE id = ?1",
        )?
        .execute(params![subscription_id, now_text(), status, truncate(error, 500)])?;
    Ok(())
}

fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Requeues dead letters (of one LRS, or all); returns how many.
pub(crate) fn requeue_dead_letters(
    connection: &Db,
    lrs: Option<&str>,
) -> Result<usize, StoreError> {
    let changed = connection.execute(
        "UPDATE xapi_dead_letters SET requeued = 1 WHERE requeued = 0 AND (CAST(?1 AS TEXT) IS NULL OR subscription_id =
           (SELECT id FROM xapi_subscriptions WHERE name = ?1))",
        params![lrs],
    )?;
    super::admin::audit(
        connection,
        "cli",
        "outbox.retry",
        &format!("{} {changed}", lrs.unwrap_or("*")),
    )?;
    Ok(changed)
}

pub(crate) fn list_dead_letters(
    connection: &Db,
    lrs: Option<&str>,
) -> Result<Vec<DeadLetterRow>, StoreError> {
    let rows = connection
        .prepare(
            "SELECT s.name, d.statement_id, d.seq, d.status, d.answer, d.failed_at, d.attempts, d.requeued
             FROM xapi_dead_letters d JOIN xapi_subscriptions s ON s.id = d.subscription_id
             WHERE CAST(?1 AS TEXT) IS NULL OR s.name = ?1 ORDER BY s.name, d.seq",
        )?
        .query_map(params![lrs], |row| {
            Ok(DeadLetterRow {
                lrs: row.get(0)?,
                statement_id: row.get(1)?,
                seq: row.get(2)?,
                status: row.get(3)?,
                answer: row.get(4)?,
                failed_at: row.get(5)?,
                attempts: row.get(6)?,
                requeued: row.get(7)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// What `reseal_secrets` did.
#[derive(Debug, Default)]
pub(crate) struct Resealed {
    /// Values sealed anew under the keyring's first key.
    pub(crate) resealed: usize,
    /// Values no key of the keyring opens: where, and why.
    pub(crate) unopened: Vec<crate::secret::SecretError>,
}

/// Seals every subscription secret and the gateway's id key that is not sealed under the keyring's first key: clear
/// values of databases from before sealing, and values under an older key after a rotation.
/// A value no key opens is left as it is and reported.
pub(crate) fn reseal_secrets(connection: &Db, keyring: &Keyring) -> Result<Resealed, StoreError> {
    let mut outcome = Resealed::default();
    for row in list_subscriptions(connection)? {
        let places = [
            ("password", password_place(&row.name), row.password.clone()),
            (
                "pseudonym_key",
                pseudonym_key_place(&row.name),
                Some(row.pseudonym_key.clone()),
            ),
        ];
        for (column, place, stored) in places {
            let Some(stored) = stored.filter(|stored| !keyring.is_current(stored.bytes())) else {
                continue;
            };
            match keyring.reveal(&place, stored.bytes()) {
                Ok(clear) => {
                    let sealed = keyring.seal(&place, &clear);
                    // The password column is text, the pseudonym key a blob, as they always were.
                    let value: rusqlite::types::Value = if column == "password" {
                        sealed.into()
                    } else {
                        sealed.into_bytes().into()
                    };
                    connection.execute(
                        &format!("UPDATE xapi_subscriptions SET {column} = ?1 WHERE id = ?2"),
                        params![value, row.id],
                    )?;
                    outcome.resealed += 1;
                }
                Err(error) => outcome.unopened.push(error),
            }
        }
    }
    // The gateway's id key (in the core) is a secret of the same kind.
    if let Some(stored) =
        sealed_id_key(connection)?.filter(|stored| !keyring.is_current(stored.bytes()))
    {
        match keyring.reveal(ID_KEY_PLACE, stored.bytes()) {
            Ok(clear) => {
                store_id_key(connection, keyring.seal(ID_KEY_PLACE, &clear).as_bytes())?;
                outcome.resealed += 1;
            }
            Err(error) => outcome.unopened.push(error),
        }
    }
    super::erasure::reseal_gateway_keys(connection, keyring, &mut outcome)?;
    Ok(outcome)
}

/// `outbox_status` on a connection of the caller's (the integration tests read a
/// gateway's database this way).
pub fn outbox_status_of(connection: &Db<'_>) -> Result<Vec<OutboxStatusRow>, StoreError> {
    outbox_status(connection)
}

/// Pending counts, lag and last outcome per subscription.
pub(crate) fn outbox_status(connection: &Db) -> Result<Vec<OutboxStatusRow>, StoreError> {
    let mut rows = Vec::new();
    for subscription in list_subscriptions(connection)? {
        let (schools, toetscodes) = filters(&subscription);
        let sql = format!(
            "SELECT count(*), MIN(x.stored_at) FROM xapi_statements x JOIN schools s ON s.id = x.school_id
             WHERE x.seq > ?1 AND {filter}",
            filter = filter(connection)
        );
        let (pending, oldest): (i64, Option<String>) = connection.prepare_cached(&sql)?.query_row(
            params![subscription.cursor_seq, schools, toetscodes],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let (dead_letters, requeued): (i64, i64) = connection.query_row(
            "SELECT count(*), COALESCE(SUM(requeued), 0) FROM xapi_dead_letters WHERE subscription_id = ?1",
            [subscription.id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        rows.push(OutboxStatusRow {
            lrs: subscription.name,
            cursor_seq: subscription.cursor_seq,
            pending,
            oldest_pending_stored_at: oldest,
            dead_letters,
            requeued,
            delivered: subscription.delivered,
            last_attempt_at: subscription.last_attempt_at,
            last_delivered_at: subscription.last_delivered_at,
            last_status: subscription.last_status,
            last_error: subscription.last_error,
        });
    }
    Ok(rows)
}

/// The base IRI the statements in `xapi.sqlite` were made under, pinned at first use.
pub(crate) fn pin_base_iri(connection: &Db, base_iri: &str) -> Result<String, StoreError> {
    connection.execute(
        "INSERT INTO xapi_settings (name, value) VALUES ('xapi_base_iri', ?1) ON CONFLICT (name) DO NOTHING",
        [base_iri],
    )?;
    Ok(connection.query_row(
        "SELECT value FROM xapi_settings WHERE name = 'xapi_base_iri'",
        rusqlite::params![],
        |row| row.get(0),
    )?)
}

/// Where the gateway's id key is sealed (in the core, `gateway_settings`).
pub(crate) const ID_KEY_PLACE: &str = "gateway_settings.xapi_id_key";

/// The gateway's sealed id key, if one was made.
pub(crate) fn sealed_id_key(connection: &Db) -> Result<Option<Sealed>, StoreError> {
    Ok(connection
        .query_row(
            "SELECT value FROM gateway_settings WHERE name = 'xapi_id_key'",
            rusqlite::params![],
            |row| row.get::<_, Vec<u8>>(0),
        )
        .optional()?
        .map(Sealed::new))
}

/// Stores the sealed id key (a new one, or one sealed anew under the current key).
pub(crate) fn store_id_key(connection: &Db, sealed: &[u8]) -> Result<(), StoreError> {
    connection.execute(
        "INSERT INTO gateway_settings (name, value) VALUES ('xapi_id_key', ?1)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        [sealed],
    )?;
    Ok(())
}

/// Stores a first id key unless one is stored already (another instance starting at the
/// same moment may have made one: every instance must use the same key).
pub(crate) fn store_first_id_key(connection: &Db, sealed: &[u8]) -> Result<(), StoreError> {
    connection.execute(
        "INSERT INTO gateway_settings (name, value) VALUES ('xapi_id_key', ?1)
         ON CONFLICT (name) DO NOTHING",
        [sealed],
    )?;
    Ok(())
}

/// Forgets the gateway's id key (`secrets reset-id-key`); returns whether one was stored.
pub(crate) fn forget_id_key(connection: &Db) -> Result<bool, StoreError> {
    Ok(connection.execute(
        "DELETE FROM gateway_settings WHERE name = 'xapi_id_key'",
        rusqlite::params![],
    )? > 0)
}

/// Where the publisher is in the change log: every change up to it has its statements here.
pub(crate) fn publisher_cursor(connection: &Db) -> Result<i64, StoreError> {
    Ok(connection
        .prepare_cached("SELECT cursor_seq FROM xapi_publisher WHERE id = 1")?
        .query_row(rusqlite::params![], |row| row.get(0))?)
}

/// Moves the publisher's cursor, in the transaction that writes the round's statements.
pub(crate) fn set_publisher_cursor(connection: &Db, change_seq: i64) -> Result<(), StoreError> {
    connection
        .prepare_cached("UPDATE xapi_publisher SET cursor_seq = ?1 WHERE id = 1")?
        .execute([change_seq])?;
    Ok(())
}

/// Where the publisher is in the change feed (its cursor), and where the feed ends (on
/// PostgreSQL: the last position `order_changes` handed out).
pub(crate) fn publisher_position(connection: &Db) -> Result<(i64, i64), StoreError> {
    let end = if connection.is_postgres() {
        connection
            .prepare_cached("SELECT COALESCE(MAX(position), 0) FROM change_order")?
            .query_row(rusqlite::params![], |row| row.get(0))?
    } else {
        super::intake::read_change_seq(connection)?
    };
    Ok((publisher_cursor(connection)?, end))
}

/// Where the publisher is and how far the change log reaches, for operators (status page,
/// metrics, `outbox status`): on SQLite `publisher_position`; on PostgreSQL the end also
/// counts the committed changes not yet given a position (`order_changes`), so the lag
/// says how many accepted changes still wait for their statements.
pub fn publisher_progress(connection: &Db) -> Result<(i64, i64), StoreError> {
    if !connection.is_postgres() {
        return publisher_position(connection);
    }
    // One statement, so one snapshot: read apart, a round of `order_changes` between the
    // cursor and the count would make waiting changes look published.
    Ok(connection
        .prepare_cached(
            "SELECT (SELECT cursor_seq FROM xapi_publisher WHERE id = 1),
                    (SELECT COALESCE(MAX(position), 0) FROM change_order)
                    + (SELECT count(*) FROM toetsafname_changes
                       WHERE xid >= (SELECT cursor_xid FROM xapi_publisher WHERE id = 1))",
        )?
        .query_row(rusqlite::params![], |row| Ok((row.get(0)?, row.get(1)?)))?)
}

/// The publisher's cursor, locked until the round's transaction ends (on PostgreSQL, where
/// two instances' rounds could otherwise both write from the same cursor; SQLite's one
/// writer needs no lock).
pub(crate) fn lock_publisher_cursor(connection: &Db) -> Result<i64, StoreError> {
    Ok(connection
        .prepare_cached(connection.pick(
            "SELECT cursor_seq FROM xapi_publisher WHERE id = 1",
            "SELECT cursor_seq FROM xapi_publisher WHERE id = 1 FOR UPDATE",
        ))?
        .query_row(rusqlite::params![], |row| row.get(0))?)
}

/// PostgreSQL only (nothing to do on SQLite, whose one writer numbers changes in commit
/// order): gives every change that can no longer be joined by a lower-numbered one its
/// publication position. Changes of transactions below the horizon
/// `pg_snapshot_xmin(pg_current_snapshot())` have all ended, so none can still commit
/// among them; they are appended to `change_order` in `(xid, change_seq)` order, and
/// `xapi_publisher.cursor_xid` remembers the horizon. The publisher then pages through
/// positions as SQLite's pages through change numbers. Returns how many it ordered.
pub(crate) fn order_changes(connection: &Db) -> Result<usize, StoreError> {
    if !connection.is_postgres() {
        return Ok(0);
    }
    let ordered_below: i64 = connection
        .prepare_cached("SELECT cursor_xid FROM xapi_publisher WHERE id = 1 FOR UPDATE")?
        .query_row(rusqlite::params![], |row| row.get(0))?;
    let horizon: i64 = connection
        .prepare_cached("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")?
        .query_row(rusqlite::params![], |row| row.get(0))?;
    if horizon == ordered_below {
        return Ok(0);
    }
    let ordered = if horizon > ordered_below {
        connection
            .prepare_cached(
                // xid order is not commit order: a transaction can take its xid early and then
                // wait on a school's row behind a later one, and write a newer revision of an
                // afname after it. So within the batch each afname's changes keep their
                // revision order: a change sorts at the highest xid of its afname's changes up
                // to its revision. (Changes of a restored database ordered already are skipped.)
                "INSERT INTO change_order (change_seq)
                 SELECT change_seq FROM (
                   SELECT change_seq, afname_id, revision, xid,
                     max(xid) OVER (PARTITION BY afname_id ORDER BY revision, xid, change_seq
                                    ROWS UNBOUNDED PRECEDING) AS effective
                   FROM toetsafname_changes WHERE xid >= ?1 AND xid < ?2
                 ) AS batch
                 ORDER BY effective, afname_id, revision, xid, change_seq
                 ON CONFLICT (change_seq) DO NOTHING",
            )?
            .execute(params![ordered_below, horizon])?
    } else {
        // The horizon went back: the database was restored into another cluster (pg_dump),
        // whose transaction ids started over. Every change not ordered yet that is not a
        // transaction of this cluster still running is ordered now, the old cluster's first.
        tracing::warn!(
            ordered_below,
            horizon,
            "transaction ids went back (a restore into another cluster?): ordering every change not yet ordered"
        );
        connection
            .prepare_cached(
                "INSERT INTO change_order (change_seq)
                 SELECT g.change_seq FROM toetsafname_changes g
                 WHERE (g.xid < ?2 OR g.xid >= ?1)
                   AND NOT EXISTS (SELECT 1 FROM change_order o WHERE o.change_seq = g.change_seq)
                 ORDER BY g.xid >= ?1 DESC, g.xid, g.change_seq",
            )?
            .execute(params![ordered_below, horizon])?
    };
    connection
        .prepare_cached("UPDATE xapi_publisher SET cursor_xid = ?1 WHERE id = 1")?
        .execute([horizon])?;
    Ok(ordered)
}

/// The outbox as the publisher reads and writes it, on one connection: the change log and
/// toets definitions it reads from the core, the statements and cursor it writes.
#[derive(Clone, Copy)]
pub(crate) struct Outbox<'a> {
    connection: &'a Db<'a>,
}

impl<'a> Outbox<'a> {
    /// The outbox seen through a connection a store job got.
    pub(crate) fn new(connection: &'a Db<'a>) -> Outbox<'a> {
        Outbox { connection }
    }

    /// Runs `job`'s reads in one snapshot, ended when the job returns.
    pub(crate) fn snapshot<R, E: From<StoreError>>(
        &self,
        job: impl FnOnce(&Outbox) -> Result<R, E>,
    ) -> Result<R, E> {
        super::connection::in_snapshot(self.connection, |snapshot| job(&Outbox::new(snapshot)))
    }

    /// `publisher_position`.
    pub(crate) fn publisher_position(&self) -> Result<(i64, i64), StoreError> {
        publisher_position(self.connection)
    }

    /// `lock_publisher_cursor`.
    pub(crate) fn lock_publisher_cursor(&self) -> Result<i64, StoreError> {
        lock_publisher_cursor(self.connection)
    }

    /// `order_changes`.
    pub(crate) fn order_changes(&self) -> Result<usize, StoreError> {
        order_changes(self.connection)
    }

    /// `set_publisher_cursor`.
    pub(crate) fn set_publisher_cursor(&self, change_seq: i64) -> Result<(), StoreError> {
        set_publisher_cursor(self.connection, change_seq)
    }

    /// `changed_afnames` of every school.
    pub(crate) fn changed_afnames(
        &self,
        from_seq: i64,
        to_seq: i64,
    ) -> Result<Vec<AfnameSource>, StoreError> {
        changed_afnames(self.connection, None, from_seq, to_seq)
    }

    /// `toets_definition`.
    pub(crate) fn toets_definition(
        &self,
        toets_id: i64,
        revision: Option<i64>,
    ) -> Result<String, StoreError> {
        toets_definition(self.connection, toets_id, revision)
    }

    /// `afname_erased`.
    pub(crate) fn afname_erased(&self, afname_id: i64) -> Result<bool, StoreError> {
        afname_erased(self.connection, afname_id)
    }

    /// `live_statement`.
    pub(crate) fn live_statement(
        &self,
        afname_id: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        live_statement(self.connection, afname_id)
    }

    /// `statement_exists`.
    pub(crate) fn statement_exists(&self, id: &str) -> Result<bool, StoreError> {
        statement_exists(self.connection, id)
    }

    /// `set_voided_by`.
    pub(crate) fn set_voided_by(&self, id: &str, voided_by: &str) -> Result<(), StoreError> {
        set_voided_by(self.connection, id, voided_by)
    }

    /// `insert_statement`.
    pub(crate) fn insert_statement(&self, row: &StatementRow) -> Result<i64, StoreError> {
        insert_statement(self.connection, row)
    }
}
