#!/usr/bin/env bash
# Scale-out: shipments synced per second and CPU seconds per 1,000 shipments with 1, 2 and 4
# `simba worker` processes on PostgreSQL, with the queue in RabbitMQ and in the database,
# sandbox limits off (so only Simba is measured). SHOPS shops × PER_SHOP shipments
# (default 40 × 500 = 20,000) per round; QUEUES="rabbitmq database" by default.
set -euo pipefail
cd "$(dirname "$0")/.."
SHOPS=${SHOPS:-40} PER_SHOP=${PER_SHOP:-500}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
AMQP=${AMQP:-amqp://guest:guest@127.0.0.1:5672}
QUEUES=${QUEUES:-rabbitmq database}
out=bench/out/scale && mkdir -p "$out"
cargo build --release -p simba
bin=$PWD/target/release/simba
export SECRET_KEY=bench-secret-key-bench-secret-key-0123 RUST_LOG=warn SIMBA_ADDR=127.0.0.1:8920
export SIMBA_BOL_API_URL=http://127.0.0.1:8921 SIMBA_BOL_LOGIN_URL=http://127.0.0.1:8921
printf '| queue | workers | shipments | wall s | shipments/s | worker CPU s | CPU s / 1,000 |\n|---|---|---|---|---|---|---|\n'
for queue in $QUEUES; do
for workers in 1 2 4; do
  unset BROKER_URL
  if [ "$queue" = rabbitmq ]; then
    rabbitmqctl -q delete_vhost simba_bench 2>/dev/null || true
    rabbitmqctl -q add_vhost simba_bench && rabbitmqctl -q set_permissions -p simba_bench guest '.*' '.*' '.*'
    export BROKER_URL="$AMQP/simba_bench"
  fi
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS simba_bench WITH (FORCE)" -qc "CREATE DATABASE simba_bench" 2>/dev/null
  export DATABASE_URL="$PG/simba_bench"
  "$bin" sandbox --addr 127.0.0.1:8921 --accounts "$SHOPS" --fbr $((PER_SHOP * 4 / 5)) --fbb $((PER_SHOP / 5)) \
    --list-limit 0 --detail-limit 0 --token-limit 0 >"$out/sandbox.log" 2>&1 & sandbox=$!
  "$bin" serve --no-workers >"$out/serve.log" 2>&1 & server=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:8920/healthz >/dev/null && break; sleep 0.1; done
  token=$(curl -sf -X POST http://127.0.0.1:8920/api/v1/auth/register -H 'content-type: application/json' \
    -d '{"username":"bench","email":"bench@example.com","password":"bench password"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
  for n in $(seq "$SHOPS"); do
    id=$(curl -sf -X POST http://127.0.0.1:8920/api/v1/shops -H "Authorization: Token $token" -H 'content-type: application/json' \
      -d "{\"name\":\"s$n\",\"client_id\":\"sandbox-$n\",\"client_secret\":\"secret-$n\",\"auto_sync\":false}" | sed 's/.*"id":\([0-9]*\).*/\1/')
    curl -sf -X POST "http://127.0.0.1:8920/api/v1/shops/$id/sync" -H "Authorization: Token $token" >/dev/null
  done
  start=$(date +%s.%N)
  pids=()
  for _ in $(seq "$workers"); do "$bin" worker >>"$out/worker.log" 2>&1 & pids+=($!); done
  total=$((SHOPS * PER_SHOP))
  until [ "$(psql "$DATABASE_URL" -Atc "SELECT COUNT(*) FROM sync_runs WHERE status IN ('queued','running')")" = 0 ]; do sleep 0.2; done
  end=$(date +%s.%N)
  ticks=0
  for pid in "${pids[@]}"; do
    t=$(awk '{print $14 + $15}' /proc/"$pid"/stat); ticks=$((ticks + t))
  done
  kill "${pids[@]}" $server $sandbox; wait 2>/dev/null || true
  stored=$(psql "$DATABASE_URL" -Atc "SELECT COUNT(*) FROM shipments WHERE detail_synced_at IS NOT NULL")
  python3 -c "
w=$end-$start; cpu=$ticks/$(getconf CLK_TCK)
print(f'| $queue | $workers | $stored | {w:.1f} | {$stored/w:,.0f} | {cpu:.1f} | {cpu*1000/$stored:.2f} |')"
done
done
rabbitmqctl -q delete_vhost simba_bench 2>/dev/null || true
