//! Versioned schema migrations, applied at start and tracked in `PRAGMA user_version`.

use super::StoreError;
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;

/// Each entry moves the schema one version up; never edit a released entry, add one.
const MIGRATIONS: &[&str] = &[
    // 1: schools, clients, activations, leerlingen, receipts, toetsen, toetsafnames, audit.
    r#"
CREATE TABLE schools (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    brincode TEXT,
    dependancecode TEXT,
    schoolkey TEXT,
    naam TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE clients (
    id INTEGER PRIMARY KEY,
    klantcode TEXT NOT NULL UNIQUE,
    klantnaam TEXT NOT NULL,
    key_salt BLOB NOT NULL,
    key_hash BLOB NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- A client may send for a school while an activation is active and its mandate
-- (the school's processing agreement with the sender) is valid.
CREATE TABLE activations (
    client_id INTEGER NOT NULL REFERENCES clients(id),
    school_id INTEGER NOT NULL REFERENCES schools(id),
    mandate_ref TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_until TEXT,
    active INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    deactivated_at TEXT,
    PRIMARY KEY (client_id, school_id)
);

CREATE TABLE leerlingen (
    school_id INTEGER NOT NULL REFERENCES schools(id),
    leerlingid TEXT NOT NULL,
    eckid TEXT,
    naam TEXT,
    imported_at TEXT NOT NULL,
    PRIMARY KEY (school_id, leerlingid)
);
CREATE UNIQUE INDEX leerlingen_eckid ON leerlingen(school_id, eckid) WHERE eckid IS NOT NULL;

-- The ordering rule: the last accepted aanmaakdatum per sender and school.
CREATE TABLE sender_state (
    client_id INTEGER NOT NULL REFERENCES clients(id),
    school_id INTEGER NOT NULL REFERENCES schools(id),
    last_aanmaakdatum_us INTEGER NOT NULL,
    last_aanmaakdatum TEXT NOT NULL,
    last_receipt_id TEXT NOT NULL,
    PRIMARY KEY (client_id, school_id)
);

-- One row per authenticated message, accepted or rejected.
CREATE TABLE receipts (
    id TEXT PRIMARY KEY,
    client_id INTEGER NOT NULL REFERENCES clients(id),
    school_id INTEGER REFERENCES schools(id),
    aanmaakdatum TEXT,
    received_at TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'rejected')),
    faultcode TEXT,
    toetsen INTEGER NOT NULL DEFAULT 0,
    toetsafnames INTEGER NOT NULL DEFAULT 0,
    resultaten INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    quarantined INTEGER NOT NULL DEFAULT 0,
    violations TEXT NOT NULL DEFAULT '[]',
    violations_omitted INTEGER NOT NULL DEFAULT 0,
    unknown_vocabularies TEXT NOT NULL DEFAULT '[]',
    duration_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX receipts_client_sha ON receipts(client_id, sha256);
CREATE INDEX receipts_received ON receipts(received_at);

-- Test definitions per school, one row per (toetscode, versie); versie '' when absent.
CREATE TABLE toetsen (
    id INTEGER PRIMARY KEY,
    school_id INTEGER NOT NULL REFERENCES schools(id),
    toetscode TEXT NOT NULL,
    versie TEXT NOT NULL,
    definition TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    revision INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    created_receipt_id TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_receipt_id TEXT NOT NULL,
    UNIQUE (school_id, toetscode, versie)
);

-- Earlier definitions replaced by a correction.
CREATE TABLE toetsen_history (
    toets_id INTEGER NOT NULL REFERENCES toetsen(id),
    revision INTEGER NOT NULL,
    definition TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    receipt_id TEXT NOT NULL,
    replaced_at TEXT NOT NULL,
    replaced_by_receipt_id TEXT NOT NULL,
    PRIMARY KEY (toets_id, revision)
);

-- One row per toets(onderdeel)afname, keyed by the resultaat key within its school.
CREATE TABLE toetsafnames (
    id INTEGER PRIMARY KEY,
    school_id INTEGER NOT NULL REFERENCES schools(id),
    afname_key TEXT NOT NULL,
    leerlingid TEXT NOT NULL,
    eckid TEXT,
    resultaatverwerkerid TEXT,
    toets_id INTEGER NOT NULL REFERENCES toetsen(id),
    toetscode TEXT NOT NULL,
    versie TEXT NOT NULL,
    toetsonderdeelcode TEXT,
    afnamedatum TEXT NOT NULL,
    mutatiedatum TEXT,
    aanmaakdatum TEXT NOT NULL,
    receipt_id TEXT NOT NULL,
    score INTEGER,
    derived INTEGER NOT NULL DEFAULT 0,
    result TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    revision INTEGER NOT NULL,
    quarantined INTEGER NOT NULL DEFAULT 0,
    change_seq INTEGER NOT NULL,
    UNIQUE (school_id, afname_key)
);
CREATE INDEX toetsafnames_change ON toetsafnames(school_id, change_seq);
CREATE INDEX toetsafnames_leerling ON toetsafnames(school_id, leerlingid);
CREATE INDEX toetsafnames_quarantine ON toetsafnames(school_id, leerlingid) WHERE quarantined = 1;

-- Earlier states of an afname, kept when an update changes it.
CREATE TABLE toetsafnames_history (
    afname_id INTEGER NOT NULL REFERENCES toetsafnames(id),
    revision INTEGER NOT NULL,
    state TEXT NOT NULL,
    replaced_at TEXT NOT NULL,
    replaced_by_receipt_id TEXT NOT NULL,
    PRIMARY KEY (afname_id, revision)
);

-- A monotonic change counter, shared by every afname write (the query feed's cursor).
CREATE TABLE change_counter (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
INSERT INTO change_counter (id, seq) VALUES (1, 0);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#,
    // 2: the xAPI bridge: generated statements (the canonical record and the outbox log),
    // LRS subscriptions with their delivery cursors, dead letters; message facts statements need.
    r#"
-- Every statement the gateway generated, in the default learner identity (ECK iD when known).
-- It is the transactional outbox as well: rows are written in the transaction that stores
-- the afnames, and each subscription delivers them in `seq` order from its own cursor.
CREATE TABLE xapi_statements (
    id TEXT PRIMARY KEY,
    -- Monotonic storage order, assigned on the writer thread: a committed seq is never
    -- lower than one a reader has already seen, so a cursor over it misses nothing.
    seq INTEGER NOT NULL UNIQUE,
    school_id INTEGER NOT NULL REFERENCES schools(id),
    afname_id INTEGER REFERENCES toetsafnames(id),
    -- For subscription filters; a voiding statement carries that of the statement it voids.
    toetscode TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    verb_id TEXT NOT NULL,
    activity_id TEXT,
    registration TEXT,
    -- Canonical JSON of the actor's inverse functional identifier, for agent filters.
    agent TEXT,
    -- The learner the statement is about, for per-LRS identity variants rendered at delivery.
    leerlingid TEXT,
    eckid TEXT,
    -- The id of the statement that voids this one.
    voided_by TEXT,
    -- The statement as sent to an LRS with the default identity.
    statement TEXT NOT NULL
);
CREATE INDEX xapi_statements_afname ON xapi_statements(afname_id) WHERE voided_by IS NULL;
CREATE INDEX xapi_statements_agent ON xapi_statements(agent);
CREATE INDEX xapi_statements_activity ON xapi_statements(activity_id);
CREATE INDEX xapi_statements_registration ON xapi_statements(registration);
CREATE INDEX xapi_statements_school ON xapi_statements(school_id, seq);

-- Downstream Learning Record Stores. The password is a client credential the gateway
-- must present, so it is kept as given (like any configured secret) and never printed.
CREATE TABLE xapi_subscriptions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    username TEXT,
    password TEXT,
    -- Which learner identity this LRS sees: eckid (default), pseudonym or las.
    identity TEXT NOT NULL DEFAULT 'eckid' CHECK (identity IN ('eckid', 'pseudonym', 'las')),
    -- HMAC key for the pseudonym identity; random per subscription.
    pseudonym_key BLOB NOT NULL,
    -- JSON arrays of school codes and toetscodes; empty means all.
    schools TEXT NOT NULL DEFAULT '[]',
    toetscodes TEXT NOT NULL DEFAULT '[]',
    -- Every statement with seq <= cursor_seq is delivered or dead-lettered.
    cursor_seq INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    last_attempt_at TEXT,
    last_delivered_at TEXT,
    last_status INTEGER,
    last_error TEXT,
    delivered INTEGER NOT NULL DEFAULT 0
);

-- Statements an LRS refused with a 4xx answer; `outbox retry` requeues them.
CREATE TABLE xapi_dead_letters (
    subscription_id INTEGER NOT NULL REFERENCES xapi_subscriptions(id) ON DELETE CASCADE,
    statement_id TEXT NOT NULL REFERENCES xapi_statements(id),
    seq INTEGER NOT NULL,
    status INTEGER,
    answer TEXT NOT NULL,
    failed_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    requeued INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subscription_id, statement_id)
);

-- Message facts a statement carries that no other table keeps.
ALTER TABLE receipts ADD COLUMN schooljaar TEXT;
ALTER TABLE receipts ADD COLUMN xsdversie TEXT;

-- Quarantine release publishes by change_seq across schools.
CREATE INDEX toetsafnames_change_seq ON toetsafnames(change_seq);
"#,
    // 3: the change log (the transactional outbox) and the publisher's place in it:
    // statements are generated after the afnames' commit; what came before was published
    // in-transaction.
    r#"
-- Every change of an afname, in change order, written by the transaction that made it:
-- the afname and the revision it reached. That state is the afname's current row while
-- its revision is unchanged, and its toetsafnames_history row after a later update, so the
-- publisher can render every change, also one a later message overwrote before the
-- publisher got to it. Rows are small appends at the end of a rowid table.
CREATE TABLE toetsafname_changes (
    change_seq INTEGER PRIMARY KEY,
    afname_id INTEGER NOT NULL REFERENCES toetsafnames(id),
    revision INTEGER NOT NULL,
    quarantined INTEGER NOT NULL
);
CREATE TABLE xapi_publisher (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cursor_seq INTEGER NOT NULL
);
INSERT INTO xapi_publisher (id, cursor_seq) SELECT 1, seq FROM change_counter;
-- Publishing reads the change log now, not the afnames by change_seq.
DROP INDEX toetsafnames_change_seq;
"#,
    // 4: reader clients, their school grants (each under a mandate), and the read audit.
    r#"
-- A reader pulls results through the read API with a bearer token. Only the
-- SHA-256 of the token is kept; `token_lookup` (the token's first characters,
-- not secret on its own) finds the row before the constant-time hash compare.
CREATE TABLE readers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_lookup TEXT NOT NULL UNIQUE,
    token_sha256 BLOB NOT NULL,
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- A reader may read a school's data while its grant is not withdrawn and the
-- mandate it rests on is valid (dates inclusive, Europe/Amsterdam).
CREATE TABLE reader_schools (
    reader_id INTEGER NOT NULL REFERENCES readers(id),
    school_id INTEGER NOT NULL REFERENCES schools(id),
    mandate_ref TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_until TEXT,
    created_at TEXT NOT NULL,
    withdrawn_at TEXT,
    PRIMARY KEY (reader_id, school_id)
);

-- One row per authenticated read request and school: who read which learners' data, how much, with what answer.
CREATE TABLE read_audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    request_id TEXT NOT NULL,
    reader_id INTEGER NOT NULL REFERENCES readers(id),
    api TEXT NOT NULL,
    request TEXT NOT NULL,
    status INTEGER NOT NULL,
    school TEXT,
    leerlingen TEXT NOT NULL DEFAULT '[]',
    records INTEGER NOT NULL
);
CREATE INDEX read_audit_at ON read_audit(at);
CREATE INDEX read_audit_reader ON read_audit(reader_id, at);
"#,
];

/// Core migrations after the split (version 6 on), applied once the bridge's tables have
/// moved out. Each runs with foreign keys off (a table rebuild drops and renames a table that
/// others reference) and is checked with `PRAGMA foreign_key_check` before it commits.
const LATER_MIGRATIONS: &[&str] = &[
    // 6: toetsen and afnames are owned by the client that sent them. In UWLR each EA has its
    // own resultaat keys and toetscodes, so two EAs activated for one school must not
    // overwrite each other's afnames or redefine each other's toetsen: both tables are keyed
    // by (school, client) now. SQLite cannot change a UNIQUE constraint in place, so both are
    // rebuilt with the same ids (nothing that points at them changes). Existing rows belong to
    // the client of their receipt (a toets: the receipt that created it). Their xAPI statement
    // ids were made without a sender, and stay so (`legacy_statement_id`), so a regenerated
    // statement keeps its id.
    r#"
CREATE TABLE toetsen_owned (
    id INTEGER PRIMARY KEY,
    school_id INTEGER NOT NULL REFERENCES schools(id),
    client_id INTEGER NOT NULL REFERENCES clients(id),
    toetscode TEXT NOT NULL,
    versie TEXT NOT NULL,
    definition TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    revision INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    created_receipt_id TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_receipt_id TEXT NOT NULL,
    UNIQUE (school_id, client_id, toetscode, versie)
);
INSERT INTO toetsen_owned (id, school_id, client_id, toetscode, versie, definition, content_sha256,
    revision, created_at, created_receipt_id, updated_at, updated_receipt_id)
  SELECT t.id, t.school_id,
    COALESCE((SELECT r.client_id FROM receipts r WHERE r.id = t.created_receipt_id),
             (SELECT r.client_id FROM receipts r WHERE r.id = t.updated_receipt_id)),
    t.toetscode, t.versie, t.definition, t.content_sha256, t.revision, t.created_at,
    t.created_receipt_id, t.updated_at, t.updated_receipt_id
  FROM toetsen t ORDER BY t.id;
DROP TABLE toetsen;
ALTER TABLE toetsen_owned RENAME TO toetsen;

CREATE TABLE toetsafnames_owned (
    id INTEGER PRIMARY KEY,
    school_id INTEGER NOT NULL REFERENCES schools(id),
    -- The sender: keys are unique per school and client.
    client_id INTEGER NOT NULL REFERENCES clients(id),
    afname_key TEXT NOT NULL,
    leerlingid TEXT NOT NULL,
    eckid TEXT,
    resultaatverwerkerid TEXT,
    toets_id INTEGER NOT NULL REFERENCES toetsen(id),
    toetscode TEXT NOT NULL,
    versie TEXT NOT NULL,
    toetsonderdeelcode TEXT,
    afnamedatum TEXT NOT NULL,
    mutatiedatum TEXT,
    aanmaakdatum TEXT NOT NULL,
    receipt_id TEXT NOT NULL,
    score INTEGER,
    derived INTEGER NOT NULL DEFAULT 0,
    result TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    revision INTEGER NOT NULL,
    quarantined INTEGER NOT NULL DEFAULT 0,
    change_seq INTEGER NOT NULL,
    -- 1 for afnames stored before ownership: their statement ids have no sender segment.
    legacy_statement_id INTEGER NOT NULL DEFAULT 0,
    UNIQUE (school_id, client_id, afname_key)
);
INSERT INTO toetsafnames_owned (id, school_id, client_id, afname_key, leerlingid, eckid,
    resultaatverwerkerid, toets_id, toetscode, versie, toetsonderdeelcode, afnamedatum, mutatiedatum,
    aanmaakdatum, receipt_id, score, derived, result, content_sha256, revision, quarantined,
    change_seq, legacy_statement_id)
  SELECT a.id, a.school_id, (SELECT r.client_id FROM receipts r WHERE r.id = a.receipt_id),
    a.afname_key, a.leerlingid, a.eckid, a.resultaatverwerkerid, a.toets_id, a.toetscode, a.versie,
    a.toetsonderdeelcode, a.afnamedatum, a.mutatiedatum, a.aanmaakdatum, a.receipt_id, a.score,
    a.derived, a.result, a.content_sha256, a.revision, a.quarantined, a.change_seq, 1
  FROM toetsafnames a ORDER BY a.id;
DROP TABLE toetsafnames;
ALTER TABLE toetsafnames_owned RENAME TO toetsafnames;
CREATE INDEX toetsafnames_change ON toetsafnames(school_id, change_seq);
CREATE INDEX toetsafnames_leerling ON toetsafnames(school_id, leerlingid);
CREATE INDEX toetsafnames_quarantine ON toetsafnames(school_id, leerlingid) WHERE quarantined = 1;
"#,
    // 7: feed positions per school: a reader's cursor and consistent-through marker count
    // the changes of its school only, so they do not show how busy other schools are.
    // `change_seq` stays the gateway-wide order of the change log (the publisher's).
    r#"
-- A school's feed position counts that school's afname creates, corrections and releases.
-- The writes stamp it (schools.feed_seq, then the row) in the transaction that makes the
-- change, and only one write transaction runs at a time, so a school's counter read in a
-- snapshot is a consistent-through marker for that school's rows, as change_counter is
-- for all. (Triggers did the same with 35 % more time for a 200,000-result batch.)
-- Cursors handed out before were change_seq values: every school starts at the global
-- counter and existing rows keep their change_seq as position, so such a cursor still
-- skips nothing.
ALTER TABLE schools ADD COLUMN feed_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE toetsafnames ADD COLUMN feed_seq INTEGER NOT NULL DEFAULT 0;
UPDATE schools SET feed_seq = (SELECT seq FROM change_counter WHERE id = 1);
UPDATE toetsafnames SET feed_seq = change_seq;
DROP INDEX toetsafnames_change;
CREATE INDEX toetsafnames_feed ON toetsafnames(school_id, feed_seq);
"#,
    // 8: statements are built from what was accepted with the result, so the same input
    // gives the same statement at any publisher speed and after a rebuild of xapi.sqlite:
    // an afname names the toets revision it was read against (NULL for afnames stored
    // before: they are built from the current definition, as they always were), and a
    // change names the receipt that made it (its aanmaakdatum, schooljaar, sender), which
    // a later identical resend no longer replaces. `gateway_settings` keeps the gateway's
    // sealed id key and from which afname on ids and registrations are keyed (afnames
    // stored before keep their published ids).
    r#"
ALTER TABLE toetsafnames ADD COLUMN toets_revision INTEGER;
ALTER TABLE toetsafname_changes ADD COLUMN receipt_id TEXT;
CREATE TABLE gateway_settings (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
INSERT INTO gateway_settings (name, value)
  SELECT 'keyed_ids_after_afname_id', COALESCE(MAX(id), 0) FROM toetsafnames;
"#,
    // 9: data governance: removals keep a feed position (tombstones), and a sealed key for the
    // keyed hashes that stand in for an erased learner's id in audit rows.
    r#"
-- One row per afname removed by retention or erasure, so a LAS following the feed learns of it:
-- the sender's key and the school's next feed position, never the learner. Tombstones go
-- themselves after `removal_retention_days`.
CREATE TABLE toetsafname_removals (
    id INTEGER PRIMARY KEY,
    school_id INTEGER NOT NULL REFERENCES schools(id),
    klantcode TEXT NOT NULL,
    afname_key TEXT NOT NULL,
    toetscode TEXT NOT NULL,
    feed_seq INTEGER NOT NULL,
    removed_at TEXT NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('retention', 'erasure'))
);
CREATE INDEX toetsafname_removals_feed ON toetsafname_removals(school_id, feed_seq);
CREATE INDEX toetsafname_removals_at ON toetsafname_removals(removed_at);
-- Keys the gateway keeps for itself, sealed with the secrets key (`secret::Keyring`).
CREATE TABLE gateway_keys (
    name TEXT PRIMARY KEY,
    sealed BLOB NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX audit_at ON audit(at);
-- Removing an afname removes its change log rows (they reference it): without this index each
-- removal scanned the whole change log. New afnames take growing ids, so the intake appends.
CREATE INDEX toetsafname_changes_afname ON toetsafname_changes(afname_id);
"#,
    // 10: a derived total reads the stored onderdeel results of its sitting (leerling, toets
    // version, afnamedatum) once per toetsafname; by (school, leerling) alone that read visited
    // every afname of the learner: a quarter of the writer's time for a 200,000-result batch (issue 19).
    // The wider index replaces the old one: its prefix still serves lookups by learner.
    r#"
DROP INDEX toetsafnames_leerling;
CREATE INDEX toetsafnames_sitting ON toetsafnames(school_id, leerlingid, client_id, toets_id, afnamedatum);
"#,
    // 11: the read audit lives in `xapi.sqlite` now (xAPI migration 5); `move_read_audit` has
    // copied its rows there before this runs.
    r#"
DROP TABLE read_audit;
"#,
];

/// The schema of `xapi.sqlite`, the bridge's own file (see `store::Store`), applied through a
/// core connection that has it attached as `xapi` and tracked in its own `user_version`.
/// Same tables as migrations 2 and 3 created in the core, leaner: `seq` is the rowid (the
/// table grows at its end and needs no separate seq index), and no foreign keys into the
/// core, which SQLite cannot check across files.
const XAPI_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE xapi.xapi_statements (
    -- Monotonic storage order, assigned on the xAPI writer thread: a committed seq is never
    -- lower than one a reader has already seen, so a cursor over it misses nothing.
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    -- schools(id) and toetsafnames(id) in the core.
    school_id INTEGER NOT NULL,
    afname_id INTEGER,
    -- For subscription filters; a voiding statement carries that of the statement it voids.
    toetscode TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    verb_id TEXT NOT NULL,
    activity_id TEXT,
    registration TEXT,
    -- Canonical JSON of the actor's inverse functional identifier, for agent filters.
    agent TEXT,
    -- The learner the statement is about, for per-LRS identity variants rendered at delivery.
    leerlingid TEXT,
    eckid TEXT,
    -- The id of the statement that voids this one.
    voided_by TEXT,
    -- The statement as sent to an LRS with the default identity.
    statement TEXT NOT NULL
);
CREATE INDEX xapi.xapi_statements_afname ON xapi_statements(afname_id) WHERE voided_by IS NULL;
CREATE INDEX xapi.xapi_statements_agent ON xapi_statements(agent);
CREATE INDEX xapi.xapi_statements_activity ON xapi_statements(activity_id);
CREATE INDEX xapi.xapi_statements_registration ON xapi_statements(registration);
CREATE INDEX xapi.xapi_statements_school ON xapi_statements(school_id, seq);

-- Downstream Learning Record Stores. The password is a client credential the gateway
-- must present, so it is kept as given (like any configured secret) and never printed.
CREATE TABLE xapi.xapi_subscriptions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    username TEXT,
    password TEXT,
    -- Which learner identity this LRS sees: eckid (default), pseudonym or las.
    identity TEXT NOT NULL DEFAULT 'eckid' CHECK (identity IN ('eckid', 'pseudonym', 'las')),
    -- HMAC key for the pseudonym identity; random per subscription.
    pseudonym_key BLOB NOT NULL,
    -- JSON arrays of school codes and toetscodes; empty means all.
    schools TEXT NOT NULL DEFAULT '[]',
    toetscodes TEXT NOT NULL DEFAULT '[]',
    -- Every statement with seq <= cursor_seq is delivered or dead-lettered.
    cursor_seq INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    last_attempt_at TEXT,
    last_delivered_at TEXT,
    last_status INTEGER,
    last_error TEXT,
    delivered INTEGER NOT NULL DEFAULT 0
);

-- Statements an LRS refused with a 4xx answer; `outbox retry` requeues them.
CREATE TABLE xapi.xapi_dead_letters (
    subscription_id INTEGER NOT NULL REFERENCES xapi_subscriptions(id) ON DELETE CASCADE,
    statement_id TEXT NOT NULL REFERENCES xapi_statements(id),
    seq INTEGER NOT NULL,
    status INTEGER,
    answer TEXT NOT NULL,
    failed_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    requeued INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subscription_id, statement_id)
);

