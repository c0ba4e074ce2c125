#!/usr/bin/env python3
"""Many shops through Simba's API on keep-alive connections, for the bench scripts.

One curl per request costs a process and a TCP handshake each: fine for 40 shops, minutes for
10,000. Every command reads the sellers' tokens from $TOKEN, separated by commas (but `register`,
which prints them).

    shops.py URL register [SELLERS]       # registers SELLERS (1) sellers; prints their tokens
    shops.py URL create N                 # shops s1..sN on sandbox-1..N / secret-1..N, auto_sync
                                          # off, dealt to the sellers in turn
    shops.py URL sync-all > runs.txt      # a full sync of every shop, from QUEUERS (16)
                                          # connections at once; prints the run ids
    shops.py URL wait [PID...]            # until no shop has a queued or running run; fails
                                          # if one of the PIDs (Simba's processes) ends first
    shops.py URL runs runs.txt            # {"succeeded": n, ...}: the runs' final statuses

Several sellers: every shop's commits take their seller's row lock for the change feed (one row
for all of them with one seller), and real sellers have a few shops each.

URL is Simba's base, e.g. http://127.0.0.1:8910. `wait` follows the `next` link of every page of
/api/v1/shops, so it sees every shop however many there are; a shop's `active_run_id` is set
when a run is queued and cleared when it ends, so "no shop has one" is exactly "every run ended".
"""

import http.client
import json
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

PAGE = "/api/v1/shops?page_size=500"


class Link:
    """One keep-alive HTTP/1.1 connection, shared by every seller's [`Api`]: the server caps the
    connections of one address (64 by default)."""

    def __init__(self, base):
        self.host = urlsplit(base).netloc
        self.conn = http.client.HTTPConnection(self.host, timeout=60)


class Api:
    """One seller's calls on the shared [`Link`]; reconnects once if the server closed it."""

    def __init__(self, link, token=None):
        self.link = link
        self.token = token

    def call(self, method, path, body=None):
        headers = {"content-type": "application/json"}
        if self.token:
            headers["authorization"] = f"Token {self.token}"
        # Bytes, not str: http.client sends a str body in a send() of its own after the headers,
        # and Nagle's algorithm holds it until the server's delayed ACK of the headers, 40 ms
        # later: a POST a client on one connection could make in 1 ms took 41.
        data = None if body is None else json.dumps(body).encode()
        link = self.link
        for attempt in (1, 2):
            try:
                link.conn.request(method, path, body=data, headers=headers)
                response = link.conn.getresponse()
                text = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                link.conn.close()
                link.conn = http.client.HTTPConnection(link.host, timeout=60)
                if attempt == 2:
                    raise
        if response.status >= 300:
            sys.exit(f"{method} {path}: {response.status} {text[:300]!r}")
        return json.loads(text) if text else None

    def shops(self):
        """Every shop of the seller, page after page by the `next` links."""
        path = PAGE
        while path:
            page = self.call("GET", path)
            yield from page["results"]
            path = page["next"] and urlsplit(page["next"])._replace(scheme="", netloc="").geturl()


def main():
    base, command, *args = sys.argv[1:]
    link = Link(base)
    sellers = [Api(link, token) for token in os.environ.get("TOKEN", "").split(",") if token]
    api = sellers[0] if sellers else Api(link)
    if command == "register":
        tokens = []
        for n in range(1, int(args[0] if args else 1) + 1):
            name = "bench" if n == 1 else f"bench{n}"
            body = {"username": name, "email": f"{name}@example.com", "password": "bench password"}
            tokens.append(api.call("POST", "/api/v1/auth/register", body)["token"])
        print(",".join(tokens))
    elif command == "create":
        for n in range(1, int(args[0]) + 1):
            body = {"name": f"s{n}", "client_id": f"sandbox-{n}", "client_secret": f"secret-{n}",
                    "auto_sync": False}
            sellers[(n - 1) % len(sellers)].call("POST", "/api/v1/shops", body)
    elif command == "sync-all":
        # Queued from QUEUERS connections at once, as a client with thousands of shops would:
        # each answer waits for the SQLite writer's next group commit (tens of ms while runs
        # commit), so one connection alone queued 5,000 shops in about three minutes.
        shops = [(index, shop["id"]) for index, seller in enumerate(sellers)
                 for shop in seller.shops()]
        local = threading.local()

        def queue(entry):
            index, shop = entry
            if not hasattr(local, "link"):
                local.link = Link(base)
            seller = Api(local.link, sellers[index].token)
            return index, seller.call("POST", f"/api/v1/shops/{shop}/sync", {"mode": "full"})["id"]

        with ThreadPoolExecutor(int(os.environ.get("QUEUERS", "16"))) as pool:
            for index, run in pool.map(queue, shops):
                print(index, run)
    elif command == "wait":
        said = time.monotonic()
        while True:
            for pid in args:
                if not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z":
                    sys.exit(f"process {pid} ended while runs were still queued or running")
            walk = time.monotonic()
            active = sum(shop["active_run_id"] is not None
                         for seller in sellers for shop in seller.shops())
            if active == 0:
                break
            if time.monotonic() - said >= 30:
                print(f"  {active} runs still queued or running", file=sys.stderr)
                said = time.monotonic()
            # A walk of 10,000 shops is 20 pages: rest four times as long, so that the poll
            # takes at most a fifth of what the server could give the runs.
            time.sleep(max(0.1, 4 * (time.monotonic() - walk)))
    elif command == "runs":
        with open(args[0]) as f:
            runs = [line.split() for line in f if line.strip()]
        print(json.dumps(Counter(sellers[int(seller)].call("GET", f"/api/v1/sync-runs/{run}")["status"]
                                 for seller, run in runs)))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
