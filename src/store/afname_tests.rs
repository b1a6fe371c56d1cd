//! Unit tests of the afname write path on an in-memory store: upserts (created, unchanged, updated, a key twice in one message), the change log, and quarantine release.

use super::admin::{self, LeerlingRow};
use super::db::Db as Connection;
use super::intake::{
    feed_offset, read_change_seq, release_quarantine, upsert_afname, upsert_toets,
    write_change_seq, write_feed_seq, AfnameChange, AfnameState, AfnameWrite, Owner,
    ToetsDefinition,
};
use super::testing::database;
use super::StoreError;
use crate::domain::SchoolCode;

const SCHOOL: &str = "99XX01";

/// One school, one client and one toets, as the intake has them when it reaches the afnames.
struct Fixture {
    connection: Connection<'static>,
    owner: Owner,
    toets_id: i64,
}

/// One resultaat of a message: key, leerlingid, score.
type Row<'a> = (&'a str, &'a str, i64);

/// One row of the change log: (change_seq, afname key, revision, quarantined, receipt).
type Logged = (i64, String, i64, bool, String);

impl Fixture {
    fn new() -> Result<Fixture, StoreError> {
        let connection = database()?;
        let school = SchoolCode::parse(SCHOOL).expect("a school code");
        let school_id = admin::ensure_school(&connection, &school)?;
        admin::add_client(&connection, "EA", "Een EA", "sleutel-1")?;
        let client_id = connection.query_row(
            "SELECT id FROM clients WHERE klantcode = 'EA'",
            rusqlite::params![],
            |row| row.get(0),
        )?;
        let owner = Owner {
            school_id,
            client_id,
        };
        let definition = ToetsDefinition::new(crate::uwlr::Toets::default());
        let (toets_id, _) = upsert_toets(&connection, owner, &definition, "r-toets")?;
        Ok(Fixture {
            connection,
            owner,
            toets_id,
        })
    }

    /// The store pass of one message (`receipt_id`) as the intake runs it: the counters read
    /// once, every afname upserted in order, the counters written back.
    fn message(
        &self,
        receipt_id: &str,
        quarantined: bool,
        rows: &[Row],
    ) -> Result<Vec<AfnameChange>, StoreError> {
        let mut seq = read_change_seq(&self.connection)?;
        let offset = feed_offset(&self.connection, self.owner.school_id, seq)?;
        let write = AfnameWrite {
            owner: self.owner,
            aanmaakdatum: "2026-10-01T08:00:00",
            receipt_id,
            quarantined,
            feed_offset: offset,
        };
        let mut changes = Vec::new();
        for (key, leerlingid, score) in rows {
            let state = self.state(key, leerlingid, *score);
            changes.push(upsert_afname(&self.connection, &write, &state, &mut seq)?);
        }
        write_change_seq(&self.connection, seq)?;
        write_feed_seq(&self.connection, self.owner.school_id, seq, offset)?;
        Ok(changes)
    }

    fn state(&self, key: &str, leerlingid: &str, score: i64) -> AfnameState {
        crate::store::testing::afname_state(key, leerlingid, self.toets_id, score)
    }

    /// The change log, oldest first.
    fn change_log(&self) -> Result<Vec<Logged>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT g.change_seq, a.afname_key, g.revision, g.quarantined, g.receipt_id
             FROM toetsafname_changes g JOIN toetsafnames a ON a.id = g.afname_id
             ORDER BY g.change_seq",
        )?;
        let rows = statement
            .query_map(rusqlite::params![], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// One afname as stored: (revision, score, receipt, quarantined, change_seq).
    fn afname(&self, key: &str) -> Result<(i64, i64, String, bool, i64), StoreError> {
        Ok(self.connection.query_row(
            "SELECT revision, score, receipt_id, quarantined, change_seq FROM toetsafnames
             WHERE afname_key = ?1",
            [key],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            },
        )?)
    }

    fn number(&self, sql: &str) -> Result<i64, StoreError> {
        Ok(self
            .connection
            .query_row(sql, rusqlite::params![], |row| row.get(0))?)
    }
}

fn logged(seq: i64, key: &str, revision: i64, quarantined: bool, receipt: &str) -> Logged {
    (seq, key.into(), revision, quarantined, receipt.into())
}

#[test]
fn new_keys_are_created_at_revision_1_and_each_is_logged_once() -> Result<(), StoreError> {
    let fixture = Fixture::new()?;
    let changes = fixture.message("r1", false, &[("A", "L1", 5), ("B", "L2", 6)])?;
    assert_eq!(changes, [AfnameChange::Created, AfnameChange::Created]);
    assert_eq!(fixture.afname("A")?, (1, 5, "r1".into(), false, 1));
    assert_eq!(fixture.afname("B")?, (1, 6, "r1".into(), false, 2));
    assert_eq!(
        fixture.change_log()?,
        [
            logged(1, "A", 1, false, "r1"),
            logged(2, "B", 1, false, "r1")
        ]
    );
    assert_eq!(fixture.number("SELECT seq FROM change_counter")?, 2);
    assert_eq!(fixture.number("SELECT feed_seq FROM schools")?, 2);
    Ok(())
}