-- The publisher's place in the core's change log. A new (or deleted) xapi.sqlite starts
-- at 0: statements are derived data, so the publisher regenerates them with the same ids.
CREATE TABLE xapi.xapi_publisher (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cursor_seq INTEGER NOT NULL
);
INSERT INTO xapi.xapi_publisher (id, cursor_seq) VALUES (1, 0);
"#,
    // 2: settings the statements depend on, pinned at first use (the base IRI).
    r#"
CREATE TABLE xapi.xapi_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- 1 when the statement's ids are keyed with the gateway's id key (core migration 8 on):
-- an LRS with the pseudonym or LAS identity gets them keyed again with its own key.
ALTER TABLE xapi.xapi_statements ADD COLUMN keyed INTEGER NOT NULL DEFAULT 0;
"#,
    // 3: CA certificates per LRS (`lrs add --ca-file`).
    r#"
-- CA certificates (PEM) an LRS's server certificate may chain to, besides the system's
-- roots (`lrs add --ca-file`). The content, not a path: a backup carries it, and a file
-- that moves or vanishes cannot stop delivery.
ALTER TABLE xapi.xapi_subscriptions ADD COLUMN ca_pem TEXT;
"#,
    // 4: afnames erased while a publisher round was between its read and its write: the
    // round writes no statement for them (ids only, nothing about the learner).
    r#"
