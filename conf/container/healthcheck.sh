#!/bin/sh
# healthcheck.sh: the container's health check (installed as
# /usr/local/bin/openova-flow-healthcheck): one FastCGI request for the
# app's liveness endpoint (OPENOVA_FLOW_HEALTH_PATH, default
# /openova-flow/healthz) on OPENOVA_FLOW_LISTEN, which the app must answer
# with {"status":"ok"}. Exit 0 when it does, 1 otherwise. Liveness is the
# process alone: the flow server is not called, so a flow server outage
# does not restart the proxy (readiness, /openova-flow/readyz, is what
# asks the flow server). The app logs the probe only at
# OPENOVA_FLOW_LOG_LEVEL=debug, with request id "healthcheck".
#
# For the Debian 12 (debian:12-slim) image of Containerfile; POSIX sh,
# cgi-fcgi from Debian's libfcgi-bin, timeout from coreutils.
set -u

listen=${OPENOVA_FLOW_LISTEN:-127.0.0.1:9000}
# cgi-fcgi takes HOST:PORT or a socket path.
case $listen in
    unix:*) address=${listen#unix:} ;;
    *) address=$listen ;;
esac

# The app's own setting, so a moved endpoint is still found. Set but empty
# turns liveness off in the app: then there is nothing to ask, and the
# check fails rather than pass without asking (run the container with
# --no-healthcheck instead).
path=${OPENOVA_FLOW_HEALTH_PATH-/openova-flow/healthz}
if [ -z "$path" ]; then
    echo "liveness is off (OPENOVA_FLOW_HEALTH_PATH is empty)"
    exit 1
fi

# A clean environment: cgi-fcgi sends every variable it has as a FastCGI
# parameter. A hung app fails the check after 5 s instead of hanging it.
answer=$(env -i REQUEST_METHOD=GET REQUEST_URI="$path" SERVER_PROTOCOL=HTTP/1.1 \
    GATEWAY_INTERFACE=CGI/1.1 REMOTE_ADDR=127.0.0.1 HTTP_X_REQUEST_ID=healthcheck \
    timeout 5 cgi-fcgi -bind -connect "$address" </dev/null 2>/dev/null) || exit 1

# The liveness body, which no other answer of the app carries.
case $answer in
    *'{"status":"ok"}'*) exit 0 ;;
    *) exit 1 ;;
esac
