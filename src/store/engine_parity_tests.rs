//! The administrative and read-side store functions give the same answers on SQLite and PostgreSQL (issue 12).
//!
//! One scenario (clients, schools, a roster, a reader, afnames, receipts, statements, then
//! erasure and purge) runs on an in-memory SQLite store and, when
//! `UWLR_TEST_DATABASE_URL` names a PostgreSQL database at the newest schema, on that
//! database too; every answer is recorded as JSON and the two records must be equal, with
//! the clock's timestamps and random secrets left out. The PostgreSQL database is emptied
//! first: point it at a throwaway one only.

use crate::domain::SchoolCode;
use crate::secret::Keyring;
use crate::store::admin::{self, LeerlingRow};
use crate::store::db::Db;
use crate::store::readers::{self, AuditFilter, Grant, ReadAudit, Scope};
use crate::store::{access_request, clients, disclosures, erasure, feed, leerlingen, receipts};
use crate::store::{retention, status, StoreError};
use rusqlite::params;
use serde_json::{json, Value};

/// The tables the scenario writes, emptied before it runs on PostgreSQL.
const TABLES: &str = "read_audit, reader_schools, readers, xapi_dead_letters, xapi_subscriptions,
    xapi_statements, xapi_erased_afnames, toetsafname_removals, toetsafname_changes,
    toetsafnames_history, toetsafnames, toetsen_history, toetsen, sender_state, receipts,
    leerlingen, activations, gateway_keys, audit, clients, schools";

fn school(code: &str) -> SchoolCode {
    SchoolCode::parse(code).unwrap()
}

/// Keys whose values come from the clock or from random secrets.
const UNSTABLE: &[&str] = &[
    "at",
    "created_at",
    "imported_at",
    "revoked_at",
    "withdrawn_at",
    "first_read",
    "last_read",
    "learner_hash",
];

fn stable(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(key, _)| !UNSTABLE.contains(&key.as_str()))
                .map(|(key, value)| (key, stable(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(stable).collect()),
        Value::String(text) => Value::String(without_hashes(&text)),
        other => other,
    }
}

/// `text` with each keyed hash (`hmac:` and 32 hex digits, under a random key) made alike.
fn without_hashes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("hmac:") {
        out.push_str(&rest[..at]);
        out.push_str("hmac:…");
        let after = &rest[at + 5..];
        let hex = after.bytes().take_while(u8::is_ascii_hexdigit).count();
        rest = &after[hex..];
    }
    out.push_str(rest);
    out
}

