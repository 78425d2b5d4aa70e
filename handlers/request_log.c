/* request_log.c: a request's log line and its counts. */
#include "fcgi/request.h"
#include "handlers/request_log.h"

static const char *const route_names[METRICS_ROUTES] = {
    [METRICS_ROUTE_SNAPSHOT] = "snapshot", [METRICS_ROUTE_EVENTS] = "events", [METRICS_ROUTE_STREAM] = "stream",
    [METRICS_ROUTE_PURGE] = "purge",
    [METRICS_ROUTE_HEALTH] = "health",     [METRICS_ROUTE_READY] = "ready",   [METRICS_ROUTE_METRICS] = "metrics",
    [METRICS_ROUTE_STATUS] = "status",     [METRICS_ROUTE_NONE] = "none"};

static bool operations(enum metrics_route label)
{
    return label == METRICS_ROUTE_HEALTH || label == METRICS_ROUTE_READY || label == METRICS_ROUTE_METRICS ||
           label == METRICS_ROUTE_STATUS;
}

enum proxy_log_level request_log_level(const struct flow_request *req)
{
    const struct fcgi_response *out = &req->fcgi->out;
    if (out->status >= 500 && req->label != METRICS_ROUTE_READY)
        return PROXY_LOG_ERROR;
    /* A probe's answer, "not ready" too, is quiet: a failing upstream is
     * logged once, when readiness changes. A refusal is not. */
    if (operations(req->label) && (out->status < 400 || (req->label == METRICS_ROUTE_READY && out->status == 503)))
        return PROXY_LOG_DEBUG;
    return out->error_code ? PROXY_LOG_WARN : PROXY_LOG_INFO;
}

void request_log(const struct flow_request *req, enum proxy_log_level level, const struct request_log_extra *x)
{
    if (!proxy_log_enabled(level))
        return;
    const struct fcgi_request *f = req->fcgi;
    long long duration_us = x->duration_us >= 0 ? x->duration_us : fcgi_request_elapsed_us(f);
    struct log_field fields[] = {
        LOG_TEXT("client", f->remote_addr),
        LOG_TEXT("user", req->user),
        LOG_TEXT("auth", req->auth_method),
        LOG_TEXT("method", f->method[0] ? f->method : "-"),
        LOG_TEXT("route", (unsigned)req->label < METRICS_ROUTES ? route_names[req->label] : "none"),
        LOG_TEXT("id", req->id[0] ? req->id : NULL),
        /* The console's: which Sovereign the deployment went to. */
        LOG_TEXT("upstream", req->upstream_url_owned),
        LOG_NUMBER("status", f->out.head_sent ? f->out.status : 0),
        LOG_NUMBER("bytes", f->out.bytes_out),
        LOG_NUMBER("duration_ms", duration_us / 1000),
        /* Left out when no upstream call was made. */
        {.key = "upstream_ms", .number = req->upstream_us / 1000, .is_number = req->upstream_us >= 0},
        LOG_TEXT("end", x->end),
        LOG_TEXT("error", f->out.error_code),
    };
    proxy_log_fields(level, f->request_id, x->msg, fields, sizeof fields / sizeof fields[0]);
}

void request_count(const struct flow_request *req, long long duration_us)
{
    const struct fcgi_request *f = req->fcgi;
    metrics_request(req->label, f->method, f->out.head_sent ? f->out.status : 0, duration_us);
    /* A response cut after its head carries the code for the log, but the
     * client got no error answer of the proxy's. */
    if (f->out.error_code && !f->out.cut)
        metrics_refusal(f->out.error_code);
}
