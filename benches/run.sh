#!/usr/bin/env bash
# Benchmarks for uwlr-gateway: batch speed against xmllint, peak memory by message
# size, and durable drip throughput, each beside a reference measured in the same run.
# Usage: benches/run.sh [--quick]   (quick: smaller inputs and shorter runs)
# Prints a Markdown table; also written to target/bench/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh # now, median, start_gateway, stop_gateway
QUICK=${1:-}
OUT=$PWD/target/bench
mkdir -p "$OUT"
exec > >(tee "$OUT/results.md")
cargo build --release --benches --quiet
G=$TARGET_DIR/release/uwlr-gateway
D=$(drip_binary)
PORT=18900
URL=http://127.0.0.1:$PORT/uwlr/leerresultaten
if [ "$QUICK" = "--quick" ]; then SIZES="1 10"; DRIP_SECONDS=3; RUNS=1; else SIZES="1 10 100 500"; DRIP_SECONDS=10; RUNS=3; fi

trap 'touch "$OUT/reads.stop"; stop_gateway' EXIT # also when a step fails: no gateway left holding the port, no reader looping
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
ticks() { awk '{print $14 + $15}' /proc/"$GW_PID"/stat; }
written() { awk '/^write_bytes/ {print $2}' /proc/"$GW_PID"/io; }
accepted() { sqlite3 "$1/gateway.sqlite" "SELECT count(*) FROM receipts WHERE outcome = 'accepted'"; }
"$G" generate --schools 65 --learners 1 --toetsen 1 --afnames 1 --drip --out "$OUT/drip-setup-65" > /dev/null
drip_setup() { # DATA_DIR [SETUP_DIR FIRST_SCHOOL]: the 64 drip schools, and each one's first message (its toets)
  while read -r line; do eval "\"$G\" --data-dir \"$1\" ${line#uwlr-gateway }" > /dev/null; done < "${2:-$OUT/drip-setup}/setup.txt"
  "$D" "$URL" 64 2 --warmup=0 --rate=32 --first-school="${3:-0}" > /dev/null
}
field() { echo "$1" | grep -v '^t=\|^timeline' | tr ' ' '\n' | awk -F= -v k="$2" '$1==k {print $2}'; }
# One drip run on the running gateway: the drip's figures plus CPU µs and bytes written per
# accepted message (whole process, /proc/PID/stat and /proc/PID/io write_bytes).
drip_run() { # DATA_DIR SENDERS [FLAGS...] -> sets LINE, CPU_US, BYTES
  local dir=$1 senders=$2; shift 2
  local c0 w0 r0 c1 w1 r1 n
  c0=$(ticks); w0=$(written); r0=$(accepted "$dir")
  LINE=$("$D" "$URL" "$senders" "$DRIP_SECONDS" "$@")
  sleep 0.5
  c1=$(ticks); w1=$(written); r1=$(accepted "$dir")
  n=$(( r1 > r0 ? r1 - r0 : 1 ))
  CPU_US=$(( (c1 - c0) * 1000000 / $(getconf CLK_TCK) / n )); BYTES=$(( (w1 - w0) / n ))
}
echo "## Drip: single-result messages, each answered after commit"
echo
echo "Closed loop: each sender sends its next message when the previous answer is in (the most the gateway takes). Fixed rate: the 64 senders together offer a rate on a schedule, latency counted from the scheduled moment; at \`full\` the rate is 0.66 x the reference of the same line (issue 19, target 2: p99 <= 20 ms in every run). The first 2 s of each run are not counted. CPU and bytes written are per accepted message, whole process, warm-up included."
echo
echo "| durability | senders | load | messages/s | x reference | p50 ms | p99 ms | max ms | CPU µs/msg | bytes written/msg | reference: one-row transactions/s | load average |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
if [ "$QUICK" = "--quick" ]; then FIXED_RUNS=2; else FIXED_RUNS=5; fi
FIXED_MET=0
for durability in full normal; do
  sync=$( [ $durability = full ] && echo FULL || echo NORMAL )
  reference=$("$D" sqlite-reference "$OUT" "$sync" 3 | sed 's/.*per_second=//')
  start_gateway "$OUT/drip" UWLR_DURABILITY=$durability
  drip_setup "$OUT/drip"
  runs=("1 closed" "8 closed" "64 closed")
  if [ $durability = full ]; then
    for _ in $(seq $FIXED_RUNS); do runs+=("64 0.66"); done
  else
    runs+=("64 5000")
  fi
  for run in "${runs[@]}"; do
    set -- $run
    senders=$1
    if [ "$2" = closed ]; then rate=(); load=closed
    elif [ "$2" = 0.66 ]; then
      # The reference again just before, so each fixed-rate run stands beside its own.
      reference=$("$D" sqlite-reference "$OUT" "$sync" 3 | sed 's/.*per_second=//')
      r=$(echo "$reference * 0.66 / 1" | bc); rate=(--rate=$r); load="$r/s (0.66 x)"
    else rate=(--rate=$2); load="$2/s"; fi
    drip_run "$OUT/drip" "$senders" "${rate[@]}"
    p99=$(field "$LINE" p99_ms)
    if [ "$2" = 0.66 ] && [ "$(echo "$p99 <= 20" | bc)" = 1 ]; then FIXED_MET=$((FIXED_MET + 1)); fi
    echo "| $durability | $senders | $load | $(field "$LINE" per_second) | $(echo "scale=2; $(field "$LINE" per_second) / $reference" | bc) | $(field "$LINE" p50_ms) | $p99 | $(field "$LINE" max_ms) | $CPU_US | $BYTES | $reference | $(cut -d' ' -f1 /proc/loadavg) |"
  done
  stop_gateway