fn seed(db: &Db) -> Result<(), StoreError> {
    admin::add_client(db, "EA", "Uitgever", "sleutel-123")?;
    admin::add_client(db, "EB", "Ander", "sleutel-456")?;
    // Lower case sorts after upper case in SQLite (byte order), before it in most locales.
    admin::add_client(db, "aa", "Klein", "sleutel-789")?;
    admin::activate(
        db,
        "EA",
        &school("99XX01"),
        "DPA-1",
        "2026-01-01",
        Some("2026-12-31"),
    )?;
    admin::activate(db, "EB", &school("99YY"), "DPA-2", "2026-01-01", None)?;
    admin::activate(db, "aa", &school("99YY"), "DPA-4", "2026-01-01", None)?;
    let row = |leerlingid: &str, eckid: Option<&str>, naam: Option<&str>| LeerlingRow {
        school: school("99XX01"),
        leerlingid: leerlingid.into(),
        eckid: eckid.map(str::to_string),
        naam: naam.map(str::to_string),
    };
    admin::import_leerlingen(
        db,
        &[
            row("L1", Some("https://id.school/E1"), Some("Anna")),
            row("L2", None, None),
        ],
        "test",
    )?;
    db.execute_batch(
        r#"INSERT INTO toetsen (school_id, client_id, toetscode, versie, definition, content_sha256, revision,
             created_at, created_receipt_id, updated_at, updated_receipt_id)
           VALUES (1, 1, 'T', '', '{"naam": "Rekenen", "onderdelen": [1, 2]}', 'x', 2,
             '2026-03-01T08:00:00.000Z', 'r0', '2026-03-02T08:00:00.000Z', 'r1');
           INSERT INTO toetsen_history (toets_id, revision, definition, content_sha256, receipt_id, replaced_at,
             replaced_by_receipt_id)
           VALUES (1, 1, '{"naam": "Rekenen"}', 'y', 'r0', '2026-03-02T08:00:00.000Z', 'r1');
           INSERT INTO toetsafnames (school_id, client_id, afname_key, leerlingid, eckid, toets_id, toetscode,
             versie, afnamedatum, aanmaakdatum, receipt_id, score, derived, result, content_sha256, revision,
             quarantined, change_seq, feed_seq)
           VALUES (1, 1, 'A1', 'L1', 'https://id.school/E1', 1, 'T', '', '2026-03-01', '2026-03-02T08:00:00',
                     'r1', 5, 0, '{"uitslag": "5", "n": [1]}', 'c', 2, 0, 1, 1),
                  (1, 1, 'A2', 'L2', NULL, 1, 'T', '', '2026-03-05', '2026-03-05T08:00:00',
                     'r1', 7, 1, '{"uitslag": "7"}', 'c', 1, 0, 2, 2),
                  (1, 1, 'A3', 'L1', NULL, 1, 'T', '', '2026-04-01', '2026-04-01T08:00:00',
                     'r1', NULL, 1, '{}', 'c', 1, 1, 3, 0);
           UPDATE schools SET feed_seq = 2 WHERE id = 1;
           INSERT INTO toetsafnames_history (afname_id, revision, state, replaced_at, replaced_by_receipt_id)
           VALUES (1, 1, '{"receipt_id": "r0", "score": 3}', '2026-03-02T08:00:00.000Z', 'r1');
           INSERT INTO receipts (id, client_id, school_id, received_at, size, sha256, outcome, faultcode,
             resultaten, violations, violations_omitted)
           VALUES ('r0', 1, 1, '2026-03-01T08:00:00.000Z', 10, 's0', 'accepted', NULL, 3, '[]', 0),
                  ('r1', 1, 1, '2026-03-02T08:00:00.000Z', 10, 's1', 'accepted', NULL, 4, '[]', 0),
                  ('r2', 1, 1, '2026-03-03T08:00:00.000Z', 10, 's2', 'rejected', 'soap:Client', 0,
                     '[{"rule": "UWLR-LEERLING", "message": "leerling is unknown", "value": "L1"}]', 2),
                  ('r3', 2, 2, '2026-03-04T08:00:00.000Z', 10, 's3', 'rejected', 'soap:Client', 0,
                     '[{"rule": "UWLR-XSD", "message": "L2"}, {"rule": "UWLR-XSD", "message": "x"}]', 0);
           INSERT INTO sender_state (client_id, school_id, last_aanmaakdatum_us, last_aanmaakdatum, last_receipt_id)
           VALUES (1, 1, 1, '2026-03-02T08:00:00', 'r1');
           INSERT INTO xapi_statements (seq, id, school_id, afname_id, toetscode, stored_at, verb_id, leerlingid,
             eckid, voided_by, statement, keyed)
           VALUES (1, 's-1', 1, 1, 'T', '2026-03-02T09:00:00.000Z', 'v/scored', 'L1', 'https://id.school/E1',
                     NULL, '{"id": "s-1", "n": [1, 2]}', 1),
                  (2, 's-2', 1, 2, 'T', '2026-03-05T09:00:00.000Z', 'v/scored', 'L2', NULL, NULL, '{"id": "s-2"}', 0),
                  (3, 's-3', 1, 3, 'U', '2026-03-06T09:00:00.000Z', 'v/scored', 'LX', NULL, NULL, '{"id": "s-3"}', 0);"#,
    )?;
    db.execute(
        "INSERT INTO xapi_subscriptions (name, url, identity, pseudonym_key, schools, toetscodes, cursor_seq,
           created_at, last_delivered_at)
         VALUES (?1, 'https://lrs.example/xapi', 'eckid', ?2, '[]', ?3, 2, 'now', '2026-03-06T00:00:00.000Z')",
        params!["lrs-a", vec![0u8, 1], r#"["T"]"#],
    )?;
    db.execute(
        "INSERT INTO xapi_dead_letters (subscription_id, statement_id, seq, status, answer, failed_at, attempts, requeued)
         VALUES (1, 's-2', 2, 400, 'bad', '2026-03-06T00:00:00.000Z', 3, 0)",
        params![],
    )?;
    readers::add_reader(
        db,
        "las-a",
        &[Scope::Las, Scope::Xapi],
        &[Grant {
            school: school("99XX01"),
            mandate_ref: "DPA-LAS".into(),
            valid_from: "2026-01-01".into(),
            valid_until: None,
        }],
    )?;
    readers::audit_reads(
        db,
        &[ReadAudit {
            request_id: "q1".into(),
            reader_id: 1,
            api: "las",
            request: "GET /api/v1/schools/99XX01/leerlingen/L1".into(),
            status: 200,
            school: Some("99XX01".into()),
            leerlingen: vec!["L1".into(), "L2".into()],
            records: 2,
        }],
    )?;
    Ok(())
}

