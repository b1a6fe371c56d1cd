//! Reader clients of the read API: hashed bearer tokens, API scopes, school grants under a mandate, and the read audit.

use super::admin::{audit, ensure_school};
use super::db::Db;
use super::{now_text, StoreError};
use crate::domain::SchoolCode;
use rand::RngCore;
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Which read API a reader may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scope {
    /// The LAS feed under `/api/v1/schools/…`.
    Las,
    /// The xAPI Statement Resource under `/xapi/…`.
    Xapi,
}

impl Scope {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scope::Las => "las",
            Scope::Xapi => "xapi",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Scope> {
        match text {
            "las" => Some(Scope::Las),
            "xapi" => Some(Scope::Xapi),
            _ => None,
        }
    }
}

/// An authenticated reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reader {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) scopes: Vec<Scope>,
}

impl Reader {
    pub(crate) fn may_use(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// Access to one school, resting on a mandate with a validity period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Grant {
    pub(crate) school: SchoolCode,
    pub(crate) mandate_ref: String,
    /// First valid day, `YYYY-MM-DD`.
    pub(crate) valid_from: String,
    /// Last valid day, `YYYY-MM-DD`; open-ended when absent.
    pub(crate) valid_until: Option<String>,
}

/// A reader as listed by `readers list` (never with its token).
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct ReaderRow {
    pub(crate) name: String,
    pub(crate) scopes: Vec<Scope>,
    pub(crate) created_at: String,
    pub(crate) revoked_at: Option<String>,
    pub(crate) schools: Vec<GrantRow>,
}

/// A grant as listed, with whether it lets the reader in today.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct GrantRow {
    pub(crate) school: String,
    pub(crate) mandate_ref: String,
    pub(crate) valid_from: String,
    pub(crate) valid_until: Option<String>,
    pub(crate) withdrawn_at: Option<String>,
    pub(crate) valid_today: bool,
}

/// A school a reader may read today.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReadableSchool {
    pub(crate) id: i64,
    pub(crate) school: SchoolCode,
}

/// One row of the read audit, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReadAudit {
    pub(crate) request_id: String,
    pub(crate) reader_id: i64,
    /// `las` or `xapi`.
    pub(crate) api: &'static str,
    /// Method, path and query as asked (never the token: it travels in a header).
    pub(crate) request: String,
    pub(crate) status: u16,
    /// The school whose data was asked for or returned; none when the request named no school.
    pub(crate) school: Option<String>,
    /// The distinct leerlingids whose records were returned.
    pub(crate) leerlingen: Vec<String>,
    pub(crate) records: u64,
}

/// One line of `uwlr-gateway audit`: a read or an administrative action.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct AuditLine {
    pub(crate) at: String,
    /// `read` for a read request, else the administrative action (`readers.add`, `clients.add`, …).
    pub(crate) action: String,
    /// The reader's name for reads; `cli`, `demo`, `admin-api` for administrative actions.
    pub(crate) actor: String,
    pub(crate) detail: String,
    pub(crate) request_id: Option<String>,
    pub(crate) api: Option<String>,
    pub(crate) status: Option<u16>,
    pub(crate) school: Option<String>,
    pub(crate) leerlingen: Option<Vec<String>>,
    pub(crate) records: Option<u64>,
}

/// What `uwlr-gateway audit` shows.
#[derive(Clone, Debug, Default)]
pub(crate) struct AuditFilter {
    pub(crate) reader: Option<String>,
    pub(crate) school: Option<SchoolCode>,
    pub(crate) leerling: Option<String>,
    /// Only read requests, no administrative actions.
    pub(crate) reads_only: bool,
    pub(crate) limit: u32,
}

/// Tokens start with this, so secret scanners and people can tell what they hold.
const TOKEN_PREFIX: &str = "uwlrr_";
/// Hex characters after the prefix that find the row; the rest stays secret.
const LOOKUP_LENGTH: usize = 16;

