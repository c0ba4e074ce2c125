#!/usr/bin/env bash
# The engine at scale: SIZES shops (default "1000 5000 10000") × PER_SHOP shipments (100: 80 FBR
# + 20 FBB), every shop its own sandbox account with bol's published limits (25 list and 50 detail
# calls a minute), time scaled by SCALE (default 1: real minutes), on each of BACKENDS:
# - sqlite: one `simba serve` (API and workers) on a fresh SQLite file;
# - postgres: a fresh database on PG, `simba serve --no-workers` for the API and WORKERS (2)
#   `simba worker` processes; QUEUE=rabbitmq (default, a fresh vhost) or QUEUE=database.
#
#   bash bench/scale-shops.sh                                   # a quiet machine: about an hour
#   SIZES=20 SCALE=20 bash bench/scale-shops.sh                 # smoke test, a minute
#   SIZES=1000 BACKENDS=postgres QUEUE=database bash bench/scale-shops.sh
#   SIZES=10000 BACKENDS=postgres SELLERS=100 bash bench/scale-shops.sh   # the shops dealt to 100 sellers
#
# Each round: register a seller, create the shops (auto_sync off) through bench/shops.py, read the
# idle RSS (serve on SQLite, the workers summed on PostgreSQL), queue a full sync of every shop
# (from QUEUERS, 16, connections at once; it prints how long that took),
# put `wrk -t2 -c32` on GET /api/v1/shipments with the seller's token for LOAD seconds (60) or
# until the runs end, and beside it a client reading the list every 20 ms until they end
# (bench/list_probe.py), wait for every run (every page of /api/v1/shops), then print one row:
# calls against the minimum and 429s from /_sandbox/stats (as bench/sync-economy.sh counts them),
# wall time against the rate floor, peak and idle RSS, list latency under the sync load and the
# runs by final status, and the CPU seconds Simba and the sandbox used. Logs and raw outputs are in
# bench/out/scale-shops.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
SIZES=${SIZES:-1000 5000 10000} PER_SHOP=${PER_SHOP:-100} SCALE=${SCALE:-1} LOAD=${LOAD:-60}
BACKENDS=${BACKENDS:-sqlite postgres} QUEUE=${QUEUE:-rabbitmq} WORKERS=${WORKERS:-2} SELLERS=${SELLERS:-1}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
AMQP=${AMQP:-amqp://guest:guest@127.0.0.1:5672}
FBR=$((PER_SHOP * 4 / 5)) FBB=$((PER_SHOP - PER_SHOP * 4 / 5))
out=bench/out/scale-shops
rm -rf "$out" && mkdir -p "$out"
if [ -z "${BIN:-}" ]; then cargo build --release -p simba; fi
bin=${BIN:-$PWD/target/release/simba} # BIN: another build, to compare
api=http://127.0.0.1:8940 sandbox_url=http://127.0.0.1:8941
export SECRET_KEY=bench-secret-key-bench-secret-key-0123 RUST_LOG=warn SIMBA_ADDR=127.0.0.1:8940
export SIMBA_BOL_API_URL=$sandbox_url SIMBA_BOL_LOGIN_URL=$sandbox_url SIMBA_BOL_TIME_SCALE=$SCALE
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
shops() { python3 bench/shops.py "$api" "$@"; }
kb() { # kb FIELD PID...: a /proc/PID/status field (VmRSS, VmHWM) summed over the processes, in kB
  local field=$1 total=0 pid
  shift
  for pid; do total=$((total + $(awk -v f="$field:" '$1 == f {print $2}' "/proc/$pid/status"))); done
  echo "$total"
}
cpu() { # cpu PID...: user + system CPU seconds, summed over the processes
  local ticks=0 pid
  for pid; do ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f", t / hz}'
}
up() { # up URL: waits until it answers
  for _ in $(seq 300); do curl -sf -o /dev/null "$1" && return; sleep 0.1; done
  echo "$1 did not answer; see $out" >&2
  exit 1
}

fresh_backend() {
  unset BROKER_URL
  case $1 in
    sqlite) rm -f "$out"/simba.db*; export DATABASE_URL="sqlite://$PWD/$out/simba.db?mode=rwc" ;;
    postgres)
      psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS simba_scale_shops WITH (FORCE)" \
        -qc "CREATE DATABASE simba_scale_shops" 2>/dev/null
      export DATABASE_URL="$PG/simba_scale_shops"
      if [ "$QUEUE" = rabbitmq ]; then
        rabbitmqctl -q delete_vhost simba_scale_shops 2>/dev/null || true
        rabbitmqctl -q add_vhost simba_scale_shops
        rabbitmqctl -q set_permissions -p simba_scale_shops guest '.*' '.*' '.*'
        export BROKER_URL="$AMQP/simba_scale_shops"
      fi ;;
    *) echo "unknown backend $1" >&2; exit 1 ;;
  esac
}