fn feed_page(db: &Db, since: i64, filter: &feed::FeedFilter) -> Result<Value, StoreError> {
    let page = feed::read_feed(db, 1, since, 10, filter)?;
    Ok(json!({"items": page.items, "next": page.next_cursor,
        "through": page.consistent_through, "more": page.has_more}))
}

/// The answers of one run, by name, without what the clock or randomness decides.
#[derive(Default)]
struct Record(serde_json::Map<String, Value>);

impl Record {
    fn note(&mut self, key: &str, value: Value) {
        self.0.insert(key.to_string(), stable(value));
    }
}

fn today() -> chrono::NaiveDate {
    crate::store::testing::date("2026-06-01")
}

/// The audit, sorted: rows written within one millisecond tie on `at`, and which ones do
/// depends on speed.
fn audit(db: &Db, filter: AuditFilter) -> Result<Value, StoreError> {
    let lines = readers::list_audit(
        db,
        &AuditFilter {
            limit: 50,
            ..filter
        },
    )?;
    let mut lines: Vec<Value> = lines.into_iter().map(|line| stable(json!(line))).collect();
    lines.sort_by_key(|line| line.to_string());
    Ok(Value::Array(lines))
}

/// Runs the scenario and records every answer.
fn scenario(db: &Db) -> Result<Value, StoreError> {
    seed(db)?;
    let mut record = Record::default();
    clients_and_readers(db, &mut record)?;
    reads(db, &mut record)?;
    let learner = learner_reads(db, &mut record)?;
    erase(db, &mut record, &learner)?;
    purge(db, &mut record)?;
    changes(db, &mut record)?;
    Ok(Value::Object(record.0))
}

