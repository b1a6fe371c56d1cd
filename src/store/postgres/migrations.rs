//! The versioned PostgreSQL schema: today's SQLite tables (both files) in one database, tracked in `schema_migrations`, each migration in its own transaction under an advisory lock.
//!
//! Types follow the SQLite schema's meaning: surrogate keys are `bigint generated always as
//! identity`, integers `bigint`, 0/1 flags `boolean`, BLOBs `bytea`; text stays `text`,
//! timestamps and dates included (RFC 3339 and ISO dates, as the SQLite engine writes them,
//! so both engines compare and order them alike), and statements and JSON lists stay opaque
//! text as in SQLite.
//!
//! Feed and change numbering for several instances (ARCHITECTURE.md, "PostgreSQL"): a
//! number taken in one transaction can commit after a higher one taken in another, so
//! - a school's `feed_seq` is a counter in its `schools` row, bumped by `UPDATE … RETURNING`:
//!   the row lock is held until commit, so the next writer of that school gets the next
//!   number only after the previous one committed (or rolled back and gave it back), and a
//!   school's positions commit in order, without gaps;
//! - the gateway-wide change log takes `change_seq` from a sequence (no lock across
//!   schools) and records the writing transaction's id (`xid`, `pg_current_xact_id()`); the
//!   publisher reads only changes whose `xid` is below the horizon
//!   `pg_snapshot_xmin(pg_current_snapshot())`, in `(xid, change_seq)` order, and keeps that
//!   pair as its cursor: every transaction below the horizon has ended, so nothing can still
//!   commit behind the cursor;
//! - statement `seq` comes from the one-row `statement_counter`, bumped under its row lock
//!   like a school's feed counter: its writers are the one publisher holding the lease and
//!   the rare erasure, so the lock costs nothing and the delivery cursors stay plain numbers.

use super::super::StoreError;
use tokio_postgres::Client;

/// One step of the schema; never edit a released entry, add one.
struct Migration {
    description: &'static str,
    sql: &'static str,
}

