/* handlers.h: a request to the flow routes as the handlers see it, and one
 * handler per route, one signature. The dispatcher has matched the route,
 * checked the method, the id, the caller and the request's parameters
 * (fcgi/request.h checked them when the request was read), so handlers
 * trust all of that. Each answers completely (or hands the request on, for
 * streams) and returns the outcome for the log. */
#ifndef OPENOVA_HANDLERS_H
#define OPENOVA_HANDLERS_H

#include <time.h>

#include "core/config.h"
#include "core/error.h"
#include "core/metrics.h"
#include "fcgi/request.h"
#include "handlers/route.h"

struct auth;
struct stream_loop;
struct upstream_client;
struct upstreams;

struct flow_request {
    struct fcgi_request *fcgi;        /* the transport's request and response state */
    const struct proxy_config *cfg;
    struct upstream_client *upstream; /* the worker's own, reused */
    struct upstreams *upstreams;      /* shared, thread-safe: where calls go, what they share */
    const char *upstream_url;         /* the deployment's upstream, once dispatched: cfg's or upstream_url_owned */
    char *upstream_url_owned;         /* the console's per-deployment URL (owned), or NULL */
    struct stream_loop *streams;
    struct auth *auth;                /* shared, thread-safe */
    char *user;                       /* the authenticated user (owned), NULL for none */
    time_t credential_expires;        /* when the caller's credential ends (a stream ends then); 0: never */
    const char *auth_method;          /* static: who decided ("remote-user", "bearer", "jwt", "none"); NULL: not asked */
    const struct route *route;        /* NULL when no flow route matched */
    enum metrics_route label;         /* the route as the log line and the metrics name it */
    long long upstream_us;            /* how long the upstream call took (a stream: to its head); -1: none */
    char id[ROUTE_ID_MAX + 1];        /* the deployment id, valid once routed */
};

/* GET {base}/{id}/snapshot: relayed verbatim (headers filtered). */
enum proxy_err handle_snapshot(struct flow_request *req);

/* POST {base}/{id}/events: the body, byte for byte, with its Content-Type. */
enum proxy_err handle_events(struct flow_request *req);

/* GET {base}/{id}/stream: detaches the FastCGI connection from libfcgi and
 * hands it to the stream loop, which answers and logs it from then on
 * (req->fcgi->fcgx is NULL afterwards). */
enum proxy_err handle_stream(struct flow_request *req);

/* DELETE {base}/{id}: the flow server's purge, DELETE /v1/flows/{id}
 * (a route only with OPENOVA_FLOW_AUTH_DELETE). */
enum proxy_err handle_purge(struct flow_request *req);

#endif
