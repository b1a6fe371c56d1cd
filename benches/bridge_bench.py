#!/usr/bin/env python3
"""Measures the xAPI bridge: statements/s delivered to a local receiver and accept-to-delivery lag.

Starts the gateway binary (serve --demo, fresh data dir), a local receiver that answers every
POST /xAPI/statements with 200 and records when each statement arrived, then runs two phases:

  backlog  N messages are accepted with no LRS subscribed; then the receiver is subscribed and
           the time to drain the whole backlog gives the delivery throughput (statements/s).
  steady   the receiver is subscribed and messages are posted at a fixed rate; for every
           statement, lag = arrival at the receiver - moment the gateway's bevestiging came back.

Only loopback traffic; bounded in count and time. Run through benches/bridge.sh.
"""
import argparse, json, os, shutil, signal, statistics, subprocess, sys, tempfile, threading, time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EXT_KEY = "https://bench.example/xapi/extension/resultaatkey"

class Receiver(ThreadingHTTPServer):
    daemon_threads = True
    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.arrivals = {}   # statement id -> (time, resultaatkey)
        self.posts = 0

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    def log_message(self, *args):
        pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        now = time.time()
        statements = json.loads(body)
        if isinstance(statements, dict):
            statements = [statements]
        with self.server.lock:
            self.server.posts += 1
            for s in statements:
                key = s.get("context", {}).get("extensions", {}).get(EXT_KEY)
                self.server.arrivals.setdefault(s["id"], (now, key))
        out = json.dumps([s["id"] for s in statements]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Experience-API-Version", "1.0.3")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

HEAD = """<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header>
<aut:autorisatie xmlns:aut="http://www.edustandaard.nl/leerresultaten/2/autorisatie"><aut:autorisatiesleutel>demo-autorisatiesleutel-2026</aut:autorisatiesleutel><aut:klantcode>DEMO-EA</aut:klantcode><aut:klantnaam>Demo Uitgever</aut:klantnaam></aut:autorisatie>
</soapenv:Header><soapenv:Body><leerresultaten_verzoek xmlns="http://www.edustandaard.nl/leerresultaten/2/leerresultaten">
<school><schooljaar>2026-2027</schooljaar><brincode>99XX</brincode><dependancecode>01</dependancecode><aanmaakdatum>{aanmaakdatum}</aanmaakdatum><xsdversie>2.2</xsdversie></school><toetsafnames>"""
TAIL = """</toetsafnames><toetsen><toets><toetscode>BENCH-T</toetscode><toetsnaam>Bench toets</toetsnaam><toetsnormering>
<norm><term>laag</term><beginnormwaarde>0</beginnormwaarde><eindnormwaarde>20</eindnormwaarde></norm>
<norm><term>hoog</term><beginnormwaarde>21</beginnormwaarde><eindnormwaarde>40</eindnormwaarde></norm>
</toetsnormering></toets></toetsen></leerresultaten_verzoek></soapenv:Body></soapenv:Envelope>"""

def message(index, results, base):
    """One message with `results` toets-level results spread over the 20 demo learners."""
    aanmaakdatum = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + index))
    parts = [HEAD.format(aanmaakdatum=aanmaakdatum)]
    per_learner = {}
    for r in range(results):
        per_learner.setdefault(r % 20, []).append(r)
    for learner, items in per_learner.items():
        parts.append(f"<toetsafname><leerlingid>LL{learner + 1:04d}</leerlingid><resultaten>")
        for r in items:
            parts.append(f'<resultaat key="BENCH-{index}-{r}"><afnamedatum>2026-10-01</afnamedatum>'
                         f"<toetscode>BENCH-T</toetscode><score>{(index + r) % 41}</score></resultaat>")
        parts.append("</resultaten></toetsafname>")
    parts.append(TAIL)
    return "".join(parts).encode()

