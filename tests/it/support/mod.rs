//! Test harness: runs the real `uwlr-gateway` binary on a free port with a fresh data dir, talks to it over HTTP, runs its CLI and reads its SQLite file.

pub mod message;
pub mod personal;

use quick_xml::events::Event;
use quick_xml::name::{Namespace, QName, ResolveResult};
use quick_xml::NsReader;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const NS_SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const NS_LEERRESULTATEN: &str = "http://www.edustandaard.nl/leerresultaten/2/leerresultaten";
pub const NS_DETAIL: &str = "urn:uwlr-gateway:fault:1";

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

/// A command for the gateway binary that does not inherit the caller's `UWLR_*` settings.
fn gateway_command() -> Command {
    let mut command = Command::new(binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("UWLR_") {
            command.env_remove(&name);
        }
    }
    command.current_dir(repo_root());
    command
}

/// How to start a gateway.
#[derive(Clone, Debug, Default)]
pub struct Options {
    env: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
}

impl Options {
    /// Sets an environment variable for the server, e.g. `UWLR_UNKNOWN_LEERLING=quarantine`.
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_string(), value.into()));
        self
    }

    /// Serves an existing data dir (e.g. a restored backup) instead of a fresh one.
    pub fn data_dir(mut self, data_dir: &Path) -> Self {
        self.data_dir = Some(data_dir.to_path_buf());
        self
    }
}

/// A running `uwlr-gateway serve --demo`; killed when dropped.
pub struct Gateway {
    child: Child,
    /// Holds `data/` and `stderr.log`; removed on drop.
    root: tempfile::TempDir,
    pub data_dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
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
    let root = tempfile::Builder::new()
        .prefix("uwlr-it-")
        .tempdir()
        .expect("temp dir");
    let data_dir = options
        .data_dir
        .clone()
        .unwrap_or_else(|| root.path().join("data"));
    let stderr_path = root.path().join("stderr.log");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr log file");
    let mut command = gateway_command();
    command
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr));
    for (name, value) in &options.env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start uwlr-gateway");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    // Keeps draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = lines_tx.send(line);
        }
    });
    let deadline = Instant::now() + START_DEADLINE;
    let marker = "uwlr-gateway listening on ";
    let base_url = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => {
                // http://ADDR, or https://ADDR when TLS is configured.
                if let Some(url) = line.trim().strip_prefix(marker) {
                    break url.to_string();
                }
            }
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "uwlr-gateway did not report its address ({error:?}); stderr:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
        }
    };
    let mut metrics_url = None;
    if options
        .env
        .iter()
        .any(|(name, _)| name == "UWLR_METRICS_LISTEN")
    {
        let marker = "metrics listening on ";
        metrics_url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.trim().strip_prefix(marker) {
                        break rest.split_whitespace().next().map(str::to_string);
                    }
                }
                Err(error) => panic!("uwlr-gateway did not report its metrics address ({error:?})"),
            }
        };
    }
    let endpoint = format!("{base_url}/uwlr/leerresultaten");
    let http = reqwest::blocking::Client::builder()
        .timeout(CALL_TIMEOUT)
        .build()
        .expect("http client");
    Gateway {
        child,
        root,
        data_dir,
        base_url,
        endpoint,
        metrics_url,
        http,
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer, read whole.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub receipt_id: Option<String>,
    pub body: String,
}

impl Reply {
    fn read(response: reqwest::blocking::Response) -> Reply {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type").unwrap_or_default();
        let receipt_id = header("x-receipt-id");
        let status = response.status().as_u16();
        let body = response.text().expect("response body");
        Reply {
            status,
            content_type,
            receipt_id,
            body,
        }
    }

    /// The body as JSON (for the REST endpoints).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.body))
    }
}

impl Gateway {
    /// The server's process id (for /proc and signals).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:PORT`, for raw TCP clients.
    #[allow(dead_code)]
    pub fn address(&self) -> std::net::SocketAddr {
        self.base_url
            .split("://")
            .nth(1)
            .expect("scheme://address")
            .parse()
            .expect("socket address")
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.root.path().join("stderr.log")
    }

