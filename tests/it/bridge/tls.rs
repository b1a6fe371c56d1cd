//! Delivery over HTTPS: LRSs behind a private CA (rcgen), the system store, `lrs add --ca-file` and the causes `outbox status` names.

use crate::bridge::standin::StandIn;
use crate::bridge::{add_lrs, WAIT};
use crate::harness::{accepted_samples, spawn_gateway, Gateway, Options};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A private CA that signs server certificates for stand-in LRSs.
struct PrivateCa {
    certificate: rcgen::Certificate,
    key: KeyPair,
}

impl PrivateCa {
    fn new() -> PrivateCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Stand-in LRS private CA");
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        PrivateCa { certificate, key }
    }

    /// Writes the CA certificate as PEM to `dir/name`.
    fn write_pem(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.certificate.pem()).unwrap();
        path
    }

    /// A server configuration with a certificate for `names`, signed by this CA; `expired`
    /// makes one that ended in 2021.
    fn server(&self, names: &[&str], expired: bool) -> Arc<rustls::ServerConfig> {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "stand-in LRS");
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .unwrap();
        let chain = vec![certificate.der().clone()];
        let private_key = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .unwrap();
        Arc::new(config)
    }
}

/// `outbox status --json`, by LRS name.
fn status_by_lrs(gateway: &Gateway) -> serde_json::Map<String, Value> {
    let text = gateway.cli_stdout(&["outbox", "status", "--json"]);
    let status: Value = serde_json::from_str(&text).unwrap();
    status["lrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["lrs"].as_str().unwrap().to_string(), row.clone()))
        .collect()
}

/// Before: every LRS failed with `connection failed: error sending request`, and a private CA
/// could not be trusted at all. Now one gateway with seven LRSs: the one given its CA gets
/// every statement, and each of the others names its own cause in `outbox status`, text and
/// JSON; the log warns once per cause, not once per retry.
#[test]
fn issue14_a_private_ca_is_trusted_with_ca_file_and_outbox_status_names_each_cause() {
    let ca = PrivateCa::new();
    let good = StandIn::start_tls(ca.server(&["127.0.0.1"], false));
    let other_name = StandIn::start_tls(ca.server(&["lrs.example"], false));
    let expired = StandIn::start_tls(ca.server(&["127.0.0.1"], true));
    let slow = StandIn::start();
    slow.with(|state| state.every_delay = Duration::from_secs(5));
    let gateway = spawn_gateway(Options::fast_xapi());
    let ca_file = ca.write_pem(gateway.scratch(), "private-ca.pem");
    let ca_file = ca_file.to_str().unwrap();
    let down = crate::bridge::standin::reserve();
    let refused = format!("https://127.0.0.1:{}/xAPI/statements", down.port);

    add_lrs(&gateway, "without-ca", &good.url(), &[]);
    add_lrs(&gateway, "with-ca", &good.url(), &["--ca-file", ca_file]);
    add_lrs(
        &gateway,
        "other-name",
        &other_name.url(),
        &["--ca-file", ca_file],
    );
    add_lrs(&gateway, "expired", &expired.url(), &["--ca-file", ca_file]);
    add_lrs(&gateway, "refused", &refused, &[]);
    add_lrs(
        &gateway,
        "no-such-host",
        "https://lrs.invalid/xAPI/statements",
        &[],
    );
    add_lrs(&gateway, "slow", &slow.url(), &[]);
    gateway.post_accepted(&accepted_samples());

    gateway.wait_delivered("with-ca", WAIT);
    let generated = gateway.statement_ids();
    assert_eq!(good.stored_ids(), generated);

    let expected = [
        ("without-ca", "certificate refused:"),
        ("without-ca", "UnknownIssuer"),
        ("without-ca", "--ca-file"),
        ("other-name", "certificate not valid for name \"127.0.0.1\""),
        ("expired", "certificate expired"),
        ("refused", "connection failed:"),
        ("refused", "Connection refused"),
        ("no-such-host", "dns error"),
        ("slow", "timeout:"),
    ];
    gateway.wait_for("every failing LRS to have an error", WAIT, || {
        let status = status_by_lrs(&gateway);
        expected
            .iter()
            .all(|(lrs, _)| status[*lrs]["last_error"].is_string())
    });
    let status = status_by_lrs(&gateway);
    for (lrs, wanted) in expected {
        let row = &status[lrs];
        let error = row["last_error"].as_str().unwrap();
        assert!(error.contains(wanted), "{lrs}: {error:?} lacks {wanted:?}");
        assert!(
            !error.contains("/xAPI/statements"),
            "{lrs}: the URL is not repeated: {error}"
        );
        assert_eq!(
            row["pending"].as_i64().unwrap(),
            generated.len() as i64,
            "{lrs}"
        );
    }
    assert!(status["with-ca"]["last_error"].is_null());
    let text = gateway.cli_stdout(&["outbox", "status"]);
    assert!(text.contains("UnknownIssuer"), "{text}");
    assert!(text.contains("Connection refused"), "{text}");

    // The CA is stored with the LRS (shown by fingerprint), not as a path.
    let listed = gateway.cli_stdout(&["lrs", "list", "--json"]);
    let with_ca: Value = listed
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|row| row["name"] == "with-ca")
        .unwrap();
    assert_eq!(with_ca["ca_sha256"].as_array().unwrap().len(), 1);
    std::fs::remove_file(ca_file).unwrap();

    // Retries of the same failure are logged at debug; the warning names the cause once.
    let repeats = |logs: &str| {
        logs.lines()
            .filter(|line| {
                line.contains("without-ca") && line.contains("failed again the same way")
            })
            .count()
    };
    gateway.wait_for("two retries of without-ca", WAIT, || {
        repeats(&gateway.logs()) >= 2
    });
    let logs = gateway.logs();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("without-ca") && line.contains("delivery failed; retrying"))
        .collect();
    // One warning for the cause, and one more only after another cause came between (a
    // timeout on a starved machine, say).
    let unknown_issuer = warnings
        .iter()
        .filter(|line| line.contains("UnknownIssuer"))
        .count();
    assert_eq!(
        unknown_issuer,
        1 + warnings.len() - unknown_issuer,
        "{warnings:#?}"
    );
}

