#!/usr/bin/env python3
"""A change-feed consumer for bench/change-feed.sh: polls /api/v1/shipments/changes on one
keep-alive connection until the sync ends and the feed is drained, then checks that it saw
every shipment's last change exactly once and prints what it measured as a Markdown row.

    feed_consumer.py URL LIMIT        # $TOKEN: the seller's token
"""

import http.client
import json
import os
import sys
import time
from datetime import datetime
from urllib.parse import urlsplit


def main():
    base, limit = sys.argv[1], int(sys.argv[2])
    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=60)
    headers = {"authorization": f"Token {os.environ['TOKEN']}"}

    def get(path):
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            sys.exit(f"GET {path}: {response.status} {body[:300]!r}")
        return json.loads(body)

    def syncing():
        return any(shop["active_run_id"] for shop in get("/api/v1/shops?page_size=500")["results"])

    after, served, last_seen, latencies, lags = 0, [], {}, [], []
    started, drained = time.monotonic(), False
    while True:
        sent = time.monotonic()
        page = get(f"/api/v1/shipments/changes?after={after}&limit={limit}")
        now = time.time()
        latencies.append(time.monotonic() - sent)
        for shipment in page["results"]:
            served.append(shipment["change_seq"])
            last_seen[shipment["id"]] = shipment["change_seq"]
            updated = datetime.fromisoformat(shipment["updated_at"].replace("Z", "+00:00")).timestamp()
            lags.append(now - updated)
        after = page["last_seq"]
        if page["results"]:
            continue
        if drained:
            break
        # One more empty poll after the runs ended: nothing may still be committing.
        drained = not syncing()
        time.sleep(0.05)
    wall = time.monotonic() - started

    final, path = {}, "/api/v1/shipments?page_size=500&ordering=id"
    while path:
        page = get(path)
        final.update((s["id"], s["change_seq"]) for s in page["results"])
        path = page["next"] and urlsplit(page["next"])._replace(scheme="", netloc="").geturl()
    missed = sum(last_seen.get(id) != seq for id, seq in final.items())
    ordered = all(a < b for a, b in zip(served, served[1:]))
    latencies.sort()
    lags.sort()
    pct = lambda xs, p: xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")
    print("| shipments | changes served | polls | poll p50 · p99 | changes/s over the sync | "
          "seen after updated_at p50 · p99 | repeated or out of order | last changes missed |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {len(final):,} | {len(served):,} | {len(latencies):,} "
          f"| {pct(latencies, .5) * 1000:.1f} ms · {pct(latencies, .99) * 1000:.1f} ms "
          f"| {len(served) / wall:,.0f} | {pct(lags, .5):.2f} s · {pct(lags, .99):.2f} s "
          f"| **{0 if ordered else 'yes'}** | **{missed}** |")
    if missed or not ordered:
        sys.exit("the feed skipped or repeated a change")


if __name__ == "__main__":
    main()
