#!/usr/bin/env bash
# Swarm benchmark: one download from 1, 2, 4 and 8 sharers whose uplinks are
# limited with tc, each in a network namespace of its own on one bridge.
# The baseline, printed beside each figure, is the sum of the sharers'
# uplinks: a perfect swarm fills them all. Two rates are printed: the whole
# `get NAME` as a person waits for it (the search for holders included),
# and the download's own rate from its first piece to its last.
#
# Then the BitTorrent case: one complete sharer and MAX-1 downloaders (one
# per other namespace, behind the same shaped uplinks) start together. Every
# byte must leave the sharer at least once, so no downloader can finish
# sooner than size / its uplink: that bound is the baseline, and the pieces
# the sharer sent (of all pieces received) show how much the swarm carried.
#
#   sudo bench/swarm.sh
#   SIZE_MIB=128 COUNTS="1 4" UPLINK_MBIT=100 DELAY_MS=50 bench/swarm.sh
#
#   SIZE_MIB     size of the shared file in MiB (default 256)
#   COUNTS       sharer counts to measure (default "1 2 4 8")
#   UPLINK_MBIT  each sharer's uplink in Mbit/s, a tbf qdisc (default 100)
#   DELAY_MS     added one-way delay for the second pass (needs sch_netem;
#                skipped with a message when the kernel lacks it; default 50)
#
# Needs root (namespaces, tc) and iproute2. Nothing leaves the namespaces:
# the bridge has no uplink and every daemon runs inside its namespace.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-256}
COUNTS=${COUNTS:-"1 2 4 8"}
UPLINK_MBIT=${UPLINK_MBIT:-100}
DELAY_MS=${DELAY_MS:-50}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/target/release/peershare"
TAG=$$
BRIDGE="pssw$TAG"
NET="10.79.$((TAG % 200))"
WORK=$(mktemp -d /tmp/peershare-swarm.XXXXXX)
MAX=0
for n in $COUNTS; do ((n > MAX)) && MAX=$n; done
PIDS=()

[[ $(id -u) == 0 ]] || { echo "needs root (network namespaces, tc)"; exit 1; }

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait "${PIDS[@]}" 2>/dev/null || true
    for i in $(seq 0 "$MAX"); do ip netns del "pssw$TAG-$i" 2>/dev/null || true; done
    ip link del "$BRIDGE" 2>/dev/null || true
    [[ -n "${KEEP:-}" ]] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

echo "building (cargo build --release -p peershare) ..."
(cd "$ROOT" && cargo build --release -p peershare 2>&1 | tail -1)

# Host 0 runs the index and the downloader; hosts 1..MAX are sharers.
ip link add "$BRIDGE" type bridge
ip link set "$BRIDGE" up
for i in $(seq 0 "$MAX"); do
    ns="pssw$TAG-$i"
    ip netns add "$ns"
    ip link add "sw$TAG-$i" type veth peer name eth0 netns "$ns"
    ip link set "sw$TAG-$i" master "$BRIDGE" up
    ip -n "$ns" addr add "$NET.$((i + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
done

in_ns() { local i=$1; shift; ip netns exec "pssw$TAG-$i" "$@"; }
ps_in() { local i=$1 dir=$2; shift 2; in_ns "$i" "$BIN" --data-dir "$dir" "$@"; }

# Each sharer's uplink (egress of its eth0), with an optional delay in front.
shape() {
    local delay=$1
    for i in $(seq 1 "$MAX"); do
        in_ns "$i" tc qdisc del dev eth0 root 2>/dev/null || true
        if ((delay > 0)); then
            in_ns "$i" tc qdisc add dev eth0 root handle 1: netem delay "${delay}ms" limit 100000 || return 1
            in_ns "$i" tc qdisc add dev eth0 parent 1: handle 2: tbf rate "${UPLINK_MBIT}mbit" burst 64kb latency 400ms
        else
            in_ns "$i" tc qdisc add dev eth0 root tbf rate "${UPLINK_MBIT}mbit" burst 64kb latency 400ms
        fi
    done
}

INDEX="http://$NET.1:1099"
ip netns exec "pssw$TAG-0" "$BIN" index --listen 0.0.0.0:1099 --index-data-dir "$WORK/index" \
    >"$WORK/index.log" 2>&1 &
PIDS+=($!)

echo "writing $SIZE_MIB MiB of random bytes ..."
mkdir -p "$WORK/file"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$WORK/file/swarm.bin"
SIZE=$((SIZE_MIB * 1024 * 1024))

for i in $(seq 1 "$MAX"); do
    mkdir -p "$WORK/s$i/share"
    ln "$WORK/file/swarm.bin" "$WORK/s$i/share/swarm.bin"
    # Started directly (not through a function) so $! is the daemon itself.
    ip netns exec "pssw$TAG-$i" "$BIN" --data-dir "$WORK/s$i" up --index "$INDEX" \
        --share "$WORK/s$i/share" --downloads "$WORK/s$i/dl" --listen /ip4/0.0.0.0/tcp/1100 \
        --api 127.0.0.1:1101 --no-mdns --max-uploads 16 >"$WORK/s$i.log" 2>&1 &
    PIDS+=($!)
done
for i in $(seq 1 "$MAX"); do
    echo "pw-sharer-$i" | ps_in "$i" "$WORK/s$i" register "s$i" --password-stdin >/dev/null
done
echo "waiting for $MAX sharers to hash and publish ..."
for i in $(seq 1 "$MAX"); do
    until ps_in "$i" "$WORK/s$i" status --json | grep -q '"published_files":1'; do sleep 0.5; done
done

