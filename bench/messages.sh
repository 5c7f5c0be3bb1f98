#!/usr/bin/env bash
# Messages benchmark: NODES `peershare up` daemons on 127.0.0.1 (no index,
# no mDNS) joined into one DHT. Measures online delivery (`msg` until the
# recipient's receipt) against a direct request-response round trip to the
# same peer (`browse` at its full address) in the same run, and the share of
# letters for someone away that reach them after 10 %, 30 % and 50 % of the
# nodes are killed (the letters wait at the DHT nodes nearest the
# recipient). Not run in CI.
#
#   bench/messages.sh                            # 200 nodes, 10 pairs per step
#   NODES=60 PAIRS=5 bench/messages.sh           # quick run
#   SKIP_BUILD=1 BIN=/path/to/peershare bench/messages.sh
#
# Environment:
#   NODES      daemons (default 200); each takes ~25-35 MiB of RAM
#   PAIRS      sender/recipient pairs per step (default 10; NODES >= 4 x PAIRS x (steps + 1))
#   KILLS      cumulative percentages of nodes killed, one offline round each (default 10,30,50)
#   DEADLINE   seconds a restarted recipient has to collect its letter (default 60)
#   BATCH, SEED, UP_ARGS, PEERSHARE_LOG, BIN, BENCH_DIR, SKIP_BUILD: as in bench/dht.sh
#
# Only loopback is used: every daemon listens on 127.0.0.1 with --no-index
# and --no-mdns. Only the daemons this script started are ever signalled.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
export NODES=${NODES:-200}
export PAIRS=${PAIRS:-10}
export BATCH=${BATCH:-10}
# The driver reuses bench/dht_load.py's node handling, which wants these.
export SEARCHERS=1 QUERIES=1

die() { echo "messages.sh: $*" >&2; exit 1; }

for v in NODES PAIRS BATCH; do
    case "${!v}" in '' | *[!0-9]*) die "$v must be a positive integer" ;; esac
    [ "${!v}" -gt 0 ] || die "$v must be positive"
done
case "${KILLS:-10,30,50}" in *[!0-9,]*) die "KILLS must be comma-separated percentages" ;; esac
command -v python3 >/dev/null || die "python3 is needed"

CLEANUP_WAIT_TENTHS=100
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
run_pool_driver messages messages_load.py
