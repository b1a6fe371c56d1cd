//! Command line: raw flags become a checked `Config`, then one command group's module runs.

mod args;
mod audit;
mod clients;
mod data_dir;
mod governance;
mod learners;
mod lrs;
mod outbox;
mod output;
mod readers;
mod receipts;
mod schools;
mod secrets;
mod serve;
mod tools;
mod validate;

use args::{Cli, Command};
use output::error_chain;

use crate::app::{load_keyring, open_store};
use crate::config::Config;
use crate::store::session::Session;
use crate::store::Store;
use anyhow::{bail, Context, Result};
use clap::Parser;
use std::path::Path;
use std::process::ExitCode;

/// Parses arguments, runs the command, and turns errors into an exit code.
pub fn main() -> ExitCode {
    // Everything the gateway creates (data dir, databases, spool, backups, key file) is for
    // its own user only, whatever umask it was started with.
    // SAFETY: umask only sets the process's file mode mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. } | Command::Replay { .. }) {
        // A reader that stops early (`| head`) ends the command quietly, as other Unix tools
        // do, instead of a panic in println!. Not for the subcommands with sockets, where
        // SIGPIPE would end the process on a peer's closed connection.
        // SAFETY: restores the default disposition of one signal before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(data_dir) = &cli.data_dir {
        config.data_dir = data_dir.clone();
    }
    crate::store::postgres::tls::set_ca_file(config.database_ca_file.clone());
    Ok(config)
}

/// A session on the existing database of `config`, for subcommands that change it.
fn connect(config: &Config) -> Result<Session> {
    Ok(Session::open(&open_existing_store(config)?)?)
}

/// A read-only session on the existing database of `config`, for subcommands that only
/// look: they work on a data dir they may not write and never migrate it.
fn connect_read_only(config: &Config) -> Result<Session> {
    if config.store == crate::store::Engine::Postgres {
        return connect(config);
    }
    Session::open_read_only(&config.data_dir)
        .with_context(|| format!("cannot open the database in {}", config.data_dir.display()))
}

/// One secret line from a file or standard input ("-"), without its line ending; refuses an
/// empty value and white space around it (a key with a stray space would never match).
fn read_secret_line(path: &Path, what: &str) -> Result<String> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .with_context(|| format!("cannot read the {what} from standard input"))?;
        text
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the {what} from {}", path.display()))?
    };
    let line = text
        .strip_suffix('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .unwrap_or(&text);
    if line.is_empty() || line.contains('\n') {
        bail!("the {what} must be one non-empty line");
    }
    if line.trim() != line {
        bail!("the {what} starts or ends with white space");
    }
    Ok(line.to_string())
}

/// Opens the data dir of `config`, which must exist.
fn open_existing_store(config: &Config) -> Result<Store> {
    if config.store == crate::store::Engine::Postgres {
        return open_postgres(config);
    }
    Store::open_existing(
        &config.data_dir,
        config.durability,
        config.wal_restart_mib << 20,
    )
    .with_context(|| format!("cannot open the database in {}", config.data_dir.display()))
}

/// Connects to the PostgreSQL database of `config` (checked to name one) and migrates it,
/// with two writer sessions: a subcommand writes little, and `serve` opens its own store
/// with `database_pool_size` (`open_postgres_pool`).
pub(crate) fn open_postgres(config: &Config) -> Result<Store> {
    open_postgres_pool(config, 2)
}

/// `open_postgres` with `pool_size` writer sessions.
pub(crate) fn open_postgres_pool(config: &Config, pool_size: usize) -> Result<Store> {
    let url = config
        .database_url
        .as_ref()
        .context("store = \"postgres\" needs database_url (UWLR_DATABASE_URL)")?;
    Ok(Store::open_postgres(url, pool_size)?)
}

/// Runs one parsed command line: each command group lives in its own module.
fn run(cli: Cli) -> Result<ExitCode> {
    let config = load_config(&cli)?;
    match cli.command {
        Command::Init => data_dir::init(&config),
        Command::Migrate { check } => data_dir::migrate(&config, check),
        Command::Backup { file } => data_dir::backup(&config, &file),
        Command::Completions { shell } => tools::completions(shell),
        Command::Man { out } => tools::man(out.as_deref()),
        Command::Replay(args) => tools::replay(args),
        Command::Generate(args) => tools::generate(args),
        Command::Serve { listen, demo } => serve::run(config, listen, demo),
        Command::Validate { files } => validate::run(&config, &files),
        Command::Clients(command) => clients::run(&config, command),
        Command::Schools(command) => schools::run(&config, command),
        Command::Leerlingen(command) => learners::run(&config, command),
        Command::Receipts(command) => receipts::run(&config, command),
        Command::Readers(command) => readers::run(&config, command),
        Command::Audit(args) => audit::run(&config, args),
        Command::Lrs(command) => lrs::run(&config, command),
        Command::Outbox(command) => outbox::run(&config, command),
        Command::Secrets(command) => secrets::run(&config, command),
        Command::Purge {
            dry_run: _,
            now,
            json,
        } => governance::purge(&config, now, json),
        Command::Disclosures { school, json } => governance::disclosures(&config, &school, json),
    }
}
