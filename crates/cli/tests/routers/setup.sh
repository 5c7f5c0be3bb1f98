#!/usr/bin/env bash
# Installs what the NAT traversal tests' home routers need, when it is
# missing: Debian's nftables (masquerading and filtering in a router's
# namespace) and miniupnpd with its nftables backend (a router that maps
# ports on request). Safe to run again: it does nothing when they are in place.
set -euo pipefail

if command -v nft >/dev/null 2>&1 && command -v miniupnpd >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "the NAT tests need nftables and miniupnpd: run as root, or apt-get install nftables miniupnpd-nftables" >&2
    exit 1
fi
echo "installing nftables and miniupnpd for the NAT tests (apt-get)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables miniupnpd-nftables >/dev/null
command -v nft >/dev/null && command -v miniupnpd >/dev/null
