#!/usr/bin/env bash
# Ingest throughput with the marketplace's limits off, so that only Simba is measured: SHOPS
# shops × PER_SHOP shipments (default 40 × 500 = 20,000, details included) queued through the
# API, then one `simba worker` syncs them all. Prints shipments per second end to end (first
# run queued → last run ended), the worker's CPU seconds per 1,000 shipments and its peak RSS,
# for each of BACKENDS (default "sqlite postgres"; PostgreSQL in a fresh `simba_bench`).
set -euo pipefail
cd "$(dirname "$0")/.."
SHOPS=${SHOPS:-40} PER_SHOP=${PER_SHOP:-500} BACKENDS=${BACKENDS:-sqlite postgres}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
out=bench/out/ingest && mkdir -p "$out"
cargo build --release -p simba
bin=$PWD/target/release/simba
export SECRET_KEY=bench-secret-key-bench-secret-key-0123 RUST_LOG=warn SIMBA_ADDR=127.0.0.1:8930
export SIMBA_BOL_API_URL=http://127.0.0.1:8931 SIMBA_BOL_LOGIN_URL=http://127.0.0.1:8931
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
api() { curl -sf -H 'content-type: application/json' ${token:+-H "Authorization: Token $token"} "$@"; }
printf '| backend | shipments | wall s | shipments/s | worker CPU s | CPU s / 1,000 | worker peak RSS |\n|---|---|---|---|---|---|---|\n'
for backend in $BACKENDS; do
  case $backend in
    sqlite) rm -f "$out"/simba.db*; export DATABASE_URL="sqlite://$PWD/$out/simba.db?mode=rwc" ;;
    postgres)
      psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS simba_bench WITH (FORCE)" -qc "CREATE DATABASE simba_bench"
      export DATABASE_URL="$PG/simba_bench" ;;
    *) echo "unknown backend $backend" >&2; exit 1 ;;
  esac
  "$bin" sandbox --addr 127.0.0.1:8931 --accounts "$SHOPS" --fbr $((PER_SHOP * 4 / 5)) --fbb $((PER_SHOP / 5)) \
    --list-limit 0 --detail-limit 0 --token-limit 0 >"$out/sandbox.log" 2>&1 & sandbox=$!
  "$bin" serve --no-workers >"$out/serve.log" 2>&1 & server=$!
  pids=($sandbox $server)
  for _ in $(seq 100); do curl -sf http://127.0.0.1:8930/healthz >/dev/null && break; sleep 0.1; done
  token=
  token=$(api http://127.0.0.1:8930/api/v1/auth/register \
    -d '{"username":"bench","email":"bench@example.com","password":"bench password"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
  for n in $(seq "$SHOPS"); do
    id=$(api http://127.0.0.1:8930/api/v1/shops \
      -d "{\"name\":\"s$n\",\"client_id\":\"sandbox-$n\",\"client_secret\":\"secret-$n\",\"auto_sync\":false}" | sed 's/.*"id":\([0-9]*\).*/\1/')
    api -X POST "http://127.0.0.1:8930/api/v1/shops/$id/sync" -d '{"mode":"full"}' >/dev/null
  done
  start=$(date +%s.%N)
  "$bin" worker >"$out/worker.log" 2>&1 & worker=$!
  pids+=($worker)
  until api "http://127.0.0.1:8930/api/v1/shops?page_size=500" | grep -q '"count"' &&
    ! api "http://127.0.0.1:8930/api/v1/shops?page_size=500" | grep -q '"active_run_id":[0-9]'; do sleep 0.1; done
  end=$(date +%s.%N)
  ticks=$(awk '{print $14 + $15}' /proc/$worker/stat)
  peak=$(awk '/VmHWM/ {printf "%.1f MB", $2 / 1024}' /proc/$worker/status)
  stored=$(api "http://127.0.0.1:8930/api/v1/shipments?page_size=1" | sed 's/.*"count":\([0-9]*\).*/\1/')
  kill "${pids[@]}"; wait 2>/dev/null || true; pids=()
  python3 -c "
w=$end-$start; cpu=$ticks/$(getconf CLK_TCK)
print(f'| $backend | $stored | {w:.1f} | {$stored/w:,.0f} | {cpu:.1f} | {cpu*1000/$stored:.2f} | $peak |')"
done