done
echo
echo "Target 2 (full, 64 senders): closed loop >= 1.5 x reference (see \"x reference\" of the 64-sender closed line); fixed rate at 0.66 x reference: p99 <= 20 ms in $FIXED_MET of $FIXED_RUNS runs."
echo

# --- Drip beside a batch (issue 19, target 1) ---------------------------------------------
# 64 senders at a fixed 1,000 messages/s at `full`, for schools 1-64 (school 0 is the batch's:
# a drip message stamped now would put the batch out of order); after 3 s a batch is posted. Reads (LAS
# feed, xAPI statements, a receipt) run in a loop beside it (benches/reads.py). The batch's
# time beside the drip is compared with the same batch on a fresh gateway alone.
beside_batch() { # FILE ROSTER LABEL
  local file=$1 roster=$2 label=$3 t0 t1 alone b0 b1 beside token receipt
  start_gateway "$OUT/beside" UWLR_DURABILITY=full UWLR_MAX_CONNECTIONS_PER_ADDRESS=256
  drip_setup "$OUT/beside" "$OUT/drip-setup-65" 1
  "$G" --data-dir "$OUT/beside" leerlingen import "$roster" > /dev/null
  t0=$(now); code=$(post "$file"); t1=$(now)
  [ "$code" = 200 ] || { echo "$label refused: $code" >&2; head -c 2000 "$OUT/answer.xml" >&2; exit 1; }
  alone=$(echo "$t1 - $t0" | bc)
  stop_gateway
  start_gateway "$OUT/beside" UWLR_DURABILITY=full UWLR_MAX_CONNECTIONS_PER_ADDRESS=256
  drip_setup "$OUT/beside" "$OUT/drip-setup-65" 1
  "$G" --data-dir "$OUT/beside" leerlingen import "$roster" > /dev/null
  token=$("$G" --data-dir "$OUT/beside" readers add bench --school 99XX01 --scope las,xapi --mandate BENCH --valid-from 2020-01-01 | tail -n 1)
  receipt=$(sqlite3 "$OUT/beside/gateway.sqlite" "SELECT id FROM receipts WHERE outcome = 'accepted' LIMIT 1")
  rm -f "$OUT/reads.stop"
  python3 benches/reads.py "http://127.0.0.1:$PORT" "$token" 99XX01 "$receipt" "$OUT/reads.txt" "$OUT/reads.stop" &
  local reads_pid=$!
  local seconds; seconds=$(echo "$alone * 2 + 8" | bc | cut -d. -f1)
  "$D" "$URL" 64 "$seconds" --warmup=1 --rate=1000 --timeline --first-school=1 > "$OUT/beside-drip.txt" &
  local drip_pid=$!
  sleep 4
  b0=$(now); code=$(post "$file"); b1=$(now)
  [ "$code" = 200 ] || { echo "$label beside the drip refused: $code" >&2; head -c 2000 "$OUT/answer.xml" >&2; exit 1; }
  beside=$(echo "$b1 - $b0" | bc)
  wait "$drip_pid"
  touch "$OUT/reads.stop"; wait "$reads_pid" || true
  stop_gateway
  local line start
  line=$(tail -1 "$OUT/beside-drip.txt")
  start=$(sed -n 's/^timeline starts at .* unix=//p' "$OUT/beside-drip.txt")
  echo "### Beside $label ($(echo "scale=1; $(stat -c %s "$file") / 1000000" | bc) MB), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| what | figure | target |"
  echo "|---|---|---|"
  echo "| batch alone (fresh gateway, drip schools set up) | $alone s | |"
  echo "| batch beside the drip | $beside s ($(echo "scale=2; $beside / $alone" | bc) x alone) | <= 1.2 x |"
  echo "| drip, whole run: messages/s, p99, max | $(field "$line" per_second) /s, $(field "$line" p99_ms) ms, $(field "$line" max_ms) ms | p99 <= 100 ms, max <= 1,000 ms |"
  for kind in feed xapi receipt; do
    # Reads started while the batch was being received and stored, and the others.
    local during outside
    during=$(awk -v k=$kind -v a="$b0" -v b="$b1" '$1==k && $2>=a && $2<=b {print $3}' "$OUT/reads.txt" | sort -n | awk '{v[NR]=$1} END {if (NR) printf "%d reads, p99 %s ms, max %s ms", NR, v[int(NR*0.99+0.999)], v[NR]; else print "none"}')
    outside=$(awk -v k=$kind -v a="$b0" -v b="$b1" '$1==k && ($2<a || $2>b) {print $3}' "$OUT/reads.txt" | sort -n | awk '{v[NR]=$1} END {if (NR) printf "p99 %s ms", v[int(NR*0.99+0.999)]; else print "none"}')
    echo "| $kind reads during the batch (outside it: $outside) | $during | p99 <= 100 ms |"
  done
  echo
  echo "p99 per half second of the drip (the batch ran from $(echo "$b0 - $start" | bc | xargs printf '%.1f') s to $(echo "$b1 - $start" | bc | xargs printf '%.1f') s):"
  echo
  echo "| t s | messages | p99 ms | max ms | batch |"
  echo "|---|---|---|---|---|"
  grep '^t=' "$OUT/beside-drip.txt" | sed 's/[a-z0-9_]*=//g; s/s / /' | while read -r t n p m; do
    mark=$(echo "$t + 0.5 > $b0 - $start && $t < $b1 - $start" | bc)
    echo "| $t | $n | $p | $m | $([ "$mark" = 1 ] && echo running) |"
  done
  echo
}
echo "## Drip beside a batch (issue 19, target 1)"
echo
echo "64 senders at a fixed 1,000 messages/s, \`durability = full\`; the batch is posted 3 s into the measured part; feed, xAPI and receipt reads run in a loop beside it (python urllib, one connection per read, so each read includes a TCP connect)."
echo
beside_batch "$OUT/batch200k.xml" "$OUT/roster.csv" "a 200,000-result batch"
if [ "$QUICK" != "--quick" ]; then
  beside_batch "$OUT/size-500/batch.xml" "$OUT/size-500/roster.csv" "a 500 MB batch"
fi