/// Before: the worker trusted only the roots compiled into the binary, so a CA the host
/// trusts (here through SSL_CERT_FILE, which the system store honours) did not count.
#[test]
fn issue14_the_system_store_is_trusted() {
    let ca = PrivateCa::new();
    let store = tempfile::tempdir().unwrap();
    let bundle = ca.write_pem(store.path(), "system-bundle.pem");
    let good = StandIn::start_tls(ca.server(&["127.0.0.1"], false));
    let gateway =
        spawn_gateway(Options::fast_xapi().envs(&[("SSL_CERT_FILE", bundle.to_str().unwrap())]));
    add_lrs(&gateway, "system", &good.url(), &[]);
    gateway.post_accepted(&accepted_samples());
    let generated = gateway.statement_ids();
    // Through the CLI, so that a failure shows the cause the gateway recorded.
    let started = std::time::Instant::now();
    while good.stored_ids() != generated {
        let status = status_by_lrs(&gateway);
        assert!(
            started.elapsed() < WAIT,
            "not delivered: {}",
            status["system"]["last_error"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `lrs add --ca-file` refuses, with the reason, what is not a CA certificate, and stores nothing.
#[test]
fn issue14_lrs_add_refuses_a_ca_file_that_holds_no_usable_certificate() {
    let gateway = spawn_gateway(Options::fast_xapi());
    let write = |name: &str, text: &str| {
        let path = gateway.scratch().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let ca = PrivateCa::new();
    let key = write("key.pem", &ca.key.serialize_pem());
    let cases = [
        (
            gateway
                .scratch()
                .join("missing.pem")
                .to_str()
                .unwrap()
                .to_string(),
            "cannot open",
        ),
        (
            write("text.pem", "not a certificate\n"),
            "holds no PEM certificate",
        ),
        (key, "holds a private key"),
        (
            write(
                "garbage.pem",
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            ),
            "not a usable X.509 certificate",
        ),
        (
            write("truncated.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n"),
            "not valid PEM",
        ),
    ];
    for (path, wanted) in cases {
        let output = gateway.cli(&[
            "lrs",
            "add",
            "bad",
            "--url",
            "https://lrs.example/xAPI/statements",
            "--ca-file",
            &path,
        ]);
        let stderr = output.stderr.as_str();
        assert!(!output.status.success(), "{path}");
        assert!(stderr.contains(wanted), "{path}: {stderr}");
        assert!(stderr.contains("--ca-file"), "{path}: {stderr}");
    }
    let good = ca.write_pem(gateway.scratch(), "ca.pem");
    let output = gateway.cli(&[
        "lrs",
        "add",
        "plain",
        "--url",
        "http://127.0.0.1:9/xAPI/statements",
        "--ca-file",
        good.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(output
        .stderr
        .as_str()
        .contains("no effect on the plain http URL"));
    assert_eq!(gateway.cli_stdout(&["lrs", "list"]), "");
}

/// A stored CA that no longer loads (the database edited by hand, say) stops delivery to that
/// LRS only, and says so once in the log and in `outbox status`, instead of at every poll.
#[test]
fn issue14_a_stored_ca_that_does_not_load_is_named_once() {
    let ca = PrivateCa::new();
    let good = StandIn::start_tls(ca.server(&["127.0.0.1"], false));
    let gateway = spawn_gateway(Options::fast_xapi());
    let ca_file = ca.write_pem(gateway.scratch(), "ca.pem");
    add_lrs(
        &gateway,
        "broken",
        &good.url(),
        &["--ca-file", ca_file.to_str().unwrap()],
    );
    gateway
        .db_writable()
        .execute(
            "UPDATE xapi_subscriptions SET ca_pem = ?1 WHERE name = 'broken'",
            ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
        )
        .unwrap();
    gateway.wait_for("the error in outbox status", WAIT, || {
        status_by_lrs(&gateway)["broken"]["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("cannot build the HTTP client"))
    });
    // Posted only now: before the worker saw the change, a task with the good CA could deliver.
    gateway.post_accepted(&accepted_samples()[..1]);
    gateway.wait_published();
    // Ten poll intervals later, still one line.
    std::thread::sleep(Duration::from_millis(1000));
    let logs = gateway.logs();
    let lines = logs
        .lines()
        .filter(|line| line.contains("cannot build the HTTP client"))
        .count();
    assert_eq!(lines, 1, "{logs}");
    assert!(good.stored_ids().is_empty());
}
