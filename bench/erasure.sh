#!/usr/bin/env bash
# A retention run over 1,000,000 shipments (one seller, 10 shops × 100,000, all older than the
# setting) on SQLite, and the list API's latency while it runs: wrk with 8 keep-alive
# connections on the list (page of 50, random page 1–100) for DURATION (20) s before the
# setting changes (baseline), then from the change until every shipment is erased. Prints the
# run's wall time and both latency tables.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
DURATION=${DURATION:-20}
out=bench/out/erasure
mkdir -p "$out"
cargo build --release -p simba --example seed_shipments --bin simba
export SIMBA_ADDR=127.0.0.1:8901 SIMBA_LOG_FORMAT=json RUST_LOG=info SECRET_KEY=bench-secret-key-0123456789abcdef
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null' EXIT
rm -f "$out"/simba.db*
export DATABASE_URL="sqlite://$PWD/$out/simba.db?mode=rwc"
token=$(target/release/examples/seed_shipments --shops 10 --per-shop 100000)
target/release/simba serve >"$out/server.log" 2>&1 & server=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:8901/healthz >/dev/null && break; sleep 0.2; done

cat > "$out/list.lua" <<LUA
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/api/v1/shipments?page=" .. math.random(1, 100), {["Authorization"] = "Token $token"})
end
LUA
latency() { # label, wrk output
  python3 - "$1" "$2" <<'PY'
import re, sys
text = open(sys.argv[2]).read()
def ms(label):
    value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"| {sys.argv[1]} | {rps:,.0f} | {ms(50):.1f} ms | {ms(99):.1f} ms |"
      f" {errors.group(1) if errors else 0} |")
PY
}
# The newest shipment is erased last (the job goes oldest first).
newest_erased() {
  curl -sf -H "Authorization: Token $token" \
    "http://127.0.0.1:8901/api/v1/shipments?page_size=1&ordering=-shipment_date" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["results"][0]["personal_data_erased_at"] is not None)'
}

wrk -t2 -c8 -d3s -s "$out/list.lua" http://127.0.0.1:8901/ >/dev/null
wrk -t2 -c8 -d"${DURATION}s" --latency -s "$out/list.lua" http://127.0.0.1:8901/ >"$out/baseline.txt"

start=$(date +%s.%N)
curl -sf -X PATCH -H "Authorization: Token $token" -H 'Content-Type: application/json' \
  -d '{"retention_days": 30}' http://127.0.0.1:8901/api/v1/auth/user >/dev/null
# Long enough to cover the run; cut short once it is done.
wrk -t2 -c8 -d600s --latency -s "$out/list.lua" http://127.0.0.1:8901/ >"$out/during.txt" & load=$!
until [ "$(newest_erased)" = True ]; do sleep 1; done
end=$(date +%s.%N)
kill -INT $load; wait $load || true
grep -E 'VmHWM' /proc/$server/status | sed "s/^/peak: /" >&2

python3 -c "print(f'retention run over 1,000,000 shipments (from the setting change): {$end - $start:.1f} s')"
echo "| list API | req/s | p50 | p99 | non-2xx |"
echo "|---|---|---|---|---|"
latency "before the run" "$out/baseline.txt"
latency "during the run" "$out/during.txt"
