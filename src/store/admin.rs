//! Clients, schools, activations (with their mandates), leerlingen and the audit log.

use super::db::Db;
use super::{now_text, StoreError};
use crate::domain::{Rule, SchoolCode, Violation};
use rand::RngCore;
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A registered sender as listed by `clients list` (never with its key).
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct ClientRow {
    pub(crate) klantcode: String,
    pub(crate) klantnaam: String,
    pub(crate) created_at: String,
    pub(crate) revoked_at: Option<String>,
}

/// An activation as listed by `schools list`.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct ActivationRow {
    pub(crate) school: String,
    pub(crate) klantcode: String,
    pub(crate) mandate_ref: String,
    pub(crate) valid_from: String,
    pub(crate) valid_until: Option<String>,
    pub(crate) active: bool,
}

/// A learner to import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeerlingRow {
    pub(crate) school: SchoolCode,
    pub(crate) leerlingid: String,
    pub(crate) eckid: Option<String>,
    pub(crate) naam: Option<String>,
}

/// An authenticated sender, allowed to send for one school.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sender {
    pub(crate) client_id: i64,
    pub(crate) klantcode: String,
    pub(crate) school_id: i64,
    pub(crate) school: SchoolCode,
}

fn hash_key(salt: &[u8], key: &str) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(key.as_bytes());
    hasher.finalize().to_vec()
}

/// A fresh random autorisatiesleutel: 32 random bytes, base64url-like hex.
pub(crate) fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub(crate) fn audit(
    connection: &Db,
    actor: &str,
    action: &str,
    detail: &str,
) -> Result<(), StoreError> {
    connection.execute(
        "INSERT INTO audit (at, actor, action, detail) VALUES (?1, ?2, ?3, ?4)",
        params![now_text(), actor, action, detail],
    )?;
    Ok(())
}

/// Registers a client. The key is stored only as a salted SHA-256.
pub(crate) fn add_client(
    connection: &Db,
    klantcode: &str,
    klantnaam: &str,
    key: &str,
) -> Result<(), StoreError> {
    if klantcode.is_empty() || klantcode.len() > 64 || klantnaam.is_empty() || klantnaam.len() > 64
    {
        return Err(StoreError::invalid_input(
            "klantcode",
            "klantcode and klantnaam take 1 to 64 characters",
        ));
    }
    if key.len() < 8 || key.len() > 64 {
        return Err(StoreError::invalid_input(
            "autorisatiesleutel",
            "an autorisatiesleutel takes 8 to 64 characters",
        ));
    }
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let inserted = connection.execute(
        "INSERT INTO clients (klantcode, klantnaam, key_salt, key_hash, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (klantcode) DO NOTHING",
        params![
            klantcode,
            klantnaam,
            &salt[..],
            hash_key(&salt, key),
            now_text()
        ],
    )?;
    if inserted == 0 {
        return Err(StoreError::already_exists(format!("client {klantcode}")));
    }
    audit(connection, "cli", "clients.add", klantcode)
}

