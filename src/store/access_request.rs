//! An access request's answer: everything the gateway holds about one learner, as one JSON document.

use super::db::Db;
use super::erasure::Learner;
use super::StoreError;
use rusqlite::params;
use serde_json::Value;

/// The shape README "Privacy and retention" documents; `format` names its version.
pub(crate) const FORMAT: &str = "uwlr-gateway/leerling-export/v1";

fn json_rows(
    connection: &Db,
    sql: &str,
    params: impl super::db::SqlParams,
) -> Result<Vec<Value>, StoreError> {
    let mut statement = connection.prepare(sql)?;
    let rows = statement.query_map(params, |row| row.get::<_, String>(0))?;
    rows.map(|text| {
        let text = text?;
        serde_json::from_str(&text).map_err(|error| StoreError::corrupt("a stored JSON row", error))
    })
    .collect()
}

/// The afnames of the learner (`?1` school id, `?2` leerlingid, `?3` eckid).
const AFNAME_FILTER: &str =
    "a.school_id = ?1 AND (a.leerlingid = ?2 OR (CAST(?3 AS TEXT) IS NOT NULL AND a.eckid = ?3))";

/// The receipts of the messages that brought a state of one of the learner's results, and
/// of those whose violations name the learner (a rejected message with an unknown learner,
/// say), oldest first.
fn learner_receipts(
    snapshot: &Db,
    id: impl super::db::SqlParams,
) -> Result<Vec<Value>, StoreError> {
    let afname_filter = AFNAME_FILTER;
    let receipt_ids: Vec<String> = {
        let sql = if snapshot.is_postgres() {
            format!(
                r#"SELECT a.receipt_id FROM toetsafnames a WHERE {afname_filter}
             UNION SELECT h.replaced_by_receipt_id FROM toetsafnames_history h JOIN toetsafnames a ON a.id = h.afname_id WHERE {afname_filter}
             UNION SELECT h.state::json ->> 'receipt_id' FROM toetsafnames_history h JOIN toetsafnames a ON a.id = h.afname_id
               WHERE {afname_filter} AND h.state::json ->> 'receipt_id' IS NOT NULL
             UNION SELECT r.id FROM receipts r WHERE r.school_id = ?1
               AND (strpos(r.violations, '"' || ?2 || '"') > 0 OR strpos(r.violations, ' ' || ?2) > 0
                 OR (CAST(?3 AS TEXT) IS NOT NULL AND strpos(r.violations, ?3) > 0))"#
            )
        } else {
            format!(
                "SELECT a.receipt_id FROM toetsafnames a WHERE {afname_filter}
             UNION SELECT h.replaced_by_receipt_id FROM toetsafnames_history h JOIN toetsafnames a ON a.id = h.afname_id WHERE {afname_filter}
             UNION SELECT json_extract(h.state, '$.receipt_id') FROM toetsafnames_history h JOIN toetsafnames a ON a.id = h.afname_id
               WHERE {afname_filter} AND json_extract(h.state, '$.receipt_id') IS NOT NULL
             UNION SELECT r.id FROM receipts r WHERE r.school_id = ?1
               AND (instr(r.violations, '\"' || ?2 || '\"') > 0 OR instr(r.violations, ' ' || ?2) > 0
                 OR (CAST(?3 AS TEXT) IS NOT NULL AND instr(r.violations, ?3) > 0))"
            )
        };
        let mut statement = snapshot.prepare(&sql)?;
        let rows = statement.query_map(id, |row| row.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut receipts = Vec::new();
    for receipt_id in &receipt_ids {
        if let Some((_, receipt)) = super::intake::load_receipt(snapshot, receipt_id)? {
            receipts.push(receipt);
        }
    }
    receipts.sort_by(|a, b| a["received_at"].as_str().cmp(&b["received_at"].as_str()));
    Ok(receipts)
}

/// The learner's afnames, each a JSON document with its earlier states (`?1`..`?3` as in
/// `AFNAME_FILTER`).
fn toetsafnames_sql(db: &Db) -> String {
    let afname_filter = AFNAME_FILTER;
    if db.is_postgres() {
        format!(
            "SELECT json_build_object('klantcode', c.klantcode, 'afname_key', a.afname_key, 'leerlingid', a.leerlingid,
               'eckid', a.eckid, 'resultaatverwerkerid', a.resultaatverwerkerid, 'toetscode', a.toetscode,
               'versie', a.versie, 'toetsonderdeelcode', a.toetsonderdeelcode, 'afnamedatum', a.afnamedatum,
               'mutatiedatum', a.mutatiedatum, 'aanmaakdatum', a.aanmaakdatum, 'score', a.score,
               'derived', a.derived = 1, 'result', a.result::json,
               'revision', a.revision, 'quarantined', a.quarantined = 1,
               'receipt_id', a.receipt_id,
               'history', COALESCE((SELECT json_agg(json_build_object('revision', h.revision, 'state', h.state::json,
                              'replaced_at', h.replaced_at, 'replaced_by_receipt_id', h.replaced_by_receipt_id)
                              ORDER BY h.revision)
                           FROM toetsafnames_history h WHERE h.afname_id = a.id), '[]'::json))
             FROM toetsafnames a JOIN clients c ON c.id = a.client_id WHERE {afname_filter} ORDER BY a.id"
        )
    } else {
        format!(
            "SELECT json_object('klantcode', c.klantcode, 'afname_key', a.afname_key, 'leerlingid', a.leerlingid,
               'eckid', a.eckid, 'resultaatverwerkerid', a.resultaatverwerkerid, 'toetscode', a.toetscode,
               'versie', a.versie, 'toetsonderdeelcode', a.toetsonderdeelcode, 'afnamedatum', a.afnamedatum,
               'mutatiedatum', a.mutatiedatum, 'aanmaakdatum', a.aanmaakdatum, 'score', a.score,
               'derived', json(CASE a.derived WHEN 1 THEN 'true' ELSE 'false' END), 'result', json(a.result),
               'revision', a.revision, 'quarantined', json(CASE a.quarantined WHEN 1 THEN 'true' ELSE 'false' END),
               'receipt_id', a.receipt_id,
               'history', (SELECT json_group_array(json_object('revision', h.revision, 'state', json(h.state),
                              'replaced_at', h.replaced_at, 'replaced_by_receipt_id', h.replaced_by_receipt_id))
                           FROM (SELECT * FROM toetsafnames_history WHERE afname_id = a.id ORDER BY revision) h))
             FROM toetsafnames a JOIN clients c ON c.id = a.client_id WHERE {afname_filter} ORDER BY a.id"
        )
    }
}

