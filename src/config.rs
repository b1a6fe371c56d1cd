//! Typed settings: defaults that work, then a TOML file, then `UWLR_*` environment variables, then flags.

use crate::intake::UnknownLeerlingPolicy;
use crate::store::{Durability, Engine};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub(crate) use crate::secret::Secret;

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// Every setting of the gateway. See `gateway.example.toml` in README for a commented file.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    /// Address to listen on.
    pub(crate) listen: SocketAddr,
    /// Where the SQLite database and spooled request bodies live.
    pub(crate) data_dir: PathBuf,
    /// The database engine: `sqlite` (the files in `data_dir`) or `postgres` (`database_url`).
    pub(crate) store: Engine,
    /// The PostgreSQL database (`postgres://user:password@host:port/database`), for
    /// `store = "postgres"`; a `Secret`, because it usually holds a password; shown only
    /// redacted. Ignored by the SQLite engine.
    pub(crate) database_url: Option<Secret>,
    /// Connections one instance keeps open to PostgreSQL at most.
    pub(crate) database_pool_size: u32,
    /// PEM CA certificates to trust, beside the system's roots, when `database_url` says
    /// `sslmode=require` (`store::postgres::tls`).
    pub(crate) database_ca_file: Option<PathBuf>,
    /// Base URL as senders reach us (behind a proxy it differs from `listen`);
    /// `soap:address` in the served WSDL is this plus `service_path`.
    pub(crate) public_url: Option<String>,
    /// Path of the SOAP endpoint.
    pub(crate) service_path: String,
    /// Largest request body accepted, in bytes.
    pub(crate) max_body_bytes: u64,
    /// Supported `xsdversie` values.
    pub(crate) xsd_versions: Vec<String>,
    pub(crate) unknown_leerling: UnknownLeerlingPolicy,
    /// How far (seconds) an aanmaakdatum may lie ahead of the gateway's clock; a later one
    /// is refused (UWLR-TOEKOMST), because it would hold up the sender's later messages.
    pub(crate) aanmaakdatum_max_skew_secs: u64,
    pub(crate) durability: Durability,
    /// WAL size (MiB) after which the writer lets SQLite start the WAL over (see `store`).
    pub(crate) wal_restart_mib: u64,
    pub(crate) log_format: LogFormat,
    /// A folder with official XSDs (must hold UWLR_Gateway_Envelope.xsd importing them).
    pub(crate) schema_dir: Option<PathBuf>,
    /// A folder with extra VDEX files.
    pub(crate) vdex_dir: Option<PathBuf>,
    /// PEM certificate chain for HTTPS; with `tls_key` the gateway speaks TLS itself
    /// (rustls). Without them it speaks plain HTTP, e.g. behind a reverse proxy.
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) belonging to `tls_cert`.
    pub(crate) tls_key: Option<PathBuf>,
    /// Time a client has to send its request headers.
    pub(crate) header_timeout_secs: u64,
    /// Time a client may stay silent while sending the body.
    pub(crate) body_idle_timeout_secs: u64,
    /// Time a client has to send the whole body, however steadily it trickles in
    /// (a slowloris client that sends one byte a second never trips the idle timeout).
    pub(crate) body_timeout_secs: u64,
    /// Bearer token for the admin API (roster import); admin API is off without it.
    pub(crate) admin_token: Option<Secret>,
    /// A second, plain-HTTP listener for operators (`/metrics`, `/status`, `/ready`, `/health`)
    /// that needs no token: bind it to a private address. Without it those are on `listen`,
    /// `/metrics` and the status data behind the admin token.
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// `/ready` answers 503 while the publisher lags more than this (seconds).
    pub(crate) ready_max_publisher_lag_secs: u64,
    /// `/ready` answers 503 while more dead letters than this wait (not requeued).
    pub(crate) ready_max_dead_letters: u64,
    /// Deadline for in-flight requests at shutdown.
    pub(crate) shutdown_grace_secs: u64,
    /// Base IRI of xAPI activity ids, extension keys and LAS account home pages; also the seed of
    /// every statement id (UUIDv5 namespace). Set it once to a domain you control and never change it.
    pub(crate) xapi_base_iri: String,
    /// Most statements in one POST to an LRS.
    pub(crate) xapi_batch_size: usize,
    /// Deadline of one POST to an LRS.
    pub(crate) xapi_request_timeout_secs: u64,
    /// How often subscriptions are reloaded (and idle deliveries look for work).
    pub(crate) xapi_poll_interval_ms: u64,
    /// The least time between two rounds of the xAPI publisher: longer rounds share index
    /// pages and commits, shorter ones lower the lag to the LRSs.
    pub(crate) xapi_publish_pause_ms: u64,
    /// First retry delay after a failed POST; it doubles per attempt.
    pub(crate) xapi_base_backoff_ms: u64,
    /// Longest retry delay.
    pub(crate) xapi_max_backoff_secs: u64,
    /// The name of the Agent the read side gives as `authority` of every statement
    /// (xAPI Data 2.4.9): the gateway vouches for the statements it made.
    pub(crate) xapi_authority_name: String,
    /// A `mailto:` IRI identifying the authority; without it the authority is the
    /// gateway's own account (`xapi_base_iri`, name `uwlr-gateway`), as on voiding statements.
    pub(crate) xapi_authority_mbox: Option<String>,
    /// Origins (`https://host[:port]`) whose browser-based learning systems may read
    /// `/xapi/…` (CORS); `*` admits any origin. Empty: no CORS headers at all.
    pub(crate) xapi_cors_origins: Vec<String>,
    /// Open connections at most; more wait in the listen backlog.
    pub(crate) max_connections: usize,
    /// Open connections from one source address (IPv6: one /64) at most; more are
    /// answered 503 at once, so one sender cannot take every slot. 0: no cap
    /// (behind a reverse proxy every connection comes from the proxy).
    pub(crate) max_connections_per_address: usize,
    /// The slowest a body may arrive, averaged over `body_rate_window_secs`: a body
    /// that trickles slower is cut off as incomplete. 0: no minimum.
    pub(crate) min_body_bytes_per_sec: u64,
    /// The window over which `min_body_bytes_per_sec` is averaged.
    pub(crate) body_rate_window_secs: u64,
    /// Time a client has to send the autorisatie header and the school block;
    /// until then the body deadline is this instead of `body_timeout_secs`.
    pub(crate) preauth_timeout_secs: u64,
    /// The most of a body read (and held, in memory only) before its sender is
    /// authenticated; the autorisatie header and the school block must come within it.
    pub(crate) preauth_max_bytes: u64,
    /// The most memory all unauthenticated bodies together may hold (MiB); past it
    /// new bodies get 503 until the others are authenticated or refused.
    pub(crate) preauth_memory_mib: u64,
    /// The most spooled bodies may take on disk together (MiB); past it 503. 0: no cap.
    pub(crate) spool_max_mib: u64,
    /// The most spooled bodies from one source address may take on disk (MiB). 0: no cap.
    pub(crate) spool_max_per_address_mib: u64,
    /// Failed authentications one API, klantcode and source network may have in a
    /// burst before that combination is locked out (see `auth_limit`).
    pub(crate) auth_max_failures: u32,
    /// Failed authentications one klantcode may have from all addresses together before
    /// it is locked out everywhere, its real sender included; far above
    /// `auth_max_failures`, so only a guesser spread over many networks reaches it.
    pub(crate) auth_klantcode_max_failures: u32,
    /// Time in which a locked-out bucket gets all its attempts back;
    /// the first comes back after `auth_lockout_secs / auth_max_failures`.
    pub(crate) auth_lockout_secs: u64,
    /// File with the key(s) that seal LRS passwords and pseudonym keys in the database
    /// (see `secret`); default `<data-dir>/secrets.key`, created on first use.
    pub(crate) secrets_key_file: Option<PathBuf>,
    /// The key(s) themselves (base64, comma-separated), instead of a file; `UWLR_SECRETS_KEY`.
    pub(crate) secrets_key: Option<Secret>,
    /// Days a school's data is kept after its last activation mandate ended (see `governance`).
    pub(crate) retention_days_after_mandate: u32,
    /// Days a receipt is kept once no stored afname or toets refers to it.
    pub(crate) receipt_retention_days: u32,
    /// Days audit and read-audit rows are kept.
    pub(crate) audit_retention_days: u32,
    /// Days a removal stays in the LAS feed (its tombstone) before it goes too.
    pub(crate) removal_retention_days: u32,
    /// Seconds between two runs of the purge job in `serve`; 0 turns the job off.
    pub(crate) purge_interval_secs: u64,
    /// Rows one purge transaction removes at most, so the intake is never held up for long.
    pub(crate) purge_batch_rows: u32,
}