CREATE TABLE xapi.xapi_erased_afnames (
    afname_id INTEGER PRIMARY KEY
);
"#,
    // 5: the read audit moves here from the core (issue 19): a read's audit row is written by
    // the xAPI writer, so a read never waits behind a batch's store pass on the core writer.
    // Same columns and ids as the core's table; `reader_id` names a core reader, unchecked
    // across files like every reference into the core.
    r#"
CREATE TABLE xapi.read_audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    request_id TEXT NOT NULL,
    reader_id INTEGER NOT NULL,
    api TEXT NOT NULL,
    request TEXT NOT NULL,
    status INTEGER NOT NULL,
    school TEXT,
    leerlingen TEXT NOT NULL DEFAULT '[]',
    records INTEGER NOT NULL
);
CREATE INDEX xapi.read_audit_at ON read_audit(at);
CREATE INDEX xapi.read_audit_reader ON read_audit(reader_id, at);
"#,
];

/// The core schema version this binary writes: the first migrations, the split, then the later ones.
pub(crate) const CORE_VERSION: usize = SPLIT_VERSION + LATER_MIGRATIONS.len();
/// The `xapi.sqlite` schema version this binary writes.
pub(crate) const XAPI_VERSION: usize = XAPI_MIGRATIONS.len();

/// The core version after which the bridge's tables live in `xapi.sqlite`.
const SPLIT_VERSION: usize = 5;