/// The toetsen the learner's afnames refer to, each a JSON document with its earlier revisions.
fn toetsen_sql(db: &Db) -> String {
    let afname_filter = AFNAME_FILTER;
    if db.is_postgres() {
        format!(
            "SELECT json_build_object('klantcode', c.klantcode, 'toetscode', t.toetscode, 'versie', t.versie,
               'revision', t.revision, 'definition', t.definition::json, 'updated_at', t.updated_at,
               'earlier_revisions', COALESCE((SELECT json_agg(json_build_object('revision', h.revision,
                   'definition', h.definition::json, 'replaced_at', h.replaced_at) ORDER BY h.revision)
                 FROM toetsen_history h WHERE h.toets_id = t.id), '[]'::json))
             FROM toetsen t JOIN clients c ON c.id = t.client_id
             WHERE t.id IN (SELECT a.toets_id FROM toetsafnames a WHERE {afname_filter}) ORDER BY t.id"
        )
    } else {
        format!(
            "SELECT json_object('klantcode', c.klantcode, 'toetscode', t.toetscode, 'versie', t.versie,
               'revision', t.revision, 'definition', json(t.definition), 'updated_at', t.updated_at,
               'earlier_revisions', (SELECT json_group_array(json_object('revision', h.revision,
                   'definition', json(h.definition), 'replaced_at', h.replaced_at))
                 FROM (SELECT * FROM toetsen_history WHERE toets_id = t.id ORDER BY revision) h))
             FROM toetsen t JOIN clients c ON c.id = t.client_id
             WHERE t.id IN (SELECT a.toets_id FROM toetsafnames a WHERE {afname_filter}) ORDER BY t.id"
        )
    }
}

