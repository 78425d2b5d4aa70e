#!/usr/bin/env bash
# run.sh: `make run`: builds everything and starts, in the foreground, the
# local flow server (devserver, in memory), the proxy and lighttpd on
# 127.0.0.1:8080 (PORT to change). With OPENOVA_FLOW_SERVER_URL set, the proxy
# talks to that flow server instead and no devserver starts. Ctrl-C stops all.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

tools/install-deps.sh --if-missing
make --no-print-directory all

rundir=$(mktemp -d "${TMPDIR:-/tmp}/openova-flow-run.XXXXXX")
export OPENOVA_LIGHTTPD_PORT="${PORT:-8080}"
export OPENOVA_LIGHTTPD_RUNDIR="$rundir"
export OPENOVA_LIGHTTPD_ROOT="$root"
export OPENOVA_LIGHTTPD_BIN="$root/build/openova-flow-fcgi"
# The local demo has no login: the app lets everyone in and says so in the log.
export OPENOVA_FLOW_AUTH="${OPENOVA_FLOW_AUTH:-none}"

pids=()
stop() {
    trap - INT TERM EXIT
    [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$rundir"
}
trap stop INT TERM EXIT

if [ -z "${OPENOVA_FLOW_SERVER_URL:-}" ]; then
    export FLOW_SERVER_LISTEN_ADDR="${FLOW_SERVER_LISTEN_ADDR:-127.0.0.1:8081}"
    build/openova-flow-devserver &
    pids+=($!)
    export OPENOVA_FLOW_SERVER_URL="http://$FLOW_SERVER_LISTEN_ADDR"
    upstream_note="the local flow server (devserver, state in memory) on $FLOW_SERVER_LISTEN_ADDR"
else
    upstream_note="$OPENOVA_FLOW_SERVER_URL"
fi

/usr/sbin/lighttpd -D -f conf/lighttpd/lighttpd-noauth.conf &
pids+=($!)

site="http://127.0.0.1:$OPENOVA_LIGHTTPD_PORT"
base="$site/api/v1/flows"
cat <<MSG

openova-flow-fcgi is serving under lighttpd on $site/
  upstream:  $upstream_note
  open:      $site/?id=dep-demo      (the live flow page)
  play:      make demo-events        (a two-region deployment, about a minute, into dep-demo)
  try:       curl -i $base/dep-demo/snapshot
             curl -N $base/dep-demo/stream
The processes log here; lighttpd's own log: $rundir/error.log. Ctrl-C stops all.

MSG
# Whichever ends first (or Ctrl-C) ends the others.
wait -n "${pids[@]}"
