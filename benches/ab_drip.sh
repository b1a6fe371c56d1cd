#!/usr/bin/env bash
# Two gateway binaries side by side on the durable drip (issue 19): per round, each binary
# in turn at `durability = full` with 64 senders, closed loop, then at a fixed 0.66 x the
# fsync'd one-row SQLite reference measured in the same round; messages/s, p99, CPU µs and
# bytes written per accepted message (/proc/PID/stat, /proc/PID/io write_bytes).
# Usage: benches/ab_drip.sh OLD_BINARY NEW_BINARY [ROUNDS (3)] [SECONDS (8)]
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1; NEW=$2; ROUNDS=${3:-3}; SECS=${4:-8}
cargo build --release --benches --quiet
D=$(ls -t target/release/deps/drip-* | grep -v '\.d$' | head -1)
OUT=$PWD/target/ab
mkdir -p "$OUT"
PORT=$((19000 + RANDOM % 1000))
URL=http://127.0.0.1:$PORT/uwlr/leerresultaten
[ -f "$OUT/drip-setup/setup.txt" ] || "$OLD" generate --schools 64 --learners 1 --toetsen 1 --afnames 1 --drip --out "$OUT/drip-setup" > /dev/null

start_gateway() { # BINARY DATA_DIR
  rm -rf "$2"; mkdir -p "$2"; : > "$2.out"
  env UWLR_LOG=warn UWLR_DURABILITY=full "$1" --data-dir "$2" serve --demo --listen 127.0.0.1:$PORT > "$2.out" 2> "$2.err" &
  GW_PID=$!
  for _ in $(seq 1 600); do grep -q "listening" "$2.out" 2>/dev/null && break; sleep 0.1; done
  while read -r line; do eval "\"$1\" --data-dir \"$2\" ${line#uwlr-gateway }" > /dev/null; done < "$OUT/drip-setup/setup.txt"
  "$D" "$URL" 64 2 --warmup=0 --rate=32 > /dev/null # each school's first message defines its toets
}
ticks() { awk '{print $14 + $15}' /proc/"$GW_PID"/stat; }
written() { awk '/^write_bytes/ {print $2}' /proc/"$GW_PID"/io; }
accepted() { sqlite3 "$1/gateway.sqlite" "SELECT count(*) FROM receipts WHERE outcome = 'accepted'"; }
field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1==k {print $2}'; }
run() { # BINARY LABEL RATE_FLAG
  start_gateway "$1" "$OUT/gw"
  c0=$(ticks); w0=$(written); r0=$(accepted "$OUT/gw")
  line=$("$D" "$URL" 64 "$SECS" $3)
  sleep 1
  c1=$(ticks); w1=$(written); r1=$(accepted "$OUT/gw")
  kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
  n=$((r1 - r0))
  echo "| $round | $2 | ${3:-closed} | $(field "$line" per_second) | $(field "$line" p99_ms) | $(( (c1 - c0) * 1000000 / $(getconf CLK_TCK) / n )) | $(( (w1 - w0) / n )) | $(cut -d' ' -f1 /proc/loadavg) |"
}
echo "| round | build | load | messages/s | p99 ms | CPU µs/msg | bytes written/msg | load average |"
echo "|---|---|---|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
  reference=$("$D" sqlite-reference "$OUT" FULL 3 | sed 's/.*per_second=//')
  rate=$(echo "$reference * 0.66 / 1" | bc)
  echo "| $round | reference (one fsync'd row per transaction) | closed | $reference | | | | $(cut -d' ' -f1 /proc/loadavg) |"
  run "$OLD" old ""; run "$NEW" new ""
  run "$OLD" old "--rate=$rate"; run "$NEW" new "--rate=$rate"
done
