//! Turns changed afnames into statements: a new statement per created or corrected afname, a voiding statement for the one it replaces.
//!
//! The transactional outbox is the change feed: the transaction that stores afnames gives
//! each change a `change_seq`. The publisher follows that feed from its cursor
//! (`xapi_publisher`) in chunks, each chunk one writer job that writes the statements and
//! moves the cursor together, so a crash repeats nothing and loses nothing. Generating
//! statements inside the accepting transaction made a 200,000-result batch 9 times slower.

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
/// not quarantined (one school, or all with `None`), from the change log. Runs in the caller's
/// transaction (the publisher's round, which also moves its cursor). Returns how many statements were written.
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

/// Releases quarantined afnames whose learner is now known, in the caller's transaction;
/// their new change_seq puts them in front of the publisher. Returns how many were released.
pub fn release_quarantine(connection: &Connection) -> Result<usize, BridgeError> {
    Ok(crate::store::intake::release_quarantine(connection)?)
}

/// How many changes one publisher job takes at most, so drip messages interleave with a backlog.
/// Each statement dirties a few random index pages (id, agent, registration, activity) that a
/// commit writes whole to the WAL, so larger rounds write less: publishing the 227,854
/// statements of the 200,000-result batch took 26 s with rounds of 500, 15.5 s with 2,000
/// and 17.4 s with 5,000 (busy machine); a round of 2,000 holds the writer about 0.15 s.
const PUBLISH_CHUNK: i64 = 2_000;

/// Where the publisher is in the change feed, and where the feed ends.
pub fn publisher_position(connection: &Connection) -> Result<(i64, i64), BridgeError> {
    let cursor: i64 = connection
        .prepare_cached("SELECT cursor_seq FROM xapi_publisher WHERE id = 1")?
        .query_row([], |row| row.get(0))?;
    Ok((cursor, read_change_seq(connection)?))
}

/// One publisher step inside the caller's transaction: statements for the next chunk of
/// changes, and the cursor moved past them. Returns whether changes remain.
pub fn publish_next(connection: &Connection, mapping: &Mapping) -> Result<bool, BridgeError> {
    let (cursor, end) = publisher_position(connection)?;
    if cursor >= end {
        return Ok(false);
    }
    let upto = end.min(cursor + PUBLISH_CHUNK);
    publish_changes(connection, mapping, None, cursor, upto)?;
    connection
        .prepare_cached("UPDATE xapi_publisher SET cursor_seq = ?1 WHERE id = 1")?
        .execute([upto])?;
    Ok(upto < end)
}

/// Follows the change feed until `stop` turns true: wakes on every group commit (and every
/// `poll` for changes made by other processes, such as `leerlingen import`).
pub async fn run_publisher(
    store: crate::store::Store,
    mapping: std::sync::Arc<Mapping>,
    poll: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut commits = store.commits();
    loop {
        let behind = store
            .read(|connection| {
                publisher_position(connection).map_err(crate::store::StoreError::from)
            })
            .map(|(cursor, end)| cursor < end);
        match behind {
            Ok(true) => {
                let mapping = mapping.clone();
                let step = store
                    .write_xapi(
                        move |connection| -> Result<bool, crate::store::StoreError> {
                            let savepoint = connection.savepoint()?;
                            let more = publish_next(&savepoint, &mapping)?;
                            savepoint.commit()?;
                            Ok(more)
                        },
                    )
                    .await;
                match step {
                    // More to publish: go on at once, unless the gateway is stopping
                    // (the rest is published after the restart, from the cursor).
                    Ok(Ok(true)) if !*stop.borrow() => continue,
                    Ok(Ok(true)) => {}
                    Ok(Ok(false)) => {}
                    Ok(Err(error)) | Err(error) => {
                        tracing::error!(%error, "the xAPI publisher failed; retrying");
                        tokio::time::sleep(poll).await;
                    }
                }
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "the xAPI publisher cannot read its position"),
        }
        if *stop.borrow() {
            break;
        }
        // Under a steady drip every group commit would wake the publisher for a handful
        // of changes; a short pause lets one job take the changes of several commits.
        tokio::time::sleep(PUBLISH_PAUSE).await;
        tokio::select! {
            _ = stop.changed() => {}
            _ = commits.changed() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
}

/// The least time between two catch-up rounds of the publisher.
const PUBLISH_PAUSE: std::time::Duration = std::time::Duration::from_millis(25);
