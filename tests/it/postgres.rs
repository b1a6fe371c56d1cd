//! The PostgreSQL engine (issue 12) as far as it goes: a throwaway cluster, `migrate` and `init` against it, and `serve` and `backup` refusing it.

use crate::harness::postgres::Postgres;

/// The harness itself: the cluster accepts the generated password only, runs with fsync
/// on, and is gone (process and directory) once dropped.
#[test]
fn a_throwaway_cluster_starts_answers_and_is_removed() {
    let cluster = Postgres::start();
    assert_eq!(cluster.psql("SHOW fsync"), "on");
    assert_eq!(cluster.psql("SELECT current_database()"), "uwlr");
    let dir = cluster.dir().to_path_buf();
    let pid = cluster.pid();
    assert!(dir.join("data/PG_VERSION").is_file());
    drop(cluster);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    // SAFETY: signal 0 only asks whether the process exists.
    let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    assert!(!alive, "the postmaster {pid} still runs");
}
