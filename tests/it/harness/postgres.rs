//! A throwaway PostgreSQL cluster from Debian's packages: initdb in a temp dir as an unprivileged user, on a free port, stopped and removed on drop; and the one shared cluster that every gateway of a test process gets a database in under `UWLR_TEST_ENGINE=postgres`.
//!
//! `initdb` and `postgres` refuse to run as root, and the tests run as root in CI, so as
//! root the cluster belongs to `nobody` (`setpriv`); as any other user it is that user's.
//! The server runs with `fsync` on and password (SCRAM) authentication only, so the
//! database URL a test gets holds a real, generated password.
//! PostgreSQL cannot bind port 0 and report it, so a port is drawn at random below the
//! ephemeral range and the start is tried again on another one when it is taken; no port
//! is ever reserved by binding and releasing it.
//! Every cluster lives in `$TMPDIR/uwlr-pg-clusters/<pid>-<random>`, so the next start
//! removes what a test process that died (SIGKILL, abort) left behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The superuser of every throwaway cluster, and the database a test gets.
pub const SUPERUSER: &str = "postgres";
pub const DATABASE: &str = "uwlr";

/// How long initdb plus the first start may take on a busy 2-core machine.
const START_DEADLINE: Duration = Duration::from_secs(90);

/// A running throwaway cluster; stopped (immediate shutdown) and removed when dropped,
/// also when the test panics.
pub struct Postgres {
    /// Holds `data/` (the cluster), the socket, the password file and the server log;
    /// under [`clusters_dir`], named after this process.
    root: PathBuf,
    server: Option<Child>,
    pub port: u16,
    password: String,
    bin: PathBuf,
}

impl Postgres {
    /// initdb, start and wait until the cluster accepts connections, then create [`DATABASE`].
    pub fn start() -> Postgres {
        let bin = bindir();
        let root = new_cluster_dir();
        let password = random_password();
        let password_file = root.join("password");
        std::fs::write(&password_file, format!("{password}\n")).expect("password file");
        give_to_cluster_user(&root);
        let initdb = run_as_cluster_user(&bin.join("initdb"))
            .arg("-D")
            .arg(root.join("data"))
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
        let log_path = self.root.join(format!("server-{}.log", self.port));
        let log = std::fs::File::create(&log_path).expect("server log");
        give_to_cluster_user(&log_path);
        let server = run_as_cluster_user(&self.bin.join("postgres"))
            .arg("-D")
            .arg(self.root.join("data"))
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("port={}", self.port)])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.root.display()))
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
    #[track_caller]
    pub fn psql_as(&self, database: &str, sql: &str) -> String {
        self.try_psql_as(database, sql)
            .unwrap_or_else(|error| panic!("psql {sql:?} failed: {error}"))
    }

    /// Runs SQL in `database` with psql; its output, or what psql printed on stderr.
    pub fn try_psql_as(&self, database: &str, sql: &str) -> Result<String, String> {
        let output = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", SUPERUSER, "-d", database, "-c", sql])
            .env("PGPASSWORD", &self.password)
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("cannot run psql: {error}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
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
        &self.root
    }

    /// Turns TLS on with this certificate and key (PEM) and, after a reload, accepts only
    /// TLS connections over TCP (`hostssl` in pg_hba.conf).
    pub fn require_tls(&self, certificate_pem: &str, key_pem: &str) {
        use std::os::unix::fs::PermissionsExt as _;
        let data = self.root.join("data");
        let certificate = data.join("server.crt");
        let key = data.join("server.key");
        std::fs::write(&certificate, certificate_pem).expect("server certificate");
        std::fs::write(&key, key_pem).expect("server key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("key mode");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("pg_hba.conf");
        give_to_cluster_user(&data);
        self.psql("ALTER SYSTEM SET ssl = on");
        self.psql("SELECT pg_reload_conf()");
        std::thread::sleep(Duration::from_millis(500));
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
        if let Some(server) = self.server.take() {
            stop_postmaster(server.id());
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// SIGQUIT (immediate shutdown) to our child postmaster `pid`, then reaps it; SIGKILL
/// after 30 s.
fn stop_postmaster(pid: u32) {
    let pid = pid as libc::pid_t;
    // SAFETY: kill and waitpid on our own child, whose pid we hold and have not reaped.
    unsafe {
        libc::kill(pid, libc::SIGQUIT);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut status = 0;
        // SAFETY: as above; WNOHANG does not block.
        let reaped = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if reaped != 0 {
            return;
        }
        if Instant::now() > deadline {
            // SAFETY: as above.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Which engine the integration tests run the gateway on (`UWLR_TEST_ENGINE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestEngine {
    Sqlite,
    Postgres,
}

/// `UWLR_TEST_ENGINE`: `sqlite` (the default) or `postgres`; anything else fails the test.
pub fn test_engine() -> TestEngine {
    static ENGINE: OnceLock<TestEngine> = OnceLock::new();
    *ENGINE.get_or_init(|| match std::env::var("UWLR_TEST_ENGINE").as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("") | Ok("sqlite") => TestEngine::Sqlite,
        Ok("postgres") => TestEngine::Postgres,
        other => panic!("UWLR_TEST_ENGINE must be sqlite or postgres, not {other:?}"),
    })
}

/// The one cluster of this test process, started at the first call; every gateway gets a
/// database of its own in it ([`create_database`]).
///
/// A static is never dropped, so the cluster ends with the process: an `atexit` handler
/// stops it and removes its directory on a normal exit, and the postmaster's parent-death
/// signal (SIGQUIT) stops it when the process is killed. That signal follows the *thread*
/// that started the postmaster, so a thread that never ends starts it, not the test that
/// happens to ask first; the directory of a killed process goes at the next start.
pub fn shared() -> &'static Postgres {
    static SHARED: OnceLock<Postgres> = OnceLock::new();
    SHARED.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("postgres-parent".into())
            .spawn(move || {
                let started = std::panic::catch_unwind(Postgres::start);
                let _ = sender.send(started);
                loop {
                    std::thread::park();
                }
            })
            .expect("start the postmaster's parent thread");
        let cluster = match receiver.recv().expect("the postmaster's parent thread") {
            Ok(cluster) => cluster,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        // SAFETY: registers a plain function without arguments.
        unsafe {
            libc::atexit(stop_shared_at_exit);
        }
        cluster
    });
    SHARED.get().expect("just initialised")
}

/// At process exit: stops the shared cluster and removes its directory.
extern "C" fn stop_shared_at_exit() {
    // The shared cluster's `OnceLock` is private to `shared`; reach it through a second
    // call, which cannot start a cluster here because the handler exists only after one.
    let cluster = shared();
    if let Some(server) = cluster.server.as_ref() {
        stop_postmaster(server.id());
    }
    let _ = std::fs::remove_dir_all(&cluster.root);
}

/// Creates a database of its own in the [`shared`] cluster (a copy of `template` when
/// given, which no session may use meanwhile); returns its name.
pub fn create_database(template: Option<&str>) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    let cluster = shared();
    let name = format!("g_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let sql = match template {
        None => format!("CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'"),
        Some(template) => format!("CREATE DATABASE {name} TEMPLATE {template}"),
    };
    // A gateway stopped a moment ago may still have sessions ending on the template.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match cluster.try_psql_as("postgres", &sql) {
            Ok(_) => return name,
            Err(error) if error.contains("being accessed by other users") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => panic!(
                "{sql} failed: {error}\nsessions on it: {}",
                cluster.psql_as(
                    "postgres",
                    &format!("SELECT string_agg(application_name || ' ' || state, ', ') FROM pg_stat_activity WHERE datname = '{}'", template.unwrap_or(""))
                )
            ),
        }
    }
}

