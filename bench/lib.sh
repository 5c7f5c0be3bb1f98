# Shared by the bench scripts: remembering the processes a script started
# and stopping only those (TERM, a grace period, then KILL) on exit.
# Source it after setting CLEANUP_WAIT_TENTHS (default 50 = 5 s of grace).

PIDS=()   # every process the script started
T=""      # the script's temporary folder, removed on exit unless KEEP=1

alive() { # running and not a zombie
    local state
    [ -r "/proc/$1/stat" ] || return 1
    state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

cleanup() {
    local pid i any
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for ((i = 0; i < ${CLEANUP_WAIT_TENTHS:-50}; i++)); do
        any=0
        for pid in "${PIDS[@]}"; do
            if alive "$pid"; then any=1; fi
        done
        if [ "$any" = 0 ]; then break; fi
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do
        if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
    wait 2>/dev/null || true
    if [ -n "$T" ] && [ "${KEEP:-0}" = 1 ]; then
        echo "kept $T (KEEP=1)" >&2
    elif [ -n "$T" ]; then
        rm -rf "$T"
    fi
}
trap cleanup EXIT

# Builds the release binary (unless SKIP_BUILD=1) and sets BIN to it,
# honouring CARGO_TARGET_DIR. Needs ROOT and die.
build_peershare() {
    if [ "${SKIP_BUILD:-0}" != 1 ]; then
        echo "building (cargo build --release -p peershare) ..."
        (cd "$ROOT" && cargo build --release -p peershare)
    fi
    local target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
    case "$target_dir" in /*) ;; *) target_dir=$ROOT/$target_dir ;; esac
    BIN=$target_dir/release/peershare
    [ -x "$BIN" ] || die "no binary at $BIN"
}

# For scripts whose Python driver starts NODES daemons and lists their pids
# in $T/daemons.pids: on exit, the ones still listed are stopped too (the
# driver may itself have been killed).
pool_cleanup() {
    local more=()
    if [ -n "$T" ] && [ -s "$T/daemons.pids" ]; then
        mapfile -t more <"$T/daemons.pids"
        PIDS+=("${more[@]}")
    fi
    cleanup
}

# Sets up a run with many processes: picks the binary (BIN, else a release
# build), raises the descriptor limit (each daemon has its sockets and
# database, plus the clients), makes the run's folder T named after NAME
# and says which machine runs it. Needs ROOT and die.
prepare_many_process_run() {
    local name=$1
    if [ -n "${BIN:-}" ]; then
        [ -x "$BIN" ] || die "BIN=$BIN is not an executable"
    else
        build_peershare
    fi
    ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    T=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/peershare-$name.XXXXXX")
    echo "binary $BIN"
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

# Runs the Python driver DRIVER (beside this file) with the binary and a
# temporary folder named after NAME, over NODES daemons (see
# prepare_many_process_run); checks there is memory for the daemons. Needs
# ROOT, SCRIPT_DIR, NODES and die.
run_pool_driver() {
    local name=$1 driver=$2 need_kib avail_kib status=0
    trap pool_cleanup EXIT
    trap 'exit 130' INT TERM
    prepare_many_process_run "$name-bench"
    need_kib=$((NODES * 40 * 1024))
    avail_kib=$(awk '/MemAvailable/ { print $2 }' /proc/meminfo)
    [ "$avail_kib" -ge "$need_kib" ] ||
        die "$NODES daemons need about $((need_kib / 1024)) MiB of RAM; $((avail_kib / 1024)) MiB available"
    python3 "$SCRIPT_DIR/$driver" "$BIN" "$T" &
    LOAD_PID=$!
    PIDS+=("$LOAD_PID")
    wait "$LOAD_PID" || status=$?
    [ "$status" = 0 ] || die "the driver failed ($status)"
}
