//! Writes of an accepted message: toets versions, afname upserts with history, receipts, ordering state.

use super::db::Db;
use super::{now_text, sha256_hex, StoreError};
use crate::domain::violation::Violations;
use crate::uwlr::Toets;
use rusqlite::{params, OptionalExtension};

/// What happened to a toets definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ToetsChange {
    /// An unknown toetscode.
    NewToets,
    /// A known toetscode with a new versie.
    NewVersion,
    /// A known toetscode and versie with a different definition: overwritten.
    Correction,
    Unchanged,
}

/// What happened to one afname.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AfnameChange {
    Created,
    /// `afnamedatum` is the stored one (the first sent: an update keeps it), which names
    /// the afname's sitting; the upsert read it anyway, so the caller need not read it again.
    Updated {
        afnamedatum: String,
    },
    Unchanged {
        afnamedatum: String,
    },
    /// The key was already written by this same message: a duplicate key (nothing changed).
    DuplicateInMessage,
}

/// A receipt to write: one per authenticated message.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub(crate) struct Receipt {
    pub(crate) id: String,
    pub(crate) client_id: i64,
    pub(crate) school_id: Option<i64>,
    pub(crate) aanmaakdatum: Option<String>,
    /// School year and schema version of the message, which its xAPI statements carry.
    pub(crate) schooljaar: Option<String>,
    pub(crate) xsdversie: Option<String>,
    pub(crate) received_at: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
    pub(crate) accepted: bool,
    pub(crate) faultcode: Option<String>,
    pub(crate) counts: Counts,
    pub(crate) violations: Violations,
    pub(crate) unknown_vocabularies: Vec<String>,
    pub(crate) duration_ms: u64,
}

/// What a message held and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Counts {
    pub(crate) toetsen: u64,
    pub(crate) toetsafnames: u64,
    pub(crate) resultaten: u64,
    pub(crate) created: u64,
    pub(crate) updated: u64,
    pub(crate) unchanged: u64,
    pub(crate) quarantined: u64,
}

pub(crate) fn insert_receipt(connection: &Db, receipt: &Receipt) -> Result<(), StoreError> {
    let violations =
        serde_json::to_string(&receipt.violations.items).unwrap_or_else(|_| "[]".into());
    let unknown =
        serde_json::to_string(&receipt.unknown_vocabularies).unwrap_or_else(|_| "[]".into());
    let counts = &receipt.counts;
    connection
        .prepare_cached(
            "INSERT INTO receipts (id, client_id, school_id, aanmaakdatum, received_at, size, sha256, outcome,
               faultcode, toetsen, toetsafnames, resultaten, created, updated, unchanged, quarantined,
               violations, violations_omitted, unknown_vocabularies, duration_ms, schooljaar, xsdversie)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
        )?
        .execute(params![
            receipt.id,
            receipt.client_id,
            receipt.school_id,
            receipt.aanmaakdatum,
            receipt.received_at,
            receipt.size as i64,
            receipt.sha256,
            if receipt.accepted { "accepted" } else { "rejected" },
            receipt.faultcode,
            counts.toetsen as i64,
            counts.toetsafnames as i64,
            counts.resultaten as i64,
            counts.created as i64,
            counts.updated as i64,
            counts.unchanged as i64,
            counts.quarantined as i64,
            violations,
            receipt.violations.omitted as i64,
            unknown,
            receipt.duration_ms as i64,
            receipt.schooljaar,
            receipt.xsdversie,
        ])?;
    Ok(())
}

/// The id of an accepted receipt for the same bytes from the same client, if any.
pub(crate) fn accepted_duplicate(
    connection: &Db,
    client_id: i64,
    sha256: &str,
) -> Result<Option<String>, StoreError> {
    Ok(connection
        .prepare_cached(
            "SELECT id FROM receipts WHERE client_id = ?1 AND sha256 = ?2 AND outcome = 'accepted' LIMIT 1",
        )?
        .query_row(params![client_id, sha256], |row| row.get(0))
        .optional()?)
}

/// The last accepted aanmaakdatum (µs) for this client and school.
pub(crate) fn last_aanmaakdatum(
    connection: &Db,
    client_id: i64,
    school_id: i64,
) -> Result<Option<(i64, String)>, StoreError> {
    Ok(connection
        .prepare_cached(
            "SELECT last_aanmaakdatum_us, last_aanmaakdatum FROM sender_state WHERE client_id = ?1 AND school_id = ?2",
        )?
        .query_row(params![client_id, school_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?)
}

pub(crate) fn set_last_aanmaakdatum(
    connection: &Db,
    client_id: i64,
    school_id: i64,
    micros: i64,
    text: &str,
    receipt_id: &str,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO sender_state (client_id, school_id, last_aanmaakdatum_us, last_aanmaakdatum, last_receipt_id)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (client_id, school_id) DO UPDATE SET last_aanmaakdatum_us = excluded.last_aanmaakdatum_us,
               last_aanmaakdatum = excluded.last_aanmaakdatum, last_receipt_id = excluded.last_receipt_id",
        )?
        .execute(params![client_id, school_id, micros, text, receipt_id])?;
    Ok(())
}

/// Whose toetsen and afnames a write or lookup is about: each client has its own
/// toetscodes and resultaat keys within a school (UWLR: keys belong to the EA that made them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) school_id: i64,
    pub(crate) client_id: i64,
}

