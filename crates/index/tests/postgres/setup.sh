#!/usr/bin/env bash
# Installs what the index's PostgreSQL tests need, when it is missing:
# Debian's postgresql package (apt-get, as root), whose initdb and postgres
# live in /usr/lib/postgresql/VERSION/bin (the tests look there and on PATH).
# Safe to run again: it does nothing when they are in place.
set -euo pipefail

found() {
    if command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
        return 0
    fi
    for bin in /usr/lib/postgresql/*/bin; do
        if [ -x "$bin/initdb" ] && [ -x "$bin/postgres" ]; then
            return 0
        fi
    done
    return 1
}

if ! found; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "the index's PostgreSQL tests need PostgreSQL: run as root, or apt-get install postgresql" >&2
        exit 1
    fi
    echo "installing PostgreSQL for the index's tests (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    found
fi
