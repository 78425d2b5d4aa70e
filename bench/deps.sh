#!/usr/bin/env bash
# deps.sh: installs what `make bench` needs when it is missing (Debian 12):
# the load generator, the chart, the three web servers and spawn-fcgi (how
# the app runs behind nginx and Apache). Does nothing when all are there, so
# it works without root then; otherwise it uses apt-get as root, or sudo.
set -euo pipefail

packages=(wrk gnuplot-nox nginx lighttpd apache2 spawn-fcgi python3)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "bench: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "bench: missing ${missing[*]}: run as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian's packages may start their default sites where an init system runs;
# the benchmark starts its own servers on loopback high ports and needs none.
if command -v service >/dev/null 2>&1; then
    for s in nginx lighttpd apache2; do service "$s" stop >/dev/null 2>&1 || true; done
fi
