#!/usr/bin/env bash
# DHT benchmark: NODES `peershare up` daemons on 127.0.0.1 (no index, no
# mDNS) joined into one Kademlia DHT through --bootstrap, each sharing one
# small file with a unique word in its name. Measures the time and the
# Kademlia requests of a search by name, and the share of files still found
# after 10 %, 30 % and 50 % of the nodes are killed; the baseline, measured
# in the same run from the same searchers against the same holders, is a
# direct browse of the holder at its known address. Not run in CI.
#
#   bench/dht.sh                          # 200 nodes, 10 searchers, 100 searches per step
#   NODES=30 QUERIES=30 SEARCHERS=5 bench/dht.sh   # quick run (~30 s)
#   SKIP_BUILD=1 BIN=/path/to/peershare bench/dht.sh
#
# Environment:
#   NODES          daemons (default 200); each takes ~25-35 MiB of RAM
#   SEARCHERS      nodes that search and are never killed (default 10)
#   QUERIES        searches (and baseline browses) per step (default 100)
#   KILLS          cumulative percentages of nodes killed, one step each (default 10,30,50)
#   SETTLE         seconds to wait after the last kill before one more step (default 20; 0: none)
#   BATCH          daemons started at once (default 10)
#   FORM_CHECKS    searches that must succeed before measuring (default 5)
#   FORM_DEADLINE  seconds they may take; then the run goes on with a warning (default 60)
#   SEED           random seed: names, bootstrap choice, searchers, targets, victims (default 1)
#   UP_ARGS        extra arguments for every `peershare up` (e.g. "--republish 10 --provider-ttl 600")
#   SHOW_FAILURES  searches not found whose details and log tails are printed per step (default 3)
#   RECORDS        a file to append every search's outcome to, as JSON lines (default: none)
#   PEERSHARE_LOG  the daemons' log filter (their stderr, kept in the temporary folder while running),
#                  e.g. "info,libp2p_kad=debug"; other PEERSHARE_* variables are not passed on
#   BIN            the peershare binary to run (default: the release build, see SKIP_BUILD)
#   BENCH_DIR      where the temporary folder goes (default: $TMPDIR or /tmp)
#   SKIP_BUILD=1   use the existing release binary instead of building it
#
# Only loopback is used: every daemon listens on 127.0.0.1 with --no-index
# (nothing on port 1099) and --no-mdns (no multicast).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
export NODES=${NODES:-200}
export SEARCHERS=${SEARCHERS:-10}
export QUERIES=${QUERIES:-100}
export BATCH=${BATCH:-10}

die() { echo "dht.sh: $*" >&2; exit 1; }

for v in NODES SEARCHERS QUERIES BATCH; do
    case "${!v}" in '' | *[!0-9]*) die "$v must be a positive integer" ;; esac
    [ "${!v}" -gt 0 ] || die "$v must be positive"
done
[ "$SEARCHERS" -lt "$NODES" ] || die "SEARCHERS must be smaller than NODES"
case "${KILLS:-10,30,50}" in *[!0-9,]*) die "KILLS must be comma-separated percentages" ;; esac
command -v python3 >/dev/null || die "python3 is needed"

CLEANUP_WAIT_TENTHS=100
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
run_pool_driver dht dht_load.py
