#!/usr/bin/env bash
# Per-stage cost of the batch and the drip (issue 19): CPU per thread from /proc, or
# instructions per thread from callgrind, which stay comparable on a busy machine.
# Usage: benches/profile.sh batch RESULTS [--callgrind]
#        benches/profile.sh drip SECONDS RATE [--callgrind]
# Builds `--profile profiling` and the drip bench; inputs and outputs go to target/profile/.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=$1; shift
cargo build --profile profiling --quiet
cargo build --release --benches --quiet
G=$PWD/target/profiling/uwlr-gateway
D=$(ls -t target/release/deps/drip-* | grep -v '\.d$' | head -1)
OUT=$PWD/target/profile
mkdir -p "$OUT"
PORT=$((19000 + RANDOM % 1000))
URL=http://127.0.0.1:$PORT/uwlr/leerresultaten
CALLGRIND=""; for argument in "$@"; do [ "$argument" = --callgrind ] && CALLGRIND=yes; done

start_gateway() { # DATA_DIR
  rm -rf "$1"; mkdir -p "$1"; rm -f "$OUT/callgrind.out"*
  local wrapper=()
  [ -n "$CALLGRIND" ] && wrapper=(valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" --separate-threads=yes)
  env UWLR_LOG=warn UWLR_DURABILITY=full "${wrapper[@]}" "$G" --data-dir "$1" serve --demo --listen 127.0.0.1:$PORT > "$1.out" 2> "$1.err" &
  GW_PID=$!
  for _ in $(seq 1 600); do grep -q "listening" "$1.out" 2>/dev/null && return 0; sleep 0.2; done
  echo "gateway did not start" >&2; cat "$1.err" >&2; exit 1
}
threads() { # per thread name: CPU ticks so far
  for task in /proc/"$GW_PID"/task/*; do echo "$(tr ' ' '_' < "$task/comm") $(awk '{print $14 + $15}' "$task/stat")"; done |
    awk '{ticks[$1] += $2} END {for (name in ticks) print name, ticks[name]}' | sort
}
written() { awk '/^write_bytes/ {print $2}' /proc/"$GW_PID"/io; }
accepted() { sqlite3 "$1/gateway.sqlite" "SELECT count(*) FROM receipts WHERE outcome = 'accepted'"; }
per_thread() { # BEFORE AFTER COUNT: CPU µs per item for each thread
  join "$1" "$2" | awk -v n="$3" -v hz="$(getconf CLK_TCK)" \
    '{d = $3 - $2; all += d; if (d > 0) printf "  %s: %.1f µs\n", $1, d * 1e6 / hz / n} END {printf "  all threads: %.1f µs\n", all * 1e6 / hz / n}'
}
callgrind_report() { # COUNT LABEL: instructions per item for each thread of the last dump
  for file in "$OUT"/callgrind.out*-*; do
    total=$(awk '/^totals:/ {print $2; exit}' "$file"); [ -n "$total" ] || continue
    top=$(callgrind_annotate --inclusive=yes "$file" 2>/dev/null | grep -o 'uwlr_gateway::[a-z_:]*[a-z_]' | grep -v '::main$' | head -2 | tr '\n' ' ')
    echo "  $(basename "$file"): $((total / $1)) instructions per $2  [$top]"
  done
}

case $MODE in
batch)
  RESULTS=${1:?results}
  FILE=$OUT/batch-$RESULTS/batch.xml
  LEARNERS=$((RESULTS / 100 > 0 ? RESULTS / 100 : 1))
  [ -f "$FILE" ] || "$G" generate --schools 1 --learners "$LEARNERS" --toetsen 20 --afnames "$RESULTS" --seed 1 --out "$FILE" > /dev/null
  start_gateway "$OUT/batch"
  "$G" --data-dir "$OUT/batch" schools activate 99XX01 --klantcode DEMO-EA --mandate GEN-99XX01 --valid-from 2020-01-01 > /dev/null
  "$G" --data-dir "$OUT/batch" leerlingen import "$(dirname "$FILE")/roster.csv" > /dev/null
  threads > "$OUT/before"; w0=$(written)
  t0=$(date +%s.%N)
  code=$(curl -s -o "$OUT/answer.xml" -w '%{http_code}' -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: "BrengLeerresultaten"' --data-binary @"$FILE" "$URL")
  t1=$(date +%s.%N)
  threads > "$OUT/after"; w1=$(written)
  echo "batch of $RESULTS results: HTTP $code in $(echo "$t1 - $t0" | bc) s, load $(cut -d' ' -f1 /proc/loadavg), $(( (w1 - w0) / RESULTS )) bytes written per result"
  echo "CPU per result (threads that ended with the message, the parser and libxml2, are missing):"
  per_thread "$OUT/before" "$OUT/after" "$RESULTS"
  if [ -n "$CALLGRIND" ]; then callgrind_control -d "$GW_PID" > /dev/null; sleep 1; callgrind_report "$RESULTS" result; fi
  ;;
drip)
  SECONDS_=${1:?seconds}; RATE=${2:?rate}
  SETUP=$OUT/drip-setup
  [ -f "$SETUP/setup.txt" ] || "$G" generate --schools 64 --learners 1 --toetsen 1 --afnames 1 --drip --out "$SETUP" > /dev/null
  start_gateway "$OUT/drip"
  while read -r line; do eval "\"$G\" --data-dir \"$OUT/drip\" ${line#uwlr-gateway }" > /dev/null; done < "$SETUP/setup.txt"
  "$D" "$URL" 64 3 --warmup=0 --rate=32 > /dev/null # each school's first message defines its toets
  sleep 2
  [ -n "$CALLGRIND" ] && callgrind_control -z "$GW_PID" > /dev/null
  threads > "$OUT/before"; w0=$(written); r0=$(accepted "$OUT/drip")
  "$D" "$URL" 64 "$SECONDS_" --warmup=0 --rate="$RATE"
  sleep 3 # the publisher catches up
  threads > "$OUT/after"; w1=$(written); r1=$(accepted "$OUT/drip")
  n=$((r1 - r0))
  echo "drip: $n messages, load $(cut -d' ' -f1 /proc/loadavg), $(( (w1 - w0) / n )) bytes written per message"
  echo "CPU per message:"
  per_thread "$OUT/before" "$OUT/after" "$n"
  if [ -n "$CALLGRIND" ]; then callgrind_control -d "$GW_PID" > /dev/null; sleep 1; rm -f "$OUT"/callgrind.out-*; callgrind_report "$n" message; fi
  ;;
*) echo "usage: benches/profile.sh batch RESULTS [--callgrind] | drip SECONDS RATE [--callgrind]" >&2; exit 2 ;;
esac
kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
