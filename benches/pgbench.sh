#!/usr/bin/env bash
# PostgreSQL's own commit ceiling on this machine (issue 12): pgbench's built-in simple-update
# script with 64 clients on a throwaway cluster, beside the SQLite reference of benches/run.sh
# (one fsync'd row per transaction), measured in the same run.
# Usage: benches/pgbench.sh [--quick]   (quick: 10 s instead of 30 s)
# The cluster is made as tests/it/harness/postgres.rs makes one: initdb in a temp dir as an
# unprivileged user (nobody, when run as root), fsync on, a free port, a generated password;
# it is stopped and removed at exit. Prints Markdown; also written to target/bench/pgbench.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh # pg_start, pg_stop, drip_binary
QUICK=${1:-}
DURATION=30
[ "$QUICK" = "--quick" ] && DURATION=10
CLIENTS=64
THREADS=2
OUT=$PWD/target/bench
mkdir -p "$OUT"

nice cargo build --release --bench drip --quiet
D=$(drip_binary)
trap pg_stop EXIT
pg_start /tmp $((CLIENTS + 20))
BIN=$PG_BIN

exec > >(tee "$OUT/pgbench.md")
echo "## Machine"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)"
echo "- cpu: $(nproc) x $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ //'), memory $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "- PostgreSQL: $("$BIN/postgres" --version), fsync on, synchronous_commit on, shared_buffers $(psql -X -t -A -d postgres -c 'SHOW shared_buffers')"
echo

# The SQLite reference first, before pgbench's writes leave PostgreSQL checkpointing.
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
reference=$("$D" sqlite-reference "$OUT" FULL 3 | sed 's/.*per_second=//')
"$BIN/pgbench" -i -q postgres > "$PG_DIR/pgbench-init.log" 2>&1 || { cat "$PG_DIR/pgbench-init.log" >&2; exit 1; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"$BIN/pgbench" -b simple-update -c $CLIENTS -j $THREADS -T $DURATION -P 5 postgres > "$PG_DIR/pgbench.log" 2>&1 \
  || { cat "$PG_DIR/pgbench.log" >&2; exit 1; }
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
tps=$(awk '/^tps = / {print $3; exit}' "$PG_DIR/pgbench.log")
latency=$(awk '/^latency average = / {print $4}' "$PG_DIR/pgbench.log")
stddev=$(awk '/^latency stddev = / {print $4}' "$PG_DIR/pgbench.log")

echo "| what | clients | seconds | transactions/s | latency average ms | latency stddev ms | load average before / after |"
echo "|---|---|---|---|---|---|---|"
echo "| pgbench -b simple-update (scale 1) | $CLIENTS (-j $THREADS) | $DURATION | ${tps%.*} | $latency | $stddev | $load_before / $load_after |"
echo "| SQLite one-row transactions, WAL, synchronous=FULL (drip sqlite-reference) | 1 | 3 | $reference | | | $load_start (before) |"
