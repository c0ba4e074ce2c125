#!/usr/bin/env bash
# API throughput: GET /api/v1/shipments (page of 50, random page 1–100) with 1,000,000
# shipments stored (10 shops × 100,000), 32 connections, wrk. SQLite by default; set
# DATABASE_URL (and SECRET_KEY) to measure another backend on a fresh database.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
out=bench/out/api-list
mkdir -p "$out"
if [ -z "${DATABASE_URL:-}" ]; then
  rm -f "$out"/simba.db*
  export DATABASE_URL="sqlite://$PWD/$out/simba.db?mode=rwc"
fi
export SIMBA_ADDR=127.0.0.1:8900 SIMBA_LOG_FORMAT=json RUST_LOG=warn
cargo build --release -p simba --example seed_shipments --bin simba
echo "seeding 1,000,000 shipments…" >&2
token=$(target/release/examples/seed_shipments --shops 10 --per-shop 100000)
target/release/simba serve & server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 50); do curl -sf http://127.0.0.1:8900/healthz >/dev/null && break; sleep 0.2; done
cat > "$out/list.lua" <<LUA
math.randomseed(os.time())
request = function()
  local path = "/api/v1/shipments?page=" .. math.random(1, 100)
  return wrk.format("GET", path, {["Authorization"] = "Token $token"})
end
LUA
wrk -t2 -c32 -d3s -s "$out/list.lua" http://127.0.0.1:8900/ >/dev/null
wrk -t2 -c32 -d15s --latency -s "$out/list.lua" http://127.0.0.1:8900/ | tee "$out/result.txt"
grep -E 'VmHWM|VmRSS' /proc/$server/status