/// A stored toets version.
#[derive(Clone, Debug)]
pub(crate) struct StoredToets {
    pub(crate) id: i64,
    pub(crate) definition: Toets,
}

/// A toets version the sender `owner` defined for its school; another client's toetsen are not visible.
pub(crate) fn load_toets(
    connection: &Db,
    owner: Owner,
    toetscode: &str,
    versie: &str,
) -> Result<Option<StoredToets>, StoreError> {
    let row: Option<(i64, String)> = connection
        .prepare_cached(
            "SELECT id, definition FROM toetsen
             WHERE school_id = ?1 AND client_id = ?2 AND toetscode = ?3 AND versie = ?4",
        )?
        .query_row(
            params![owner.school_id, owner.client_id, toetscode, versie],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    row.map(|(id, definition)| {
        serde_json::from_str(&definition)
            .map(|definition| StoredToets { id, definition })
            .map_err(|error| StoreError::corrupt(format!("stored toets {id}"), error))
    })
    .transpose()
}

/// A toets definition as stored: its JSON and the hash that tells a correction from a resend.
#[derive(Clone, Debug)]
pub(crate) struct ToetsDefinition {
    pub(crate) toets: Toets,
    pub(crate) json: String,
    pub(crate) sha256: String,
}

impl ToetsDefinition {
    pub(crate) fn new(toets: Toets) -> ToetsDefinition {
        let json = serde_json::to_string(&toets).unwrap_or_default();
        let sha256 = sha256_hex(json.as_bytes());
        ToetsDefinition {
            toets,
            json,
            sha256,
        }
    }
}

/// Applies UWLR step 6 to one definition of the sender `owner`: create, add a version, or
/// overwrite (correction). Only the sender's own toetsen are looked at: another client's
/// toets with the same toetscode is a different toets.
pub(crate) fn upsert_toets(
    connection: &Db,
    owner: Owner,
    definition: &ToetsDefinition,
    receipt_id: &str,
) -> Result<(i64, ToetsChange), StoreError> {
    let toets = &definition.toets;
    let toetscode = toets.toetscode.waarde.as_str();
    let versie = toets.versie_text();
    let Owner {
        school_id,
        client_id,
    } = owner;
    let existing: Option<(i64, String)> = connection
        .prepare_cached(
            "SELECT id, content_sha256 FROM toetsen
             WHERE school_id = ?1 AND client_id = ?2 AND toetscode = ?3 AND versie = ?4",
        )?
        .query_row(params![school_id, client_id, toetscode, versie], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    let now = now_text();
    match existing {
        Some((id, stored_sha)) if stored_sha == definition.sha256 => {
            Ok((id, ToetsChange::Unchanged))
        }
        Some((id, _)) => {
            connection
                .prepare_cached(
                    "INSERT INTO toetsen_history (toets_id, revision, definition, content_sha256, receipt_id, replaced_at, replaced_by_receipt_id)
                     SELECT id, revision, definition, content_sha256, updated_receipt_id, ?2, ?3 FROM toetsen WHERE id = ?1",
                )?
                .execute(params![id, now, receipt_id])?;
            connection
                .prepare_cached(
                    "UPDATE toetsen SET definition = ?2, content_sha256 = ?3, revision = revision + 1,
                       updated_at = ?4, updated_receipt_id = ?5 WHERE id = ?1",
                )?
                .execute(params![id, definition.json, definition.sha256, now, receipt_id])?;
            Ok((id, ToetsChange::Correction))
        }
        None => {
            let known_code: Option<i64> = connection
                .prepare_cached(
                    "SELECT 1 FROM toetsen WHERE school_id = ?1 AND client_id = ?2 AND toetscode = ?3 LIMIT 1",
                )?
                .query_row(params![school_id, client_id, toetscode], |row| row.get(0))
                .optional()?;
            let id: i64 = connection
                .prepare_cached(
                    "INSERT INTO toetsen (school_id, client_id, toetscode, versie, definition, content_sha256, revision,
                       created_at, created_receipt_id, updated_at, updated_receipt_id)
                     VALUES (?1, ?8, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?6, ?7) RETURNING id",
                )?
                .query_row(params![school_id, toetscode, versie, definition.json, definition.sha256, now, receipt_id, client_id], |row| row.get(0))?;
            let change = if known_code.is_some() {
                ToetsChange::NewVersion
            } else {
                ToetsChange::NewToets
            };
            Ok((id, change))
        }
    }
}

/// One afname as stored.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AfnameState {
    pub(crate) afname_key: String,
    pub(crate) leerlingid: String,
    pub(crate) eckid: Option<String>,
    pub(crate) resultaatverwerkerid: Option<String>,
    pub(crate) toets_id: i64,
    pub(crate) toetscode: String,
    pub(crate) versie: String,
    pub(crate) toetsonderdeelcode: Option<String>,
    pub(crate) afnamedatum: String,
    pub(crate) score: Option<i64>,
    pub(crate) derived: bool,
    /// The resultaat as sent (score, osoresultaat or anderresultaat, infourl), as JSON.
    pub(crate) result: String,
}

