//! The command line's shape: the clap types only; each command group runs in its own module.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// uwlr-gateway: receives UWLR 2.2 BrengLeerresultaten messages and keeps them in SQLite.
#[derive(Parser, Debug)]
#[command(version = crate::VERSION_WITH_COMMIT, about)]
pub(crate) struct Cli {
    /// TOML configuration file (settings there are overridden by UWLR_* variables and flags).
    #[arg(long, global = true, env = "UWLR_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Folder with the database; every subcommand must get the same one as `serve`.
    #[arg(long, global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Create the data dir and its databases (as `serve` does at its first start); on an
    /// existing data dir it only migrates. Every other subcommand needs an existing one.
    Init,
    /// Apply the pending schema migrations to an existing data dir (refused while a `serve`
    /// runs on it), or with `--check` report each file's schema version and exit non-zero
    /// when migrations are pending. A data dir migrated by a newer gateway is refused.
    Migrate {
        /// Only report the versions found and needed; change nothing.
        #[arg(long)]
        check: bool,
    },
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
    Audit(AuditArgs),
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
    Replay(ReplayArgs),
    /// Write deterministic messages and the matching roster for load tests and benchmarks.
    Generate(GenerateArgs),
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

/// The filters and format of `audit`.
#[derive(clap::Args, Debug)]
pub(crate) struct AuditArgs {
    /// Only reads by this reader.
    #[arg(long)]
    pub(crate) reader: Option<String>,
    /// Only reads of this school (written as 99XX, 99XX01 or the schoolkey).
    #[arg(long)]
    pub(crate) school: Option<String>,
    /// Only reads that returned records of this leerlingid.
    #[arg(long)]
    pub(crate) leerling: Option<String>,
    /// Only reads, no administrative actions.
    #[arg(long)]
    pub(crate) reads: bool,
    /// At most this many lines.
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: u32,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// What `replay` sends, where, and how fast.
#[derive(clap::Args, Debug)]
pub(crate) struct ReplayArgs {
    /// Message files or folders of them, sent in file order.
    #[arg(required = true)]
    pub(crate) paths: Vec<PathBuf>,
    /// The SOAP endpoint, e.g. http://127.0.0.1:8080/uwlr/leerresultaten.
    #[arg(long, default_value = "http://127.0.0.1:8080/uwlr/leerresultaten")]
    pub(crate) url: String,
    /// Filled into files without an autorisatie header.
    #[arg(long)]
    pub(crate) klantcode: Option<String>,
    /// Filled into files without an autorisatie header.
    #[arg(long)]
    pub(crate) klantnaam: Option<String>,
    /// The autorisatiesleutel filled into files without an autorisatie header.
    #[arg(long)]
    pub(crate) key: Option<String>,
    /// Calls in flight at once (one school's messages still go in file order).
    #[arg(long, default_value_t = 1)]
    pub(crate) concurrency: usize,
    /// At most this many messages per second.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Shift every file's aanmaakdatum by one offset so the latest is now (order and
    /// spacing kept), written in UTC with `Z`, so the files can be sent again.
    #[arg(long)]
    pub(crate) restamp: bool,
    /// A manifest (samples/manifest.toml) to compare each answer with; exit 1 on any difference.
    #[arg(long)]
    pub(crate) expect: Option<PathBuf>,
    /// Seconds to wait for one answer.
    #[arg(long, default_value_t = 600)]
    pub(crate) timeout: u64,
    /// PEM file with certificates to trust for an https:// URL, besides the system's roots.
    #[arg(long, value_name = "PEM")]
    pub(crate) ca_file: Option<PathBuf>,
}

/// The shape and seed of what `generate` writes.
#[derive(clap::Args, Debug)]
pub(crate) struct GenerateArgs {
    /// Schools (each with its own learners and messages).
    #[arg(long, default_value_t = 1)]
    pub(crate) schools: u32,
    /// Learners per school.
    #[arg(long, default_value_t = 100)]
    pub(crate) learners: u32,
    /// Distinct toetsen.
    #[arg(long, default_value_t = 10)]
    pub(crate) toetsen: u32,
    /// Results (afname keys) per school.
    #[arg(long, default_value_t = 1000)]
    pub(crate) afnames: u64,
    /// Seed of the generator: the same seed writes the same files.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// One message per toetsafname (with versions and corrections) instead of one batch per school.
    #[arg(long)]
    pub(crate) drip: bool,
    /// Klantcode in the autorisatie header (default: the demo client).
    #[arg(long, default_value = crate::demo::KLANTCODE)]
    pub(crate) klantcode: String,
    /// Klantnaam in the autorisatie header.
    #[arg(long, default_value = crate::demo::KLANTNAAM)]
    pub(crate) klantnaam: String,
    /// Autorisatiesleutel in the autorisatie header.
    #[arg(long, default_value = crate::demo::AUTORISATIESLEUTEL)]
    pub(crate) key: String,
    /// A folder, or FILE.xml for one batch of one school.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

#[derive(Subcommand, Debug)]
pub(crate) enum SecretsCommand {
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
pub(crate) enum LrsCommand {
    /// Subscribe an LRS; a running gateway starts delivering to it within a poll interval.
    Add(LrsAddArgs),
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

/// Where an LRS is, how the gateway authenticates and trusts it, and what it may receive.
#[derive(clap::Args, Debug)]
pub(crate) struct LrsAddArgs {
    /// A name for the LRS, unique among LRSs.
    pub(crate) name: String,
    /// The LRS statements resource, e.g. https://lrs.example/xAPI/statements.
    #[arg(long)]
    pub(crate) url: String,
    /// HTTP Basic user.
    #[arg(long)]
    pub(crate) username: Option<String>,
    /// HTTP Basic password (or UWLR_LRS_PASSWORD, which keeps it out of the shell history
    /// and the process list; or --password-file).
    #[arg(
        long,
        env = "UWLR_LRS_PASSWORD",
        hide_env_values = true,
        conflicts_with = "password_file"
    )]
    pub(crate) password: Option<String>,
    /// Read the HTTP Basic password from this file ("-" for standard input).
    #[arg(long, value_name = "FILE")]
    pub(crate) password_file: Option<PathBuf>,
    /// Only results of this school (repeatable; none means every school).
    #[arg(long = "school")]
    pub(crate) schools: Vec<String>,
    /// Only results of this toetscode (repeatable; none means every toets).
    #[arg(long = "toetscode")]
    pub(crate) toetscodes: Vec<String>,
    /// Deliver only statements generated from now on (default: the whole history, oldest first).
    #[arg(long)]
    pub(crate) from_now: bool,
    /// The learner identity this LRS may see.
    #[arg(long, value_enum, default_value_t = crate::bridge::subscriptions::Identity::Eckid)]
    pub(crate) identity: crate::bridge::subscriptions::Identity,
    /// Accept a plain http:// URL to another host (statements and credentials then cross the network unencrypted).
    #[arg(long)]
    pub(crate) allow_plain_http: bool,
    /// PEM file with the CA certificate(s) of a private CA the LRS's server certificate chains
    /// to, trusted for this LRS besides the system's roots; the certificates are stored with it.
    #[arg(long, value_name = "PEM")]
    pub(crate) ca_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum OutboxCommand {
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
pub(crate) enum ScopeArg {
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
pub(crate) struct MandateArgs {
    /// Reference of the agreement (mandate) under which the school lets this reader read its data.
    #[arg(long)]
    pub(crate) mandate: String,
    /// First day the mandate is valid (YYYY-MM-DD); default today.
    #[arg(long)]
    pub(crate) valid_from: Option<String>,
    /// Last day the mandate is valid (YYYY-MM-DD); access ends by itself after it. Default open-ended.
    #[arg(long)]
    pub(crate) valid_until: Option<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum ReadersCommand {
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
pub(crate) enum ClientsCommand {
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
pub(crate) enum SchoolsCommand {
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
pub(crate) enum LeerlingenCommand {
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
pub(crate) struct LearnerArgs {
    /// The school (written as 99XX, 99XX01 or the schoolkey).
    #[arg(long)]
    pub(crate) school: String,
    /// The learner's LAS key.
    #[arg(required_unless_present = "eckid", conflicts_with = "eckid")]
    pub(crate) leerlingid: Option<String>,
    /// The learner's ECK iD instead of the LAS key.
    #[arg(long)]
    pub(crate) eckid: Option<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum ReceiptsCommand {
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
}