/// Drops a database of the [`shared`] cluster, ending its sessions; never panics (it
/// runs in `Drop`), reports a failure on stderr.
pub fn drop_database(name: &str) {
    if let Err(error) = shared().try_psql_as(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    ) {
        eprintln!("cannot drop the test database {name}: {error}");
    }
}

/// Where every throwaway cluster's directory lives.
fn clusters_dir() -> PathBuf {
    std::env::temp_dir().join("uwlr-pg-clusters")
}

/// A new directory `<pid>-<random>` under [`clusters_dir`], after removing those of test
/// processes that are gone.
fn new_cluster_dir() -> PathBuf {
    let parent = clusters_dir();
    std::fs::create_dir_all(&parent).expect("create the clusters' dir");
    remove_stale_clusters(&parent);
    tempfile::Builder::new()
        .prefix(&format!("{}-", std::process::id()))
        .tempdir_in(&parent)
        .expect("temp dir")
        .keep()
}

/// Removes the cluster dirs whose test process no longer runs, first killing a postmaster
/// that still runs from one (it cannot have: its parent-death signal stopped it).
fn remove_stale_clusters(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|name| name.split('-').next())
            .and_then(|pid| pid.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        if process_runs(owner) {
            continue;
        }
        let dir = entry.path();
        if let Some(postmaster) = std::fs::read_to_string(dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse::<libc::pid_t>().ok())
        {
            let cmdline = std::fs::read(format!("/proc/{postmaster}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&*dir.to_string_lossy()) {
                // SAFETY: a signal to the postmaster that serves this dead process's cluster.
                unsafe {
                    libc::kill(postmaster, libc::SIGKILL);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Whether process `pid` exists.
fn process_runs(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    let sent = unsafe { libc::kill(pid, 0) };
    sent == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
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
