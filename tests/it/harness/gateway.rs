//! One running `uwlr-gateway serve --demo` on port 0: its settings, data dir and logs; start, restart, SIGKILL, SIGTERM, and its CLI on the same data dir.

use super::cli::{gateway_command, run, CliOutput};
use super::postgres::{self, TestEngine};
use super::process::{Process, Stream};
use super::{CALL_TIMEOUT, START_DEADLINE};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The xAPI base IRI of [`Options::fast_xapi`] gateways.
pub const BASE_IRI: &str = "https://gateway.test.example/xapi";

/// The line on stdout that names the SOAP listener's address (`http://ADDR` or `https://ADDR`).
const LISTENING: &str = "uwlr-gateway listening on ";
/// The line on stdout that names the operators' listener, when `UWLR_METRICS_LISTEN` is set.
const METRICS_LISTENING: &str = "metrics listening on ";

/// How to start a gateway: its `UWLR_*` settings (for `serve` and for every CLI run on
/// its data dir) and, optionally, an existing data dir.
#[derive(Clone, Debug, Default)]
pub struct Options {
    env: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
}

impl Options {
    /// Without fsync at each commit, for tests that are not about crash safety.
    pub fn quick() -> Options {
        Options::default().env("UWLR_DURABILITY", "normal")
    }

    /// [`Options::quick`] with the test xAPI base IRI, short delivery timings and debug
    /// logs, for tests that follow statements to an LRS.
    pub fn fast_xapi() -> Options {
        Options::quick().envs(&[
            ("UWLR_XAPI_BASE_IRI", BASE_IRI),
            ("UWLR_XAPI_POLL_INTERVAL_MS", "100"),
            ("UWLR_XAPI_BASE_BACKOFF_MS", "50"),
            ("UWLR_XAPI_MAX_BACKOFF_SECS", "1"),
            ("UWLR_XAPI_REQUEST_TIMEOUT_SECS", "2"),
            ("UWLR_LOG", "info,uwlr_gateway=debug"),
        ])
    }

    /// Sets (or replaces) an environment variable, e.g. `UWLR_UNKNOWN_LEERLING=quarantine`.
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.retain(|(key, _)| key != name);
        self.env.push((name.to_string(), value.into()));
        self
    }

    /// Sets several environment variables.
    pub fn envs(self, pairs: &[(&str, &str)]) -> Self {
        pairs
            .iter()
            .fold(self, |options, (name, value)| options.env(name, *value))
    }

    /// Serves an existing data dir (e.g. a restored backup) instead of a fresh one.
    pub fn data_dir(mut self, data_dir: &Path) -> Self {
        self.data_dir = Some(data_dir.to_path_buf());
        self
    }
}

/// A `uwlr-gateway serve --demo` on one data dir, started on port 0; killed when dropped.
pub struct Gateway {
    /// Holds `data/`, the logs and scratch files; removed on drop.
    root: tempfile::TempDir,
    pub data_dir: PathBuf,
    /// Under `UWLR_TEST_ENGINE=postgres`: this gateway's database in the shared cluster
    /// (dropped with the gateway); its URL is in `env` as `UWLR_DATABASE_URL`.
    pub database: Option<String>,
    env: Vec<(String, String)>,
    /// The running server, if any.
    process: Option<Process>,
    /// How many times `serve` was started (each run logs to files of its own).
    runs: usize,
    /// `http://127.0.0.1:PORT` of the last start.
    pub base_url: String,
    /// The SOAP endpoint, `base_url` + `/uwlr/leerresultaten`.
    pub endpoint: String,
    /// `http://127.0.0.1:PORT` of the operators' listener, when `UWLR_METRICS_LISTEN` is set.
    pub metrics_url: Option<String>,
    pub http: reqwest::blocking::Client,
}

/// Starts a gateway with default settings.
pub fn spawn_default() -> Gateway {
    spawn_gateway(Options::default())
}

/// Starts `uwlr-gateway --data-dir <fresh tempdir> serve --demo --listen 127.0.0.1:0` and
/// waits (with a deadline) for the line `uwlr-gateway listening on http://ADDR`.
pub fn spawn_gateway(options: Options) -> Gateway {
    let mut gateway = Gateway::new(options);
    gateway.start();
    gateway
}

