//! Erasure of one learner: the rows about them go, and the rows that only named them name a keyed hash instead.

use super::db::Db;
use super::retention::{learner_afnames, remove_afnames};
use super::StoreError;
use crate::secret::Keyring;
use hmac::Mac as _;
use rusqlite::{params, OptionalExtension};

/// A learner as the erasure found them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Learner {
    pub(crate) school_id: i64,
    pub(crate) school: String,
    pub(crate) leerlingid: String,
    pub(crate) eckid: Option<String>,
}

/// What an erasure removed or rewrote. Counts only.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ErasureCounts {
    pub(crate) toetsafnames: u64,
    pub(crate) quarantined: u64,
    pub(crate) toetsafnames_history: u64,
    pub(crate) toetsafname_changes: u64,
    pub(crate) removals_written: u64,
    pub(crate) leerlingen: u64,
    pub(crate) receipts_rewritten: u64,
    pub(crate) read_audit_rewritten: u64,
    pub(crate) audit_rewritten: u64,
    pub(crate) xapi_statements_removed: u64,
    pub(crate) xapi_statements_voided: u64,
}

/// Finds a learner of the school by LAS key or ECK iD, in the roster or else in stored afnames.
pub(crate) fn find_learner(
    connection: &Db,
    school: &crate::domain::SchoolCode,
    leerlingid: Option<&str>,
    eckid: Option<&str>,
) -> Result<Option<Learner>, StoreError> {
    let Some(school_id) = super::admin::school_id(connection, school)? else {
        return Ok(None);
    };
    let found: Option<(String, Option<String>)> = connection
        .query_row(
            "SELECT leerlingid, eckid FROM (
               SELECT leerlingid, eckid, 0 AS rank FROM leerlingen WHERE school_id = ?1 AND (leerlingid = ?2 OR eckid = ?3)
               UNION ALL
               SELECT leerlingid, eckid, 1 FROM toetsafnames WHERE school_id = ?1 AND (leerlingid = ?2 OR eckid = ?3)
             ) AS u ORDER BY rank, eckid IS NULL LIMIT 1",
            params![school_id, leerlingid, eckid],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(found.map(|(found_leerlingid, found_eckid)| Learner {
        school_id,
        school: school.as_str().to_string(),
        leerlingid: found_leerlingid,
        eckid: found_eckid.or_else(|| eckid.map(str::to_string)),
    }))
}

/// The name of the key behind `learner_hash` in `gateway_keys`.
const HASH_KEY_NAME: &str = "learner_hash";

/// The gateway's key for keyed hashes of learner ids: random, made on first use and kept
/// sealed in the database, so the same learner always gets the same hash (an auditor can
/// check a hash with the gateway's help) and nobody without the secrets key can.
///
/// Two first uses at once (two instances on one PostgreSQL database) may both make a key:
/// the insert keeps the first one stored, and both use the key read back after it.
pub(crate) fn learner_hash_key(connection: &Db, keyring: &Keyring) -> Result<Vec<u8>, StoreError> {
    let place = format!("gateway_keys.sealed/{HASH_KEY_NAME}");
    let stored = |connection: &Db| -> Result<Option<Vec<u8>>, StoreError> {
        Ok(connection
            .query_row(
                "SELECT sealed FROM gateway_keys WHERE name = ?1",
                [HASH_KEY_NAME],
                |row| row.get(0),
            )
            .optional()?)
    };
    if let Some(stored) = stored(connection)? {
        return Ok(keyring.open(&place, &stored)?);
    }
    let mut key = vec![0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    connection.execute(
        "INSERT INTO gateway_keys (name, sealed, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO NOTHING",
        params![
            HASH_KEY_NAME,
            keyring.seal(&place, &key).into_bytes(),
            super::now_text()
        ],
    )?;
    let stored = stored(connection)?.ok_or_else(|| {
        StoreError::corrupt(
            "gateway_keys",
            format!("{HASH_KEY_NAME} is missing right after it was stored"),
        )
    })?;
    Ok(keyring.open(&place, &stored)?)
}

/// Seals the gateway's own keys (`gateway_keys`) anew under the keyring's first key, as
/// `outbox::reseal_secrets` does for subscription secrets (`secrets rotate`, and at start).
pub(crate) fn reseal_gateway_keys(
    connection: &Db,
    keyring: &Keyring,
    outcome: &mut super::outbox::Resealed,
) -> Result<(), StoreError> {
    let stored: Vec<(String, Vec<u8>)> = {
        let mut statement = connection.prepare("SELECT name, sealed FROM gateway_keys")?;
        let rows =
            statement.query_map(rusqlite::params![], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (name, sealed) in stored {
        if keyring.is_current(&sealed) {
            continue;
        }
        let place = format!("gateway_keys.sealed/{name}");
        match keyring.open(&place, &sealed) {
            Ok(clear) => {
                connection.execute(
                    "UPDATE gateway_keys SET sealed = ?1 WHERE name = ?2",
                    params![keyring.seal(&place, &clear).into_bytes(), name],
                )?;
                outcome.resealed += 1;
            }
            Err(error) => outcome.unopened.push(error),
        }
    }
    Ok(())
}

/// The keyed hash that stands in for a learner id (or ECK iD) of a school in audit rows.
pub(crate) fn learner_hash(key: &[u8], school: &str, id: &str) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(school.as_bytes());
    mac.update(&[0]);
    mac.update(id.as_bytes());
    format!("hmac:{}", &hex::encode(mac.finalize().into_bytes())[..32])
}

/// `text` with every whole occurrence of `token` (not inside a longer key or number) replaced.
pub(crate) fn replace_token(text: &str, token: &str, replacement: &str) -> String {
    if token.is_empty() {
        return text.to_string();
    }
    // Over-replacing is the safe side: an afname key like `B02-LL0006-SPEL` names the learner too.
    let part_of_key = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(token) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + token.len()..].chars().next();
        let whole = before.is_none_or(|c| !part_of_key(c)) && after.is_none_or(|c| !part_of_key(c));
        out.push_str(&rest[..at]);
        out.push_str(if whole { replacement } else { token });
        rest = &rest[at + token.len()..];
    }
    out.push_str(rest);
    out
}

