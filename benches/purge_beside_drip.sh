#!/usr/bin/env bash
# The drip's latency with and without the purge of a large school (100,000 afnames) running
# beside it, measured back to back on copies of one prepared data dir.
# Usage: benches/purge_beside_drip.sh [RATE] [SECONDS] [ROUNDS]   (default 1000 messages/s, 20 s, 2 rounds)
# Each round runs the drip twice from the same prepared copy: with UWLR_PURGE_INTERVAL_SECS=0
# (no purge) and with the default (the purge job runs at start, beside the drip).
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-1000}
SECONDS_PER_RUN=${2:-20}
ROUNDS=${3:-2}
OUT=$PWD/target/bench/purge
mkdir -p "$OUT"
cargo build --release --bin uwlr-gateway --bench drip --quiet
G=$PWD/target/release/uwlr-gateway
D=$(ls -t target/release/deps/drip-* | grep -v '\.d$' | head -1)
PORT=18950
URL=http://127.0.0.1:$PORT/uwlr/leerresultaten

start_gateway() { # DATA_DIR [ENV...]
  local dir=$1; shift
  env UWLR_LOG=warn,uwlr_gateway::governance=info "$@" "$G" --data-dir "$dir" serve --demo --listen 127.0.0.1:$PORT > "$dir.out" 2> "$dir.err" &
  GW_PID=$!
  for _ in $(seq 1 300); do grep -q "listening" "$dir.out" 2>/dev/null && return 0; sleep 0.1; done
  echo "gateway did not start" >&2; cat "$dir.err" >&2; exit 1
}
stop_gateway() { kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; }

# The large school (99ZZ, its mandate ended in 2019) and the 64 drip schools, prepared once.
if [ ! -f "$OUT/prepared/gateway.sqlite" ]; then
  rm -rf "$OUT/prepared" "$OUT/big" "$OUT/drip-setup"
  "$G" generate --schools 1 --learners 2000 --toetsen 20 --afnames 100000 --seed 1 --out "$OUT/big/big.xml" > /dev/null
  sed -i 's#<lr:brincode>99XX</lr:brincode><lr:dependancecode>01</lr:dependancecode>#<lr:brincode>99ZZ</lr:brincode>#' "$OUT/big/big.xml"
  sed -i 's#^99XX01,#99ZZ,#' "$OUT/big/roster.csv"
  "$G" generate --schools 64 --learners 1 --toetsen 1 --afnames 1 --drip --out "$OUT/drip-setup" > /dev/null
  start_gateway "$OUT/prepared" UWLR_PURGE_INTERVAL_SECS=0
  "$G" --data-dir "$OUT/prepared" schools activate 99ZZ --klantcode DEMO-EA --mandate BIG --valid-from 2020-01-01 > /dev/null
  "$G" --data-dir "$OUT/prepared" leerlingen import "$OUT/big/roster.csv" > /dev/null
  while read -r line; do eval "\"$G\" --data-dir \"$OUT/prepared\" ${line#uwlr-gateway }" > /dev/null; done < "$OUT/drip-setup/setup.txt"
  code=$(curl -s -o "$OUT/answer.xml" -w '%{http_code}' -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: "BrengLeerresultaten"' --data-binary @"$OUT/big/big.xml" "$URL")
  [ "$code" = 200 ] || { echo "batch refused: $code" >&2; cat "$OUT/answer.xml" >&2; exit 1; }
  # Wait for the publisher to write the 100,000 statements.
  for _ in $(seq 1 600); do
    left=$(sqlite3 "file:$OUT/prepared/gateway.sqlite?mode=ro" "ATTACH '$OUT/prepared/xapi.sqlite' AS x; SELECT (SELECT seq FROM change_counter) - (SELECT cursor_seq FROM x.xapi_publisher);")
    [ "$left" = 0 ] && break; sleep 1
  done
  "$G" --data-dir "$OUT/prepared" schools activate 99ZZ --klantcode DEMO-EA --mandate BIG --valid-from 2019-01-01 --valid-until 2019-12-31 > /dev/null
  stop_gateway
fi

echo "| round | purge | messages/s | p50 ms | p99 ms | purge took |"
echo "|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
  for mode in none purge; do
    rm -rf "$OUT/run"; cp -a "$OUT/prepared" "$OUT/run"
    if [ $mode = none ]; then start_gateway "$OUT/run" UWLR_PURGE_INTERVAL_SECS=0; else start_gateway "$OUT/run"; fi
    line=$("$D" "$URL" 64 "$SECONDS_PER_RUN" --rate="$RATE")
    took=-
    if [ $mode = purge ]; then
      # The purge started with the gateway; how long it ran is in its log (first to last step).
      took=$(grep 'purged a school past retention' "$OUT/run.err" | sed 's/.*elapsed_ms=\([0-9]*\).*/\1 ms/' || true)
      left=$(sqlite3 "file:$OUT/run/gateway.sqlite?mode=ro" "ATTACH '$OUT/run/xapi.sqlite' AS x; SELECT (SELECT count(*) FROM toetsafnames WHERE school_id = (SELECT id FROM schools WHERE code = '99ZZ')) || ' afnames, ' || (SELECT count(*) FROM x.xapi_statements WHERE school_id = (SELECT id FROM schools WHERE code = '99ZZ')) || ' statements left'")
      took="${took:-still running when the drip ended} ($left)"
    fi
    stop_gateway
    echo "| $round | $mode | $(echo "$line" | sed 's/.*per_second=\([0-9.]*\).*/\1/') | $(echo "$line" | sed 's/.*p50_ms=\([0-9.]*\).*/\1/') | $(echo "$line" | sed 's/.*p99_ms=\([0-9.]*\).*/\1/') | $took |"
  done
done
