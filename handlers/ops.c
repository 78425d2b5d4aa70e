/* ops.c: liveness, readiness, metrics and the status page. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "fcgi/response.h"
#include "handlers/dispatch.h"
#include "handlers/ops.h"
#include "handlers/stream_loop.h"
#include "handlers/upstream.h"
#include "handlers/upstreams.h"

/* The last health check of the upstream. */
struct health {
    bool ok;
    long long checked_ms; /* monotonic; 0: never checked */
    time_t checked_at;    /* the same moment on the wall clock, for people */
    char reason[160];     /* why the last check failed */
};

struct ops {
    const struct proxy_config *cfg;
    const struct upstreams *upstreams;
    const char *version, *libcurl;
    time_t started_at;
    long long started_ms;
    atomic_bool checking;  /* one check at a time; the others use the last result */
    pthread_mutex_t lock;  /* guards last */
    struct health last;
};

struct ops *ops_new(const struct proxy_config *cfg, const struct upstreams *upstreams, const char *version,
                    const char *libcurl)
{
    struct ops *ops = calloc(1, sizeof *ops);
    if (!ops)
        return NULL;
    ops->cfg = cfg;
    ops->upstreams = upstreams;
    ops->version = version;
    ops->libcurl = libcurl;
    ops->started_at = time(NULL);
    ops->started_ms = clock_ms();
    pthread_mutex_init(&ops->lock, NULL);
    return ops;
}

void ops_free(struct ops *ops)
{
    if (!ops)
        return;
    pthread_mutex_destroy(&ops->lock);
    free(ops);
}

enum ops_endpoint ops_match(const struct proxy_config *cfg, const char *request_uri)
{
    if (!request_uri)
        return OPS_NONE;
    size_t len = strcspn(request_uri, "?");
    const struct {
        const char *path;
        enum ops_endpoint endpoint;
    } paths[] = {{cfg->health_path, OPS_HEALTH},
                 {cfg->ready_path, OPS_READY},
                 {cfg->metrics_path, OPS_METRICS},
                 {cfg->status_path, OPS_STATUS}};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (paths[i].path && strlen(paths[i].path) == len && strncmp(paths[i].path, request_uri, len) == 0)
            return paths[i].endpoint;
    return OPS_NONE;
}

/* ---- the health check ---- */

static struct health last_health(struct ops *ops)
{
    pthread_mutex_lock(&ops->lock);
    struct health h = ops->last;
    pthread_mutex_unlock(&ops->lock);
    return h;
}

/* A change of readiness is worth a line; the same result again is not. */
static void log_change(const struct health *before, const struct health *now, const char *what)
{
    if (now->ok && (!before->checked_ms || !before->ok))
        proxy_log(PROXY_LOG_INFO, NULL, "%s check passed: ready", what);
    else if (!now->ok && (!before->checked_ms || before->ok))
        proxy_log(PROXY_LOG_WARN, NULL, "%s check failed: %s; not ready", what, now->reason);
}

/* The console has no one flow server: each deployment has its own, which
 * may be down without the proxy being unable to serve the others. Its
 * readiness is the process's own: the records directory is there. */
static void check_records(struct ops *ops, struct health *now)
{
    now->ok = upstreams_records_present(ops->upstreams);
    if (!now->ok)
        snprintf(now->reason, sizeof now->reason, "the records directory %s is gone", ops->cfg->deployments_dir);
}

static void check_upstream(struct flow_request *req, struct health *now)
{
    long status = 0;
    enum proxy_err err = upstream_probe(req->upstream, req, METRICS_ROUTE_READY, "/healthz", OPS_HEALTH_TIMEOUT_MS,
                                        &status, now->reason, sizeof now->reason);
    now->ok = err == PROXY_OK && status >= 200 && status < 300;
    if (err == PROXY_OK && !now->ok)
        snprintf(now->reason, sizeof now->reason, "GET /healthz answered %ld", status);
}

/* Checks again when the last result is too old and no other worker is at
 * it; the lock is held only to publish. */
static void refresh_health(struct ops *ops, struct flow_request *req)
{
    if (!req->upstream)
        return;
    struct health before = last_health(ops);
    if (before.checked_ms && clock_ms() - before.checked_ms < OPS_HEALTH_CACHE_MS)
        return;
    if (atomic_exchange(&ops->checking, true))
        return;
    struct health now = {0};
    bool console = upstreams_per_deployment(ops->upstreams);
    if (console)
        check_records(ops, &now);
    else
        check_upstream(req, &now);
    now.checked_ms = clock_ms();
    now.checked_at = time(NULL);
    pthread_mutex_lock(&ops->lock);
    ops->last = now;
    pthread_mutex_unlock(&ops->lock);
    atomic_store(&ops->checking, false);
    log_change(&before, &now, console ? "records directory" : "upstream health");
}

/* The upstream as the status page names it: the console's template. */
static const char *upstream_text(const struct ops *ops)
{
    return ops->cfg->upstream_mode == UPSTREAM_PER_DEPLOYMENT ? ops->cfg->upstream_template : ops->cfg->upstream_shown;
}

/* ---- answers ---- */

