//! The PostgreSQL engine (issue 12): its connection settings, TLS (`tls`), sessions (`session`), the engine behind `Store` (`engine`) and its versioned schema (`migrations`).
//!
//! Everything that touches a PostgreSQL server lives here, as everything that touches
//! SQLite lives in the rest of `store/`. The database URL carries a password: it is kept in
//! a `Secret` and shown only through `redact_url`.

pub(crate) mod engine;
pub(crate) mod migrations;
pub(crate) mod session;
pub(crate) mod tls;

use super::StoreError;
use crate::secret::Secret;
use std::str::FromStr as _;
use std::time::Duration;

/// A PostgreSQL database as `init` and `migrate` reach it: its parsed settings and the
/// redacted URL that names it in output and errors.
pub(crate) struct Database {
    config: tokio_postgres::Config,
    shown: String,
}

impl Database {
    /// Parses `url` without connecting.
    pub(crate) fn new(url: &Secret) -> Result<Database, StoreError> {
        Ok(Database {
            config: parse_url(url.expose())?,
            shown: format!("PostgreSQL database {}", redact_url(url.expose())),
        })
    }

    /// "PostgreSQL database postgres://user:***@host/db", for output.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// The schema version found (0 on an empty database); creates and locks nothing.
    pub(crate) async fn version(&self) -> Result<usize, StoreError> {
        let connection = self.connect().await?;
        let version = migrations::version(&connection.client).await;
        connection.close().await;
        version
    }

    /// Applies the pending migrations (`TooNew` for a database a newer gateway migrated).
    pub(crate) async fn migrate(&self) -> Result<migrations::Migrated, StoreError> {
        let mut connection = self.connect().await?;
        let migrated = migrations::migrate(&mut connection.client, &self.shown).await;
        connection.close().await;
        migrated
    }

    /// One connection, driven by a task of its own on the current runtime.
    async fn connect(&self) -> Result<Connection, StoreError> {
        let (client, driver) = tls::connect(&self.config).await?;
        Ok(Connection { client, driver })
    }
}

/// A client and the task that drives its socket.
struct Connection {
    client: tokio_postgres::Client,
    driver: tokio::task::JoinHandle<()>,
}

impl Connection {
    /// Ends the session cleanly (the server logs no lost client): without its client the
    /// connection sends Terminate and its task ends.
    async fn close(self) {
        drop(self.client);
        let _ = self.driver.await;
    }
}

/// Whether trying again later may succeed: no answer from the server at all (connection
/// refused or lost), or one of the SQLSTATEs of contention and overload.
pub(crate) fn is_transient(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    match error.code() {
        Some(code) => [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::QUERY_CANCELED,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::READ_ONLY_SQL_TRANSACTION,
        ]
        .contains(code),
        // No SQLSTATE: transient only when the connection itself failed (closed, or an I/O
        // error such as a refused or reset connection); a value that does not bind or a
        // column that does not decode fails again on every try.
        None => {
            error.is_closed() || has_io_source(error) || error.to_string().starts_with("timeout")
        }
    }
}