impl AfnameState {
    /// Hash over what the sender controls; an identical resend is no change.
    /// Fields are length-prefixed so that no two states share an input.
    pub(crate) fn content_hash(&self) -> Vec<u8> {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        fn optional(value: &Option<String>) -> &[u8] {
            value.as_deref().map(str::as_bytes).unwrap_or(b"\xff")
        }
        field(self.afname_key.as_bytes());
        field(self.leerlingid.as_bytes());
        field(optional(&self.eckid));
        field(optional(&self.resultaatverwerkerid));
        field(&self.toets_id.to_le_bytes());
        field(self.toetscode.as_bytes());
        field(self.versie.as_bytes());
        field(optional(&self.toetsonderdeelcode));
        field(self.afnamedatum.as_bytes());
        field(
            &self
                .score
                .map(|score| score.to_le_bytes())
                .unwrap_or([0xff; 8]),
        );
        field(&[u8::from(self.derived)]);
        field(self.result.as_bytes());
        hasher.finalize().to_vec()
    }
}

/// Context shared by every afname write of one message.
pub(crate) struct AfnameWrite<'a> {
    /// The school and the sending client: a key is unique per owner, so one client's
    /// write never reaches another client's afname with the same key.
    pub(crate) owner: Owner,
    pub(crate) aanmaakdatum: &'a str,
    pub(crate) receipt_id: &'a str,
    pub(crate) quarantined: bool,
    /// A change's feed position in its school is its `change_seq` plus this: one message
    /// writes for one school, so both counters move together within it (`feed_offset`).
    pub(crate) feed_offset: i64,
}

/// How many change numbers a PostgreSQL writer takes at once (see `read_change_seq`).
const CHANGE_BLOCK: i64 = 1 << 20;

/// The change log's counter, read once per message and written back at its end: on SQLite
/// the one writer's `change_counter`. On PostgreSQL writers run side by side, so a message
/// takes a block of numbers of its own (`nextval('change_seq')` × `CHANGE_BLOCK`, the first
/// change is one above) and nothing is written back; the publisher orders changes by the
/// writing transaction (`xid`) first, so a block's place in the log is its commit's, not
/// its number's (ARCHITECTURE.md "PostgreSQL").
pub(crate) fn read_change_seq(connection: &Db) -> Result<i64, StoreError> {
    if connection.is_postgres() {
        return change_block(connection);
    }
    Ok(connection
        .prepare_cached("SELECT seq FROM change_counter WHERE id = 1")?
        .query_row(rusqlite::params![], |row| row.get(0))?)
}

fn change_block(connection: &Db) -> Result<i64, StoreError> {
    let block: i64 = connection
        .prepare_cached("SELECT nextval('change_seq')")?
        .query_row(rusqlite::params![], |row| row.get(0))?;
    Ok(block * CHANGE_BLOCK)
}

/// The change number after `seq`: the next one, or on PostgreSQL the first of a new block
/// when this one is used up (a message of more than a million changes; its feed positions
/// then jump too, which feed readers never notice: they page by position).
pub(crate) fn next_change_seq(connection: &Db, seq: i64) -> Result<i64, StoreError> {
    if connection.is_postgres() && (seq + 1) % CHANGE_BLOCK == 0 {
        return Ok(change_block(connection)? + 1);
    }
    Ok(seq + 1)
}

pub(crate) fn write_change_seq(connection: &Db, seq: i64) -> Result<(), StoreError> {
    if connection.is_postgres() {
        return Ok(());
    }
    connection
        .prepare_cached("UPDATE change_counter SET seq = ?1 WHERE id = 1")?
        .execute([seq])?;
    Ok(())
}

/// The school's feed offset for a message that starts at `change_seq` (see `AfnameWrite`).
/// On PostgreSQL this locks the school's row until the message commits: writers of one
/// school take their feed positions one after another, in commit order, so a reader never
/// sees a position while a lower one can still commit; and the aanmaakdatum check and the
/// replay check of a school's messages run one at a time across instances.
pub(crate) fn feed_offset(
    connection: &Db,
    school_id: i64,
    change_seq: i64,
) -> Result<i64, StoreError> {
    let feed_seq: i64 = connection
        .prepare_cached(connection.pick(
            "SELECT feed_seq FROM schools WHERE id = ?1",
            "SELECT feed_seq FROM schools WHERE id = ?1 FOR UPDATE",
        ))?
        .query_row([school_id], |row| row.get(0))?;
    Ok(feed_seq - change_seq)
}

/// Moves the school's feed counter to where the message's last change put it.
pub(crate) fn write_feed_seq(
    connection: &Db,
    school_id: i64,
    change_seq: i64,
    feed_offset: i64,
) -> Result<(), StoreError> {
    connection
        .prepare_cached("UPDATE schools SET feed_seq = ?2 WHERE id = ?1")?
        .execute(params![school_id, change_seq + feed_offset])?;
    Ok(())
}

