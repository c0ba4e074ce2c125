#!/usr/bin/env bash
# Push latency: one `simba serve` (SQLite) with push on for one sandbox shop; the sandbox
# creates N shipments at RATE a marketplace minute (at or below the detail limit of 50), and
# bench/push_latency.py measures each one's time from creation to being readable with its
# detail through the API, and the marketplace calls made for them. SCALE 1 is real time.
#
#   bash bench/push.sh
#   N=200 SCALE=6 bash bench/push.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000} RATE=${RATE:-48} SCALE=${SCALE:-1}
out=bench/out/push
rm -rf "$out" && mkdir -p "$out"
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p simba
bin=${SIMBA_BIN:-$PWD/target/release/simba}
export DATABASE_URL=${DATABASE_URL:-"sqlite://$PWD/$out/simba.db?mode=rwc"}
export SIMBA_ADDR=127.0.0.1:8930 RUST_LOG=warn SECRET_KEY=bench-secret-key-bench-secret-key-0123
export SIMBA_BOL_API_URL=http://127.0.0.1:8931 SIMBA_BOL_LOGIN_URL=http://127.0.0.1:8931 SIMBA_BOL_TIME_SCALE=$SCALE
export SIMBA_PUBLIC_URL=http://127.0.0.1:8930
"$bin" sandbox --addr 127.0.0.1:8931 --accounts 1 --fbr 100 --fbb 0 --time-scale "$SCALE" --no-transport-updates \
  >"$out/sandbox.log" 2>&1 & sandbox=$!
"$bin" serve >"$out/serve.log" 2>&1 & server=$!
trap 'kill $sandbox $server 2>/dev/null' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:8930/healthz >/dev/null && break; sleep 0.1; done
python3 bench/push_latency.py http://127.0.0.1:8930 http://127.0.0.1:8931 "$N" "$RATE" "$SCALE" | tee "$out/result.json"
