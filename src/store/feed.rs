//! Reads behind the LAS feed: afnames changed after a cursor, in change order, and toets versions.
//!
//! The cursor is `toetsafnames.feed_seq`, the school's own change sequence. Every
//! afname create, correction and release bumps its school's `schools.feed_seq` and
//! stamps the row with the new value in the same transaction (`store::intake`), and
//! only one write transaction exists at a time (the writer
//! thread, or SQLite's write lock for the CLI). So a read snapshot that sees the
//! school's counter at `C` sees every row of the school stamped `<= C`, and any later
//! commit stamps values `> C`: `C` is a consistent-through marker, and a cursor at
//! or below it can never skip a change. The positions count one school's changes
//! only, so they tell a reader nothing about other schools; the gateway-wide
//! `change_seq` (the change log's order) never leaves the store.

use super::db::Db;
use super::StoreError;
use rusqlite::types::Value;
use serde_json::value::RawValue;

/// What an afname feed item stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AfnameStatus {
    /// The afname's latest state follows.
    Current,
    /// The afname is gone (retention or erasure, `store::retention`); only its identity
    /// (`afname_key`, `klantcode`, `toetscode`) follows, never the learner.
    Removed,
}

/// One afname in the feed: its latest state when it was read, or its removal.
#[derive(Debug, serde::Serialize)]
pub(crate) struct FeedItem {
    /// The school's feed position of the change that put this state in the feed; the feed
    /// is ordered by it. (Named `change_seq` on the wire since the first release.)
    pub(crate) change_seq: i64,
    pub(crate) status: AfnameStatus,
    /// The resultaat key, unique within the school and the sender.
    pub(crate) afname_key: String,
    /// The client that sent this afname and owns its key (UWLR: keys belong to their EA).
    pub(crate) klantcode: String,
    /// The afname's state; absent for a removal.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(crate) current: Option<CurrentAfname>,
    /// A removal's toetscode (a current afname has it in `current`).
    #[serde(rename = "toetscode", skip_serializing_if = "Option::is_none")]
    pub(crate) removed_toetscode: Option<String>,
}

/// The state of an afname that is in the store.
#[derive(Debug, serde::Serialize)]
pub(crate) struct CurrentAfname {
    pub(crate) leerlingid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) eckid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) resultaatverwerkerid: Option<String>,
    pub(crate) toetscode: String,
    /// The toets version this afname is pinned to; `""` when the toets has no versie.
    pub(crate) versie: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) toetsonderdeelcode: Option<String>,
    pub(crate) afnamedatum: String,
    /// The afnamedatum of the message that last changed this afname; absent until it is changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mutatiedatum: Option<String>,
    /// 1 when first stored, one more for every correction.
    pub(crate) revision: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) score: Option<i64>,
    /// True for a toets score the gateway summed from onderdeel scores.
    pub(crate) derived: bool,
    /// The resultaat as sent (`uitslag`, `infourl`), or for a derived score the keys summed.
    pub(crate) result: Box<RawValue>,
}

/// Filters on the feed; each narrows it, none moves the cursor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FeedFilter {
    pub(crate) toetscode: Option<String>,
    pub(crate) leerlingid: Option<String>,
    /// First afnamedatum included, `YYYY-MM-DD`.
    pub(crate) afnamedatum_from: Option<String>,
    /// Last afnamedatum included, `YYYY-MM-DD`.
    pub(crate) afnamedatum_until: Option<String>,
}

/// One page of the feed.
#[derive(Debug)]
pub(crate) struct FeedPage {
    pub(crate) items: Vec<FeedItem>,
    /// Where to go on from: the last item's change_seq when more follow, else `consistent_through`.
    pub(crate) next_cursor: i64,
    /// Every change up to here is visible in this answer's snapshot.
    pub(crate) consistent_through: i64,
    pub(crate) has_more: bool,
}

