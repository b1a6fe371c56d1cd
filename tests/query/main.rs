//! Read API tests against the real binary: feed paging under load, scope, audit, OpenAPI conformance.

mod feed;
mod openapi;
mod scope;
mod xapi;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A gateway started with `serve --demo` on a free port and a fresh data dir; stopped on drop.
pub struct Gateway {
    child: Child,
    pub base: String,
    pub data_dir: tempfile::TempDir,
    http: reqwest::blocking::Client,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_uwlr-gateway")
}

impl Gateway {
    pub fn spawn() -> Gateway {
        Gateway::spawn_with(&[])
    }

    /// Starts the gateway with extra `UWLR_*` settings.
    pub fn spawn_with(environment: &[(&str, &str)]) -> Gateway {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let stderr = std::fs::File::create(data_dir.path().join("stderr.log")).expect("log file");
        let mut command = Command::new(binary());
        command
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
            .env("UWLR_DURABILITY", "normal")
            .env_remove("UWLR_CONFIG")
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (name, value) in environment {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start uwlr-gateway");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("the gateway printed its address")
                .expect("stdout line");
            if let Some(address) = line.strip_prefix("uwlr-gateway listening on ") {
                break address.trim().to_string();
            }
        };
        // Keep draining stdout so the gateway never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client");
        Gateway {
            child,
            base,
            data_dir,
            http,
        }
    }

    /// A demo gateway with `samples` sent for 99XX01, and 99YY activated with two
    /// afnames of YY0001 whose keys (`YY-SECRET-…`) give away any leak.
    pub fn two_schools(samples: &[&str]) -> Gateway {
        let gateway = Gateway::spawn();
        gateway.cli(&words(
            "schools activate 99YY --klantcode DEMO-EA --mandate DPA-YY --valid-from 2020-01-01",
        ));
        for sample in samples {
            gateway.send_sample(sample);
        }
        gateway.send(&message(
            "99YY",
            None,
            &aanmaakdatum(0),
            &[
                Resultaat {
                    key: "YY-SECRET-1".into(),
                    leerlingid: "YY0001".into(),
                    score: 51,
                },
                Resultaat {
                    key: "YY-SECRET-2".into(),
                    leerlingid: "YY0001".into(),
                    score: 52,
                },
            ],
        ));
        gateway
    }