static void answer(struct flow_request *req, int status, const char *content_type, const char *body, size_t len)
{
    char lines[256];
    snprintf(lines, sizeof lines, "Content-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n",
             content_type, len);
    if (fcgi_response_head(req->fcgi, status, lines, strlen(lines)) == PROXY_OK)
        fcgi_response_write(req->fcgi, body, len);
}

static void answer_json(struct flow_request *req, int status, json_object *o)
{
    const char *text = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
                         : NULL;
    if (text)
        answer(req, status, "application/json", text, strlen(text));
    else
        fcgi_response_fail(req->fcgi, PROXY_ERR_NOMEM);
    json_object_put(o);
}

static void serve_health(struct flow_request *req)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string("ok"));
    answer_json(req, 200, o);
}

static void serve_ready(struct ops *ops, struct flow_request *req)
{
    refresh_health(ops, req);
    struct health h = last_health(ops);
    if (!h.ok) {
        /* The reason stays in the log and the status page: readiness is
         * open to anyone who reaches it. */
        fcgi_response_error(req->fcgi, 503, "not_ready",
                            h.checked_ms ? "The flow server does not pass its health check."
                                         : "The flow server has not been checked yet; retry shortly.",
                            "Retry-After: 2\r\n");
        return;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string("ready"));
    answer_json(req, 200, o);
}

static bool allowed(const struct ops *ops, struct flow_request *req)
{
    if (cidr_list_match(&ops->cfg->metrics_allow, req->fcgi->remote_addr))
        return true;
    fcgi_response_error(req->fcgi, 403, "forbidden", "This address may not read the metrics or the status.", NULL);
    return false;
}

static void serve_metrics(struct ops *ops, struct flow_request *req)
{
    refresh_health(ops, req);
    struct health h = last_health(ops);
    struct metrics_gauges g = {
        .streams_open = stream_loop_open_streams(req->streams),
        .streams_max = ops->cfg->max_streams,
        .workers = ops->cfg->workers,
        .upstream_up = h.checked_ms ? h.ok : -1,
        .version = ops->version,
        .libcurl = ops->libcurl,
    };
    stream_loop_fanout_counts(req->streams, &g.fanout_subscriptions, &g.fanout_clients);
    const char *accept = req->fcgi->accept;
    bool openmetrics = accept && strstr(accept, "application/openmetrics-text");
    size_t len = 0;
    char *text = metrics_render(&g, openmetrics, &len);
    if (!text) {
        fcgi_response_fail(req->fcgi, PROXY_ERR_NOMEM);
        return;
    }
    answer(req, 200,
           openmetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                       : "text/plain; version=0.0.4; charset=utf-8",
           text, len);
    free(text);
}

/* ---- the status page ---- */

struct status_facts {
    struct metrics_totals totals;
    struct health health;
    unsigned streams_open;
    long long oldest_stream_s; /* -1: none open */
    long long uptime_s;
    char started[32], checked[32];
};

static void wall_text(time_t t, char *out, size_t outlen)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void gather(struct ops *ops, struct flow_request *req, struct status_facts *f)
{
    refresh_health(ops, req);
    metrics_totals(&f->totals);
    f->health = last_health(ops);
    f->streams_open = stream_loop_open_streams(req->streams);
    long long oldest_ms = stream_loop_oldest_age_ms(req->streams);
    f->oldest_stream_s = oldest_ms < 0 ? -1 : oldest_ms / 1000;
    f->uptime_s = (clock_ms() - ops->started_ms) / 1000;
    wall_text(ops->started_at, f->started, sizeof f->started);
    if (f->health.checked_ms)
        wall_text(f->health.checked_at, f->checked, sizeof f->checked);
    else
        snprintf(f->checked, sizeof f->checked, "never");
}

static json_object *number(long long n)
{
    return json_object_new_int64(n);
}

static json_object *status_json(const struct ops *ops, const struct status_facts *f)
{
    const struct metrics_totals *t = &f->totals;
    json_object *o = json_object_new_object(), *w = json_object_new_object(), *s = json_object_new_object(),
                *u = json_object_new_object(), *r = json_object_new_object();
    json_object_object_add(o, "version", json_object_new_string(ops->version));
    json_object_object_add(o, "pid", number(getpid()));
    json_object_object_add(o, "startTime", json_object_new_string(f->started));
    json_object_object_add(o, "uptimeSeconds", number(f->uptime_s));
    json_object_object_add(w, "total", number(ops->cfg->workers));
    json_object_object_add(w, "busy", number(t->workers_busy));
    json_object_object_add(w, "idle", number(ops->cfg->workers > t->workers_busy ? ops->cfg->workers - t->workers_busy : 0));
    json_object_object_add(o, "workers", w);
    json_object_object_add(s, "open", number(f->streams_open));
    json_object_object_add(s, "max", number(ops->cfg->max_streams));
    json_object_object_add(s, "oldestSeconds", f->oldest_stream_s < 0 ? NULL : number(f->oldest_stream_s));
    json_object_object_add(s, "opened", number((long long)t->streams_opened));
    json_object_object_add(s, "frames", number((long long)t->stream_frames));
    json_object_object_add(s, "bytes", number((long long)t->stream_bytes));
    json_object_object_add(o, "streams", s);
    json_object_object_add(u, "url", json_object_new_string(upstream_text(ops)));
    json_object_object_add(u, "healthy", f->health.checked_ms ? json_object_new_boolean(f->health.ok) : NULL);
    json_object_object_add(u, "lastCheck", f->health.checked_ms ? json_object_new_string(f->checked) : NULL);
    json_object_object_add(u, "lastError", f->health.checked_ms && !f->health.ok
                                               ? json_object_new_string(f->health.reason) : NULL);
    json_object_object_add(o, "upstream", u);
    json_object_object_add(r, "total", number((long long)t->requests));
    json_object_object_add(r, "refused", number((long long)t->refusals));
    json_object_object_add(r, "upstreamFailures", number((long long)t->upstream_failures));
    json_object_object_add(r, "authRefused", number((long long)t->auth_refused));
    json_object_object_add(o, "requests", r);
    return o;
}

