//! Writes statements inside the transaction that changed the afnames: a new statement per created or corrected afname, a voiding statement for the one it replaces.

use super::xapi::{Mapping, Statement, StatementObject};
use super::BridgeError;
use crate::store::intake::read_change_seq;
use crate::store::outbox::{self, AfnameSource, StatementRow};
use crate::uwlr::Toets;
use rusqlite::Connection;
use std::collections::HashMap;

/// How many re-issue suffixes are tried before giving up (MAPPING.md C14); one is the usual case.
const MAX_REISSUE: u32 = 1000;

/// Generates the statements of afnames changed with `from_seq < change_seq <= to_seq` that are
/// not quarantined (one school, or all with `None`). Runs in the caller's transaction, so the
/// statements commit together with the afnames. Returns how many statements were written.
pub fn publish_changes(
    connection: &Connection,
    mapping: &Mapping,
    school_id: Option<i64>,
    from_seq: i64,
    to_seq: i64,
) -> Result<usize, BridgeError> {
    if to_seq <= from_seq {
        return Ok(0);
    }
    let now = chrono::Utc::now();
    let mut definitions: HashMap<i64, Toets> = HashMap::new();
    let mut written = 0;
    for source in outbox::changed_afnames(connection, school_id, from_seq, to_seq)? {
        let toets = match definitions.entry(source.toets_id) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let text = outbox::toets_definition(connection, source.toets_id)?;
                let toets: Toets = serde_json::from_str(&text).map_err(|error| {
                    BridgeError::Unreadable(format!("toets {}: {error}", source.toets_id))
                })?;
                entry.insert(toets)
            }
        };
        let built = mapping.build(&source, toets, now);
        written += publish_one(connection, mapping, &source, built, now)?;
    }
    Ok(written)
}

fn publish_one(
    connection: &Connection,
    mapping: &Mapping,
    source: &AfnameSource,
    built: super::xapi::BuiltStatement,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, BridgeError> {
    let live = outbox::live_statement(connection, source.id)?;
    if live
        .as_ref()
        .is_some_and(|(id, _)| *id == built.statement.id)
    {
        // The afname changed in a way the statement does not assert: the published one stands.
        return Ok(0);
    }
    let mut statement = built.statement;
    // Content that went back to an earlier, voided version: a voided id cannot be revived.
    let mut reissue = 0;
    while outbox::statement_exists(connection, &statement.id)? {
        reissue += 1;
        if reissue > MAX_REISSUE {
            return Err(BridgeError::Unreadable(format!(
                "no free re-issue id for {}",
                built.id_name
            )));
        }
        statement.id = mapping.uuid(&format!("{}|reissue:{reissue}", built.id_name));
    }
    let mut written = 0;
    if let Some((old_id, old_toetscode)) = live {
        let voiding = mapping.voiding_statement(&old_id, now);
        if !outbox::statement_exists(connection, &voiding.id)? {
            insert(
                connection,
                &voiding,
                source,
                &old_toetscode,
                None,
                None,
                None,
            )?;
            written += 1;
        }
        outbox::set_voided_by(connection, &old_id, &voiding.id)?;
    }
    insert(
        connection,
        &statement,
        source,
        &source.toetscode,
        Some(built.activity_id),
        Some(built.registration),
        Some((source.leerlingid.clone(), source.eckid.clone())),
    )?;
    Ok(written + 1)
}

fn insert(
    connection: &Connection,
    statement: &Statement,
    source: &AfnameSource,
    toetscode: &str,
    activity_id: Option<String>,
    registration: Option<String>,
    learner: Option<(String, Option<String>)>,
) -> Result<(), BridgeError> {
    let json = serde_json::to_string(statement)
        .map_err(|error| BridgeError::Unreadable(error.to_string()))?;
    let (leerlingid, eckid) = match learner {
        Some((leerlingid, eckid)) => (Some(leerlingid), eckid),
        None => (None, None),
    };
    let activity_id = activity_id.or_else(|| match &statement.object {
        StatementObject::Activity(activity) => Some(activity.id.clone()),
        StatementObject::StatementRef { .. } => None,
    });
    outbox::insert_statement(
        connection,
        &StatementRow {
            id: statement.id.clone(),
            school_id: source.school_id,
            afname_id: Some(source.id),
            toetscode: toetscode.to_string(),
            verb_id: statement.verb.id.clone(),
            activity_id,
            registration,
            agent: Some(statement.actor.ifi_json()),
            leerlingid,
            eckid,
            statement: json,
        },
    )?;
    Ok(())
}

/// Releases quarantined afnames whose learner is now known and publishes their statements,
/// in the caller's transaction. Returns how many afnames were released.
pub fn release_quarantine(
    connection: &Connection,
    mapping: &Mapping,
) -> Result<usize, BridgeError> {
    let before = read_change_seq(connection)?;
    let released = crate::store::intake::release_quarantine(connection)?;
    let after = read_change_seq(connection)?;
    publish_changes(connection, mapping, None, before, after)?;
    Ok(released)
}