/// The placeholder base IRI (RFC 2606 `.example`): statements are valid, but the ids belong to no one.
pub(crate) const DEFAULT_XAPI_BASE_IRI: &str = "https://uwlr-gateway.example/xapi";

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            data_dir: PathBuf::from("./data"),
            store: Engine::Sqlite,
            database_url: None,
            database_pool_size: 16,
            database_ca_file: None,
            public_url: None,
            service_path: "/uwlr/leerresultaten".into(),
            max_body_bytes: 1 << 30,
            xsd_versions: vec!["2.2".into()],
            unknown_leerling: UnknownLeerlingPolicy::Reject,
            aanmaakdatum_max_skew_secs: 300,
            durability: Durability::Full,
            wal_restart_mib: crate::store::DEFAULT_WAL_RESTART_BYTES >> 20,
            log_format: LogFormat::Text,
            schema_dir: None,
            vdex_dir: None,
            tls_cert: None,
            tls_key: None,
            header_timeout_secs: 10,
            body_idle_timeout_secs: 30,
            body_timeout_secs: 600,
            admin_token: None,
            metrics_listen: None,
            ready_max_publisher_lag_secs: 300,
            ready_max_dead_letters: 100,
            shutdown_grace_secs: 20,
            xapi_base_iri: DEFAULT_XAPI_BASE_IRI.into(),
            xapi_batch_size: 100,
            xapi_request_timeout_secs: 10,
            xapi_poll_interval_ms: 1000,
            xapi_publish_pause_ms: 25,
            xapi_base_backoff_ms: 500,
            xapi_max_backoff_secs: 60,
            xapi_authority_name: "uwlr-gateway".into(),
            xapi_authority_mbox: None,
            xapi_cors_origins: Vec::new(),
            max_connections: 2048,
            max_connections_per_address: 64,
            min_body_bytes_per_sec: 1024,
            body_rate_window_secs: 10,
            preauth_timeout_secs: 10,
            preauth_max_bytes: 1 << 20,
            preauth_memory_mib: 256,
            spool_max_mib: 4096,
            spool_max_per_address_mib: 2048,
            auth_max_failures: 10,
            auth_klantcode_max_failures: 100,
            auth_lockout_secs: 60,
            secrets_key_file: None,
            secrets_key: None,
            retention_days_after_mandate: 90,
            receipt_retention_days: 365,
            audit_retention_days: 730,
            removal_retention_days: 90,
            purge_interval_secs: 3600,
            purge_batch_rows: 500,
        }
    }
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {path}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("environment variable {name}: {reason}")]
    Env { name: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// One environment variable: its name and how its value sets the configuration.
struct EnvKey {
    name: &'static str,
    /// The key in the TOML file (and the `Config` field) the variable overrides; only the
    /// test that holds names, keys and README together reads it.
    #[cfg_attr(not(test), allow(dead_code))]
    field: &'static str,
    apply: fn(&mut Config, &str) -> Result<(), ConfigError>,
}

/// Builds an `EnvKey` for `field`; the last word says how the value is read: `parse` with
/// `FromStr`, `choice` as the lowercase word the TOML file takes, `path`, `text`, `list`
/// (comma-separated, blanks dropped), `secret`, or an `Option` of one of those.
macro_rules! env_key {
    ($name:literal, $field:ident, parse) => {
        env_key!(@read $name, $field, |value| env_parse($name, value)?)
    };
    ($name:literal, $field:ident, some_parse) => {
        env_key!(@read $name, $field, |value| Some(env_parse($name, value)?))
    };
    ($name:literal, $field:ident, choice) => {
        env_key!(@read $name, $field, |value| env_choice($name, value)?)
    };
    ($name:literal, $field:ident, path) => {
        env_key!(@read $name, $field, |value| PathBuf::from(value))
    };
    ($name:literal, $field:ident, some_path) => {
        env_key!(@read $name, $field, |value| Some(PathBuf::from(value)))
    };
    ($name:literal, $field:ident, text) => {
        env_key!(@read $name, $field, |value| value.to_string())
    };
    ($name:literal, $field:ident, some_text) => {
        env_key!(@read $name, $field, |value| Some(value.to_string()))
    };
    ($name:literal, $field:ident, non_empty_text) => {
        env_key!(@read $name, $field, |value| Some(value.to_string()).filter(|text| !text.is_empty()))
    };
    ($name:literal, $field:ident, list) => {
        env_key!(@read $name, $field, |value| env_list(value))
    };
    ($name:literal, $field:ident, secret) => {
        env_key!(@read $name, $field, |value| Some(Secret::new(value)))
    };
    (@read $name:literal, $field:ident, |$value:ident| $read:expr) => {
        EnvKey {
            name: $name,
            field: stringify!($field),
            apply: |config, $value| {
                config.$field = $read;
                Ok(())
            },
        }
    };
}

/// Every `UWLR_*` variable (README, "Configuration"), applied in this order over the file's values.
const ENV_KEYS: &[EnvKey] = &[
    env_key!("UWLR_LISTEN", listen, parse),
    env_key!("UWLR_METRICS_LISTEN", metrics_listen, some_parse),
    env_key!(
        "UWLR_READY_MAX_PUBLISHER_LAG_SECS",
        ready_max_publisher_lag_secs,
        parse
    ),
    env_key!("UWLR_READY_MAX_DEAD_LETTERS", ready_max_dead_letters, parse),
    env_key!("UWLR_DATA_DIR", data_dir, path),
    env_key!("UWLR_STORE", store, choice),
    env_key!("UWLR_DATABASE_URL", database_url, secret),
    env_key!("UWLR_DATABASE_POOL_SIZE", database_pool_size, parse),
    env_key!("UWLR_DATABASE_CA_FILE", database_ca_file, some_path),
    env_key!("UWLR_PUBLIC_URL", public_url, some_text),
    env_key!("UWLR_SERVICE_PATH", service_path, text),
    env_key!("UWLR_MAX_BODY_BYTES", max_body_bytes, parse),
    env_key!("UWLR_XSD_VERSIONS", xsd_versions, list),
    env_key!("UWLR_UNKNOWN_LEERLING", unknown_leerling, choice),
    env_key!(
        "UWLR_AANMAAKDATUM_MAX_SKEW_SECS",
        aanmaakdatum_max_skew_secs,
        parse
    ),
    env_key!("UWLR_DURABILITY", durability, choice),
    env_key!("UWLR_WAL_RESTART_MIB", wal_restart_mib, parse),
    env_key!("UWLR_LOG_FORMAT", log_format, choice),
    env_key!("UWLR_SCHEMA_DIR", schema_dir, some_path),
    env_key!("UWLR_VDEX_DIR", vdex_dir, some_path),
    env_key!("UWLR_TLS_CERT", tls_cert, some_path),
    env_key!("UWLR_TLS_KEY", tls_key, some_path),
    env_key!("UWLR_HEADER_TIMEOUT_SECS", header_timeout_secs, parse),
    env_key!("UWLR_BODY_IDLE_TIMEOUT_SECS", body_idle_timeout_secs, parse),
    env_key!("UWLR_BODY_TIMEOUT_SECS", body_timeout_secs, parse),
    env_key!("UWLR_SHUTDOWN_GRACE_SECS", shutdown_grace_secs, parse),
    env_key!("UWLR_AUTH_MAX_FAILURES", auth_max_failures, parse),
    env_key!(
        "UWLR_AUTH_KLANTCODE_MAX_FAILURES",
        auth_klantcode_max_failures,
        parse
    ),
    env_key!("UWLR_AUTH_LOCKOUT_SECS", auth_lockout_secs, parse),
    env_key!("UWLR_MAX_CONNECTIONS", max_connections, parse),
    env_key!("UWLR_SECRETS_KEY_FILE", secrets_key_file, some_path),
    env_key!("UWLR_SECRETS_KEY", secrets_key, secret),
    env_key!(
        "UWLR_MAX_CONNECTIONS_PER_ADDRESS",
        max_connections_per_address,
        parse
    ),
    env_key!("UWLR_MIN_BODY_BYTES_PER_SEC", min_body_bytes_per_sec, parse),
    env_key!("UWLR_BODY_RATE_WINDOW_SECS", body_rate_window_secs, parse),
    env_key!("UWLR_PREAUTH_TIMEOUT_SECS", preauth_timeout_secs, parse),
    env_key!("UWLR_PREAUTH_MAX_BYTES", preauth_max_bytes, parse),
    env_key!("UWLR_PREAUTH_MEMORY_MIB", preauth_memory_mib, parse),
    env_key!("UWLR_SPOOL_MAX_MIB", spool_max_mib, parse),
    env_key!(
        "UWLR_SPOOL_MAX_PER_ADDRESS_MIB",
        spool_max_per_address_mib,
        parse
    ),
    env_key!("UWLR_ADMIN_TOKEN", admin_token, secret),
    env_key!("UWLR_XAPI_BASE_IRI", xapi_base_iri, text),
    env_key!("UWLR_XAPI_BATCH_SIZE", xapi_batch_size, parse),
    env_key!(
        "UWLR_XAPI_REQUEST_TIMEOUT_SECS",
        xapi_request_timeout_secs,
        parse
    ),
    env_key!("UWLR_XAPI_POLL_INTERVAL_MS", xapi_poll_interval_ms, parse),
    env_key!(
        "UWLR_RETENTION_DAYS_AFTER_MANDATE",
        retention_days_after_mandate,
        parse
    ),
    env_key!("UWLR_RECEIPT_RETENTION_DAYS", receipt_retention_days, parse),
    env_key!("UWLR_AUDIT_RETENTION_DAYS", audit_retention_days, parse),
    env_key!("UWLR_REMOVAL_RETENTION_DAYS", removal_retention_days, parse),
    env_key!("UWLR_PURGE_INTERVAL_SECS", purge_interval_secs, parse),
    env_key!("UWLR_PURGE_BATCH_ROWS", purge_batch_rows, parse),
    env_key!("UWLR_XAPI_PUBLISH_PAUSE_MS", xapi_publish_pause_ms, parse),
    env_key!("UWLR_XAPI_BASE_BACKOFF_MS", xapi_base_backoff_ms, parse),
    env_key!("UWLR_XAPI_MAX_BACKOFF_SECS", xapi_max_backoff_secs, parse),
    env_key!("UWLR_XAPI_AUTHORITY_NAME", xapi_authority_name, text),
    env_key!(
        "UWLR_XAPI_AUTHORITY_MBOX",
        xapi_authority_mbox,
        non_empty_text
    ),
    env_key!("UWLR_XAPI_CORS_ORIGINS", xapi_cors_origins, list),
];

/// A value read with `FromStr`; its error names the variable.
fn env_parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|error: T::Err| ConfigError::Env {
        name: name.into(),
        reason: error.to_string(),
    })
}

