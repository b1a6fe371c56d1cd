"""Read load beside a bench (issue 19): LAS feed, xAPI statements and a receipt, in turn,
until STOP_FILE exists; one line per request: kind, start (unix seconds), latency ms, status.

Usage: python3 benches/reads.py BASE TOKEN SCHOOL RECEIPT_ID OUT_FILE STOP_FILE
"""
import base64, os, sys, time, urllib.error, urllib.request

base, token, school, receipt, out_file, stop_file = sys.argv[1:7]
basic = base64.b64encode(b"DEMO-EA:demo-autorisatiesleutel-2026").decode()
requests = [
    ("feed", f"/api/v1/schools/{school}/toetsafnames?since=0&limit=100", {"Authorization": "Bearer " + token}),
    ("xapi", "/xapi/statements?limit=10", {"Authorization": "Bearer " + token, "X-Experience-API-Version": "1.0.3"}),
    ("receipt", f"/api/v1/receipts/{receipt}", {"Authorization": "Basic " + basic}),
]
with open(out_file, "w") as out:
    while not os.path.exists(stop_file):
        for kind, path, headers in requests:
            started = time.time()
            try:
                with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers), timeout=30) as response:
                    response.read()
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                status = 0
            out.write(f"{kind} {started:.3f} {(time.time() - started) * 1000:.2f} {status}\n")
            out.flush()
            time.sleep(0.02)
