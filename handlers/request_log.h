/* request_log.h: the one line each request leaves in the log and the
 * counts it adds to the metrics, for the dispatcher and the stream loop
 * alike. */
#ifndef OPENOVA_REQUEST_LOG_H
#define OPENOVA_REQUEST_LOG_H

#include "core/log.h"
#include "handlers/handlers.h"

/* What the line says beyond the request itself. */
struct request_log_extra {
    const char *msg;        /* "request", "stream open", "stream end" */
    const char *end;        /* how a stream ended, or NULL */
    long long duration_us;  /* counted as the request's duration; < 0: the time since it arrived */
};

/* request_log_level: error for a 5xx, warn for any other error answer the
 * proxy gave itself, else info; quiet (debug) for the operations
 * endpoints' successes, which probes and scrapers call every few seconds. */
enum proxy_log_level request_log_level(const struct flow_request *req);

/* request_log: writes the request's line (time, level, rid, client, user,
 * auth, method, route, id, status, bytes, duration_ms, upstream_ms, end,
 * error) at level. */
void request_log(const struct flow_request *req, enum proxy_log_level level, const struct request_log_extra *x);

/* request_count: adds the request to the metrics: by route, method and
 * status, its duration, and the code of the error answer the proxy gave
 * (if it gave one) among the refusals. */
void request_count(const struct flow_request *req, long long duration_us);

#endif
