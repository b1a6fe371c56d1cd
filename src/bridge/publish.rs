//! Turns changed afnames into statements: a new statement per created or corrected afname, a voiding statement for the one it replaces.
//!
//! The change log is written by the transaction that stores afnames, which gives
//! each change a `change_seq`. The publisher follows that feed from its cursor
//! (`xapi_publisher`, in `xapi.sqlite`) in rounds: a short read of the next chunk of
//! changes from the core, then one job on the xAPI writer that writes the statements and
//! moves the cursor together, so a crash repeats nothing and loses nothing. Generating
//! statements inside the accepting transaction made a 200,000-result batch 9 times slower;
//! generating them on the intake's writer thread held drip messages up (see `store::Store`).

use super::xapi::{Mapping, Statement, StatementObject};
use super::BridgeError;
use crate::store::outbox::{AfnameSource, Outbox, StatementRow};
use crate::uwlr::Toets;
use std::collections::HashMap;

/// How many re-issue suffixes are tried before giving up (MAPPING.md C14); one is the usual case.
const MAX_REISSUE: u32 = 1000;

/// One publisher round: the changes with `from < change_seq <= to` as read from the core,
/// with the toets definitions they need.
pub(crate) struct Round {
    from: i64,
    to: i64,
    sources: Vec<AfnameSource>,
    /// By toets id and the revision the afname pinned (`None`: the current definition).
    definitions: HashMap<(i64, Option<i64>), Toets>,
}

/// Reads a round from the core in one short read transaction. It is read apart from the
/// xAPI writer's transaction so that no long-lived snapshot of the core keeps SQLite from
/// starting the core's WAL over (see `store::checkpoint_loop`).
pub(crate) fn read_round(outbox: &Outbox, from: i64, to: i64) -> Result<Round, BridgeError> {
    outbox.snapshot(|snapshot| read_round_in(snapshot, from, to))
}

fn read_round_in(snapshot: &Outbox, from: i64, to: i64) -> Result<Round, BridgeError> {
    let sources = snapshot.changed_afnames(from, to)?;
    let mut definitions: HashMap<(i64, Option<i64>), Toets> = HashMap::new();
    for source in &sources {
        let pinned = (source.toets_id, source.toets_revision);
        if let std::collections::hash_map::Entry::Vacant(entry) = definitions.entry(pinned) {
            let text = snapshot.toets_definition(source.toets_id, source.toets_revision)?;
            let toets: Toets = serde_json::from_str(&text).map_err(|error| {
                BridgeError::Unreadable(format!("toets {}: {error}", source.toets_id))
            })?;
            entry.insert(toets);
        }
    }
    Ok(Round {
        from,
        to,
        sources,
        definitions,
    })
}

/// Writes a round's statements and moves the publisher's cursor to its end, in the
/// caller's transaction on the xAPI writer. A round that does not start at the cursor
/// writes nothing and is an error, so the publisher pauses instead of spinning on it.
/// Returns how many statements were written.
pub(crate) fn write_round(
    outbox: &Outbox,
    mapping: &Mapping,
    round: &Round,
) -> Result<usize, BridgeError> {
    let cursor = outbox.lock_publisher_cursor()?;
    if cursor != round.from {
        return Err(BridgeError::CursorMoved {
            stored: cursor,
            round: round.from,
        });
    }
    let mut written = 0;
    for source in &round.sources {
        // Read before an erasure committed, written after it: nothing about that learner.
        if outbox.afname_erased(source.id)? {
            continue;
        }
        mapping.check_keyed(source.keyed_ids)?;
        let toets = &round.definitions[&(source.toets_id, source.toets_revision)];
        let built = mapping.build(source, toets);
        written += publish_one(outbox, mapping, source, built)?;
    }
    outbox.set_publisher_cursor(round.to)?;
    Ok(written)
}

