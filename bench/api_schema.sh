#!/usr/bin/env bash
# Property-based tests of both OpenAPI documents with schemathesis: starts a
# real `peershare index` and a real `peershare up` daemon joined to it on
# 127.0.0.1, registers a user on each, then runs `schemathesis run` with every
# check against the index's document (served at /api/v1/openapi.json) and the
# daemon's local API document (same path on its API address). Prints, per
# document, the operations tested and the failures by kind, and exits
# non-zero on any failure. Not run in CI (it needs PyPI for the venv).
#
#   bench/api_schema.sh                          # 100 examples per operation
#   MAX_EXAMPLES=20 SKIP_BUILD=1 bench/api_schema.sh   # quick run
#
# Environment:
#   MAX_EXAMPLES  test cases per operation and phase (default 100)
#   SEED          schemathesis' random seed (default 20261130)
#   PHASES        schemathesis phases (default examples,coverage,fuzzing,stateful)
#   WORKERS       concurrent schemathesis workers (default 1)
#   ONLY          `index` or `local` to test one document only
#   VENV          the Python venv (default target/schemathesis-venv)
#   REPORT_DIR    where the JSON/JUnit reports are kept (default target/api-schema-report)
#   BENCH_DIR     where the temporary folder goes (default: $TMPDIR or /tmp)
#   SKIP_BUILD=1  use the existing release binary instead of building it
#
# Excluded operations (they would end the state the rest of the run needs):
#   index  DELETE /api/v1/users/me        deletes the account the run uses
#   index  DELETE /api/v1/sessions/current revokes the token the run uses
#   local  POST /api/v1/index/unregister  deletes the daemon's index account
#   local  POST /api/v1/index/logout      logs the daemon out of its index
#   local  GET  /api/v1/events            an endless Server-Sent Events stream
# Each is covered by the crates' own tests instead. The local run also skips
# the ensure_resource_availability check (reason in api_schema_local.toml),
# and both runs read per-operation settings, each with its reason, from
# api_schema_index.toml and api_schema_local.toml. All traffic goes to
# 127.0.0.1 only; the script stops only the processes it started.
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
MAX_EXAMPLES=${MAX_EXAMPLES:-100}
SEED=${SEED:-20261130}
PHASES=${PHASES:-examples,coverage,fuzzing,stateful}
WORKERS=${WORKERS:-1}
ONLY=${ONLY:-}
VENV=${VENV:-$ROOT/target/schemathesis-venv}
REPORT_DIR=${REPORT_DIR:-$ROOT/target/api-schema-report}

die() { echo "api_schema.sh: $*" >&2; exit 1; }

for v in MAX_EXAMPLES SEED WORKERS; do
    case "${!v}" in '' | *[!0-9]*) die "$v must be a positive integer" ;; esac
    [ "${!v}" -gt 0 ] || die "$v must be positive"
done
case "$ONLY" in '' | index | local) ;; *) die "ONLY must be index or local" ;; esac
command -v python3 >/dev/null || die "python3 is needed"

# ---------------------------------------------------------------- cleanup
CLEANUP_WAIT_TENTHS=100
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- schemathesis
ST=$VENV/bin/schemathesis
if ! "$ST" --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION\$"; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV ..."
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi
echo "$("$ST" --version)"

# ---------------------------------------------------------------- build
build_peershare
T=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/peershare-api-schema.XXXXXX")
echo "binary $BIN, sandbox $T"
mkdir -p "$REPORT_DIR"
REPORT_DIR=$(cd "$REPORT_DIR" && pwd) # schemathesis runs from the sandbox
for name in index local; do # only what this script writes there
    rm -f "$REPORT_DIR/$name.json" "$REPORT_DIR/$name.junit.xml" "$REPORT_DIR/$name.log"
done

# JSON field $2 of the one-line JSON document in file $1.
json_field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# ---------------------------------------------------------------- index
mkdir -p "$T/index"
# The fuzzing user is an admin so the audit log is tested beyond 403;
# registrations are unlimited because the daemon's API registers too.
RUST_LOG=${RUST_LOG:-warn} "$BIN" --json index --listen 127.0.0.1:0 --data-dir "$T/index" \
    --admin fuzz --registrations-per-minute 0 >"$T/index.out" 2>"$T/index.log" &
INDEX_PID=$!
PIDS+=("$INDEX_PID")
for ((i = 0; i < 200; i++)); do
    [ -s "$T/index.out" ] && break
    alive "$INDEX_PID" || { cat "$T/index.log" >&2; die "the index exited"; }
    sleep 0.05
done
INDEX_URL=$(head -n 1 "$T/index.out" | python3 -c 'import json, sys; print(json.load(sys.stdin)["url"])')
case "$INDEX_URL" in http://127.0.0.1:*) ;; *) die "unexpected index URL $INDEX_URL" ;; esac
echo "index $INDEX_URL (pid $INDEX_PID)"

# ---------------------------------------------------------------- daemon
D=$T/daemon
mkdir -p "$D/data" "$D/share/docs" "$D/downloads"
for n in 1 2 3; do head -c $((n * 70000)) /dev/urandom >"$D/share/file-$n.bin"; done
echo "hello from the schema run" >"$D/share/docs/readme.txt"
# The daemon runs in the sandbox so relative paths sent to it resolve there.
(cd "$T" && RUST_LOG=${RUST_LOG:-warn} NO_COLOR=1 exec "$BIN" up --data-dir "$D/data" \
    --share "$D/share" --downloads "$D/downloads" --api 127.0.0.1:0 \
    --listen /ip4/127.0.0.1/tcp/0 --no-mdns --index "$INDEX_URL" \
    </dev/null >"$T/daemon.out" 2>"$T/daemon.log") &
