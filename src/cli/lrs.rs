//! `lrs`: the Learning Record Stores that receive statements.

use super::args::{LrsAddArgs, LrsCommand};
use super::{connect, connect_read_only, load_keyring, read_secret_line};
use crate::config::Config;
use crate::domain::SchoolCode;
use crate::store::outbox as rows;
use crate::store::session::Session;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::ExitCode;

/// Reads and checks an `lrs add --ca-file`; its certificates, normalised, are what is stored.
fn read_ca_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .with_context(|| format!("--ca-file: cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(crate::bridge::trust::MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("--ca-file: cannot read {}", path.display()))?;
    if bytes.len() as u64 > crate::bridge::trust::MAX_CA_FILE_BYTES {
        bail!(
            "--ca-file: {} is larger than {} bytes, which no CA certificate file is",
            path.display(),
            crate::bridge::trust::MAX_CA_FILE_BYTES
        );
    }
    crate::bridge::trust::check_ca_pem(&bytes)
        .with_context(|| format!("--ca-file {}", path.display()))
}

pub(super) fn run(config: &Config, command: LrsCommand) -> Result<ExitCode> {
    match command {
        LrsCommand::Add(args) => add(config, args)?,
        LrsCommand::List { json } => list(&connect_read_only(config)?, json)?,
        LrsCommand::Remove { name } => {
            let session = connect(config)?;
            if !rows::remove_subscription(&session, &name)? {
                bail!("no LRS named {name}");
            }
            println!("LRS {name} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn add(config: &Config, args: LrsAddArgs) -> Result<()> {
    let session = connect(config)?;
    let password = match args.password_file {
        Some(path) => Some(read_secret_line(&path, "password")?),
        None => args.password,
    };
    let schools = args
        .schools
        .iter()
        .map(|code| {
            SchoolCode::parse(code)
                .map(|code| code.as_str().to_string())
                .map_err(anyhow::Error::msg)
        })
        .collect::<Result<Vec<_>>>()?;
    let ca_pem = match &args.ca_file {
        Some(path) => Some(read_ca_file(path)?),
        None => None,
    };
    let new = rows::NewSubscription {
        name: args.name,
        url: args.url,
        username: args.username,
        password: password.map(crate::secret::Secret::new),
        identity: args.identity.as_str().to_string(),
        schools,
        toetscodes: args.toetscodes,
        from_now: args.from_now,
        ca_pem,
    };
    crate::bridge::subscriptions::check_new(&new, args.allow_plain_http)?;
    if new.url.starts_with("http://") && args.allow_plain_http {
        eprintln!(
            "warning: statements{} for {} go over plain http",
            if new.password.is_some() {
                " and credentials"
            } else {
                ""
            },
            new.name
        );
    }
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
    let keyring = load_keyring(config, true)?;
    rows::add_subscription(&session, &new, &key, &keyring)?;
    let trust = match &new.ca_pem {
        Some(pem) => format!(
            ", trusting {} CA certificate(s) from {} besides the system's",
            crate::bridge::trust::fingerprints(pem).len(),
            args.ca_file.as_deref().unwrap_or(Path::new("-")).display()
        ),
        None => String::new(),
    };
    println!(
        "LRS {} added: {} ({} identity{trust}); a running gateway picks it up within {} ms",
        new.name, new.url, new.identity, config.xapi_poll_interval_ms
    );
    Ok(())
}

fn list(session: &Session, json: bool) -> Result<()> {
    for row in rows::list_subscriptions(session)? {
        if json {
            // Built here, not derived: the row holds the sealed password.
            let line = serde_json::json!({
                "name": row.name,
                "url": row.url,
                "username": row.username,
                "password_set": row.password.is_some(),
                "identity": row.identity,
                "schools": row.schools,
                "toetscodes": row.toetscodes,
                "ca_sha256": row.ca_pem.as_deref().map(crate::bridge::trust::fingerprints),
            });
            println!("{line}");
            continue;
        }
        let list = |items: &[String]| {
            if items.is_empty() {
                "all".to_string()
            } else {
                items.join(",")
            }
        };
        let ca = match &row.ca_pem {
            Some(pem) => format!(
                " ca {}",
                crate::bridge::trust::fingerprints(pem)
                    .iter()
                    .map(|fingerprint| format!("sha256:{fingerprint}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            None => String::new(),
        };
        println!(
            "{:<16} {:<50} user {:<12} password {:<4} identity {:<9} schools {} toetscodes {}{ca}",
            row.name,
            row.url,
            row.username.as_deref().unwrap_or("-"),
            if row.password.is_some() { "set" } else { "-" },
            row.identity,
            list(&row.schools),
            list(&row.toetscodes)
        );
    }
    Ok(())
}