#[test]
fn an_identical_resend_is_unchanged_and_logs_nothing() -> Result<(), StoreError> {
    let fixture = Fixture::new()?;
    fixture.message("r1", false, &[("A", "L1", 5)])?;
    let changes = fixture.message("r2", false, &[("A", "L1", 5)])?;
    assert_eq!(
        changes,
        [AfnameChange::Unchanged {
            afnamedatum: "2026-10-01".into()
        }]
    );
    // The afname now points at the latest receipt that carried it, at the same revision.
    assert_eq!(fixture.afname("A")?, (1, 5, "r2".into(), false, 1));
    assert_eq!(fixture.change_log()?, [logged(1, "A", 1, false, "r1")]);
    assert_eq!(
        fixture.number("SELECT count(*) FROM toetsafnames_history")?,
        0
    );
    assert_eq!(fixture.number("SELECT seq FROM change_counter")?, 1);
    Ok(())
}

#[test]
fn a_changed_resend_is_updated_keeps_the_old_state_and_logs_the_new_revision(
) -> Result<(), StoreError> {
    let fixture = Fixture::new()?;
    fixture.message("r1", false, &[("A", "L1", 5), ("B", "L2", 6)])?;
    let changes = fixture.message("r2", false, &[("A", "L1", 9)])?;
    assert_eq!(
        changes,
        [AfnameChange::Updated {
            afnamedatum: "2026-10-01".into()
        }]
    );
    assert_eq!(fixture.afname("A")?, (2, 9, "r2".into(), false, 3));
    let (revision, score, replaced_by): (i64, i64, String) = fixture.connection.query_row(
        "SELECT revision, json_extract(state, '$.score'), replaced_by_receipt_id
         FROM toetsafnames_history",
        rusqlite::params![],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    assert_eq!((revision, score, replaced_by.as_str()), (1, 5, "r2"));
    assert_eq!(
        fixture.change_log()?,
        [
            logged(1, "A", 1, false, "r1"),
            logged(2, "B", 1, false, "r1"),
            logged(3, "A", 2, false, "r2"),
        ]
    );
    Ok(())
}

#[test]
fn a_key_twice_in_one_message_is_a_duplicate_and_the_first_stays() -> Result<(), StoreError> {
    let fixture = Fixture::new()?;
    let changes = fixture.message("r1", false, &[("A", "L1", 5), ("A", "L1", 7)])?;
    assert_eq!(
        changes,
        [AfnameChange::Created, AfnameChange::DuplicateInMessage]
    );
    assert_eq!(fixture.afname("A")?, (1, 5, "r1".into(), false, 1));
    assert_eq!(fixture.change_log()?, [logged(1, "A", 1, false, "r1")]);
    assert_eq!(fixture.number("SELECT seq FROM change_counter")?, 1);
    Ok(())
}

#[test]
fn quarantine_release_frees_the_now_known_learners_as_new_changes() -> Result<(), StoreError> {
    let fixture = Fixture::new()?;
    fixture.message("r1", true, &[("Q1", "L404", 5), ("Q2", "L405", 6)])?;
    fixture.message("r2", false, &[("A", "L1", 7)])?;
    // Nothing is known yet: nothing is released.
    assert_eq!(release_quarantine(&fixture.connection)?, 0);

    let school = SchoolCode::parse(SCHOOL).expect("a school code");
    let known = LeerlingRow {
        school,
        leerlingid: "L404".into(),
        eckid: None,
        naam: None,
    };
    admin::import_leerlingen(&fixture.connection, &[known], "test")?;
    assert_eq!(release_quarantine(&fixture.connection)?, 1);
    // The released afname is a new change at the end of the log and of the school's feed,
    // at the same revision and with the receipt that stored it; the other stays held.
    assert_eq!(fixture.afname("Q1")?, (1, 5, "r1".into(), false, 4));
    assert_eq!(fixture.afname("Q2")?, (1, 6, "r1".into(), true, 2));
    assert_eq!(
        fixture.change_log()?,
        [
            logged(1, "Q1", 1, true, "r1"),
            logged(2, "Q2", 1, true, "r1"),
            logged(3, "A", 1, false, "r2"),
            logged(4, "Q1", 1, false, "r1"),
        ]
    );
    assert_eq!(fixture.number("SELECT seq FROM change_counter")?, 4);
    assert_eq!(fixture.number("SELECT feed_seq FROM schools")?, 4);
    assert_eq!(
        fixture.number("SELECT feed_seq FROM toetsafnames WHERE afname_key = 'Q1'")?,
        4
    );
    // Released once: a second run finds nothing more.
    assert_eq!(release_quarantine(&fixture.connection)?, 0);
    Ok(())
}
