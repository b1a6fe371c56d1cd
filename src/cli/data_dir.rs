//! `init` and `backup`: create a data dir, copy one while the gateway runs.

use super::output::Progress;
use super::{load_keyring, open_existing_store, open_store};
use crate::config::Config;
use crate::store::admin;
use crate::store::migrations::SchemaVersions;
use crate::store::session::Session;
use crate::store::Store;
use anyhow::{Context, Result};
use std::path::Path;
use std::process::ExitCode;

pub(super) fn init(config: &Config) -> Result<ExitCode> {
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
    let store = open_existing_store(config)?;
    let session = Session::open(&store)?;
    let started = std::time::Instant::now();
    let progress = Progress::new("backing up", 0);
    let copied = crate::store::backup(&session, file);
    progress.finish();
    copied.with_context(|| {
        format!(
            "cannot back up {} to {}",
            store.path().display(),
            file.display()
        )
    })?;
    admin::audit(&session, "cli", "backup", &file.display().to_string())?;
    let size: u64 = ["gateway.sqlite", "xapi.sqlite"]
        .iter()
        .filter_map(|name| std::fs::metadata(file.join(name)).ok())
        .map(|metadata| metadata.len())
        .sum();
    println!(
        "backed up {} to {} ({size} bytes, {} ms)",
        store.path().display(),
        file.display(),
        started.elapsed().as_millis()
    );
    Ok(ExitCode::SUCCESS)
}