/// UWLR step 7: a new key is stored; a known key is updated, its afnamedatum in
/// the message becoming the mutation date, and its previous state kept in history.
pub(crate) fn upsert_afname(
    connection: &Db,
    write: &AfnameWrite,
    state: &AfnameState,
    change_seq: &mut i64,
) -> Result<AfnameChange, StoreError> {
    let content_hash = state.content_hash();
    let next_seq = next_change_seq(connection, *change_seq)?;
    let feed_seq = next_seq + write.feed_offset;
    let values = afname_values(write, state, &content_hash, &next_seq, &feed_seq);
    // Most keys are new: try the insert first and look at the stored row only on a conflict.
    // On PostgreSQL the change log row goes in the same statement (one round trip).
    let inserted = connection
        .prepare_cached(connection.pick(
            "INSERT INTO toetsafnames (school_id, client_id, afname_key, leerlingid, eckid, resultaatverwerkerid, toets_id,
               toetscode, versie, toetsonderdeelcode, afnamedatum, mutatiedatum, aanmaakdatum, receipt_id,
               score, derived, result, content_sha256, revision, quarantined, change_seq, feed_seq, toets_revision)
             VALUES (?1, ?19, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL, ?11, ?12, ?13, ?14, ?15, ?16, 1, ?17, ?18, ?20,
               (SELECT revision FROM toetsen WHERE id = ?6))
             ON CONFLICT (school_id, client_id, afname_key) DO NOTHING RETURNING id",
            "WITH inserted AS (
               INSERT INTO toetsafnames (school_id, client_id, afname_key, leerlingid, eckid, resultaatverwerkerid, toets_id,
               toetscode, versie, toetsonderdeelcode, afnamedatum, mutatiedatum, aanmaakdatum, receipt_id,
               score, derived, result, content_sha256, revision, quarantined, change_seq, feed_seq, toets_revision)
             VALUES (?1, ?19, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL, ?11, ?12, ?13, ?14, ?15, ?16, 1, ?17, ?18, ?20,
               (SELECT revision FROM toetsen WHERE id = ?6))
             ON CONFLICT (school_id, client_id, afname_key) DO NOTHING RETURNING id
             ), logged AS (
               INSERT INTO toetsafname_changes (change_seq, afname_id, revision, quarantined, receipt_id)
               SELECT ?18, id, 1, ?17, ?12 FROM inserted
             )
             SELECT id FROM inserted",
        ))?
        .query_row(values.as_slice(), |row| row.get::<_, i64>(0))
        .optional()?;
    if let Some(afname_id) = inserted {
        *change_seq = next_seq;
        if !connection.is_postgres() {
            // A new afname is at revision 1: no need to read it back.
            connection
                .prepare_cached(
                    "INSERT INTO toetsafname_changes (change_seq, afname_id, revision, quarantined, receipt_id)
                     VALUES (?1, ?2, 1, ?3, ?4)",
                )?
                .execute(params![*change_seq, afname_id, write.quarantined, write.receipt_id])?;
        }
        return Ok(AfnameChange::Created);
    }
    let existing: Option<(i64, Vec<u8>, String, String)> = connection
        .prepare_cached(
            "SELECT id, content_sha256, receipt_id, afnamedatum FROM toetsafnames
             WHERE school_id = ?1 AND client_id = ?2 AND afname_key = ?3",
        )?
        .query_row(
            params![
                write.owner.school_id,
                write.owner.client_id,
                state.afname_key
            ],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    match existing {
        None => Err(StoreError::corrupt(
            format!("afname {}", state.afname_key),
            "it vanished during its upsert",
        )),
        Some((id, _, receipt_id, _)) if receipt_id == write.receipt_id => {
            // A derived total summed again later in the same message (a second toetsafname
            // element of the sitting) holds the newer sum; its change is logged already.
            if state.derived {
                connection
                    .prepare_cached(
                        "UPDATE toetsafnames SET score = ?2, result = ?3, content_sha256 = ?4 WHERE id = ?1",
                    )?
                    .execute(params![id, state.score, state.result, content_hash])?;
            }
            Ok(AfnameChange::DuplicateInMessage)
        }
        Some((id, stored_hash, _, afnamedatum)) if stored_hash == content_hash => {
            connection
                .prepare_cached(
                    "UPDATE toetsafnames SET aanmaakdatum = ?2, receipt_id = ?3 WHERE id = ?1",
                )?
                .execute(params![id, write.aanmaakdatum, write.receipt_id])?;
            Ok(AfnameChange::Unchanged { afnamedatum })
        }
        Some((id, _, _, afnamedatum)) => {
            *change_seq = next_seq;
            update_afname(connection, id, &values)?;
            log_change(connection, next_seq, id, write.quarantined)?;
            Ok(AfnameChange::Updated { afnamedatum })
        }
    }
}

/// The values of an afname row in the order of the parameters `?1` to `?20` that the
/// insert and the update of `upsert_afname` share, so the column list is bound once.
fn afname_values<'a>(
    write: &'a AfnameWrite,
    state: &'a AfnameState,
    content_hash: &'a dyn rusqlite::ToSql,
    change_seq: &'a i64,
    feed_seq: &'a i64,
) -> [&'a dyn rusqlite::ToSql; 20] {
    [
        &write.owner.school_id,
        &state.afname_key,
        &state.leerlingid,
        &state.eckid,
        &state.resultaatverwerkerid,
        &state.toets_id,
        &state.toetscode,
        &state.versie,
        &state.toetsonderdeelcode,
        &state.afnamedatum,
        &write.aanmaakdatum,
        &write.receipt_id,
        &state.score,
        &state.derived,
        &state.result,
        content_hash,
        &write.quarantined,
        change_seq,
        &write.owner.client_id,
        feed_seq,
    ]
}

