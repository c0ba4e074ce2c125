#!/usr/bin/env bash
# Sync economy on the sandbox with the published limits, time scaled (SCALE 100: bol's 50
# details a minute become 50 every 0.6 s), on a fresh SQLite database. Prints calls against the
# minimum, 429s, wall time against the floor the limits imply, and peak RSS.
#
#   bash bench/sync-economy.sh                                  # 1 shop × 10,000, `simba sync`
#   SHOPS=200 FBR=400 FBB=100 SCALE=4 bash bench/sync-economy.sh  # 200 shops × 500, `simba serve`
#
# One shop is synced in the foreground by `simba sync`; several are queued through the API and
# driven by the workers of one `simba serve`, all shops at once (each has its own limits).
# Shops are created, queued and waited for by bench/shops.py on one keep-alive connection; the
# wait follows every page of /api/v1/shops, so it ends when every run has ended.
set -euo pipefail
cd "$(dirname "$0")/.."
SHOPS=${SHOPS:-1} FBR=${FBR:-8000} FBB=${FBB:-2000} SCALE=${SCALE:-100}
out=bench/out/sync-economy
rm -rf "$out" && mkdir -p "$out"
cargo build --release -p simba
bin=$PWD/target/release/simba
export DATABASE_URL="sqlite://$PWD/$out/simba.db?mode=rwc" SIMBA_ADDR=127.0.0.1:8910 RUST_LOG=warn
export SECRET_KEY=bench-secret-key-bench-secret-key-0123
export SIMBA_BOL_API_URL=http://127.0.0.1:8911 SIMBA_BOL_LOGIN_URL=http://127.0.0.1:8911 SIMBA_BOL_TIME_SCALE=$SCALE
"$bin" sandbox --addr 127.0.0.1:8911 --accounts "$SHOPS" --fbr "$FBR" --fbb "$FBB" --time-scale "$SCALE" \
  >"$out/sandbox.log" 2>&1 & sandbox=$!
server=
trap 'kill $sandbox $server 2>/dev/null' EXIT
serve() {
  "$bin" serve "$@" >"$out/serve.log" 2>&1 & server=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:8910/healthz >/dev/null && break; sleep 0.1; done
}
serve --no-workers
shops() { python3 bench/shops.py http://127.0.0.1:8910 "$@"; }
TOKEN=$(shops register)
export TOKEN
shops create "$SHOPS"
kill $server; wait $server 2>/dev/null || true; server=
if [ "$SHOPS" -eq 1 ]; then
  start=$(date +%s.%N)
  /usr/bin/time -v "$bin" sync --shop 1 --mode full 2>"$out/time.txt" >"$out/summary.txt"
  end=$(date +%s.%N)
  peak=$(awk '/Maximum resident/ {printf "%.1f MB", $6 / 1024}' "$out/time.txt")
else
  serve
  start=$(date +%s.%N)
  shops sync-all >"$out/runs.txt"
  shops wait   # every page of shops, so every run, however many shops
  end=$(date +%s.%N)
  peak=$(awk '/VmHWM/ {printf "%.1f MB", $2 / 1024}' /proc/$server/status)
  echo "runs: $(shops runs "$out/runs.txt")" >&2
fi
curl -s http://127.0.0.1:8911/_sandbox/stats >"$out/stats.json"
python3 - "$out/stats.json" "$FBR" "$FBB" "$SCALE" "$start" "$end" "$peak" "$SHOPS" <<'PY'
import json, math, sys
accounts = json.load(open(sys.argv[1]))["accounts"]
fbr, fbb, scale = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
wall, peak, shops = float(sys.argv[6]) - float(sys.argv[5]), sys.argv[7], int(sys.argv[8])
pages = fbr // 50 + 1 + fbb // 50 + 1
# Per shop: every list page (the last one short or empty), every detail, one token.
minimum = (pages + fbr + fbb + 1) * shops
def total(key, groups=("token", "list", "detail")):
    return sum(a[g][key] for a in accounts for g in groups)
calls, tokens = total("calls"), total("calls", ("token",))
# A token renewal is a call the token's lifetime forces, not one Simba chose: counted once.
counted = calls - tokens + shops
sequential = (pages / 25 + (fbr + fbb) / 50) * 60 / scale
parallel = max(pages / 25, (fbr + fbb) / 50) * 60 / scale
# The sandbox's windows are fixed: a run that starts as one ends gets that window's budget at
# once, so the last calls can go one window sooner than the rates alone say.
strict = (max(math.ceil(pages / 25), math.ceil((fbr + fbb) / 50)) - 1) * 60 / scale
print("| shops × shipments | scale | calls / minimum | 429s | wasted | token calls | wall | floor (list then details · in parallel · fixed windows) | wall / floor | peak RSS |")
print("|---|---|---|---|---|---|---|---|---|---|")
print(f"| {shops} × {fbr + fbb:,} | {scale:g} | {counted:,} / {minimum:,} = **{counted / minimum:.3f}** "
      f"| **{total('rate_limited')}** | {total('wasted')} | {tokens} | {wall:.1f} s "
      f"| {sequential:.1f} s · {parallel:.1f} s · {strict:.1f} s "
      f"| {wall / sequential:.3f} · **{wall / parallel:.3f}** · {wall / strict if strict else math.inf:.3f} | {peak} |")
PY
