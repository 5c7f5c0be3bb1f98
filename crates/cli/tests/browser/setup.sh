#!/usr/bin/env bash
# Installs what the browser tests need, when it is missing: Debian's Chromium
# (apt-get, as root) and playwright-core (npm ci, from package-lock.json).
# Safe to run again: it does nothing when both are in place.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "the browser tests need Chromium: run as root, or apt-get install chromium" >&2
        exit 1
    fi
    echo "installing Chromium for the browser tests (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "the browser tests need Node.js and npm: apt-get install nodejs npm" >&2
        exit 1
    fi
    echo "installing Node.js for the browser tests (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

# npm ci again only when the lock file changed since the last install.
stamp=node_modules/.installed-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
    echo "installing playwright-core for the browser tests (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json "$stamp"
fi