/// The schema this binary needs is the last entry's version (its index plus one).
const MIGRATIONS: &[Migration] = &[Migration {
    description: "the SQLite schema of gateway.sqlite (core 10) and xapi.sqlite (xAPI 4)",
    sql: r#"
CREATE TABLE schools (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code text NOT NULL UNIQUE,
    brincode text,
    dependancecode text,
    schoolkey text,
    naam text,
    created_at text NOT NULL,
    -- The school's feed counter: bumped under this row's lock, so positions commit in order.
    feed_seq bigint NOT NULL DEFAULT 0
);

CREATE TABLE clients (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    klantcode text NOT NULL UNIQUE,
    klantnaam text NOT NULL,
    key_salt bytea NOT NULL,
    key_hash bytea NOT NULL,
    created_at text NOT NULL,
    revoked_at text
);

CREATE TABLE activations (
    client_id bigint NOT NULL REFERENCES clients(id),
    school_id bigint NOT NULL REFERENCES schools(id),
    mandate_ref text NOT NULL,
    valid_from text NOT NULL,
    valid_until text,
    active boolean NOT NULL,
    created_at text NOT NULL,
    deactivated_at text,
    PRIMARY KEY (client_id, school_id)
);

CREATE TABLE leerlingen (
    school_id bigint NOT NULL REFERENCES schools(id),
    leerlingid text NOT NULL,
    eckid text,
    naam text,
    imported_at text NOT NULL,
    PRIMARY KEY (school_id, leerlingid)
);
CREATE UNIQUE INDEX leerlingen_eckid ON leerlingen(school_id, eckid) WHERE eckid IS NOT NULL;

-- The ordering rule: the last accepted aanmaakdatum per sender and school.
CREATE TABLE sender_state (
    client_id bigint NOT NULL REFERENCES clients(id),
    school_id bigint NOT NULL REFERENCES schools(id),
    last_aanmaakdatum_us bigint NOT NULL,
    last_aanmaakdatum text NOT NULL,
    last_receipt_id text NOT NULL,
    PRIMARY KEY (client_id, school_id)
);

CREATE TABLE receipts (
    id text PRIMARY KEY,
    client_id bigint NOT NULL REFERENCES clients(id),
    school_id bigint REFERENCES schools(id),
    aanmaakdatum text,
    received_at text NOT NULL,
    size bigint NOT NULL,
    sha256 text NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('accepted', 'rejected')),
    faultcode text,
    toetsen bigint NOT NULL DEFAULT 0,
    toetsafnames bigint NOT NULL DEFAULT 0,
    resultaten bigint NOT NULL DEFAULT 0,
    created bigint NOT NULL DEFAULT 0,
    updated bigint NOT NULL DEFAULT 0,
    unchanged bigint NOT NULL DEFAULT 0,
    quarantined bigint NOT NULL DEFAULT 0,
    violations text NOT NULL DEFAULT '[]',
    violations_omitted bigint NOT NULL DEFAULT 0,
    unknown_vocabularies text NOT NULL DEFAULT '[]',
    duration_ms bigint NOT NULL DEFAULT 0,
    schooljaar text,
    xsdversie text
);
CREATE INDEX receipts_client_sha ON receipts(client_id, sha256);
CREATE INDEX receipts_received ON receipts(received_at);

CREATE TABLE toetsen (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    school_id bigint NOT NULL REFERENCES schools(id),
    client_id bigint NOT NULL REFERENCES clients(id),
    toetscode text NOT NULL,
    versie text NOT NULL,
    definition text NOT NULL,
    content_sha256 text NOT NULL,
    revision bigint NOT NULL,
    created_at text NOT NULL,
    created_receipt_id text NOT NULL,
    updated_at text NOT NULL,
    updated_receipt_id text NOT NULL,
    UNIQUE (school_id, client_id, toetscode, versie)
);

CREATE TABLE toetsen_history (
    toets_id bigint NOT NULL REFERENCES toetsen(id),
    revision bigint NOT NULL,
    definition text NOT NULL,
    content_sha256 text NOT NULL,
    receipt_id text NOT NULL,
    replaced_at text NOT NULL,
    replaced_by_receipt_id text NOT NULL,
    PRIMARY KEY (toets_id, revision)
);

-- The gateway-wide change numbers (see toetsafname_changes).
CREATE SEQUENCE change_seq AS bigint;

CREATE TABLE toetsafnames (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    school_id bigint NOT NULL REFERENCES schools(id),
    -- The sender: keys are unique per school and client.
    client_id bigint NOT NULL REFERENCES clients(id),
    afname_key text NOT NULL,
    leerlingid text NOT NULL,
    eckid text,
    resultaatverwerkerid text,
    toets_id bigint NOT NULL REFERENCES toetsen(id),
    toetscode text NOT NULL,
    versie text NOT NULL,
    toetsonderdeelcode text,
    afnamedatum text NOT NULL,
    mutatiedatum text,
    aanmaakdatum text NOT NULL,
    receipt_id text NOT NULL,
    score bigint,
    derived boolean NOT NULL DEFAULT false,
    result text NOT NULL,
    content_sha256 text NOT NULL,
    revision bigint NOT NULL,
    quarantined boolean NOT NULL DEFAULT false,
    change_seq bigint NOT NULL,
    -- True for afnames stored before ownership: their statement ids have no sender segment.
    legacy_statement_id boolean NOT NULL DEFAULT false,
    feed_seq bigint NOT NULL DEFAULT 0,
    toets_revision bigint,
    UNIQUE (school_id, client_id, afname_key)
);
CREATE INDEX toetsafnames_quarantine ON toetsafnames(school_id, leerlingid) WHERE quarantined;
CREATE INDEX toetsafnames_feed ON toetsafnames(school_id, feed_seq);
CREATE INDEX toetsafnames_sitting ON toetsafnames(school_id, leerlingid, client_id, toets_id, afnamedatum);

CREATE TABLE toetsafnames_history (
    afname_id bigint NOT NULL REFERENCES toetsafnames(id),
    revision bigint NOT NULL,
    state text NOT NULL,
    replaced_at text NOT NULL,
    replaced_by_receipt_id text NOT NULL,
    PRIMARY KEY (afname_id, revision)
);

-- The change log. change_seq comes from the sequence change_seq, so writers of different
-- schools never wait for each other; xid is the writing transaction, and the publisher
-- reads only below pg_snapshot_xmin(pg_current_snapshot()), in (xid, change_seq) order.
CREATE TABLE toetsafname_changes (
    change_seq bigint PRIMARY KEY,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    afname_id bigint NOT NULL REFERENCES toetsafnames(id),
    revision bigint NOT NULL,
    quarantined boolean NOT NULL,
    receipt_id text
);
CREATE INDEX toetsafname_changes_afname ON toetsafname_changes(afname_id);
CREATE INDEX toetsafname_changes_order ON toetsafname_changes(xid, change_seq);

CREATE TABLE audit (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at text NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    detail text NOT NULL
);
CREATE INDEX audit_at ON audit(at);

CREATE TABLE readers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE,
    token_lookup text NOT NULL UNIQUE,
    token_sha256 bytea NOT NULL,
    scopes text NOT NULL,
    created_at text NOT NULL,
    revoked_at text
);

