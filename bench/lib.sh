# Shared by the bench scripts: remembering the processes a script started
# and stopping only those (TERM, a grace period, then KILL) on exit.
# Source it after setting CLEANUP_WAIT_TENTHS (default 50 = 5 s of grace).

PIDS=()   # every process the script started
T=""      # the script's temporary folder, removed on exit

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
    if [ -n "$T" ]; then rm -rf "$T"; fi
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
