#!/usr/bin/env python3
"""Replays issue 14's hostile clients against a running `simba serve` and prints what held.

    python3 bench/hostile-clients.py [http://127.0.0.1:8000] [--connections 250] [--watch 80]
                                     [--sources 1]

1. Slow clients: a third of the connections send nothing, a third stop in the middle of their
   headers, a third declare a body and stop in the middle of it. Prints how many are still open
   every 5 s, for --watch seconds. With --sources N (a server on 127.0.0.1 only) they come from
   127.0.0.1 to 127.0.0.N in turn, so that the per-address cap is not all that cuts them off.
2. A declared Content-Length of 100 MB: how long until the answer, its status, and how many body
   bytes the server took before it answered or closed.
3. Two Host headers: the status.
4. Made-up methods XMETHOD1..100: how many series /metrics gained (SIMBA_METRICS_TOKEN in the
   environment is sent as a bearer token).
"""
import os
import socket
import sys
import time
import urllib.request
from urllib.parse import urlparse

args = [a for a in sys.argv[1:] if not a.startswith("--")]
base = urlparse(args[0] if args else "http://127.0.0.1:8000")
host, port = base.hostname, base.port or 80


def flag(name, default):
    if name in sys.argv:
        return int(sys.argv[sys.argv.index(name) + 1])
    return default


def connect(source=None):
    s = socket.create_connection((host, port), timeout=10,
                                 source_address=(source, 0) if source else None)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def is_open(s):
    s.setblocking(False)
    try:
        s.recv(65536)
        return False  # closed, or answered (a 408) on its way to closing
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


def slow_clients(n, watch):
    kinds = [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",
             b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: 1000\r\n\r\n{\"username\": "]
    conns = []
    sources = flag("--sources", 1)
    for i in range(n):
        try:
            s = connect(f"127.0.0.{1 + i % sources}" if sources > 1 else None)
            s.sendall(kinds[i % 3])
            conns.append((i % 3, s))
        except OSError as e:
            print(f"  connection {i}: {e}")
    print(f"slow clients: {len(conns)} connections opened")
    start = time.monotonic()
    alive = {id(s): True for _, s in conns}
    while time.monotonic() - start < watch:
        time.sleep(5)
        counts = [0, 0, 0]
        for kind, s in conns:
            if alive[id(s)] and is_open(s):
                counts[kind] += 1
            else:
                alive[id(s)] = False
        t = time.monotonic() - start
        print(f"  {t:5.1f} s: open idle={counts[0]} mid-headers={counts[1]} mid-body={counts[2]}")
        if sum(counts) == 0:
            break
    for _, s in conns:
        s.close()


def oversized_body():
    s = connect()
    s.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100000000\r\n\r\n")
    start = time.monotonic()
    sent = 0
    chunk = b"x" * 4096
    s.settimeout(0.05)
    answer = b""
    while time.monotonic() - start < 30:
        try:
            answer = s.recv(4096)
            break
        except socket.timeout:
            pass
        try:
            sent += s.send(chunk)
        except OSError:
            break
    s.settimeout(5)
    try:
        answer = answer or s.recv(4096)
    except OSError:
        pass
    status = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    print(f"100 MB declared: '{status}' after {1000 * (time.monotonic() - start):.0f} ms, "
          f"{sent} body bytes sent before the answer")
    s.close()


def two_hosts():
    s = connect()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n")
    status = s.recv(4096).split(b"\r\n", 1)[0].decode()
    print(f"two Host headers: '{status}'")
    s.close()


def metric_series():
    def series():
        request = urllib.request.Request(f"http://{host}:{port}/metrics")
        if os.environ.get("SIMBA_METRICS_TOKEN"):
            request.add_header("Authorization", f"Bearer {os.environ['SIMBA_METRICS_TOKEN']}")
        body = urllib.request.urlopen(request).read().decode()
        return sum(1 for line in body.splitlines() if line and not line.startswith("#"))

    before = series()
    for i in range(1, 101):
        s = connect()
        s.sendall(f"XMETHOD{i} /x{i} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        s.recv(4096)
        s.close()
    print(f"100 made-up methods on 100 paths: /metrics series {before} -> {series()}")


two_hosts()
metric_series()
oversized_body()
slow_clients(flag("--connections", 250), flag("--watch", 80))
