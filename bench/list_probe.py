"""A client of the shipment list beside the load: GET /api/v1/shipments every 20 ms on its own
keep-alive connection, from its start until SIGTERM, then one line of JSON to OUT with the
count and the p50, p99, p99.9 and max latency in ms.

    python3 bench/list_probe.py URL OUT      # the seller's token from $TOKEN

wrk's latencies are those of a closed loop that keeps every connection busy on the cores the
server, the sandbox and the engine share: its tail holds its own wait for a core and for its
other connections. This client waits for nothing but its answer, as a seller's does.
"""
import http.client
import json
import os
import signal
import sys
import time
from urllib.parse import urlsplit

url, out = urlsplit(sys.argv[1]), sys.argv[2]
headers = {"Authorization": f"Token {os.environ['TOKEN']}"}
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
latencies, failures = [], 0
while not stop:
    started = time.monotonic()
    try:
        conn.request("GET", "/api/v1/shipments", headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status == 200:
            latencies.append((time.monotonic() - started) * 1000)
        else:
            failures += 1
    except (OSError, http.client.HTTPException):
        failures += 1
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    time.sleep(max(0.0, 0.02 - (time.monotonic() - started)))

latencies.sort()


def quantile(q):
    return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")


with open(out, "w") as f:
    json.dump({"count": len(latencies), "failures": failures, "p50": quantile(0.5),
               "p99": quantile(0.99), "p999": quantile(0.999),
               "max": latencies[-1] if latencies else float("nan")}, f)
