//! Packaging: the systemd unit and the Dockerfile run the real `serve`, readiness reaches the
//! service manager, `--version` and `/health` name the commit, completions and the man page.

use crate::harness::process::{Process, Stream};
use crate::harness::{binary, repo_root};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A gateway started from a packaging file's command line; killed when dropped.
struct Started {
    process: Process,
    base_url: String,
    /// Holds the stdout log.
    _logs: tempfile::TempDir,
}

/// Runs `args` (a packaging file's command line, the binary first) with the data dir and
/// listen address replaced, and waits for the `listening on` line.
fn start(args: &[String], data_dir: &Path, environment: &[(&str, &Path)]) -> Started {
    let args: Vec<String> = args
        .iter()
        .map(|arg| match arg.as_str() {
            "/var/lib/uwlr-gateway" => data_dir.display().to_string(),
            "0.0.0.0:8080" => "127.0.0.1:0".to_string(),
            _ => arg.clone(),
        })
        .collect();
    let mut command = Command::new(binary());
    command
        .args(&args[1..])
        .env_remove("UWLR_CONFIG")
        .env("UWLR_DURABILITY", "normal")
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in environment {
        command.env(name, value);
    }
    let logs = tempfile::tempdir().expect("temp dir");
    let process = Process::spawn(command, Stream::Stdout, &logs.path().join("stdout.log"));
    let base_url = process
        .wait_for_line(
            "uwlr-gateway listening on ",
            Instant::now() + Duration::from_secs(60),
        )
        .unwrap_or_else(|error| panic!("{args:?} never said it was listening: {error}"));
    Started {
        process,
        base_url,
        _logs: logs,
    }
}

fn get(url: &str) -> (u16, String) {
    let response = reqwest::blocking::get(url).expect("GET");
    (response.status().as_u16(), response.text().unwrap())
}

fn head_commit() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo_root())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// `--version` and `/health` name the commit the binary was built from.
#[test]
fn version_and_health_name_the_commit() {
    let output = Command::new(binary()).arg("--version").output().unwrap();
    let version = String::from_utf8(output.stdout).unwrap();
    let commit = head_commit().expect("the tests run in a git checkout");
    assert_eq!(
        version.trim(),
        format!(
            "uwlr-gateway {} (commit {commit})",
            env!("CARGO_PKG_VERSION")
        )
    );
    let gateway = crate::harness::spawn_default();
    let health = gateway.get("/health").json();
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"), "{health}");
    assert_eq!(health["commit"], commit, "{health}");
}

/// The unit's `ExecStart`, split into words.
fn unit_exec_start() -> Vec<String> {
    let unit = std::fs::read_to_string(repo_root().join("packaging/uwlr-gateway.service")).unwrap();
    let line = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("ExecStart");
    line.split_whitespace().map(String::from).collect()
}

/// The systemd unit starts the real `serve` and, being `Type=notify`, hears `READY=1` once
/// the gateway answers; `systemd-analyze verify` accepts the unit.
#[test]
fn systemd_unit_serves_and_notifies_readiness() {
    let exec_start = unit_exec_start();
    assert_eq!(exec_start[0], "/usr/local/bin/uwlr-gateway");
    let scratch = tempfile::tempdir().unwrap();
    let socket_path = scratch.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let data_dir = scratch.path().join("data");
    let gateway = start(&exec_start, &data_dir, &[("NOTIFY_SOCKET", &socket_path)]);
    let mut message = [0u8; 1024];
    let length = socket.recv(&mut message).expect("a notification");
    let message = String::from_utf8_lossy(&message[..length]).to_string();
    assert!(message.lines().any(|line| line == "READY=1"), "{message}");
    assert!(message.contains("STATUS=listening on http://"), "{message}");
    let (status, body) = get(&format!("{}/health", gateway.base_url));
    assert_eq!(status, 200, "{body}");
    assert!(data_dir.join("gateway.sqlite").is_file());
    // SIGTERM, as systemctl stop sends: STOPPING=1 while it drains.
    // SAFETY: kill only sends a signal to the child this test started.
    unsafe {
        libc::kill(gateway.process.id() as i32, libc::SIGTERM);
    }
    let mut buffer = [0u8; 1024];
    let length = socket.recv(&mut buffer).expect("a stopping notification");
    let stopping = String::from_utf8_lossy(&buffer[..length]).to_string();
    assert!(
        stopping.lines().any(|line| line == "STOPPING=1"),
        "{stopping}"
    );

    // The unit as installed, with this binary where it expects it.
    let unit = std::fs::read_to_string(repo_root().join("packaging/uwlr-gateway.service"))
        .unwrap()
        .replace(
            "/usr/local/bin/uwlr-gateway",
            &binary().display().to_string(),
        );
    let unit_path = scratch.path().join("uwlr-gateway.service");
    std::fs::write(&unit_path, unit).unwrap();
    let verified = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit_path)
        .output()
        .expect("systemd-analyze (package systemd) runs");
    let complaints = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "{complaints}");
    assert!(
        !complaints.contains("uwlr-gateway.service"),
        "systemd-analyze: {complaints}"
    );
}