/// Everything about `learner`, read in one snapshot: the roster row, results with their
/// history (quarantined ones flagged), the toets definitions they refer to, the receipts of
/// the messages that brought them or named the learner (without keys; a sender's key is never
/// stored), statements about them, the reads that returned them, and which LRSs received them.
pub(crate) fn export(
    connection: &Db,
    learner: &Learner,
    exported_at: &str,
) -> Result<Value, StoreError> {
    let guard = super::connection::Snapshot::begin(connection)?;
    let snapshot = guard.db();
    let id = params![learner.school_id, learner.leerlingid, learner.eckid];
    // Each document is built in SQL: SQLite's json_object and json_group_array, PostgreSQL's
    // json_build_object and json_agg; stored JSON text is embedded as JSON, not as a string.
    let leerling = json_rows(
        snapshot,
        snapshot.pick(
            "SELECT json_object('leerlingid', leerlingid, 'eckid', eckid, 'naam', naam, 'imported_at', imported_at)
             FROM leerlingen WHERE school_id = ?1 AND (leerlingid = ?2 OR (CAST(?3 AS TEXT) IS NOT NULL AND eckid = ?3))",
            "SELECT json_build_object('leerlingid', leerlingid, 'eckid', eckid, 'naam', naam, 'imported_at', imported_at)
             FROM leerlingen WHERE school_id = ?1 AND (leerlingid = ?2 OR (CAST(?3 AS TEXT) IS NOT NULL AND eckid = ?3))",
        ),
        id,
    )?
    .into_iter()
    .next()
    .unwrap_or(Value::Null);
    let toetsafnames = json_rows(snapshot, &toetsafnames_sql(snapshot), id)?;
    let toetsen = json_rows(snapshot, &toetsen_sql(snapshot), id)?;
    let receipts = learner_receipts(snapshot, id)?;
    let statements = json_rows(
        snapshot,
        snapshot.pick(
            "SELECT json_object('id', id, 'stored_at', stored_at, 'verb', verb_id, 'voided_by', voided_by,
               'statement', json(statement))
             FROM xapi_statements WHERE school_id = ?1 AND (leerlingid = ?2 OR (CAST(?3 AS TEXT) IS NOT NULL AND eckid = ?3))
             ORDER BY seq",
            "SELECT json_build_object('id', id, 'stored_at', stored_at, 'verb', verb_id, 'voided_by', voided_by,
               'statement', statement::json)
             FROM xapi_statements WHERE school_id = ?1 AND (leerlingid = ?2 OR (CAST(?3 AS TEXT) IS NOT NULL AND eckid = ?3))
             ORDER BY seq",
        ),
        id,
    )?;
    let reads = json_rows(
        snapshot,
        snapshot.pick(
            "SELECT json_object('at', r.at, 'reader', d.name, 'api', r.api, 'request', r.request, 'status', r.status)
             FROM read_audit r JOIN readers d ON d.id = r.reader_id
             WHERE r.school = ?1 AND EXISTS (SELECT 1 FROM json_each(r.leerlingen) WHERE value = ?2)
             ORDER BY r.at, r.id",
            r#"SELECT json_build_object('at', r.at, 'reader', d.name, 'api', r.api, 'request', r.request, 'status', r.status)
             FROM read_audit r JOIN readers d ON d.id = r.reader_id
             WHERE r.school = ?1 AND EXISTS (SELECT 1 FROM json_array_elements_text(r.leerlingen::json) WHERE value = ?2)
             ORDER BY r.at COLLATE "C", r.id"#,
        ),
        params![learner.school, learner.leerlingid],
    )?;
    let school = crate::domain::SchoolCode::parse(&learner.school)
        .map_err(|error| StoreError::corrupt(format!("stored school {}", learner.school), error))?;
    let learner_register = super::disclosures::register(
        snapshot,
        &school,
        Some(&learner.leerlingid),
        learner.eckid.as_deref(),
    )?;
    let school_register = super::disclosures::register(snapshot, &school, None, None)?;
    guard.finish()?;
    Ok(serde_json::json!({
        "format": FORMAT,
        "exported_at": exported_at,
        "school": learner.school,
        "leerlingid": learner.leerlingid,
        "eckid": learner.eckid,
        "leerling": leerling,
        "toetsafnames": toetsafnames,
        "toetsen": toetsen,
        "receipts": receipts,
        "statements": statements,
        "reads": reads,
        "lrs": learner_register.lrs,
        "disclosures": school_register,
    }))
}

#[cfg(test)]
#[path = "engine_parity_tests.rs"]
mod engine_parity_tests;
