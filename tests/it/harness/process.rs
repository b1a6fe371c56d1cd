//! A child process (the gateway, an LRS, Prometheus) whose output is drained to a log file and read back for the line that reports the address it bound.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

/// Which output stream carries the line that reports the bound address.
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A started child; killed (SIGKILL) when dropped.
///
/// Every program the tests start binds port 0 and says which port it got, so no test
/// reserves a port and releases it for another process to take (a race).
pub struct Process {
    child: Child,
    /// Lines of the drained stream (a mutex so the owner can be shared between threads).
    lines: Mutex<mpsc::Receiver<String>>,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with `stream` piped, and drains that stream on a thread (into `log`,
    /// and into the channel [`Process::wait_for_line`] reads), so the child never blocks
    /// on a full pipe. The caller decides where the other stream goes.
    pub fn spawn(mut command: Command, stream: Stream, log: &Path) -> Process {
        match stream {
            Stream::Stdout => command.stdout(Stdio::piped()),
            Stream::Stderr => command.stderr(Stdio::piped()),
        };
        let description = format!("{command:?}");
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {description}: {error}"));
        let reader: Box<dyn Read + Send> = match stream {
            Stream::Stdout => Box::new(child.stdout.take().expect("piped stdout")),
            Stream::Stderr => Box::new(child.stderr.take().expect("piped stderr")),
        };
        let mut file = std::fs::File::create(log).expect("output log file");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                let _ = sender.send(line);
            }
        });
        Process {
            child,
            lines: Mutex::new(lines),
            log: log.to_path_buf(),
        }
    }

    /// Reads lines until one contains `marker` and returns what follows it on that line
    /// (trimmed); an error when the deadline passes or the child closes the stream first.
    pub fn wait_for_line(&self, marker: &str, deadline: Instant) -> Result<String, String> {
        let lines = self.lines.lock().expect("lines");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some((_, rest)) = line.split_once(marker) {
                        return Ok(rest.trim().to_string());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!("no line with {marker:?} before the deadline"))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!("the output ended without a line with {marker:?}"))
                }
            }
        }
    }

    /// Waits for the line `{marker}http://ADDR…` and returns the port of ADDR.
    pub fn wait_for_port(&self, marker: &str, deadline: Instant) -> Result<u16, String> {
        let rest = self.wait_for_line(marker, deadline)?;
        let address = rest.split_whitespace().next().unwrap_or_default();
        let address = address.split_once("://").map_or(address, |(_, tail)| tail);
        let port = address.rsplit_once(':').map_or(address, |(_, port)| port);
        port.trim_end_matches('/')
            .parse()
            .map_err(|error| format!("no port in {rest:?}: {error}"))
    }

    /// The drained stream so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// SIGKILL, then reaps the child.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
