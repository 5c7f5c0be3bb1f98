#!/usr/bin/env bash
# NAT traversal benchmark: a small internet in network namespaces (a public
# segment with a daemon that runs the index and a relay allowing bulk
# circuits, two public peers, and two homes each behind a router), for every
# ordered pair of router kinds (sharer, downloader), ATTEMPTS downloads of a 1 MiB file from one home to
# the other, each between freshly started daemons; then SIZE_MIB over a
# hole-punched connection against the same between two public peers, in the
# same run. Not run in CI. Needs root, iproute2, nftables (the NAT tests'
# crates/cli/tests/routers/setup.sh installs it) and python3.
#
#   bench/nat.sh                                   # 20 attempts, 256 MiB
#   ATTEMPTS=3 SIZE_MIB=64 bench/nat.sh             # quick run
#   KINDS="port_restricted symmetric" bench/nat.sh  # some kinds only
#   PAIRS="port_restricted:symmetric" SIZE_MIB=0 bench/nat.sh  # one pair, no throughput
#
# Router kinds (nftables in the router's namespace; every kind masquerades
# and drops what nobody inside asked for, but):
#   full_cone           the home's listening port is forwarded to it (any
#                       sender reaches it once it listens)
#   address_restricted  forwarded only to senders the home has sent to
#   port_restricted     nothing forwarded: only replies come in (conntrack),
#                       the source port is kept (endpoint-independent mapping)
#   symmetric           a new random source port for every destination
#
# Environment: ATTEMPTS (default 20), SIZE_MIB (default 256; 0 skips the
# throughput), KINDS, PAIRS (sharer:downloader ...),
# BENCH_DIR, SKIP_BUILD=1, KEEP=1 (keep the folder with the daemons' logs).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
die() { echo "nat.sh: $*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$SCRIPT_DIR/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root: it makes network namespaces"
command -v ip >/dev/null || die "iproute2 (ip) is needed"
command -v nft >/dev/null || bash "$ROOT/crates/cli/tests/routers/setup.sh"
command -v python3 >/dev/null || die "python3 is needed"
build_peershare
T=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/peershare-nat.XXXXXX")
echo "binary $BIN"
echo "machine: $(nproc) cores, $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$SCRIPT_DIR/nat_matrix.py" "$BIN" "$T" &
PIDS+=("$!")
wait "$!"