/// The schema versions of a data dir's two files: as found, or as this binary needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SchemaVersions {
    /// `gateway.sqlite`'s `user_version`.
    pub(crate) core: usize,
    /// `xapi.sqlite`'s `user_version` (0 when the file does not exist yet).
    pub(crate) xapi: usize,
}

impl SchemaVersions {
    /// Reads the versions of an existing data dir without creating, locking or changing
    /// anything (`open_read_only_any_version`).
    pub(crate) fn read(data_dir: &Path) -> Result<SchemaVersions, StoreError> {
        let (_connection, versions) = super::open_read_only_any_version(data_dir)?;
        Ok(SchemaVersions::from(versions))
    }

    /// The versions of the files a core connection (with `xapi` attached) holds.
    pub(crate) fn of(connection: &Connection) -> Result<SchemaVersions, StoreError> {
        Ok(SchemaVersions {
            core: user_version(connection, "main")?,
            xapi: user_version(connection, super::XAPI_SCHEMA)?,
        })
    }

    /// Whether either file is older than this binary (migrations are pending).
    pub(crate) fn pending(&self) -> bool {
        self.core < CORE_VERSION || self.xapi < XAPI_VERSION
    }

    /// `TooNew` when a file of `data_dir` was migrated by a newer gateway.
    pub(crate) fn refuse_newer(&self, data_dir: &Path) -> Result<(), StoreError> {
        for (file, found, supported) in self.files() {
            if found > supported {
                return Err(StoreError::TooNew {
                    place: data_dir.join(file).display().to_string(),
                    found,
                    supported,
                });
            }
        }
        Ok(())
    }