fn publish_one(
    outbox: &Outbox,
    mapping: &Mapping,
    source: &AfnameSource,
    built: super::xapi::BuiltStatement,
) -> Result<usize, BridgeError> {
    let live = outbox.live_statement(source.id)?;
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
    while outbox.statement_exists(&statement.id)? {
        reissue += 1;
        if reissue > MAX_REISSUE {
            return Err(BridgeError::Unreadable(format!(
                "no free re-issue id for {}",
                built.id_name
            )));
        }
        statement.id = mapping.id(&format!("{}|reissue:{reissue}", built.id_name), built.keyed);
    }
    let mut written = 0;
    if let Some((old_id, old_toetscode)) = live {
        // The correction happened when the correcting message was made.
        let voided_at = super::xapi::aanmaakdatum_timestamp(&source.aanmaakdatum)
            .unwrap_or_else(|| statement.timestamp.clone());
        let voiding = mapping.voiding_statement(&old_id, voided_at);
        if !outbox.statement_exists(&voiding.id)? {
            insert(outbox, &voiding, source, &old_toetscode, None, None, None)?;
            written += 1;
        }
        outbox.set_voided_by(&old_id, &voiding.id)?;
    }
    insert(
        outbox,
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
    outbox: &Outbox,
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
    outbox.insert_statement(&StatementRow {
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
        keyed: source.keyed_ids,
    })?;
    Ok(())
}

/// How many changes one publisher round takes at most (its statements are held in memory
/// between the read and the write). Each statement dirties a few random index pages (id,
/// agent, registration, activity) that a commit writes whole to the WAL, so larger rounds
/// write less: publishing the 227,854 statements of the 200,000-result batch took 26 s with
/// rounds of 500, 15.5 s with 2,000 and 17.4 s with 5,000 (busy machine, before the split).
const PUBLISH_CHUNK: i64 = 2_000;

/// One round: where the publisher is, the next chunk of changes read from the core, and
/// its statements written with the cursor on the xAPI writer. Returns how many changes it
/// took and whether more remain.
async fn publish_round(
    store: &crate::store::Store,
    mapping: &std::sync::Arc<Mapping>,
) -> Result<(i64, bool), BridgeError> {
    // PostgreSQL: first give the changes that can no longer be joined by lower-numbered
    // ones their places in the publication order (nothing to do on SQLite).
    if store.engine() == crate::store::Engine::Postgres {
        store
            .write_xapi(|connection| Outbox::new(connection).order_changes())
            .await??;
    }
    let reader = store.clone();
    let round = tokio::task::spawn_blocking(move || {
        reader.read(|connection| {
            let outbox = Outbox::new(connection);
            let (cursor, end) = outbox.publisher_position()?;
            if cursor >= end {
                return Ok(None);
            }
            let upto = end.min(cursor + PUBLISH_CHUNK);
            Ok(Some((read_round(&outbox, cursor, upto)?, upto < end)))
        })
    })
    .await
    .map_err(|error| BridgeError::Unreadable(error.to_string()))?;
    let Some((round, more)) = round? else {
        return Ok((0, false));
    };
    // The snapshot may hold a group whose sync is still running: no statement for a change
    // a power loss could take back.
    store.synced().await?;
    let taken = round.to - round.from;
    let mapping = mapping.clone();
    store
        .write_xapi_atomic(move |connection| {
            write_round(&Outbox::new(connection), &mapping, &round)
        })
        .await?;
    Ok((taken, more))
}

/// Above this many changes per second the publisher pauses `BUSY_PAUSE_FACTOR` times longer.
const BUSY_CHANGES_PER_SECOND: f64 = 3_000.0;
/// Under a heavy drip, rounds of ~10 times as many changes share their index pages and
/// commits: the xAPI writer then needed a quarter less CPU per statement, which the intake
/// gets instead; the LRSs see the changes up to ~0.25 s later.
const BUSY_PAUSE_FACTOR: u32 = 10;

/// The least pause between publisher rounds on PostgreSQL (see `run_publisher`).
const POSTGRES_MIN_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// Follows the change feed until `stop` turns true: wakes on every group commit (and every
/// `poll` for changes made by other processes, such as `leerlingen import`).
pub(crate) async fn run_publisher(
    store: crate::store::Store,
    mapping: std::sync::Arc<Mapping>,
    poll: std::time::Duration,
    pause: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // On PostgreSQL every round first orders the new changes in a transaction of its own
    // (`order_changes`), and each instance's commits wake it: rounds at least this far apart
    // keep that cost off the senders (a drip of 1,000 messages/s woke it 1.35 times per
    // message, 8 of the 30 statements a message cost), for at most this much more lag.
    let pause = match store.engine() {
        crate::store::Engine::Postgres => pause.max(POSTGRES_MIN_PAUSE),
        crate::store::Engine::Sqlite => pause,
    };
    let mut commits = store.commits();
    let mut last_round = std::time::Instant::now();
    let mut busy = false;
    loop {
        match publish_round(&store, &mapping).await {
            // More to publish: go on at once, unless the gateway is stopping
            // (the rest is published after the restart, from the cursor).
            Ok((_, true)) if !*stop.borrow() => continue,
            Ok((taken, _)) => {
                let rate = taken as f64 / last_round.elapsed().as_secs_f64().max(1e-3);
                busy = taken > 0 && rate > BUSY_CHANGES_PER_SECOND;
                last_round = std::time::Instant::now();
            }
            Err(error) => {
                tracing::error!(%error, "the xAPI publisher failed; retrying");
                tokio::time::sleep(poll).await;
            }
        }
        if *stop.borrow() {
            break;
        }
        // Under a steady drip every group commit would wake the publisher for a handful
        // of changes; a short pause lets one job take the changes of several commits.
        tokio::time::sleep(if busy {
            pause * BUSY_PAUSE_FACTOR
        } else {
            pause
        })
        .await;
        tokio::select! {
            _ = stop.changed() => {}
            _ = commits.changed() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    #[test]
    fn a_round_from_another_cursor_writes_nothing() -> Result<(), Box<dyn std::error::Error>> {
        let connection = crate::store::testing::database()?;
        let outbox = Outbox::new(&connection);
        let mapping = Mapping::new("https://uwlr-gateway.example/xapi")?;
        let round = read_round(&outbox, 0, 0)?;
        outbox.set_publisher_cursor(5)?;
        assert!(matches!(
            write_round(&outbox, &mapping, &round),
            Err(BridgeError::CursorMoved {
                stored: 5,
                round: 0
            })
        ));
        outbox.set_publisher_cursor(0)?;
        assert_eq!(write_round(&outbox, &mapping, &round)?, 0);
        assert_eq!(outbox.lock_publisher_cursor()?, 0);
        Ok(())
    }

    /// Issue 16: the same key and content from two clients give two statements; an afname
    /// stored before ownership (`legacy_statement_id`) keeps the id without a sender; and
    /// regenerating from the change log (a lost `xapi.sqlite`) gives the same ids again.
    #[test]
    fn statement_ids_name_the_owner_except_for_afnames_from_before_ownership(
    ) -> Result<(), Box<dyn std::error::Error>> {
        use crate::store::intake::{
            upsert_afname, upsert_toets, write_change_seq, AfnameState, AfnameWrite, Owner,
            ToetsDefinition,
        };
        let connection = crate::store::testing::database()?;
        let mapping = Mapping::new("https://uwlr-gateway.example/xapi")?;
        let school_id = crate::store::admin::ensure_school(
            &connection,
            &crate::domain::SchoolCode::parse("99XX01").expect("a school code"),
        )?;
        let mut seq = 0;
        for (client_id, klantcode) in [(1, "EA-C"), (2, "EA-B"), (3, "EA-OUD")] {
            crate::store::admin::add_client(&connection, klantcode, klantcode, "sleutel-1")?;
            let owner = Owner {
                school_id,
                client_id,
            };
            let definition = ToetsDefinition::new(Toets::default());
            let (toets_id, _) = upsert_toets(&connection, owner, &definition, "r")?;
            let state = AfnameState {
                toetscode: String::new(),
                result: r#"{"uitslag":{"score":7},"infourl":null}"#.into(),
                ..crate::store::testing::afname_state("K-1", "L1", toets_id, 7)
            };
            let write = AfnameWrite {
                owner,
                aanmaakdatum: "2026-10-02T08:00:00",
                receipt_id: "r",
                quarantined: false,
                feed_offset: 0,
            };
            upsert_afname(&connection, &write, &state, &mut seq)?;
        }
        write_change_seq(&connection, seq)?;
        // EA-OUD's afname stands for one stored before core migration 6.
        testing::mark_legacy_statement_ids(&connection, 3)?;
        let outbox = Outbox::new(&connection);
        let round = read_round(&outbox, 0, seq)?;
        let named: Vec<Option<&str>> = round
            .sources
            .iter()
            .map(|source| source.id_klantcode.as_deref())
            .collect();
        assert_eq!(named, [Some("EA-C"), Some("EA-B"), None]);
        assert_eq!(write_round(&outbox, &mapping, &round)?, 3);
        let first = testing::statement_ids(&connection)?;
        assert_eq!(
            first
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            3
        );
        let legacy = mapping.build(&round.sources[2], &Toets::default());
        assert!(legacy.id_name.starts_with("uwlr-resultaat|v1|"));
        assert_eq!(first[2], legacy.statement.id);
        // Regenerated from scratch: the same ids.
        testing::forget_statements(&connection)?;
        let round = read_round(&outbox, 0, seq)?;
        write_round(&outbox, &mapping, &round)?;
        assert_eq!(testing::statement_ids(&connection)?, first);
        // A round read before an erasure and written after it writes nothing for the erased
        // afname (`leerlingen erase` marks it in xapi.sqlite in its transaction).
        testing::forget_statements(&connection)?;
        let round = read_round(&outbox, 0, seq)?;
        crate::store::erasure::mark_erased(&connection, &[round.sources[1].id])?;
        assert_eq!(write_round(&outbox, &mapping, &round)?, 2);
        assert_eq!(testing::statement_ids(&connection)?.len(), 2);
        Ok(())
    }
}