/// A known afname with new content: its previous state goes to history and the row
/// takes the new one (`values` from `afname_values`; the sent afnamedatum becomes the
/// mutatiedatum, the first one stays).
fn update_afname(
    connection: &Db,
    id: i64,
    values: &[&dyn rusqlite::ToSql; 20],
) -> Result<(), StoreError> {
    let receipt_id = values[11];
    // The previous state goes to history as JSON, read only now that it changed.
    connection
        .prepare_cached(
            connection.pick(
            "INSERT INTO toetsafnames_history (afname_id, revision, state, replaced_at, replaced_by_receipt_id)
             SELECT id, revision, json_object(
                'afname_key', afname_key, 'leerlingid', leerlingid, 'eckid', eckid,
                'resultaatverwerkerid', resultaatverwerkerid, 'toets_id', toets_id, 'toetscode', toetscode,
                'versie', versie, 'toetsonderdeelcode', toetsonderdeelcode, 'afnamedatum', afnamedatum,
                'mutatiedatum', mutatiedatum, 'aanmaakdatum', aanmaakdatum, 'receipt_id', receipt_id,
                'score', score, 'derived', derived, 'result', json(result), 'quarantined', quarantined,
                'toets_revision', toets_revision),
               ?2, ?3
             FROM toetsafnames WHERE id = ?1",
            "INSERT INTO toetsafnames_history (afname_id, revision, state, replaced_at, replaced_by_receipt_id)
             SELECT id, revision, json_build_object(
                'afname_key', afname_key, 'leerlingid', leerlingid, 'eckid', eckid,
                'resultaatverwerkerid', resultaatverwerkerid, 'toets_id', toets_id, 'toetscode', toetscode,
                'versie', versie, 'toetsonderdeelcode', toetsonderdeelcode, 'afnamedatum', afnamedatum,
                'mutatiedatum', mutatiedatum, 'aanmaakdatum', aanmaakdatum, 'receipt_id', receipt_id,
                'score', score, 'derived', derived, 'result', result::json, 'quarantined', quarantined,
                'toets_revision', toets_revision)::text,
               ?2, ?3
             FROM toetsafnames WHERE id = ?1",
        ))?
        .execute(params![id, now_text(), receipt_id])?;
    connection
        .prepare_cached(
            "UPDATE toetsafnames SET leerlingid = ?3, eckid = ?4, resultaatverwerkerid = ?5, toets_id = ?6,
               toetscode = ?7, versie = ?8, toetsonderdeelcode = ?9, mutatiedatum = ?10, aanmaakdatum = ?11,
               receipt_id = ?12, score = ?13, derived = ?14, result = ?15, content_sha256 = ?16,
               revision = revision + 1, quarantined = ?17, change_seq = ?18, feed_seq = ?20,
               toets_revision = (SELECT revision FROM toetsen WHERE id = ?6)
             WHERE school_id = ?1 AND client_id = ?19 AND afname_key = ?2",
        )?
        .execute(values.as_slice())?;
    Ok(())
}

/// One sitting's stored rows; the index `toetsafnames_sitting` (core migration 10) finds
/// exactly them, not every afname of the learner.
const SITTING_RESULTS: &str =
    "SELECT toetsonderdeelcode, afname_key, afnamedatum, score, derived FROM toetsafnames
     WHERE school_id = ?1 AND leerlingid = ?2 AND client_id = ?3 AND toets_id = ?4 AND afnamedatum = ?5
     ORDER BY id";

/// The onderdeel results the sender `owner` stored for one sitting (a leerling, toets
/// version and afnamedatum), in store order, and whether the sender reported a toets-level
/// score for it (then nothing is derived). Reads this message's own rows too.
pub(crate) fn sitting_results(
    connection: &Db,
    owner: Owner,
    leerlingid: &str,
    toets_id: i64,
    afnamedatum: &str,
) -> Result<(Vec<crate::domain::rules::OnderdeelScore>, bool), StoreError> {
    let mut results = Vec::new();
    let mut reported = false;
    let mut statement = connection.prepare_cached(SITTING_RESULTS)?;
    let rows = statement.query_map(
        params![
            owner.school_id,
            leerlingid,
            owner.client_id,
            toets_id,
            afnamedatum
        ],
        |row| {
            Ok((
                row.get::<_, Option<String>>(0)?,
                row.get::<_, bool>(4)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, Option<i64>>(3)?,
            ))
        },
    )?;
    for row in rows {
        let (code, derived, key, afnamedatum, score) = row?;
        match code {
            None => reported |= !derived,
            Some(toetsonderdeelcode) => results.push(crate::domain::rules::OnderdeelScore {
                toetsonderdeelcode,
                key: key.unwrap_or_default(),
                afnamedatum: afnamedatum.unwrap_or_default(),
                score: score.and_then(|score| u64::try_from(score).ok()),
            }),
        }
    }
    Ok((results, reported))
}

/// Starts the list of result keys a message skipped (for breaking a rule): those
/// results are never written, yet kResultaat must still see their keys. The list is
/// a temporary table on the writer's connection, so it costs nothing for a message
/// without violations and no memory for a large one with many.
pub(crate) fn begin_skipped_keys(connection: &Db) -> Result<(), StoreError> {
    connection.execute_batch(connection.pick(
        "CREATE TEMP TABLE IF NOT EXISTS skipped_afname_keys (afname_key TEXT PRIMARY KEY);
         DELETE FROM temp.skipped_afname_keys;",
        "CREATE TEMP TABLE IF NOT EXISTS skipped_afname_keys (afname_key text PRIMARY KEY);
         DELETE FROM pg_temp.skipped_afname_keys;",
    ))?;
    Ok(())
}

