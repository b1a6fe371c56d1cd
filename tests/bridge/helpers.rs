//! Starts the real gateway binary on port 0 with a fresh data dir, posts samples, runs CLI commands and reads its store.

use rusqlite::Connection;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BASE_IRI: &str = "https://gateway.test.example/xapi";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn sample(name: &str) -> PathBuf {
    repo().join("samples").join(name)
}

/// The accepted samples 01-10, in replay order.
pub fn accepted_samples() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("samples"))
        .unwrap()
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

/// A gateway process with its own data dir; killed (SIGKILL) on drop.
pub struct Gateway {
    pub dir: PathBuf,
    pub endpoint: String,
    pub child: Option<Child>,
    env: Vec<(String, String)>,
    _temp: Option<tempfile::TempDir>,
}

impl Gateway {
    /// Starts `serve --demo` with short xAPI timings; `env` adds or overrides UWLR_* settings.
    pub fn start(env: &[(&str, &str)]) -> Gateway {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        let mut gateway = Gateway {
            dir,
            endpoint: String::new(),
            child: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _temp: Some(temp),
        };
        gateway.spawn();
        gateway
    }

    /// A second gateway on a copy of this one's data dir and secrets key (a restore), not
    /// yet started; the copy is taken as it is, so stop this one first.
    pub fn copy(&self) -> Gateway {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        copy_dir(&self.dir.join("data"), &dir.join("data"));
        Gateway {
            dir,
            endpoint: String::new(),
            child: None,
            env: self.env.clone(),
            _temp: Some(temp),
        }
    }

