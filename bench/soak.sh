#!/usr/bin/env bash
# Soak test (issue 13): a real `peershare index` on a loopback port with its
# own data folder, DAEMONS real `peershare up` daemons joined to it, and
# PEERS simulated peers (bench/soak_load.py, over the index's HTTP API)
# joining, searching, publishing, unpublishing, leaving and rejoining for
# DURATION seconds while a killer SIGKILLs, at random intervals, the index
# (restarted at once on the same port and data folder), a daemon (restarted)
# or a batch of simulated peers (they stop without leaving; the index must
# time them out). It samples RSS and open descriptors of every process it
# started every SAMPLE_EVERY seconds, keeps a ledger of every write the index
# acknowledged and checks it after each index restart and at the end.
# Exits non-zero on any ledger violation or when a process grows past the
# thresholds. Not run in CI.
#
#   bench/soak.sh                          # 30 minutes, 1000 peers, 3 daemons
#   DURATION=180 bench/soak.sh             # a short run
#   SKIP_BUILD=1 DURATION=600 nohup bench/soak.sh >/tmp/soak.log 2>&1 &
#
# Environment (empty means the default):
#   DURATION       seconds of churn (1800)
#   PEERS          simulated peers (1000); USERS accounts they share (PEERS/10)
#   DAEMONS        real daemons (3)
#   HEARTBEAT      the index's --heartbeat, seconds (20)
#   PEER_TIMEOUT   the index's --peer-timeout, seconds (60)
#   ACTION_EVERY   mean seconds between a simulated peer's actions (15)
#   CONNS          keep-alive connections for actions (48) and HEARTBEAT_CONNS
#                  for heartbeats (16), spread over SOURCES loopback source
#                  addresses 127.0.0.2.. (8)
#   KILL_MIN, KILL_MAX  seconds between kills (60, 180)
#   KILL_BATCH     simulated peers killed at once (25)
#   KILL_TARGETS   what the killer picks from, a name twice doubling its
#                  odds (index,daemon,peers)
#   WARMUP         seconds after start (or a restart) left out of the growth
#                  figures (120; RESTART_WARMUP, 60, for a restarted process)
#   SAMPLE_EVERY   seconds between samples (10)
#   RSS_SLOPE_MAX  MiB per 10 min a process may grow (least squares over an
#                  incarnation's samples after warm-up) (8); the run fails when
#                  a process grows faster than that AND by more than its
#                  allowance: INDEX_RSS_ALLOWANCE (128 MiB, the index's SQLite
#                  page caches) or DAEMON_RSS_ALLOWANCE (16 MiB)
#   FD_SLOPE_MAX   open descriptors an incarnation may gain per 10 min (10)
#   MIN_FIT        seconds of samples an incarnation needs to be judged (300)
#   SAMPLES        a CSV file that gets every sample (default: none kept)
#   SEED           random seed (1)
#   FAULT=phantom  self-test: every 100th peer's ledger gets a file that was
#                  never published, so the run must fail
#   BENCH_DIR      where the temporary folder goes ($TMPDIR or /tmp)
#   SKIP_BUILD=1   use the existing release binary; BIN=PATH another binary
#
# The binary is copied into the temporary folder first, so a build running
# beside the soak cannot swap it between two restarts. All traffic stays on
# 127.0.0.0/8; nothing multicasts (the daemons run with --no-mdns). Every
# process it starts is stopped by pid on exit, Ctrl-C included.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

die() { echo "soak.sh: $*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 is needed"
python3 -c 'import cryptography' 2>/dev/null ||
    die "python3's cryptography package is needed (ed25519 signatures for joins)"
for v in DURATION PEERS DAEMONS; do
    case "${!v:-1}" in *[!0-9]*) die "$v must be a whole number" ;; esac
done

CLEANUP_WAIT_TENTHS=50
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

# The driver lists the pids of the index and daemons it runs in $T/soak.pids;
# they are stopped too if the driver itself was killed.
soak_cleanup() {
    local more=()
    if [ -n "$T" ] && [ -s "$T/soak.pids" ]; then
        mapfile -t more <"$T/soak.pids"
        PIDS+=("${more[@]}")
    fi
    cleanup
}
trap soak_cleanup EXIT
trap 'exit 130' INT TERM

prepare_many_process_run soak
# A build running beside the soak must not swap the binary under it.
cp "$BIN" "$T/peershare"

python3 "$SCRIPT_DIR/soak_load.py" "$T/peershare" "$T" &
LOAD_PID=$!
PIDS+=("$LOAD_PID")
status=0
wait "$LOAD_PID" || status=$?
exit "$status"