/// Notes a skipped result's key; true when the message already holds it (stored or skipped).
pub(crate) fn note_skipped_key(
    connection: &Db,
    write: &AfnameWrite,
    afname_key: &str,
) -> Result<bool, StoreError> {
    let stored_by_this_message = connection
        .prepare_cached(
            "SELECT receipt_id FROM toetsafnames WHERE school_id = ?1 AND client_id = ?2 AND afname_key = ?3",
        )?
        .query_row(params![write.owner.school_id, write.owner.client_id, afname_key], |row| {
            row.get::<_, String>(0)
        })
        .optional()?
        .is_some_and(|receipt_id| receipt_id == write.receipt_id);
    let inserted = connection
        .prepare_cached(
            connection.pick(
                "INSERT INTO temp.skipped_afname_keys (afname_key) VALUES (?1) ON CONFLICT DO NOTHING",
                "INSERT INTO pg_temp.skipped_afname_keys (afname_key) VALUES (?1) ON CONFLICT DO NOTHING",
            ),
        )?
        .execute([afname_key])?;
    Ok(stored_by_this_message || inserted == 0)
}

/// Whether a key was skipped earlier in this message (only after `begin_skipped_keys`).
pub(crate) fn is_skipped_key(connection: &Db, afname_key: &str) -> Result<bool, StoreError> {
    Ok(connection
        .prepare_cached(connection.pick(
            "SELECT 1 FROM temp.skipped_afname_keys WHERE afname_key = ?1",
            "SELECT 1 FROM pg_temp.skipped_afname_keys WHERE afname_key = ?1",
        ))?
        .query_row([afname_key], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Appends a change to the change log (the outbox): the afname, the revision it reached and
/// the receipt that made it (whose aanmaakdatum and sender the statement carries, even after
/// an identical resend has moved the afname's own receipt link on).
fn log_change(
    connection: &Db,
    change_seq: i64,
    afname_id: i64,
    quarantined: bool,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO toetsafname_changes (change_seq, afname_id, revision, quarantined, receipt_id)
             SELECT ?1, id, revision, ?2, receipt_id FROM toetsafnames WHERE id = ?3",
        )?
        .execute(params![change_seq, quarantined, afname_id])?;
    Ok(())
}

/// Releases quarantined afnames of learners that are now known; returns how many.
pub(crate) fn release_quarantine(connection: &Db) -> Result<usize, StoreError> {
    let mut seq = read_change_seq(connection)?;
    let ids: Vec<i64> = connection
        .prepare(
            "SELECT a.id FROM toetsafnames a WHERE a.quarantined = 1 AND EXISTS (
               SELECT 1 FROM leerlingen l WHERE l.school_id = a.school_id
                 AND (l.leerlingid = a.leerlingid OR (a.eckid IS NOT NULL AND l.eckid = a.eckid)))
             ORDER BY a.change_seq",
        )?
        .query_map(rusqlite::params![], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for id in &ids {
        seq = next_change_seq(connection, seq)?;
        // Its school's next feed position: releases span schools, so one counter at a time.
        connection.execute(
            "UPDATE schools SET feed_seq = feed_seq + 1
             WHERE id = (SELECT school_id FROM toetsafnames WHERE id = ?1)",
            [id],
        )?;
        connection.execute(
            "UPDATE toetsafnames SET quarantined = 0, change_seq = ?2,
               feed_seq = (SELECT feed_seq FROM schools WHERE id = toetsafnames.school_id)
             WHERE id = ?1",
            params![id, seq],
        )?;
        // The released state is a change of its own in the log, now visible to the publisher.
        log_change(connection, seq, *id, false)?;
    }
    write_change_seq(connection, seq)?;
    Ok(ids.len())
}

/// A receipt as JSON with the id of the client that sent it.
pub(crate) fn load_receipt(
    connection: &Db,
    id: &str,
) -> Result<Option<(i64, serde_json::Value)>, StoreError> {
    Ok(connection
        .query_row(
            connection.pick(
            "SELECT r.client_id, json_object('id', r.id, 'klantcode', c.klantcode, 'school', s.code,
               'aanmaakdatum', r.aanmaakdatum, 'received_at', r.received_at, 'size', r.size, 'sha256', r.sha256,
               'outcome', r.outcome, 'faultcode', r.faultcode,
               'counts', json_object('toetsen', r.toetsen, 'toetsafnames', r.toetsafnames, 'resultaten', r.resultaten,
                 'created', r.created, 'updated', r.updated, 'unchanged', r.unchanged, 'quarantined', r.quarantined),
               'violations', json(r.violations), 'violations_omitted', r.violations_omitted,
               'unknown_vocabularies', json(r.unknown_vocabularies), 'duration_ms', r.duration_ms)
             FROM receipts r JOIN clients c ON c.id = r.client_id LEFT JOIN schools s ON s.id = r.school_id
             WHERE r.id = ?1",
            "SELECT r.client_id, json_build_object('id', r.id, 'klantcode', c.klantcode, 'school', s.code,
               'aanmaakdatum', r.aanmaakdatum, 'received_at', r.received_at, 'size', r.size, 'sha256', r.sha256,
               'outcome', r.outcome, 'faultcode', r.faultcode,
               'counts', json_build_object('toetsen', r.toetsen, 'toetsafnames', r.toetsafnames, 'resultaten', r.resultaten,
                 'created', r.created, 'updated', r.updated, 'unchanged', r.unchanged, 'quarantined', r.quarantined),
               'violations', r.violations::json, 'violations_omitted', r.violations_omitted,
               'unknown_vocabularies', r.unknown_vocabularies::json, 'duration_ms', r.duration_ms)::text
             FROM receipts r JOIN clients c ON c.id = r.client_id LEFT JOIN schools s ON s.id = r.school_id
             WHERE r.id = ?1",
            ),
            [id],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)),
        )
        .optional()?
        .map(|(client_id, json)| (client_id, serde_json::from_str(&json).unwrap_or(serde_json::Value::Null))))
}

