//! `init` and `backup`: create a data dir, copy one while the gateway runs.

use super::output::Progress;
use super::{load_keyring, open_existing_store, open_store};
use crate::config::Config;
use crate::store::admin;
use crate::store::migrations::SchemaVersions;
use crate::store::postgres::migrations::VERSION as POSTGRES_VERSION;
use crate::store::postgres::Database;
use crate::store::session::Session;
use crate::store::{Engine, Store};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::ExitCode;

pub(super) fn init(config: &Config) -> Result<ExitCode> {
    if let Some(database) = postgres(config)? {
        return init_postgres(&database);
    }
    let existed = config.data_dir.join("gateway.sqlite").is_file();
    let store = open_store(config)?;
    store.close();
    load_keyring(config, true)?;
    if existed {
        println!(
            "data dir {} is ready (it existed already)",
            config.data_dir.display()
        );
    } else {
        println!("data dir {} created", config.data_dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `migrate`: applies the pending migrations under the data-dir lock, or (`check`) reports
/// each file's version and fails while migrations are pending.
pub(super) fn migrate(config: &Config, check: bool) -> Result<ExitCode> {
    if let Some(database) = postgres(config)? {
        return migrate_postgres(&database, check);
    }
    let data_dir = &config.data_dir;
    let cannot = || format!("cannot migrate the database in {}", data_dir.display());
    if check {
        let found = SchemaVersions::read(data_dir).with_context(cannot)?;
        found.refuse_newer(data_dir).with_context(cannot)?;
        for (file, found, needed) in found.files() {
            let state = if found < needed { "pending" } else { "current" };
            println!("{file}: schema version {found}, this gateway needs {needed} ({state})");
        }
        if found.pending() {
            println!("migrations are pending: run `uwlr-gateway migrate`");
            return Ok(ExitCode::FAILURE);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (before, after) =
        Store::migrate_existing(data_dir, config.durability, config.wal_restart_mib << 20)
            .with_context(cannot)?;
    for ((file, from, _), (_, to, _)) in before.files().into_iter().zip(after.files()) {
        if from == to {
            println!("{file}: schema version {to}, current");
        } else {
            println!("{file}: migrated from schema version {from} to {to}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn backup(config: &Config, file: &Path) -> Result<ExitCode> {
    if config.store == Engine::Postgres {
        bail!(
            "store = \"postgres\": `backup` copies the SQLite files only; back up the PostgreSQL \
             database with its own tools instead: pg_dump for a logical copy, or pg_basebackup \
             with WAL archiving for a base backup that can be restored to a point in time"
        );
    }
    let store = open_existing_store(config)?;
    let session = Session::open(&store)?;
    let started = std::time::Instant::now();
    let progress = Progress::new("backing up", 0);
    let copied = crate::store::backup(&session, file);
    progress.finish();
    copied.with_context(|| format!("cannot back up {} to {}", store.location(), file.display()))?;
    admin::audit(&session, "cli", "backup", &file.display().to_string())?;
    let size: u64 = ["gateway.sqlite", "xapi.sqlite"]
        .iter()
        .filter_map(|name| std::fs::metadata(file.join(name)).ok())
        .map(|metadata| metadata.len())
        .sum();
    println!(
        "backed up {} to {} ({size} bytes, {} ms)",
        store.location(),
        file.display(),
        started.elapsed().as_millis()
    );
    Ok(ExitCode::SUCCESS)
}

/// The PostgreSQL database of `config`, when `store = "postgres"`.
fn postgres(config: &Config) -> Result<Option<Database>> {
    if config.store != Engine::Postgres {
        return Ok(None);
    }
    let url = config
        .database_url
        .as_ref()
        .context("store = \"postgres\" needs database_url (UWLR_DATABASE_URL)")?;
    Ok(Some(Database::new(url)?))
}

/// `init` on PostgreSQL: the schema, and nothing in the data dir (every instance must use
/// the same secrets key, so none is made here).
fn init_postgres(database: &Database) -> Result<ExitCode> {
    let migrated = block_on(database.migrate())
        .with_context(|| format!("cannot initialise the {}", database.shown()))?;
    match migrated.before {
        0 => println!(
            "{} created (schema version {})",
            database.shown(),
            migrated.after
        ),
        _ => println!(
            "{} is ready (it existed already, schema version {})",
            database.shown(),
            migrated.after
        ),
    }
    println!("every instance needs the same secrets key: set secrets_key_file or UWLR_SECRETS_KEY");
    Ok(ExitCode::SUCCESS)
}

/// `migrate [--check]` on PostgreSQL: as on SQLite, with one schema version for the database.
fn migrate_postgres(database: &Database, check: bool) -> Result<ExitCode> {
    let shown = database.shown();
    let cannot = || format!("cannot migrate the {shown}");
    if check {
        let found = block_on(database.version()).with_context(cannot)?;
        crate::store::postgres::migrations::refuse_newer(found, shown).with_context(cannot)?;
        let state = if found < POSTGRES_VERSION {
            "pending"
        } else {
            "current"
        };
        println!(
            "{shown}: schema version {found}, this gateway needs {POSTGRES_VERSION} ({state})"
        );
        if found < POSTGRES_VERSION {
            println!("migrations are pending: run `uwlr-gateway migrate`");
            return Ok(ExitCode::FAILURE);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let migrated = block_on(database.migrate()).with_context(cannot)?;
    if migrated.before == migrated.after {
        println!("{shown}: schema version {}, current", migrated.after);
    } else {
        println!(
            "{shown}: migrated from schema version {} to {}",
            migrated.before, migrated.after
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs one PostgreSQL operation of the store on a runtime of its own: the CLI is synchronous.
fn block_on<T>(
    operation: impl std::future::Future<Output = Result<T, crate::store::StoreError>>,
) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    Ok(runtime.block_on(operation)?)
}