fn clients_and_readers(db: &Db, record: &mut Record) -> Result<(), StoreError> {
    let today = today();
    record.note(
        "client_known",
        json!([
            clients::client_known(db, "EA")?,
            clients::client_known(db, "ZZ")?
        ]),
    );
    record.note("clients", json!(admin::list_clients(db)?));
    record.note("activations", json!(admin::list_activations(db)?));
    let authenticated = admin::authenticate(
        db,
        "EA",
        "Uitgever",
        "sleutel-123",
        &school("99XX01"),
        today,
    )?
    .map(|sender| (sender.client_id, sender.school_id))
    .map_err(|violation| violation.rule);
    record.note("authenticate", json!(format!("{authenticated:?}")));
    record.note(
        "authenticate_client",
        json!([
            admin::authenticate_client(db, "EA", "sleutel-123")?,
            admin::authenticate_client(db, "EA", "fout")?
        ]),
    );
    record.note(
        "leerling_known",
        json!([
            admin::leerling_known(db, 1, "L1", None)?,
            admin::leerling_known(db, 1, "L9", Some("https://id.school/E1"))?,
            admin::leerling_known(db, 1, "L9", None)?
        ]),
    );
    record.note("readers", json!(readers::list_readers(db, today)?));
    readers::add_reader(
        db,
        "Zed",
        &[Scope::Las],
        &[
            Grant {
                school: school("99YY"),
                mandate_ref: "DPA-Z".into(),
                valid_from: "2026-01-01".into(),
                valid_until: None,
            },
            Grant {
                school: school("99XX01"),
                mandate_ref: "DPA-Z".into(),
                valid_from: "2026-01-01".into(),
                valid_until: None,
            },
        ],
    )?;
    let token = readers::add_reader(
        db,
        "xapi-b",
        &[Scope::Xapi],
        &[Grant {
            school: school("99YY"),
            mandate_ref: "DPA-X".into(),
            valid_from: "2026-01-01".into(),
            valid_until: Some("2026-12-31".into()),
        }],
    )?;
    let reader = readers::authenticate_reader(db, &token)?.map(|reader| reader.name);
    let forged = format!("{}0", &token[..token.len() - 1]);
    let wrong = forged != token && readers::authenticate_reader(db, &forged)?.is_some();
    record.note("authenticate_reader", json!([reader, wrong]));
    let readable: Vec<String> = readers::readable_schools(db, 1, today)?
        .into_iter()
        .map(|school| format!("{}:{}", school.id, school.school))
        .collect();
    record.note(
        "readable",
        json!([
            readable,
            readers::readable_school(db, 1, &school("99XX01"), today)?,
            readers::readable_school(db, 1, &school("99YY"), today)?
        ]),
    );
    record.note("audit_all", audit(db, AuditFilter::default())?);
    record.note(
        "audit_leerling",
        audit(
            db,
            AuditFilter {
                leerling: Some("L2".into()),
                ..AuditFilter::default()
            },
        )?,
    );
    record.note(
        "audit_school",
        audit(
            db,
            AuditFilter {
                school: Some(school("99XX01")),
                ..AuditFilter::default()
            },
        )?,
    );
    record.note(
        "audit_none",
        audit(
            db,
            AuditFilter {
                leerling: Some("L9".into()),
                reader: Some("las-a".into()),
                ..AuditFilter::default()
            },
        )?,
    );
    Ok(())
}

fn reads(db: &Db, record: &mut Record) -> Result<(), StoreError> {
    record.note("feed", feed_page(db, 0, &feed::FeedFilter::default())?);
    record.note(
        "feed_filtered",
        feed_page(
            db,
            0,
            &feed::FeedFilter {
                toetscode: Some("T".into()),
                afnamedatum_from: Some("2026-03-02".into()),
                ..feed::FeedFilter::default()
            },
        )?,
    );
    record.note(
        "toets_versions",
        json!(feed::read_toets_versions(db, 1, "T")?),
    );
    record.note("last_faults", json!(status::last_faults(db, 10)?));
    record.note(
        "schools_since",
        json!(status::schools_since(db, "2026-03-01T00:00:00.000Z", 10)?),
    );
    record.note(
        "dead_letters",
        json!([
            status::dead_letter_count(db)?,
            status::recent_dead_letters(db, 10)?
        ]),
    );
    Ok(())
}

