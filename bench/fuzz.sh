#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ one after another for a set number of
# runs each, then prints one line per target: runs, exec/s, crashes,
# timeouts (hangs), out-of-memory stops and peak RSS. Exits non-zero when any
# target crashed, hung or ran out of memory.
#
#   bench/fuzz.sh                      # every target, 10,000,000 runs each
#   RUNS=100000 bench/fuzz.sh message  # one target, a quick run
#
# Settings (environment):
#   RUNS=10000000      runs per target (libFuzzer -runs)
#   MAX_TIME=          optional cap in seconds per target (-max_total_time)
#   TIMEOUT=10         seconds one input may take before it counts as a hang
#   RSS_LIMIT_MB=2048  memory one target may use before it counts as an OOM
#   SANITIZER=none     cargo-fuzz sanitizer: none (fast; panics, overflow
#                      checks and debug assertions still stop the run) or address
#   UPDATE_CORPUS=0    1: new inputs go into fuzz/corpus/TARGET (minimise after
#                      with `cargo +nightly fuzz cmin TARGET`); otherwise into a
#                      scratch folder that is deleted at the end
#   SKIP_BUILD=0       1: use the binaries already in fuzz/target
#   LOG_DIR=           where the per-target libFuzzer logs go (default: a
#                      scratch folder, printed at the end and kept)
#
# Needs the nightly toolchain; installs cargo-fuzz when it is missing. It
# starts no network traffic (the build may fetch crates once); the targets
# only decode bytes. Crash inputs land in fuzz/artifacts/TARGET/ (git-ignored);
# a real one should be copied to fuzz/regressions/TARGET/ with its fix.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${RUNS:-10000000}"
MAX_TIME="${MAX_TIME:-}"
TIMEOUT="${TIMEOUT:-10}"
RSS_LIMIT_MB="${RSS_LIMIT_MB:-2048}"
SANITIZER="${SANITIZER:-none}"
UPDATE_CORPUS="${UPDATE_CORPUS:-0}"
SKIP_BUILD="${SKIP_BUILD:-0}"
LOG_DIR="${LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/peershare-fuzz-logs.XXXXXX")}"
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/peershare-fuzz.XXXXXX")"
CHILD=""

cleanup() {
    if [[ -n "$CHILD" ]] && kill -0 "$CHILD" 2>/dev/null; then
        kill "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$ROOT/fuzz"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
if [[ "$SKIP_BUILD" != 1 ]]; then
    # Release code with debug assertions (and so overflow checks) on: an
    # arithmetic overflow in a decoder is a finding too.
    cargo +nightly fuzz build --release --debug-assertions -s "$SANITIZER"
fi

if [[ $# -gt 0 ]]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi
BIN_DIR="$ROOT/fuzz/target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"

mkdir -p "$LOG_DIR"
SUMMARY=()
FAILED=0
for target in "${TARGETS[@]}"; do
    bin="$BIN_DIR/$target"
    [[ -x "$bin" ]] || { echo "no fuzz binary $bin (build first)" >&2; exit 2; }
    corpus="$ROOT/fuzz/corpus/$target"
    regressions="$ROOT/fuzz/regressions/$target"
    artifacts="$ROOT/fuzz/artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    # libFuzzer writes new inputs into the first folder and only reads the others.
    if [[ "$UPDATE_CORPUS" == 1 ]]; then
        dirs=("$corpus")
    else
        dirs=("$SCRATCH/$target" "$corpus")
        mkdir -p "$SCRATCH/$target"
    fi
    [[ -d "$regressions" ]] && dirs+=("$regressions")
    before=$(find "$artifacts" -type f | wc -l)
    log="$LOG_DIR/$target.log"
    args=(-runs="$RUNS" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_LIMIT_MB"
        -print_final_stats=1 -artifact_prefix="$artifacts/")
    [[ -n "$MAX_TIME" ]] && args+=(-max_total_time="$MAX_TIME")
    echo "== $target: ${RUNS} runs, log $log" >&2
    started=$(date +%s)
    # The file-name target makes a scratch folder under TMPDIR: keep it in ours.
    TMPDIR="$SCRATCH" "$bin" "${args[@]}" "${dirs[@]}" >"$log" 2>&1 &
    CHILD=$!
    status=0
    wait "$CHILD" || status=$?
    CHILD=""
    seconds=$(( $(date +%s) - started ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [[ -n "$runs" ]] || runs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    [[ -n "$rate" ]] || rate=$(( ${runs:-0} / (seconds > 0 ? seconds : 1) ))
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    [[ -n "$rss" ]] || rss=$(grep -o 'rss: [0-9]*Mb' "$log" | tail -1 | grep -o '[0-9]*')
    hangs=$(grep -c 'ERROR: libFuzzer: timeout' "$log" || true)
    ooms=$(grep -c 'ERROR: libFuzzer: out-of-memory' "$log" || true)
    # A Rust panic aborts, which libFuzzer reports as a deadly signal (one line per crash).
    crashes=$(grep -cE '^==[0-9]+== ERROR: (libFuzzer: deadly signal|AddressSanitizer)' "$log" || true)
    if [[ "$status" -ne 0 && "$hangs" -eq 0 && "$ooms" -eq 0 && "$crashes" -eq 0 ]]; then
        crashes=1 # an exit we do not recognise counts as a crash
    fi
    new=$(( $(find "$artifacts" -type f | wc -l) - before ))
    if (( crashes + hangs + ooms > 0 )); then
        FAILED=1
    fi
    SUMMARY+=("$(printf '%-14s runs %10s  %8s exec/s  crashes %d  timeouts %d  oom %d  peak RSS %4s MB  %5ss  new artifacts %d' \
        "$target" "${runs:-?}" "${rate:-?}" "$crashes" "$hangs" "$ooms" "${rss:-?}" "$seconds" "$new")")
    echo "${SUMMARY[-1]}" >&2
done

echo
echo "peershare fuzz summary ($(date -u +%Y-%m-%d), sanitizer $SANITIZER, $(nproc) cores; logs in $LOG_DIR)"
printf '%s\n' "${SUMMARY[@]}"
exit "$FAILED"