    /// Sets (or replaces) one environment variable for the next `spawn` and `cli` calls.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(key, _)| key != name);
        self.env.push((name.to_string(), value.to_string()));
    }

    /// Runs a CLI subcommand and returns its output whether it succeeded or not.
    pub fn cli_output(&self, args: &[&str]) -> std::process::Output {
        self.command().args(args).output().unwrap()
    }

    /// The CLI command on this data dir with extra settings.
    pub fn command_with_env(&self, env: &[(&str, &str)]) -> Command {
        let mut command = self.command();
        for (name, value) in env {
            command.env(name, value);
        }
        command
    }

    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_uwlr-gateway"));
        command
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .env("UWLR_XAPI_BASE_IRI", BASE_IRI)
            .env("UWLR_XAPI_POLL_INTERVAL_MS", "100")
            .env("UWLR_XAPI_BASE_BACKOFF_MS", "50")
            .env("UWLR_XAPI_MAX_BACKOFF_SECS", "1")
            .env("UWLR_XAPI_REQUEST_TIMEOUT_SECS", "2")
            .env("UWLR_DURABILITY", "normal")
            .env("UWLR_LOG", "info,uwlr_gateway=debug")
            .env_remove("UWLR_CONFIG");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Runs `serve` expecting it to refuse to start within `limit`; returns its output.
    pub fn serve_refused(&self, limit: Duration) -> std::process::Output {
        let mut child = self
            .command()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not refuse to start within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    }

    /// Starts (or restarts) the process on the same data dir.
    pub fn spawn(&mut self) {
        let runs = std::fs::read_dir(&self.dir)
            .map(|entries| entries.count())
            .unwrap_or(0);
        let stdout_path = self.dir.join(format!("stdout-{runs}.log"));
        let stderr_path = self.dir.join(format!("stderr-{runs}.log"));
        let child = self
            .command()
            .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("start the gateway");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&stdout_path).unwrap_or_default();
            if let Some(line) = text.lines().find(|line| line.starts_with("SOAP endpoint ")) {
                self.endpoint = line.split_whitespace().nth(2).unwrap().to_string();
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "gateway exited with {status}: {}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "gateway did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for a clean exit; returns how long it took.
    pub fn terminate(&mut self) -> Duration {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        loop {
            if let Some(status) = child.try_wait().unwrap() {
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

    pub fn logs(&self) -> String {
        let mut names: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("stderr")
            })
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Posts a sample; returns the HTTP status.
    pub fn post(&self, name: &str) -> u16 {
        self.post_bytes(std::fs::read(sample(name)).unwrap())
    }

    /// Posts a message body; returns the HTTP status.
    pub fn post_bytes(&self, body: Vec<u8>) -> u16 {
        let response = reqwest::blocking::Client::new()
            .post(&self.endpoint)
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", "\"BrengLeerresultaten\"")
            .body(body)
            .send()
            .unwrap();
        response.status().as_u16()
    }

    pub fn post_accepted(&self, names: &[String]) {
        for name in names {
            assert_eq!(self.post(name), 200, "{name}");
        }
    }

    /// Runs a CLI subcommand on the same data dir; panics unless it succeeds.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = self.command().args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn db(&self) -> Connection {
        let data = self.dir.join("data");
        let connection = Connection::open(data.join("gateway.sqlite")).unwrap();
        connection.busy_timeout(Duration::from_secs(10)).unwrap();
        connection
            .execute(
                "ATTACH DATABASE ?1 AS xapi",
                [data.join("xapi.sqlite").to_string_lossy()],
            )
            .unwrap();
        connection
    }

    /// Waits until the publisher has turned every change into statements (it runs after
    /// the afnames' commit), so the statement tables can be read.
    pub fn wait_published(&self) {
        let db = self.db();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (cursor, end): (i64, i64) = db
                .query_row(
                    "SELECT (SELECT cursor_seq FROM xapi_publisher), (SELECT seq FROM change_counter)",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .unwrap();
            if cursor >= end {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "publisher stuck at {cursor} of {end}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every generated statement id.
    pub fn statement_ids(&self) -> BTreeSet<String> {
        self.wait_published();
        let db = self.db();
        let mut statement = db.prepare("SELECT id FROM xapi_statements").unwrap();
        let ids = statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        ids
    }

    /// Every generated statement as JSON, in seq order.
    pub fn statements(&self) -> Vec<serde_json::Value> {
        self.wait_published();
        let db = self.db();
        let mut statement = db
            .prepare("SELECT statement FROM xapi_statements ORDER BY seq")
            .unwrap();
        let rows: Vec<String> = statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.iter()
            .map(|text| serde_json::from_str(text).unwrap())
            .collect()
    }

    /// Delivery state of one LRS: (pending, dead letters).
    pub fn outbox(&self, lrs: &str) -> (i64, i64) {
        let rows = uwlr_gateway::store::outbox::outbox_status(&self.db()).unwrap();
        let row = rows.iter().find(|row| row.lrs == lrs).expect("subscribed");
        (row.pending, row.dead_letters - row.requeued)
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

    /// Waits until nothing is pending for `lrs` (dead letters aside); pending counts
    /// published statements, so the publisher must have caught up first.
    pub fn wait_delivered(&self, lrs: &str, limit: Duration) {
        self.wait_published();
        self.wait_for(&format!("delivery to {lrs}"), limit, || {
            self.outbox(lrs).0 == 0
        });
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn tail(text: &str, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Runs shared/tools/xapi-validate --strict over statements; panics with its report when any is invalid.
pub fn validate_strict(statements: &[serde_json::Value]) {
    let tool = repo().join("../shared/tools/xapi-validate");
    assert!(
        tool.exists(),
        "{} is missing (shared/ must sit beside the repository)",
        tool.display()
    );
    let input = statements
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let mut child = Command::new(&tool)
        .args(["--strict", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "xapi-validate --strict failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Never two live (not voided, not voiding) statements for one resultaatkey among `statements`.
pub fn assert_one_live_statement_per_result(
    statements: &[serde_json::Value],
    voided_ids: &BTreeSet<String>,
    context: &str,
) {
    let key = format!("{}/extension/resultaatkey", BASE_IRI);
    let mut live: BTreeMap<String, String> = BTreeMap::new();
    for statement in statements {
        let id = statement["id"].as_str().unwrap().to_string();
        if statement["verb"]["id"] == "http://adlnet.gov/expapi/verbs/voided"
            || voided_ids.contains(&id)
        {
            continue;
        }
        let resultaatkey = statement["context"]["extensions"][&key]
            .as_str()
            .unwrap()
            .to_string();
        if let Some(other) = live.insert(resultaatkey.clone(), id.clone()) {
            panic!("{context}: result {resultaatkey} has two live statements: {other} and {id}");
        }
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
