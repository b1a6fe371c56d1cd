#!/usr/bin/env bash
# The gateway on PostgreSQL against PostgreSQL's own commit ceiling and against SQLite (issue 12),
# all in one run on one throwaway cluster:
#   1. pgbench -b simple-update, 64 clients (the reference: transactions/s);
#   2. the batch of benches/run.sh (200,000 results) on SQLite (durability full) and on
#      PostgreSQL with one instance: wall and CPU time, bytes written, ratio PG / SQLite;
#   3. the 64-sender drip of benches/drip.rs, closed loop, on 1 and on 3 instances serving one
#      database (senders spread over their URLs): messages/s against pgbench's transactions/s,
#      p50/p99, CPU µs and bytes per message (gateways + PostgreSQL's processes);
#   4. the same drip at a fixed 2,000 messages/s (and 500/s) on 1 and 3 instances: achieved rate, p99;
#   and the statements (round trips) per drip message and per batch result (log_statement = all).
# Usage: benches/postgres.sh [--quick]   (quick: a 20,000-result batch, short runs)
# UWLR_BENCH_DIR: where the data dirs, inputs and the cluster go (default target/bench/postgres);
# its file system is printed: on tmpfs fsync costs nothing and the figures are no durable ones.
# UWLR_BENCH_NO_BUILD=1: use the binaries already built (in CARGO_TARGET_DIR, when set).
# Prints Markdown; also written to $UWLR_BENCH_DIR/postgres.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
QUICK=${1:-}
OUT=${UWLR_BENCH_DIR:-$PWD/target/bench/postgres}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ "$QUICK" = "--quick" ]; then
  AFNAMES=20000; RUNS=1; DRIP_SECONDS=4; PGBENCH_SECONDS=10
else
  AFNAMES=200000; RUNS=3; DRIP_SECONDS=15; PGBENCH_SECONDS=30
fi
CLIENTS=64
SENDERS=64
FIXED_RATE=2000
LOW_RATE=500 # a fixed rate well under what the gateway took on the 2 shared cores: its latency when not overloaded
BASE_PORT=${UWLR_BENCH_PORT:-18950}

# UWLR_BENCH_NO_BUILD=1: use the binaries already built (each commit reruns build.rs, so a build
# after a commit to benches/ alone relinks the gateway, minutes on a loaded machine).
[ -n "${UWLR_BENCH_NO_BUILD:-}" ] || nice cargo build --release --bin uwlr-gateway --bench drip --quiet
G=$TARGET_DIR/release/uwlr-gateway
D=$(drip_binary)
# One secrets key for every instance on the cluster (required on PostgreSQL).
SECRETS_KEY=$(head -c 32 /dev/urandom | base64)

GW_PIDS=()
stop_gateways() {
  local pid
  for pid in "${GW_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${GW_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  GW_PIDS=()
}
trap 'stop_gateways; pg_stop' EXIT

