#!/usr/bin/env bash
# Webhook deliveries per second to a local receiver: ENDPOINTS endpoints (default 8) of one
# seller, turned off while EVENTS test events (default 4,000) are queued through the API, then
# turned on at once; the wall from then until the receiver has every delivery is what `simba
# serve`'s delivery workers manage (64 in flight per process, 4 per endpoint; signing, the
# checked resolver, one database claim and one outcome write per delivery). The receiver is a
# threaded Python server answering 204 at once, reached by name (`localhost`), so that every
# connection goes through the checked resolver. SQLite; SIMBA_BIN picks the binary (default
# the release build, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ENDPOINTS=${ENDPOINTS:-8} EVENTS=${EVENTS:-4000}
bin=${SIMBA_BIN:-target/release/simba}
[ -x "$bin" ] || cargo build --release -p simba
out=bench/out/webhooks && rm -rf "$out" && mkdir -p "$out"
export DATABASE_URL="sqlite://$PWD/$out/simba.db?mode=rwc" SIMBA_ADDR=127.0.0.1:8950 RUST_LOG=warn \
  SECRET_KEY=bench-secret-key-bench-secret-key-0123 SIMBA_WEBHOOK_ALLOW_PRIVATE=1
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
python3 - >"$out/receiver.log" 2>&1 <<'PY' & pids+=($!)
import http.server, threading
count, lock = 0, threading.Lock()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        global count
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with lock:
            count += 1
        self.send_response(204); self.end_headers()
    def do_GET(self):
        body = str(count).encode()
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("127.0.0.1", 8951), Handler).serve_forever()
PY
"$bin" serve >"$out/serve.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.1:8950/healthz >/dev/null && break; sleep 0.1; done
api() { curl -sf -H 'content-type: application/json' ${token:+-H "Authorization: Token $token"} "$@"; }
token=$(api http://127.0.0.1:8950/api/v1/auth/register \
  -d '{"username":"bench","email":"bench@example.com","password":"bench-password-1"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
ids=()
for n in $(seq "$ENDPOINTS"); do
  ids+=($(api http://127.0.0.1:8950/api/v1/webhooks \
    -d "{\"url\":\"http://localhost:8951/hook/$n\",\"events\":[\"webhook.test\"],\"active\":false}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'))
done
for i in $(seq "$EVENTS"); do echo "${ids[$((i % ENDPOINTS))]}"; done |
  xargs -P 8 -I{} curl -sf -o /dev/null -X POST -H "Authorization: Token $token" http://127.0.0.1:8950/api/v1/webhooks/{}/test
start=$(date +%s.%N)
for id in "${ids[@]}"; do api -o /dev/null -X PATCH http://127.0.0.1:8950/api/v1/webhooks/$id -d '{"active":true}'; done
while [ "$(curl -sf http://127.0.0.1:8951/)" -lt "$EVENTS" ]; do sleep 0.05; done
end=$(date +%s.%N)
python3 -c "w=$end-$start; print(f'| {$ENDPOINTS} endpoints | {$EVENTS} deliveries | {w:.2f} s | {$EVENTS/w:,.0f} deliveries/s |')"