    /// `TooNew` or `Outdated` unless both files are at this binary's versions: what a reader
    /// that cannot migrate needs.
    pub(crate) fn require_current(&self, data_dir: &Path) -> Result<(), StoreError> {
        self.refuse_newer(data_dir)?;
        for (file, found, needed) in self.files() {
            if found < needed {
                return Err(StoreError::Outdated {
                    path: data_dir.join(file),
                    found,
                    needed,
                });
            }
        }
        Ok(())
    }

    /// The version found and needed of the first file that is behind (core before xAPI).
    pub(crate) fn oldest_pending(&self) -> (usize, usize) {
        self.files()
            .into_iter()
            .find(|(_, found, needed)| found < needed)
            .map_or((self.core, CORE_VERSION), |(_, found, needed)| {
                (found, needed)
            })
    }

    /// Each file with its version as found here and as this binary needs it.
    pub(crate) fn files(&self) -> [(&'static str, usize, usize); 2] {
        [
            ("gateway.sqlite", self.core, CORE_VERSION),
            ("xapi.sqlite", self.xapi, XAPI_VERSION),
        ]
    }
}

impl From<[usize; 2]> for SchemaVersions {
    /// From `[core, xapi]`.
    fn from([core, xapi]: [usize; 2]) -> SchemaVersions {
        SchemaVersions { core, xapi }
    }
}

/// Brings both files to the newest schema, or refuses (`TooNew`) a file a newer gateway has
/// migrated, which this binary would misread. `connection` is a core connection with
/// `xapi.sqlite` attached as `xapi` (`Store::connect`).
pub(crate) fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let found = SchemaVersions::of(connection)?;
    // Every migration commit durable before the next one begins, whatever `durability` says:
    // a step that moves rows between the files (core 11 drops what xAPI 5 copied) must not
    // keep the drop and lose the copy to a power loss between two unsynced WALs.
    for schema in ["main", super::XAPI_SCHEMA] {
        connection.execute_batch(&format!("PRAGMA {schema}.synchronous = FULL"))?;
    }
    let core_file: Option<String> = connection
        .query_row(
            "SELECT file FROM pragma_database_list WHERE name = 'main'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    let data_dir = core_file
        .as_deref()
        .and_then(|file| Path::new(file).parent())
        .unwrap_or(Path::new(""));
    found.refuse_newer(data_dir)?;
    apply_all(connection)?;
    Ok(())
}

fn apply_all(connection: &mut Connection) -> rusqlite::Result<()> {
    apply(connection, "main", 0, MIGRATIONS)?;
    apply(connection, super::XAPI_SCHEMA, 0, XAPI_MIGRATIONS)?;
    if user_version(connection, "main")? < SPLIT_VERSION {
        move_bridge_tables(connection)?;
    }
    move_read_audit(connection)?;
    apply_later(connection)
}

/// Copies the core's read audit rows into `xapi.sqlite` (xAPI migration 5), keeping their ids,
/// while the core still has the table; core migration 11 then drops it. The copy commits
/// before the drop (a commit over two WAL files is atomic per file only) and skips ids it
/// already copied, so a crash in between repeats it without loss or duplicates.
fn move_read_audit(connection: &mut Connection) -> rusqlite::Result<()> {
    let core_has_table: bool = connection.query_row(
        "SELECT EXISTS (SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'read_audit')",
        [],
        |row| row.get(0),
    )?;
    if !core_has_table {
        return Ok(());
    }
    let transaction = connection.transaction()?;
    transaction.execute_batch(
        "INSERT OR IGNORE INTO xapi.read_audit (id, at, request_id, reader_id, api, request, status,
             school, leerlingen, records)
           SELECT id, at, request_id, reader_id, api, request, status, school, leerlingen, records
           FROM main.read_audit ORDER BY id;",
    )?;
    transaction.commit()
}