/// Receipts, newest first, as JSON (for `receipts list`).
pub(crate) fn list_receipts(
    connection: &Db,
    limit: u32,
) -> Result<Vec<serde_json::Value>, StoreError> {
    let ids: Vec<String> = connection
        .prepare(connection.pick(
            "SELECT id FROM receipts ORDER BY received_at DESC, rowid DESC LIMIT ?1",
            "SELECT id FROM receipts ORDER BY arrival DESC LIMIT ?1",
        ))?
        .query_map([limit], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut receipts = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some((_, json)) = load_receipt(connection, &id)? {
            receipts.push(json);
        }
    }
    Ok(receipts)
}

/// The receipt of an accepted message with the same bytes from the same client, read
/// through the reader pool (phase 1's replay check, before the writer is asked).
pub(crate) fn find_accepted(
    store: &super::Store,
    client_id: i64,
    sha256: &str,
) -> Result<Option<String>, StoreError> {
    store.read(|connection| accepted_duplicate(connection, client_id, sha256))
}

/// Authenticates a sender for a school through the reader pool (see `admin::authenticate`).
pub(crate) fn authenticate_sender(
    store: &super::Store,
    autorisatie: &crate::uwlr::Autorisatie,
    school: &crate::domain::SchoolCode,
    today: chrono::NaiveDate,
) -> Result<Result<super::admin::Sender, crate::domain::Violation>, StoreError> {
    store.read(|connection| {
        super::admin::authenticate(
            connection,
            &autorisatie.klantcode,
            &autorisatie.klantnaam,
            &autorisatie.autorisatiesleutel,
            school,
            today,
        )
    })
}

/// Runs one message's job on the core writer thread, inside the group transaction
/// (`Store::write`): the intake sees a `MessageWriter`, never a connection or SQL.
pub(crate) async fn write_message<R: Send + 'static>(
    store: &super::Store,
    job: impl FnOnce(&mut MessageWriter<'_>) -> R + Send + 'static,
) -> Result<R, StoreError> {
    store
        .write(move |connection| job(&mut MessageWriter { connection }))
        .await
}

/// The core writer's connection as one message's job sees it.
pub(crate) struct MessageWriter<'c> {
    connection: &'c Db<'c>,
}

/// Whose message a `MessagePass` writes: its owner, receipt and aanmaakdatum.
pub(crate) struct MessageContext {
    pub(crate) owner: Owner,
    pub(crate) receipt_id: String,
    pub(crate) aanmaakdatum: String,
}

impl MessageWriter<'_> {
    /// Writes a receipt outside any message pass (a refused message keeps only this).
    pub(crate) fn insert_receipt(&self, receipt: &Receipt) -> Result<(), StoreError> {
        insert_receipt(self.connection, receipt)
    }

    /// Opens the message's savepoint: what the pass writes stays only if it commits;
    /// dropping it rolls everything back.
    pub(crate) fn begin(&mut self, context: MessageContext) -> Result<MessagePass<'_>, StoreError> {
        let savepoint = super::connection::Savepoint::begin(self.connection)?;
        let change_seq = read_change_seq(savepoint.db())?;
        let feed_offset = feed_offset(savepoint.db(), context.owner.school_id, change_seq)?;
        Ok(MessagePass {
            savepoint,
            context,
            change_seq,
            feed_offset,
            skipped_keys: false,
            known_leerlingen: std::collections::HashMap::new(),
        })
    }
}

/// One message's writes inside its savepoint: toets versions, afname upserts with their
/// change log rows, and at `commit` the counters, the ordering state and the receipt.
pub(crate) struct MessagePass<'c> {
    savepoint: super::connection::Savepoint<'c>,
    context: MessageContext,
    /// The change feed's counter as this message moves it (written back at `commit`).
    change_seq: i64,
    feed_offset: i64,
    /// Whether `skipped_afname_keys` was started for this message.
    skipped_keys: bool,
    /// `leerling_known` answers so far (bounded: a message names at most so many).
    known_leerlingen: std::collections::HashMap<(String, Option<String>), bool>,
}

