/* dispatch.h: the front of the flow routes: routing, the request checks,
 * authentication, then the route's handler; and the request's log line. */
#ifndef OPENOVA_DISPATCH_H
#define OPENOVA_DISPATCH_H

#include "core/config.h"
#include "fcgi/request.h"
#include "handlers/route.h"

struct auth;
struct ops;
struct stream_loop;
struct upstream_client;
struct upstreams;

/* What every request of the flow routes shares; read-only while serving. */
struct flow_app {
    const struct proxy_config *cfg;
    struct auth *auth;
    struct upstreams *upstreams; /* where each deployment's calls go */
    struct stream_loop *streams;
    struct ops *ops;          /* the operations endpoints' shared state */
};

/* A refusal the dispatcher answers itself. */
struct dispatch_refusal {
    int status;
    const char *code;
    const char *message;
};

/* dispatch_route_refusal: the answer to a route result other than
 * ROUTE_OK (NULL for ROUTE_OK). Pure. */
const struct dispatch_refusal *dispatch_route_refusal(enum route_result result);

/* dispatch: answers one loaded request: 431 for oversized headers, an
 * operations endpoint (handlers/ops.h) at its exact path, the
 * route's refusal (404, 405 with Allow, 414), then authentication (401,
 * 403), the id (400) and the parameters the handler relies on (400), the
 * deployment's upstream (the console: 404 without a record, 502 for a bad
 * one), then the handler, with upstream as the worker's client. The only place that
 * answers these. Logs the request's line, unless a stream took the
 * request over (the stream logs when it ends). */
void dispatch(const struct flow_app *app, struct upstream_client *upstream, struct fcgi_request *fcgi);

#endif
