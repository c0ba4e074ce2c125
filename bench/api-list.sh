#!/usr/bin/env bash
# API throughput with 1,000,000 shipments stored (one seller, 10 shops × 100,000): wrk with 32
# keep-alive connections on three requests — the list (page of 50, random page 1–100), the
# list filtered (one shop, FBB, shipped in a 5-day range), one shipment's detail (random id) —
# 3 s warm-up, DURATION (15) s measured. BACKENDS="sqlite postgres" by default; PostgreSQL uses
# a fresh database `simba_bench` on POSTGRES_URL (default the local server).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
BACKENDS=${BACKENDS:-sqlite postgres} DURATION=${DURATION:-15}
POSTGRES_URL=${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
out=bench/out/api-list
mkdir -p "$out"
cargo build --release -p simba --example seed_shipments --bin simba
export SIMBA_ADDR=127.0.0.1:8900 SIMBA_LOG_FORMAT=json RUST_LOG=warn SECRET_KEY=bench-secret-key-0123456789abcdef
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null' EXIT

scenario() { # name, Lua expression for the path
  cat > "$out/$1.lua" <<LUA
math.randomseed(os.time())
request = function()
  return wrk.format("GET", $2, {["Authorization"] = "Token $token"})
end
LUA
  wrk -t2 -c32 -d3s -s "$out/$1.lua" http://127.0.0.1:8900/ >/dev/null
  wrk -t2 -c32 -d"${DURATION}s" --latency -s "$out/$1.lua" http://127.0.0.1:8900/ >"$out/$backend-$1.txt"
  python3 - "$backend" "$1" "$out/$backend-$1.txt" <<'PY'
import re, sys
text = open(sys.argv[3]).read()
def ms(label):
    value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"| {sys.argv[1]} | {sys.argv[2]} | {rps:,.0f} | {ms(50):.1f} ms | {ms(99):.1f} ms |"
      f" {errors.group(1) if errors else 0} |")
PY
}

echo "| backend | request | req/s | p50 | p99 | non-2xx |"
echo "|---|---|---|---|---|---|"
for backend in $BACKENDS; do
  case $backend in
    sqlite) rm -f "$out"/simba.db*; export DATABASE_URL="sqlite://$PWD/$out/simba.db?mode=rwc" ;;
    postgres)
      psql "$POSTGRES_URL/postgres" -qc 'DROP DATABASE IF EXISTS simba_bench WITH (FORCE)' -c 'CREATE DATABASE simba_bench'
      export DATABASE_URL="$POSTGRES_URL/simba_bench" ;;
    *) echo "unknown backend $backend" >&2; exit 1 ;;
  esac
  token=$(target/release/examples/seed_shipments --shops 10 --per-shop 100000)
  target/release/simba serve --no-workers & server=$!
  for _ in $(seq 50); do curl -sf http://127.0.0.1:8900/healthz >/dev/null && break; sleep 0.2; done
  grep -E 'VmRSS' /proc/$server/status | sed "s/^/$backend idle: /" >&2
  scenario list '"/api/v1/shipments?page=" .. math.random(1, 100)'
  scenario filtered '"/api/v1/shipments?shop=" .. math.random(1, 10) .. "&fulfilment_method=FBB&shipped_after=2026-07-01T00:00:00Z&shipped_before=2026-07-06T00:00:00Z&page=" .. math.random(1, 20)'
  scenario detail '"/api/v1/shipments/" .. math.random(1, 1000000)'
  grep -E 'VmHWM' /proc/$server/status | sed "s/^/$backend peak: /" >&2
  kill $server; wait $server 2>/dev/null || true; server=
done