/* php-fpm's plain form: "name: value", aligned, one per line. */
static char *status_text(const struct ops *ops, const struct status_facts *f, size_t *len)
{
    const struct metrics_totals *t = &f->totals;
    char *text = NULL;
    FILE *out = open_memstream(&text, len);
    if (!out)
        return NULL;
    fprintf(out, "version:               %s\npid:                   %ld\nstart time:            %s\n", ops->version,
            (long)getpid(), f->started);
    unsigned idle = ops->cfg->workers > t->workers_busy ? ops->cfg->workers - t->workers_busy : 0;
    fprintf(out, "uptime seconds:        %lld\nworkers:               %u\nbusy workers:          %u\n", f->uptime_s,
            ops->cfg->workers, t->workers_busy);
    fprintf(out, "idle workers:          %u\n", idle);
    fprintf(out, "open streams:          %u\nmax streams:           %u\n", f->streams_open, ops->cfg->max_streams);
    if (f->oldest_stream_s >= 0)
        fprintf(out, "oldest stream seconds: %lld\n", f->oldest_stream_s);
    else
        fprintf(out, "oldest stream seconds: -\n");
    fprintf(out, "streams opened:        %llu\nstream frames:         %llu\nstream bytes:          %llu\n",
            t->streams_opened, t->stream_frames, t->stream_bytes);
    fprintf(out, "requests:              %llu\nrefusals:              %llu\nupstream failures:     %llu\n",
            t->requests, t->refusals, t->upstream_failures);
    fprintf(out, "auth refusals:         %llu\nupstream:              %s\n", t->auth_refused, upstream_text(ops));
    fprintf(out, "upstream healthy:      %s\nupstream last check:   %s\n",
            !f->health.checked_ms ? "unknown" : f->health.ok ? "yes" : "no", f->checked);
    fprintf(out, "upstream last error:   %s\n", f->health.checked_ms && !f->health.ok ? f->health.reason : "-");
    if (fclose(out) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* JSON for ?json, ?format=json or an Accept of application/json; the
 * plain form for a person at a terminal otherwise. */
static bool wants_json(const struct fcgi_request *f)
{
    const char *query = f->request_uri ? strchr(f->request_uri, '?') : NULL;
    if (query && (strstr(query, "json") != NULL))
        return true;
    return f->accept && strstr(f->accept, "application/json") && !strstr(f->accept, "text/plain");
}

static void serve_status(struct ops *ops, struct flow_request *req)
{
    struct status_facts f;
    gather(ops, req, &f);
    if (wants_json(req->fcgi)) {
        answer_json(req, 200, status_json(ops, &f));
        return;
    }
    size_t len = 0;
    char *text = status_text(ops, &f, &len);
    if (text)
        answer(req, 200, "text/plain; charset=utf-8", text, len);
    else
        fcgi_response_fail(req->fcgi, PROXY_ERR_NOMEM);
    free(text);
}

void ops_serve(struct ops *ops, struct flow_request *req, enum ops_endpoint endpoint)
{
    static const enum metrics_route labels[] = {[OPS_NONE] = METRICS_ROUTE_NONE,
                                                [OPS_HEALTH] = METRICS_ROUTE_HEALTH,
                                                [OPS_READY] = METRICS_ROUTE_READY,
                                                [OPS_METRICS] = METRICS_ROUTE_METRICS,
                                                [OPS_STATUS] = METRICS_ROUTE_STATUS};
    req->label = labels[endpoint];
    const char *method = req->fcgi->method;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        const struct dispatch_refusal *r = dispatch_route_refusal(ROUTE_BAD_METHOD);
        fcgi_response_error(req->fcgi, r->status, r->code, r->message, "Allow: GET, HEAD\r\n");
        return;
    }
    if (endpoint == OPS_HEALTH)
        serve_health(req);
    else if (endpoint == OPS_READY)
        serve_ready(ops, req);
    else if (endpoint == OPS_METRICS && allowed(ops, req))
        serve_metrics(ops, req);
    else if (endpoint == OPS_STATUS && allowed(ops, req))
        serve_status(ops, req);
}