CREATE TABLE reader_schools (
    reader_id bigint NOT NULL REFERENCES readers(id),
    school_id bigint NOT NULL REFERENCES schools(id),
    mandate_ref text NOT NULL,
    valid_from text NOT NULL,
    valid_until text,
    created_at text NOT NULL,
    withdrawn_at text,
    PRIMARY KEY (reader_id, school_id)
);

CREATE TABLE read_audit (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at text NOT NULL,
    request_id text NOT NULL,
    reader_id bigint NOT NULL REFERENCES readers(id),
    api text NOT NULL,
    request text NOT NULL,
    status integer NOT NULL,
    school text,
    leerlingen text NOT NULL DEFAULT '[]',
    records bigint NOT NULL
);
CREATE INDEX read_audit_at ON read_audit(at);
CREATE INDEX read_audit_reader ON read_audit(reader_id, at);

CREATE TABLE gateway_settings (
    name text PRIMARY KEY,
    value bytea NOT NULL
);

CREATE TABLE toetsafname_removals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    school_id bigint NOT NULL REFERENCES schools(id),
    klantcode text NOT NULL,
    afname_key text NOT NULL,
    toetscode text NOT NULL,
    feed_seq bigint NOT NULL,
    removed_at text NOT NULL,
    reason text NOT NULL CHECK (reason IN ('retention', 'erasure'))
);
CREATE INDEX toetsafname_removals_feed ON toetsafname_removals(school_id, feed_seq);
CREATE INDEX toetsafname_removals_at ON toetsafname_removals(removed_at);

CREATE TABLE gateway_keys (
    name text PRIMARY KEY,
    sealed bytea NOT NULL,
    created_at text NOT NULL
);

-- What xapi.sqlite holds on SQLite. The same database now, but still no foreign key
-- from a statement to the core: statements outlive a purged afname only as the store says.
CREATE TABLE statement_counter (
    id integer PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL
);
INSERT INTO statement_counter (id, seq) VALUES (1, 0);

CREATE TABLE xapi_statements (
    -- Storage order from statement_counter, bumped under its row lock until commit, so a
    -- committed seq is never lower than one a reader has already seen.
    seq bigint PRIMARY KEY,
    id text NOT NULL UNIQUE,
    school_id bigint NOT NULL,
    afname_id bigint,
    toetscode text NOT NULL,
    stored_at text NOT NULL,
    verb_id text NOT NULL,
    activity_id text,
    registration text,
    agent text,
    leerlingid text,
    eckid text,
    voided_by text,
    statement text NOT NULL,
    keyed boolean NOT NULL DEFAULT false
);
CREATE INDEX xapi_statements_afname ON xapi_statements(afname_id) WHERE voided_by IS NULL;
CREATE INDEX xapi_statements_agent ON xapi_statements(agent);
CREATE INDEX xapi_statements_activity ON xapi_statements(activity_id);
CREATE INDEX xapi_statements_registration ON xapi_statements(registration);
CREATE INDEX xapi_statements_school ON xapi_statements(school_id, seq);

