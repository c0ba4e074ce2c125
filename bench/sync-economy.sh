#!/usr/bin/env bash
# Sync economy: one shop of FBR+FBB shipments (default 8,000 + 2,000) on the sandbox with the
# published limits, time scaled (default 100: bol's 50 details a minute become 50 every 0.6 s),
# synced by `simba sync` on a fresh SQLite database. Prints calls against the minimum, 429s,
# wall time against the floor the limits imply, and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
FBR=${FBR:-8000} FBB=${FBB:-2000} SCALE=${SCALE:-100}
out=bench/out/sync-economy
rm -rf "$out" && mkdir -p "$out"
cargo build --release -p simba
bin=$PWD/target/release/simba
export DATABASE_URL="sqlite://$PWD/$out/simba.db?mode=rwc" SIMBA_ADDR=127.0.0.1:8910 RUST_LOG=warn
"$bin" sandbox --addr 127.0.0.1:8911 --fbr "$FBR" --fbb "$FBB" --time-scale "$SCALE" >"$out/sandbox.log" 2>&1 & sandbox=$!
"$bin" serve --no-workers >"$out/serve.log" 2>&1 & server=$!
trap 'kill $sandbox $server 2>/dev/null' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:8910/healthz >/dev/null && break; sleep 0.1; done
token=$(curl -sf -X POST http://127.0.0.1:8910/api/v1/auth/register -H 'content-type: application/json' \
  -d '{"username":"bench","email":"bench@example.com","password":"bench password"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
curl -sf -X POST http://127.0.0.1:8910/api/v1/shops -H "Authorization: Token $token" -H 'content-type: application/json' \
  -d '{"name":"bench","client_id":"sandbox-1","client_secret":"secret-1","auto_sync":false}' >/dev/null
kill $server; wait $server 2>/dev/null || true
SIMBA_BOL_API_URL=http://127.0.0.1:8911 SIMBA_BOL_LOGIN_URL=http://127.0.0.1:8911 SIMBA_BOL_TIME_SCALE=$SCALE \
  /usr/bin/time -v "$bin" sync --shop 1 --mode full 2>"$out/time.txt" | tee "$out/summary.txt"
grep -E "Maximum resident" "$out/time.txt"
curl -s http://127.0.0.1:8911/_sandbox/stats > "$out/stats.json"
python3 - "$out/stats.json" "$FBR" "$FBB" "$SCALE" <<'PY'
import json, sys
stats = json.load(open(sys.argv[1]))["accounts"][0]
fbr, fbb, scale = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
minimum = fbr // 50 + 1 + fbb // 50 + 1 + fbr + fbb + 1
calls = sum(stats[g]["calls"] for g in ("token", "list", "detail"))
r429 = sum(stats[g]["rate_limited"] for g in ("token", "list", "detail"))
wasted = sum(stats[g]["wasted"] for g in ("token", "list", "detail"))
print(f"sandbox: {calls} calls, minimum {minimum} (token calls counted once per lifetime used: "
      f"{stats['token']['calls']}), ratio excluding token renewals {(calls - stats['token']['calls'] + 1) / minimum:.3f}, "
      f"429s {r429}, wasted {wasted}")
floor = max((fbr // 50 + 1 + fbb // 50 + 1) / 25, (fbr + fbb) / 50) * 60 / scale
print(f"floor (groups in parallel) {floor:.1f} s")
PY
