#!/usr/bin/env bash
# The change feed while a 10,000-shipment sync commits: one `simba serve` (SQLite) syncs one
# sandbox shop at the published limits, time scaled (SCALE 100), while one consumer polls
# /api/v1/shipments/changes in batches of LIMIT until the run ends and the feed is drained.
# Prints poll latency, changes served per second, how long after its `updated_at` a change was
# seen (whole seconds: the column's precision), and whether any change was repeated, served out
# of order or missed.
#
#   bash bench/change-feed.sh
#   FBR=8000 FBB=2000 LIMIT=100 DATABASE_URL=postgres://... bash bench/change-feed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FBR=${FBR:-8000} FBB=${FBB:-2000} SCALE=${SCALE:-100} LIMIT=${LIMIT:-1000}
out=bench/out/change-feed
rm -rf "$out" && mkdir -p "$out"
cargo build --release -p simba
bin=$PWD/target/release/simba
export DATABASE_URL=${DATABASE_URL:-"sqlite://$PWD/$out/simba.db?mode=rwc"}
export SIMBA_ADDR=127.0.0.1:8920 RUST_LOG=warn SECRET_KEY=bench-secret-key-bench-secret-key-0123
export SIMBA_BOL_API_URL=http://127.0.0.1:8921 SIMBA_BOL_LOGIN_URL=http://127.0.0.1:8921 SIMBA_BOL_TIME_SCALE=$SCALE
"$bin" sandbox --addr 127.0.0.1:8921 --accounts 1 --fbr "$FBR" --fbb "$FBB" --time-scale "$SCALE" \
  >"$out/sandbox.log" 2>&1 & sandbox=$!
"$bin" serve >"$out/serve.log" 2>&1 & server=$!
trap 'kill $sandbox $server 2>/dev/null' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:8920/healthz >/dev/null && break; sleep 0.1; done
shops() { python3 bench/shops.py http://127.0.0.1:8920 "$@"; }
TOKEN=$(shops register)
export TOKEN
shops create 1
shops sync-all >"$out/runs.txt"
python3 bench/feed_consumer.py http://127.0.0.1:8920 "$LIMIT"
echo "run: $(shops runs "$out/runs.txt")" >&2
