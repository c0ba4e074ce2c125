#!/usr/bin/env bash
# Fuzzes the bol client's response parsers: every target (or those named as arguments) for
# FUZZ_SECONDS each (default 60), then prints executions, executions per second and coverage
# per target. Exits non-zero if any target crashed or broke a property; the input that did is
# saved under artifacts/<target>/ (replay it with `cargo +nightly fuzz run <target> <file>`).
# Not run in CI: it needs a nightly toolchain and minutes of CPU.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-60}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(list detail token error_body rate_headers)
fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "run.sh needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing; installing it (cargo install cargo-fuzz --locked)" >&2
    nice -n 19 cargo install cargo-fuzz --locked
fi

# Debug assertions on, so that integer overflow is a finding too. Built once for all targets;
# niced, as fuzzing takes whole cores.
fuzz=(nice -n 19 cargo +nightly fuzz)
"${fuzz[@]}" build --debug-assertions

mkdir -p logs
failed=()
summary=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    log="logs/$target.log"
    echo "== $target: ${seconds}s" >&2
    # New inputs go to corpus/ (kept between runs, not committed); seeds/ is read only.
    if "${fuzz[@]}" run --debug-assertions "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -dict=fuzz.dict -print_final_stats=1 \
        >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$target")
        grep -E "panicked at|^SUMMARY|Test unit written to" "$log" >&2 || tail -n 20 "$log" >&2
    fi
    # A run that failed at once has no figures: `|| true` keeps `set -e` from ending the loop.
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1) || true
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1) || true
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1) || true
    summary+=("$(printf '%-13s %-7s execs %-10s execs/s %-8s %s' \
        "$target" "$status" "${execs:-?}" "${rate:-?}" "${cov:-cov: ?}")")
done

echo
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]} (logs in $(pwd)/logs, inputs in $(pwd)/artifacts)" >&2
    exit 1
fi
