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

# Starts a PostgreSQL server for a bench in folder $1 (created), listening
# on 127.0.0.1 only on a free port, and sets PG_URL to a database in it and
# PG_PID. Uses initdb and postgres from PATH or /usr/lib/postgresql/*/bin,
# installing Debian's package through the index tests' setup.sh when neither
# has them. As root, PostgreSQL runs as the postgres user (it refuses root).
# Settings are PostgreSQL's defaults but for shared_buffers (PG_SHARED_BUFFERS,
# default 1GB) and max_connections: commits stay durable (fsync on).
# Needs ROOT, die and PIDS.
start_postgres() {
    local folder=$1 bin="" dir run=() password port i
    find_pg() {
        bin=""
        # Through links (/usr/local/bin/initdb -> /usr/lib/postgresql/N/bin),
        # to the folder that also has pg_isready and psql.
        dir=$(dirname "$(readlink -f "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")")
        if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && [ -x "$dir/psql" ]; then bin=$dir; return 0; fi
        for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
            if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && [ -x "$dir/psql" ]; then bin=$dir; fi
        done
        [ -n "$bin" ]
    }
    find_pg || bash "$ROOT/crates/index/tests/postgres/setup.sh" || die "no PostgreSQL (see crates/index/tests/postgres/setup.sh)"
    find_pg || die "setup.sh installed no initdb and postgres"
    mkdir -p "$folder"
    password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    printf '%s' "$password" >"$folder/pwfile"
    if [ "$(id -u)" = 0 ]; then
        local user=postgres
        id -u postgres >/dev/null 2>&1 || user=nobody
        chown -R "$user:" "$folder"
        run=(setpriv "--reuid=$(id -u "$user")" "--regid=$(id -g "$user")" --clear-groups --)
    fi
    "${run[@]}" "$bin/initdb" --pgdata "$folder/data" --username peershare --auth scram-sha-256 \
        "--pwfile=$folder/pwfile" --encoding UTF8 --locale C >"$folder/initdb.log" 2>&1 ||
        { cat "$folder/initdb.log" >&2; die "initdb failed"; }
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${run[@]}" "$bin/postgres" -D "$folder/data" -h 127.0.0.1 -p "$port" -k "$folder" \
        -c "shared_buffers=${PG_SHARED_BUFFERS:-1GB}" -c max_connections=200 \
        >"$folder/postgres.log" 2>&1 &
    PG_PID=$!
    PIDS+=("$PG_PID")
    for ((i = 0; i < 600; i++)); do
        if "${run[@]}" "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" 2>/dev/null; then break; fi
        alive "$PG_PID" || { cat "$folder/postgres.log" >&2; die "postgres exited"; }
        sleep 0.1
    done
    PGPASSWORD=$password "$bin/psql" -q -h 127.0.0.1 -p "$port" -U peershare -d postgres \
        -c "CREATE DATABASE bench" >/dev/null || die "cannot create the bench database"
    PG_BIN=$bin
    PG_URL="postgres://peershare:$password@127.0.0.1:$port/bench"
}