fn user_version(connection: &Connection, schema: &str) -> rusqlite::Result<usize> {
    connection.query_row(&format!("PRAGMA {schema}.user_version"), [], |row| {
        row.get::<_, i64>(0).map(|version| version as usize)
    })
}

/// Applies the `migrations` numbered `first + 1` on that `schema` does not have yet.
fn apply(
    connection: &mut Connection,
    schema: &str,
    first: usize,
    migrations: &[&str],
) -> rusqlite::Result<()> {
    let current = user_version(connection, schema)?;
    for (index, sql) in migrations.iter().enumerate() {
        let version = first + index + 1;
        if version <= current {
            continue;
        }
        let transaction = connection.transaction()?;
        transaction.execute_batch(sql)?;
        transaction.execute_batch(&format!("PRAGMA {schema}.user_version = {version}"))?;
        transaction.commit()?;
    }
    Ok(())
}

/// Applies `LATER_MIGRATIONS` with foreign keys off, each checked before it commits
/// (the procedure of https://sqlite.org/lang_altertable.html#otheralter).
fn apply_later(connection: &mut Connection) -> rusqlite::Result<()> {
    let current = user_version(connection, "main")?;
    let foreign_keys: i64 = connection.query_row("PRAGMA foreign_keys", [], |row| row.get(0))?;
    for (index, sql) in LATER_MIGRATIONS.iter().enumerate() {
        let version = SPLIT_VERSION + 1 + index;
        if version <= current {
            continue;
        }
        // Not possible inside a transaction: switched before it begins.
        connection.execute_batch("PRAGMA foreign_keys = OFF")?;
        let applied = (|| {
            let transaction = connection.transaction()?;
            transaction.execute_batch(sql)?;
            let broken: Option<String> = transaction
                .query_row("PRAGMA main.foreign_key_check", [], |row| row.get(0))
                .optional()?;
            if let Some(table) = broken {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
                    Some(format!(
                        "migration {version} leaves a dangling reference in {table}"
                    )),
                ));
            }
            transaction.execute_batch(&format!("PRAGMA main.user_version = {version}"))?;
            transaction.commit()
        })();
        connection.execute_batch(&format!("PRAGMA foreign_keys = {foreign_keys}"))?;
        applied?;
    }
    Ok(())
}

/// Core migration 5: the bridge's rows move from the core into `xapi.sqlite`, so that the
/// publisher writes statements on a writer of its own. Two transactions, because a commit
/// over two WAL files is atomic per file only: the copy (which first empties the target, so
/// it can be repeated), then dropping the core's tables. A crash in between repeats the copy.
fn move_bridge_tables(connection: &mut Connection) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    transaction.execute_batch(
        "DELETE FROM xapi.xapi_dead_letters;
         DELETE FROM xapi.xapi_statements;
         DELETE FROM xapi.xapi_subscriptions;
         INSERT INTO xapi.xapi_subscriptions (id, name, url, username, password, identity, pseudonym_key,
             schools, toetscodes, cursor_seq, created_at, last_attempt_at, last_delivered_at,
             last_status, last_error, delivered)
           SELECT id, name, url, username, password, identity, pseudonym_key, schools, toetscodes,
             cursor_seq, created_at, last_attempt_at, last_delivered_at, last_status, last_error, delivered
           FROM main.xapi_subscriptions;
         INSERT INTO xapi.xapi_statements (seq, id, school_id, afname_id, toetscode, stored_at, verb_id,
             activity_id, registration, agent, leerlingid, eckid, voided_by, statement)
           SELECT seq, id, school_id, afname_id, toetscode, stored_at, verb_id, activity_id,
             registration, agent, leerlingid, eckid, voided_by, statement
           FROM main.xapi_statements ORDER BY seq;
         INSERT INTO xapi.xapi_dead_letters (subscription_id, statement_id, seq, status, answer,
             failed_at, attempts, requeued)
           SELECT subscription_id, statement_id, seq, status, answer, failed_at, attempts, requeued
           FROM main.xapi_dead_letters;
         UPDATE xapi.xapi_publisher SET cursor_seq = (SELECT cursor_seq FROM main.xapi_publisher);",
    )?;
    transaction.commit()?;
    let transaction = connection.transaction()?;
    transaction.execute_batch(&format!(
        "DROP TABLE main.xapi_dead_letters;
         DROP TABLE main.xapi_statements;
         DROP TABLE main.xapi_subscriptions;
         DROP TABLE main.xapi_publisher;
         PRAGMA main.user_version = {SPLIT_VERSION};"
    ))?;
    transaction.commit()
}