/// The reads about one learner; returns the learner, found by ECK iD.
fn learner_reads(db: &Db, record: &mut Record) -> Result<erasure::Learner, StoreError> {
    let learner = erasure::find_learner(db, &school("99XX01"), None, Some("https://id.school/E1"))?
        .expect("the learner is found by ECK iD");
    record.note(
        "find_learner",
        json!([learner.leerlingid, learner.eckid, learner.school_id]),
    );
    record.note(
        "find_learner_in_afnames",
        json!(format!(
            "{:?}",
            erasure::find_learner(db, &school("99XX01"), Some("L2"), None)?
        )),
    );
    record.note(
        "register_school",
        json!(disclosures::register(db, &school("99XX01"), None, None)?),
    );
    record.note(
        "register_learner",
        json!(disclosures::register(
            db,
            &school("99XX01"),
            Some("L1"),
            learner.eckid.as_deref()
        )?),
    );
    record.note(
        "export",
        access_request::export(db, &learner, "2026-06-01T00:00:00Z")?,
    );
    record.note(
        "receipt_of_client",
        json!(format!(
            "{:?}",
            receipts::receipt_of_client(db, "EA", "sleutel-123", Some(&uuid::Uuid::nil()))?
        )),
    );
    Ok(learner)
}

fn erase(db: &Db, record: &mut Record, learner: &erasure::Learner) -> Result<(), StoreError> {
    let key_text = Keyring::new_key_text();
    let keyring = Keyring::parse(&key_text, "test").unwrap();
    let key = erasure::learner_hash_key(db, &keyring)?;
    assert_eq!(erasure::learner_hash_key(db, &keyring)?, key);
    let rotated =
        Keyring::parse(&format!("{},{}", Keyring::new_key_text(), key_text), "test").unwrap();
    let mut resealed = crate::store::outbox::Resealed::default();
    erasure::reseal_gateway_keys(db, &rotated, &mut resealed)?;
    assert_eq!(erasure::learner_hash_key(db, &rotated)?, key);
    record.note(
        "resealed",
        json!([resealed.resealed, resealed.unopened.len()]),
    );
    let erased =
        erasure::erase_learner::<StoreError>(db, &rotated, learner, "test", |_| Ok(Vec::new()))?;
    record.note("erased", json!([erased.counts, erased.lrs]));
    record.note("erased_afnames", {
        let count: i64 = db.query_row(
            "SELECT count(*) FROM xapi_erased_afnames",
            params![],
            |row| row.get(0),
        )?;
        json!(count)
    });
    record.note(
        "feed_after_erasure",
        feed_page(db, 2, &feed::FeedFilter::default())?,
    );
    record.note("audit_after_erasure", audit(db, AuditFilter::default())?);
    record.note(
        "import_and_release",
        json!(leerlingen::import_and_release(
            db,
            &[LeerlingRow {
                school: school("99XX01"),
                leerlingid: "L3".into(),
                eckid: None,
                naam: None,
            }],
            "test"
        )?),
    );
    Ok(())
}