/// A stored toets version with its earlier (corrected) definitions.
#[derive(Debug, serde::Serialize)]
pub(crate) struct ToetsVersion {
    /// The client that defined this toets: each client has its own toetscodes.
    pub(crate) klantcode: String,
    pub(crate) versie: String,
    /// 1 when first stored, one more for every correction of this version.
    pub(crate) revision: i64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    pub(crate) definition: Box<RawValue>,
    /// Definitions this version had before corrections, oldest first.
    pub(crate) earlier_revisions: Vec<EarlierRevision>,
}

#[derive(Debug, serde::Serialize)]
pub(crate) struct EarlierRevision {
    pub(crate) revision: i64,
    pub(crate) replaced_at: String,
    pub(crate) definition: Box<RawValue>,
}

fn raw_json(text: String) -> rusqlite::Result<Box<RawValue>> {
    RawValue::from_string(text).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(error))
    })
}

/// Reads up to `limit` afnames of `school_id` changed after feed position `since`,
/// oldest change first, in one snapshot. Quarantined afnames are left out: they enter
/// the feed when they are released, which stamps a new position.
pub(crate) fn read_feed(
    connection: &Db,
    school_id: i64,
    since: i64,
    limit: u32,
    filter: &FeedFilter,
) -> Result<FeedPage, StoreError> {
    let guard = super::connection::Snapshot::begin(connection)?;
    let snapshot = guard.db();
    // The school's counter is read first, in the same snapshot as the rows.
    let consistent_through: i64 = snapshot.query_row(
        "SELECT feed_seq FROM schools WHERE id = ?1",
        [school_id],
        |row| row.get(0),
    )?;
    let mut sql = String::from(
        "SELECT a.feed_seq, a.afname_key, a.leerlingid, a.eckid, a.resultaatverwerkerid, a.toetscode,
                a.versie, a.toetsonderdeelcode, a.afnamedatum, a.mutatiedatum, a.revision, a.score,
                a.derived, a.result, c.klantcode
         FROM toetsafnames a JOIN clients c ON c.id = a.client_id
         WHERE a.school_id = ?1 AND a.feed_seq > ?2 AND a.quarantined = 0",
    );
    let mut values: Vec<Value> = vec![Value::Integer(school_id), Value::Integer(since)];
    let mut condition = |column: &str, operator: &str, value: &Option<String>| {
        if let Some(value) = value {
            values.push(Value::Text(value.clone()));
            sql.push_str(&format!(" AND a.{column} {operator} ?{}", values.len()));
        }
    };
    condition("toetscode", "=", &filter.toetscode);
    condition("leerlingid", "=", &filter.leerlingid);
    condition("afnamedatum", ">=", &filter.afnamedatum_from);
    condition("afnamedatum", "<=", &filter.afnamedatum_until);
    // One row more than asked tells whether more follow.
    values.push(Value::Integer(i64::from(limit) + 1));
    sql.push_str(&format!(" ORDER BY a.feed_seq LIMIT ?{}", values.len()));
    let mut items = snapshot
        .prepare_cached(&sql)?
        .query_map(values, |row| {
            Ok(FeedItem {
                change_seq: row.get(0)?,
                status: AfnameStatus::Current,
                afname_key: row.get(1)?,
                klantcode: row.get(14)?,
                current: Some(CurrentAfname {
                    leerlingid: row.get(2)?,
                    eckid: row.get(3)?,
                    resultaatverwerkerid: row.get(4)?,
                    toetscode: row.get(5)?,
                    versie: row.get(6)?,
                    toetsonderdeelcode: row.get(7)?,
                    afnamedatum: row.get(8)?,
                    mutatiedatum: row.get(9)?,
                    revision: row.get(10)?,
                    score: row.get(11)?,
                    derived: row.get(12)?,
                    result: raw_json(row.get(13)?)?,
                }),
                removed_toetscode: None,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    // Removals in the same range (tombstones, `store::retention`). They name no learner: a
    // question about one learner (leerlingid) gets none, every other follower of the school
    // gets them all, narrowed by toetscode only (a date filter cannot judge them).
    let removals = snapshot
        .prepare_cached(
            "SELECT feed_seq, afname_key, klantcode, toetscode FROM toetsafname_removals
             WHERE school_id = ?1 AND feed_seq > ?2 AND (CAST(?3 AS TEXT) IS NULL OR toetscode = ?3)
               AND CAST(?5 AS TEXT) IS NULL
             ORDER BY feed_seq LIMIT ?4",
        )?
        .query_map(
            rusqlite::params![
                school_id,
                since,
                filter.toetscode,
                i64::from(limit) + 1,
                filter.leerlingid
            ],
            |row| {
                Ok(FeedItem {
                    change_seq: row.get(0)?,
                    status: AfnameStatus::Removed,
                    afname_key: row.get(1)?,
                    klantcode: row.get(2)?,
                    current: None,
                    removed_toetscode: Some(row.get(3)?),
                })
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    if !removals.is_empty() {
        items.extend(removals);
        items.sort_by_key(|item| item.change_seq);
        items.truncate(limit as usize + 1);
    }
    guard.finish()?;
    let has_more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = match items.last() {
        Some(last) if has_more => last.change_seq,
        // Everything of this school up to the marker was in the snapshot and is answered.
        _ => consistent_through.max(since),
    };
    Ok(FeedPage {
        items,
        next_cursor,
        consistent_through,
        has_more,
    })
}

/// Every stored version of a toets, by sender and versie; empty when the school has no such toets.
/// Two clients that use one toetscode have two toetsen, each with its own versions.
pub(crate) fn read_toets_versions(
    connection: &Db,
    school_id: i64,
    toetscode: &str,
) -> Result<Vec<ToetsVersion>, StoreError> {
    let guard = super::connection::Snapshot::begin(connection)?;
    let snapshot = guard.db();
    let versions: Vec<(i64, ToetsVersion)> = snapshot
        .prepare_cached(snapshot.pick(
            "SELECT t.id, t.versie, t.revision, t.created_at, t.updated_at, t.definition, c.klantcode
             FROM toetsen t JOIN clients c ON c.id = t.client_id
             WHERE t.school_id = ?1 AND t.toetscode = ?2 ORDER BY c.klantcode, t.versie",
            r#"SELECT t.id, t.versie, t.revision, t.created_at, t.updated_at, t.definition, c.klantcode
             FROM toetsen t JOIN clients c ON c.id = t.client_id
             WHERE t.school_id = ?1 AND t.toetscode = ?2 ORDER BY c.klantcode COLLATE "C", t.versie COLLATE "C""#,
        ))?
        .query_map(rusqlite::params![school_id, toetscode], |row| {
            Ok((
                row.get(0)?,
                ToetsVersion {
                    klantcode: row.get(6)?,
                    versie: row.get(1)?,
                    revision: row.get(2)?,
                    created_at: row.get(3)?,
                    updated_at: row.get(4)?,
                    definition: raw_json(row.get(5)?)?,
                    earlier_revisions: Vec::new(),
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut history = snapshot.prepare_cached(
        "SELECT revision, replaced_at, definition FROM toetsen_history WHERE toets_id = ?1 ORDER BY revision",
    )?;
    let mut result = Vec::with_capacity(versions.len());
    for (id, mut version) in versions {
        version.earlier_revisions = history
            .query_map([id], |row| {
                Ok(EarlierRevision {
                    revision: row.get(0)?,
                    replaced_at: row.get(1)?,
                    definition: raw_json(row.get(2)?)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        result.push(version);
    }
    drop(history);
    guard.finish()?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SchoolCode;
    use crate::store::intake::{
        feed_offset, upsert_afname, write_change_seq, write_feed_seq, AfnameWrite, Owner,
    };
    use rusqlite::params;

    fn database() -> Result<(crate::store::db::Db<'static>, i64, i64), StoreError> {
        let connection = crate::store::testing::database()?;
        let school =
            crate::store::admin::ensure_school(&connection, &SchoolCode::parse("99XX01").unwrap())?;
        let other =
            crate::store::admin::ensure_school(&connection, &SchoolCode::parse("99YY").unwrap())?;
        crate::store::admin::add_client(&connection, "EA", "Een EA", "sleutel-1")?;
        for school_id in [school, other] {
            connection.execute(
                "INSERT INTO toetsen (school_id, client_id, toetscode, versie, definition, content_sha256, revision,
                   created_at, created_receipt_id, updated_at, updated_receipt_id)
                 VALUES (?1, 1, 'T', '', '{}', 'x', 1, 'now', 'r', 'now', 'r')",
                params![school_id],
            )?;
        }
        Ok((connection, school, other))
    }

    fn store(
        connection: &Db,
        school_id: i64,
        key: &str,
        leerlingid: &str,
        score: i64,
        quarantined: bool,
    ) {
        let mut seq = crate::store::intake::read_change_seq(connection).unwrap();
        let toets_id: i64 = connection
            .query_row(
                "SELECT id FROM toetsen WHERE school_id = ?1",
                [school_id],
                |row| row.get(0),
            )
            .unwrap();
        let state = crate::store::testing::afname_state(key, leerlingid, toets_id, score);
        // Each call stands for its own message.
        let receipt_id = format!("r-{seq}");
        let feed_offset = feed_offset(connection, school_id, seq).unwrap();
        let write = AfnameWrite {
            owner: Owner {
                school_id,
                client_id: 1,
            },
            aanmaakdatum: "2026-10-01T08:00:00",
            receipt_id: &receipt_id,
            quarantined,
            feed_offset,
        };
        upsert_afname(connection, &write, &state, &mut seq).unwrap();
        write_change_seq(connection, seq).unwrap();
        write_feed_seq(connection, school_id, seq, feed_offset).unwrap();
    }

    /// A page of the whole feed of `school_id` after `since`.
    fn page(
        connection: &Db,
        school_id: i64,
        since: i64,
        limit: u32,
    ) -> Result<FeedPage, StoreError> {
        read_feed(connection, school_id, since, limit, &FeedFilter::default())
    }

    fn keys(page: &FeedPage) -> Vec<&str> {
        page.items
            .iter()
            .map(|item| item.afname_key.as_str())
            .collect()
    }

    #[test]
    fn pages_follow_the_change_order_within_one_school() -> Result<(), StoreError> {
        let (connection, school, other) = database()?;
        store(&connection, school, "A", "L1", 1, false);
        store(&connection, other, "X", "L9", 1, false);
        store(&connection, school, "B", "L2", 2, false);
        store(&connection, school, "Q", "L404", 2, true);
        store(&connection, school, "C", "L1", 3, false);
        let first = page(&connection, school, 0, 2)?;
        assert_eq!(keys(&first), ["A", "B"]);
        assert!(first.has_more);
        // Positions count this school's changes only: X of the other school is not among them.
        assert_eq!(first.consistent_through, 4);
        assert_eq!(
            first
                .items
                .iter()
                .map(|item| item.change_seq)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        let second = page(&connection, school, first.next_cursor, 2)?;
        assert_eq!(keys(&second), ["C"]);
        assert!(!second.has_more);
        assert_eq!(second.next_cursor, 4);
        // A correction moves A to the end of the feed, with its new revision.
        store(&connection, school, "A", "L1", 9, false);
        let third = page(&connection, school, second.next_cursor, 2)?;
        assert_eq!(keys(&third), ["A"]);
        let current = third.items[0].current.as_ref().expect("a current afname");
        assert_eq!((current.revision, current.score), (2, Some(9)));
        let filtered = read_feed(
            &connection,
            school,
            0,
            10,
            &FeedFilter {
                leerlingid: Some("L1".into()),
                ..FeedFilter::default()
            },
        )?;
        assert_eq!(keys(&filtered), ["C", "A"]);
        // The other school's reader sees one change, however busy this school was.
        let other_page = page(&connection, other, 0, 10)?;
        assert_eq!(keys(&other_page), ["X"]);
        assert_eq!(
            (
                other_page.items[0].change_seq,
                other_page.consistent_through
            ),
            (1, 1)
        );
        Ok(())
    }

    /// Core migration 7: cursors handed out as gateway-wide change_seq values stay valid.
    #[test]
    fn cursors_from_before_per_school_positions_skip_nothing() -> Result<(), StoreError> {
        let (connection, school, other) = database()?;
        store(&connection, school, "A", "L1", 1, false);
        store(&connection, other, "X", "L9", 1, false);
        store(&connection, school, "B", "L2", 2, false);
        // As migrated: positions were the global change_seq, every school at the global counter.
        connection.execute_batch(
            "UPDATE toetsafnames SET feed_seq = change_seq;
             UPDATE schools SET feed_seq = (SELECT seq FROM change_counter);",
        )?;
        let old_cursor = 1; // handed out after A, before X and B
        store(&connection, school, "C", "L3", 3, false);
        let resumed = page(&connection, school, old_cursor, 10)?;
        assert_eq!(keys(&resumed), ["B", "C"]);
        assert_eq!(resumed.items[1].change_seq, 4);
        Ok(())
    }

    #[test]
    fn released_afnames_enter_the_feed_after_the_cursor() -> Result<(), StoreError> {
        let (connection, school, _) = database()?;
        store(&connection, school, "Q", "L404", 2, true);
        let before = page(&connection, school, 0, 10)?;
        assert!(before.items.is_empty());
        connection.execute(
            "INSERT INTO leerlingen (school_id, leerlingid, imported_at) VALUES (?1, 'L404', 'now')",
            params![school],
        )?;
        crate::store::intake::release_quarantine(&connection)?;
        let after = page(&connection, school, before.next_cursor, 10)?;
        assert_eq!(keys(&after), ["Q"]);
        Ok(())
    }

    /// A removal takes the school's next position, so a follower past the afname's own
    /// position sees it; it names the key and sender, never the learner, and a question
    /// about one learner does not get it. A later change of the school comes after it.
    #[test]
    fn removals_enter_the_feed_after_the_cursor() -> Result<(), StoreError> {
        let (connection, school, other) = database()?;
        store(&connection, school, "A", "L1", 1, false);
        store(&connection, school, "B", "L2", 1, false);
        store(&connection, other, "A", "L1", 1, false);
        let before = page(&connection, school, 0, 10)?;
        let afnames = crate::store::retention::learner_afnames(&connection, school, "L1", None)?;
        crate::store::retention::remove_afnames(&connection, school, &afnames, "erasure", "now")?;
        store(&connection, school, "C", "L3", 1, false);
        let after = page(&connection, school, before.next_cursor, 10)?;
        assert_eq!(keys(&after), ["A", "C"]);
        assert_eq!(after.items[0].status, AfnameStatus::Removed);
        assert_eq!(after.items[0].change_seq, before.next_cursor + 1);
        let json = serde_json::to_value(&after.items[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"change_seq": before.next_cursor + 1, "status": "removed",
                "afname_key": "A", "klantcode": "EA", "toetscode": "T"})
        );
        assert_eq!(after.consistent_through, before.next_cursor + 2);
        let by_learner = FeedFilter {
            leerlingid: Some("L3".into()),
            ..FeedFilter::default()
        };
        let filtered = read_feed(&connection, school, before.next_cursor, 10, &by_learner)?;
        assert_eq!(keys(&filtered), ["C"]);
        // Paging counts removals like any item.
        let first = page(&connection, school, before.next_cursor, 1)?;
        assert_eq!((keys(&first), first.has_more), (vec!["A"], true));
        // The other school keeps its afname and its positions.
        let untouched = page(&connection, other, 0, 10)?;
        assert_eq!(keys(&untouched), ["A"]);
        assert_eq!(untouched.items[0].status, AfnameStatus::Current);
        Ok(())
    }
}
