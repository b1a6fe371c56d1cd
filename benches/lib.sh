# Shell helpers shared by benches/run.sh, benches/pgbench.sh and benches/postgres.sh: sourced, not run.
# Expects `set -euo pipefail` and the repository root as the working directory.

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# Where cargo puts the binaries (CARGO_TARGET_DIR when set, as cargo does).
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
drip_binary() { ls -t "$TARGET_DIR"/release/deps/drip-* | grep -v '\.d$' | head -1; }

# --- A gateway on 127.0.0.1:$PORT (binary $G) --------------------------------------------
GW_PID=
start_gateway() { # DATA_DIR [ENV...]: starts `serve --demo` on $PORT, sets GW_PID
  local dir=$1; shift
  rm -rf "$dir"; mkdir -p "$dir"; : > "$dir.out"
  env UWLR_LOG=warn "$@" "$G" --data-dir "$dir" serve --demo --listen 127.0.0.1:$PORT > "$dir.out" 2> "$dir.err" &
  GW_PID=$!
  for _ in $(seq 1 100); do grep -q "listening" "$dir.out" 2>/dev/null && return 0; sleep 0.1; done
  echo "gateway did not start" >&2; cat "$dir.err" >&2; exit 1
}
stop_gateway() { kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; }
# CPU time in clock ticks of processes (utime + stime; with `--children`, also what their
# reaped children used: a postmaster's ended backends).
cpu_ticks() { # [--children] PID...
  local children=0 total=0 pid t
  if [ "$1" = --children ]; then children=1; shift; fi
  for pid in "$@"; do
    # Fields after the command name (which may hold spaces): utime is the 12th, then stime, cutime, cstime.
    t=$(sed 's/^.*) //' /proc/"$pid"/stat 2>/dev/null | awk -v c=$children '{print $12 + $13 + (c ? $14 + $15 : 0)}')
    total=$((total + ${t:-0}))
  done
  echo "$total"
}
written_bytes() { # PID...: write_bytes of /proc/PID/io, summed
  local total=0 pid
  for pid in "$@"; do total=$((total + $(awk '/^write_bytes/ {print $2}' /proc/"$pid"/io 2>/dev/null || echo 0))); done
  echo "$total"
}

# --- A throwaway PostgreSQL cluster ----------------------------------------------------------
# Made as tests/it/harness/postgres.rs makes one: initdb in a temp dir as an unprivileged user
# (nobody, when run as root), fsync on, a free port, a generated password (SCRAM).
PG_BIN=${UWLR_TEST_PG_BINDIR:-$( (ls -d /usr/lib/postgresql/*/bin 2>/dev/null || true) | sort -V | tail -1)}
PG_PID=
PG_DIR=
AS_CLUSTER_USER=()
if [ "$(id -u)" -eq 0 ]; then AS_CLUSTER_USER=(setpriv --reuid=nobody --regid=nogroup --clear-groups --); fi
pg_start() { # PARENT_DIR MAX_CONNECTIONS [postgres -c settings...]: sets PG_DIR, PG_PID, PG_PORT, PG_PASSWORD; exports PG*
  local parent=$1 max=$2; shift 2
  [ -x "$PG_BIN/initdb" ] || { echo "no PostgreSQL server under /usr/lib/postgresql: .ci/setup installs it" >&2; exit 1; }
  mkdir -p "$parent"
  PG_DIR=$(mktemp -d "$parent/uwlr-pg-XXXXXX")
  PG_PASSWORD=$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)
  printf '%s\n' "$PG_PASSWORD" > "$PG_DIR/password"
  if [ "$(id -u)" -eq 0 ]; then chown -R nobody:nogroup "$PG_DIR"; fi
  "${AS_CLUSTER_USER[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=scram-sha-256 --pwfile="$PG_DIR/password" \
    -E UTF8 --locale=C --no-sync --no-instructions > "$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
  local settings=() setting
  for setting in "$@"; do settings+=(-c "$setting"); done
  # PostgreSQL cannot bind port 0: draw a port below the ephemeral range, another when taken.
  for _ in $(seq 1 20); do
    PG_PORT=$((12000 + RANDOM % 20000))
    "${AS_CLUSTER_USER[@]}" "$PG_BIN/postgres" -D "$PG_DIR/data" -c listen_addresses=127.0.0.1 -c port=$PG_PORT \
      -c unix_socket_directories="$PG_DIR" -c fsync=on -c max_connections="$max" "${settings[@]}" > "$PG_DIR/server.log" 2>&1 &
    PG_PID=$!
    until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p $PG_PORT; do
      kill -0 "$PG_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$PG_PID" 2>/dev/null && break
    wait "$PG_PID" 2>/dev/null || true
    PG_PID=
    grep -q "Address already in use" "$PG_DIR/server.log" || { cat "$PG_DIR/server.log" >&2; exit 1; }
  done
  [ -n "$PG_PID" ] || { echo "no free port for PostgreSQL" >&2; exit 1; }
  export PGPASSWORD=$PG_PASSWORD PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=postgres PGOPTIONS='-c client_min_messages=warning'
}
pg_stop() { # stops the cluster (immediate shutdown: it is thrown away) and removes its directory
  if [ -n "$PG_PID" ]; then kill -QUIT "$PG_PID" 2>/dev/null || true; wait "$PG_PID" 2>/dev/null || true; PG_PID=; fi
  if [ -n "$PG_DIR" ]; then rm -rf "$PG_DIR"; PG_DIR=; fi
}
psql_value() { # DATABASE SQL: one value
  psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}
pg_url() { echo "postgres://postgres:$PG_PASSWORD@127.0.0.1:$PG_PORT/$1"; }
# The cluster's server processes now: the postmaster and its children.
pg_pids() { echo "$PG_PID" $(ps -o pid= --ppid "$PG_PID"); }
