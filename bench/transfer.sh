#!/usr/bin/env bash
# Transfer benchmark: one peershare download over loopback against a plain
# TCP copy of the same file measured in the same run. Not run in CI.
#
#   bench/transfer.sh                     # 2048 MiB file, 3 runs
#   SIZE_MIB=256 RUNS=1 bench/transfer.sh
#
# Environment:
#   SIZE_MIB     size of the random test file in MiB (default 2048)
#   RUNS         repetitions of both measurements; medians are reported (default 3)
#   BENCH_DIR    where the temporary folder goes (default: $TMPDIR or /tmp);
#                it needs about 2 x SIZE_MIB + 512 MiB free
#   SKIP_BUILD=1 use the existing release binary instead of building it
#   UP_ARGS      extra arguments appended to both `peershare up` commands
#
# MB = 10^6 bytes. Both measurements read the source file from the page
# cache and write into files on the same file system. socat never syncs;
# peershare syncs its partial file before each piece-map checkpoint and at the end.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
SIZE_MIB=${SIZE_MIB:-2048}
RUNS=${RUNS:-3}
UP_ARGS=${UP_ARGS:-}
READY_POLLS=600          # x 0.5 s: how long a daemon may take to come up / hash
STOP_GRACE=30            # seconds a daemon gets to exit after SIGINT

die() { echo "transfer.sh: $*" >&2; exit 1; }

case "$SIZE_MIB" in '' | *[!0-9]*) die "SIZE_MIB must be a positive integer" ;; esac
case "$RUNS" in '' | *[!0-9]*) die "RUNS must be a positive integer" ;; esac
[ "$SIZE_MIB" -gt 0 ] || die "SIZE_MIB must be positive"
[ "$RUNS" -gt 0 ] || die "RUNS must be positive"
BYTES=$((SIZE_MIB * 1024 * 1024))

# ---------------------------------------------------------------- tools
command -v python3 >/dev/null || die "python3 is needed (JSON parsing, medians)"
missing=()
command -v socat >/dev/null || missing+=(socat)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "please install: ${missing[*]}"
    echo "installing ${missing[*]} ..."
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# ---------------------------------------------------------------- cleanup
CLEANUP_WAIT_TENTHS=50
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
# Drops pids that were reaped, so a recycled pid is never signalled.
forget() {
    local keep=() pid gone
    for pid in "${PIDS[@]}"; do
        for gone in "$@"; do [ "$pid" = "$gone" ] && continue 2; done
        keep+=("$pid")
    done
    PIDS=("${keep[@]}")
}
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build
build_peershare

# ---------------------------------------------------------------- test file
T=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/peershare-bench.XXXXXX")
avail_kib=$(df -Pk "$T" | awk 'NR == 2 { print $4 }')
need_kib=$((SIZE_MIB * 1024 * 2 + 512 * 1024))   # source + one copy at a time
[ "$avail_kib" -ge "$need_kib" ] ||
    die "$T has $((avail_kib / 1024)) MiB free, needs about $((need_kib / 1024)) MiB (set BENCH_DIR)"

NAME=bench-${SIZE_MIB}MiB.bin
mkdir -p "$T/share" "$T/a" "$T/a-dl"
SRC=$T/share/$NAME
echo "writing $SIZE_MIB MiB of random bytes to $SRC ..."
head -c "$BYTES" /dev/urandom >"$SRC"
[ "$(stat -c %s "$SRC")" = "$BYTES" ] || die "short test file"
cat "$SRC" >/dev/null

