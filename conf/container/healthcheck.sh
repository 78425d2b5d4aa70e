#!/bin/sh
# healthcheck.sh: the container's health check (installed as
# /usr/local/bin/openova-flow-healthcheck): one FastCGI request to the app
# on OPENOVA_FLOW_LISTEN, which must answer with its own JSON. Exit 0 when
# it does, 1 otherwise. The flow server is not called (the request names
# no route), so a flow server outage does not restart the proxy; the app
# logs the probe as a 404 with request id "healthcheck".
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

# A clean environment: cgi-fcgi sends every variable it has as a FastCGI
# parameter. A hung app fails the check after 5 s instead of hanging it.
answer=$(env -i REQUEST_METHOD=GET REQUEST_URI=/openova-flow-healthcheck SERVER_PROTOCOL=HTTP/1.1 \
    GATEWAY_INTERFACE=CGI/1.1 REMOTE_ADDR=127.0.0.1 HTTP_X_REQUEST_ID=healthcheck \
    timeout 5 cgi-fcgi -bind -connect "$address" </dev/null 2>/dev/null) || exit 1

case $answer in
    *'"requestId":"healthcheck"'*) exit 0 ;;
    *) exit 1 ;;
esac
