//! The gateway's CLI run as a child process with a deadline, and its output.

use super::{binary, repo_root, CALL_TIMEOUT};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A command for the gateway binary, run in the repository root, that does not inherit
/// the caller's `UWLR_*` settings.
pub fn gateway_command() -> Command {
    let mut command = Command::new(binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("UWLR_") {
            command.env_remove(&name);
        }
    }
    command.current_dir(repo_root());
    command
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
    #[track_caller]
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

/// Runs `uwlr-gateway --data-dir DIR ARGS...` in the repository root, without `UWLR_*` settings.
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
