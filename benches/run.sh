#!/usr/bin/env bash
# Benchmarks for uwlr-gateway: batch speed against xmllint, peak memory by message
# size, and durable drip throughput, each beside a reference measured in the same run.
# Usage: benches/run.sh [--quick]   (quick: smaller inputs and shorter runs)
# Prints a Markdown table; also written to target/bench/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=${1:-}
OUT=$PWD/target/bench
mkdir -p "$OUT"
exec > >(tee "$OUT/results.md")
cargo build --release --benches --quiet
G=$PWD/target/release/uwlr-gateway
D=$(ls -t target/release/deps/drip-* | grep -v '\.d$' | head -1)
PORT=18900
URL=http://127.0.0.1:$PORT/uwlr/leerresultaten
if [ "$QUICK" = "--quick" ]; then SIZES="1 10"; DRIP_SECONDS=3; RUNS=1; else SIZES="1 10 100 500"; DRIP_SECONDS=10; RUNS=3; fi

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

start_gateway() { # DATA_DIR [ENV...]
  local dir=$1; shift
  rm -rf "$dir"; mkdir -p "$dir"
  env UWLR_LOG=warn "$@" "$G" --data-dir "$dir" serve --demo --listen 127.0.0.1:$PORT > "$dir.out" 2> "$dir.err" &
  GW_PID=$!
  for _ in $(seq 1 100); do grep -q "listening" "$dir.out" 2>/dev/null && return 0; sleep 0.1; done
  echo "gateway did not start" >&2; cat "$dir.err" >&2; exit 1
}
stop_gateway() { kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; }
hwm_kb() { awk '/VmHWM/ {print $2}' /proc/"$1"/status; }
post() { curl -s -o "$OUT/answer.xml" -w '%{http_code}' -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: "BrengLeerresultaten"' --data-binary @"$1" "$URL"; }

echo "## Machine"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)"
echo "- cpu: $(nproc) x $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ //'), memory $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# --- Batch speed -----------------------------------------------------------------
"$G" generate --schools 1 --learners 2000 --toetsen 20 --afnames 200000 --seed 1 --out "$OUT/batch200k.xml" > /dev/null
SCHEMA_FULL=$PWD/xsd/UWLR_Gateway_Envelope.xsd
start_gateway "$OUT/schema-probe"; stop_gateway
SCHEMA_STREAM=$OUT/schema-probe/contract/streaming/UWLR_Gateway_Envelope.xsd
xmllint_time() { # SCHEMA FILE -> seconds
  local t0 t1; t0=$(now); xmllint --noout --stream --schema "$1" "$2" 2> /dev/null; t1=$(now); echo "$t1 - $t0" | bc
}
XL_FULL=$(for _ in $(seq $RUNS); do xmllint_time "$SCHEMA_FULL" "$OUT/batch200k.xml"; done | median)
XL_STREAM=$(for _ in $(seq $RUNS); do xmllint_time "$SCHEMA_STREAM" "$OUT/batch200k.xml"; done | median)
GW_TIMES=()
for _ in $(seq $RUNS); do
  start_gateway "$OUT/batch"
  "$G" --data-dir "$OUT/batch" leerlingen import "$OUT/roster.csv" > /dev/null
  t0=$(now); code=$(post "$OUT/batch200k.xml"); t1=$(now)
  [ "$code" = 200 ] || { echo "batch refused: $code" >&2; cat "$OUT/answer.xml" >&2; exit 1; }
  GW_TIMES+=("$(echo "$t1 - $t0" | bc)")
  stop_gateway
done
GW_BATCH=$(printf '%s\n' "${GW_TIMES[@]}" | median)
SIZE_MB=$(echo "scale=1; $(stat -c %s "$OUT/batch200k.xml") / 1000000" | bc)
echo "## Batch: 200,000 results ($SIZE_MB MB), end-to-end acceptance (median of $RUNS)"
echo
echo "| what | seconds | ratio |"
echo "|---|---|---|"
echo "| gateway: POST to bevestiging (validation, every rule, SQLite commit) | $GW_BATCH | |"
echo "| xmllint --noout --stream --schema (full contract XSD, identity constraints included) | $XL_FULL | $(echo "scale=2; $GW_BATCH / $XL_FULL" | bc) x |"
echo "| xmllint --noout --stream --schema (streaming XSD, identity constraints left to the gateway) | $XL_STREAM | $(echo "scale=2; $GW_BATCH / $XL_STREAM" | bc) x |"
echo

# --- Peak memory by message size ----------------------------------------------------
echo "## Peak memory by message size"
echo
echo "| message | results | gateway extra peak RSS | xmllint --stream peak RSS (full XSD) | gateway seconds |"
echo "|---|---|---|---|---|"
for mb in $SIZES; do
  results=$((mb * 3665))
  file="$OUT/size-$mb/batch.xml"
  [ -f "$file" ] || "$G" generate --schools 1 --learners 5000 --toetsen 20 --afnames "$results" --seed 2 --out "$file" > /dev/null
  start_gateway "$OUT/rss"
  "$G" --data-dir "$OUT/rss" leerlingen import "$OUT/size-$mb/roster.csv" > /dev/null
  sleep 0.3
  base=$(hwm_kb "$GW_PID")
  t0=$(now); code=$(post "$file"); t1=$(now)
  [ "$code" = 200 ] || { echo "$mb MB refused: $code" >&2; head -c 2000 "$OUT/answer.xml" >&2; exit 1; }
  peak=$(hwm_kb "$GW_PID")
  stop_gateway
  xl=$( { /usr/bin/time -f "%M" xmllint --noout --stream --schema "$SCHEMA_FULL" "$file" 2>&1 >/dev/null; } | tail -1)
  echo "| $(echo "scale=1; $(stat -c %s "$file") / 1000000" | bc) MB | $results | $(( (peak - base) / 1024 )) MB (base $((base / 1024)) MB) | $((xl / 1024)) MB | $(echo "$t1 - $t0" | bc) |"
done
echo

# --- Durable drip -------------------------------------------------------------------------
"$G" generate --schools 64 --learners 1 --toetsen 1 --afnames 1 --drip --out "$OUT/drip-setup" > /dev/null
echo "## Drip: single-result messages, each answered after commit"
echo
echo "Closed loop: each sender sends its next message when the previous answer is in (the most the gateway takes). Fixed rate: the 64 senders together offer 5,000 messages/s on a schedule, latency counted from the scheduled moment. The first 2 s of each run are not counted."
echo
echo "| durability | senders | load | messages/s | p50 ms | p99 ms | reference: one-row transactions/s |"
echo "|---|---|---|---|---|---|---|"
for durability in full normal; do
  sync=$( [ $durability = full ] && echo FULL || echo NORMAL )
  reference=$("$D" sqlite-reference "$OUT" "$sync" 3 | sed 's/.*per_second=//')
  start_gateway "$OUT/drip" UWLR_DURABILITY=$durability
  while read -r line; do eval "\"$G\" --data-dir \"$OUT/drip\" ${line#uwlr-gateway }" > /dev/null; done < "$OUT/drip-setup/setup.txt"
  for run in "1 closed" "8 closed" "64 closed" "64 5000/s"; do
    set -- $run
    senders=$1
    rate=$([ "$2" = closed ] && echo "" || echo "--rate=${2%/s}")
    line=$("$D" "$URL" "$senders" "$DRIP_SECONDS" $rate)
    field() { echo "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1==k {print $2}'; }
    echo "| $durability | $senders | $2 | $(field per_second) | $(field p50_ms) | $(field p99_ms) | $reference |"
  done
  stop_gateway
done
echo