/// One of the words the TOML file takes for an enum (`normal`, `json`, ...).
fn env_choice<T: for<'de> Deserialize<'de>>(name: &str, value: &str) -> Result<T, ConfigError> {
    T::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(value))
        .map_err(|error| ConfigError::Env {
            name: name.into(),
            reason: error.to_string(),
        })
}

/// A comma-separated list; blanks around items and empty items are dropped.
fn env_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|item| item.trim().to_string())
        .filter(|item| !item.is_empty())
        .collect()
}

impl Config {
    /// Defaults, then the file (if given), then the environment.
    pub(crate) fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_path_buf(),
                    source,
                })?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        config.check()?;
        Ok(config)
    }

    /// Applies every `UWLR_*` variable that is set, in the order of `ENV_KEYS`.
    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for key in ENV_KEYS {
            if let Some(value) = get(key.name) {
                (key.apply)(self, &value)?;
            }
        }
        Ok(())
    }

    /// Where the keys that seal stored secrets come from: the inline key, else the key file,
    /// else the data dir's own `secrets.key`.
    pub(crate) fn secrets_key_source(&self) -> crate::secret::KeySource {
        use crate::secret::KeySource;
        match (&self.secrets_key, &self.secrets_key_file) {
            (Some(key), _) => KeySource::Inline(key.clone()),
            (None, Some(path)) => KeySource::File(path.clone()),
            (None, None) => {
                KeySource::DataDirDefault(crate::secret::default_key_file(&self.data_dir))
            }
        }
    }

    /// Rejects settings that cannot work, with the reason.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if !self.service_path.starts_with('/') {
            return Err(ConfigError::Invalid(
                "service_path must start with /".into(),
            ));
        }
        if self.xsd_versions.is_empty() {
            return Err(ConfigError::Invalid(
                "xsd_versions needs at least one version".into(),
            ));
        }
        if self.header_timeout_secs == 0
            || self.body_idle_timeout_secs == 0
            || self.body_timeout_secs == 0
        {
            return Err(ConfigError::Invalid(
                "header and body timeouts must be positive".into(),
            ));
        }
        if self.preauth_timeout_secs == 0 || self.body_rate_window_secs == 0 {
            return Err(ConfigError::Invalid(
                "preauth_timeout_secs and body_rate_window_secs must be positive".into(),
            ));
        }
        if !(16 << 10..=64 << 20).contains(&self.preauth_max_bytes) {
            return Err(ConfigError::Invalid(
                "preauth_max_bytes must be between 16 KiB and 64 MiB (the autorisatie header and school block fit in a few KiB)".into(),
            ));
        }
        if self.preauth_memory_mib == 0 {
            return Err(ConfigError::Invalid(
                "preauth_memory_mib must be positive".into(),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls_cert and tls_key go together".into(),
            ));
        }
        if self.auth_max_failures == 0 || self.auth_lockout_secs == 0 {
            return Err(ConfigError::Invalid(
                "auth_max_failures and auth_lockout_secs must be positive".into(),
            ));
        }
        if self.auth_klantcode_max_failures < self.auth_max_failures {
            return Err(ConfigError::Invalid(
                "auth_klantcode_max_failures must be at least auth_max_failures".into(),
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::Invalid(
                "max_body_bytes must be positive".into(),
            ));
        }
        self.xapi_mapping()?;
        if !(1..=1000).contains(&self.xapi_batch_size) {
            return Err(ConfigError::Invalid(
                "xapi_batch_size must be 1..=1000".into(),
            ));
        }
        if !(1..=1 << 20).contains(&self.wal_restart_mib) {
            return Err(ConfigError::Invalid(
                "wal_restart_mib must be 1..=1048576".into(),
            ));
        }
        if self.xapi_request_timeout_secs == 0
            || self.xapi_poll_interval_ms == 0
            || self.xapi_max_backoff_secs == 0
        {
            return Err(ConfigError::Invalid(
                "xapi timeouts and intervals must be positive".into(),
            ));
        }
        if self.xapi_authority_name.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "xapi_authority_name must not be empty".into(),
            ));
        }
        if let Some(mbox) = &self.xapi_authority_mbox {
            let address = mbox.strip_prefix("mailto:").unwrap_or("");
            if !address.contains('@') || address.chars().any(char::is_whitespace) {
                return Err(ConfigError::Invalid(format!(
                    "xapi_authority_mbox must be a mailto: IRI, not {mbox}"
                )));
            }
        }
        for origin in &self.xapi_cors_origins {
            let well_formed = origin == "*"
                || ((origin.starts_with("https://") || origin.starts_with("http://"))
                    && origin.split_once("://").is_some_and(|(_, host)| {
                        !host.is_empty()
                            && !host.contains('/')
                            && !host.contains(char::is_whitespace)
                    }));
            if !well_formed {
                return Err(ConfigError::Invalid(format!(
                    "xapi_cors_origins: {origin} is not an origin (scheme://host[:port], or *)"
                )));
            }
        }
        self.check_database()?;
        if let Some(token) = &self.admin_token {
            if token.expose().len() < 16 {
                return Err(ConfigError::Invalid(
                    "admin_token needs at least 16 characters".into(),
                ));
            }
        }
        Ok(())
    }

    /// PostgreSQL needs a URL that parses; SQLite ignores the PostgreSQL settings. The
    /// error names the problem, never the URL (it may hold a password).
    fn check_database(&self) -> Result<(), ConfigError> {
        if self.store != Engine::Postgres {
            return Ok(());
        }
        let Some(url) = &self.database_url else {
            return Err(ConfigError::Invalid(
                "store = \"postgres\" needs database_url (UWLR_DATABASE_URL)".into(),
            ));
        };
        crate::store::postgres::parse_url(url.expose())
            .map_err(|error| ConfigError::Invalid(error.to_string()))?;
        if !(1..=1000).contains(&self.database_pool_size) {
            return Err(ConfigError::Invalid(
                "database_pool_size must be 1..=1000".into(),
            ));
        }
        Ok(())
    }

    /// The xAPI mapping settings (base IRI and id namespace).
    pub(crate) fn xapi_mapping(&self) -> Result<crate::bridge::Mapping, ConfigError> {
        crate::bridge::Mapping::new(&self.xapi_base_iri)
            .map_err(|error| ConfigError::Invalid(error.to_string()))
    }

    /// Settings of the delivery worker.
    pub(crate) fn delivery(&self) -> crate::bridge::delivery::DeliveryConfig {
        use std::time::Duration;
        crate::bridge::delivery::DeliveryConfig {
            batch_size: self.xapi_batch_size,
            request_timeout: Duration::from_secs(self.xapi_request_timeout_secs),
            poll_interval: Duration::from_millis(self.xapi_poll_interval_ms),
            base_backoff: Duration::from_millis(self.xapi_base_backoff_ms.max(1)),
            max_backoff: Duration::from_secs(self.xapi_max_backoff_secs),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs.min(10)),
        }
    }

    /// `aanmaakdatum_max_skew_secs` as a duration (at most a century: any more means no limit).
    pub(crate) fn aanmaakdatum_max_skew(&self) -> chrono::Duration {
        const CENTURY_SECS: u64 = 100 * 366 * 86_400;
        chrono::Duration::seconds(self.aanmaakdatum_max_skew_secs.min(CENTURY_SECS) as i64)
    }

    /// The failed-authentication limiter these settings describe.
    pub(crate) fn auth_limiter(&self) -> crate::auth_limit::AuthLimiter {
        crate::auth_limit::AuthLimiter::new(crate::auth_limit::AuthLimits {
            max_failures: self.auth_max_failures,
            klantcode_max_failures: self.auth_klantcode_max_failures,
            lockout: std::time::Duration::from_secs(self.auth_lockout_secs),
        })
    }

    /// The URL senders use for the SOAP endpoint.
    pub(crate) fn endpoint_url(&self, local: SocketAddr) -> String {
        let scheme = if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let base = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{local}"));
        format!("{}{}", base.trim_end_matches('/'), self.service_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        let mut config: Config =
            toml::from_str("listen = \"127.0.0.1:9000\"\nunknown_leerling = \"quarantine\"")
                .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.unknown_leerling, UnknownLeerlingPolicy::Quarantine);
        config
            .apply_env(|name| match name {
                "UWLR_LISTEN" => Some("127.0.0.1:9100".into()),
                "UWLR_DURABILITY" => Some("normal".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.listen.port(), 9100);
        assert_eq!(config.durability, Durability::Normal);
        assert!(config
            .apply_env(|name| (name == "UWLR_DURABILITY").then(|| "sometimes".into()))
            .is_err());
    }

    #[test]
    fn xapi_settings() {
        let mut config = Config::default();
        config
            .apply_env(|name| {
                (name == "UWLR_XAPI_BASE_IRI").then(|| "https://lrs.school.example/xapi/".into())
            })
            .unwrap();
        assert_eq!(
            config.xapi_mapping().unwrap().base_iri(),
            "https://lrs.school.example/xapi"
        );
        config.xapi_base_iri = "not an iri".into();
        assert!(config.check().is_err());
        assert!(Config::default().check().is_ok());
    }

    #[test]
    fn xapi_read_side_settings() {
        let mut config: Config =
            toml::from_str("xapi_cors_origins = [\"https://a.example\"]").unwrap();
        assert_eq!(config.xapi_cors_origins, ["https://a.example"]);
        config
            .apply_env(|name| match name {
                "UWLR_XAPI_AUTHORITY_NAME" => Some("Toetsdata".into()),
                "UWLR_XAPI_AUTHORITY_MBOX" => Some("mailto:lrs@toetsdata.example".into()),
                "UWLR_XAPI_CORS_ORIGINS" => Some("https://b.example, http://c.example:8080".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.xapi_authority_name, "Toetsdata");
        assert_eq!(
            config.xapi_cors_origins,
            ["https://b.example", "http://c.example:8080"]
        );
        assert!(config.check().is_ok());
        let refused = |change: &dyn Fn(&mut Config)| {
            let mut config = Config::default();
            change(&mut config);
            config.check().is_err()
        };
        assert!(refused(&|c| c.xapi_authority_name = " ".into()));
        assert!(refused(
            &|c| c.xapi_authority_mbox = Some("lrs@x.example".into())
        ));
        assert!(refused(
            &|c| c.xapi_cors_origins = vec!["https://a.example/path".into()]
        ));
        assert!(refused(&|c| c.xapi_cors_origins = vec!["a.example".into()]));
        assert!(!refused(&|c| c.xapi_cors_origins = vec!["*".into()]));
    }

    #[test]
    fn wal_restart_size_comes_from_the_environment_and_must_be_positive() {
        let mut config = Config::default();
        assert_eq!(config.wal_restart_mib, 512);
        config
            .apply_env(|name| (name == "UWLR_WAL_RESTART_MIB").then(|| "64".into()))
            .unwrap();
        assert_eq!(config.wal_restart_mib, 64);
        assert!(config.check().is_ok());
        config.wal_restart_mib = 0;
        assert!(config.check().is_err());
    }

    #[test]
    fn the_klantcode_wide_limit_comes_from_the_environment_and_is_not_below_the_other() {
        let mut config = Config::default();
        assert_eq!(
            (config.auth_max_failures, config.auth_klantcode_max_failures),
            (10, 100)
        );
        config
            .apply_env(|name| (name == "UWLR_AUTH_KLANTCODE_MAX_FAILURES").then(|| "500".into()))
            .unwrap();
        assert_eq!(config.auth_klantcode_max_failures, 500);
        assert!(config.check().is_ok());
        config.auth_klantcode_max_failures = 5;
        assert!(config.check().is_err());
    }

    #[test]
    fn preauthentication_limits_come_from_the_environment_and_are_checked() {
        let mut config = Config::default();
        let values = [
            ("UWLR_MAX_CONNECTIONS_PER_ADDRESS", "8"),
            ("UWLR_MIN_BODY_BYTES_PER_SEC", "512"),
            ("UWLR_BODY_RATE_WINDOW_SECS", "5"),
            ("UWLR_PREAUTH_TIMEOUT_SECS", "3"),
            ("UWLR_PREAUTH_MAX_BYTES", "65536"),
            ("UWLR_PREAUTH_MEMORY_MIB", "32"),
            ("UWLR_SPOOL_MAX_MIB", "100"),
            ("UWLR_SPOOL_MAX_PER_ADDRESS_MIB", "50"),
        ];
        config
            .apply_env(|name| {
                values
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| value.to_string())
            })
            .unwrap();
        assert_eq!(
            (
                config.max_connections_per_address,
                config.min_body_bytes_per_sec,
                config.body_rate_window_secs,
                config.preauth_timeout_secs,
                config.preauth_max_bytes,
                config.preauth_memory_mib,
                config.spool_max_mib,
                config.spool_max_per_address_mib
            ),
            (8, 512, 5, 3, 65536, 32, 100, 50)
        );
        assert!(config.check().is_ok());
        for broken in [
            Config {
                preauth_max_bytes: 1024,
                ..config.clone()
            },
            Config {
                preauth_timeout_secs: 0,
                ..config.clone()
            },
            Config {
                preauth_memory_mib: 0,
                ..config.clone()
            },
        ] {
            assert!(broken.check().is_err());
        }
    }

    /// Each variable is named after the key it overrides, and the README's configuration
    /// block lists exactly these variables.
    #[test]
    fn every_environment_variable_names_its_key_and_is_documented() {
        let readme = include_str!("../README.md");
        let start = readme
            .find("### Configuration")
            .expect("a configuration section");
        let block = &readme[start..];
        let block = &block[..block.find("\n```\n").expect("the end of the TOML block")];
        let documented: std::collections::BTreeSet<&str> = block
            .split(|character: char| !(character.is_ascii_alphanumeric() || character == '_'))
            .filter(|word| word.starts_with("UWLR_") && word.len() > "UWLR_".len())
            .collect();
        let table: std::collections::BTreeSet<&str> = ENV_KEYS.iter().map(|key| key.name).collect();
        assert_eq!(table.len(), ENV_KEYS.len(), "a variable is listed twice");
        for key in ENV_KEYS {
            assert_eq!(key.name, format!("UWLR_{}", key.field.to_uppercase()));
        }
        assert_eq!(documented, table);
    }

    #[test]
    fn postgres_needs_a_url_and_sqlite_ignores_it() {
        let mut config = Config::default();
        config
            .apply_env(|name| match name {
                "UWLR_STORE" => Some("postgres".into()),
                "UWLR_DATABASE_POOL_SIZE" => Some("8".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            (config.store, config.database_pool_size),
            (Engine::Postgres, 8)
        );
        let error = config.check().unwrap_err().to_string();
        assert!(error.contains("database_url"), "{error}");
        config
            .apply_env(|name| {
                (name == "UWLR_DATABASE_URL")
                    .then(|| "postgres://gateway:hunter2@db:port/uwlr".into())
            })
            .unwrap();
        let error = config.check().unwrap_err().to_string();
        assert!(
            error.contains("database_url") && !error.contains("hunter2"),
            "{error}"
        );
        config.database_url = Some(Secret::new("postgres://gateway:hunter2@db:5432/uwlr"));
        assert!(config.check().is_ok());
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(
            crate::store::postgres::redact_url(config.database_url.as_ref().unwrap().expose()),
            "postgres://gateway:***@db:5432/uwlr"
        );
        config.database_pool_size = 0;
        assert!(config.check().is_err());
        let sqlite = Config {
            database_url: Some(Secret::new("not a url at all")),
            database_pool_size: 0,
            ..Config::default()
        };
        assert!(sqlite.check().is_ok());
        assert!(toml::from_str::<Config>("store = \"mysql\"").is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let config = Config {
            admin_token: Some(Secret::new("very-secret-token-123")),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("very-secret"));
    }
}
