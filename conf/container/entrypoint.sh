#!/bin/sh
# entrypoint.sh: the container's entrypoint (conf/container/Containerfile
# installs it as /usr/local/bin/openova-flow-entrypoint). Runs
# openova-flow-fcgi in the foreground as the container's main process,
# serving FastCGI on OPENOVA_FLOW_LISTEN.
#
# For the Debian 12 (debian:12-slim) image of Containerfile; POSIX sh.
#
#   OPENOVA_FLOW_LISTEN  where to listen: HOST:PORT or unix:PATH
#                        (default 127.0.0.1:9000)
#   OPENOVA_FLOW_BIN     the program (default /usr/local/bin/openova-flow-fcgi)
# and every OPENOVA_FLOW_* setting of the app (README.md), read by the app
# itself. Arguments are passed on to the app (e.g. --print-config).
#
# 127.0.0.1 by default: the web server runs beside the app in the same pod
# (or with the same network namespace) and nothing else should reach it.
# Whoever can connect to a FastCGI socket can claim any REMOTE_USER, so
# never publish this port or listen on 0.0.0.0 where others can connect;
# a unix socket in a volume shared with the web server is the alternative.
set -eu

bin=${OPENOVA_FLOW_BIN:-/usr/local/bin/openova-flow-fcgi}

if [ "$#" -gt 0 ]; then
    exec "$bin" "$@"
fi

# exec: the app becomes the container's PID 1 and gets the runtime's
# SIGTERM itself (it ends open streams and exits 0 within 5 s). It spawns
# no children, so PID 1's reaping duty costs nothing.
exec "$bin" --listen "${OPENOVA_FLOW_LISTEN:-127.0.0.1:9000}"