# One download by a fresh downloader from the first $1 sharers (the others offline).
measure() {
    local count=$1 round=$2
    for i in $(seq 1 "$MAX"); do
        if ((i <= count)); then ps_in "$i" "$WORK/s$i" online >/dev/null; else ps_in "$i" "$WORK/s$i" offline >/dev/null; fi
    done
    local dir="$WORK/dl-$round"
    ip netns exec "pssw$TAG-0" "$BIN" --data-dir "$dir" up --index "$INDEX" --downloads "$dir/dl" \
        --listen /ip4/0.0.0.0/tcp/0 --api 127.0.0.1:0 --no-mdns >"$dir.log" 2>&1 &
    local pid=$!
    echo "pw-downloader" | ps_in 0 "$dir" register "dl$round" --password-stdin >/dev/null
    until [[ $(ps_in 0 "$dir" search swarm --json | grep -o '"peer_id"' | wc -l) -ge $count ]]; do sleep 0.5; done
    local start end
    start=$(date +%s.%N)
    ps_in 0 "$dir" get swarm.bin --json >"$dir.get.json"
    end=$(date +%s.%N)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    cmp -s "$dir/dl/swarm.bin" "$WORK/file/swarm.bin" || { echo "round $round: the file differs"; exit 1; }
    python3 - "$SIZE" "$start" "$end" "$count" "$UPLINK_MBIT" "$dir.get.json" <<'EOF'
import json, sys
size, start, end, count, uplink = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
got = json.load(open(sys.argv[6]))
rate = size / (end - start) / 1e6
sum_uplinks = count * uplink / 8
used = sum(1 for p in got.get("peers", []) if p.get("pieces", 0) > 0)
flowing = got.get("rate_bytes_per_sec", 0) / 1e6
print(f"  {count} sharer(s)   get {rate:6.1f} MB/s (ratio {rate / sum_uplinks:4.2f})   "
      f"while pieces flowed {flowing:6.1f} MB/s (ratio {flowing / sum_uplinks:4.2f})   "
      f"uplinks {sum_uplinks:6.1f} MB/s   sources used {used}")
EOF
}

# One complete sharer (s1) and a fresh downloader in each other namespace, started together.
measure_partial() {
    local round=$1 n=$((MAX - 1))
    for i in $(seq 1 "$MAX"); do
        if ((i == 1)); then ps_in "$i" "$WORK/s$i" online >/dev/null; else ps_in "$i" "$WORK/s$i" offline >/dev/null; fi
    done
    local seed_id
    seed_id=$(ps_in 1 "$WORK/s1" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["peer_id"])')
    local dirs=() pids=()
    for i in $(seq 2 "$MAX"); do
        local dir="$WORK/p$round-$i"
        dirs+=("$dir")
        # Started directly (not through a function) so $! is the daemon itself.
        ip netns exec "pssw$TAG-$i" "$BIN" --data-dir "$dir" up --index "$INDEX" --downloads "$dir/dl" \
            --listen /ip4/0.0.0.0/tcp/0 --api 127.0.0.1:0 --no-mdns --max-uploads 16 >"$dir.log" 2>&1 &
        pids+=($!)
        PIDS+=($!)
    done
    for i in $(seq 2 "$MAX"); do
        local dir="$WORK/p$round-$i"
        echo "pw-downloader" | ps_in "$i" "$dir" register "p$round-$i" --password-stdin >/dev/null
        until [[ $(ps_in "$i" "$dir" search swarm --json | grep -o '"peer_id"' | wc -l) -ge 1 ]]; do sleep 0.5; done
    done
    local start gets=()
    start=$(date +%s.%N)
    for i in $(seq 2 "$MAX"); do
        local dir="$WORK/p$round-$i"
        (ps_in "$i" "$dir" get swarm.bin --json >"$dir.get.json"; date +%s.%N >"$dir.end") &
        gets+=($!)
    done
    wait "${gets[@]}"
    for pid in "${pids[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
    for dir in "${dirs[@]}"; do
        cmp -s "$dir/dl/swarm.bin" "$WORK/file/swarm.bin" || { echo "round $round: $dir: the file differs"; exit 1; }
    done
    python3 - "$SIZE" "$start" "$UPLINK_MBIT" "$seed_id" "${dirs[@]}" <<'EOF'
import json, sys
size, start, uplink, seed = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
dirs = sys.argv[5:]
ends = [float(open(d + ".end").read()) for d in dirs]
gets = [json.load(open(d + ".get.json")) for d in dirs]
seed_mb = uplink / 8
bound = size / 1e6 / seed_mb
last = max(ends) - start
rates = [size / (e - start) / 1e6 for e in ends]
pieces = [(p["peer_id"], p.get("pieces", 0)) for g in gets for p in g.get("peers", [])]
from_seed = sum(n for peer, n in pieces if peer == seed)
total = sum(n for _, n in pieces)
print(f"  1 sharer + {len(dirs)} downloaders   slowest {last:6.1f} s (bound {bound:5.1f} s, ratio {bound / last:4.2f})   "
      f"each {min(rates):5.1f}..{max(rates):5.1f} MB/s (sharer uplink {seed_mb:5.1f} MB/s)   "
      f"pieces from the sharer {from_seed} of {total}")
EOF
}

round=0
for delay in 0 "$DELAY_MS"; do
    if ! shape "$delay" 2>/dev/null; then
        echo "with ${delay} ms delay: skipped (this kernel has no sch_netem)"
        continue
    fi
    echo "peershare swarm benchmark: ${SIZE_MIB} MiB, sharers at ${UPLINK_MBIT} Mbit/s each, ${delay} ms added delay"
    for count in $COUNTS; do
        round=$((round + 1))
        measure "$count" "$round"
    done
    if ((MAX > 1)); then
        round=$((round + 1))
        measure_partial "$round"
    fi
done
