//! The one test harness: starts the real `uwlr-gateway` binary on port 0 with a fresh data dir (and restarts or kills it), talks to it over HTTP, runs its CLI and reads its SQLite files.

pub mod cli;
pub mod client;
pub mod gateway;
pub mod message;
pub mod personal;
pub mod postgres;
pub mod process;
pub mod soap;
pub mod store;

pub use cli::{cli_with_data_dir, run, CliOutput};
pub use client::Reply;
pub use gateway::{spawn_default, spawn_gateway, Gateway, Options};
pub use postgres::{test_engine, TestEngine};
pub use soap::NS_DETAIL;
pub use soap::{check, fault_of, outcome, send_and_check, Expect};
pub use store::{
    arrival_order, attach_xapi, count, json_value, receipt_rules, rows, wait_published,
};

use std::path::PathBuf;
use std::time::Duration;

/// True (and says why on stderr) when the tests run on PostgreSQL and the calling test is
/// about SQLite's files only (data dir lock, file backups, WAL, file modes, damaged files):
/// `if harness::sqlite_only("why") { return; }`. Never for a test that merely fails there.
pub fn sqlite_only(why: &str) -> bool {
    let skip = test_engine() == TestEngine::Postgres;
    if skip {
        eprintln!("skipped on PostgreSQL: {why}");
    }
    skip
}

/// The demo client that `serve --demo` seeds and `samples/` uses.
pub const DEMO_KLANTCODE: &str = "DEMO-EA";
pub const DEMO_KLANTNAAM: &str = "Demo Uitgever";
pub const DEMO_SLEUTEL: &str = "demo-autorisatiesleutel-2026";

/// How long the gateway may take to start, and a call or command to finish, on a busy 2-core machine.
pub const START_DEADLINE: Duration = Duration::from_secs(90);
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// The repository root (where `samples/`, `tests/interop/` and `.venv` live).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_uwlr-gateway"))
}

pub fn read_sample(file: &str) -> Vec<u8> {
    let path = repo_root().join("samples").join(file);
    std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// One entry of samples/manifest.toml.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Sample {
    pub file: String,
    pub description: String,
    pub outcome: String,
    #[serde(default)]
    pub faultcode: Option<String>,
    #[serde(default)]
    pub rules: Vec<String>,
}

impl Sample {
    pub fn expected(&self) -> Expect {
        match self.outcome.as_str() {
            "accepted" => Expect::Accepted,
            "fault" => Expect::fault(
                self.faultcode
                    .as_deref()
                    .unwrap_or_else(|| panic!("{}: fault without faultcode", self.file)),
                &self.rules.iter().map(String::as_str).collect::<Vec<_>>(),
            ),
            other => panic!("{}: unknown outcome {other}", self.file),
        }
    }
}

/// The samples in manifest (replay) order.
pub fn manifest() -> Vec<Sample> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        sample: Vec<Sample>,
    }
    let path = repo_root().join("samples/manifest.toml");
    let text = std::fs::read_to_string(&path).expect("read samples/manifest.toml");
    toml::from_str::<Manifest>(&text)
        .expect("parse samples/manifest.toml")
        .sample
}

/// The accepted samples 01-10, in replay order.
pub fn accepted_samples() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("samples"))
        .expect("samples/")
        .filter_map(|entry| {
            entry
                .ok()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
        })
        .filter(|name| {
            name.ends_with(".xml")
                && name[..2]
                    .parse::<u32>()
                    .is_ok_and(|n| (1..=10).contains(&n))
        })
        .collect();
    names.sort();
    names
}