impl MessagePass<'_> {
    fn write(&self, quarantined: bool) -> AfnameWrite<'_> {
        AfnameWrite {
            owner: self.context.owner,
            aanmaakdatum: &self.context.aanmaakdatum,
            receipt_id: &self.context.receipt_id,
            quarantined,
            feed_offset: self.feed_offset,
        }
    }

    /// See `accepted_duplicate`: a twin may have been accepted while this message waited.
    pub(crate) fn accepted_duplicate(
        &self,
        client_id: i64,
        sha256: &str,
    ) -> Result<Option<String>, StoreError> {
        accepted_duplicate(self.savepoint.db(), client_id, sha256)
    }

    /// The last accepted aanmaakdatum (µs and as sent) of this sender for this school.
    pub(crate) fn last_aanmaakdatum(&self) -> Result<Option<(i64, String)>, StoreError> {
        let owner = self.context.owner;
        last_aanmaakdatum(self.savepoint.db(), owner.client_id, owner.school_id)
    }

    /// UWLR step 6 for one definition (see `upsert_toets`).
    pub(crate) fn upsert_toets(
        &self,
        definition: &ToetsDefinition,
    ) -> Result<(i64, ToetsChange), StoreError> {
        upsert_toets(
            self.savepoint.db(),
            self.context.owner,
            definition,
            &self.context.receipt_id,
        )
    }

    /// A toets version of this sender stored by an earlier message.
    pub(crate) fn load_toets(
        &self,
        toetscode: &str,
        versie: &str,
    ) -> Result<Option<StoredToets>, StoreError> {
        load_toets(self.savepoint.db(), self.context.owner, toetscode, versie)
    }

    /// Whether the school knows the leerling (by leerlingid or eckid).
    /// Answers are kept for the rest of the message (a batch names each leerling many
    /// times; on PostgreSQL each question is a round trip): nothing changes the roster
    /// while a message is stored.
    pub(crate) fn leerling_known(
        &mut self,
        leerlingid: &str,
        eckid: Option<&str>,
    ) -> Result<bool, StoreError> {
        let key = (leerlingid.to_string(), eckid.map(str::to_string));
        if let Some(known) = self.known_leerlingen.get(&key) {
            return Ok(*known);
        }
        let known = super::admin::leerling_known(
            self.savepoint.db(),
            self.context.owner.school_id,
            leerlingid,
            eckid,
        )?;
        if self.known_leerlingen.len() < 100_000 {
            self.known_leerlingen.insert(key, known);
        }
        Ok(known)
    }

    /// Notes the key of a result skipped for a rule it broke; true when the message
    /// holds that key already, stored or skipped (see `begin_skipped_keys`).
    pub(crate) fn note_skipped_key(&mut self, afname_key: &str) -> Result<bool, StoreError> {
        if !self.skipped_keys {
            begin_skipped_keys(self.savepoint.db())?;
            self.skipped_keys = true;
        }
        note_skipped_key(self.savepoint.db(), &self.write(false), afname_key)
    }

    /// Whether a key was skipped earlier in this message.
    pub(crate) fn is_skipped_key(&self, afname_key: &str) -> Result<bool, StoreError> {
        Ok(self.skipped_keys && is_skipped_key(self.savepoint.db(), afname_key)?)
    }

    /// UWLR step 7 for one afname (see `upsert_afname`).
    pub(crate) fn upsert_afname(
        &mut self,
        state: &AfnameState,
        quarantined: bool,
    ) -> Result<AfnameChange, StoreError> {
        let mut change_seq = self.change_seq;
        let change = upsert_afname(
            self.savepoint.db(),
            &self.write(quarantined),
            state,
            &mut change_seq,
        )?;
        self.change_seq = change_seq;
        Ok(change)
    }

    /// See `sitting_results`.
    pub(crate) fn sitting_results(
        &self,
        leerlingid: &str,
        toets_id: i64,
        afnamedatum: &str,
    ) -> Result<(Vec<crate::domain::rules::OnderdeelScore>, bool), StoreError> {
        sitting_results(
            self.savepoint.db(),
            self.context.owner,
            leerlingid,
            toets_id,
            afnamedatum,
        )
    }

    /// Keeps the message: the change and feed counters, the sender's ordering state
    /// (`aanmaakdatum_us`) and the receipt, then releases the savepoint.
    pub(crate) fn commit(self, aanmaakdatum_us: i64, receipt: &Receipt) -> Result<(), StoreError> {
        let owner = self.context.owner;
        write_change_seq(self.savepoint.db(), self.change_seq)?;
        write_feed_seq(
            self.savepoint.db(),
            owner.school_id,
            self.change_seq,
            self.feed_offset,
        )?;
        set_last_aanmaakdatum(
            self.savepoint.db(),
            owner.client_id,
            owner.school_id,
            aanmaakdatum_us,
            &self.context.aanmaakdatum,
            &self.context.receipt_id,
        )?;
        insert_receipt(self.savepoint.db(), receipt)?;
        self.savepoint.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    /// Issue 19: by (school, leerling) alone, each derived total visited every afname of
    /// the learner: a quarter of the writer's time for a 200,000-result batch.
    #[test]
    fn issue19_sitting_read_seeks_the_sitting_only() -> Result<(), StoreError> {
        let connection = testing::database()?;
        let plan: Vec<String> = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {SITTING_RESULTS}"))?
            .query_map(params![1, "L1", 1, 1, "2026-10-01"], |row| row.get(3))?
            .collect::<Result<_, _>>()?;
        assert!(
            plan.iter().any(|step| step.contains(
                "(school_id=? AND leerlingid=? AND client_id=? AND toets_id=? AND afnamedatum=?)"
            )),
            "{plan:?}"
        );
        Ok(())
    }
}