round() { # round BACKEND SHOPS
  local backend=$1 n=$2 log="$out/$1-$2"
  fresh_backend "$backend"
  export SIMBA_MAX_CONCURRENT_RUNS=$((n * 2))
  local sandbox_start
  sandbox_start=$(date +%s.%N) # its rate windows are aligned to its start
  nice -n 10 "$bin" sandbox --addr 127.0.0.1:8941 --accounts "$n" --fbr "$FBR" --fbb "$FBB" --time-scale "$SCALE" \
    >"$log-sandbox.log" 2>&1 & pids=($!)
  if [ "$backend" = sqlite ]; then
    "$bin" serve >"$log-serve.log" 2>&1 & pids+=($!)
  else
    "$bin" serve --no-workers >"$log-serve.log" 2>&1 & pids+=($!)
  fi
  local server=${pids[1]}
  up "$sandbox_url/_sandbox/faults"
  up "$api/healthz"
  TOKEN=$(shops register "$SELLERS")
  export TOKEN
  local first=${TOKEN%%,*} # wrk and the probe read the first seller's list
  shops create "$n"
  local measured=("$server")
  if [ "$backend" = postgres ]; then
    measured=()
    for w in $(seq "$WORKERS"); do "$bin" worker >"$log-worker-$w.log" 2>&1 & measured+=($!); done
    pids+=("${measured[@]}")
  fi
  sleep 2
  local idle
  idle=$(kb VmRSS "${measured[@]}")

  local start end
  start=$(date +%s.%N)
  shops sync-all >"$log-runs.txt"
  echo "$backend $n: $(wc -l <"$log-runs.txt") runs queued in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}') s" >&2
  wrk -t2 -c32 -d"${LOAD}s" --latency -H "Authorization: Token $first" "$api/api/v1/shipments" \
    >"$log-wrk.txt" 2>&1 & local load=$!
  TOKEN=$first python3 bench/list_probe.py "$api" "$log-probe.json" & local probe=$!
  shops wait "${pids[@]}"
  end=$(date +%s.%N)
  kill -INT "$load" 2>/dev/null || true # wrk prints its report when interrupted
  kill -TERM "$probe" 2>/dev/null || true
  wait "$load" "$probe" || true
  curl -sf "$api/metrics" >"$log-metrics.txt" || true
  # Where the machine's two cores went: Simba's engine (and API), the sandbox that plays bol.
  echo "$backend $n: CPU seconds over $(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.0f", e - s}') s:" \
    "Simba $(cpu "${measured[@]}"), sandbox $(cpu "${pids[0]}")" >&2

  local peak runs stored
  peak=$(kb VmHWM "${measured[@]}")
  if [ "$backend" = postgres ]; then
    echo "$backend $n: serve --no-workers peak RSS $(kb VmHWM "$server") kB" >&2
  fi
  curl -sf "$sandbox_url/_sandbox/stats" >"$log-stats.json"
  runs=$(shops runs "$log-runs.txt")
  stored=0
  for token in ${TOKEN//,/ }; do
    stored=$((stored + $(curl -sf -H "Authorization: Token $token" "$api/api/v1/shipments?page_size=1" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])')))
  done
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  pids=()
  local label=$backend
  if [ "$backend" = postgres ]; then label+=", $QUEUE, $WORKERS workers"; fi
  if [ "$SELLERS" -gt 1 ]; then label+=", $SELLERS sellers"; fi
  python3 - "$label" "$n" "$FBR" "$FBB" "$SCALE" "$start" "$end" "$idle" "$peak" "$stored" "$runs" \
    "$log-stats.json" "$log-wrk.txt" "$sandbox_start" "$log-metrics.txt" "$log-probe.json" <<'PY'
import json, math, re, sys
backend, shops, fbr, fbb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
scale, wall = float(sys.argv[5]), float(sys.argv[7]) - float(sys.argv[6])
idle, peak, stored, runs = int(sys.argv[8]), int(sys.argv[9]), int(sys.argv[10]), json.loads(sys.argv[11])
accounts = json.load(open(sys.argv[12]))["accounts"]
wrk = open(sys.argv[13]).read()
phase = (float(sys.argv[6]) - float(sys.argv[14])) % (60 / scale)

# Calls as bench/sync-economy.sh counts them: per shop every list page (the last one short or
# empty), every detail and one token; renewals the token's lifetime forces are counted once.
pages = fbr // 50 + 1 + fbb // 50 + 1
minimum = (pages + fbr + fbb + 1) * shops
def total(key, groups=("token", "list", "detail")):
    return sum(a[g][key] for a in accounts for g in groups)
counted = total("calls") - total("calls", ("token",)) + shops
# Floors: list and details in parallel at the published rates, and the fixed-window minimum
# (a run that starts as a window ends gets that window's budget at once). The sandbox's windows
# are aligned to its start, so the runs, queued `phase` seconds into a window, can end sooner
# still: the last window they need begins (windows - 1) windows after the first one began.
window = 60 / scale
windows = max(math.ceil(pages / 25), math.ceil((fbr + fbb) / 50))
parallel = max(pages / 25, (fbr + fbb) / 50) * window
strict = (windows - 1) * window
phased = max(0.0, strict - phase)
def ratio(floor):
    return f"{wall / floor:.3f}" if floor > 0 else "∞"

def ms(label):
    found = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", wrk)
    if not found:
        return float("nan")
    value, unit = found.groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rps = re.search(r"Requests/sec:\s+([\d.]+)", wrk)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)
load = f"{ms(50):.1f} / {ms(99):.1f} ms ({float(rps.group(1)) if rps else 0:,.0f} req/s"
load += f", {non2xx.group(1)} non-2xx)" if non2xx else ")"
probe = json.load(open(sys.argv[16]))
client = (f"{probe['p50']:.1f} / **{probe['p99']:.1f}** ms (p99.9 {probe['p999']:.1f}, "
          f"max {probe['max']:.1f}; {probe['count']:,} answers"
          + (f", {probe['failures']} failed)" if probe["failures"] else ")"))

# The server's own view of the same list requests: from its request-duration histogram, the
# share answered within each bucket (wrk's latency also holds its own wait for a core).
buckets = {}
for line in open(sys.argv[15]):
    found = re.match(r'http_request_duration_seconds_bucket\{(.*)\} (\d+)', line)
    if found and 'route="/api/v1/shipments"' in found.group(1) and 'method="GET"' in found.group(1):
        le = re.search(r'le="([^"]+)"', found.group(1)).group(1)
        buckets[le] = buckets.get(le, 0) + int(found.group(2))
if buckets.get("+Inf"):
    within = ", ".join(f"{buckets[le] / buckets['+Inf']:.2%} ≤ {float(le) * 1000:g} ms"
                       for le in ("0.01", "0.05", "0.1") if le in buckets)
    print(f"{backend} {shops}: the server answered the list {within} "
          f"({buckets['+Inf']:,} answers)", file=sys.stderr)

expected = shops * (fbr + fbb)
ok = runs.get("succeeded", 0) == shops and len(runs) == 1
status = " · ".join(f"{k} {v:,}" for k, v in sorted(runs.items()))
print(f"| {backend} | {shops:,} | {stored:,}{'' if stored == expected else f' of {expected:,}'} "
      f"| {counted:,} / {minimum:,} = **{counted / minimum:.3f}** | **{total('rate_limited')}** "
      f"| {total('wasted')} | {wall:.1f} s | {parallel:.1f} s · {strict:.1f} s · {phased:.1f} s "
      f"| **{ratio(parallel)}** · {ratio(strict)} · {ratio(phased)} "
      f"| {peak / 1024:.1f} MB | {idle / 1024:.1f} MB | {(peak - idle) / shops:.1f} KB "
      f"| {client} | {load} | {status if ok else f'**{status}**'} |")
PY
}

echo "| backend | shops | shipments | calls / minimum | 429s | wasted | wall | floor (parallel · fixed windows · from the start's phase) | wall / floor | peak RSS | idle RSS | (peak − idle) / shop | list p50 / p99, a client at 50 req/s beside wrk | wrk -c32 p50 / p99 | runs |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for backend in $BACKENDS; do
  for n in $SIZES; do round "$backend" "$n"; done
done
if [ "$QUEUE" = rabbitmq ] && [[ " $BACKENDS " == *" postgres "* ]]; then
  rabbitmqctl -q delete_vhost simba_scale_shops 2>/dev/null || true
fi
