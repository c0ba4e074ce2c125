#!/usr/bin/env bash
# Fuzzes the REST API from its own OpenAPI document (`/api/v1/openapi.json`) with schemathesis
# (from PyPI), authenticated as a seller who owns a synced sandbox shop: every response must be
# free of 5xx and conform to the document (status code, content type, headers, body schema).
# SIMBA_BIN picks the binary (default: target/debug/simba, built if missing); MAX_EXAMPLES the
# cases per operation; SEED makes a run reproducible.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${SIMBA_BIN:-target/debug/simba}
[ -x "$bin" ] || cargo build -p simba
venv=${SCHEMATHESIS_VENV:-target/schemathesis-venv}
version=4.32.5
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$version"
fi
work=$(mktemp -d)
sandbox_port=${SANDBOX_PORT:-18411} simba_port=${SIMBA_PORT:-18410}
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
pids=()
trap cleanup EXIT
"$bin" sandbox --addr "127.0.0.1:$sandbox_port" --fbr 40 --fbb 10 --list-limit 0 --detail-limit 0 \
  --token-limit 0 >"$work/sandbox.log" 2>&1 & pids+=($!)
DATABASE_URL="sqlite://$work/simba.db?mode=rwc" SIMBA_ADDR="127.0.0.1:$simba_port" \
  SIMBA_BOL_API_URL="http://127.0.0.1:$sandbox_port" SIMBA_BOL_LOGIN_URL="http://127.0.0.1:$sandbox_port" \
  RUST_LOG=warn "$bin" serve >"$work/simba.log" 2>&1 & pids+=($!)
base="http://127.0.0.1:$simba_port"
for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "$base/healthz" >/dev/null || { cat "$work/simba.log" >&2; exit 1; }

json() { curl -sf -H 'Content-Type: application/json' "$@"; }
token=$(json "$base/api/v1/auth/register" \
  -d '{"username":"fuzz","email":"fuzz@example.com","password":"a long fuzzing passphrase"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
auth="Authorization: Token $token"
shop=$(json -H "$auth" "$base/api/v1/shops" \
  -d '{"name":"Fuzz shop","client_id":"sandbox-1","client_secret":"secret-1"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
json -H "$auth" -X POST "$base/api/v1/shops/$shop/sync" -d '{}' >/dev/null
for _ in $(seq 100); do
  [ "$(curl -sf -H "$auth" "$base/api/v1/shipments?page_size=1" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])')" = 50 ] && break
  sleep 0.2
done

# Logging out and deleting the account would revoke the token the rest of the run needs; they
# are covered by the integration tests and the Postman collection.
status=0
"$venv/bin/schemathesis" run "$base/api/v1/openapi.json" \
  --header "$auth" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --exclude-operation-id logout --exclude-operation-id delete_user \
  --max-examples "${MAX_EXAMPLES:-100}" ${SEED:+--seed "$SEED"} \
  --suppress-health-check too_slow --no-color --workers 1 || status=$?
if [ "$status" != 0 ]; then echo "--- simba log" >&2; tail -50 "$work/simba.log" >&2; fi
exit "$status"
