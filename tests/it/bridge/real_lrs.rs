//! The real downstream LRS: Learning Locker's statements service (npm xapi-statements@5.0.1) in memory, installed by .ci/setup-lrs.

use crate::harness::process::{Process, Stream};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Loaded with `node --require` before the LRS: prints the port each server bound, since
/// the LRS itself (started on port 0) logs only the port it was given.
const REPORT_PORT: &str = r#"
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  this.once('listening', () => console.log('real LRS listening on port ' + this.address().port));
  return listen.apply(this, args);
};
"#;

pub struct RealLrs {
    pub port: u16,
    /// Killed when dropped.
    _process: Process,
    _dir: tempfile::TempDir,
}

fn prefix() -> PathBuf {
    match std::env::var_os("XAPI_STATEMENTS_PREFIX") {
        Some(prefix) => PathBuf::from(prefix),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
            .join(".cache/uwlr-gateway/xapi-statements-5.0.1"),
    }
}

impl RealLrs {
    pub fn start() -> RealLrs {
        let package = prefix().join("node_modules/xapi-statements");
        assert!(
            package.join("dist/index.js").exists(),
            "the real LRS (npm xapi-statements@5.0.1) is not installed in {}: run .ci/setup-lrs first \
             (or point XAPI_STATEMENTS_PREFIX at an install)",
            prefix().display()
        );
        let dir = tempfile::tempdir().unwrap();
        let preload = dir.path().join("report-port.js");
        std::fs::write(&preload, REPORT_PORT).unwrap();
        let log = std::fs::File::create(dir.path().join("lrs-stderr.log")).unwrap();
        let mut command = Command::new("node");
        command
            .arg("--require")
            .arg(&preload)
            .arg("dist/index.js")
            .current_dir(&package)
            .env("AUTH_REPO", "test")
            .env("EVENTS_REPO", "test")
            .env("MODELS_REPO", "memory")
            .env("STORAGE_REPO", "local")
            .env("FS_LOCAL_STORAGE_DIR", dir.path())
            .env("EXPRESS_MORGAN_DIRECTORY", dir.path().join("accessLogs"))
            .env("EXPRESS_PORT", "0")
            .stdin(Stdio::null())
            .stderr(log);
        let process = Process::spawn(command, Stream::Stdout, &dir.path().join("lrs.log"));
        let port = process
            .wait_for_port(
                "real LRS listening on port ",
                Instant::now() + Duration::from_secs(60),
            )
            .unwrap_or_else(|error| panic!("xapi-statements did not start: {error}"));
        let lrs = RealLrs {
            port,
            _process: process,
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            if let Ok((200, _)) = lrs.get("limit=1") {
                return lrs;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "xapi-statements did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/xAPI/statements", self.port)
    }

    /// GET /xAPI/statements?query; returns the status and the JSON body (Null when not JSON).
    pub fn get(&self, query: &str) -> Result<(u16, Value), reqwest::Error> {
        let response = reqwest::blocking::Client::new()
            .get(format!("{}?{query}", self.url()))
            .basic_auth("test", Some("test"))
            .header("X-Experience-API-Version", "1.0.3")
            .timeout(Duration::from_secs(10))
            .send()?;
        let status = response.status().as_u16();
        let body = serde_json::from_str(&response.text()?).unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// Every statement the LRS returns (voided ones excluded, as the spec says), following `more`.
    pub fn all_statements(&self) -> Vec<Value> {
        let (status, body) = self.get("limit=1000").unwrap();
        assert_eq!(status, 200, "{body}");
        let statements = body["statements"].as_array().cloned().unwrap_or_default();
        assert!(
            body["more"].as_str().unwrap_or("").is_empty(),
            "more than one page"
        );
        statements
    }
}