DAEMON_PID=$!
PIDS+=("$DAEMON_PID")
API_ADDR=""
for ((i = 0; i < 400; i++)); do
    if [ -s "$D/data/api.addr" ] && [ -s "$D/data/api-token" ]; then
        API_ADDR=$(tr -d '[:space:]' <"$D/data/api.addr")
        break
    fi
    alive "$DAEMON_PID" || { cat "$T/daemon.log" >&2; die "the daemon exited"; }
    sleep 0.05
done
[ -n "$API_ADDR" ] || die "the daemon wrote no API address"
case "$API_ADDR" in 127.0.0.1:*) ;; *) die "unexpected API address $API_ADDR" ;; esac
API_TOKEN=$(tr -d '[:space:]' <"$D/data/api-token")
echo "daemon API http://$API_ADDR (pid $DAEMON_PID)"

client() { "$BIN" --data-dir "$D/data" --json "$@"; }
for ((i = 0; i < 200; i++)); do
    client status >/dev/null 2>&1 && break
    sleep 0.1
done
echo "correct horse battery" | client register owner --password-stdin >/dev/null ||
    die "registering the daemon's user failed"
for ((i = 0; i < 300; i++)); do
    state=$(client status | python3 -c 'import json, sys; s = json.load(sys.stdin); print((s.get("index") or {}).get("state"), s.get("shared_files"))')
    [ "$state" = "joined 4" ] && break
    sleep 0.1
done
[ "$state" = "joined 4" ] || die "the daemon did not join with its 4 files (state: $state)"

# ---------------------------------------------------------------- index user
post_json() { # URL BODY OUT: prints the status code, body into OUT
    python3 - "$@" <<'EOF'
import sys, urllib.request, urllib.error
url, body, out = sys.argv[1:4]
req = urllib.request.Request(url, data=body.encode(), method="POST",
                             headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=30) as r:
        status, data = r.status, r.read()
except urllib.error.HTTPError as e:
    status, data = e.code, e.read()
open(out, "wb").write(data)
print(status)
EOF
}
creds='{"name": "fuzz", "password": "correct horse battery"}'
[ "$(post_json "$INDEX_URL/api/v1/users" "$creds" "$T/registered.json")" = 201 ] ||
    die "registering fuzz on the index failed: $(cat "$T/registered.json")"
[ "$(post_json "$INDEX_URL/api/v1/sessions" "$creds" "$T/session.json")" = 201 ] ||
    die "logging fuzz in failed: $(cat "$T/session.json")"
INDEX_TOKEN=$(json_field "$T/session.json" token)

# ---------------------------------------------------------------- runs
# Runs schemathesis on document $2 (named $1) with extra options; prints its
# summary and records its exit code in $T/$1.rc.
run_schemathesis() {
    local name=$1 location=$2 status=0
    shift 2
    # Per-operation settings, with the reasons, are in api_schema_$name.toml.
    echo
    echo "==== $name: $location"
    # From the sandbox, so the caches schemathesis and hypothesis keep in the
    # working folder go away with it.
    (cd "$T" && "$ST" --no-color --config-file "$SCRIPT_DIR/api_schema_$name.toml" run "$location" \
        --checks all --mode all --phases "$PHASES" \
        --seed "$SEED" --max-examples "$MAX_EXAMPLES" --workers "$WORKERS" \
        --request-timeout 30 --suppress-health-check all --generation-database none \
        --report json,junit --report-dir "$REPORT_DIR" \
        --report-json-path "$REPORT_DIR/$name.json" \
        --report-junit-path "$REPORT_DIR/$name.junit.xml" \
        "$@") >"$REPORT_DIR/$name.log" 2>&1 || status=$?
    echo "$status" >"$T/$name.rc"
    python3 "$SCRIPT_DIR/api_schema_summary.py" "$name" "$REPORT_DIR/$name.json" "$REPORT_DIR/$name.log" || true
}

if [ "$ONLY" != local ]; then
    run_schemathesis index "$INDEX_URL/api/v1/openapi.json" \
        -H "Authorization: Bearer $INDEX_TOKEN" \
        --exclude-operation-id unregister --exclude-operation-id logout
fi
if [ "$ONLY" != index ]; then
    run_schemathesis local "http://$API_ADDR/api/v1/openapi.json" \
        -H "Authorization: Bearer $API_TOKEN" \
        --exclude-operation-id unregister --exclude-operation-id logout \
        --exclude-operation-id events --exclude-checks ensure_resource_availability
fi

alive "$INDEX_PID" || die "the index died during the run (log: $T/index.log)"
alive "$DAEMON_PID" || die "the daemon died during the run (log: $T/daemon.log)"

failed=0
for name in index local; do
    [ -f "$T/$name.rc" ] || continue
    rc=$(cat "$T/$name.rc")
    if [ "$rc" != 0 ]; then
        echo "$name: schemathesis exited $rc (details in $REPORT_DIR/$name.log)"
        failed=1
    fi
done
[ "$failed" = 0 ] || exit 1
echo "no failures"
