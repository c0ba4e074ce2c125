#!/usr/bin/env bash
# Runs the Postman collection with newman (from the npm registry) against a live `simba serve`
# on a fresh SQLite database and a `simba sandbox` with the published limits at time scale 100.
# SIMBA_BIN picks the binary (default: target/debug/simba, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${SIMBA_BIN:-target/debug/simba}
[ -x "$bin" ] || cargo build -p simba
work=$(mktemp -d)
sandbox_port=${SANDBOX_PORT:-18401} simba_port=${SIMBA_PORT:-18400}
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
pids=()
trap cleanup EXIT
"$bin" sandbox --addr "127.0.0.1:$sandbox_port" --time-scale 100 >"$work/sandbox.log" 2>&1 & pids+=($!)
DATABASE_URL="sqlite://$work/simba.db?mode=rwc" SIMBA_ADDR="127.0.0.1:$simba_port" \
  SIMBA_BOL_API_URL="http://127.0.0.1:$sandbox_port" SIMBA_BOL_LOGIN_URL="http://127.0.0.1:$sandbox_port" \
  SIMBA_BOL_TIME_SCALE=100 RUST_LOG=warn "$bin" serve >"$work/simba.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$simba_port/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$simba_port/healthz" >/dev/null || { cat "$work/simba.log" >&2; exit 1; }
npx --yes newman@6 run postman/simba.postman_collection.json \
  --environment postman/simba.postman_environment.json \
  --env-var "baseUrl=http://127.0.0.1:$simba_port" --color off --bail failure ||
  { echo "--- simba log" >&2; tail -50 "$work/simba.log" >&2; exit 1; }
