//! Command line: raw flags become a checked `Config`, then each subcommand runs.

use crate::config::Config;
use crate::domain::{Rule, SchoolCode};
use crate::intake::{Intake, IntakeConfig};
use crate::store::{admin, Store};
use crate::vdex::Vocabularies;
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// uwlr-gateway: receives UWLR 2.2 BrengLeerresultaten messages and keeps them in SQLite.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    /// TOML configuration file (settings there are overridden by UWLR_* variables and flags).
    #[arg(long, global = true, env = "UWLR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Folder with the database; every subcommand must get the same one as `serve`.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the SOAP service.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Seed the demo client, school and learners that samples/ uses.
        #[arg(long)]
        demo: bool,
    },
    /// Check files offline: everything that needs no store (schema with every identity constraint,
    /// xsdversie, vocabularies, normeringen, onderdelen and scores against toetsen in the same
    /// message); exit 0 only if all are valid.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Manage sending clients (EAs).
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Manage which client may send for which school.
    #[command(subcommand)]
    Schools(SchoolsCommand),
    /// Manage known learners.
    #[command(subcommand)]
    Leerlingen(LeerlingenCommand),
    /// Show what happened to received messages.
    #[command(subcommand)]
    Receipts(ReceiptsCommand),
    /// Manage reader clients of the read API (LAS feed, xAPI statements).
    #[command(subcommand)]
    Readers(ReadersCommand),
    /// Show the audit log: every read through the read API and every administrative action, newest first.
    Audit {
        /// Only reads by this reader.
        #[arg(long)]
        reader: Option<String>,
        /// Only reads of this school (written as 99XX, 99XX01 or the schoolkey).
        #[arg(long)]
        school: Option<String>,
        /// Only reads that returned records of this leerlingid.
        #[arg(long)]
        leerling: Option<String>,
        /// Only reads, no administrative actions.
        #[arg(long)]
        reads: bool,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Copy both database files into the new directory DIR with SQLite's online backup API;
    /// safe while `serve` runs. DIR is a data dir: to restore, stop the gateway and start it
    /// with `--data-dir DIR` (or copy DIR/gateway.sqlite and DIR/xapi.sqlite into the data
    /// dir, removing any -wal and -shm files there first).
    Backup {
        /// Where the copy goes (must not exist); it is written beside it first and renamed when complete.
        #[arg(value_name = "DIR")]
        file: PathBuf,
    },
    /// Send sample files or folders to a gateway and report the answers.
    Replay {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The SOAP endpoint, e.g. http://127.0.0.1:8080/uwlr/leerresultaten.
        #[arg(long, default_value = "http://127.0.0.1:8080/uwlr/leerresultaten")]
        url: String,
        /// Filled into files without an autorisatie header.
        #[arg(long)]
        klantcode: Option<String>,
        #[arg(long)]
        klantnaam: Option<String>,
        #[arg(long)]
        key: Option<String>,
        /// Calls in flight at once (one school's messages still go in file order).
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// At most this many messages per second.
        #[arg(long)]
        rate: Option<f64>,
        /// Shift every file's aanmaakdatum by one offset so the latest is now (order and
        /// spacing kept), written in UTC with `Z`, so the files can be sent again.
        #[arg(long)]
        restamp: bool,
        /// A manifest (samples/manifest.toml) to compare each answer with; exit 1 on any difference.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Seconds to wait for one answer.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// PEM file with certificates to trust for an https:// URL, besides the system's roots.
        #[arg(long, value_name = "PEM")]
        ca_file: Option<PathBuf>,
    },
    /// Write deterministic messages and the matching roster for load tests and benchmarks.
    Generate {
        #[arg(long, default_value_t = 1)]
        schools: u32,
        /// Learners per school.
        #[arg(long, default_value_t = 100)]
        learners: u32,
        /// Distinct toetsen.
        #[arg(long, default_value_t = 10)]
        toetsen: u32,
        /// Results (afname keys) per school.
        #[arg(long, default_value_t = 1000)]
        afnames: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// One message per toetsafname (with versions and corrections) instead of one batch per school.
        #[arg(long)]
        drip: bool,
        #[arg(long, default_value = crate::demo::KLANTCODE)]
        klantcode: String,
        #[arg(long, default_value = crate::demo::KLANTNAAM)]
        klantnaam: String,
        #[arg(long, default_value = crate::demo::AUTORISATIESLEUTEL)]
        key: String,
        /// A folder, or FILE.xml for one batch of one school.
        #[arg(long)]
        out: PathBuf,
    },
    /// Manage the Learning Record Stores that receive accepted results as xAPI statements.
    #[command(subcommand)]
    Lrs(LrsCommand),
    /// Show xAPI delivery (lag, pending per LRS, dead letters) and requeue dead letters.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Manage the key that seals LRS passwords and pseudonym keys in the database.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Remove what is past retention: schools whose last mandate ended more than
    /// retention_days_after_mandate ago, old receipts, audit rows and feed removals.
    Purge {
        /// Only show what would be removed.
        #[arg(long, conflicts_with = "now", required_unless_present = "now")]
        dry_run: bool,
        /// Remove it now (`serve` also does this every purge_interval_secs).
        #[arg(long)]
        now: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The register of disclosures: which readers and LRSs received a school's data, and when.
    Disclosures {
        /// The school (written as 99XX, 99XX01 or the schoolkey).
        #[arg(long)]
        school: String,
        /// Print the register as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Print a new random key (base64), to put on the first line of the key file when rotating.
    NewKey,
    /// Reseal every stored secret under the first key of the key file (after a rotation, or for
    /// a database from before sealing); prints how many values were resealed.
    Rotate,
}

#[derive(Subcommand, Debug)]
pub enum LrsCommand {
    /// Subscribe an LRS; a running gateway starts delivering to it within a poll interval.
    Add {
        name: String,
        /// The LRS statements resource, e.g. https://lrs.example/xAPI/statements.
        #[arg(long)]
        url: String,
        /// HTTP Basic user.
        #[arg(long)]
        username: Option<String>,
        /// HTTP Basic password (or UWLR_LRS_PASSWORD, which keeps it out of the shell history
        /// and the process list; or --password-file).
        #[arg(
            long,
            env = "UWLR_LRS_PASSWORD",
            hide_env_values = true,
            conflicts_with = "password_file"
        )]
        password: Option<String>,
        /// Read the HTTP Basic password from this file ("-" for standard input).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Only results of this school (repeatable; none means every school).
        #[arg(long = "school")]
        schools: Vec<String>,
        /// Only results of this toetscode (repeatable; none means every toets).
        #[arg(long = "toetscode")]
        toetscodes: Vec<String>,
        /// Deliver only statements generated from now on (default: the whole history, oldest first).
        #[arg(long)]
        from_now: bool,
        /// The learner identity this LRS may see.
        #[arg(long, value_enum, default_value_t = crate::bridge::subscriptions::Identity::Eckid)]
        identity: crate::bridge::subscriptions::Identity,
        /// Accept a plain http:// URL to another host (statements and credentials then cross the network unencrypted).
        #[arg(long)]
        allow_plain_http: bool,
    },
    List,
    /// Unsubscribe an LRS; its dead letters go with it.
    Remove {
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum OutboxCommand {
    /// Pending statements, lag and the last answer per LRS.
    Status,
    /// Requeue dead letters (of one LRS, or all) for another delivery attempt.
    Retry {
        #[arg(long)]
        lrs: Option<String>,
    },
    /// Statements an LRS refused, with its answer.
    DeadLetters {
        #[arg(long)]
        lrs: Option<String>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// A read API a reader may use.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeArg {
    /// The LAS feed (`/api/v1/schools/...`).
    Las,
    /// The xAPI statements (`/xapi/...`).
    Xapi,
}

impl From<ScopeArg> for crate::store::readers::Scope {
    fn from(scope: ScopeArg) -> Self {
        match scope {
            ScopeArg::Las => crate::store::readers::Scope::Las,
            ScopeArg::Xapi => crate::store::readers::Scope::Xapi,
        }
    }
}

/// The mandate a reader's access to a school rests on.
#[derive(clap::Args, Debug)]
pub struct MandateArgs {
    /// Reference of the agreement (mandate) under which the school lets this reader read its data.
    #[arg(long)]
    mandate: String,
    /// First day the mandate is valid (YYYY-MM-DD); default today.
    #[arg(long)]
    valid_from: Option<String>,
    /// Last day the mandate is valid (YYYY-MM-DD); access ends by itself after it. Default open-ended.
    #[arg(long)]
    valid_until: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ReadersCommand {
    /// Register a reader; prints its bearer token once, as the last line.
    Add {
        name: String,
        /// A school it may read: 99XX, 99XX01 (brincode + dependancecode) or the schoolkey; repeat for more.
        #[arg(long = "school", required = true)]
        schools: Vec<String>,
        /// An API it may use; repeat or separate with commas.
        #[arg(long = "scope", required = true, value_enum, value_delimiter = ',')]
        scopes: Vec<ScopeArg>,
        #[command(flatten)]
        mandate: MandateArgs,
    },
    /// Let a reader read more schools, or renew a grant under a new mandate.
    Grant {
        name: String,
        #[arg(long = "school", required = true)]
        schools: Vec<String>,
        #[command(flatten)]
        mandate: MandateArgs,
    },
    /// End a reader's access to schools at once.
    Withdraw {
        name: String,
        #[arg(long = "school", required = true)]
        schools: Vec<String>,
    },
    List,
    /// Withdraw a reader: its token stops working at once.
    Revoke {
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClientsCommand {
    /// Register a client; prints its new autorisatiesleutel once.
    Add {
        klantcode: String,
        #[arg(long)]
        klantnaam: String,
        /// Take over a key schools already hold (from an earlier system) instead of generating one.
        /// Visible to other local users in the process list: prefer --key-file.
        #[arg(long, conflicts_with = "key_file")]
        key: Option<String>,
        /// Read the key to take over from this file ("-" for standard input); one line, its
        /// line ending dropped.
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    List,
    /// Withdraw a client: its key stops working at once.
    Revoke {
        klantcode: String,
    },
    /// Forget the last accepted aanmaakdatum of a client for a school, so that its next
    /// message is not refused as out of order (UWLR-VOLGORDE); audited.
    ResetOrdering {
        #[arg(long = "client")]
        klantcode: String,
        /// School: 99XX, 99XX01 (brincode + dependancecode) or the schoolkey.
        #[arg(long)]
        school: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SchoolsCommand {
    /// Let a client send for a school, under the school's processing agreement (mandate).
    Activate {
        /// School: 99XX, 99XX01 (brincode + dependancecode) or the schoolkey.
        school: String,
        #[arg(long)]
        klantcode: String,
        /// Reference of the processing agreement the activation rests on.
        #[arg(long)]
        mandate: String,
        /// First day the mandate is valid (YYYY-MM-DD); default today.
        #[arg(long)]
        valid_from: Option<String>,
        /// Last day the mandate is valid (YYYY-MM-DD); default open-ended.
        #[arg(long)]
        valid_until: Option<String>,
    },
    Deactivate {
        school: String,
        #[arg(long)]
        klantcode: String,
    },
    List,
}

#[derive(Subcommand, Debug)]
pub enum LeerlingenCommand {
    /// Import learners from CSV (school,leerlingid,eckid,naam) or leerlinggegevens_antwoord XML.
    Import { file: PathBuf },
    /// Erase everything about one learner (results, history, quarantine, roster row, statements);
    /// subscribed LRSs get voiding statements. Prints which LRSs held data.
    Erase {
        #[command(flatten)]
        learner: LearnerArgs,
    },
    /// Write everything the gateway holds about one learner as JSON (an access request).
    Export {
        #[command(flatten)]
        learner: LearnerArgs,
        /// Where the JSON goes (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
}

/// One learner of one school, by LAS key or ECK iD.
#[derive(clap::Args, Debug)]
pub struct LearnerArgs {
    /// The school (written as 99XX, 99XX01 or the schoolkey).
    #[arg(long)]
    pub school: String,
    /// The learner's LAS key.
    #[arg(required_unless_present = "eckid", conflicts_with = "eckid")]
    pub leerlingid: Option<String>,
    /// The learner's ECK iD instead of the LAS key.
    #[arg(long)]
    pub eckid: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ReceiptsCommand {
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    Show {
        id: String,
    },
}

/// Parses arguments, runs the command, and turns errors into an exit code.
pub fn main() -> ExitCode {
    // Everything the gateway creates (data dir, databases, spool, backups, key file) is for
    // its own user only, whatever umask it was started with.
    // SAFETY: umask only sets the process's file mode mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(data_dir) = &cli.data_dir {
        config.data_dir = data_dir.clone();
    }
    Ok(config)
}

/// A connection to the database of `config`, for subcommands that work on it directly.
fn connect(config: &Config) -> Result<rusqlite::Connection> {
    Ok(open_store(config)?.connect()?)
}

/// The keys that seal stored secrets; `create` makes the data dir's default key file when missing.
fn load_keyring(config: &Config, create: bool) -> Result<crate::secret::Keyring> {
    Ok(crate::secret::Keyring::load(
        &config.secrets_key_source(),
        create,
    )?)
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

fn open_store(config: &Config) -> Result<Store> {
    Store::open(
        &config.data_dir,
        config.durability,
        config.wal_restart_mib << 20,
    )
    .with_context(|| format!("cannot open the database in {}", config.data_dir.display()))
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let config = load_config(&cli)?;
    match cli.command {
        Command::Serve { listen, demo } => {
            let mut config = config;
            if let Some(listen) = listen {
                config.listen = listen;
            }
            serve(config, demo)
        }
        Command::Validate { files } => validate(&config, &files),
        Command::Clients(command) => clients(&config, command),
        Command::Backup { file } => {
            let store = open_store(&config)?;
            let connection = store.connect()?;
            let started = std::time::Instant::now();
            crate::store::backup(&connection, &file).with_context(|| {
                format!(
                    "cannot back up {} to {}",
                    store.path().display(),
                    file.display()
                )
            })?;
            admin::audit(&connection, "cli", "backup", &file.display().to_string())?;
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
        Command::Schools(command) => schools(&config, command),
        Command::Leerlingen(LeerlingenCommand::Import { file }) => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let rows =
                crate::roster::parse(&bytes).with_context(|| format!("{}", file.display()))?;
            let mut connection = connect(&config)?;
            // IMMEDIATE: take the write lock first, so change seqs cannot interleave with a running gateway's.
            let transaction =
                connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let imported = admin::import_leerlingen(&transaction, &rows, "cli")?;
            let released = crate::bridge::release_quarantine(&transaction)?;
            transaction.commit()?;
            println!("imported {imported} leerlingen; released {released} afnames from quarantine");
            Ok(ExitCode::SUCCESS)
        }
        Command::Leerlingen(LeerlingenCommand::Erase { learner }) => erase(&config, &learner),
        Command::Leerlingen(LeerlingenCommand::Export { learner, out }) => {
            export(&config, &learner, &out)
        }
        Command::Purge {
            dry_run: _,
            now,
            json,
        } => purge(&config, now, json),
        Command::Disclosures { school, json } => disclosures(&config, &school, json),
        Command::Readers(command) => readers(&config, command),
        Command::Audit {
            reader,
            school,
            leerling,
            reads,
            limit,
            json,
        } => {
            let filter = crate::store::readers::AuditFilter {
                reader,
                school: school
                    .as_deref()
                    .map(SchoolCode::parse)
                    .transpose()
                    .map_err(anyhow::Error::msg)?,
                leerling,
                reads_only: reads,
                limit,
            };
            let connection = connect(&config)?;
            for line in crate::store::readers::list_audit(&connection, &filter)? {
                if json {
                    println!("{}", serde_json::to_string(&line)?);
                } else if line.action == "read" {
                    println!(
                        "{}  read    {:<16} {} {:<8} {:>6} records  {} leerlingen  {}",
                        line.at,
                        line.actor,
                        line.status.unwrap_or(0),
                        line.school.as_deref().unwrap_or("-"),
                        line.records.unwrap_or(0),
                        line.leerlingen.as_ref().map_or(0, Vec::len),
                        line.detail
                    );
                } else {
                    println!(
                        "{}  {:<7} {:<16} {}",
                        line.at, line.action, line.actor, line.detail
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Lrs(command) => lrs(&config, command),
        Command::Outbox(command) => outbox(&config, command),
        Command::Secrets(SecretsCommand::NewKey) => {
            println!("{}", crate::secret::Keyring::new_key_text());
            Ok(ExitCode::SUCCESS)
        }
        Command::Secrets(SecretsCommand::Rotate) => {
            let keyring = load_keyring(&config, false)?;
            let mut connection = connect(&config)?;
            let transaction =
                connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let outcome = crate::store::outbox::reseal_secrets(&transaction, &keyring)?;
            if let Some(error) = outcome.unopened.first() {
                // Nothing is committed: the operator fixes the key file and runs it again.
                bail!(
                    "{error}; nothing was resealed ({} values do not open)",
                    outcome.unopened.len()
                );
            }
            let resealed = outcome.resealed;
            admin::audit(
                &transaction,
                "cli",
                "secrets.rotate",
                &format!("{resealed} values resealed"),
            )?;
            transaction.commit()?;
            println!(
                "resealed {resealed} stored secrets under the first key of {}",
                keyring.origin()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            paths,
            url,
            klantcode,
            klantnaam,
            key,
            concurrency,
            rate,
            restamp,
            expect,
            timeout,
            ca_file,
        } => {
            let options = crate::tools::replay::ReplayOptions {
                paths,
                url,
                klantcode,
                klantnaam,
                key,
                concurrency,
                rate,
                restamp,
                expect,
                timeout: std::time::Duration::from_secs(timeout),
                ca_file,
            };
            let report = crate::tools::replay::replay(&options)?;
            print!("{}", crate::tools::replay::summary(&report));
            let all_accepted = report.answers.iter().all(|answer| answer.accepted());
            let unanswered = report
                .answers
                .iter()
                .any(|answer| answer.transport_error.is_some());
            Ok(
                match (
                    options.expect.is_some(),
                    report.differences.is_empty(),
                    all_accepted,
                ) {
                    (true, true, _) => ExitCode::SUCCESS,
                    (true, false, _) => ExitCode::from(1),
                    (false, _, true) => ExitCode::SUCCESS,
                    // README: 1 for a call without an answer, 2 for faults.
                    (false, _, false) if unanswered => ExitCode::from(1),
                    (false, _, false) => ExitCode::from(2),
                },
            )
        }
        Command::Generate {
            schools,
            learners,
            toetsen,
            afnames,
            seed,
            drip,
            klantcode,
            klantnaam,
            key,
            out,
        } => {
            let options = crate::tools::generate::GenerateOptions {
                schools,
                learners,
                toetsen,
                afnames,
                seed,
                drip,
                klantcode,
                klantnaam,
                autorisatiesleutel: key,
                out,
            };
            let report = crate::tools::generate::generate(&options)?;
            println!(
                "wrote {} messages ({} resultaten, {} bytes), roster {}",
                report.messages,
                report.resultaten,
                report.bytes,
                report.roster.display()
            );
            println!(
                "to prepare a gateway, run the commands in {}",
                report.setup.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Receipts(command) => {
            let connection = connect(&config)?;
            match command {
                ReceiptsCommand::List { limit } => {
                    for receipt in crate::store::intake::list_receipts(&connection, limit)? {
                        let field = |name: &str| receipt[name].as_str().unwrap_or("-").to_string();
                        println!(
                            "{}  {}  {:<8}  {:<8}  {:<10}  {:>7} resultaten  {}",
                            field("id"),
                            field("received_at"),
                            field("klantcode"),
                            field("school"),
                            field("outcome"),
                            receipt["counts"]["resultaten"],
                            receipt["faultcode"].as_str().unwrap_or("")
                        );
                    }
                }
                ReceiptsCommand::Show { id } => {
                    let Some((_, receipt)) = crate::store::intake::load_receipt(&connection, &id)?
                    else {
                        bail!("no receipt {id}");
                    };
                    println!("{}", serde_json::to_string_pretty(&receipt)?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The learner `args` names, or an error saying the school does not know them.
fn find_learner(
    connection: &rusqlite::Connection,
    args: &LearnerArgs,
) -> Result<crate::store::erasure::Learner> {
    let school = SchoolCode::parse(&args.school).map_err(anyhow::Error::msg)?;
    crate::store::erasure::find_learner(
        connection,
        &school,
        args.leerlingid.as_deref(),
        args.eckid.as_deref(),
    )?
    .with_context(|| {
        format!(
            "school {} holds nothing about that leerling",
            school.as_str()
        )
    })
}

fn erase(config: &Config, args: &LearnerArgs) -> Result<ExitCode> {
    let keyring = load_keyring(config, true)?;
    let mapping = config.xapi_mapping()?;
    let mut connection = connect(config)?;
    let learner = find_learner(&connection, args)?;
    let report = crate::governance::erase(&mut connection, &keyring, &mapping, &learner, "cli")?;
    let counts = &report.counts;
    println!(
        "erased leerling {} of {}: {} toetsafnames ({} quarantined), {} earlier states, {} roster rows; \
         rewrote {} receipts, {} read audit rows, {} audit rows to name {}",
        learner.leerlingid,
        report.school,
        counts.toetsafnames,
        counts.quarantined,
        counts.toetsafnames_history,
        counts.leerlingen,
        counts.receipts_rewritten,
        counts.read_audit_rewritten,
        counts.audit_rewritten,
        report.learner_hash
    );
    println!(
        "removed {} statements; {} voiding statements queued for delivery",
        counts.xapi_statements_removed, counts.xapi_statements_voided
    );
    if report.lrs.is_empty() {
        println!("no LRS held statements about this leerling");
    } else {
        println!(
            "LRSs that held data (ask each to delete it; voiding does not): {}",
            report.lrs.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn export(config: &Config, args: &LearnerArgs, out: &Path) -> Result<ExitCode> {
    let connection = connect(config)?;
    let learner = find_learner(&connection, args)?;
    let document =
        crate::store::access_request::export(&connection, &learner, &crate::store::now_text())?;
    let text = serde_json::to_string_pretty(&document)?;
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    admin::audit(
        &connection,
        "cli",
        "leerlingen.export",
        &format!(
            "{} {} toetsafnames",
            learner.school,
            document["toetsafnames"].as_array().map_or(0, Vec::len)
        ),
    )?;
    println!(
        "wrote {} ({} toetsafnames, {} statements, {} reads)",
        out.display(),
        document["toetsafnames"].as_array().map_or(0, Vec::len),
        document["statements"].as_array().map_or(0, Vec::len),
        document["reads"].as_array().map_or(0, Vec::len)
    );
    Ok(ExitCode::SUCCESS)
}

fn purge(config: &Config, now: bool, json: bool) -> Result<ExitCode> {
    let settings = crate::store::retention::RetentionSettings::from_config(config);
    let store = open_store(config)?;
    let clock = crate::clock::Clock::System;
    let report = if now {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let report = runtime.block_on(crate::governance::purge(&store, clock, settings))?;
        store.close();
        report
    } else {
        let (schools, counts) = crate::store::retention::plan(
            &store.connect()?,
            clock.now(),
            clock.today(),
            &settings,
        )?;
        crate::governance::PurgeReport { schools, counts }
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if now { "purged" } else { "would purge" };
    for school in &report.schools {
        println!(
            "{verb} school {} (last mandate ended {})",
            school.code, school.mandate_ended
        );
    }
    let counts = &report.counts;
    println!(
        "{verb}: {} toetsafnames, {} earlier states, {} toetsen, {} leerlingen, {} statements; \
         expired {} receipts, {} audit rows, {} read audit rows, {} feed removals",
        counts.toetsafnames,
        counts.toetsafnames_history,
        counts.toetsen,
        counts.leerlingen,
        counts.xapi_statements,
        counts.receipts_expired,
        counts.audit_expired,
        counts.read_audit_expired,
        counts.removals_expired
    );
    Ok(ExitCode::SUCCESS)
}

fn disclosures(config: &Config, school: &str, json: bool) -> Result<ExitCode> {
    let school = SchoolCode::parse(school).map_err(anyhow::Error::msg)?;
    let connection = connect(config)?;
    let register = crate::store::disclosures::register(&connection, &school, None, None)?;
    if json {
        println!("{}", serde_json::to_string(&register)?);
        return Ok(ExitCode::SUCCESS);
    }
    for reader in &register.readers {
        println!(
            "reader {:<20} {:<5} {} .. {}  {} requests, {} records",
            reader.reader,
            reader.api,
            reader.first_read,
            reader.last_read,
            reader.requests,
            reader.records
        );
    }
    for lrs in &register.lrs {
        println!(
            "lrs    {:<20} {:<9} {} statements stored {} .. {}, last delivery {}  {}",
            lrs.lrs,
            lrs.identity,
            lrs.statements,
            lrs.first_stored.as_deref().unwrap_or("-"),
            lrs.last_stored.as_deref().unwrap_or("-"),
            lrs.last_delivered_at.as_deref().unwrap_or("-"),
            lrs.url
        );
    }
    if register.readers.is_empty() && register.lrs.is_empty() {
        println!("no reader or LRS received data of {}", register.school);
    }
    Ok(ExitCode::SUCCESS)
}

fn clients(config: &Config, command: ClientsCommand) -> Result<ExitCode> {
    let connection = connect(config)?;
    match command {
        ClientsCommand::Add {
            klantcode,
            klantnaam,
            key,
            key_file,
        } => {
            let key = match key_file {
                Some(path) => Some(read_secret_line(&path, "key")?),
                None => key,
            };
            let generated = key.is_none();
            let key = key.unwrap_or_else(admin::generate_key);
            admin::add_client(&connection, &klantcode, &klantnaam, &key)?;
            println!("client {klantcode} ({klantnaam}) added");
            if generated {
                println!("autorisatiesleutel (shown once, give it to the schools' EA):");
                println!("{key}");
            }
        }
        ClientsCommand::List => {
            for client in admin::list_clients(&connection)? {
                println!(
                    "{:<20} {:<30} created {}  {}",
                    client.klantcode,
                    client.klantnaam,
                    client.created_at,
                    client
                        .revoked_at
                        .map(|at| format!("revoked {at}"))
                        .unwrap_or_else(|| "active".into())
                );
            }
        }
        ClientsCommand::Revoke { klantcode } => {
            admin::revoke_client(&connection, &klantcode)?;
            println!("client {klantcode} revoked");
        }
        ClientsCommand::ResetOrdering { klantcode, school } => {
            let school = SchoolCode::parse(&school).map_err(anyhow::Error::msg)?;
            let forgotten = admin::reset_ordering(&connection, &klantcode, &school)?;
            println!(
                "{klantcode} for {school}: ordering reset (last aanmaakdatum was {forgotten}); its next message may carry any aanmaakdatum"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn schools(config: &Config, command: SchoolsCommand) -> Result<ExitCode> {
    let connection = connect(config)?;
    let school = |text: &str| SchoolCode::parse(text).map_err(anyhow::Error::msg);
    match command {
        SchoolsCommand::Activate {
            school: code,
            klantcode,
            mandate,
            valid_from,
            valid_until,
        } => {
            let school = school(&code)?;
            let valid_from =
                valid_from.unwrap_or_else(|| crate::clock::Clock::System.today().to_string());
            admin::activate(
                &connection,
                &klantcode,
                &school,
                &mandate,
                &valid_from,
                valid_until.as_deref(),
            )?;
            println!("{klantcode} may send for {school} under mandate {mandate} from {valid_from}");
        }
        SchoolsCommand::Deactivate {
            school: code,
            klantcode,
        } => {
            let school = school(&code)?;
            admin::deactivate(&connection, &klantcode, &school)?;
            println!("{klantcode} may no longer send for {school}");
        }
        SchoolsCommand::List => {
            for row in admin::list_activations(&connection)? {
                println!(
                    "{:<10} {:<20} mandate {:<36} {} .. {}  {}",
                    row.school,
                    row.klantcode,
                    row.mandate_ref,
                    row.valid_from,
                    row.valid_until.unwrap_or_else(|| "open".into()),
                    if row.active { "active" } else { "inactive" }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn readers(config: &Config, command: ReadersCommand) -> Result<ExitCode> {
    use crate::store::readers::{self, Grant};
    let mut connection = connect(config)?;
    let parse_school = |text: &String| SchoolCode::parse(text).map_err(anyhow::Error::msg);
    let grants = |schools: &[String], mandate: MandateArgs| -> Result<Vec<Grant>> {
        let valid_from = mandate
            .valid_from
            .unwrap_or_else(|| crate::query::today().format("%Y-%m-%d").to_string());
        schools
            .iter()
            .map(|text| {
                Ok(Grant {
                    school: parse_school(text)?,
                    mandate_ref: mandate.mandate.clone(),
                    valid_from: valid_from.clone(),
                    valid_until: mandate.valid_until.clone(),
                })
            })
            .collect()
    };
    let describe = |grant: &Grant| {
        format!(
            "{} under mandate {} from {} until {}",
            grant.school,
            grant.mandate_ref,
            grant.valid_from,
            grant.valid_until.as_deref().unwrap_or("further notice")
        )
    };
    match command {
        ReadersCommand::Add {
            name,
            schools,
            scopes,
            mandate,
        } => {
            let grants = grants(&schools, mandate)?;
            let scopes: Vec<readers::Scope> = scopes.into_iter().map(Into::into).collect();
            let transaction = connection.transaction()?;
            let token = readers::add_reader(&transaction, &name, &scopes, &grants)?;
            transaction.commit()?;
            let scope_names: Vec<&str> = scopes.iter().map(|scope| scope.as_str()).collect();
            println!("reader {name} added with scope {}", scope_names.join(", "));
            for grant in &grants {
                println!("  may read {}", describe(grant));
            }
            println!("bearer token (shown once; send it as 'Authorization: Bearer TOKEN'):");
            println!("{token}");
        }
        ReadersCommand::Grant {
            name,
            schools,
            mandate,
        } => {
            let grants = grants(&schools, mandate)?;
            let transaction = connection.transaction()?;
            for grant in &grants {
                readers::grant_school(&transaction, &name, grant)?;
            }
            transaction.commit()?;
            for grant in &grants {
                println!("reader {name} may read {}", describe(grant));
            }
        }
        ReadersCommand::Withdraw { name, schools } => {
            let transaction = connection.transaction()?;
            for text in &schools {
                readers::withdraw_school(&transaction, &name, &parse_school(text)?)?;
            }
            transaction.commit()?;
            println!("reader {name} may no longer read {}", schools.join(", "));
        }
        ReadersCommand::List => {
            for reader in readers::list_readers(&connection, crate::query::today())? {
                let scopes: Vec<&str> = reader.scopes.iter().map(|scope| scope.as_str()).collect();
                println!(
                    "{:<20} scope {:<9} created {}  {}",
                    reader.name,
                    scopes.join(","),
                    reader.created_at,
                    reader
                        .revoked_at
                        .map(|at| format!("revoked {at}"))
                        .unwrap_or_else(|| "active".into())
                );
                for grant in reader.schools {
                    println!(
                        "  {:<10} mandate {:<36} {} .. {}  {}",
                        grant.school,
                        grant.mandate_ref,
                        grant.valid_from,
                        grant.valid_until.unwrap_or_else(|| "open".into()),
                        match (&grant.withdrawn_at, grant.valid_today) {
                            (Some(at), _) => format!("withdrawn {at}"),
                            (None, true) => "valid today".into(),
                            (None, false) => "not valid today".into(),
                        }
                    );
                }
            }
        }
        ReadersCommand::Revoke { name } => {
            readers::revoke_reader(&connection, &name)?;
            println!("reader {name} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn lrs(config: &Config, command: LrsCommand) -> Result<ExitCode> {
    use crate::store::outbox as rows;
    let connection = connect(config)?;
    match command {
        LrsCommand::Add {
            name,
            url,
            username,
            password,
            password_file,
            schools,
            toetscodes,
            identity,
            from_now,
            allow_plain_http,
        } => {
            let password = match password_file {
                Some(path) => Some(read_secret_line(&path, "password")?),
                None => password,
            };
            let schools = schools
                .iter()
                .map(|code| {
                    SchoolCode::parse(code)
                        .map(|code| code.as_str().to_string())
                        .map_err(anyhow::Error::msg)
                })
                .collect::<Result<Vec<_>>>()?;
            let new = rows::NewSubscription {
                name,
                url,
                username,
                password: password.map(crate::secret::Secret::new),
                identity: identity.as_str().to_string(),
                schools,
                toetscodes,
                from_now,
            };
            crate::bridge::subscriptions::check_new(&new, allow_plain_http)?;
            if new.url.starts_with("http://") && allow_plain_http {
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
            rows::add_subscription(&connection, &new, &key, &keyring)?;
            println!(
                "LRS {} added: {} ({} identity); a running gateway picks it up within {} ms",
                new.name, new.url, new.identity, config.xapi_poll_interval_ms
            );
        }
        LrsCommand::List => {
            for row in rows::list_subscriptions(&connection)? {
                let list = |items: &[String]| {
                    if items.is_empty() {
                        "all".to_string()
                    } else {
                        items.join(",")
                    }
                };
                println!(
                    "{:<16} {:<50} user {:<12} password {:<4} identity {:<9} schools {} toetscodes {}",
                    row.name,
                    row.url,
                    row.username.as_deref().unwrap_or("-"),
                    if row.password.is_some() { "set" } else { "-" },
                    row.identity,
                    list(&row.schools),
                    list(&row.toetscodes)
                );
            }
        }
        LrsCommand::Remove { name } => {
            if !rows::remove_subscription(&connection, &name)? {
                bail!("no LRS named {name}");
            }
            println!("LRS {name} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn outbox(config: &Config, command: OutboxCommand) -> Result<ExitCode> {
    use crate::store::outbox as rows;
    let connection = connect(config)?;
    match command {
        OutboxCommand::Status => {
            let statements: i64 =
                connection
                    .query_row("SELECT count(*) FROM xapi_statements", [], |row| row.get(0))?;
            println!("{statements} statements generated");
            let (cursor, end) = crate::bridge::publish::publisher_position(&connection)?;
            println!("{} accepted changes not yet turned into statements (publisher at {cursor} of {end})", end - cursor);
            let now = chrono::Utc::now();
            for row in rows::outbox_status(&connection)? {
                let lag = row
                    .oldest_pending_stored_at
                    .as_deref()
                    .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                    .map(|at| {
                        format!(
                            "{:.1}s",
                            (now - at.with_timezone(&chrono::Utc)).num_milliseconds() as f64
                                / 1000.0
                        )
                    })
                    .unwrap_or_else(|| "0s".into());
                println!(
                    "{:<16} pending {:>7}  lag {:>8}  delivered {:>7}  dead letters {:>5} ({} requeued)  last {} {}{}",
                    row.lrs,
                    row.pending,
                    lag,
                    row.delivered,
                    row.dead_letters,
                    row.requeued,
                    row.last_attempt_at.as_deref().unwrap_or("-"),
                    row.last_status.map(|status| status.to_string()).unwrap_or_else(|| "-".into()),
                    row.last_error.map(|error| format!(" ({error})")).unwrap_or_default()
                );
            }
        }
        OutboxCommand::Retry { lrs } => {
            let requeued = rows::requeue_dead_letters(&connection, lrs.as_deref())?;
            println!("{requeued} dead letters requeued");
        }
        OutboxCommand::DeadLetters { lrs, json } => {
            for row in rows::list_dead_letters(&connection, lrs.as_deref())? {
                if json {
                    println!("{}", serde_json::to_string(&row)?);
                } else {
                    println!(
                        "{:<16} {}  seq {:<8} HTTP {:<4} {} attempts {}{}  {}",
                        row.lrs,
                        row.statement_id,
                        row.seq,
                        row.status
                            .map(|status| status.to_string())
                            .unwrap_or_else(|| "-".into()),
                        row.failed_at,
                        row.attempts,
                        if row.requeued { " requeued" } else { "" },
                        row.answer.replace('\n', " ")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn contract_dir(config: &Config) -> PathBuf {
    config.data_dir.join("contract")
}

fn validate(config: &Config, files: &[PathBuf]) -> Result<ExitCode> {
    let scratch = tempfile::tempdir()?;
    let schemas = crate::schema::prepare(scratch.path(), config.schema_dir.as_deref())?;
    let vocabularies = Vocabularies::load(config.vdex_dir.as_deref())?;
    let mut all_valid = true;
    for file in crate::tools::replay::collect_files(files)? {
        let verdict = crate::intake::validate_offline(
            &file,
            &schemas,
            &vocabularies,
            &config.xsd_versions,
            config.max_body_bytes,
            config.aanmaakdatum_max_skew(),
        )?;
        let violations = &verdict.violations;
        if violations.is_empty() {
            println!("{}: valid", file.display());
        } else {
            all_valid = false;
        }
        for violation in &violations.items {
            println!(
                "{}:{}:{}: {} {}{}",
                file.display(),
                violation.line.unwrap_or(0),
                violation.column.unwrap_or(0),
                violation.rule.code(),
                violation.message,
                violation
                    .value
                    .as_ref()
                    .map(|value| format!(" (value: {value})"))
                    .unwrap_or_default()
            );
        }
        if violations.omitted > 0 {
            println!("{}: … and {} more", file.display(), violations.omitted);
        }
        if verdict.unchecked_resultaten > 0 {
            let versions: Vec<String> = verdict
                .unchecked_versions
                .iter()
                .map(|(toetscode, versie)| format!("{toetscode} versie '{versie}'"))
                .collect();
            println!(
                "{}: not checked offline: {} resultaten are pinned to toets versions this message does not define ({}); the gateway checks them against earlier messages ({}, {}, {})",
                file.display(),
                verdict.unchecked_resultaten,
                versions.join(", "),
                Rule::ToetsVersie.code(),
                Rule::Onderdeel.code(),
                Rule::Score.code()
            );
        }
    }
    let store_rules: Vec<&str> = Rule::ALL
        .into_iter()
        .filter(|rule| rule.needs_store())
        .map(Rule::code)
        .collect();
    println!(
        "not checked offline (they need the gateway's store): {} (the sender's key and klantcode, its activation for the school, the ordering of aanmaakdatum, known leerlingen, toets versions from earlier messages)",
        store_rules.join(", ")
    );
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn serve(config: Config, demo: bool) -> Result<ExitCode> {
    crate::logging::init(config.log_format);
    let store = open_store(&config)?;
    if demo {
        crate::demo::seed(&store.connect()?).context("cannot seed the demo data")?;
    }
    let keyring = Arc::new(load_keyring(&config, true)?);
    // Seals what an older database holds in clear (and what an older key sealed) before delivery starts.
    let outcome = crate::store::outbox::reseal_secrets(&store.connect()?, &keyring)
        .context("cannot seal the stored LRS secrets")?;
    if outcome.resealed > 0 {
        tracing::info!(
            resealed = outcome.resealed,
            "stored LRS secrets sealed under the current key"
        );
    }
    for error in &outcome.unopened {
        // The intake runs on; only delivery to that LRS waits for the right key (logged again by the worker).
        tracing::error!(%error, "a stored LRS secret does not open with the configured secrets key");
    }
    let schemas = crate::schema::prepare(&contract_dir(&config), config.schema_dir.as_deref())?;
    let vocabularies = Vocabularies::load(config.vdex_dir.as_deref())?;
    let mapping = config.xapi_mapping()?;
    let intake = Intake {
        store: store.clone(),
        schemas,
        vocabularies: Arc::new(vocabularies),
        config: Arc::new(IntakeConfig {
            xsd_versions: config.xsd_versions.clone(),
            unknown_leerling: config.unknown_leerling,
            aanmaakdatum_max_skew: config.aanmaakdatum_max_skew(),
            clock: crate::clock::Clock::System,
        }),
        auth_limit: Arc::new(config.auth_limiter()),
    };
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(crate::http::tls_acceptor(cert, key)?),
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local = listener.local_addr()?;
        let state = Arc::new(crate::http::AppState::new(config.clone(), intake, local)?);
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("uwlr-gateway listening on {scheme}://{local}");
        println!("SOAP endpoint {}  (WSDL: {}?wsdl)", state.endpoint_url, state.endpoint_url);
        println!("database {}", store.path().display());
        if demo {
            print_demo_help(&state.endpoint_url);
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        if config.xapi_base_iri == crate::config::DEFAULT_XAPI_BASE_IRI {
            tracing::warn!(base_iri = %config.xapi_base_iri, "xapi_base_iri is the placeholder; set it to a domain you control before publishing to a real LRS");
        }
        let (stop_outbox, outbox_stopped) = tokio::sync::watch::channel(false);
        let mapping = Arc::new(mapping);
        let publisher = tokio::spawn(crate::bridge::run_publisher(
            store.clone(),
            mapping.clone(),
            config.outbox().poll_interval,
            std::time::Duration::from_millis(config.xapi_publish_pause_ms),
            outbox_stopped.clone(),
        ));
        let purge = tokio::spawn(crate::governance::run_purge(
            store.clone(),
            crate::store::retention::RetentionSettings::from_config(&config),
            std::time::Duration::from_secs(config.purge_interval_secs),
            outbox_stopped.clone(),
        ));
        let outbox = tokio::spawn(crate::bridge::outbox::run(
            store.clone(),
            mapping,
            keyring,
            config.outbox(),
            outbox_stopped,
        ));
        crate::http::serve(state, listener, tls, shutdown_signal()).await?;
        // Requests are done: stop publishing and delivery, then the writer.
        let _ = stop_outbox.send(true);
        let _ = publisher.await;
        let _ = purge.await;
        let _ = outbox.await;
        store.close();
        tracing::info!("stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn print_demo_help(endpoint: &str) {
    println!(
        "demo data: client {} ({}), key {}, school {} with leerlingen LL0001..LL0020",
        crate::demo::KLANTCODE,
        crate::demo::KLANTNAAM,
        crate::demo::AUTORISATIESLEUTEL,
        crate::demo::SCHOOL
    );
    println!("send a sample:");
    println!(
        "  curl -s -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: \"BrengLeerresultaten\"' --data-binary @samples/01-drip-een-resultaat.xml {endpoint}"
    );
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}

#[allow(dead_code)]
fn exists(path: &Path) -> bool {
    path.exists()
}