/// Rewrites every row of `table` whose `column` names one of `ids`, through `replace_token`.
fn rewrite_column(
    connection: &Db,
    table: &str,
    key: &str,
    column: &str,
    filter: &str,
    filter_value: &dyn rusqlite::ToSql,
    ids: &[(&str, &str)],
) -> Result<u64, StoreError> {
    let mut rewritten = 0;
    let position = connection.pick("instr", "strpos");
    for (id, hash) in ids {
        let rows: Vec<(rusqlite::types::Value, String)> = {
            let mut statement = connection.prepare(&format!(
                "SELECT {key}, {column} FROM {table} WHERE {filter} AND {position}({column}, ?2) > 0"
            ))?;
            let rows = statement.query_map(params![filter_value, id], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        for (row_key, text) in rows {
            let new_text = replace_token(&text, id, hash);
            if new_text != text {
                connection.execute(
                    &format!("UPDATE {table} SET {column} = ?1 WHERE {key} = ?2"),
                    params![new_text, row_key],
                )?;
                rewritten += 1;
            }
        }
    }
    Ok(rewritten)
}

/// Removes the learner's afnames (quarantined ones too) with history and change log rows,
/// leaving a tombstone in the feed for each visible one, and their roster row; rewrites
/// receipts' violations, read audit rows and audit rows that named them to name the keyed hash.
/// Runs in the caller's transaction, with `erase_statements` in the same one.
pub(crate) fn erase_core(
    connection: &Db,
    learner: &Learner,
    hash_key: &[u8],
) -> Result<(ErasureCounts, Vec<i64>), StoreError> {
    let mut counts = ErasureCounts::default();
    let afnames = learner_afnames(
        connection,
        learner.school_id,
        &learner.leerlingid,
        learner.eckid.as_deref(),
    )?;
    let afname_ids: Vec<i64> = afnames.iter().map(|afname| afname.id).collect();
    counts.quarantined = afnames.iter().filter(|afname| afname.quarantined).count() as u64;
    let removed = remove_afnames(
        connection,
        learner.school_id,
        &afnames,
        "erasure",
        &super::now_text(),
    )?;
    counts.toetsafnames = removed.toetsafnames;
    counts.toetsafnames_history = removed.toetsafnames_history;
    counts.toetsafname_changes = removed.toetsafname_changes;
    counts.removals_written = removed.removals_written;
    counts.leerlingen = connection.execute(
        "DELETE FROM leerlingen WHERE school_id = ?1
         AND (leerlingid = ?2 OR (CAST(?3 AS TEXT) IS NOT NULL AND eckid = ?3))",
        params![learner.school_id, learner.leerlingid, learner.eckid],
    )? as u64;
    let leerling_hash = learner_hash(hash_key, &learner.school, &learner.leerlingid);
    let mut ids = vec![(learner.leerlingid.as_str(), leerling_hash.as_str())];
    let eckid_hash = learner
        .eckid
        .as_deref()
        .map(|eckid| learner_hash(hash_key, &learner.school, eckid));
    if let (Some(eckid), Some(hash)) = (learner.eckid.as_deref(), eckid_hash.as_deref()) {
        ids.push((eckid, hash));
    }
    // The longer first: an ECK iD may contain the LAS key.
    ids.sort_by_key(|(id, _)| std::cmp::Reverse(id.len()));
    for column in ["violations", "unknown_vocabularies"] {
        counts.receipts_rewritten += rewrite_column(
            connection,
            "receipts",
            "id",
            column,
            "school_id = ?1",
            &learner.school_id,
            &ids,
        )?;
    }
    for column in ["leerlingen", "request"] {
        counts.read_audit_rewritten += rewrite_column(
            connection,
            "read_audit",
            "id",
            column,
            "school = ?1",
            &learner.school,
            &ids,
        )?;
    }
    counts.audit_rewritten =
        rewrite_column(connection, "audit", "id", "detail", "?1 = 1", &1, &ids)?;
    Ok((counts, afname_ids))
}

/// A statement about the learner that an LRS may hold.
#[derive(Clone, Debug)]
pub(crate) struct LearnerStatement {
    pub(crate) seq: i64,
    pub(crate) id: String,
    pub(crate) toetscode: String,
    /// Not voided yet: it gets a voiding statement.
    pub(crate) live: bool,
    /// Its ids are keyed (`StatementRow::keyed`): its voiding statement is keyed too, so an
    /// LRS with the pseudonym or LAS identity gets the StatementRef it holds.
    pub(crate) keyed: bool,
}

/// Every statement about the learner (their own, and the voiding statements of their afnames).
pub(crate) fn learner_statements(
    connection: &Db,
    learner: &Learner,
    afname_ids: &[i64],
) -> Result<Vec<LearnerStatement>, StoreError> {
    let afnames = serde_json::to_string(afname_ids).expect("ids serialize");
    let mut statement = connection.prepare(connection.pick(
        "SELECT seq, id, toetscode, voided_by IS NULL AND verb_id != ?5, keyed FROM xapi_statements
         WHERE school_id = ?1 AND (leerlingid = ?2 OR (CAST(?3 AS TEXT) IS NOT NULL AND eckid = ?3)
           OR afname_id IN (SELECT value FROM json_each(?4)))
         ORDER BY seq",
        "SELECT seq, id, toetscode, voided_by IS NULL AND verb_id != ?5, keyed FROM xapi_statements
         WHERE school_id = ?1 AND (leerlingid = ?2 OR (CAST(?3 AS TEXT) IS NOT NULL AND eckid = ?3)
           OR afname_id IN (SELECT json_array_elements_text(CAST(?4 AS TEXT)::json)::bigint))
         ORDER BY seq",
    ))?;
    let rows = statement.query_map(
        params![
            learner.school_id,
            learner.leerlingid,
            learner.eckid,
            afnames,
            super::outbox::VERB_VOIDED
        ],
        |row| {
            Ok(LearnerStatement {
                seq: row.get(0)?,
                id: row.get(1)?,
                toetscode: row.get(2)?,
                live: row.get(3)?,
                keyed: row.get(4)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records erased afnames in `xapi.sqlite`, so a publisher round that read them before the
/// erasure committed writes no statement for them afterwards (`bridge::publish::write_round`).
pub(crate) fn mark_erased(connection: &Db, afname_ids: &[i64]) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached(
        "INSERT INTO xapi_erased_afnames (afname_id) VALUES (?1) ON CONFLICT DO NOTHING",
    )?;
    for afname_id in afname_ids {
        statement.execute([afname_id])?;
    }
    Ok(())
}

/// Removes these statements and their dead letters from `xapi.sqlite`.
pub(crate) fn remove_statements(
    connection: &Db,
    statements: &[LearnerStatement],
) -> Result<u64, StoreError> {
    let mut removed = 0;
    for statement in statements {
        connection
            .prepare_cached("DELETE FROM xapi_dead_letters WHERE statement_id = ?1")?
            .execute([&statement.id])?;
        removed += connection
            .prepare_cached("DELETE FROM xapi_statements WHERE seq = ?1")?
            .execute([statement.seq])? as u64;
    }
    Ok(removed)
}

/// What `erase_learner` did.
pub(crate) struct Erased {
    pub counts: ErasureCounts,
    /// The keyed hash that names the learner in the audit from now on.
    pub learner_hash: String,
    /// LRSs that received statements about the learner.
    pub lrs: Vec<String>,
}

/// Erases `learner` in one write transaction over both files (`in_write_transaction`): the core's rows (rows that
/// named them rewritten to a keyed hash), then the statements: `voiding` gives the rows of
/// the voiding statements for the live ones (the bridge's mapping), written before all are
/// removed; the audit row names the learner by hash and carries the counts.
pub(crate) fn erase_learner<E: From<StoreError>>(
    connection: &Db,
    keyring: &Keyring,
    learner: &Learner,
    actor: &str,
    voiding: impl FnOnce(&[LearnerStatement]) -> Result<Vec<super::outbox::StatementRow>, E>,
) -> Result<Erased, E> {
    super::connection::in_write_transaction(connection, |transaction| {
        let school = crate::domain::SchoolCode::parse(&learner.school).map_err(|error| {
            StoreError::corrupt(format!("stored school {}", learner.school), error)
        })?;
        let held = super::disclosures::register(
            transaction,
            &school,
            Some(&learner.leerlingid),
            learner.eckid.as_deref(),
        )?;
        let key = learner_hash_key(transaction, keyring)?;
        let (mut counts, afname_ids) = erase_core(transaction, learner, &key)?;
        let statements = learner_statements(transaction, learner, &afname_ids)?;
        mark_erased(transaction, &afname_ids)?;
        let voiding = voiding(&statements)?;
        counts.xapi_statements_voided =
            super::outbox::insert_new_statements(transaction, &voiding)?;
        counts.xapi_statements_removed = remove_statements(transaction, &statements)?;
        let learner_hash = learner_hash(&key, &learner.school, &learner.leerlingid);
        let lrs: Vec<String> = held.lrs.into_iter().map(|lrs| lrs.lrs).collect();
        super::admin::audit(
            transaction,
            actor,
            "leerlingen.erase",
            &format!(
                "{} {learner_hash} {}; LRS that held data: {}",
                learner.school,
                serde_json::to_string(&counts).expect("counts serialize"),
                if lrs.is_empty() {
                    "none".to_string()
                } else {
                    lrs.join(", ")
                }
            ),
        )?;
        Ok(Erased {
            counts,
            learner_hash,
            lrs,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_replaced_only_where_they_stand_alone() {
        let check = |text: &str, expected: &str| {
            assert_eq!(replace_token(text, "L1", "H"), expected, "{text}");
        };
        check(r#"["L1","L10"]"#, r#"["H","L10"]"#);
        check(
            "leerling L1 is unknown; XL1 B-L1-2 L1.",
            "leerling H is unknown; XL1 B-H-2 H.",
        );
        check(
            "/api/v1/schools/S/leerlingen/L1?x=1",
            "/api/v1/schools/S/leerlingen/H?x=1",
        );
        check("nothing", "nothing");
    }

    /// The hash key is made once and kept sealed; `secrets rotate` reseals it, so after the
    /// old key is gone the same learner still gets the same hash.
    #[test]
    fn the_hash_key_survives_a_key_rotation() -> Result<(), StoreError> {
        let connection = crate::store::testing::database()?;
        let old_key = Keyring::new_key_text();
        let new_key = Keyring::new_key_text();
        let old = Keyring::parse(&old_key, "test").unwrap();
        let key = learner_hash_key(&connection, &old)?;
        assert_eq!(learner_hash_key(&connection, &old)?, key);
        let both = Keyring::parse(&format!("{new_key},{old_key}"), "test").unwrap();
        let outcome = crate::store::outbox::reseal_secrets(&connection, &both)?;
        assert_eq!((outcome.resealed, outcome.unopened.len()), (1, 0));
        let new = Keyring::parse(&new_key, "test").unwrap();
        assert_eq!(learner_hash_key(&connection, &new)?, key);
        Ok(())
    }

    #[test]
    fn hashes_are_keyed_per_school_and_stable() {
        let a = learner_hash(b"key", "99XX01", "L1");
        assert_eq!(a, learner_hash(b"key", "99XX01", "L1"));
        assert_ne!(a, learner_hash(b"other", "99XX01", "L1"));
        assert_ne!(a, learner_hash(b"key", "99YY01", "L1"));
        assert!(a.starts_with("hmac:") && a.len() == 37);
    }
}
