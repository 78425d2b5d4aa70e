#!/usr/bin/env bash
# run.sh: `make run`: builds the proxy and starts it under a real lighttpd on
# 127.0.0.1:8080 (PORT to change), in the foreground, against
# OPENOVA_FLOW_SERVER_URL. Ctrl-C stops both.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

tools/install-deps.sh --if-missing
make --no-print-directory

rundir=$(mktemp -d "${TMPDIR:-/tmp}/openova-flow-run.XXXXXX")
export OPENOVA_LIGHTTPD_PORT="${PORT:-8080}"
export OPENOVA_LIGHTTPD_RUNDIR="$rundir"
export OPENOVA_LIGHTTPD_ROOT="$root"
export OPENOVA_LIGHTTPD_BIN="$root/build/openova-flow-fcgi"
# The local demo has no login: the app lets everyone in and says so in the log.
export OPENOVA_FLOW_AUTH="${OPENOVA_FLOW_AUTH:-none}"

base="http://127.0.0.1:$OPENOVA_LIGHTTPD_PORT/api/v1/flows"
cat <<MSG
openova-flow-fcgi under lighttpd on http://127.0.0.1:$OPENOVA_LIGHTTPD_PORT/
upstream: $(build/openova-flow-fcgi --print-config | sed -n 's/.*"upstream_url":"\([^"]*\)".*/\1/p')
try:
  curl -i $base/dep-demo/snapshot
  curl -N $base/dep-demo/stream
  curl -i -H 'Content-Type: application/json' --data '{"type":"upsert-flow","flow":{"id":"dep-demo","status":"running","startedAt":0}}' $base/dep-demo/events
The app logs here, one line per request; lighttpd's own log: $rundir/error.log
Ctrl-C stops.
MSG

exec /usr/sbin/lighttpd -D -f conf/lighttpd/lighttpd-noauth.conf