def post(endpoint, body):
    request = urllib.request.Request(endpoint, data=body, method="POST", headers={
        "Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"BrengLeerresultaten"'})
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
        return response.status

def percentile(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--backlog-messages", type=int, default=300)
    parser.add_argument("--steady-messages", type=int, default=300)
    parser.add_argument("--results", type=int, default=100, help="results (statements) per message")
    parser.add_argument("--rate", type=float, default=20.0, help="steady phase: messages per second")
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="bridge-bench-")
    env = dict(os.environ, UWLR_XAPI_BASE_IRI="https://bench.example/xapi", UWLR_LOG="warn",
               UWLR_XAPI_BATCH_SIZE=str(args.batch_size), UWLR_XAPI_POLL_INTERVAL_MS="200")
    env.pop("UWLR_CONFIG", None)
    data = os.path.join(work, "data")
    out = open(os.path.join(work, "stdout.log"), "w")
    err = open(os.path.join(work, "stderr.log"), "w")
    gateway = subprocess.Popen([args.binary, "--data-dir", data, "serve", "--demo", "--listen", "127.0.0.1:0"],
                               stdout=out, stderr=err, env=env)
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/xAPI/statements"
    try:
        endpoint = None
        deadline = time.time() + 30
        while endpoint is None and time.time() < deadline:
            for line in open(os.path.join(work, "stdout.log")):
                if line.startswith("SOAP endpoint "):
                    endpoint = line.split()[2]
            time.sleep(0.1)
        assert endpoint, "gateway did not start"
        cli = lambda *a: subprocess.run([args.binary, "--data-dir", data, *a], env=env, check=True,
                                        capture_output=True, text=True).stdout
        base = time.time() - 86400 * 30

        # Phase 1: backlog drain.
        started = time.time()
        for i in range(args.backlog_messages):
            assert post(endpoint, message(i, args.results, base)) == 200
        intake_s = time.time() - started
        backlog = args.backlog_messages * args.results
        cli("lrs", "add", "bench", "--url", url)
        subscribed = time.time()
        deadline = subscribed + 600
        while len(receiver.arrivals) < backlog and time.time() < deadline:
            time.sleep(0.01)
        assert len(receiver.arrivals) == backlog, f"{len(receiver.arrivals)} of {backlog} arrived"
        first = min(t for t, _ in receiver.arrivals.values())
        last = max(t for t, _ in receiver.arrivals.values())
        drain_s = last - subscribed
        posts_backlog = receiver.posts

        # Phase 2: steady rate with the receiver subscribed.
        accepted = {}
        offset = args.backlog_messages
        interval = 1.0 / args.rate
        started = time.time()
        for i in range(args.steady_messages):
            due = started + i * interval
            now = time.time()
            if due > now:
                time.sleep(due - now)
            index = offset + i
            assert post(endpoint, message(index, args.results, base)) == 200
            accepted[index] = time.time()
        steady_total = args.steady_messages * args.results
        deadline = time.time() + 600
        while len(receiver.arrivals) < backlog + steady_total and time.time() < deadline:
            time.sleep(0.01)
        lags = []
        for arrival, key in receiver.arrivals.values():
            index = int(key.split("-")[1])
            if index in accepted:
                lags.append((arrival - accepted[index]) * 1000.0)
        steady_s = max(t for t, k in receiver.arrivals.values() if int(k.split("-")[1]) >= offset) - started
        status = cli("outbox", "status")
        result = {
            "backlog_statements": backlog,
            "intake_seconds": round(intake_s, 2),
            "drain_seconds_incl_pickup": round(drain_s, 2),
            "delivered_per_second": round(backlog / max(last - first, 1e-3)),
            "first_arrival_after_subscribe_ms": round((first - subscribed) * 1000),
            "posts_backlog": posts_backlog,
            "steady_statements": steady_total,
            "steady_rate_statements_per_second": round(args.rate * args.results),
            "steady_seconds": round(steady_s, 2),
            "lag_ms_min": round(min(lags), 1),
            "lag_ms_p50": round(percentile(lags, 50), 1),
            "lag_ms_p99": round(percentile(lags, 99), 1),
            "lag_ms_max": round(max(lags), 1),
            "lags_measured": len(lags),
            "duplicates_or_unknown": len(receiver.arrivals) - backlog - steady_total,
        }
        print(json.dumps(result, indent=2))
        print(status.strip())
    finally:
        gateway.send_signal(signal.SIGTERM)
        try:
            gateway.wait(timeout=30)
        except subprocess.TimeoutExpired:
            gateway.kill()
        receiver.shutdown()
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