fn token_sha256(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn token_lookup(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    (rest.len() == 64 && rest.bytes().all(|byte| byte.is_ascii_hexdigit()))
        .then(|| &rest[..LOOKUP_LENGTH])
}

fn check_date(field: &'static str, text: &str) -> Result<(), StoreError> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|_| ())
        .map_err(|_| StoreError::invalid_input(field, format!("{text} is not a date (YYYY-MM-DD)")))
}

fn scopes_text(scopes: &[Scope]) -> String {
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    scopes
        .iter()
        .map(|scope| scope.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_scopes(text: &str) -> Vec<Scope> {
    text.split_whitespace().filter_map(Scope::parse).collect()
}

fn reader_id(connection: &Db, name: &str) -> Result<i64, StoreError> {
    connection
        .query_row("SELECT id FROM readers WHERE name = ?1", [name], |row| {
            row.get(0)
        })
        .optional()?
        .ok_or_else(|| StoreError::not_found(format!("reader {name}")))
}

/// Registers a reader with its scopes and school grants; returns the bearer
/// token, which exists only in the caller's hands from then on.
pub(crate) fn add_reader(
    connection: &Db,
    name: &str,
    scopes: &[Scope],
    grants: &[Grant],
) -> Result<String, StoreError> {
    if name.trim().is_empty() || name.len() > 64 {
        return Err(StoreError::invalid_input(
            "name",
            "a reader name takes 1 to 64 characters",
        ));
    }
    if scopes.is_empty() {
        return Err(StoreError::invalid_input(
            "scope",
            "a reader needs at least one scope (las, xapi)",
        ));
    }
    if grants.is_empty() {
        return Err(StoreError::invalid_input(
            "school",
            "a reader needs at least one school",
        ));
    }
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
    let lookup = token_lookup(&token).expect("a generated token has the token form");
    let inserted = connection.execute(
        "INSERT INTO readers (name, token_lookup, token_sha256, scopes, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
        params![
            name,
            lookup,
            token_sha256(&token),
            scopes_text(scopes),
            now_text()
        ],
    )?;
    if inserted == 0 {
        return Err(StoreError::already_exists(format!("reader {name}")));
    }
    audit(
        connection,
        "cli",
        "readers.add",
        &format!("{name} scopes {}", scopes_text(scopes)),
    )?;
    for grant in grants {
        grant_school(connection, name, grant)?;
    }
    Ok(token)
}

/// Lets a reader read a school under a mandate, or renews the grant with a new mandate.
pub(crate) fn grant_school(connection: &Db, name: &str, grant: &Grant) -> Result<(), StoreError> {
    check_date("valid_from", &grant.valid_from)?;
    if let Some(until) = &grant.valid_until {
        check_date("valid_until", until)?;
        if until < &grant.valid_from {
            return Err(StoreError::invalid_input(
                "valid_until",
                format!(
                    "the mandate ends ({until}) before it starts ({})",
                    grant.valid_from
                ),
            ));
        }
    }
    if grant.mandate_ref.trim().is_empty() {
        return Err(StoreError::invalid_input(
            "mandate",
            "a grant needs the mandate reference",
        ));
    }
    let reader_id = reader_id(connection, name)?;
    let school_id = ensure_school(connection, &grant.school)?;
    connection.execute(
        "INSERT INTO reader_schools (reader_id, school_id, mandate_ref, valid_from, valid_until, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (reader_id, school_id) DO UPDATE SET mandate_ref = excluded.mandate_ref,
           valid_from = excluded.valid_from, valid_until = excluded.valid_until, withdrawn_at = NULL",
        params![reader_id, school_id, grant.mandate_ref, grant.valid_from, grant.valid_until, now_text()],
    )?;
    audit(
        connection,
        "cli",
        "readers.grant",
        &format!(
            "{name} {} mandate {} {} .. {}",
            grant.school,
            grant.mandate_ref,
            grant.valid_from,
            grant.valid_until.as_deref().unwrap_or("open")
        ),
    )
}

/// Ends a reader's access to one school at once.
pub(crate) fn withdraw_school(
    connection: &Db,
    name: &str,
    school: &SchoolCode,
) -> Result<(), StoreError> {
    let changed = connection.execute(
        "UPDATE reader_schools SET withdrawn_at = ?3
         WHERE withdrawn_at IS NULL AND reader_id = (SELECT id FROM readers WHERE name = ?1)
           AND school_id = (SELECT id FROM schools WHERE code = ?2)",
        params![name, school.as_str(), now_text()],
    )?;
    if changed == 0 {
        return Err(StoreError::not_found(format!(
            "grant for {school} of reader {name}"
        )));
    }
    audit(
        connection,
        "cli",
        "readers.withdraw",
        &format!("{name} {school}"),
    )
}

/// Withdraws a reader: its token stops working at once.
pub(crate) fn revoke_reader(connection: &Db, name: &str) -> Result<(), StoreError> {
    super::admin::revoke(connection, super::admin::Revocable::Reader, name)
}

pub(crate) fn list_readers(
    connection: &Db,
    today: chrono::NaiveDate,
) -> Result<Vec<ReaderRow>, StoreError> {
    let today = today.format("%Y-%m-%d").to_string();
    let readers: Vec<(i64, ReaderRow)> = connection
        .prepare(connection.pick(
            "SELECT id, name, scopes, created_at, revoked_at FROM readers ORDER BY name",
            r#"SELECT id, name, scopes, created_at, revoked_at FROM readers ORDER BY name COLLATE "C""#,
        ))?
        .query_map(rusqlite::params![], |row| {
            Ok((
                row.get(0)?,
                ReaderRow {
                    name: row.get(1)?,
                    scopes: parse_scopes(&row.get::<_, String>(2)?),
                    created_at: row.get(3)?,
                    revoked_at: row.get(4)?,
                    schools: Vec::new(),
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut statement = connection.prepare(connection.pick(
        "SELECT s.code, g.mandate_ref, g.valid_from, g.valid_until, g.withdrawn_at FROM reader_schools g
         JOIN schools s ON s.id = g.school_id WHERE g.reader_id = ?1 ORDER BY s.code",
        r#"SELECT s.code, g.mandate_ref, g.valid_from, g.valid_until, g.withdrawn_at FROM reader_schools g
         JOIN schools s ON s.id = g.school_id WHERE g.reader_id = ?1 ORDER BY s.code COLLATE "C""#,
    ))?;
    let mut rows = Vec::with_capacity(readers.len());
    for (id, mut reader) in readers {
        reader.schools = statement
            .query_map([id], |row| {
                let valid_from: String = row.get(2)?;
                let valid_until: Option<String> = row.get(3)?;
                let withdrawn_at: Option<String> = row.get(4)?;
                let valid_today = withdrawn_at.is_none()
                    && valid_from <= today
                    && valid_until.as_ref().is_none_or(|until| &today <= until);
                Ok(GrantRow {
                    school: row.get(0)?,
                    mandate_ref: row.get(1)?,
                    valid_from,
                    valid_until,
                    withdrawn_at,
                    valid_today,
                })
            })?
            .collect::<Result<_, _>>()?;
        rows.push(reader);
    }
    Ok(rows)
}

/// The reader a bearer token belongs to, if the token is valid and not revoked.
/// The hash compare is constant-time, and an unknown token costs the same hash.
pub(crate) fn authenticate_reader(
    connection: &Db,
    token: &str,
) -> Result<Option<Reader>, StoreError> {
    let presented = token_sha256(token);
    let Some(lookup) = token_lookup(token) else {
        return Ok(None);
    };
    let row = connection
        .prepare_cached("SELECT id, name, token_sha256, scopes, revoked_at FROM readers WHERE token_lookup = ?1")?
        .query_row([lookup], |row| {
            let reader = Reader { id: row.get(0)?, name: row.get(1)?, scopes: parse_scopes(&row.get::<_, String>(3)?) };
            Ok((reader, row.get::<_, Vec<u8>>(2)?, row.get::<_, Option<String>>(4)?))
        })
        .optional()?;
    let Some((reader, stored, revoked_at)) = row else {
        let _ = presented.ct_eq(&[0u8; 32]);
        return Ok(None);
    };
    let matches: bool = presented.ct_eq(&stored).into();
    Ok((matches && revoked_at.is_none()).then_some(reader))
}

/// The school's id if `reader_id` may read it on `today`; `None` for an unknown
/// school and for a school outside the reader's grants alike.
pub(crate) fn readable_school(
    connection: &Db,
    reader_id: i64,
    school: &SchoolCode,
    today: chrono::NaiveDate,
) -> Result<Option<i64>, StoreError> {
    Ok(connection
        .prepare_cached(
            "SELECT s.id FROM reader_schools g JOIN schools s ON s.id = g.school_id
             WHERE g.reader_id = ?1 AND s.code = ?2 AND g.withdrawn_at IS NULL
               AND g.valid_from <= ?3 AND (g.valid_until IS NULL OR ?3 <= g.valid_until)",
        )?
        .query_row(
            params![
                reader_id,
                school.as_str(),
                today.format("%Y-%m-%d").to_string()
            ],
            |row| row.get(0),
        )
        .optional()?)
}

/// Every school `reader_id` may read on `today`, by code.
pub(crate) fn readable_schools(
    connection: &Db,
    reader_id: i64,
    today: chrono::NaiveDate,
) -> Result<Vec<ReadableSchool>, StoreError> {
    let rows: Vec<(i64, String)> = connection
        .prepare_cached(connection.pick(
            "SELECT s.id, s.code FROM reader_schools g JOIN schools s ON s.id = g.school_id
             WHERE g.reader_id = ?1 AND g.withdrawn_at IS NULL
               AND g.valid_from <= ?2 AND (g.valid_until IS NULL OR ?2 <= g.valid_until)
             ORDER BY s.code",
            r#"SELECT s.id, s.code FROM reader_schools g JOIN schools s ON s.id = g.school_id
             WHERE g.reader_id = ?1 AND g.withdrawn_at IS NULL
               AND g.valid_from <= ?2 AND (g.valid_until IS NULL OR ?2 <= g.valid_until)
             ORDER BY s.code COLLATE "C""#,
        ))?
        .query_map(
            params![reader_id, today.format("%Y-%m-%d").to_string()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, code)| {
            SchoolCode::parse(&code)
                .ok()
                .map(|school| ReadableSchool { id, school })
        })
        .collect())
}

/// Writes audit rows; runs on the writer thread so that the answer waits for them.
/// `insert_read_audit` as a job on the writer: in a savepoint of its group, so a request's
/// audit rows commit all or none.
pub(crate) fn audit_reads(connection: &Db, entries: &[ReadAudit]) -> Result<(), StoreError> {
    super::connection::in_savepoint(connection, |savepoint| {
        insert_read_audit(savepoint, entries)
    })
}

pub(crate) fn insert_read_audit(connection: &Db, entries: &[ReadAudit]) -> Result<(), StoreError> {
    let at = now_text();
    let mut statement = connection.prepare_cached(
        "INSERT INTO read_audit (at, request_id, reader_id, api, request, status, school, leerlingen, records)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for entry in entries {
        let leerlingen = serde_json::to_string(&entry.leerlingen).unwrap_or_else(|_| "[]".into());
        statement.execute(params![
            at,
            entry.request_id,
            entry.reader_id,
            entry.api,
            entry.request,
            entry.status,
            entry.school,
            leerlingen,
            entry.records as i64,
        ])?;
    }
    Ok(())
}

/// Reads and administrative actions, newest first.
pub(crate) fn list_audit(
    connection: &Db,
    filter: &AuditFilter,
) -> Result<Vec<AuditLine>, StoreError> {
    let read_filtered =
        filter.reader.is_some() || filter.school.is_some() || filter.leerling.is_some();
    let reads_only = filter.reads_only || read_filtered;
    // The two texts differ in the list of leerlingen (json_each, json_array_elements_text)
    // and in the order of `at` (PostgreSQL: byte order, as SQLite compares).
    let mut statement = connection.prepare(connection.pick(
        "SELECT at, action, actor, detail, request_id, api, status, school, leerlingen, records FROM (
           SELECT r.at AS at, r.id AS seq, 1 AS kind, 'read' AS action, d.name AS actor, r.request AS detail,
                  r.request_id AS request_id, r.api AS api, r.status AS status, r.school AS school,
                  r.leerlingen AS leerlingen, r.records AS records
           FROM read_audit r JOIN readers d ON d.id = r.reader_id
           WHERE (CAST(?1 AS TEXT) IS NULL OR d.name = ?1) AND (CAST(?2 AS TEXT) IS NULL OR r.school = ?2)
             AND (CAST(?3 AS TEXT) IS NULL OR EXISTS (SELECT 1 FROM json_each(r.leerlingen) WHERE value = ?3))
           UNION ALL
           SELECT at, id, 0, action, actor, detail, NULL, NULL, NULL, NULL, NULL, NULL FROM audit WHERE ?4 = 0
         ) AS u ORDER BY at DESC, kind DESC, seq DESC LIMIT ?5",
        r#"SELECT at, action, actor, detail, request_id, api, status, school, leerlingen, records FROM (
           SELECT r.at AS at, r.id AS seq, 1 AS kind, 'read' AS action, d.name AS actor, r.request AS detail,
                  r.request_id AS request_id, r.api AS api, r.status AS status, r.school AS school,
                  r.leerlingen AS leerlingen, r.records AS records
           FROM read_audit r JOIN readers d ON d.id = r.reader_id
           WHERE (CAST(?1 AS TEXT) IS NULL OR d.name = ?1) AND (CAST(?2 AS TEXT) IS NULL OR r.school = ?2)
             AND (CAST(?3 AS TEXT) IS NULL
               OR EXISTS (SELECT 1 FROM json_array_elements_text(r.leerlingen::json) WHERE value = ?3))
           UNION ALL
           SELECT at, id, 0, action, actor, detail, NULL, NULL, NULL, NULL, NULL, NULL FROM audit WHERE ?4 = 0
         ) AS u ORDER BY at COLLATE "C" DESC, kind DESC, seq DESC LIMIT ?5"#,
    ))?;
    let rows = statement.query_map(
        params![
            filter.reader,
            filter.school.as_ref().map(SchoolCode::as_str),
            filter.leerling,
            reads_only,
            filter.limit
        ],
        |row| {
            let leerlingen: Option<String> = row.get(8)?;
            Ok(AuditLine {
                at: row.get(0)?,
                action: row.get(1)?,
                actor: row.get(2)?,
                detail: row.get(3)?,
                request_id: row.get(4)?,
                api: row.get(5)?,
                status: row.get(6)?,
                school: row.get(7)?,
                leerlingen: leerlingen.map(|text| serde_json::from_str(&text).unwrap_or_default()),
                records: row.get::<_, Option<i64>>(9)?.map(|records| records as u64),
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::*;

    fn grant(school: &str, from: &str, until: Option<&str>) -> Grant {
        Grant {
            school: SchoolCode::parse(school).unwrap(),
            mandate_ref: "DPA-LAS-1".into(),
            valid_from: from.into(),
            valid_until: until.map(str::to_string),
        }
    }

    /// The reader `las-a` with the LAS scope and a grant on 99XX01 from 2026-01-01 to `until`.
    fn las_reader(connection: &Db, until: Option<&str>) -> Result<Reader, StoreError> {
        let token = add_reader(
            connection,
            "las-a",
            &[Scope::Las],
            &[grant("99XX01", "2026-01-01", until)],
        )?;
        Ok(authenticate_reader(connection, &token)?.expect("the token is valid"))
    }

    #[test]
    fn tokens_are_hashed_and_checked() -> Result<(), StoreError> {
        let connection = database()?;
        let token = add_reader(
            &connection,
            "las-a",
            &[Scope::Las],
            &[grant("99XX01", "2026-01-01", None)],
        )?;
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == TOKEN_PREFIX.len() + 64);
        let stored: Vec<u8> = connection.query_row(
            "SELECT token_sha256 FROM readers",
            rusqlite::params![],
            |row| row.get(0),
        )?;
        assert_eq!(stored, token_sha256(&token));
        let reader = authenticate_reader(&connection, &token)?.expect("the token is valid");
        assert_eq!(
            (reader.name.as_str(), reader.scopes.as_slice()),
            ("las-a", &[Scope::Las][..])
        );
        // Same lookup part, different secret: refused.
        let mut forged = token.clone();
        let last = if forged.ends_with('0') { "1" } else { "0" };
        forged.replace_range(forged.len() - 1.., last);
        assert_eq!(authenticate_reader(&connection, &forged)?, None);
        assert_eq!(authenticate_reader(&connection, "")?, None);
        assert_eq!(authenticate_reader(&connection, "uwlrr_zz")?, None);
        revoke_reader(&connection, "las-a")?;
        assert_eq!(authenticate_reader(&connection, &token)?, None);
        Ok(())
    }

    #[test]
    fn grants_end_by_themselves() -> Result<(), StoreError> {
        let connection = database()?;
        let reader = las_reader(&connection, Some("2026-12-31"))?;
        let school = SchoolCode::parse("99XX01").unwrap();
        let check = |day: &str| {
            readable_school(&connection, reader.id, &school, date(day))
                .unwrap()
                .is_some()
        };
        assert!(!check("2025-12-31"));
        assert!(check("2026-01-01"));
        assert!(check("2026-12-31"));
        assert!(!check("2027-01-01"));
        let other = SchoolCode::parse("99YY").unwrap();
        assert_eq!(
            readable_school(&connection, reader.id, &other, date("2026-06-01"))?,
            None
        );
        assert_eq!(
            readable_schools(&connection, reader.id, date("2026-06-01"))?.len(),
            1
        );
        withdraw_school(&connection, "las-a", &school)?;
        assert!(!check("2026-06-01"));
        grant_school(&connection, "las-a", &grant("99XX01", "2026-01-01", None))?;
        assert!(check("2030-06-01"));
        Ok(())
    }

    #[test]
    fn bad_grants_are_refused() -> Result<(), StoreError> {
        let connection = database()?;
        let refused = |grants: &[Grant], scopes: &[Scope]| {
            add_reader(&connection, "x", scopes, grants).is_err()
        };
        assert!(refused(
            &[grant("99XX01", "2026-13-01", None)],
            &[Scope::Las]
        ));
        assert!(refused(
            &[grant("99XX01", "2026-02-01", Some("2026-01-01"))],
            &[Scope::Las]
        ));
        assert!(refused(&[], &[Scope::Las]));
        assert!(refused(&[grant("99XX01", "2026-01-01", None)], &[]));
        Ok(())
    }

    #[test]
    fn audit_lists_reads_and_actions() -> Result<(), StoreError> {
        let connection = database()?;
        let reader = las_reader(&connection, None)?;
        insert_read_audit(
            &connection,
            &[ReadAudit {
                request_id: "r1".into(),
                reader_id: reader.id,
                api: "las",
                request: "GET /api/v1/schools/99XX01/toetsafnames".into(),
                status: 200,
                school: Some("99XX01".into()),
                leerlingen: vec!["LL0001".into(), "LL0002".into()],
                records: 3,
            }],
        )?;
        let all = list_audit(
            &connection,
            &AuditFilter {
                limit: 50,
                ..AuditFilter::default()
            },
        )?;
        assert_eq!(all[0].action, "read");
        assert!(all.iter().any(|line| line.action == "readers.add"));
        let by_leerling = |leerling: &str| {
            list_audit(
                &connection,
                &AuditFilter {
                    leerling: Some(leerling.into()),
                    limit: 50,
                    ..AuditFilter::default()
                },
            )
            .unwrap()
            .len()
        };
        assert_eq!(by_leerling("LL0002"), 1);
        assert_eq!(by_leerling("LL0009"), 0);
        Ok(())
    }
}
