#!/usr/bin/env bash
# Stability check: run suites many times, each from a cold start, and print a pass/fail table.
#
#   bash scripts/stress.sh [N]                  # N rounds (default 10) of every suite below
#   SUITES="browser-qh3 lossy-busy" bash scripts/stress.sh 50
#   PAUSE=0 bash scripts/stress.sh 3            # no idle pause before each run
#
# Suites (SUITES, space-separated; default: browser-qh3 browser-aioquic reliability libp2p):
#   browser-qh3, browser-aioquic  tests/browser (Chromium and Firefox ESR, every check) on one engine
#   reliability                   tests/reliability (both engines, slow tests included)
#   libp2p                        tests/libp2p (both engines)
#   lossy-busy                    the 200-concurrent-echo lossy-path tests on qh3, busy loops on every core
#
# Cold start: every run is a fresh pytest process (fresh hosts, sockets and engines), every
# browser run a fresh browser with a throwaway profile (tests/browser/run.mjs), and each run
# waits PAUSE seconds (default 20) first, so caches and CPU frequency cool down as on a machine
# that sat idle. No rerun plugin exists in this project: a failure is a failure.
# Logs go to artifacts/stress/<time>/; the exit status is 1 if any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-10}
PAUSE=${PAUSE:-20}
SUITES=${SUITES:-"browser-qh3 browser-aioquic reliability libp2p"}
PY=${PY:-.venv/bin/python}
OUT="artifacts/stress/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
[ -x "$PY" ] || { echo "stress.sh: $PY missing; run bash scripts/test.sh once first" >&2; exit 2; }

# suite -> pytest arguments (in ARGS)
suite_args() {
    case "$1" in
        browser-qh3) ARGS=(tests/browser -k qh3) ;;
        browser-aioquic) ARGS=(tests/browser -k aioquic) ;;
        reliability) ARGS=(tests/reliability) ;;
        libp2p) ARGS=(tests/libp2p) ;;
        lossy-busy) ARGS=(tests/reliability/test_faults.py -k "concurrent_echoes_through_a_lossy_path and qh3") ;;
        *) echo "stress.sh: unknown suite $1" >&2; return 1 ;;
    esac
}

BUSY_PIDS=()
start_busy_loops() {
    local cores
    cores=$(nproc)
    for _ in $(seq "$cores"); do
        "$PY" -c "while True: pass" &
        BUSY_PIDS+=($!)
    done
}
stop_busy_loops() {
    local pid
    for pid in "${BUSY_PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    BUSY_PIDS=()
}
trap stop_busy_loops EXIT

run_one() {  # suite round -> RESULT="verdict|pytest summary|seconds"
    local suite=$1 round=$2 log status start summary
    suite_args "$suite" || return 1
    log="$OUT/$suite-$round.log"
    [ "$PAUSE" != 0 ] && sleep "$PAUSE"
    [ "$suite" = lossy-busy ] && start_busy_loops
    start=$(date +%s)
    CI=true "$PY" -m pytest -q "${ARGS[@]}" >"$log" 2>&1
    status=$?
    [ "$suite" = lossy-busy ] && stop_busy_loops
    summary=$(grep -E "(passed|failed|error).* in [0-9.]+s" "$log" | tail -1 | tr -d '=' | sed 's/^ *//; s/ *$//')
    local verdict=pass
    [ "$status" -eq 0 ] || verdict=FAIL
    RESULT="$verdict|$summary|$(( $(date +%s) - start ))"
}

printf 'stress: %s rounds of [%s], pause %ss, logs in %s\n' "$ROUNDS" "$SUITES" "$PAUSE" "$OUT"
failed=0
declare -A passes
for suite in $SUITES; do passes[$suite]=0; done
printf '%-6s %-16s %-5s %6s  %s\n' round suite verdict secs pytest | tee "$OUT/table.txt"
for round in $(seq "$ROUNDS"); do
    for suite in $SUITES; do
        run_one "$suite" "$round" || exit 2
        IFS='|' read -r verdict summary secs <<<"$RESULT"
        printf '%-6s %-16s %-5s %6s  %s\n' "$round" "$suite" "$verdict" "$secs" "$summary" | tee -a "$OUT/table.txt"
        if [ "$verdict" = pass ]; then passes[$suite]=$(( passes[$suite] + 1 )); else failed=1; fi
    done
done
echo | tee -a "$OUT/table.txt"
for suite in $SUITES; do
    printf '%-16s %s of %s green\n' "$suite" "${passes[$suite]}" "$ROUNDS" | tee -a "$OUT/table.txt"
done
exit "$failed"
