//! A throwaway PostgreSQL cluster from Debian's packages: initdb in a temp dir as an unprivileged user, on a free port, stopped and removed on drop.
//!
//! `initdb` and `postgres` refuse to run as root, and the tests run as root in CI, so as
//! root the cluster belongs to `nobody` (`setpriv`); as any other user it is that user's.
//! The server runs with `fsync` on and password (SCRAM) authentication only, so the
//! database URL a test gets holds a real, generated password.
//! PostgreSQL cannot bind port 0 and report it, so a port is drawn at random below the
//! ephemeral range and the start is tried again on another one when it is taken; no port
//! is ever reserved by binding and releasing it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The superuser of every throwaway cluster, and the database a test gets.
pub const SUPERUSER: &str = "postgres";
pub const DATABASE: &str = "uwlr";

/// How long initdb plus the first start may take on a busy 2-core machine.
const START_DEADLINE: Duration = Duration::from_secs(90);

/// A running throwaway cluster; stopped (immediate shutdown) and removed when dropped,
/// also when the test panics.
pub struct Postgres {
    /// Holds `data/` (the cluster), the socket, the password file and the server log.
    root: tempfile::TempDir,
    server: Option<Child>,
    pub port: u16,
    password: String,
    bin: PathBuf,
}

impl Postgres {
    /// initdb, start and wait until the cluster accepts connections, then create [`DATABASE`].
    pub fn start() -> Postgres {
        let bin = bindir();
        let root = tempfile::Builder::new()
            .prefix("uwlr-pg-")
            .tempdir()
            .expect("temp dir");
        let password = random_password();
        let password_file = root.path().join("password");
        std::fs::write(&password_file, format!("{password}\n")).expect("password file");
        give_to_cluster_user(root.path());
        let initdb = run_as_cluster_user(&bin.join("initdb"))
            .arg("-D")
            .arg(root.path().join("data"))
            .args(["-U", SUPERUSER, "--auth=scram-sha-256", "--pwfile"])
            .arg(&password_file)
            .args(["-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
            .output()
            .expect("run initdb (is Debian's postgresql package installed? .ci/setup installs it)");
        assert!(
            initdb.status.success(),
            "initdb failed: {}\n{}",
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        );
        let mut postgres = Postgres {
            root,
            server: None,
            port: 0,
            password,
            bin,
        };
        let deadline = Instant::now() + START_DEADLINE;
        for _ in 0..20 {
            postgres.port = rand::random::<u16>() % 20_000 + 12_000;
            if postgres.try_start(deadline) {
                postgres.psql_as(
                    "postgres",
                    &format!("CREATE DATABASE {DATABASE} TEMPLATE template0 ENCODING 'UTF8'"),
                );
                return postgres;
            }
        }
        panic!("no free port for PostgreSQL after 20 tries");
    }

    /// Starts the server on `self.port`; false when the port is taken (try another).
    fn try_start(&mut self, deadline: Instant) -> bool {
        let log_path = self.root.path().join(format!("server-{}.log", self.port));
        let log = std::fs::File::create(&log_path).expect("server log");
        give_to_cluster_user(&log_path);
        let server = run_as_cluster_user(&self.bin.join("postgres"))
            .arg("-D")
            .arg(self.root.path().join("data"))
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("port={}", self.port)])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.root.path().display()
            ))
            .args(["-c", "fsync=on", "-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.server = Some(server);
        loop {
            if let Some(status) = self
                .server
                .as_mut()
                .and_then(|s| s.try_wait().ok().flatten())
            {
                self.server = None;
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                if log.contains("Address already in use") {
                    return false;
                }
                panic!("postgres exited at start ({status}):\n{log}");
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .expect("run pg_isready");
            if ready.success() {
                return true;
            }
            if Instant::now() > deadline {
                panic!(
                    "postgres did not accept connections within {START_DEADLINE:?}:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/uwlr`.
    pub fn url(&self) -> String {
        self.url_of(DATABASE)
    }

    /// The URL of another database of this cluster.
    pub fn url_of(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// The generated password (to check that no output shows it).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Runs SQL in [`DATABASE`] with psql; its output unaligned, tuples only.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_as(DATABASE, sql)
    }

    /// Runs SQL in `database` with psql, failing the test when it fails.
    pub fn psql_as(&self, database: &str, sql: &str) -> String {
        let output = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", SUPERUSER, "-d", database, "-c", sql])
            .env("PGPASSWORD", &self.password)
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// A psql session (its `application_name` is `name`) that reads SQL from a pipe, so a
    /// test can hold a transaction open while others commit.
    pub fn psql_session(&self, name: &str) -> PsqlSession {
        let child = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", SUPERUSER, "-d", DATABASE])
            .env("PGPASSWORD", &self.password)
            .env("PGAPPNAME", name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start psql");
        PsqlSession { child: Some(child) }
    }

    /// Waits until the session `name` sits in an open transaction with its statements done.
    pub fn wait_idle_in_transaction(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let sql = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}' AND state = 'idle in transaction'"
        );
        while self.psql(&sql) != "1" {
            assert!(
                Instant::now() < deadline,
                "{name} never held a transaction open"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.server.as_ref().expect("running").id()
    }

    /// The cluster's directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.root.path()
    }
}

/// A running psql fed line by line (see [`Postgres::psql_session`]).
pub struct PsqlSession {
    /// Taken by `finish`; killed on drop otherwise.
    child: Option<Child>,
}

impl PsqlSession {
    /// Sends one line of SQL.
    pub fn send(&mut self, sql: &str) {
        use std::io::Write as _;
        let child = self.child.as_mut().expect("psql runs");
        let stdin = child.stdin.as_mut().expect("psql's stdin");
        writeln!(stdin, "{sql}")
            .and_then(|()| stdin.flush())
            .expect("write to psql");
    }

    /// Closes the input and waits for psql to end, failing the test when a statement failed.
    pub fn finish(mut self) {
        let mut child = self.child.take().expect("psql runs");
        drop(child.stdin.take());
        let output = child.wait_with_output().expect("wait for psql");
        assert!(
            output.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PsqlSession {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Postgres {
    /// Immediate shutdown (SIGQUIT: nothing to keep), waited for, then the temp dir goes.
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            // SAFETY: kill sends a signal to our own child, whose pid we hold.
            unsafe {
                libc::kill(server.id() as libc::pid_t, libc::SIGQUIT);
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while server.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = server.kill();
                    let _ = server.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The newest installed server's binaries (Debian: /usr/lib/postgresql/VERSION/bin), or
/// `UWLR_TEST_PG_BINDIR`.
pub fn bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("UWLR_TEST_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("no PostgreSQL server under /usr/lib/postgresql: .ci/setup installs Debian's postgresql package")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `program` run as the cluster's user (`nobody` when we are root), ended with SIGQUIT
/// should the test process die without dropping the cluster.
fn run_as_cluster_user(program: &Path) -> Command {
    let mut command = Command::new("setpriv");
    if is_root() {
        command.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"]);
    }
    command.args(["--pdeathsig", "SIGQUIT", "--"]).arg(program);
    command
}

/// As root, hands `path` (recursively) to `nobody`, so the cluster's user may write it.
fn give_to_cluster_user(path: &Path) {
    if !is_root() {
        return;
    }
    let status = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown {} failed", path.display());
}

/// A random password of 24 letters and digits.
fn random_password() -> String {
    use rand::Rng as _;
    rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}