# Room for pgbench's 64 clients and three gateways' pools (16 connections each by default).
pg_start "$OUT" $((CLIENTS + 3 * 16 + 20))
tick=$(getconf CLK_TCK)
pg_cpu() { cpu_ticks --children "$PG_PID"; } # the postmaster, with every ended backend
pg_cpu_all() { echo $(( $(pg_cpu) + $(cpu_ticks $(ps -o pid= --ppid "$PG_PID")) )); }
pg_written() { written_bytes $(pg_pids); }
wal_lsn() { psql_value postgres "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint"; }
pg_env() { # DATABASE: the settings of a gateway (and its CLI) on that database
  echo UWLR_STORE=postgres UWLR_DATABASE_URL="$(pg_url "$1")" UWLR_SECRETS_KEY="$SECRETS_KEY" UWLR_MAX_CONNECTIONS_PER_ADDRESS=256
}
# Where the time goes: every statement the server executes, logged for a moment (log_statement =
# all, reloaded into the running sessions too); each is one round trip of the gateway's session.
log_statements() { # on|off
  if [ "$1" = on ]; then psql_value postgres "ALTER SYSTEM SET log_statement = 'all'" > /dev/null
  else psql_value postgres "ALTER SYSTEM RESET log_statement" > /dev/null; fi
  psql_value postgres "SELECT pg_reload_conf()" > /dev/null; sleep 0.5
}
log_lines() { wc -l < "$PG_DIR/server.log"; }
statements_since() { # LINE FILE: the statements logged after LINE, less this script's own, into FILE; prints their number
  tail -n +$(( $1 + 1 )) "$PG_DIR/server.log" | grep -E 'LOG:  (execute [^:]*|statement): ' \
    | grep -v -E "receipts WHERE outcome|ALTER SYSTEM|pg_reload_conf|pg_current_wal" | sed -E 's/.*LOG:  (execute [^:]*|statement): //' > "$2" || true
  wc -l < "$2"
}
top_statements() { # FILE N: the most frequent statements, N of them, per message
  sort "$1" | uniq -c | sort -rn | head -"${3:-10}" | awk -v n="$2" '{c=$1; $1=""; printf "%6.2f %s\n", c / n, substr($0, 2, 150)}'
}
fresh_database() { # NAME
  psql_value postgres "DROP DATABASE IF EXISTS $1 WITH (FORCE)" > /dev/null
  psql_value postgres "CREATE DATABASE $1 TEMPLATE template0 ENCODING 'UTF8'" > /dev/null
}

exec > >(tee "$OUT/postgres.md")
echo "## Machine"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src benches || echo ' (with uncommitted changes)')"
echo "- cpu: $(nproc) x $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ //'), memory $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "- data (SQLite files, the PostgreSQL cluster): $OUT, file system $(stat -f -c %T "$OUT")$( [ "$(stat -f -c %T "$OUT")" = tmpfs ] && echo ' (**tmpfs: fsync is free, these are no durable figures**)')"
echo "- PostgreSQL: $("$PG_BIN/postgres" --version), fsync on, synchronous_commit $(psql_value postgres 'SHOW synchronous_commit'), shared_buffers $(psql_value postgres 'SHOW shared_buffers'), max_wal_size $(psql_value postgres 'SHOW max_wal_size')"
echo "- load average at start: $(loadavg)"
echo

# --- 1. The reference: pgbench ----------------------------------------------------------------
"$PG_BIN/pgbench" -i -q postgres > "$OUT/pgbench-init.log" 2>&1 || { cat "$OUT/pgbench-init.log" >&2; exit 1; }
load_before=$(loadavg)
"$PG_BIN/pgbench" -b simple-update -c $CLIENTS -j 2 -T $PGBENCH_SECONDS postgres > "$OUT/pgbench.log" 2>&1 \
  || { cat "$OUT/pgbench.log" >&2; exit 1; }
load_after=$(loadavg)
TPS=$(awk '/^tps = / {printf "%.0f", $3; exit}' "$OUT/pgbench.log")
PGBENCH_LATENCY=$(awk '/^latency average = / {print $4}' "$OUT/pgbench.log")
psql_value postgres CHECKPOINT > /dev/null
echo "## Reference: pgbench -b simple-update (scale 1), $CLIENTS clients (-j 2), $PGBENCH_SECONDS s"
echo
echo "| transactions/s | latency average ms | load average before / after |"
echo "|---|---|---|"
echo "| $TPS | $PGBENCH_LATENCY | $load_before / $load_after |"
echo

