#!/usr/bin/env python3
"""Push latency: from a shipment's creation at the sandbox to its being readable in Simba.

    push_latency.py SIMBA_URL SANDBOX_URL N RATE SCALE

Registers a seller, adds shop sandbox-1 with automatic syncs off, syncs it fully, turns push
on and waits for the subscription to be active. Then creates N shipments one at a time, RATE a
marketplace minute (SCALE marketplace seconds pass per real second), and measures for each the
real time from its creation until Simba's API serves it with its detail: a poller reads the
shop's `shipment_count` every POLL seconds (the push worker stores a shipment with its detail
in one write, and no sync runs) and the last shipment read is checked for its items. Prints
p50, p99 and max, and the marketplace calls made meanwhile (the sandbox's counters, reset after
the full sync): the target is exactly N detail calls, 0 list calls and 0 × 429.
"""

import json
import statistics
import sys
import threading
import time

from shops import Api

POLL = 0.02


def main():
    simba, sandbox, n, rate, scale = sys.argv[1:]
    n, rate, scale = int(n), float(rate), float(scale)
    api = Api(simba)
    api.token = api.call("POST", "/api/v1/auth/register",
                         {"username": "bench", "email": "bench@example.com", "password": "bench password"})["token"]
    shop = api.call("POST", "/api/v1/shops", {"name": "s1", "client_id": "sandbox-1",
                                               "client_secret": "secret-1", "auto_sync": False})
    path = f"/api/v1/shops/{shop['id']}"
    run = api.call("POST", f"{path}/sync", {"mode": "full"})
    while api.call("GET", f"/api/v1/sync-runs/{run['id']}")["status"] in ("queued", "running"):
        time.sleep(0.2)
    api.call("PATCH", path, {"push_enabled": True})
    while (state := api.call("GET", path))["push"]["status"] != "active":
        time.sleep(0.1)
    base = state["shipment_count"]
    market = Api(sandbox)
    # The full sync spent the detail budget of its last minute: the measure starts with the
    # budget refilled, as a shop's is between arrivals.
    time.sleep(61.0 / scale)
    market.call("POST", "/_sandbox/reset")

    created = [None] * n
    readable = [None] * n
    done = threading.Event()

    def poll():
        reader = Api(simba, api.token)
        seen = 0
        while seen < n:
            count = reader.call("GET", path)["shipment_count"] - base
            now = time.monotonic()
            for k in range(seen, min(count, n)):
                readable[k] = now
            seen = max(seen, count)
            time.sleep(POLL)
        done.set()

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    every = 60.0 / rate / scale
    start = time.monotonic()
    for k in range(n):
        pause = start + k * every - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        created[k] = time.monotonic()
        market.call("POST", "/_sandbox/shipments", {"account": "sandbox-1", "fbr": 1})
    if not done.wait(timeout=600):
        sys.exit(f"only {sum(r is not None for r in readable)} of {n} shipments became readable")

    newest = api.call("GET", f"/api/v1/shops/{shop['id']}/shipments?page_size=1&ordering=-shipment_date")["results"][0]
    detail = api.call("GET", f"/api/v1/shipments/{newest['id']}")
    latencies = sorted(r - c for c, r in zip(created, readable))
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    calls = market.call("GET", "/_sandbox/stats")["accounts"][0]
    print(json.dumps({
        "shipments": n,
        "rate_per_marketplace_minute": rate,
        "time_scale": scale,
        "latency_s": {"p50": round(q[49], 3), "p99": round(q[98], 3), "max": round(latencies[-1], 3)},
        "detail_calls": calls["detail"]["calls"],
        "list_calls": calls["list"]["calls"],
        "rate_limited": calls["detail"]["rate_limited"] + calls["list"]["rate_limited"],
        "wasted": calls["detail"]["wasted"] + calls["list"]["wasted"],
        "newest_has_detail": bool(detail.get("items")),
        "push": api.call("GET", path)["push"],
    }, indent=1))


if __name__ == "__main__":
    main()
