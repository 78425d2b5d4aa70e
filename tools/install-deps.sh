#!/usr/bin/env bash
# install-deps.sh: installs the Debian 12 packages that building, running and
# testing openova-flow-fcgi need, and the browser test's npm packages.
# `--if-missing` (what `make run` uses) installs only what building and
# running need, and does nothing when that is all there (so it works without
# root then). `--tests-if-missing` (what `make check` uses) does the same for
# everything the tests need as well.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

packages=(
    build-essential pkg-config ca-certificates curl
    libfcgi-dev libfcgi-bin libcurl4-openssl-dev libjson-c-dev libcmocka-dev libmicrohttpd-dev libgnutls28-dev
    # JWT verification (JOSE: RS256, ES256, HS256) and SHA-256 for bearer tokens.
    libcjose-dev libssl-dev openssl
    # The man pages (make builds them when it is there; make install needs them).
    scdoc
    lighttpd python3 python3-pytest valgrind
    # The other web servers and launchers the integration suite runs for
    # real (conf/apache2, conf/nginx, conf/spawn-fcgi, conf/systemd):
    # systemd brings systemd-socket-activate and systemd-analyze (no running
    # systemd is needed); util-linux's setpriv drops the app's privileges.
    apache2 nginx spawn-fcgi systemd util-linux
)
# Only the tests need these: a browser for the page's test (Debian's: no
# browser download), driven by playwright-core from npm with the machine's
# Node.js (20 or later; Debian 12's own nodejs 18 is too old for it).
test_packages=(
    chromium
    # The integration suite mints its test keys and JWTs with it.
    python3-cryptography
    # libFuzzer and the sanitizer runtimes (make fuzz).
    clang libclang-rt-14-dev
    # make bench: load generator and the chart.
    wrk gnuplot-nox
    # test_monitoring.py: promtool (checks and unit-tests conf/monitoring/'s
    # rules and scrape config; Debian ships it in the server's package, whose
    # service the install does not start in a container), the parser of the
    # app's metrics exposition, and YAML for reading the rules.
    prometheus python3-prometheus-client python3-yaml
    # The Debian package (tools/build-package, CI) and test_install.py's
    # check of the man pages (man --warnings).
    debhelper dpkg-dev lintian man-db
)

mode=${1:-all}
if [ "$mode" = "--if-missing" ] || [ "$mode" = "--tests-if-missing" ]; then
    wanted=("${packages[@]}")
    [ "$mode" = "--tests-if-missing" ] && wanted+=("${test_packages[@]}")
    missing=()
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "$mode" = "--tests-if-missing" ] && [ ! -d "$root/tests/browser/node_modules/playwright-core" ]; then
        missing+=("npm:playwright-core")
    fi
    [ ${#missing[@]} -eq 0 ] && exit 0
    echo "install-deps: missing: ${missing[*]}" >&2
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
if [ "$mode" = "--if-missing" ]; then
    $sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
    exit 0
fi
$sudo apt-get install -y -q --no-install-recommends "${packages[@]}" "${test_packages[@]}"
npm ci --prefix "$root/tests/browser" --no-audit --no-fund
