//! What operators watch: `/metrics` scraped by a real Prometheus, `/ready`, and the `/status` page in headless Chromium.

use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::process::{Process, Stream};
use crate::harness::{outcome, spawn_gateway, Expect, Gateway, Options};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "beheerder-token-voor-metrics";

/// Messages of the load: accepted, refused for ordering (authenticated), and with a wrong
/// key for a klantcode that does not exist (not authenticated).
const ACCEPTED: u32 = 240;
const VOLGORDE: u32 = 30;
const UNKNOWN: u32 = 20;

/// A gateway with the operators' listener on a free port.
fn spawn_observed(extra: &[(&str, &str)]) -> Gateway {
    let mut options = Options::default()
        .env("UWLR_METRICS_LISTEN", "127.0.0.1:0")
        .env("UWLR_ADMIN_TOKEN", ADMIN_TOKEN);
    for (name, value) in extra {
        options = options.env(name, *value);
    }
    spawn_gateway(options)
}

fn metrics_url(gateway: &Gateway) -> String {
    gateway.metrics_url.clone().expect("metrics_listen is set")
}

/// Sends the load: `ACCEPTED` drip messages with one result each, interleaved with
/// `VOLGORDE` messages older than the last accepted one and `UNKNOWN` with a stranger's klantcode.
fn send_load(gateway: &Gateway) {
    let (mut volgorde, mut unknown) = (0, 0);
    for index in 0..ACCEPTED {
        let key = format!("OBS-{index:04}");
        let message = Message::demo(&aanmaakdatum(1000 + index))
            .afname(
                &format!("LL{:04}", index % 20 + 1),
                vec![Resultaat::score(&key, "OBS-T", u64::from(index % 11))],
            )
            .toets(Toets::new("OBS-T"));
        assert_eq!(outcome(&gateway.post(message.envelope())), Expect::Accepted);
        if index % 8 == 3 && volgorde < VOLGORDE {
            let late = Message::demo(&aanmaakdatum(index))
                .afname(
                    "LL0001",
                    vec![Resultaat::score(&format!("LATE-{index}"), "OBS-T", 1)],
                )
                .toets(Toets::new("OBS-T"));
            assert_eq!(
                outcome(&gateway.post(late.envelope())),
                Expect::fault("Client.OngeldigBericht", &["UWLR-VOLGORDE"])
            );
            volgorde += 1;
        }
        if index % 12 == 5 && unknown < UNKNOWN {
            let stranger = Message::demo(&aanmaakdatum(2000 + index))
                .client("NIET-BESTAAND-42", "Onbekend", "geen-geldige-sleutel")
                .afname("LL0001", vec![Resultaat::score("X", "OBS-T", 1)])
                .toets(Toets::new("OBS-T"));
            assert!(matches!(
                outcome(&gateway.post(stranger.envelope())),
                Expect::Fault { .. }
            ));
            unknown += 1;
        }
    }
    assert_eq!((volgorde, unknown), (VOLGORDE, UNKNOWN));
}

