#!/usr/bin/env bash
# install-deps.sh: installs the Debian 12 packages that building, running and
# testing openova-flow-fcgi need. With --if-missing it does nothing when they
# are all there (so `make run` stays fast and works without root then).
set -euo pipefail

packages=(
    build-essential pkg-config ca-certificates curl
    libfcgi-dev libfcgi-bin libcurl4-openssl-dev libjson-c-dev libcmocka-dev libmicrohttpd-dev
    lighttpd python3 python3-pytest valgrind
)

if [ "${1:-}" = "--if-missing" ]; then
    missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && exit 0
    echo "install-deps: missing: ${missing[*]}" >&2
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
