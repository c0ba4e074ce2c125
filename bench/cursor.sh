#!/usr/bin/env bash
# Cursor pagination with 1,000,000 shipments stored (one seller, 10 shops × 100,000), SQLite:
# (a) one client walks the whole list by cursor, page_size=500, default ordering, following
#     `next` over a keep-alive connection: shipments per second end to end (target ≥ 50,000/s);
# (b) wrk -c32 on cursor pages of 50 at random depths (cursors collected by walk (a), which
#     are valid at any page_size): req/s and latency (target ≥ 5,000 req/s, p99 ≤ 20 ms).
# 3 s warm-up, DURATION (15) s measured. Results and the Lua script go to bench/out/cursor.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
DURATION=${DURATION:-15}
out=bench/out/cursor
mkdir -p "$out"
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p simba --example seed_shipments --bin simba
export SIMBA_ADDR=127.0.0.1:8901 SIMBA_LOG_FORMAT=json RUST_LOG=warn SECRET_KEY=bench-secret-key-0123456789abcdef
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null' EXIT
rm -f "$out"/simba.db*
export DATABASE_URL="sqlite://$PWD/$out/simba.db?mode=rwc"
token=$(target/release/examples/seed_shipments --shops 10 --per-shop 100000)
target/release/simba serve --no-workers & server=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:8901/healthz >/dev/null && break; sleep 0.2; done

# (a) The walk, twice: the first warms the page cache of the operating system.
for pass in warm-up measured; do
  python3 - "$token" "$out/cursors.txt" "$pass" <<'PY'
import http.client, re, sys, time
token, cursors_path, name = sys.argv[1:]
conn = http.client.HTTPConnection("127.0.0.1", 8901)
path = "/api/v1/shipments?cursor=&page_size=500"
headers = {"Authorization": f"Token {token}"}
seen, pages, cursors = 0, 0, []
start = time.perf_counter()
while path:
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, (response.status, body[:200])
    seen += body.count(b'"shipment_id"')
    pages += 1
    link = re.search(r'<http://[^/]+([^>]*)>; rel="next"', response.getheader("Link") or "")
    path = link.group(1) if link else None
    if path:
        cursors.append(path.split("cursor=")[1].split("&")[0])
elapsed = time.perf_counter() - start
assert seen == 1_000_000, seen
if name == "measured":
    open(cursors_path, "w").write("\n".join(cursors))
    print(f"| walk, page_size=500, 1 client | {seen:,} shipments in {pages:,} pages | "
          f"{elapsed:.2f} s | **{seen / elapsed:,.0f} shipments/s** |")
PY
done

# (b) Random-depth pages of 50.
python3 - "$token" "$out/cursors.txt" "$out/random-depth.lua" <<'PY'
import sys
token, cursors_path, lua = sys.argv[1:]
cursors = open(cursors_path).read().split()
with open(lua, "w") as f:
    f.write("local cursors = {\n")
    f.write(",\n".join(f'"{c}"' for c in cursors))
    f.write("\n}\nmath.randomseed(os.time())\n")
    f.write("request = function()\n")
    f.write('  local path = "/api/v1/shipments?page_size=50&cursor=" .. cursors[math.random(#cursors)]\n')
    f.write(f'  return wrk.format("GET", path, {{["Authorization"] = "Token {token}"}})\n')
    f.write("end\n")
PY
wrk -t2 -c32 -d3s -s "$out/random-depth.lua" http://127.0.0.1:8901/ >/dev/null
# The server's CPU time per request, read around the measured run: on a machine shared with
# other work, req/s moves with the load but the CPU a request costs hardly does.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$server/stat"; }
before=$(cpu_ticks)
wrk -t2 -c32 -d"${DURATION}s" --latency -s "$out/random-depth.lua" http://127.0.0.1:8901/ >"$out/random-depth.txt"
after=$(cpu_ticks)
python3 - "$out/random-depth.txt" "$((after - before))" "$(getconf CLK_TCK)" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
ticks, per_second = int(sys.argv[2]), int(sys.argv[3])
def ms(label):
    value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
requests = int(re.search(r"(\d+) requests in", text).group(1))
cpu_us = ticks / per_second / requests * 1e6
print(f"| random-depth page of 50, wrk -c32 | **{rps:,.0f} req/s** | p50 {ms(50):.1f} ms | "
      f"**p99 {ms(99):.1f} ms** | non-2xx {errors.group(1) if errors else 0} | "
      f"server CPU {cpu_us:.0f} µs/request |")
PY
grep -E 'VmHWM' /proc/$server/status | sed "s/^/peak: /" >&2
