#!/usr/bin/env bash
# Index benchmark: fills a `peershare index` on 127.0.0.1 through its HTTP API
# (register, login, challenge + signed join, heartbeats) with PEERS x FILES
# file rows, then measures searches at several concurrency levels and, in the
# same run, the same queries on the raw search structure (the baseline:
# crates/index/examples/raw_search.rs loads the catalogue and text index from
# index.db and searches in-process on one thread; each kind is measured on it
# right before and right after that kind's levels, as the machine's speed
# drifts), printing both and the ratio. Not run in CI.
#
#   bench/index.sh                                   # 1000 peers x 1000 files
#   PEERS=50 FILES=200 DURATION=2 GRACE=3 bench/index.sh   # quick run (~1 min)
#
# Environment:
#   PEERS         simulated peers (default 1000)
#   FILES         files per peer (default 1000)
#   USERS         users the peers are spread over (default PEERS/10)
#   JOIN_CLIENTS  concurrent joining clients (default 16)
#   HEARTBEATS    heartbeats in the burst, 64 clients (default max(1000, 5 x PEERS))
#   LEVELS        search concurrency levels (default 1,64,1000)
#   DURATION      seconds of searching per query kind and level (default 8)
#   GRACE         extra seconds in-flight searches get before they are
#                 cancelled and counted as unfinished (default 10)
#   MAX_REQUESTS  cap on searches per query kind and level (default 400000)
#   RAW_DURATION  seconds of the raw baseline per kind (default DURATION/2)
#   BENCH_DIR     where the temporary folder goes (default: $TMPDIR or /tmp)
#   SKIP_BUILD=1  use the existing release binary instead of building it
#   KEEP=1        keep the temporary folder (index.db, bench-queries.json) to
#                 rerun the raw baseline on: raw_search DB QUERIES SECONDS MAX
#   DATABASE      sqlite (default) or postgres: the index keeps its data in a
#                 PostgreSQL server this script starts in the temporary folder
#                 (127.0.0.1 only; installed through
#                 crates/index/tests/postgres/setup.sh when missing)
#   PAIR=1        with DATABASE=postgres: a second index process on the same
#                 database; after the single-process levels, each kind is
#                 searched again with the clients split over both processes
#   PG_SHARED_BUFFERS  PostgreSQL's shared_buffers (default 1GB)
#   LOAD          who sends the searches: rust (default; crates/index/examples/
#                 search_load.rs, one thread) or python (the asyncio clients
#                 of index_load.py, which need a whole core at 10,000/s)
#
# Needs python3 (3.11, standard library) with the `cryptography` package for
# the ed25519 join signatures. All traffic goes to 127.0.0.1 only.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
export PEERS=${PEERS:-1000}
export FILES=${FILES:-1000}

die() { echo "index.sh: $*" >&2; exit 1; }

for v in PEERS FILES; do
    case "${!v}" in '' | *[!0-9]*) die "$v must be a positive integer" ;; esac
    [ "${!v}" -gt 0 ] || die "$v must be positive"
done
command -v python3 >/dev/null || die "python3 is needed"
python3 -c 'import cryptography' 2>/dev/null ||
    die "python3's cryptography package is needed (ed25519 signatures for joins)"

# ---------------------------------------------------------------- cleanup
CLEANUP_WAIT_TENTHS=100
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build
build_peershare
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release -p peershare-index --example raw_search \
        --example search_load)
fi
RAW_SEARCH=$(dirname "$BIN")/examples/raw_search
[ -x "$RAW_SEARCH" ] || die "no raw_search example at $RAW_SEARCH"
SEARCH_LOAD=$(dirname "$BIN")/examples/search_load
[ "${LOAD:-rust}" = python ] || [ -x "$SEARCH_LOAD" ] ||
    die "no search_load example at $SEARCH_LOAD (or LOAD=python)"
export RAW_SEARCH SEARCH_LOAD

# 1000 client connections plus the index's own.
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------- index
DATABASE=${DATABASE:-sqlite}
case "$DATABASE" in sqlite | postgres) ;; *) die "DATABASE must be sqlite or postgres" ;; esac
[ "${PAIR:-0}" != 1 ] || [ "$DATABASE" = postgres ] || die "PAIR=1 needs DATABASE=postgres"
T=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/peershare-index-bench.XXXXXX")
mkdir -p "$T/data"
STORE=$T/data/index.db
DATABASE_ARGS=()
if [ "$DATABASE" = postgres ]; then
    # PostgreSQL runs as its own user, which must reach its folder in here.
    chmod 711 "$T"
    start_postgres "$T/pg"
    STORE=$PG_URL
    DATABASE_ARGS=(--database "$PG_URL")
    echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') (pid $PG_PID), data in $T/pg"
fi

# start_index NAME: starts an index process whose data folder is $T/NAME
# (its database is $STORE); sets URL and INDEX_PID.
start_index() {
    local name=$1 i
    mkdir -p "$T/$name"
    # Peers stay online for the whole run (the fill can take minutes).
    RUST_LOG=${RUST_LOG:-warn} "$BIN" --json --data-dir "$T/$name" index "${DATABASE_ARGS[@]}" \
        --listen 127.0.0.1:0 --peer-timeout 86400 --registrations-per-minute 0 \
        >"$T/$name.out" 2>"$T/$name.err" &
    INDEX_PID=$!
    PIDS+=("$INDEX_PID")
    URL=""
    for ((i = 0; i < 6000; i++)); do
        if [ -s "$T/$name.out" ]; then
            URL=$(head -n 1 "$T/$name.out" | python3 -c 'import json, sys; print(json.load(sys.stdin)["url"])')
            break
        fi
        alive "$INDEX_PID" || { cat "$T/$name.err" >&2; die "the index exited"; }
        sleep 0.05
    done
    [ -n "$URL" ] || die "the index printed no URL"
    case "$URL" in http://127.0.0.1:*) ;; *) die "unexpected index URL $URL" ;; esac
    echo "index $URL (pid $INDEX_PID), data in $T/$name"
}
start_index data
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr)"

if [ "${PAIR:-0}" = 1 ]; then
    # The second process is started before the fill, so it follows every
    # join through PostgreSQL as it happens.
    FIRST_URL=$URL FIRST_PID=$INDEX_PID
    start_index second
    export INDEX2_URL=$URL INDEX2_PID=$INDEX_PID
    URL=$FIRST_URL INDEX_PID=$FIRST_PID
fi

PEER_TIMEOUT=86400 BENCH_DATA=$T/data python3 "$SCRIPT_DIR/index_load.py" "$URL" "$STORE" "$INDEX_PID" &
LOAD_PID=$!
PIDS+=("$LOAD_PID")
status=0
wait "$LOAD_PID" || status=$?
alive "$INDEX_PID" || { cat "$T/data.err" >&2; die "the index died during the run"; }
[ "$status" = 0 ] || { tail -n 20 "$T/data.err" >&2; die "the load generator failed ($status)"; }
if [ "$DATABASE" = postgres ]; then
    echo "PostgreSQL database size: $(du -sm "$T/pg/data" | cut -f1) MiB"
fi
