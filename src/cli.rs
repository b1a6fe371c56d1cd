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
#[command(version = crate::VERSION_WITH_COMMIT, about)]
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
    /// Create the data dir and its databases (as `serve` does at its first start); on an
    /// existing data dir it only migrates. Every other subcommand needs an existing one.
    Init,
    /// Run the SOAP service (creates the data dir if it is missing).
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
        /// Message files or folders of them (SOAP envelopes or bare verzoeken).
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
        /// At most this many lines.
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
        /// Message files or folders of them, sent in file order.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The SOAP endpoint, e.g. http://127.0.0.1:8080/uwlr/leerresultaten.
        #[arg(long, default_value = "http://127.0.0.1:8080/uwlr/leerresultaten")]
        url: String,
        /// Filled into files without an autorisatie header.
        #[arg(long)]
        klantcode: Option<String>,
        /// Filled into files without an autorisatie header.
        #[arg(long)]
        klantnaam: Option<String>,
        /// The autorisatiesleutel filled into files without an autorisatie header.
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
        /// Schools (each with its own learners and messages).
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
        /// Seed of the generator: the same seed writes the same files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// One message per toetsafname (with versions and corrections) instead of one batch per school.
        #[arg(long)]
        drip: bool,
        /// Klantcode in the autorisatie header (default: the demo client).
        #[arg(long, default_value = crate::demo::KLANTCODE)]
        klantcode: String,
        /// Klantnaam in the autorisatie header.
        #[arg(long, default_value = crate::demo::KLANTNAAM)]
        klantnaam: String,
        /// Autorisatiesleutel in the autorisatie header.
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
    /// Print a shell completion script, e.g. `uwlr-gateway completions bash > /etc/bash_completion.d/uwlr-gateway`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `uwlr-gateway man > /usr/share/man/man1/uwlr-gateway.1`.
    Man {
        /// Write a page for the command and one per subcommand (uwlr-gateway-serve.1, …)
        /// into this existing folder instead of printing the main page.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
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
    /// Forget the gateway's xAPI id key when the secrets key that sealed it is lost: the next
    /// `serve` makes a new one, and statements published from then on get ids under it
    /// (statements already published keep theirs; a rebuild of xapi.sqlite would not).
    ResetIdKey,
}