CREATE TABLE xapi_subscriptions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE,
    url text NOT NULL,
    username text,
    password bytea,
    identity text NOT NULL DEFAULT 'eckid' CHECK (identity IN ('eckid', 'pseudonym', 'las')),
    pseudonym_key bytea NOT NULL,
    schools text NOT NULL DEFAULT '[]',
    toetscodes text NOT NULL DEFAULT '[]',
    cursor_seq bigint NOT NULL DEFAULT 0,
    created_at text NOT NULL,
    last_attempt_at text,
    last_delivered_at text,
    last_status integer,
    last_error text,
    delivered bigint NOT NULL DEFAULT 0,
    ca_pem text
);

CREATE TABLE xapi_dead_letters (
    subscription_id bigint NOT NULL REFERENCES xapi_subscriptions(id) ON DELETE CASCADE,
    statement_id text NOT NULL REFERENCES xapi_statements(id),
    seq bigint NOT NULL,
    status integer,
    answer text NOT NULL,
    failed_at text NOT NULL,
    attempts bigint NOT NULL DEFAULT 1,
    requeued boolean NOT NULL DEFAULT false,
    PRIMARY KEY (subscription_id, statement_id)
);

-- The publisher's cursor: the last change published, as (xid, change_seq).
CREATE TABLE xapi_publisher (
    id integer PRIMARY KEY CHECK (id = 1),
    cursor_xid xid8 NOT NULL,
    cursor_seq bigint NOT NULL
);
INSERT INTO xapi_publisher (id, cursor_xid, cursor_seq) VALUES (1, '0', 0);

CREATE TABLE xapi_settings (
    name text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE xapi_erased_afnames (
    afname_id bigint PRIMARY KEY
);
"#,
}];

/// The schema version this binary needs.
pub(crate) const VERSION: usize = MIGRATIONS.len();

/// The advisory lock every migrator takes inside each migration's transaction ("uwlrmigr"),
/// so concurrent `migrate` runs and starting instances apply each migration once.
const MIGRATION_LOCK: i64 = 0x7577_6c72_6d69_6772;

/// The versions found before and after `migrate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Migrated {
    pub(crate) before: usize,
    pub(crate) after: usize,
}

/// The schema version of the database (0 before the first migration), read without
/// creating or locking anything.
pub(crate) async fn version(client: &Client) -> Result<usize, StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let version: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    usize::try_from(version).map_err(|_| StoreError::corrupt("schema_migrations", version))
}

/// Applies the pending migrations, each in its own transaction that first takes the
/// advisory lock and reads the version again (another migrator may have applied it
/// meanwhile); `place` names the database in a `TooNew` refusal.
pub(crate) async fn migrate(client: &mut Client, place: &str) -> Result<Migrated, StoreError> {
    let before = version(client).await?;
    refuse_newer(before, place)?;
    loop {
        let transaction = client.transaction().await?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        transaction
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version integer PRIMARY KEY,
                     description text NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 )",
            )
            .await?;
        let current: i32 = transaction
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await?
            .get(0);
        let current = usize::try_from(current)
            .map_err(|_| StoreError::corrupt("schema_migrations", current))?;
        refuse_newer(current, place)?;
        let Some(migration) = MIGRATIONS.get(current) else {
            transaction.commit().await?;
            return Ok(Migrated {
                before,
                after: current,
            });
        };
        transaction.batch_execute(migration.sql).await?;
        let next = i32::try_from(current + 1).expect("a few migrations");
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, description) VALUES ($1, $2)",
                &[&next, &migration.description],
            )
            .await?;
        transaction.commit().await?;
        tracing::info!(version = next, "PostgreSQL schema migrated");
    }
}

/// `TooNew` when a newer gateway has migrated the database: this binary would misread it.
pub(crate) fn refuse_newer(found: usize, place: &str) -> Result<(), StoreError> {
    if found > VERSION {
        return Err(StoreError::TooNew {
            place: place.to_string(),
            found,
            supported: VERSION,
        });
    }
    Ok(())
}
