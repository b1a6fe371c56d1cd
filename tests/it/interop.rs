//! Real SOAP clients built from `GET ?wsdl`: Python zeep and Node.js node-soap (installed by `.ci/setup`).
//!
//! A missing tool fails the test with a hint; it is never skipped.

use crate::harness::{
    repo_root, rows, run, spawn_default, CliOutput, Gateway, DEMO_KLANTCODE, DEMO_KLANTNAAM,
    DEMO_SLEUTEL,
};
use std::path::PathBuf;
use std::process::Command;

const SETUP_HINT: &str = "run .ci/setup (it installs the interop tools: .venv with zeep, tests/interop/node_modules with soap)";

fn interop_dir() -> PathBuf {
    repo_root().join("tests/interop")
}

/// Runs an interop script with the standard arguments and returns its output.
fn call(
    mut command: Command,
    gateway: &Gateway,
    aanmaakdatum: &str,
    leerlingid: &str,
) -> CliOutput {
    command.args([
        gateway.endpoint.as_str(),
        DEMO_KLANTCODE,
        DEMO_KLANTNAAM,
        DEMO_SLEUTEL,
        aanmaakdatum,
        leerlingid,
    ]);
    command.current_dir(interop_dir());
    run(command)
}

#[test]
fn zeep_calls_the_service_from_the_wsdl() {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: {SETUP_HINT}",
        python.display()
    );
    let probe = run({
        let mut command = Command::new(&python);
        command.args(["-c", "import zeep; print(zeep.__version__)"]);
        command
    });
    assert!(
        probe.status.success(),
        "zeep is not installed in .venv ({}): {SETUP_HINT}",
        probe.stderr.trim()
    );

    let gateway = spawn_default();
    let mut command = Command::new(&python);
    command.arg(interop_dir().join("zeep_call.py"));
    let output = call(command, &gateway, "2026-11-21T10:00:00", "LL0007");
    assert!(
        output.status.success(),
        "zeep_call.py failed:\n{}\n{}",
        output.stdout,
        output.stderr
    );
    assert!(output.stdout.contains("zeep accepted"), "{}", output.stdout);
    assert!(
        output
            .stdout
            .contains("zeep fault: soap:Client.AutorisatieOngeldig"),
        "{}",
        output.stdout
    );
    assert_eq!(
        rows(
            &gateway.db(),
            "SELECT afname_key, leerlingid, toetscode, score FROM toetsafnames"
        ),
        ["ZEEP-LL0007|LL0007|ZEEP-TOETS|7"],
        "zeep's message is stored, the faulted one is not"
    );
}

#[test]
fn node_soap_calls_the_service_from_the_wsdl() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        matches!(&node, Ok(output) if output.status.success()),
        "node is not available ({node:?}): {SETUP_HINT}"
    );
    let soap = interop_dir().join("node_modules/soap/package.json");
    assert!(soap.exists(), "{} is missing: {SETUP_HINT}", soap.display());

    let gateway = spawn_default();
    let mut command = Command::new("node");
    command.arg(interop_dir().join("soap_call.js"));
    let output = call(command, &gateway, "2026-11-21T11:00:00", "LL0008");
    assert!(
        output.status.success(),
        "soap_call.js failed:\n{}\n{}",
        output.stdout,
        output.stderr
    );
    assert!(
        output.stdout.contains("node-soap accepted"),
        "{}",
        output.stdout
    );
    assert!(
        output
            .stdout
            .contains("node-soap fault: soap:Client.AutorisatieOngeldig"),
        "{}",
        output.stdout
    );
    assert_eq!(
        rows(
            &gateway.db(),
            "SELECT afname_key, leerlingid, toetscode, score FROM toetsafnames"
        ),
        ["NODE-LL0008|LL0008|NODE-TOETS|6"],
        "node-soap's message is stored, the faulted one is not"
    );
}