/// `promtool check metrics` over `text`; returns its output when it fails.
fn promtool_check(text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus, installed by .ci/setup)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool output");
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A Prometheus server scraping one target every second; killed and removed when dropped.
struct Prometheus {
    process: Process,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str, bearer: Option<&str>) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("uwlr-prometheus-")
            .tempdir()
            .expect("temp dir");
        let authorization = bearer
            .map(|token| format!("    authorization:\n      credentials: {token}\n"))
            .unwrap_or_default();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: uwlr\n{authorization}    static_configs:\n      - targets: ['{target}']\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .arg("--log.level=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // Prometheus (the Debian package, installed by .ci/setup) logs the port it bound.
        let process = Process::spawn(command, Stream::Stderr, &dir.path().join("prometheus.log"));
        let port = process
            .wait_for_port(
                "msg=\"Listening on\" address=",
                Instant::now() + Duration::from_secs(60),
            )
            .unwrap_or_else(|error| {
                panic!("prometheus did not start ({error}):\n{}", process.log())
            });
        let prometheus = Prometheus {
            process,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while reqwest::blocking::get(format!("{}/-/ready", prometheus.url))
            .map(|response| !response.status().is_success())
            .unwrap_or(true)
        {
            assert!(
                Instant::now() < deadline,
                "prometheus did not become ready:\n{}",
                prometheus.process.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        prometheus
    }

    /// The value of an instant PromQL query that yields one sample, or None for an empty result.
    fn scalar(&self, query: &str) -> Option<f64> {
        let text = reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .send()
            .and_then(|response| response.text())
            .expect("prometheus query");
        let response: serde_json::Value = serde_json::from_str(&text).expect("prometheus JSON");
        assert_eq!(response["status"], "success", "{query}: {response}");
        let result = response["data"]["result"].as_array()?;
        let sample = result.first()?;
        sample["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `query` yields `expected`, or fails with the last value.
    fn wait_for(&self, query: &str, expected: f64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let value = self.scalar(query);
            if value == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{query}: {value:?}, expected {expected}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

#[test]
fn prometheus_scrapes_the_gateway_under_load() {
    let gateway = spawn_observed(&[]);
    let url = metrics_url(&gateway);
    let target = url.strip_prefix("http://").expect("plain http");
    let prometheus = Prometheus::start(target, None);
    prometheus.wait_for("up{job=\"uwlr\"}", 1.0);
    send_load(&gateway);

    let accepted = f64::from(ACCEPTED);
    prometheus.wait_for(
        "sum(uwlr_messages_total{outcome=\"accepted\",klantcode=\"DEMO-EA\"})",
        accepted,
    );
    prometheus.wait_for(
        "sum(uwlr_messages_total{outcome=\"rejected\",rule=\"UWLR-VOLGORDE\",faultcode=\"Client.OngeldigBericht\",klantcode=\"DEMO-EA\"})",
        f64::from(VOLGORDE),
    );
    // The stranger's klantcode never becomes a label.
    prometheus.wait_for(
        "sum(uwlr_messages_total{outcome=\"rejected\",klantcode=\"unknown\"})",
        f64::from(UNKNOWN),
    );
    assert_eq!(
        prometheus.scalar("count(uwlr_messages_total{klantcode=\"NIET-BESTAAND-42\"})"),
        None
    );
    prometheus.wait_for("uwlr_results_stored_total", accepted);
    prometheus.wait_for(
        "sum(uwlr_message_duration_seconds_count{class=\"drip\"})",
        f64::from(ACCEPTED + VOLGORDE + UNKNOWN),
    );
    // Wrong keys: failures until the source's bucket locks out, then refusals without a key check.
    prometheus.wait_for(
        "sum(uwlr_auth_events_total{kind=~\"failure|refused\"})",
        f64::from(UNKNOWN),
    );
    assert!(
        prometheus
            .scalar("uwlr_auth_events_total{kind=\"source_lockout\"}")
            .is_some_and(|lockouts| lockouts >= 1.0),
        "the lockout is counted"
    );
    // Every accepted message went through a core group commit.
    let commits = prometheus
        .scalar("uwlr_store_commit_group_size_sum{database=\"core\"}")
        .expect("group sizes");
    assert!(commits >= accepted, "{commits} jobs in core group commits");
    // The publisher caught up: all changes are statements.
    prometheus.wait_for("uwlr_publisher_lag_changes", 0.0);
    assert!(
        prometheus
            .scalar("uwlr_store_wal_size_bytes{database=\"core\"}")
            .is_some(),
        "WAL size exported"
    );

    let text = gateway
        .send(
            gateway
                .http
                .get(format!("{}/metrics", metrics_url(&gateway))),
        )
        .body;
    if let Err(problems) = promtool_check(&text) {
        panic!("promtool check metrics:\n{problems}\n{text}");
    }
    assert!(
        !text.contains("OBS-") && !text.contains("LL00") && !text.contains("99XX01"),
        "no afname, learner or school labels"
    );
}

#[test]
fn metrics_on_the_main_listener_need_the_admin_token() {
    let gateway = spawn_gateway(Options::default().env("UWLR_ADMIN_TOKEN", ADMIN_TOKEN));
    let denied = gateway.get("/metrics");
    assert_eq!(denied.status, 401, "{}", denied.body);
    let denied = gateway.get("/status/data");
    assert_eq!(denied.status, 401, "{}", denied.body);
    let metrics = gateway.send(
        gateway
            .http
            .get(format!("{}/metrics", gateway.base_url))
            .bearer_auth(ADMIN_TOKEN),
    );
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .body
        .contains("# TYPE uwlr_auth_events_total counter"));
    // The page itself holds no figures and is open; its data is not.
    assert_eq!(gateway.get("/status").status, 200);
    // Read API requests are counted by route template, never by school.
    gateway.get("/api/v1/schools/99XX01/toetsafnames");
    let metrics = gateway.send(
        gateway
            .http
            .get(format!("{}/metrics", gateway.base_url))
            .bearer_auth(ADMIN_TOKEN),
    );
    assert!(
        metrics.body.contains(
            "uwlr_read_requests_total{route=\"/api/v1/schools/{school}/toetsafnames\",status=\"401\"} 1"
        ),
        "{}",
        metrics.body
    );
}

#[test]
fn ready_answers_503_naming_a_lagging_publisher() {
    // One round publishes at once; the next waits a minute: the second message lags.
    let gateway = spawn_observed(&[
        ("UWLR_XAPI_PUBLISH_PAUSE_MS", "60000"),
        ("UWLR_READY_MAX_PUBLISHER_LAG_SECS", "2"),
    ]);
    let ready = gateway.get("/ready");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["status"], "ready");
    for (index, key) in ["READY-1", "READY-2"].iter().enumerate() {
        let message = Message::demo(&aanmaakdatum(index as u32))
            .afname("LL0001", vec![Resultaat::score(key, "READY-T", 3)])
            .toets(Toets::new("READY-T"));
        assert_eq!(outcome(&gateway.post(message.envelope())), Expect::Accepted);
        std::thread::sleep(Duration::from_millis(300));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let not_ready = loop {
        let ready = gateway.get("/ready");
        if ready.status == 503 {
            break ready;
        }
        assert!(Instant::now() < deadline, "still ready: {}", ready.body);
        std::thread::sleep(Duration::from_millis(250));
    };
    let problem = not_ready.json();
    assert_eq!(problem["type"], "urn:uwlr-gateway:problem:not-ready");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("publisher lags")
                && detail.contains("ready_max_publisher_lag_secs = 2")),
        "{problem}"
    );
    // The operators' listener answers the same.
    let there = gateway.send(gateway.http.get(format!("{}/ready", metrics_url(&gateway))));
    assert_eq!(there.status, 503);
    // Liveness is not readiness.
    assert_eq!(gateway.get("/health").status, 200);
}

#[test]
fn status_page_renders_live_figures_in_headless_chromium() {
    let gateway = spawn_observed(&[]);
    send_load(&gateway);
    // Two samples after the load, so the charts have points with rates in them.
    std::thread::sleep(Duration::from_millis(4500));
    let url = format!("{}/status", metrics_url(&gateway));
    let profile = tempfile::Builder::new()
        .prefix("uwlr-chromium-")
        .tempdir()
        .expect("profile dir");
    let dom = chromium(profile.path(), &url, &["--dump-dom"]);
    let ready = attribute(&dom.stdout, "data-ready")
        .unwrap_or_else(|| panic!("the page never set data-ready; log:\n{}", dom.stderr));
    let figures: serde_json::Value = serde_json::from_str(&ready).expect("data-ready is JSON");
    assert_eq!(figures["charts"], 6, "{figures}");
    assert!(figures["points"].as_u64().unwrap_or(0) >= 2, "{figures}");
    assert_eq!(figures["accepted"], ACCEPTED, "{figures}");
    assert_eq!(figures["rejected"], VOLGORDE + UNKNOWN, "{figures}");
    assert_eq!(figures["results"], ACCEPTED, "{figures}");
    assert_eq!(figures["faults"], 20, "the last faults table: {figures}");
    assert_eq!(figures["schools"], 1, "{figures}");
    assert!(
        figures["fault_rules"]
            .as_array()
            .is_some_and(|rules| rules.iter().any(|rule| rule == "UWLR-VOLGORDE")),
        "{figures}"
    );
    assert!(
        attribute(&dom.stdout, "data-error").is_none(),
        "{}",
        dom.stdout
    );
    let console: Vec<&str> = dom
        .stderr
        .lines()
        .filter(|line| line.contains("CONSOLE") || line.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "console messages: {console:#?}");

    // The screenshot the README shows, refreshed when UWLR_UPDATE_SCREENSHOT is set.
    if std::env::var_os("UWLR_UPDATE_SCREENSHOT").is_some() {
        let shot = crate::harness::repo_root().join("docs/status.png");
        std::fs::create_dir_all(shot.parent().expect("docs")).expect("docs dir");
        let profile = tempfile::tempdir().expect("profile dir");
        chromium(
            profile.path(),
            &url,
            &[
                &format!("--screenshot={}", shot.display()),
                "--window-size=1280,1100",
                "--hide-scrollbars",
            ],
        );
        assert!(shot.is_file());
    }
}

struct Browsed {
    stdout: String,
    stderr: String,
}

/// Runs headless Chromium once on `url`, with virtual time so the page's fetch and drawing finish.
fn chromium(profile: &Path, url: &str, extra: &[&str]) -> Browsed {
    let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .expect("chromium (Debian package chromium, installed by .ci/setup)");
    let mut command = Command::new(binary);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=8000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null());
    let output = command.output().expect("run chromium");
    Browsed {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The value of the first `name="…"` attribute in `html`, unescaped.
fn attribute(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("{name}=\""))? + name.len() + 2;
    let end = start + html[start..].find('"')?;
    Some(
        html[start..end]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}