# ---------------------------------------------------------------- helpers
now() { date +%s.%N; }
mbps() { awk -v n="$BYTES" -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", n / 1e6 / (b - a) }'; }
median() { python3 -c 'import statistics, sys; print("%.1f" % statistics.median(map(float, sys.argv[1:])))' "$@"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits until something listens on 127.0.0.1:$1 (read from /proc, so no
# probe connection is made); $2 is the listener's pid.
wait_listening() {
    local hex i
    hex=$(printf '%04X' "$1")
    for ((i = 0; i < 100; i++)); do
        grep -q "0100007F:$hex 00000000:0000 0A" /proc/net/tcp && return 0
        alive "$2" || die "listener on port $1 exited"
        sleep 0.05
    done
    die "nothing listens on 127.0.0.1:$1"
}

# The pid of the (single) child of process $1.
child_of() {
    local parent=$1 f stat i ppid
    for ((i = 0; i < 100; i++)); do
        for f in /proc/[0-9]*/stat; do
            { read -r stat <"$f"; } 2>/dev/null || continue
            stat=${stat##*) }                    # drop "pid (comm) "
            read -r _ ppid _ <<<"$stat"
            if [ "$ppid" = "$parent" ]; then
                f=${f#/proc/}
                echo "${f%/stat}"
                return 0
            fi
        done
        sleep 0.05
    done
    die "process $parent started no child"
}

# Polls `peershare status --json` of the daemon with data dir $1 until it
# answers (and, if $3 is given, until its shared_files equals $3); $2 is a
# pid that must stay alive meanwhile. Prints the status JSON.
wait_status() {
    local dir=$1 pid=$2 want=${3:-} out i
    for ((i = 0; i < READY_POLLS; i++)); do
        alive "$pid" || { tail -n 30 "$dir.log" >&2 || true; die "daemon with data dir $dir exited"; }
        if out=$(timeout 10 "$BIN" --data-dir "$dir" status --json 2>/dev/null) &&
            printf '%s' "$out" | python3 -c '
import json, sys
want = sys.argv[1]
d = json.load(sys.stdin)
sys.exit(0 if want == "" or d.get("shared_files") == int(want) else 1)' "$want" 2>/dev/null; then
            printf '%s\n' "$out"
            return 0
        fi
        sleep 0.5
    done
    tail -n 30 "$dir.log" >&2 || true
    die "daemon with data dir $dir not ready after $((READY_POLLS / 2)) s${want:+ (waiting for shared_files = $want)}"
}

# Sends SIGINT to $1 and waits for $2 (the same pid, or /usr/bin/time around
# it) to end; escalates to SIGTERM and SIGKILL if it does not stop.
stop_daemon() {
    local sig_pid=$1 wait_pid=$2 i
    kill -INT "$sig_pid" 2>/dev/null || true
    for ((i = 0; i < STOP_GRACE * 10; i++)); do
        alive "$wait_pid" || break
        sleep 0.1
    done
    if alive "$wait_pid"; then
        echo "warning: pid $sig_pid ignored SIGINT for ${STOP_GRACE} s; sending SIGTERM" >&2
        kill -TERM "$sig_pid" 2>/dev/null || true
        sleep 5
        if alive "$wait_pid"; then kill -KILL "$sig_pid" 2>/dev/null || true; fi
    fi
    wait "$wait_pid" 2>/dev/null || true
}

# Starts a daemon in the background with job control on, so that it is in its
# own process group and does not inherit an ignored SIGINT. Sets STARTED_PID.
start_bg() {
    local log=$1
    shift
    set -m
    "$@" >"$log" 2>&1 &
    STARTED_PID=$!
    set +m
    PIDS+=("$STARTED_PID")
}

# ---------------------------------------------------------------- (a) baseline
BASE_RATE=""
run_baseline() {
    local out=$T/baseline.out port rpid t0 t1
    rm -f "$out"
    cat "$SRC" >/dev/null
    port=$(free_port)
    socat -u -b 1048576 "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" "OPEN:$out,creat,trunc" &
    rpid=$!
    PIDS+=("$rpid")
    wait_listening "$port" "$rpid"
    t0=$(now)
    socat -u -b 1048576 "OPEN:$SRC" "TCP:127.0.0.1:$port"
    wait "$rpid"
    t1=$(now)
    forget "$rpid"
    [ "$(stat -c %s "$out")" = "$BYTES" ] || die "baseline copy is $(stat -c %s "$out") bytes, expected $BYTES"
    rm -f "$out"
    BASE_RATE=$(mbps "$t0" "$t1")
}

# ---------------------------------------------------------------- (b) peershare
A_PID=""
start_a() {
    # shellcheck disable=SC2086  # UP_ARGS is split on purpose
    start_bg "$T/a.log" "$BIN" up --data-dir "$T/a" --share "$T/share" --downloads "$T/a-dl" \
        --listen /ip4/127.0.0.1/tcp/0 --api 127.0.0.1:0 --no-index --no-mdns $UP_ARGS
    A_PID=$STARTED_PID
    echo "waiting for daemon A to hash the share ..."
    A_STATUS=$(wait_status "$T/a" "$A_PID" 1)
    ADDR=$(printf '%s' "$A_STATUS" | python3 -c '
import json, sys
addrs = json.load(sys.stdin).get("addrs") or []
print(addrs[0] if addrs else "")')
    [ -n "$ADDR" ] || die "daemon A reports no addresses: $A_STATUS"
    echo "daemon A at $ADDR"
}

RSS_KIB=""
PS_RATE=""
run_peershare() {
    local time_pid b_pid t0 t1 parsed state path rc
    rm -rf "$T/b" "$T/b-dl" "$T/b-share" "$T/b.time" "$T/get.json"
    mkdir -p "$T/b" "$T/b-dl" "$T/b-share"
    # shellcheck disable=SC2086
    start_bg "$T/b.log" /usr/bin/time -v -o "$T/b.time" \
        "$BIN" up --data-dir "$T/b" --share "$T/b-share" --downloads "$T/b-dl" \
        --listen /ip4/127.0.0.1/tcp/0 --api 127.0.0.1:0 --no-index --no-mdns $UP_ARGS
    time_pid=$STARTED_PID
    # GNU time ignores SIGINT itself: signal the daemon, its child.
    b_pid=$(child_of "$time_pid")
    PIDS+=("$b_pid")
    wait_status "$T/b" "$time_pid" >/dev/null

    cat "$SRC" >/dev/null
    t0=$(now)
    rc=0
    "$BIN" --data-dir "$T/b" get "$ADDR" "$NAME" --json >"$T/get.json" || rc=$?
    t1=$(now)
    if [ "$rc" != 0 ]; then
        cat "$T/get.json" >&2 || true
        tail -n 30 "$T/b.log" >&2 || true
        die "peershare get exited with status $rc"
    fi
    parsed=$(python3 -c '
import json, sys
text = sys.stdin.read().strip()
try:
    d = json.loads(text)
except ValueError:  # not one document: take the last line
    d = json.loads(text.splitlines()[-1])
print(d.get("state", ""))
print(d.get("path", ""))' <"$T/get.json") || die "cannot parse the output of get: $(cat "$T/get.json")"
    state=${parsed%%$'\n'*}
    path=${parsed#*$'\n'}
    [ "$state" = done ] || die "download state is '$state', not done: $(cat "$T/get.json")"
    case "$path" in /*) ;; *) path=$T/b-dl/$path ;; esac
    cmp "$SRC" "$path" || die "downloaded file $path differs from the source"

    stop_daemon "$b_pid" "$time_pid"
    forget "$b_pid" "$time_pid"
    RSS_KIB=$(awk -F': *' '/Maximum resident set size \(kbytes\)/ { print $2 }' "$T/b.time")
    [ -n "$RSS_KIB" ] || die "no RSS in $T/b.time"
    rm -rf "$T/b-dl"
    PS_RATE=$(mbps "$t0" "$t1")
}

# ---------------------------------------------------------------- runs
start_a
base=()
ps_rates=()
max_rss=0
for ((run = 1; run <= RUNS; run++)); do
    run_baseline
    run_peershare
    if [ "$RSS_KIB" -gt "$max_rss" ]; then max_rss=$RSS_KIB; fi
    base+=("$BASE_RATE")
    ps_rates+=("$PS_RATE")
    printf 'run %d/%d: (a) socat %8s MB/s   (b) peershare %8s MB/s   downloader RSS %s MiB\n' \
        "$run" "$RUNS" "$BASE_RATE" "$PS_RATE" "$(awk -v k="$RSS_KIB" 'BEGIN { printf "%.1f", k / 1024 }')"
done
stop_daemon "$A_PID" "$A_PID"
forget "$A_PID"

a_med=$(median "${base[@]}")
b_med=$(median "${ps_rates[@]}")
ratio=$(awk -v a="$a_med" -v b="$b_med" 'BEGIN { printf "%.2f", b / a }')
rss_mib=$(awk -v k="$max_rss" 'BEGIN { printf "%.1f", k / 1024 }')

echo
echo "peershare transfer benchmark: 127.0.0.1, $(nproc) cores, $RUNS run(s), medians"
printf '  file size              %d bytes (%d MiB)\n' "$BYTES" "$SIZE_MIB"
printf '  (a) socat TCP copy     %s MB/s   [%s]\n' "$a_med" "${base[*]}"
printf '  (b) peershare get      %s MB/s   [%s]\n' "$b_med" "${ps_rates[*]}"
printf '  ratio b/a              %s\n' "$ratio"
printf '  downloader peak RSS    %s MiB (max over runs)\n' "$rss_mib"