/// The core schema version this binary writes.
#[cfg(test)]
fn latest_version() -> usize {
    CORE_VERSION
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> rusqlite::Result<Connection> {
        let connection = Connection::open_in_memory()?;
        connection.execute_batch("ATTACH DATABASE ':memory:' AS xapi")?;
        Ok(connection)
    }

    fn count(connection: &Connection, sql: &str) -> i64 {
        connection.query_row(sql, [], |row| row.get(0)).expect(sql)
    }

    #[test]
    fn migrations_apply_once() -> Result<(), StoreError> {
        let mut connection = connection()?;
        migrate(&mut connection)?;
        migrate(&mut connection)?;
        assert_eq!(user_version(&connection, "main")?, latest_version());
        assert_eq!(user_version(&connection, "xapi")?, XAPI_MIGRATIONS.len());
        Ok(())
    }

    /// A file a newer gateway migrated is refused, and left as it was.
    #[test]
    fn a_newer_schema_is_refused() -> Result<(), StoreError> {
        for schema in ["main", "xapi"] {
            let mut connection = connection()?;
            migrate(&mut connection)?;
            let newer = user_version(&connection, schema)? + 1;
            connection.execute_batch(&format!("PRAGMA {schema}.user_version = {newer}"))?;
            match migrate(&mut connection) {
                Err(StoreError::TooNew {
                    found, supported, ..
                }) => assert_eq!((found, supported), (newer, newer - 1)),
                other => panic!("{schema} at {newer} was not refused: {other:?}"),
            }
            assert_eq!(user_version(&connection, schema)?, newer);
        }
        Ok(())
    }

    /// xAPI migration 3 on an `xapi.sqlite` with an LRS: the row stays as it was and trusts
    /// only the system's roots (no CA stored) until it is added again with `--ca-file`.
    #[test]
    fn existing_lrs_subscriptions_get_no_ca() -> Result<(), StoreError> {
        let mut connection = connection()?;
        apply(&mut connection, "main", 0, MIGRATIONS)?;
        apply(&mut connection, "xapi", 0, &XAPI_MIGRATIONS[..1])?;
        move_bridge_tables(&mut connection)?;
        connection.execute_batch(
            "INSERT INTO xapi.xapi_subscriptions (name, url, pseudonym_key, cursor_seq, created_at)
               VALUES ('lrs', 'https://lrs.example/xAPI/statements', x'00', 7, 'now');",
        )?;
        migrate(&mut connection)?;
        assert_eq!(user_version(&connection, "xapi")?, XAPI_VERSION);
        assert_eq!(
            count(
                &connection,
                "SELECT count(*) FROM xapi.xapi_subscriptions WHERE name = 'lrs' AND cursor_seq = 7 AND ca_pem IS NULL"
            ),
            1
        );
        Ok(())
    }

    /// Core migration 6 on a data dir with results: every row keeps its id and belongs to the
    /// client of its receipt, its statement id stays without a sender, the references into the
    /// rebuilt tables hold, and a second client may now use a key the first one uses.
    #[test]
    fn existing_afnames_and_toetsen_belong_to_the_client_of_their_receipt(
    ) -> Result<(), crate::store::StoreError> {
        let mut connection = connection()?;
        connection.execute_batch("PRAGMA foreign_keys = ON")?;
        apply(&mut connection, "main", 0, MIGRATIONS)?;
        apply(&mut connection, "xapi", 0, XAPI_MIGRATIONS)?;
        move_bridge_tables(&mut connection)?;
        connection.execute_batch(
            "INSERT INTO schools (id, code, created_at) VALUES (1, '99XX01', 'now');
             INSERT INTO clients (id, klantcode, klantnaam, key_salt, key_hash, created_at)
               VALUES (1, 'EA-C', 'C', x'00', x'00', 'now'), (2, 'EA-B', 'B', x'00', x'00', 'now');
             INSERT INTO receipts (id, client_id, school_id, received_at, size, sha256, outcome)
               VALUES ('r1', 1, 1, 'now', 1, 'x', 'accepted'), ('r2', 2, 1, 'now', 1, 'y', 'accepted');
             INSERT INTO toetsen (id, school_id, toetscode, versie, definition, content_sha256, revision,
               created_at, created_receipt_id, updated_at, updated_receipt_id)
               VALUES (7, 1, 'T', '', '{}', 'x', 2, 'now', 'r1', 'now', 'r2');
             INSERT INTO toetsen_history (toets_id, revision, definition, content_sha256, receipt_id,
               replaced_at, replaced_by_receipt_id) VALUES (7, 1, '{}', 'w', 'r1', 'now', 'r2');
             INSERT INTO toetsafnames (id, school_id, afname_key, leerlingid, toets_id, toetscode, versie,
               afnamedatum, aanmaakdatum, receipt_id, result, content_sha256, revision, change_seq)
               VALUES (11, 1, 'A', 'L1', 7, 'T', '', '2026-01-01', 'x', 'r1', '{}', x'00', 2, 2),
                      (12, 1, 'B', 'L1', 7, 'T', '', '2026-01-01', 'x', 'r2', '{}', x'00', 1, 3);
             INSERT INTO toetsafnames_history (afname_id, revision, state, replaced_at, replaced_by_receipt_id)
               VALUES (11, 1, '{}', 'now', 'r1');
             INSERT INTO toetsafname_changes (change_seq, afname_id, revision, quarantined)
               VALUES (1, 11, 1, 0), (2, 11, 2, 0), (3, 12, 1, 0);",
        )?;
        migrate(&mut connection)?;
        assert_eq!(user_version(&connection, "main")?, latest_version());
        assert_eq!(
            count(&connection, "SELECT client_id FROM toetsen WHERE id = 7"),
            1
        );
        let owners: String = connection.query_row(
            "SELECT group_concat(id || ':' || client_id || ':' || legacy_statement_id, ',')
             FROM (SELECT * FROM toetsafnames ORDER BY id)",
            [],
            |row| row.get(0),
        )?;
        assert_eq!(owners, "11:1:1,12:2:1");
        assert_eq!(
            count(&connection, "SELECT count(*) FROM toetsafnames_history h JOIN toetsafnames a ON a.id = h.afname_id"),
            1
        );
        assert_eq!(
            count(&connection, "SELECT count(*) FROM toetsafname_changes g JOIN toetsafnames a ON a.id = g.afname_id"),
            3
        );
        assert_eq!(
            count(&connection, "SELECT count(*) FROM pragma_foreign_key_check"),
            0
        );
        assert_eq!(count(&connection, "PRAGMA foreign_keys"), 1);
        // Client 2 sends key A and toets T of its own: new rows, client 1's stay as they were.
        let owner = crate::store::intake::Owner {
            school_id: 1,
            client_id: 2,
        };
        let definition = crate::store::intake::ToetsDefinition::new(crate::uwlr::Toets::default());
        let (toets_id, change) = crate::store::intake::upsert_toets(
            &crate::store::db::Db::sqlite(&connection),
            owner,
            &definition,
            "r3",
        )?;
        assert_ne!(toets_id, 7);
        assert_eq!(change, crate::store::intake::ToetsChange::NewToets);
        let state = crate::store::intake::AfnameState {
            toetscode: String::new(),
            afnamedatum: "2026-01-02".into(),
            result: "{}".into(),
            ..crate::store::testing::afname_state("A", "L1", toets_id, 3)
        };
        let write = crate::store::intake::AfnameWrite {
            owner,
            aanmaakdatum: "x",
            receipt_id: "r3",
            quarantined: false,
            feed_offset: 0,
        };
        let mut seq = 3;
        let change = crate::store::intake::upsert_afname(
            &crate::store::db::Db::sqlite(&connection),
            &write,
            &state,
            &mut seq,
        )?;
        assert_eq!(change, crate::store::intake::AfnameChange::Created);
        assert_eq!(
            count(
                &connection,
                "SELECT revision FROM toetsafnames WHERE id = 11"
            ),
            2
        );
        assert_eq!(
            count(&connection, "SELECT legacy_statement_id FROM toetsafnames WHERE client_id = 2 AND afname_key = 'A'"),
            0
        );
        Ok(())
    }

    /// A data dir of the version before the split keeps its statements, subscriptions,
    /// dead letters and publisher cursor, now in the bridge's file, and the core loses the tables.
    #[test]
    fn bridge_rows_move_out_of_the_core() -> Result<(), StoreError> {
        let mut connection = connection()?;
        apply(&mut connection, "main", 0, MIGRATIONS)?;
        connection.execute_batch(
            "INSERT INTO schools (id, code, created_at) VALUES (1, '99XX01', 'now');
             INSERT INTO main.xapi_subscriptions (id, name, url, pseudonym_key, created_at, cursor_seq)
               VALUES (7, 'lrs', 'http://lrs', x'00', 'now', 2);
             INSERT INTO main.xapi_statements (id, seq, school_id, toetscode, stored_at, verb_id, statement)
               VALUES ('a', 1, 1, 'T', 'now', 'v', '{}'), ('b', 2, 1, 'T', 'now', 'v', '{}');
             INSERT INTO main.xapi_dead_letters (subscription_id, statement_id, seq, answer, failed_at)
               VALUES (7, 'b', 2, 'no', 'now');
             UPDATE main.xapi_publisher SET cursor_seq = 42;",
        )?;
        migrate(&mut connection)?;
        assert_eq!(
            count(&connection, "SELECT count(*) FROM xapi.xapi_statements"),
            2
        );
        assert_eq!(
            count(&connection, "SELECT max(seq) FROM xapi.xapi_statements"),
            2
        );
        assert_eq!(
            count(
                &connection,
                "SELECT cursor_seq FROM xapi.xapi_subscriptions WHERE name = 'lrs'"
            ),
            2
        );
        assert_eq!(
            count(&connection, "SELECT count(*) FROM xapi.xapi_dead_letters"),
            1
        );
        assert_eq!(
            count(&connection, "SELECT cursor_seq FROM xapi.xapi_publisher"),
            42
        );
        assert_eq!(
            count(
                &connection,
                "SELECT count(*) FROM main.sqlite_master WHERE name LIKE 'xapi_%'"
            ),
            0
        );
        assert_eq!(user_version(&connection, "main")?, latest_version());
        Ok(())
    }

    /// Core migration 11 on a data dir with reads: every read audit row keeps its id and
    /// content in `xapi.sqlite`, the core's table is gone, and a repeated copy (a crash
    /// between copy and drop) adds nothing.
    #[test]
    fn read_audit_rows_move_to_the_xapi_file() -> Result<(), StoreError> {
        let mut connection = connection()?;
        migrate(&mut connection)?;
        // The core as core migration 10 left it: the read audit still there, with rows.
        connection.execute_batch(&format!(
            "CREATE TABLE main.read_audit (id INTEGER PRIMARY KEY, at TEXT NOT NULL,
               request_id TEXT NOT NULL, reader_id INTEGER NOT NULL REFERENCES readers(id),
               api TEXT NOT NULL, request TEXT NOT NULL, status INTEGER NOT NULL, school TEXT,
               leerlingen TEXT NOT NULL DEFAULT '[]', records INTEGER NOT NULL);
             PRAGMA main.user_version = {};",
            CORE_VERSION - 1
        ))?;
        connection.execute_batch(
            "INSERT INTO readers (id, name, token_lookup, token_sha256, scopes, created_at)
               VALUES (1, 'las', 'p', x'00', 'las', 'now');
             INSERT INTO main.read_audit (id, at, request_id, reader_id, api, request, status, school, leerlingen, records)
               VALUES (3, '2026-01-01T00:00:00.000Z', 'r1', 1, 'las', 'GET /a', 200, '99XX01', '[\"L1\"]', 1),
                      (9, '2026-01-02T00:00:00.000Z', 'r2', 1, 'xapi', 'GET /b', 403, NULL, '[]', 0);",
        )?;
        move_read_audit(&mut connection)?;
        migrate(&mut connection)?;
        assert_eq!(
            count(
                &connection,
                "SELECT count(*) FROM xapi.read_audit WHERE (id = 3 AND leerlingen = '[\"L1\"]' AND status = 200)
                   OR (id = 9 AND school IS NULL AND status = 403)"
            ),
            2
        );
        assert_eq!(
            count(
                &connection,
                "SELECT count(*) FROM main.sqlite_master WHERE name LIKE 'read_audit%'"
            ),
            0
        );
        assert_eq!(user_version(&connection, "main")?, latest_version());
        Ok(())
    }

    /// Core migration 7: positions handed out before (gateway-wide change_seq) stay valid
    /// cursors: rows keep them, and every school's counter starts at the global one.
    #[test]
    fn feed_positions_start_where_the_global_counter_was() -> Result<(), StoreError> {
        let mut connection = connection()?;
        apply(&mut connection, "main", 0, MIGRATIONS)?;
        apply(
            &mut connection,
            crate::store::XAPI_SCHEMA,
            0,
            XAPI_MIGRATIONS,
        )?;
        move_bridge_tables(&mut connection)?;
        assert_eq!(user_version(&connection, "main")?, SPLIT_VERSION);
        connection.execute_batch(
            "INSERT INTO schools (id, code, created_at) VALUES (1, '99XX01', 'now'), (2, '99YY', 'now');
             INSERT INTO clients (id, klantcode, klantnaam, key_salt, key_hash, created_at)
               VALUES (1, 'EA-C', 'C', x'00', x'00', 'now');
             INSERT INTO receipts (id, client_id, school_id, received_at, size, sha256, outcome)
               VALUES ('r', 1, 1, 'now', 1, 'x', 'accepted');
             INSERT INTO toetsen (id, school_id, toetscode, versie, definition, content_sha256, revision,
                 created_at, created_receipt_id, updated_at, updated_receipt_id)
               VALUES (1, 1, 'T', '', '{}', 'x', 1, 'now', 'r', 'now', 'r');
             INSERT INTO toetsafnames (school_id, afname_key, leerlingid, toets_id, toetscode, versie,
                 afnamedatum, aanmaakdatum, receipt_id, result, content_sha256, revision, change_seq)
               VALUES (1, 'A', 'L1', 1, 'T', '', '2026-10-01', 'now', 'r', '{}', 'x', 1, 7);
             UPDATE change_counter SET seq = 9;",
        )?;
        migrate(&mut connection)?;
        assert_eq!(
            count(
                &connection,
                "SELECT feed_seq FROM toetsafnames WHERE afname_key = 'A'"
            ),
            7
        );
        assert_eq!(
            count(
                &connection,
                "SELECT count(*) FROM schools WHERE feed_seq = 9"
            ),
            2
        );
        assert_eq!(user_version(&connection, "main")?, latest_version());
        Ok(())
    }
}