impl Gateway {
    /// A gateway on a fresh (or the given) data dir, not started yet; under
    /// `UWLR_TEST_ENGINE=postgres` also on a fresh database of its own.
    pub fn new(options: Options) -> Gateway {
        Gateway::on_database(options, None)
    }

    /// [`Gateway::new`], on PostgreSQL with a copy of the database `template` when given.
    fn on_database(mut options: Options, template: Option<&str>) -> Gateway {
        let database = match postgres::test_engine() {
            TestEngine::Sqlite => None,
            TestEngine::Postgres => {
                let database = postgres::create_database(template);
                options = options
                    .env("UWLR_STORE", "postgres")
                    .env("UWLR_DATABASE_URL", postgres::shared().url_of(&database));
                Some(database)
            }
        };
        let root = tempfile::Builder::new()
            .prefix("uwlr-it-")
            .tempdir()
            .expect("temp dir");
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| root.path().join("data"));
        if database.is_some() {
            // On PostgreSQL the data dir holds only the contract files (and here the key
            // file), and `serve` does not create it (it does on SQLite): made here, as a
            // deployment's state directory would be.
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&data_dir)
                .expect("create the data dir");
            // `serve` on PostgreSQL needs a secrets key shared by every instance, never
            // one it makes itself: a key file where SQLite's gateway keeps its own, so
            // tests that read, rotate or lose `secrets.key` mean the same on both engines.
            let has_key = options
                .env
                .iter()
                .any(|(name, _)| name == "UWLR_SECRETS_KEY" || name == "UWLR_SECRETS_KEY_FILE");
            if !has_key {
                let key_file = data_dir.join("secrets.key");
                if !key_file.exists() {
                    write_key_file(&key_file);
                }
                options = options.env("UWLR_SECRETS_KEY_FILE", key_file.to_string_lossy());
            }
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .expect("http client");
        Gateway {
            root,
            data_dir,
            database,
            env: options.env,
            process: None,
            runs: 0,
            base_url: String::new(),
            endpoint: String::new(),
            metrics_url: None,
            http,
        }
    }

    /// Starts (or restarts, after [`Gateway::kill`] or [`Gateway::terminate`]) `serve` on
    /// the same data dir, and reads back the ports it bound.
    pub fn start(&mut self) {
        assert!(self.process.is_none(), "the gateway is already running");
        self.runs += 1;
        let stderr = std::fs::File::create(self.stderr_path()).expect("stderr log file");
        let mut command = self.command();
        command
            .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stderr(Stdio::from(stderr));
        let stdout_log = self.root.path().join(format!("stdout-{}.log", self.runs));
        let process = Process::spawn(command, Stream::Stdout, &stdout_log);
        let deadline = Instant::now() + START_DEADLINE;
        let base_url = process
            .wait_for_line(LISTENING, deadline)
            .unwrap_or_else(|error| self.failed_to_start(&error));
        self.metrics_url = if self.setting("UWLR_METRICS_LISTEN").is_some() {
            let rest = process
                .wait_for_line(METRICS_LISTENING, deadline)
                .unwrap_or_else(|error| self.failed_to_start(&error));
            rest.split_whitespace().next().map(str::to_string)
        } else {
            None
        };
        self.endpoint = format!("{base_url}/uwlr/leerresultaten");
        self.base_url = base_url;
        self.process = Some(process);
    }

    fn failed_to_start(&self, error: &str) -> ! {
        panic!(
            "uwlr-gateway did not report its address ({error}); stderr:\n{}",
            self.stderr()
        )
    }

    /// A second gateway (not started) on a copy of this one's data dir and secrets key,
    /// with the same settings, as a restore would give; stop this one first. On
    /// PostgreSQL its database is a copy of this one's (`CREATE DATABASE … TEMPLATE`).
    pub fn copy(&self) -> Gateway {
        let options = Options {
            env: self.env.clone(),
            data_dir: None,
        };
        let mut copy = Gateway::on_database(options, self.database.as_deref());
        copy_dir(&self.data_dir, &copy.data_dir);
        // The harness's key file (PostgreSQL) moves with the data dir it lives in.
        let own_key = self.data_dir.join("secrets.key");
        if self.setting("UWLR_SECRETS_KEY_FILE") == Some(&*own_key.to_string_lossy()) {
            let copied_key = copy.data_dir.join("secrets.key");
            copy.set_env("UWLR_SECRETS_KEY_FILE", &copied_key.to_string_lossy());
        }
        copy
    }

    /// Sets (or replaces) one environment variable for the next start and CLI runs.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(key, _)| key != name);
        self.env.push((name.to_string(), value.to_string()));
    }

    fn setting(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// SIGKILL: the process dies wherever it is, as in a power cut.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// SIGTERM, then waits for a clean exit; returns how long it took.
    ///
    /// No wait for a first answer: the gateway arms its signal handlers before it prints
    /// the line the harness reads, so a SIGTERM straight after the start must drain cleanly.
    pub fn terminate(&mut self) -> Duration {
        let mut process = self.process.take().expect("running");
        let started = Instant::now();
        // SAFETY: kill(2) on the pid of a child this harness started and has not reaped.
        let sent = unsafe { libc::kill(process.id() as i32, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM");
        loop {
            if let Some(status) = process.child().try_wait().expect("wait for the gateway") {
                assert!(status.success(), "gateway exit status {status}");
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(40),
                "gateway did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id (for /proc and signals).
    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("running").id()
    }

    /// `127.0.0.1:PORT`, for raw TCP clients.
    pub fn address(&self) -> std::net::SocketAddr {
        self.base_url
            .split("://")
            .nth(1)
            .expect("scheme://address")
            .parse()
            .expect("socket address")
    }

    /// The current run's log file.
    pub fn stderr_path(&self) -> PathBuf {
        self.root.path().join(format!("stderr-{}.log", self.runs))
    }

    /// What the current run has logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// What every run has logged, oldest first.
    pub fn logs(&self) -> String {
        (1..=self.runs)
            .map(|run| {
                std::fs::read_to_string(self.root.path().join(format!("stderr-{run}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A scratch folder that lives as long as the gateway (for rosters and the like).
    pub fn scratch(&self) -> &Path {
        self.root.path()
    }

    /// Waits until the current run's log holds `needle`, or fails at the deadline.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.stderr();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the log never showed {needle:?}; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `done` holds, or panics with the logs after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            if started.elapsed() > limit {
                panic!(
                    "timed out waiting for {what}\n--- gateway logs ---\n{}",
                    tail(&self.logs(), 6000)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The gateway binary on this data dir with this gateway's settings (add the subcommand).
    pub fn command(&self) -> Command {
        let mut command = gateway_command();
        command.arg("--data-dir").arg(&self.data_dir);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
    }

    /// Runs a CLI subcommand against this gateway's data dir, with its settings.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        let mut command = self.command();
        command.args(args);
        run(command)
    }

    /// Runs a CLI subcommand that must succeed; returns its stdout.
    #[track_caller]
    pub fn cli_stdout(&self, args: &[&str]) -> String {
        self.cli(args).success().stdout
    }

    /// Adds a client and activates it for the demo school 99XX01 under `mandate`;
    /// `activate` adds flags to `schools activate` (e.g. `--valid-from`).
    pub fn add_client_for_demo_school(
        &self,
        klantcode: &str,
        klantnaam: &str,
        key: &str,
        mandate: &str,
        activate: &[&str],
    ) {
        self.cli_stdout(&[
            "clients",
            "add",
            klantcode,
            "--klantnaam",
            klantnaam,
            "--key",
            key,
        ]);
        let mut args = vec!["schools", "activate", "99XX01", "--klantcode", klantcode];
        args.extend_from_slice(&["--mandate", mandate]);
        args.extend_from_slice(activate);
        self.cli_stdout(&args);
    }

    /// Runs `serve` (without `--demo`) expecting it to refuse to start within `limit`.
    pub fn serve_refused(&self, limit: Duration) -> CliOutput {
        let mut command = self.command();
        command.args(["serve", "--listen", "127.0.0.1:0"]);
        let started = Instant::now();
        let output = run(command);
        assert!(
            started.elapsed() <= limit,
            "serve did not refuse to start within {limit:?}"
        );
        output
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
        if let Some(database) = &self.database {
            postgres::drop_database(database);
        }
    }
}

/// The last `bytes` of `text` (at a character boundary).
pub fn tail(text: &str, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// A key file of one fresh key (base64 of 32 random bytes), readable by its owner only.
fn write_key_file(path: &Path) {
    use base64::Engine as _;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let key: [u8; 32] = rand::random();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|error| panic!("create {}: {error}", path.display()));
    writeln!(
        file,
        "{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
    .expect("write the key file");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy's dir");
    for entry in std::fs::read_dir(from).expect("read the data dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}
