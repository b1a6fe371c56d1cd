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
QUICK=${1:-}
DURATION=30
[ "$QUICK" = "--quick" ] && DURATION=10
CLIENTS=64
THREADS=2
OUT=$PWD/target/bench
mkdir -p "$OUT"
BIN=${UWLR_TEST_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$BIN/initdb" ] || { echo "no PostgreSQL server under /usr/lib/postgresql: .ci/setup installs it" >&2; exit 1; }

cargo build --release --bench drip --quiet
D=$(ls -t target/release/deps/drip-* | grep -v '\.d$' | head -1)

DIR=$(mktemp -d /tmp/uwlr-pgbench-XXXXXX)
PG_PID=
cleanup() {
  if [ -n "$PG_PID" ]; then kill -QUIT "$PG_PID" 2>/dev/null || true; wait "$PG_PID" 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT

# initdb and postgres refuse root: as root the cluster belongs to nobody.
AS_CLUSTER_USER=()
if [ "$(id -u)" -eq 0 ]; then AS_CLUSTER_USER=(setpriv --reuid=nobody --regid=nogroup --clear-groups --); fi
PASSWORD=$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)
printf '%s\n' "$PASSWORD" > "$DIR/password"
[ "$(id -u)" -eq 0 ] && chown -R nobody:nogroup "$DIR"
"${AS_CLUSTER_USER[@]}" "$BIN/initdb" -D "$DIR/data" -U postgres --auth=scram-sha-256 --pwfile="$DIR/password" \
  -E UTF8 --locale=C --no-sync --no-instructions > "$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }

# PostgreSQL cannot bind port 0: draw a port below the ephemeral range, another when taken.
for _ in $(seq 1 20); do
  PORT=$((12000 + RANDOM % 20000))
  "${AS_CLUSTER_USER[@]}" "$BIN/postgres" -D "$DIR/data" -c listen_addresses=127.0.0.1 -c port=$PORT \
    -c unix_socket_directories="$DIR" -c fsync=on -c max_connections=$((CLIENTS + 20)) > "$DIR/server.log" 2>&1 &
  PG_PID=$!
  until "$BIN/pg_isready" -q -h 127.0.0.1 -p $PORT; do
    kill -0 "$PG_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$PG_PID" 2>/dev/null && break
  wait "$PG_PID" 2>/dev/null || true
  PG_PID=
  grep -q "Address already in use" "$DIR/server.log" || { cat "$DIR/server.log" >&2; exit 1; }
done
[ -n "$PG_PID" ] || { echo "no free port for PostgreSQL" >&2; exit 1; }
export PGPASSWORD=$PASSWORD PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres

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
"$BIN/pgbench" -i -q postgres > "$DIR/pgbench-init.log" 2>&1 || { cat "$DIR/pgbench-init.log" >&2; exit 1; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"$BIN/pgbench" -b simple-update -c $CLIENTS -j $THREADS -T $DURATION -P 5 postgres > "$DIR/pgbench.log" 2>&1 \
  || { cat "$DIR/pgbench.log" >&2; exit 1; }
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
tps=$(awk '/^tps = / {print $3; exit}' "$DIR/pgbench.log")
latency=$(awk '/^latency average = / {print $4}' "$DIR/pgbench.log")
stddev=$(awk '/^latency stddev = / {print $4}' "$DIR/pgbench.log")

echo "| what | clients | seconds | transactions/s | latency average ms | latency stddev ms | load average before / after |"
echo "|---|---|---|---|---|---|---|"
echo "| pgbench -b simple-update (scale 1) | $CLIENTS (-j $THREADS) | $DURATION | ${tps%.*} | $latency | $stddev | $load_before / $load_after |"
echo "| SQLite one-row transactions, WAL, synchronous=FULL (drip sqlite-reference) | 1 | 3 | $reference | | | $load_start (before) |"