#[derive(Subcommand, Debug)]
pub enum LrsCommand {
    /// Subscribe an LRS; a running gateway starts delivering to it within a poll interval.
    Add {
        /// A name for the LRS, unique among LRSs.
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
        /// PEM file with the CA certificate(s) of a private CA the LRS's server certificate chains
        /// to, trusted for this LRS besides the system's roots; the certificates are stored with it.
        #[arg(long, value_name = "PEM")]
        ca_file: Option<PathBuf>,
    },
    /// List the subscribed LRSs with their filters (never a password).
    List {
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Unsubscribe an LRS; its dead letters go with it.
    Remove {
        /// The LRS to unsubscribe.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum OutboxCommand {
    /// Pending statements, lag and the last answer per LRS.
    Status {
        /// One JSON object (statements, publisher position, one entry per LRS) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Requeue dead letters (of one LRS, or all) for another delivery attempt.
    Retry {
        /// Only this LRS's dead letters.
        #[arg(long)]
        lrs: Option<String>,
    },
    /// Statements an LRS refused, with its answer.
    DeadLetters {
        /// Only this LRS's dead letters.
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
        /// A name for the reader, unique among readers.
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
        /// The reader.
        name: String,
        /// A school it may read: 99XX, 99XX01 or the schoolkey; repeat for more.
        #[arg(long = "school", required = true)]
        schools: Vec<String>,
        #[command(flatten)]
        mandate: MandateArgs,
    },
    /// End a reader's access to schools at once.
    Withdraw {
        /// The reader.
        name: String,
        /// A school it may no longer read; repeat for more.
        #[arg(long = "school", required = true)]
        schools: Vec<String>,
    },
    /// List readers with their scopes and school grants (never a token).
    List {
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Withdraw a reader: its token stops working at once.
    Revoke {
        /// The reader to withdraw.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClientsCommand {
    /// Register a client; prints its new autorisatiesleutel once.
    Add {
        /// The klantcode the client puts in its autorisatie header.
        klantcode: String,
        /// The klantnaam the client puts in its autorisatie header.
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
    /// List registered clients (never a key).
    List {
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Withdraw a client: its key stops working at once.
    Revoke {
        /// The client to withdraw.
        klantcode: String,
    },
    /// Forget the last accepted aanmaakdatum of a client for a school, so that its next
    /// message is not refused as out of order (UWLR-VOLGORDE); audited.
    ResetOrdering {
        /// The client (klantcode) whose ordering state is forgotten.
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
        /// The client that may send for it.
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
    /// Stop a client from sending for a school.
    Deactivate {
        /// School: 99XX, 99XX01 (brincode + dependancecode) or the schoolkey.
        school: String,
        /// The client that may no longer send for it.
        #[arg(long)]
        klantcode: String,
    },
    /// List activations (which client may send for which school, under which mandate).
    List {
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum LeerlingenCommand {
    /// Import learners from CSV (school,leerlingid,eckid,naam) or leerlinggegevens_antwoord XML.
    Import {
        /// The CSV or XML file.
        file: PathBuf,
    },
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
    /// The latest receipts, newest first: outcome, school, counts and faultcode.
    List {
        /// At most this many receipts.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// One receipt in full, as JSON (counts, violations, timings).
    Show {
        /// The receipt id (as in `receipts list` or the bevestiging).
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

/// The error and its causes on one line, `a: b: c`, each said once: a cause whose text the
/// message before it already ends with is left out (`std::io::Error` inside a library error
/// that prints its source itself would otherwise read `(os error 2): ... (os error 2)`).
pub fn error_chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Writes generated text to standard output; a reader that stopped early (`| head`) is no error.
fn print_bytes(bytes: &[u8]) -> Result<ExitCode> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("cannot write to standard output")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Progress of a long subcommand (`generate`, `leerlingen import`, `backup`): a bar on
/// standard output when it is a terminal; otherwise (a log, a pipe) a plain line at every
/// tenth of the total, so a log shows the run advancing without escape codes.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    what: &'static str,
    total: u64,
    next_line: u64,
}

impl Progress {
    /// `total` may be an estimate (the bar then stops at full); 0 means unknown (a spinner).
    fn new(what: &'static str, total: u64) -> Progress {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stdout()).then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                (total > 0).then_some(total),
                indicatif::ProgressDrawTarget::stdout(),
            );
            let template = if total > 0 {
                "{msg} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta} left)"
            } else {
                "{spinner} {msg} ({elapsed})"
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what);
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        });
        if bar.is_none() && total == 0 {
            println!("{what} ...");
        }
        Progress {
            bar,
            what,
            total,
            next_line: total / 10,
        }
    }

    fn set(&mut self, done: u64) {
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None if self.total > 0 && done >= self.next_line.max(1) => {
                println!(
                    "{}: {done} of {} ({}%)",
                    self.what,
                    self.total,
                    done * 100 / self.total
                );
                self.next_line = done + (self.total / 10).max(1);
            }
            None => {}
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
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

/// A connection to the existing database of `config`, for subcommands that change it.
fn connect(config: &Config) -> Result<rusqlite::Connection> {
    Ok(open_existing_store(config)?.connect()?)
}

/// A read-only connection to the existing database of `config`, for subcommands that only
/// look: they work on a data dir they may not write and never migrate it.
fn connect_read_only(config: &Config) -> Result<rusqlite::Connection> {
    crate::store::open_read_only(&config.data_dir)
        .with_context(|| format!("cannot open the database in {}", config.data_dir.display()))
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

/// Opens the data dir of `config`, creating it when missing: `serve` and `init` only.
fn open_store(config: &Config) -> Result<Store> {
    Store::open(
        &config.data_dir,
        config.durability,
        config.wal_restart_mib << 20,
    )
    .with_context(|| format!("cannot open the database in {}", config.data_dir.display()))
}

/// Opens the data dir of `config`, which must exist.
fn open_existing_store(config: &Config) -> Result<Store> {
    Store::open_existing(
        &config.data_dir,
        config.durability,
        config.wal_restart_mib << 20,
    )
    .with_context(|| format!("cannot open the database in {}", config.data_dir.display()))
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let config = load_config(&cli)?;
    match cli.command {
        Command::Init => {
            let existed = config.data_dir.join("gateway.sqlite").is_file();
            let store = open_store(&config)?;
            store.close();
            load_keyring(&config, true)?;
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
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "uwlr-gateway", &mut script);
            print_bytes(&script)
        }
        Command::Man { out: Some(dir) } => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::generate_to(command, &dir)
                .with_context(|| format!("cannot write the manual pages to {}", dir.display()))?;
            println!("manual pages written to {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out: None } => {
            let command = <Cli as clap::CommandFactory>::command();
            let mut page = Vec::new();
            clap_mangen::Man::new(command).render(&mut page)?;
            print_bytes(&page)
        }
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
            let store = open_existing_store(&config)?;
            let connection = store.connect()?;
            let started = std::time::Instant::now();
            let progress = Progress::new("backing up", 0);
            let copied = crate::store::backup(&connection, &file);
            progress.finish();
            copied.with_context(|| {
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
            let mut connection = connect(&config)?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let rows =
                crate::roster::parse(&bytes).with_context(|| format!("{}", file.display()))?;
            // IMMEDIATE: take the write lock first, so change seqs cannot interleave with a running gateway's.
            let transaction =
                connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut progress = Progress::new("importing leerlingen", rows.len() as u64);
            let imported =
                admin::import_leerlingen_with_progress(&transaction, &rows, "cli", &mut |done| {
                    progress.set(done as u64)
                })?;
            progress.set(imported as u64);
            progress.finish();
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
            let connection = connect_read_only(&config)?;
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
            let mut connection = connect(&config)?;
            let keyring = load_keyring(&config, false)?;
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
        Command::Secrets(SecretsCommand::ResetIdKey) => {
            let mut connection = connect(&config)?;
            let transaction =
                connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let forgotten = crate::store::outbox::forget_id_key(&transaction)?;
            admin::audit(
                &transaction,
                "cli",
                "secrets.reset-id-key",
                if forgotten {
                    "forgotten"
                } else {
                    "none stored"
                },
            )?;
            transaction.commit()?;
            println!(
                "{}",
                if forgotten {
                    "the xAPI id key is forgotten; the next serve makes a new one"
                } else {
                    "no xAPI id key was stored"
                }
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
            // Counted in resultaten: the total is known (corrections add a few beyond it).
            let mut progress = Progress::new("writing resultaten", u64::from(schools) * afnames);
            let report = crate::tools::generate::generate_with_progress(&options, &mut |done| {
                progress.set(done)
            })?;
            progress.finish();
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
            let connection = connect_read_only(&config)?;
            match command {
                ReceiptsCommand::List { limit, json } => {
                    for receipt in crate::store::intake::list_receipts(&connection, limit)? {
                        if json {
                            println!("{}", serde_json::to_string(&receipt)?);
                            continue;
                        }
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
    let connection = match command {
        ClientsCommand::List { .. } => connect_read_only(config)?,
        _ => connect(config)?,
    };
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
        ClientsCommand::List { json } => {
            for client in admin::list_clients(&connection)? {
                if json {
                    println!("{}", serde_json::to_string(&client)?);
                    continue;
                }
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
    let connection = match command {
        SchoolsCommand::List { .. } => connect_read_only(config)?,
        _ => connect(config)?,
    };
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
        SchoolsCommand::List { json } => {
            for row in admin::list_activations(&connection)? {
                if json {
                    println!("{}", serde_json::to_string(&row)?);
                    continue;
                }
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
    let mut connection = match command {
        ReadersCommand::List { .. } => connect_read_only(config)?,
        _ => connect(config)?,
    };
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
        ReadersCommand::List { json } => {
            for reader in readers::list_readers(&connection, crate::query::today())? {
                if json {
                    println!("{}", serde_json::to_string(&reader)?);
                    continue;
                }
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

fn lrs(config: &Config, command: LrsCommand) -> Result<ExitCode> {
    use crate::store::outbox as rows;
    let connection = match command {
        LrsCommand::List { .. } => connect_read_only(config)?,
        _ => connect(config)?,
    };
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
            ca_file,
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
            let ca_pem = match &ca_file {
                Some(path) => Some(read_ca_file(path)?),
                None => None,
            };
            let new = rows::NewSubscription {
                name,
                url,
                username,
                password: password.map(crate::secret::Secret::new),
                identity: identity.as_str().to_string(),
                schools,
                toetscodes,
                from_now,
                ca_pem,
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
            let trust = match &new.ca_pem {
                Some(pem) => format!(
                    ", trusting {} CA certificate(s) from {} besides the system's",
                    crate::bridge::trust::fingerprints(pem).len(),
                    ca_file.as_deref().unwrap_or(Path::new("-")).display()
                ),
                None => String::new(),
            };
            println!(
                "LRS {} added: {} ({} identity{trust}); a running gateway picks it up within {} ms",
                new.name, new.url, new.identity, config.xapi_poll_interval_ms
            );
        }
        LrsCommand::List { json } => {
            for row in rows::list_subscriptions(&connection)? {
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
    let connection = match command {
        OutboxCommand::Retry { .. } => connect(config)?,
        _ => connect_read_only(config)?,
    };
    match command {
        OutboxCommand::Status { json } => {
            let statements: i64 =
                connection
                    .query_row("SELECT count(*) FROM xapi_statements", [], |row| row.get(0))?;
            if json {
                let (cursor, end) = crate::bridge::publish::publisher_position(&connection)?;
                let status = serde_json::json!({
                    "statements": statements,
                    "publisher": {"cursor": cursor, "end": end, "pending": end - cursor},
                    "lrs": rows::outbox_status(&connection)?,
                });
                println!("{status}");
                return Ok(ExitCode::SUCCESS);
            }
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
    let mapping = crate::bridge::ids::prepare(&store.connect()?, &keyring, config.xapi_mapping()?)
        .context("cannot start the xAPI bridge")?;
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
        let operations_listener = match config.metrics_listen {
            Some(address) => {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address} (metrics_listen)"))?;
                println!(
                    "metrics listening on http://{}  (/metrics, /status, /ready, /health)",
                    listener.local_addr()?
                );
                Some(listener)
            }
            None => None,
        };
        if demo {
            print_demo_help(&state.endpoint_url);
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // systemd's Type=notify: ready once the listener is bound and the state is built
        // (requests arriving now queue on the socket). Without NOTIFY_SOCKET this does nothing.
        let status = format!("STATUS=listening on {scheme}://{local}");
        if let Err(error) = sd_notify::notify(
            false,
            &[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Custom(&status)],
        ) {
            tracing::warn!(%error, "cannot tell the service manager that the gateway is ready");
        }
        if config.xapi_base_iri == crate::config::DEFAULT_XAPI_BASE_IRI {
            tracing::warn!(base_iri = %config.xapi_base_iri, "xapi_base_iri is the placeholder; set it to a domain you control before publishing to a real LRS");
        }
        let (stop_outbox, outbox_stopped) = tokio::sync::watch::channel(false);
        let mapping = Arc::new(mapping);
        let publisher = tokio::spawn(crate::bridge::run_publisher(
            store.clone(),
            mapping.clone(),
            config.delivery().poll_interval,
            std::time::Duration::from_millis(config.xapi_publish_pause_ms),
            outbox_stopped.clone(),
        ));
        let purge = tokio::spawn(crate::governance::run_purge(
            store.clone(),
            crate::store::retention::RetentionSettings::from_config(&config),
            std::time::Duration::from_secs(config.purge_interval_secs),
            outbox_stopped.clone(),
        ));
        let outbox = tokio::spawn(crate::bridge::delivery::run(
            store.clone(),
            mapping,
            keyring,
            config.delivery(),
            outbox_stopped,
        ));
        let sampler = tokio::spawn(crate::status::run_sampler(
            store.clone(),
            state.intake.auth_limit.clone(),
        ));
        let (stop_operations, mut operations_stopped) = tokio::sync::watch::channel(false);
        let operations = operations_listener.map(|listener| {
            tokio::spawn(crate::http::serve(
                state.clone(),
                listener,
                None,
                crate::http::Surface::Operations,
                async move {
                    let _ = operations_stopped.changed().await;
                },
            ))
        });
        crate::http::serve(
            state,
            listener,
            tls,
            crate::http::Surface::Main,
            shutdown_signal(),
        )
        .await?;
        let _ = stop_operations.send(true);
        if let Some(operations) = operations {
            let _ = operations.await;
        }
        sampler.abort();
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
    // systemd shows the unit as deactivating while requests drain.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}

#[allow(dead_code)]
fn exists(path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory as _;

    /// Every subcommand and every argument an operator can type, by its path, that has no help text.
    fn missing_help(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for argument in command.get_arguments() {
            let builtin = matches!(argument.get_id().as_str(), "help" | "version");
            if !builtin && !argument.is_hide_set() && argument.get_help().is_none() {
                missing.push(format!("{path} {}", argument.get_id()));
            }
        }
        for subcommand in command.get_subcommands() {
            let path = format!("{path} {}", subcommand.get_name());
            if subcommand.get_name() != "help" && subcommand.get_about().is_none() {
                missing.push(path.clone());
            }
            missing_help(subcommand, &path, missing);
        }
    }

    #[test]
    fn every_argument_and_subcommand_has_a_help_text() {
        let command = Cli::command();
        command.clone().debug_assert();
        let mut missing = Vec::new();
        missing_help(&command, "uwlr-gateway", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    #[test]
    fn error_chain_says_each_cause_once() {
        let io = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "No such file or directory (os error 2)",
        );
        // A library error that prints its source itself and also returns it.
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read x: {source}")]
        struct Doubling {
            source: std::io::Error,
        }
        let error = anyhow::Error::new(Doubling { source: io }).context("cannot start");
        assert_eq!(
            super::error_chain(&error),
            "cannot start: cannot read x: No such file or directory (os error 2)"
        );
    }
}