/// Whether an I/O error lies in the error's causes.
fn has_io_source(error: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// A PostgreSQL error for logs and output: the server's SQLSTATE, message, detail and
/// hint when it answered, else the client's error with its cause (never the URL).
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{} ({})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        return text;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// How long a connection attempt may take when the URL does not say (`connect_timeout`).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses a database URL (`postgres://user:password@host:port/db?…`, or libpq's
/// `key=value` form) without connecting; the error names the problem, never the URL.
pub(crate) fn parse_url(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config = tokio_postgres::Config::from_str(url).map_err(|error| {
        StoreError::invalid_input(
            "database_url",
            format!("not a PostgreSQL connection string ({error})"),
        )
    })?;
    if config.get_hosts().is_empty() {
        return Err(StoreError::invalid_input(
            "database_url",
            "names no host (postgres://user:password@host:port/database)",
        ));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("uwlr-gateway");
    }
    Ok(config)
}

/// The URL with its password replaced by `***`, for output and logs: in the userinfo of a
/// `postgres://` URL, in a `password=` query parameter, and in libpq's `password=` keyword.
pub(crate) fn redact_url(url: &str) -> String {
    let scheme_end = ["postgres://", "postgresql://"]
        .iter()
        .find(|scheme| url.starts_with(*scheme))
        .map(|scheme| scheme.len());
    let Some(scheme_end) = scheme_end else {
        return redact_keywords(url);
    };
    let (head, query) = match url[scheme_end..].find('?') {
        Some(at) => url.split_at(scheme_end + at),
        None => (url, ""),
    };
    let mut redacted = match head[scheme_end..].rfind('@') {
        Some(at) => {
            let userinfo = &head[scheme_end..scheme_end + at];
            let user = match userinfo.find(':') {
                Some(colon) => format!("{}:***", &userinfo[..colon]),
                None => userinfo.to_string(),
            };
            format!("{}{user}{}", &head[..scheme_end], &head[scheme_end + at..])
        }
        None => head.to_string(),
    };
    if !query.is_empty() {
        let parameters: Vec<String> = query[1..]
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => {
                    format!("{name}=***")
                }
                _ => parameter.to_string(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&parameters.join("&"));
    }
    redacted
}

/// libpq's `key=value` form with the value of `password` (quoted or not) replaced.
fn redact_keywords(text: &str) -> String {
    let mut redacted = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find_password_keyword(rest) {
        let (before, after) = rest.split_at(at);
        redacted.push_str(before);
        let value = after["password".len()..].trim_start();
        let value = value.strip_prefix('=').unwrap_or(value).trim_start();
        redacted.push_str("password=***");
        rest = skip_value(value);
    }
    redacted.push_str(rest);
    redacted
}

/// Where a `password` keyword (followed by `=`) starts, at a word boundary.
fn find_password_keyword(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("password") {
        let at = from + found;
        let boundary = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let followed = lower[at + "password".len()..].trim_start().starts_with('=');
        if boundary && followed {
            return Some(at);
        }
        from = at + "password".len();
    }
    None
}

/// What follows one keyword value: a quoted value ends at its closing quote (`\'` escaped),
/// a bare one at white space.
fn skip_value(value: &str) -> &str {
    if let Some(quoted) = value.strip_prefix('\'') {
        let mut escaped = false;
        for (index, character) in quoted.char_indices() {
            match character {
                '\\' if !escaped => escaped = true,
                '\'' if !escaped => return &quoted[index + 1..],
                _ => escaped = false,
            }
        }
        ""
    } else {
        let end = value.find(char::is_whitespace).unwrap_or(value.len());
        &value[end..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, expected: &str) {
        assert_eq!(redact_url(url), expected, "{url}");
    }

    #[test]
    fn passwords_are_redacted_in_every_form() {
        check(
            "postgres://gateway:s3cret@db.example:5432/uwlr",
            "postgres://gateway:***@db.example:5432/uwlr",
        );
        check(
            "postgresql://gateway:p@ss:w@rd@db/uwlr?sslmode=require",
            "postgresql://gateway:***@db/uwlr?sslmode=require",
        );
        check(
            "postgres://db/uwlr?user=gateway&password=s3cret&sslmode=disable",
            "postgres://db/uwlr?user=gateway&password=***&sslmode=disable",
        );
        check("postgres://gateway@db/uwlr", "postgres://gateway@db/uwlr");
        check(
            "host=db user=gateway password=s3cret dbname=uwlr",
            "host=db user=gateway password=*** dbname=uwlr",
        );
        check(
            "host=db password = 'it\\'s secret' dbname=uwlr",
            "host=db password=*** dbname=uwlr",
        );
    }

    #[test]
    fn urls_are_checked_without_connecting() {
        assert!(parse_url("postgres://gateway:pw@127.0.0.1:5432/uwlr").is_ok());
        let error = parse_url("postgres://gateway:pw@db:notaport/uwlr").unwrap_err();
        assert!(!error.to_string().contains("pw"), "{error}");
        assert!(parse_url("dbname=uwlr").is_err());
    }
}