/// One instruction's exec-form (JSON array) arguments from the Dockerfile.
fn dockerfile_array(dockerfile: &str, instruction: &str) -> Vec<String> {
    let line = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{instruction} ")))
        .unwrap_or_else(|| panic!("no {instruction}"));
    serde_json::from_str(line).unwrap_or_else(|error| panic!("{instruction}: {error}"))
}

/// The image's ENTRYPOINT plus CMD is the README's `serve`, and its HEALTHCHECK URL answers
/// 200 from it (no container engine here: the command lines are run directly).
#[test]
fn dockerfile_command_serves_and_its_healthcheck_answers() {
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let mut command = dockerfile_array(&dockerfile, "ENTRYPOINT");
    command.extend(dockerfile_array(&dockerfile, "CMD"));
    assert_eq!(command[0], "uwlr-gateway");
    let volume = dockerfile_array(&dockerfile, "VOLUME");
    assert_eq!(volume, ["/var/lib/uwlr-gateway"]);
    assert!(command.contains(&volume[0]), "{command:?}");
    let user = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix("USER "))
        .expect("USER");
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "{user}"
    );
    let healthcheck = dockerfile
        .lines()
        .find_map(|line| line.trim().strip_prefix("CMD [\"curl\""))
        .expect("HEALTHCHECK CMD curl");
    let url = healthcheck
        .split('"')
        .find(|part| part.starts_with("http://"))
        .expect("a URL");
    let path = &url["http://127.0.0.1:8080".len()..];
    let scratch = tempfile::tempdir().unwrap();
    let gateway = start(&command, &scratch.path().join("data"), &[]);
    let (status, body) = get(&format!("{}{path}", gateway.base_url));
    assert_eq!(status, 200, "{path}: {body}");
}

/// `completions SHELL` prints a script for every shell clap knows (bash's is valid bash), and
/// `man` a page groff renders without warnings that names every subcommand.
#[test]
fn completions_and_man_page_come_from_the_clap_definitions() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = Command::new(binary())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(script.contains("dead-letters"), "{shell}: {script}");
    }
    let scratch = tempfile::tempdir().unwrap();
    let bash_script = scratch.path().join("uwlr-gateway.bash");
    let output = Command::new(binary())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    std::fs::write(&bash_script, output.stdout).unwrap();
    let checked = Command::new("bash")
        .arg("-n")
        .arg(&bash_script)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    let page = Command::new(binary()).arg("man").output().unwrap();
    assert!(page.status.success());
    let page_path = scratch.path().join("uwlr-gateway.1");
    std::fs::write(&page_path, &page.stdout).unwrap();
    let rendered = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww"])
        .arg(&page_path)
        .output()
        .expect("groff runs");
    let warnings = String::from_utf8_lossy(&rendered.stderr);
    assert!(
        rendered.status.success() && warnings.is_empty(),
        "{warnings}"
    );
    let text = String::from_utf8_lossy(&rendered.stdout);
    for subcommand in [
        "init",
        "serve",
        "validate",
        "backup",
        "outbox",
        "completions",
    ] {
        assert!(text.contains(subcommand), "the man page lacks {subcommand}");
    }
}