    /// What the server has logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// A scratch folder that lives as long as the gateway (for rosters and the like).
    pub fn scratch(&self) -> &Path {
        self.root.path()
    }

    /// POSTs a body to the SOAP endpoint as an EA does.
    pub fn post(&self, body: impl Into<Vec<u8>>) -> Reply {
        self.post_with(
            body,
            "text/xml; charset=utf-8",
            Some("\"BrengLeerresultaten\""),
        )
    }

    /// POSTs with a chosen Content-Type and SOAPAction (None: no SOAPAction header).
    pub fn post_with(
        &self,
        body: impl Into<Vec<u8>>,
        content_type: &str,
        soap_action: Option<&str>,
    ) -> Reply {
        let mut request = self
            .http
            .post(&self.endpoint)
            .header("content-type", content_type)
            .body(body.into());
        if let Some(action) = soap_action {
            request = request.header("soapaction", action);
        }
        self.answer(request)
    }

    pub fn post_sample(&self, file: &str) -> Reply {
        self.post(read_sample(file))
    }

    pub fn get(&self, path_and_query: &str) -> Reply {
        self.answer(self.http.get(format!("{}{path_and_query}", self.base_url)))
    }

    /// Any request, shaped by the caller.
    pub fn send(&self, request: reqwest::blocking::RequestBuilder) -> Reply {
        self.answer(request)
    }