    /// Runs a CLI subcommand on this gateway's data dir; panics unless it succeeds. Returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new(binary())
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args(args)
            .env_remove("UWLR_CONFIG")
            .output()
            .expect("run uwlr-gateway");
        assert!(
            output.status.success(),
            "uwlr-gateway {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Adds a reader with the given CLI flags and returns its token (the last output line).
    pub fn reader(&self, name: &str, flags: &[&str]) -> String {
        let mut args = vec!["readers", "add", name];
        args.extend_from_slice(flags);
        let output = self.cli(&args);
        output
            .lines()
            .last()
            .expect("a token line")
            .trim()
            .to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Posts one SOAP message; panics unless it is accepted.
    pub fn send(&self, message: &str) {
        let response = self
            .http
            .post(self.url("/uwlr/leerresultaten"))
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", "\"BrengLeerresultaten\"")
            .body(message.to_string())
            .send()
            .expect("post a message");
        let status = response.status();
        let body = response.text().unwrap_or_default();
        assert!(status.is_success(), "message refused ({status}): {body}");
    }

    pub fn send_sample(&self, name: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("samples")
            .join(name);
        self.send(&std::fs::read_to_string(path).expect("sample"));
    }

    /// GET with an optional bearer token: status, content type and parsed body.
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String, Value) {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request.send().expect("GET");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = response.text().expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, content_type, body)
    }

    /// GET that must answer 200; returns the body.
    pub fn get_ok(&self, path: &str, token: &str) -> Value {
        let (status, _, body) = self.get(path, Some(token));
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Waits until the bridge's publisher (which runs after each commit) has turned
    /// every change into statements.
    pub fn wait_published(&self) {
        let connection = open_db(self.data_dir.path());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (cursor, end): (i64, i64) = connection
                .query_row(
                    "SELECT (SELECT cursor_seq FROM xapi_publisher), (SELECT seq FROM change_counter)",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .expect("publisher position");
            if cursor >= end {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the publisher is stuck at {cursor} of {end}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr_log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn repository() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Command line arguments written as one line.
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// One result to put in a generated message.
#[derive(Clone, Debug)]
pub struct Resultaat {
    pub key: String,
    pub leerlingid: String,
    pub score: u32,
}

/// A BrengLeerresultaten envelope from the demo client for `brincode`/`dependancecode`
/// with one toets `QT-PAGE` (normering 0..100) and the given results, grouped per leerling.
pub fn message(
    brincode: &str,
    dependancecode: Option<&str>,
    aanmaakdatum: &str,
    results: &[Resultaat],
) -> String {
    let mut by_leerling: std::collections::BTreeMap<&str, Vec<&Resultaat>> =
        std::collections::BTreeMap::new();
    for result in results {
        by_leerling
            .entry(result.leerlingid.as_str())
            .or_default()
            .push(result);
    }
    let mut afnames = String::new();
    for (leerlingid, results) in by_leerling {
        afnames.push_str(&format!(
            "<toetsafname><leerlingid>{leerlingid}</leerlingid><resultaten>"
        ));
        for result in results {
            afnames.push_str(&format!(
                "<resultaat key=\"{}\"><afnamedatum>2026-10-01</afnamedatum><toetscode>QT-PAGE</toetscode><score>{}</score></resultaat>",
                result.key, result.score
            ));
        }
        afnames.push_str("</resultaten></toetsafname>");
    }
    let dependancecode = dependancecode
        .map(|code| format!("<dependancecode>{code}</dependancecode>"))
        .unwrap_or_default();
    format!(
        r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">
  <SOAP-ENV:Header>
    <autorisatie xmlns="http://www.edustandaard.nl/leerresultaten/2/autorisatie">
      <autorisatiesleutel>demo-autorisatiesleutel-2026</autorisatiesleutel>
      <klantcode>DEMO-EA</klantcode>
      <klantnaam>Demo Uitgever</klantnaam>
    </autorisatie>
  </SOAP-ENV:Header>
  <SOAP-ENV:Body>
    <leerresultaten_verzoek xmlns="http://www.edustandaard.nl/leerresultaten/2/leerresultaten">
      <school>
        <schooljaar>2026-2027</schooljaar>
        <brincode>{brincode}</brincode>
        {dependancecode}
        <aanmaakdatum>{aanmaakdatum}</aanmaakdatum>
        <xsdversie>2.2</xsdversie>
      </school>
      <toetsafnames>{afnames}</toetsafnames>
      <toetsen>
        <toets>
          <toetscode>QT-PAGE</toetscode>
          <toetsnaam>Paging toets</toetsnaam>
          <toetsnormering>
            <norm><term>onvoldoende</term><beginnormwaarde>0</beginnormwaarde><eindnormwaarde>49</eindnormwaarde></norm>
            <norm><term>voldoende</term><beginnormwaarde>50</beginnormwaarde><eindnormwaarde>100</eindnormwaarde></norm>
          </toetsnormering>
        </toets>
      </toetsen>
    </leerresultaten_verzoek>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>
"#
    )
}

/// The aanmaakdatum of the `index`th generated message: later for each.
pub fn aanmaakdatum(index: u32) -> String {
    let start = chrono::NaiveDate::from_ymd_opt(2026, 10, 20)
        .unwrap()
        .and_hms_opt(8, 0, 0)
        .unwrap();
    (start + chrono::Duration::seconds(i64::from(index)))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// The demo learners LL0001..LL0020.
pub fn demo_leerling(index: usize) -> String {
    format!("LL{:04}", index % 20 + 1)
}

/// The audit rows (reads only, oldest first) as JSON.
pub fn read_audit(gateway: &Gateway, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["audit", "--reads", "--json", "--limit", "100000"];
    args.extend_from_slice(extra);
    let mut rows: Vec<Value> = gateway
        .cli(&args)
        .lines()
        .map(|line| serde_json::from_str(line).expect("audit JSON line"))
        .collect();
    rows.reverse();
    rows
}

/// The gateway's core database with the bridge's file attached, as the gateway opens them.
pub fn open_db(data_dir: &Path) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(data_dir.join("gateway.sqlite")).expect("database");
    connection
        .execute(
            "ATTACH DATABASE ?1 AS xapi",
            [data_dir.join("xapi.sqlite").to_string_lossy()],
        )
        .expect("attach xapi.sqlite");
    connection
}