pub(crate) fn list_clients(connection: &Db) -> Result<Vec<ClientRow>, StoreError> {
    let mut statement = connection.prepare(connection.pick(
        "SELECT klantcode, klantnaam, created_at, revoked_at FROM clients ORDER BY klantcode",
        r#"SELECT klantcode, klantnaam, created_at, revoked_at FROM clients ORDER BY klantcode COLLATE "C""#,
    ))?;
    let rows = statement.query_map(rusqlite::params![], |row| {
        Ok(ClientRow {
            klantcode: row.get(0)?,
            klantnaam: row.get(1)?,
            created_at: row.get(2)?,
            revoked_at: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn revoke_client(connection: &Db, klantcode: &str) -> Result<(), StoreError> {
    revoke(connection, Revocable::Client, klantcode)
}

/// What `revoke` withdraws: a sending client or a reader.
#[derive(Clone, Copy, Debug)]
pub(super) enum Revocable {
    Client,
    Reader,
}

/// Stamps `revoked_at` on the active client or reader named `name` and audits it; its key or
/// token stops working at once. Revoking one that is unknown or already revoked is `NotFound`.
pub(super) fn revoke(connection: &Db, revocable: Revocable, name: &str) -> Result<(), StoreError> {
    let (sql, what, action) = match revocable {
        Revocable::Client => (
            "UPDATE clients SET revoked_at = ?2 WHERE klantcode = ?1 AND revoked_at IS NULL",
            "client",
            "clients.revoke",
        ),
        Revocable::Reader => (
            "UPDATE readers SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            "reader",
            "readers.revoke",
        ),
    };
    if connection.execute(sql, params![name, now_text()])? == 0 {
        return Err(StoreError::not_found(format!("active {what} {name}")));
    }
    audit(connection, "cli", action, name)
}

/// The id of a school, created on first mention.
pub(crate) fn ensure_school(connection: &Db, school: &SchoolCode) -> Result<i64, StoreError> {
    let (brincode, dependancecode, schoolkey) = school.parts();
    connection.execute(
        "INSERT INTO schools (code, brincode, dependancecode, schoolkey, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (code) DO NOTHING",
        params![
            school.as_str(),
            brincode,
            dependancecode,
            schoolkey,
            now_text()
        ],
    )?;
    Ok(connection.query_row(
        "SELECT id FROM schools WHERE code = ?1",
        [school.as_str()],
        |row| row.get(0),
    )?)
}

pub(crate) fn school_id(connection: &Db, school: &SchoolCode) -> Result<Option<i64>, StoreError> {
    Ok(connection
        .query_row(
            "SELECT id FROM schools WHERE code = ?1",
            [school.as_str()],
            |row| row.get(0),
        )
        .optional()?)
}

/// Activates `klantcode` for `school` under a mandate valid from `valid_from` until `valid_until` (dates, inclusive).
pub(crate) fn activate(
    connection: &Db,
    klantcode: &str,
    school: &SchoolCode,
    mandate_ref: &str,
    valid_from: &str,
    valid_until: Option<&str>,
) -> Result<(), StoreError> {
    let dates = std::iter::once(("valid_from", valid_from))
        .chain(valid_until.map(|date| ("valid_until", date)));
    for (field, date) in dates {
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
            StoreError::invalid_input(field, format!("{date} is not a date (YYYY-MM-DD)"))
        })?;
    }
    if mandate_ref.trim().is_empty() {
        return Err(StoreError::invalid_input(
            "mandate",
            "an activation needs the mandate reference",
        ));
    }
    let client_id = client_id_of(connection, klantcode)?;
    let school_id = ensure_school(connection, school)?;
    connection.execute(
        "INSERT INTO activations (client_id, school_id, mandate_ref, valid_from, valid_until, active, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)
         ON CONFLICT (client_id, school_id) DO UPDATE SET mandate_ref = excluded.mandate_ref,
           valid_from = excluded.valid_from, valid_until = excluded.valid_until, active = 1,
           deactivated_at = NULL",
        params![client_id, school_id, mandate_ref, valid_from, valid_until, now_text()],
    )?;
    audit(
        connection,
        "cli",
        "schools.activate",
        &format!("{school} {klantcode} {mandate_ref}"),
    )
}

pub(crate) fn deactivate(
    connection: &Db,
    klantcode: &str,
    school: &SchoolCode,
) -> Result<(), StoreError> {
    let changed = connection.execute(
        "UPDATE activations SET active = 0, deactivated_at = ?3
         WHERE active = 1 AND client_id = (SELECT id FROM clients WHERE klantcode = ?1)
           AND school_id = (SELECT id FROM schools WHERE code = ?2)",
        params![klantcode, school.as_str(), now_text()],
    )?;
    if changed == 0 {
        return Err(StoreError::not_found(format!(
            "active activation of {klantcode} for {school}"
        )));
    }
    audit(
        connection,
        "cli",
        "schools.deactivate",
        &format!("{school} {klantcode}"),
    )
}

/// Forgets the ordering state of `klantcode` for `school`: its next message is checked against
/// no earlier aanmaakdatum. For a sender held up by an aanmaakdatum that lay in the future
/// (accepted before UWLR-TOEKOMST existed, or a clock that ran far ahead within the skew).
/// Returns the aanmaakdatum that was forgotten; audited with it.
pub(crate) fn reset_ordering(
    connection: &Db,
    klantcode: &str,
    school: &SchoolCode,
) -> Result<String, StoreError> {
    let client_id = client_id_of(connection, klantcode)?;
    let school_id = school_id(connection, school)?
        .ok_or_else(|| StoreError::not_found(format!("school {school}")))?;
    let forgotten: String = connection
        .query_row(
            "DELETE FROM sender_state WHERE client_id = ?1 AND school_id = ?2 RETURNING last_aanmaakdatum",
            params![client_id, school_id],
            |row| row.get(0),
        )
        .optional()?
        .ok_or_else(|| {
            StoreError::not_found(format!(
                "accepted message of {klantcode} for {school}: nothing to reset"
            ))
        })?;
    audit(
        connection,
        "cli",
        "clients.reset-ordering",
        &format!("{school} {klantcode} {forgotten}"),
    )?;
    Ok(forgotten)
}

pub(crate) fn list_activations(connection: &Db) -> Result<Vec<ActivationRow>, StoreError> {
    let mut statement = connection.prepare(connection.pick(
        "SELECT s.code, c.klantcode, a.mandate_ref, a.valid_from, a.valid_until, a.active
         FROM activations a JOIN schools s ON s.id = a.school_id JOIN clients c ON c.id = a.client_id
         ORDER BY s.code, c.klantcode",
        r#"SELECT s.code, c.klantcode, a.mandate_ref, a.valid_from, a.valid_until, a.active
         FROM activations a JOIN schools s ON s.id = a.school_id JOIN clients c ON c.id = a.client_id
         ORDER BY s.code COLLATE "C", c.klantcode COLLATE "C""#,
    ))?;
    let rows = statement.query_map(rusqlite::params![], |row| {
        Ok(ActivationRow {
            school: row.get(0)?,
            klantcode: row.get(1)?,
            mandate_ref: row.get(2)?,
            valid_from: row.get(3)?,
            valid_until: row.get(4)?,
            active: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What a sender with a wrong (or locked-out) autorisatiesleutel is told.
pub(crate) fn wrong_key_violation() -> Violation {
    Violation::new(Rule::Autorisatie, "autorisatiesleutel is not valid")
        .at_path("autorisatie/autorisatiesleutel")
}

/// A client's row as both authentications check it.
struct StoredClient {
    id: i64,
    klantnaam: String,
    key_salt: Vec<u8>,
    key_hash: Vec<u8>,
    revoked_at: Option<String>,
}

impl StoredClient {
    fn read(connection: &Db, klantcode: &str) -> Result<Option<StoredClient>, StoreError> {
        Ok(connection
            .prepare_cached("SELECT id, klantnaam, key_salt, key_hash, revoked_at FROM clients WHERE klantcode = ?1")?
            .query_row([klantcode], |row| {
                Ok(StoredClient {
                    id: row.get(0)?,
                    klantnaam: row.get(1)?,
                    key_salt: row.get(2)?,
                    key_hash: row.get(3)?,
                    revoked_at: row.get(4)?,
                })
            })
            .optional()?)
    }

    /// Whether `key` is this client's key and the client is not revoked (constant time).
    fn accepts(&self, key: &str) -> bool {
        let matches: bool = hash_key(&self.key_salt, key).ct_eq(&self.key_hash).into();
        matches && self.revoked_at.is_none()
    }
}

/// Checks the autorisatie header and the activation for the school, in the order
/// the Topicus reference service uses: client identity, key, then school.
pub(crate) fn authenticate(
    connection: &Db,
    klantcode: &str,
    klantnaam: &str,
    key: &str,
    school: &SchoolCode,
    today: chrono::NaiveDate,
) -> Result<Result<Sender, Violation>, StoreError> {
    let Some(client) = StoredClient::read(connection, klantcode)? else {
        // Hash anyway so that an unknown klantcode takes as long as a wrong key.
        let _ = hash_key(&[0u8; 16], key);
        return Ok(Err(Violation::new(Rule::Klant, "klantcode is not known")
            .at_path("autorisatie/klantcode")
            .with_value(klantcode)));
    };
    let key_accepted = client.accepts(key);
    if client.klantnaam != klantnaam {
        return Ok(Err(Violation::new(
            Rule::Klant,
            "klantnaam does not match the klantcode",
        )
        .at_path("autorisatie/klantnaam")
        .with_value(klantnaam)));
    }
    if !key_accepted {
        return Ok(Err(wrong_key_violation()));
    }
    let client_id = client.id;
    let activation: Option<(i64, String, Option<String>, bool)> = connection
        .prepare_cached(
            "SELECT s.id, a.valid_from, a.valid_until, a.active FROM schools s
             JOIN activations a ON a.school_id = s.id AND a.client_id = ?1 WHERE s.code = ?2",
        )?
        .query_row(params![client_id, school.as_str()], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?;
    let refuse = |reason: &str| {
        Ok(Err(Violation::new(Rule::Activatie, reason.to_string())
            .at_path("school")
            .with_value(school.as_str())))
    };
    let Some((school_id, valid_from, valid_until, active)) = activation else {
        return refuse("the client is not activated for this school");
    };
    if !active {
        return refuse("the activation for this school was withdrawn");
    }
    let today_text = today.format("%Y-%m-%d").to_string();
    if today_text < valid_from
        || valid_until
            .as_deref()
            .is_some_and(|until| today_text.as_str() > until)
    {
        return refuse("the mandate for this school is not valid today");
    }
    Ok(Ok(Sender {
        client_id,
        klantcode: klantcode.to_string(),
        school_id,
        school: school.clone(),
    }))
}

/// Checks only the client's credentials (for HTTP Basic on the receipts API).
pub(crate) fn authenticate_client(
    connection: &Db,
    klantcode: &str,
    key: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(StoredClient::read(connection, klantcode)?
        .filter(|client| client.accepts(key))
        .map(|client| client.id))
}

/// Inserts or updates learners; returns how many rows were written.
pub(crate) fn import_leerlingen(
    connection: &Db,
    rows: &[LeerlingRow],
    actor: &str,
) -> Result<usize, StoreError> {
    import_leerlingen_with_progress(connection, rows, actor, &mut |_| {})
}

/// `import_leerlingen`, calling `on_rows` with the number of rows written every 1,000 rows.
pub(crate) fn import_leerlingen_with_progress(
    connection: &Db,
    rows: &[LeerlingRow],
    actor: &str,
    on_rows: &mut dyn FnMut(usize),
) -> Result<usize, StoreError> {
    let now = now_text();
    for (index, row) in rows.iter().enumerate() {
        if index % 1000 == 0 {
            on_rows(index);
        }
        let school_id = ensure_school(connection, &row.school)?;
        connection
            .prepare_cached(
                "INSERT INTO leerlingen (school_id, leerlingid, eckid, naam, imported_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (school_id, leerlingid) DO UPDATE SET eckid = excluded.eckid,
                   naam = COALESCE(excluded.naam, leerlingen.naam), imported_at = excluded.imported_at",
            )?
            .execute(params![school_id, row.leerlingid, row.eckid, row.naam, now])?;
    }
    audit(
        connection,
        actor,
        "leerlingen.import",
        &format!("{} rows", rows.len()),
    )?;
    Ok(rows.len())
}

/// Whether a leerling is known at the school, by LAS key or else by ECK iD.
pub(crate) fn leerling_known(
    connection: &Db,
    school_id: i64,
    leerlingid: &str,
    eckid: Option<&str>,
) -> Result<bool, StoreError> {
    let by_key: Option<i64> = connection
        .prepare_cached("SELECT 1 FROM leerlingen WHERE school_id = ?1 AND leerlingid = ?2")?
        .query_row(params![school_id, leerlingid], |row| row.get(0))
        .optional()?;
    if by_key.is_some() {
        return Ok(true);
    }
    let Some(eckid) = eckid else { return Ok(false) };
    let by_eckid: Option<i64> = connection
        .prepare_cached("SELECT 1 FROM leerlingen WHERE school_id = ?1 AND eckid = ?2")?
        .query_row(params![school_id, eckid], |row| row.get(0))
        .optional()?;
    Ok(by_eckid.is_some())
}

/// The id of the client with this klantcode; refused when there is none.
fn client_id_of(connection: &Db, klantcode: &str) -> Result<i64, StoreError> {
    connection
        .query_row(
            "SELECT id FROM clients WHERE klantcode = ?1",
            [klantcode],
            |row| row.get(0),
        )
        .optional()?
        .ok_or_else(|| StoreError::not_found(format!("client {klantcode}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::*;

    #[test]
    fn authentication_checks_each_part() -> Result<(), StoreError> {
        let connection = database()?;
        add_client(&connection, "EA", "Uitgever", "sleutel-123")?;
        let school = SchoolCode::parse("99XX01").unwrap();
        activate(
            &connection,
            "EA",
            &school,
            "DPA-1",
            "2026-01-01",
            Some("2026-12-31"),
        )?;
        let check = |code: &str, naam: &str, key: &str, school: &str, day: &str| {
            authenticate(
                &connection,
                code,
                naam,
                key,
                &SchoolCode::parse(school).unwrap(),
                date(day),
            )
            .unwrap()
            .map_err(|violation| violation.rule)
            .map(|sender| sender.school.to_string())
        };
        assert_eq!(
            check("EA", "Uitgever", "sleutel-123", "99XX01", "2026-06-01"),
            Ok("99XX01".into())
        );
        assert_eq!(
            check("XX", "Uitgever", "sleutel-123", "99XX01", "2026-06-01"),
            Err(Rule::Klant)
        );
        assert_eq!(
            check("EA", "Ander", "sleutel-123", "99XX01", "2026-06-01"),
            Err(Rule::Klant)
        );
        assert_eq!(
            check("EA", "Uitgever", "fout-sleutel", "99XX01", "2026-06-01"),
            Err(Rule::Autorisatie)
        );
        assert_eq!(
            check("EA", "Uitgever", "sleutel-123", "99YY", "2026-06-01"),
            Err(Rule::Activatie)
        );
        assert_eq!(
            check("EA", "Uitgever", "sleutel-123", "99XX01", "2027-01-01"),
            Err(Rule::Activatie)
        );
        assert_eq!(
            check("EA", "Uitgever", "sleutel-123", "99XX01", "2025-12-31"),
            Err(Rule::Activatie)
        );
        deactivate(&connection, "EA", &school)?;
        assert_eq!(
            check("EA", "Uitgever", "sleutel-123", "99XX01", "2026-06-01"),
            Err(Rule::Activatie)
        );
        revoke_client(&connection, "EA")?;
        assert_eq!(
            check("EA", "Uitgever", "sleutel-123", "99XX01", "2026-06-01"),
            Err(Rule::Autorisatie)
        );
        Ok(())
    }

    #[test]
    fn keys_are_never_stored_in_clear() -> Result<(), StoreError> {
        let connection = database()?;
        add_client(&connection, "EA", "Uitgever", "geheime-sleutel")?;
        let stored: Vec<u8> =
            connection.query_row("SELECT key_hash FROM clients", rusqlite::params![], |row| {
                row.get(0)
            })?;
        assert!(!String::from_utf8_lossy(&stored).contains("geheime-sleutel"));
        assert_eq!(
            authenticate_client(&connection, "EA", "geheime-sleutel")?,
            Some(1)
        );
        assert_eq!(authenticate_client(&connection, "EA", "andere")?, None);
        Ok(())
    }

    #[test]
    fn leerlingen_are_found_by_key_or_eckid() -> Result<(), StoreError> {
        let connection = database()?;
        let school = SchoolCode::parse("99XX01").unwrap();
        import_leerlingen(
            &connection,
            &[LeerlingRow {
                school: school.clone(),
                leerlingid: "L1".into(),
                eckid: Some("E1".into()),
                naam: None,
            }],
            "test",
        )?;
        let school_id = school_id(&connection, &school)?.unwrap();
        assert!(leerling_known(&connection, school_id, "L1", None)?);
        assert!(leerling_known(&connection, school_id, "L9", Some("E1"))?);
        assert!(!leerling_known(&connection, school_id, "L9", Some("E9"))?);
        Ok(())
    }
}