fn purge(db: &Db, record: &mut Record) -> Result<(), StoreError> {
    record.note(
        "expired",
        json!(retention::expired_schools(
            db,
            crate::store::testing::date("2027-06-01"),
            90
        )?),
    );
    let now = chrono::DateTime::parse_from_rfc3339("2027-06-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let settings = retention::RetentionSettings {
        days_after_mandate: 90,
        receipt_days: 30,
        audit_days: 30,
        removal_days: 30,
        batch_rows: 1,
    };
    let (_, planned) = retention::plan(
        db,
        now,
        crate::store::testing::date("2027-06-01"),
        &settings,
    )?;
    record.note("plan", json!(planned));
    let mut purged = Vec::new();
    let steps = [
        retention::PurgeStep::Afnames {
            school_id: 1,
            limit: 1,
            removed_at: "2027-06-01T00:00:00.000Z".into(),
        },
        retention::PurgeStep::Afnames {
            school_id: 1,
            limit: 1,
            removed_at: "2027-06-01T00:00:00.000Z".into(),
        },
        retention::PurgeStep::SchoolRest {
            school_id: 1,
            limit: 1,
        },
        retention::PurgeStep::SchoolRest {
            school_id: 1,
            limit: 1,
        },
        retention::PurgeStep::SchoolRest {
            school_id: 1,
            limit: 1,
        },
        retention::PurgeStep::Statements {
            school_id: 1,
            limit: 1,
        },
        retention::PurgeStep::SchoolReadAudit {
            school_code: "99XX01".into(),
            limit: 1,
        },
        retention::PurgeStep::Expired {
            now,
            receipt_days: 30,
            audit_days: 30,
            removal_days: 30,
            limit: 2,
        },
        retention::PurgeStep::ExpiredReadAudit {
            now,
            audit_days: 30,
            limit: 2,
        },
    ];
    for step in &steps {
        purged.push(retention::run_step(db, step)?);
    }
    record.note("purged", json!(purged));
    record.note(
        "feed_after_purge",
        feed_page(db, 0, &feed::FeedFilter::default())?,
    );
    record.note(
        "reset_ordering",
        json!(admin::reset_ordering(db, "EA", &school("99XX01"))?),
    );
    Ok(())
}

/// Deactivations, withdrawals, revocations and the upserts that undo them.
fn changes(db: &Db, record: &mut Record) -> Result<(), StoreError> {
    let today = today();
    admin::deactivate(db, "EA", &school("99XX01"))?;
    readers::withdraw_school(db, "las-a", &school("99XX01"))?;
    record.note(
        "activations_deactivated",
        json!(admin::list_activations(db)?),
    );
    record.note(
        "readers_withdrawn",
        json!(readers::list_readers(db, today)?),
    );
    admin::activate(db, "EA", &school("99XX01"), "DPA-3", "2027-01-01", None)?;
    readers::grant_school(
        db,
        "las-a",
        &Grant {
            school: school("99XX01"),
            mandate_ref: "DPA-LAS-2".into(),
            valid_from: "2026-02-01".into(),
            valid_until: Some("2026-10-01".into()),
        },
    )?;
    admin::import_leerlingen(
        db,
        &[LeerlingRow {
            school: school("99XX01"),
            leerlingid: "L3".into(),
            eckid: Some("https://id.school/E3".into()),
            naam: None,
        }],
        "test",
    )?;
    record.note("leerlingen_after", {
        let mut statement = db.prepare(
            "SELECT leerlingid, eckid, naam FROM leerlingen WHERE school_id = 1 ORDER BY leerlingid",
        )?;
        let rows = statement.query_map(params![], |row| {
            Ok(json!([
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<String>>(2)?
            ]))
        })?;
        json!(rows.collect::<Result<Vec<_>, _>>()?)
    });
    readers::revoke_reader(db, "las-a")?;
    admin::revoke_client(db, "EB")?;
    record.note("activations_after", json!(admin::list_activations(db)?));
    record.note("clients_after", json!(admin::list_clients(db)?));
    record.note("readers_after", json!(readers::list_readers(db, today)?));
    Ok(())
}

#[test]
fn the_read_and_admin_functions_answer_alike_on_both_engines() -> Result<(), StoreError> {
    let sqlite = crate::store::testing::database()?;
    let on_sqlite = scenario(&sqlite)?;
    let Ok(url) = std::env::var("UWLR_TEST_DATABASE_URL") else {
        return Ok(());
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let config = crate::store::postgres::parse_url(&url)?;
    let session = crate::store::postgres::session::Session::connect(&config, runtime.handle())?;
    let postgres = Db::owned_postgres(session);
    postgres.execute_batch(&format!("TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))?;
    let on_postgres = scenario(&postgres)?;
    for (key, expected) in on_sqlite.as_object().expect("an object") {
        assert_eq!(
            on_postgres.get(key),
            Some(expected),
            "{key} differs between SQLite and PostgreSQL"
        );
    }
    drop(postgres);
    Ok(())
}
