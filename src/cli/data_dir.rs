//! `init` and `backup`: create a data dir, copy one while the gateway runs.

use super::output::Progress;
use super::{load_keyring, open_existing_store, open_store};
use crate::config::Config;
use crate::store::admin;
use crate::store::session::Session;
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