    /// Sends a request; a transport failure fails the test with the end of the server's log.
    fn answer(&self, request: reqwest::blocking::RequestBuilder) -> Reply {
        match request.send() {
            Ok(response) => Reply::read(response),
            Err(error) => {
                let log = self.stderr();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "request to the gateway failed: {error:?}\nlast log lines:\n{}",
                    tail.join("\n")
                )
            }
        }
    }

    /// Runs a CLI subcommand against this gateway's data dir.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        cli_with_data_dir(&self.data_dir, args)
    }

    /// The gateway's SQLite file, opened read-only.
    pub fn db(&self) -> rusqlite::Connection {
        let connection = rusqlite::Connection::open_with_flags(
            self.data_dir.join("gateway.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .expect("open gateway.sqlite");
        connection
            .busy_timeout(Duration::from_secs(30))
            .expect("busy timeout");
        attach_xapi(&connection, &self.data_dir);
        connection
    }

    /// Waits until the server's log holds `needle`, or fails at the deadline.
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
}

/// Output of one CLI run.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// Fails with the command's output unless it exited 0.
    pub fn success(self) -> CliOutput {
        assert!(
            self.status.success(),
            "command failed ({}):\n{}\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `uwlr-gateway --data-dir DIR ARGS...` in the repository root.
pub fn cli_with_data_dir(data_dir: &Path, args: &[&str]) -> CliOutput {
    let mut command = gateway_command();
    command.arg("--data-dir").arg(data_dir).args(args);
    run(command)
}

/// Runs a command with closed stdin, collecting its output, killing it after [`CALL_TIMEOUT`].
pub fn run(mut command: Command) -> CliOutput {
    let description = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {description}: {error}"));
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = Instant::now() + CALL_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for command") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{description} did not finish within {CALL_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    CliOutput {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
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

/// The outcome of a SOAP call, as a test states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// HTTP 200 with a `leerresultaten_bevestiging`.
    Accepted,
    /// HTTP 500 with a SOAP 1.1 fault: faultcode (local part, in the SOAP envelope
    /// namespace) and the exact set of rule codes in the detail.
    Fault {
        faultcode: String,
        rules: BTreeSet<String>,
    },
}

impl Expect {
    pub fn fault(faultcode: &str, rules: &[&str]) -> Expect {
        Expect::Fault {
            faultcode: faultcode.to_string(),
            rules: rules.iter().map(|rule| rule.to_string()).collect(),
        }
    }
}

/// A parsed SOAP 1.1 fault.
#[derive(Clone, Debug, Default)]
pub struct Fault {
    /// Namespace the faultcode's prefix is bound to.
    pub code_namespace: Option<String>,
    /// The faultcode's local part, e.g. `Client.OngeldigBericht`.
    pub code: String,
    pub faultstring: String,
    /// Rule codes in the detail, in order, with duplicates.
    pub rules: Vec<String>,
    pub receipt_id: Option<String>,
}

impl Fault {
    pub fn rule_set(&self) -> BTreeSet<String> {
        self.rules.iter().cloned().collect()
    }
}

/// Reads a SOAP 1.1 envelope: the Body's first element (namespace, local name), and the fault if that is one.
pub fn parse_envelope(xml: &str) -> Result<(Option<(String, String)>, Option<Fault>), String> {
    let mut reader = NsReader::from_str(xml);
    let mut path: Vec<(String, String)> = Vec::new();
    let mut body_child: Option<(String, String)> = None;
    let mut fault: Option<Fault> = None;
    loop {
        let (resolve, event) = reader
            .read_resolved_event()
            .map_err(|error| error.to_string())?;
        let namespace = match resolve {
            ResolveResult::Bound(Namespace(ns)) => String::from_utf8_lossy(ns).into_owned(),
            _ => String::new(),
        };
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let local = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                let in_body = path.len() == 2
                    && path[0] == (NS_SOAP11.to_string(), "Envelope".to_string())
                    && path[1] == (NS_SOAP11.to_string(), "Body".to_string());
                if in_body && body_child.is_none() {
                    body_child = Some((namespace.clone(), local.clone()));
                    if namespace == NS_SOAP11 && local == "Fault" {
                        fault = Some(Fault::default());
                    }
                }
                if matches!(event, Event::Start(_)) {
                    path.push((namespace, local));
                }
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(text) => {
                let Some(fault) = fault.as_mut() else {
                    continue;
                };
                let Some((element_ns, element)) = path.last() else {
                    continue;
                };
                let value = text
                    .unescape()
                    .map_err(|error| error.to_string())?
                    .trim()
                    .to_string();
                let in_fault =
                    path.len() == 4 && path[2] == (NS_SOAP11.to_string(), "Fault".to_string());
                match (element_ns.as_str(), element.as_str()) {
                    ("", "faultcode") if in_fault => {
                        let (resolved, local) = reader.resolve_element(QName(value.as_bytes()));
                        fault.code_namespace = match resolved {
                            ResolveResult::Bound(Namespace(ns)) => {
                                Some(String::from_utf8_lossy(ns).into_owned())
                            }
                            _ => None,
                        };
                        fault.code = String::from_utf8_lossy(local.as_ref()).into_owned();
                    }
                    ("", "faultstring") if in_fault => fault.faultstring = value,
                    (NS_DETAIL, "rule") => fault.rules.push(value),
                    (NS_DETAIL, "receiptId") => fault.receipt_id = Some(value),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if body_child.is_none() {
        return Err("no SOAP 1.1 Body element".into());
    }
    Ok((body_child, fault))
}

/// Tells what a reply says: accepted, or which fault. Fails on anything else
/// (another status, a 200 without bevestiging, a 500 without a SOAP 1.1 fault).
pub fn outcome(reply: &Reply) -> Expect {
    let (body_child, fault) = parse_envelope(&reply.body).unwrap_or_else(|error| {
        panic!(
            "answer is not XML ({error}): HTTP {} {}",
            reply.status, reply.body
        )
    });
    match reply.status {
        200 => {
            assert_eq!(
                body_child,
                Some((
                    NS_LEERRESULTATEN.to_string(),
                    "leerresultaten_bevestiging".to_string()
                )),
                "HTTP 200 without a leerresultaten_bevestiging: {}",
                reply.body
            );
            Expect::Accepted
        }
        500 => {
            let fault =
                fault.unwrap_or_else(|| panic!("HTTP 500 without a SOAP fault: {}", reply.body));
            assert_eq!(
                fault.code_namespace.as_deref(),
                Some(NS_SOAP11),
                "faultcode not qualified with the SOAP 1.1 namespace: {}",
                reply.body
            );
            Expect::Fault {
                faultcode: fault.code.clone(),
                rules: fault.rule_set(),
            }
        }
        other => panic!(
            "a SOAP call must be answered with 200 or 500, got {other}: {}",
            reply.body
        ),
    }
}

/// The fault in a reply; fails if there is none.
pub fn fault_of(reply: &Reply) -> Fault {
    parse_envelope(&reply.body)
        .ok()
        .and_then(|(_, fault)| fault)
        .unwrap_or_else(|| panic!("no SOAP fault in HTTP {}: {}", reply.status, reply.body))
}

/// Checks a reply against its expected outcome; `context` names the case.
#[track_caller]
pub fn check(context: &str, reply: &Reply, expected: &Expect) {
    let actual = outcome(reply);
    assert_eq!(
        &actual, expected,
        "{context}: HTTP {}\n{}",
        reply.status, reply.body
    );
    if let Expect::Accepted = expected {
        assert!(
            reply.receipt_id.is_some(),
            "{context}: an accepted message gets an X-Receipt-Id"
        );
    }
}

/// Sends and checks in one step; returns the reply for further checks.
#[track_caller]
pub fn send_and_check(
    gateway: &Gateway,
    context: &str,
    body: impl Into<Vec<u8>>,
    expected: &Expect,
) -> Reply {
    let reply = gateway.post(body);
    check(context, &reply, expected);
    reply
}

/// One number from SQL.
/// Waits until the running gateway's xAPI publisher (which works after each commit, from
/// its cursor) has turned every accepted change into statements.
pub fn wait_published(connection: &rusqlite::Connection) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count(
        connection,
        "SELECT (SELECT seq FROM change_counter) - (SELECT cursor_seq FROM xapi_publisher)",
    ) > 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the publisher did not catch up"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub fn count(connection: &rusqlite::Connection, sql: &str) -> i64 {
    connection
        .query_row(sql, [], |row| row.get(0))
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

/// Every row of a query as text columns joined by `|` (for comparing whole tables).
pub fn rows(connection: &rusqlite::Connection, sql: &str) -> Vec<String> {
    let mut statement = connection
        .prepare(sql)
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    let columns = statement.column_count();
    let rows = statement
        .query_map([], |row| {
            let mut fields = Vec::with_capacity(columns);
            for index in 0..columns {
                let value: rusqlite::types::Value = row.get(index)?;
                fields.push(match value {
                    rusqlite::types::Value::Null => "NULL".to_string(),
                    rusqlite::types::Value::Integer(number) => number.to_string(),
                    rusqlite::types::Value::Real(number) => number.to_string(),
                    rusqlite::types::Value::Text(text) => text,
                    rusqlite::types::Value::Blob(bytes) => format!("x'{}'", hex::encode(bytes)),
                });
            }
            Ok(fields.join("|"))
        })
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    rows.collect::<Result<_, _>>()
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

/// The rule codes recorded in a receipt's `violations` JSON.
pub fn receipt_rules(connection: &rusqlite::Connection, receipt_id: &str) -> BTreeSet<String> {
    let json: String = connection
        .query_row(
            "SELECT violations FROM receipts WHERE id = ?1",
            [receipt_id],
            |row| row.get(0),
        )
        .unwrap_or_else(|error| panic!("receipt {receipt_id}: {error}"));
    let violations: Vec<serde_json::Value> = serde_json::from_str(&json).expect("violations JSON");
    violations
        .iter()
        .map(|violation| violation["rule"].as_str().expect("rule").to_string())
        .collect()
}

/// Attaches the bridge's file (`xapi.sqlite`) beside a data dir's `gateway.sqlite`, as the
/// gateway's own connections do, so queries over statements and core tables read as one.
pub fn attach_xapi(connection: &rusqlite::Connection, data_dir: &std::path::Path) {
    connection
        .execute(
            "ATTACH DATABASE ?1 AS xapi",
            [data_dir.join("xapi.sqlite").to_string_lossy()],
        )
        .expect("attach xapi.sqlite");
}
