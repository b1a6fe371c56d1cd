#!/usr/bin/env bash
# benches/query-feed.sh: LAS feed throughput (afnames/s read) on a store of generated afnames.
#
# Builds the release binary, generates one batch of AFNAMES results for the demo
# school 99XX01 (`uwlr-gateway generate`), stores it through the SOAP endpoint,
# adds a reader, then times a full catch-up from cursor 0 following `next`
# links with LIMIT items per page, RUNS times. Every page is a real request:
# token check, scope check, snapshot read, audit commit (durability full), JSON.
#
# Then reads every published xAPI statement once through /xapi/statements
# (500 per page, following `more` links) for comparison.
#
# Usage: benches/query-feed.sh [AFNAMES=100000] [LIMIT=1000] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
AFNAMES=${1:-100000}
LIMIT=${2:-1000}
RUNS=${3:-3}

cargo build --release --quiet
BIN=$PWD/target/release/uwlr-gateway
WORK=$(mktemp -d)
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" generate --schools 1 --learners 500 --toetsen 20 --afnames "$AFNAMES" --seed 1 --out "$WORK/gen/batch.xml" >/dev/null
"$BIN" --data-dir "$WORK/data" leerlingen import "$WORK/gen/roster.csv" >/dev/null
"$BIN" --data-dir "$WORK/data" serve --demo --listen 127.0.0.1:0 >"$WORK/stdout" 2>"$WORK/stderr" &
SERVER=$!
for _ in $(seq 100); do
  grep -q '^uwlr-gateway listening on ' "$WORK/stdout" 2>/dev/null && break
  sleep 0.1
done
BASE=$(sed -n 's/^uwlr-gateway listening on //p' "$WORK/stdout")
[ -n "$BASE" ] || { echo "the gateway did not start:" >&2; cat "$WORK/stderr" >&2; exit 1; }
"$BIN" replay "$WORK/gen/batch.xml" --url "$BASE/uwlr/leerresultaten" >/dev/null
TOKEN=$("$BIN" --data-dir "$WORK/data" readers add bench --school 99XX01 --scope las,xapi --mandate BENCH --valid-from 2020-01-01 | tail -n 1)

python3 - "$BASE" "$TOKEN" "$LIMIT" "$RUNS" "$WORK/data/gateway.sqlite" <<'PY'
import json, sys, time, urllib.request
base, token, limit, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rates = []
for run in range(runs):
    path, items, pages = f"/api/v1/schools/99XX01/toetsafnames?since=0&limit={limit}", 0, 0
    started = time.perf_counter()
    while True:
        request = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(request) as response:
            page = json.load(response)
        items += len(page["items"])
        pages += 1
        path = page["next"]
        if not page["has_more"]:
            break
    elapsed = time.perf_counter() - started
    rates.append(items / elapsed)
    print(f"run {run + 1}: {items} afnames in {pages} pages, {elapsed:.2f} s, {items / elapsed:,.0f} afnames/s")
rates.sort()
print(f"median {rates[len(rates) // 2]:,.0f} afnames/s (limit {limit})")

# The bridge publishes after the commit: wait until every change has its statement.
import sqlite3
database = sqlite3.connect(sys.argv[5])
# The publisher's cursor lives in xapi.sqlite beside gateway.sqlite.
database.execute("ATTACH DATABASE ? AS xapi", (sys.argv[5].replace("gateway.sqlite", "xapi.sqlite"),))
while True:
    cursor, end = database.execute(
        "SELECT (SELECT cursor_seq FROM xapi_publisher), (SELECT seq FROM change_counter)"
    ).fetchone()
    if cursor >= end:
        break
    time.sleep(0.1)

path, items, pages = "/xapi/statements?limit=500&ascending=true", 0, 0
started = time.perf_counter()
while path:
    request = urllib.request.Request(
        base + path, headers={"Authorization": "Bearer " + token, "X-Experience-API-Version": "1.0.3"}
    )
    with urllib.request.urlopen(request) as response:
        page = json.load(response)
    items += len(page["statements"])
    pages += 1
    path = page["more"]
elapsed = time.perf_counter() - started
print(f"xapi: {items} statements in {pages} pages, {elapsed:.2f} s, {items / elapsed:,.0f} statements/s")
PY
