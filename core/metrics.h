/* metrics.h: the proxy's counters, gauges and histograms, and their
 * exposition in the Prometheus text format and OpenMetrics. Every label
 * value comes from a fixed set in this program (never an id, a user or a
 * header), and counting is relaxed atomic adds: no lock on the request path. */
#ifndef OPENOVA_METRICS_H
#define OPENOVA_METRICS_H

#include <stdbool.h>
#include <stddef.h>

/* The route label. */
enum metrics_route {
    METRICS_ROUTE_SNAPSHOT,
    METRICS_ROUTE_EVENTS,
    METRICS_ROUTE_STREAM,
    METRICS_ROUTE_PURGE,
    METRICS_ROUTE_HEALTH,
    METRICS_ROUTE_READY,
    METRICS_ROUTE_METRICS,
    METRICS_ROUTE_STATUS,
    METRICS_ROUTE_NONE, /* no route matched */
    METRICS_ROUTES
};

enum metrics_upstream_failure {
    METRICS_UPSTREAM_UNREACHABLE,
    METRICS_UPSTREAM_TIMEOUT,
    METRICS_UPSTREAM_TLS,
    METRICS_UPSTREAM_PROTOCOL,
    METRICS_UPSTREAM_TOO_LARGE,
    METRICS_UPSTREAM_FAILURES
};

enum metrics_stream_end {
    METRICS_END_CLIENT_GONE,
    METRICS_END_UPSTREAM_ENDED,
    METRICS_END_UPSTREAM_FAILED,
    METRICS_END_TOKEN_EXPIRED,
    METRICS_END_IDLE,
    METRICS_END_SHUTDOWN,
    METRICS_END_ERROR,
    METRICS_STREAM_ENDS
};

enum metrics_auth_method { METRICS_AUTH_REMOTE_USER, METRICS_AUTH_BEARER, METRICS_AUTH_JWT, METRICS_AUTH_NONE,
                           METRICS_AUTH_METHODS };
enum metrics_auth_outcome {
    METRICS_AUTH_ACCEPTED,
    METRICS_AUTH_UNAUTHORIZED,
    METRICS_AUTH_INVALID_CREDENTIALS,
    METRICS_AUTH_FORBIDDEN,
    METRICS_AUTH_ERROR,
    METRICS_AUTH_OUTCOMES
};

/* metrics_enable: whether anything is counted (nothing reads the counters
 * when neither the metrics nor the status page is served). Once, before
 * threads start; on by default. */
void metrics_enable(bool on);
bool metrics_enabled(void);

/* metrics_request: one answered request: its route, method ("GET"...; any
 * other is "other"), status (0: the client left before any answer; outside
 * 0..599 is counted as 0) and how long it took. */
void metrics_request(enum metrics_route route, const char *method, int status, long long duration_us);
/* metrics_upstream_call: one upstream call of route took duration_us (for a
 * stream: until its head). */
void metrics_upstream_call(enum metrics_route route, long long duration_us);
void metrics_upstream_failure(enum metrics_route route, enum metrics_upstream_failure reason);
/* metrics_refusal: an error answer the proxy gave with this JSON error
 * code. code must be a static string of this program's fixed codes; the
 * first METRICS_REFUSAL_CODES distinct codes get their own series, any
 * later one counts as "other". */
#define METRICS_REFUSAL_CODES 40
void metrics_refusal(const char *code);
void metrics_auth(enum metrics_auth_method method, enum metrics_auth_outcome outcome);
void metrics_stream_opened(void);
void metrics_stream_relayed(unsigned long long frames, unsigned long long bytes);
void metrics_stream_ended(enum metrics_stream_end reason, long long lifetime_ms);
/* metrics_worker_busy: +1 when a worker takes a request, -1 when done. */
void metrics_worker_busy(int delta);

/* What the exposition reads from the rest of the program at that moment. */
struct metrics_gauges {
    unsigned streams_open, streams_max;
    unsigned fanout_subscriptions, fanout_clients; /* fan-out's shared upstream streams and their clients */
    unsigned workers;
    int upstream_up;     /* 1, 0; -1: never checked (the series is left out) */
    const char *version; /* build info */
    const char *libcurl;
};

/* metrics_render: the exposition, Prometheus text format 0.0.4 or (when
 * openmetrics) OpenMetrics 1.0.0 ending in "# EOF". Returns a malloc'd,
 * NUL-terminated text of *len bytes the caller frees, or NULL when out of
 * memory. */
char *metrics_render(const struct metrics_gauges *g, bool openmetrics, size_t *len);

/* The totals the status page shows. */
struct metrics_totals {
    unsigned long long requests, refusals, upstream_failures, auth_refused;
    unsigned long long streams_opened, stream_frames, stream_bytes;
    unsigned workers_busy;
};
void metrics_totals(struct metrics_totals *out);

/* The process's own facts (from /proc/self), as process_* shows them. */
struct metrics_process {
    double cpu_seconds, start_time_seconds;
    unsigned long long resident_bytes, virtual_bytes;
    long open_fds, max_fds, threads;
};
/* metrics_process_read: fills out; what cannot be read is -1 or 0. */
void metrics_process_read(struct metrics_process *out);

#endif