# --- 2. The batch on SQLite and on PostgreSQL ----------------------------------------------------
"$G" generate --schools 1 --learners 2000 --toetsen 20 --afnames $AFNAMES --seed 1 --out "$OUT/batch.xml" > /dev/null
SIZE_MB=$(echo "scale=1; $(stat -c %s "$OUT/batch.xml") / 1000000" | bc)
post() { # URL FILE -> HTTP status
  curl -s -o "$OUT/answer.xml" -w '%{http_code}' -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: "BrengLeerresultaten"' --data-binary @"$2" "$1"
}
# One batch on a fresh gateway: sets WALL, GW_CPU, PG_CPU (s), GW_WRITTEN, PG_WRITTEN, WAL (bytes).
batch_run() { # sqlite|postgres
  local engine=$1 dir=$OUT/batch-$1 env=() c0 c1 p0=0 p1=0 w0 w1 q0=0 q1=0 l0=0 l1=0 t0 t1 code
  PORT=$BASE_PORT
  if [ "$engine" = postgres ]; then fresh_database uwlr_batch; read -ra env <<< "$(pg_env uwlr_batch)"; else env=(UWLR_DURABILITY=full); fi
  start_gateway "$dir" "${env[@]}"; GW_PIDS=("$GW_PID")
  env "${env[@]}" "$G" --data-dir "$dir" leerlingen import "$OUT/roster.csv" > /dev/null
  sleep 0.5
  c0=$(cpu_ticks "$GW_PID"); w0=$(written_bytes "$GW_PID")
  if [ "$engine" = postgres ]; then p0=$(pg_cpu_all); q0=$(pg_written); l0=$(wal_lsn); fi
  t0=$(now); code=$(post "http://127.0.0.1:$PORT/uwlr/leerresultaten" "$OUT/batch.xml"); t1=$(now)
  [ "$code" = 200 ] || { echo "batch refused on $engine: $code" >&2; head -c 2000 "$OUT/answer.xml" >&2; exit 1; }
  c1=$(cpu_ticks "$GW_PID"); w1=$(written_bytes "$GW_PID")
  if [ "$engine" = postgres ]; then p1=$(pg_cpu_all); q1=$(pg_written); l1=$(wal_lsn); fi
  stop_gateways
  rm -rf "$dir" # the disk may be short: each run's database goes at once
  [ "$engine" = postgres ] && psql_value postgres "DROP DATABASE uwlr_batch WITH (FORCE)" > /dev/null
  WALL=$(printf '%.2f' "$(echo "$t1 - $t0" | bc)")
  GW_CPU=$(echo "scale=2; ($c1 - $c0) / $tick" | bc); PG_CPU=$(echo "scale=2; ($p1 - $p0) / $tick" | bc)
  GW_WRITTEN=$((w1 - w0)); PG_WRITTEN=$((q1 - q0)); WAL=$((l1 - l0))
}
mb() { echo "scale=1; $1 / 1000000" | bc; }
echo "## Batch: $AFNAMES results ($SIZE_MB MB) in one message, end-to-end acceptance (median of $RUNS by wall time)"
echo
echo "Wall: POST to bevestiging. CPU: the gateway's process, and PostgreSQL's server processes (postmaster, backends, checkpointer, WAL writer...), from the POST to the answer. Written: /proc/PID/io write_bytes; WAL: pg_current_wal_insert_lsn() moved."
echo
echo "| engine | wall s | x SQLite | gateway CPU s | PostgreSQL CPU s | gateway written MB | PostgreSQL written MB | WAL MB | load average |"
echo "|---|---|---|---|---|---|---|---|---|"
: > "$OUT/batch-runs.txt"
SQLITE_WALL=
for engine in sqlite postgres; do
  lines=()
  for _ in $(seq $RUNS); do
    batch_run $engine
    lines+=("$WALL|$GW_CPU|$PG_CPU|$(mb $GW_WRITTEN)|$(mb $PG_WRITTEN)|$(mb $WAL)|$(loadavg)")
    echo "$engine|${lines[-1]}" >> "$OUT/batch-runs.txt"
  done
  line=$(printf '%s\n' "${lines[@]}" | sort -t'|' -k1 -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  IFS='|' read -r wall gcpu pcpu gw pw wal load <<< "$line"
  [ $engine = sqlite ] && SQLITE_WALL=$wall
  ratio=$(printf '%.2f' "$(echo "scale=3; $wall / $SQLITE_WALL" | bc)")
  [ $engine = postgres ] && BATCH_RATIO=$ratio
  if [ $engine = sqlite ]; then pcpu=; pw=; wal=; fi
  echo "| $engine$([ $engine = sqlite ] && echo ' (durability full)') | $wall | $ratio | $gcpu | $pcpu | $gw | $pw | $wal | $load |"
done
echo
# Round trips of a small batch (1,000 results), statements logged.
"$G" generate --schools 1 --learners 200 --toetsen 20 --afnames 1000 --seed 3 --out "$OUT/small/batch.xml" > /dev/null
fresh_database uwlr_small; read -ra env <<< "$(pg_env uwlr_small)"; PORT=$BASE_PORT
start_gateway "$OUT/small-gw" "${env[@]}"; GW_PIDS=("$GW_PID")
env "${env[@]}" "$G" --data-dir "$OUT/small-gw" leerlingen import "$OUT/small/roster.csv" > /dev/null
log_statements on; from=$(log_lines)
code=$(post "http://127.0.0.1:$PORT/uwlr/leerresultaten" "$OUT/small/batch.xml")
[ "$code" = 200 ] || { echo "small batch refused: $code" >&2; head -c 2000 "$OUT/answer.xml" >&2; exit 1; }
log_statements off
BATCH_STATEMENTS=$(statements_since "$from" "$OUT/batch-statements.txt")
stop_gateways; rm -rf "$OUT/small-gw"; psql_value postgres "DROP DATABASE uwlr_small WITH (FORCE)" > /dev/null
echo "Round trips: a 1,000-result batch on PostgreSQL ran $BATCH_STATEMENTS statements ($(echo "scale=1; $BATCH_STATEMENTS / 1000" | bc) per result; log_statement = all, each a round trip). The most frequent, per result:"
echo
echo '```'
top_statements "$OUT/batch-statements.txt" 1000 8
echo '```'
echo
echo "All $RUNS runs (wall s | gateway CPU s | PostgreSQL CPU s | written MB gateway | PostgreSQL | WAL | load): see $OUT/batch-runs.txt"
echo

# --- 3 and 4. The drip on PostgreSQL, 1 and 3 instances -----------------------------------------
"$G" generate --schools $SENDERS --learners 1 --toetsen 1 --afnames 1 --drip --out "$OUT/drip-setup" > /dev/null
field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1==k {print $2}'; }
accepted() { psql_value "$1" "SELECT count(*) FROM receipts WHERE outcome = 'accepted'"; }
echo "## Drip: $SENDERS senders, single-result messages, each answered after commit, on PostgreSQL"
echo
echo "Closed loop: each sender sends its next message when the previous answer is in. Fixed: the senders together offer $FIXED_RATE (and $LOW_RATE) messages/s on a schedule, latency counted from the scheduled moment. Several instances: each its own data dir and port, one database; sender i sends to instance i mod n. $DRIP_SECONDS s measured after a 2 s warm-up. CPU and bytes are per accepted message (warm-up included), gateways + PostgreSQL's server processes; WAL from pg_current_wal_insert_lsn()."
echo
echo "| instances | load | messages/s | accepted/s, whole run | x pgbench ($TPS/s) | p50 ms | p99 ms | max ms | faults | CPU µs/msg gateway + PostgreSQL | written bytes/msg gateway + PostgreSQL | WAL bytes/msg | load average |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
declare -A RESULT
for instances in 1 3; do
  db=uwlr_drip$instances
  fresh_database $db
  read -ra env <<< "$(pg_env $db)"
  urls=()
  for i in $(seq 0 $((instances - 1))); do
    PORT=$((BASE_PORT + i))
    start_gateway "$OUT/drip$instances-$i" "${env[@]}"; GW_PIDS+=("$GW_PID")
    urls+=("http://127.0.0.1:$PORT/uwlr/leerresultaten")
  done
  URLS=$(IFS=,; echo "${urls[*]}")
  ( export "${env[@]}"
    while read -r line; do eval "\"$G\" --data-dir \"$OUT/drip$instances-0\" ${line#uwlr-gateway }" > /dev/null; done < "$OUT/drip-setup/setup.txt" )
  # Each school's first message stores its toets.
  "$D" "$URLS" $SENDERS 2 --warmup=0 --rate=32 > /dev/null
  for load in closed $FIXED_RATE $LOW_RATE; do
    rate=(); [ $load = closed ] || rate=(--rate=$load)
    c0=$(cpu_ticks "${GW_PIDS[@]}"); p0=$(pg_cpu_all); w0=$(written_bytes "${GW_PIDS[@]}"); q0=$(pg_written); l0=$(wal_lsn); r0=$(accepted $db)
    LINE=$("$D" "$URLS" $SENDERS $DRIP_SECONDS "${rate[@]}")
    sleep 0.5
    c1=$(cpu_ticks "${GW_PIDS[@]}"); p1=$(pg_cpu_all); w1=$(written_bytes "${GW_PIDS[@]}"); q1=$(pg_written); l1=$(wal_lsn); r1=$(accepted $db)
    n=$(( r1 > r0 ? r1 - r0 : 1 ))
    per_second=$(field "$LINE" per_second)
    # Accepted over the whole run (receipts): a sender behind an overloaded schedule sends
    # messages scheduled in the warm-up during the measured part, which the drip does not count.
    whole=$(( n / (DRIP_SECONDS + 2) ))
    RESULT[$instances-$load]="$per_second $(field "$LINE" p99_ms) $whole"
    echo "| $instances | $([ $load = closed ] && echo closed || echo "$load/s") | $per_second | $whole | $(printf '%.2f' "$(echo "scale=3; $per_second / $TPS" | bc)") | $(field "$LINE" p50_ms) | $(field "$LINE" p99_ms) | $(field "$LINE" max_ms) | $(field "$LINE" faults) | $(( (c1 - c0) * 1000000 / tick / n )) + $(( (p1 - p0) * 1000000 / tick / n )) | $(( (w1 - w0) / n )) + $(( (q1 - q0) / n )) | $(( (l1 - l0) / n )) | $(loadavg) |"
  done
  if [ $instances = 1 ]; then
    # Round trips of a drip message: 8 senders at 40/s for 1 s, statements logged.
    log_statements on; from=$(log_lines); r0=$(accepted $db)
    "$D" "$URLS" 8 1 --warmup=0 --rate=40 > /dev/null
    sleep 0.5; r1=$(accepted $db); log_statements off
    DRIP_MESSAGES=$(( r1 > r0 ? r1 - r0 : 1 ))
    DRIP_STATEMENTS=$(statements_since "$from" "$OUT/drip-statements.txt")
  fi
  stop_gateways
  rm -rf "$OUT"/drip$instances-*
done
echo
echo "Round trips: $DRIP_MESSAGES drip messages (1 instance, 8 senders at 40/s) ran $DRIP_STATEMENTS statements, $(echo "scale=1; $DRIP_STATEMENTS / $DRIP_MESSAGES" | bc) per message (log_statement = all; each a round trip; the background publisher's included). The most frequent, per message:"
echo
echo '```'
top_statements "$OUT/drip-statements.txt" "$DRIP_MESSAGES" 12
echo '```'
echo
echo "## Targets (issue 12)"
echo
met() { [ "$(echo "$1" | bc)" = 1 ] && echo met || echo "**not met**"; }
echo "- batch on PostgreSQL <= 2 x SQLite: $BATCH_RATIO x, $(met "$BATCH_RATIO <= 2")"
for instances in 1 3; do
  read -r closed _ <<< "${RESULT[$instances-closed]}"
  read -r fixed p99 whole <<< "${RESULT[$instances-$FIXED_RATE]}"
  echo "- $instances instance(s): closed loop >= 0.5 x pgbench: $(printf '%.2f' "$(echo "scale=3; $closed / $TPS" | bc)") x, $(met "$closed >= $TPS * 0.5"); at $FIXED_RATE/s offered: $fixed/s counted ($whole/s accepted over the whole run), p99 $p99 ms (<= 50 ms: $(met "$p99 <= 50"))"
done
