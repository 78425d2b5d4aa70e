/* metrics.c: lock-free counting (relaxed atomics: a count is a count, no
 * other memory depends on it) and the text exposition. */
#include <dirent.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/metrics.h"

typedef atomic_ullong counter;

#define STATUSES 600
#define METHODS 5
static const char *const method_labels[METHODS] = {"GET", "POST", "HEAD", "DELETE", "other"};
static const char *const route_labels[METRICS_ROUTES] = {"snapshot", "events", "stream", "purge", "health",
                                                         "ready",    "metrics", "status", "none"};
static const char *const failure_labels[METRICS_UPSTREAM_FAILURES] = {"unreachable", "timeout", "tls", "protocol",
                                                                      "too_large"};
static const char *const end_labels[METRICS_STREAM_ENDS] = {"client_gone", "upstream_ended", "upstream_failed",
                                                            "token_expired", "idle", "shutdown", "error"};
static const char *const auth_method_labels[METRICS_AUTH_METHODS] = {"remote_user", "bearer", "jwt", "none"};
static const char *const auth_outcome_labels[METRICS_AUTH_OUTCOMES] = {"accepted", "unauthorized",
                                                                       "invalid_credentials", "forbidden", "error"};
/* The routes that call the upstream: a label set of their own. */
static const enum metrics_route upstream_routes[] = {METRICS_ROUTE_SNAPSHOT, METRICS_ROUTE_EVENTS,
                                                     METRICS_ROUTE_STREAM, METRICS_ROUTE_PURGE,
                                                     METRICS_ROUTE_READY};
#define UPSTREAM_ROUTES (sizeof upstream_routes / sizeof upstream_routes[0])

/* Bucket bounds in microseconds: short requests, and streams that live for hours. */
static const long long request_bounds_us[] = {1000,   2500,    5000,    10000,   25000,    50000,   100000,
                                              250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000};
static const long long lifetime_bounds_us[] = {1000000LL,    10000000LL,   60000000LL,    300000000LL,
                                               900000000LL,  1800000000LL, 3600000000LL,  7200000000LL,
                                               14400000000LL, 43200000000LL, 86400000000LL};
#define REQUEST_BUCKETS (sizeof request_bounds_us / sizeof request_bounds_us[0])
#define LIFETIME_BUCKETS (sizeof lifetime_bounds_us / sizeof lifetime_bounds_us[0])
#define MAX_BUCKETS REQUEST_BUCKETS

struct histogram {
    counter bucket[MAX_BUCKETS]; /* not cumulative: each observation lands in one */
    counter count, sum_us;
};

struct refusal_series {
    _Atomic(const char *) code;
    counter n;
};

static struct {
    bool enabled;
    counter requests[METRICS_ROUTES][METHODS][STATUSES];
    struct histogram request_duration[METRICS_ROUTES];
    struct histogram upstream_duration[UPSTREAM_ROUTES];
    counter upstream_failures[UPSTREAM_ROUTES][METRICS_UPSTREAM_FAILURES];
    struct refusal_series refusals[METRICS_REFUSAL_CODES];
    counter refusals_other;
    counter auth[METRICS_AUTH_METHODS][METRICS_AUTH_OUTCOMES];
    counter streams_opened, stream_frames, stream_bytes;
    counter stream_ends[METRICS_STREAM_ENDS];
    struct histogram stream_lifetime;
    atomic_int workers_busy;
} m = {.enabled = true};

void metrics_enable(bool on)
{
    m.enabled = on;
}

bool metrics_enabled(void)
{
    return m.enabled;
}

static void add(counter *c, unsigned long long n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static unsigned long long get(counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void observe(struct histogram *h, const long long *bounds, size_t nbounds, long long us)
{
    if (us < 0)
        us = 0;
    size_t i = 0;
    while (i < nbounds && us > bounds[i])
        i++;
    if (i < nbounds)
        add(&h->bucket[i], 1);
    add(&h->count, 1);
    add(&h->sum_us, (unsigned long long)us);
}

static int upstream_index(enum metrics_route route)
{
    for (size_t i = 0; i < UPSTREAM_ROUTES; i++)
        if (upstream_routes[i] == route)
            return (int)i;
    return -1;
}

void metrics_request(enum metrics_route route, const char *method, int status, long long duration_us)
{
    if (!m.enabled || (unsigned)route >= METRICS_ROUTES)
        return;
    size_t mi = 0;
    while (mi < METHODS - 1 && strcmp(method, method_labels[mi]) != 0)
        mi++;
    if (status < 0 || status >= STATUSES)
        status = 0;
    add(&m.requests[route][mi][status], 1);
    observe(&m.request_duration[route], request_bounds_us, REQUEST_BUCKETS, duration_us);
}

void metrics_upstream_call(enum metrics_route route, long long duration_us)
{
    int i = upstream_index(route);
    if (m.enabled && i >= 0)
        observe(&m.upstream_duration[i], request_bounds_us, REQUEST_BUCKETS, duration_us);
}

void metrics_upstream_failure(enum metrics_route route, enum metrics_upstream_failure reason)
{
    int i = upstream_index(route);
    if (m.enabled && i >= 0 && (unsigned)reason < METRICS_UPSTREAM_FAILURES)
        add(&m.upstream_failures[i][reason], 1);
}

void metrics_refusal(const char *code)
{
    if (!m.enabled || !code)
        return;
    for (size_t i = 0; i < METRICS_REFUSAL_CODES; i++) {
        struct refusal_series *s = &m.refusals[i];
        const char *have = atomic_load(&s->code);
        /* An empty slot is claimed once; a thread that loses the race to
         * another code looks at what won and goes on. */
        if (!have && atomic_compare_exchange_strong(&s->code, &have, code))
            have = code;
        if (have && strcmp(have, code) == 0) {
            add(&s->n, 1);
            return;
        }
    }
    add(&m.refusals_other, 1);
}

void metrics_auth(enum metrics_auth_method method, enum metrics_auth_outcome outcome)
{
    if (m.enabled && (unsigned)method < METRICS_AUTH_METHODS && (unsigned)outcome < METRICS_AUTH_OUTCOMES)
        add(&m.auth[method][outcome], 1);
}

void metrics_stream_opened(void)
{
    if (m.enabled)
        add(&m.streams_opened, 1);
}

void metrics_stream_relayed(unsigned long long frames, unsigned long long bytes)
{
    if (!m.enabled)
        return;
    if (frames)
        add(&m.stream_frames, frames);
    if (bytes)
        add(&m.stream_bytes, bytes);
}

void metrics_stream_ended(enum metrics_stream_end reason, long long lifetime_ms)
{
    if (!m.enabled || (unsigned)reason >= METRICS_STREAM_ENDS)
        return;
    add(&m.stream_ends[reason], 1);
    observe(&m.stream_lifetime, lifetime_bounds_us, LIFETIME_BUCKETS, lifetime_ms * 1000);
}

void metrics_worker_busy(int delta)
{
    atomic_fetch_add_explicit(&m.workers_busy, delta, memory_order_relaxed);
}

void metrics_totals(struct metrics_totals *out)
{
    memset(out, 0, sizeof *out);
    for (size_t r = 0; r < METRICS_ROUTES; r++)
        for (size_t mi = 0; mi < METHODS; mi++)
            for (size_t s = 0; s < STATUSES; s++)
                out->requests += get(&m.requests[r][mi][s]);
    for (size_t i = 0; i < METRICS_REFUSAL_CODES; i++)
        out->refusals += get(&m.refusals[i].n);
    out->refusals += get(&m.refusals_other);
    for (size_t r = 0; r < UPSTREAM_ROUTES; r++)
        for (size_t f = 0; f < METRICS_UPSTREAM_FAILURES; f++)
            out->upstream_failures += get(&m.upstream_failures[r][f]);
    for (size_t a = 0; a < METRICS_AUTH_METHODS; a++)
        for (size_t o = METRICS_AUTH_UNAUTHORIZED; o < METRICS_AUTH_OUTCOMES; o++)
            out->auth_refused += get(&m.auth[a][o]);
    out->streams_opened = get(&m.streams_opened);
    out->stream_frames = get(&m.stream_frames);
    out->stream_bytes = get(&m.stream_bytes);
    int busy = atomic_load_explicit(&m.workers_busy, memory_order_relaxed);
    out->workers_busy = busy > 0 ? (unsigned)busy : 0;
}

/* ---- the process ---- */

static long count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static double boot_time_seconds(void)
{
    FILE *f = fopen("/proc/stat", "r");
    double btime = 0;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "btime %lf", &btime) == 1)
            break;
    if (f)
        fclose(f);
    return btime;
}

void metrics_process_read(struct metrics_process *out)
{
    memset(out, 0, sizeof *out);
    out->open_fds = count_open_fds();
    struct rlimit lim;
    out->max_fds = getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY ? (long)lim.rlim_cur : -1;
    FILE *f = fopen("/proc/self/stat", "r");
    char text[1024];
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[n] = '\0';
    /* The command name may hold spaces and parentheses: fields follow the last ')'. */
    const char *p = strrchr(text, ')');
    unsigned long utime = 0, stime = 0, vsize = 0;
    unsigned long long start = 0;
    long threads = 0, rss = 0;
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %ld %*d %llu %lu %ld",
                    &utime, &stime, &threads, &start, &vsize, &rss) == 6) {
        double ticks = (double)sysconf(_SC_CLK_TCK);
        out->cpu_seconds = (double)(utime + stime) / ticks;
        out->start_time_seconds = boot_time_seconds() + (double)start / ticks;
        out->threads = threads;
        out->virtual_bytes = vsize;
        out->resident_bytes = (unsigned long long)rss * (unsigned long long)sysconf(_SC_PAGESIZE);
    }
}

/* ---- exposition ---- */

struct out {
    FILE *f;
    bool om; /* OpenMetrics */
};

/* HELP and TYPE of a family; OpenMetrics names a counter's family without
 * its _total, and build info is its own type there. */
static void family(struct out *o, const char *name, const char *type, const char *help)
{
    char fam[128];
    snprintf(fam, sizeof fam, "%s", name);
    size_t n = strlen(fam);
    if (o->om && strcmp(type, "counter") == 0 && n > 6 && strcmp(fam + n - 6, "_total") == 0)
        fam[n - 6] = '\0';
    if (o->om && strcmp(type, "info") == 0 && n > 5 && strcmp(fam + n - 5, "_info") == 0)
        fam[n - 5] = '\0';
    if (!o->om && strcmp(type, "info") == 0)
        type = "gauge";
    fprintf(o->f, "# HELP %s %s\n# TYPE %s %s\n", fam, help, fam, type);
}

static void seconds(FILE *f, unsigned long long us)
{
    fprintf(f, "%llu.%06llu", us / 1000000, us % 1000000);
}

/* A bucket bound as a float in its shortest form, always with a point
 * ("1.0"), as OpenMetrics writes them. */
static void bound(FILE *f, long long us)
{
    char text[32];
    snprintf(text, sizeof text, "%.6g", (double)us / 1e6);
    fprintf(f, strpbrk(text, ".e") ? "%s" : "%s.0", text);
}

static void histogram(struct out *o, const char *name, const char *labels, struct histogram *h,
                      const long long *bounds, size_t nbounds)
{
    unsigned long long cumulative = 0;
    const char *sep = labels[0] ? "," : "";
    for (size_t i = 0; i < nbounds; i++) {
        cumulative += get(&h->bucket[i]);
        fprintf(o->f, "%s_bucket{%s%sle=\"", name, labels, sep);
        bound(o->f, bounds[i]);
        fprintf(o->f, "\"} %llu\n", cumulative);
    }
    unsigned long long count = get(&h->count);
    fprintf(o->f, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, count);
    fprintf(o->f, labels[0] ? "%s_sum{%s} " : "%s_sum%s ", name, labels);
    seconds(o->f, get(&h->sum_us));
    fprintf(o->f, labels[0] ? "\n%s_count{%s} %llu\n" : "\n%s_count%s %llu\n", name, labels, count);
}

static void render_requests(struct out *o)
{
    family(o, "openova_flow_requests_total", "counter", "Requests answered, by route, method and HTTP status.");
    for (size_t r = 0; r < METRICS_ROUTES; r++)
        for (size_t mi = 0; mi < METHODS; mi++)
            for (size_t s = 0; s < STATUSES; s++) {
                unsigned long long n = get(&m.requests[r][mi][s]);
                if (n)
                    fprintf(o->f, "openova_flow_requests_total{route=\"%s\",method=\"%s\",status=\"%zu\"} %llu\n",
                            route_labels[r], method_labels[mi], s, n);
            }
    family(o, "openova_flow_request_duration_seconds", "histogram",
           "Time from a request's arrival to its answer (for a stream: to its head).");
    for (size_t r = 0; r < METRICS_ROUTES; r++) {
        char labels[64];
        snprintf(labels, sizeof labels, "route=\"%s\"", route_labels[r]);
        histogram(o, "openova_flow_request_duration_seconds", labels, &m.request_duration[r], request_bounds_us,
                  REQUEST_BUCKETS);
    }
}

static void render_upstream(struct out *o, const struct metrics_gauges *g)
{
    family(o, "openova_flow_upstream_request_duration_seconds", "histogram",
           "Upstream calls by route, until the whole answer (for a stream: until its head).");
    for (size_t r = 0; r < UPSTREAM_ROUTES; r++) {
        char labels[64];
        snprintf(labels, sizeof labels, "route=\"%s\"", route_labels[upstream_routes[r]]);
        histogram(o, "openova_flow_upstream_request_duration_seconds", labels, &m.upstream_duration[r],
                  request_bounds_us, REQUEST_BUCKETS);
    }
    family(o, "openova_flow_upstream_failures_total", "counter", "Upstream calls that failed, by route and reason.");
    for (size_t r = 0; r < UPSTREAM_ROUTES; r++)
        for (size_t f = 0; f < METRICS_UPSTREAM_FAILURES; f++)
            fprintf(o->f, "openova_flow_upstream_failures_total{route=\"%s\",reason=\"%s\"} %llu\n",
                    route_labels[upstream_routes[r]], failure_labels[f], get(&m.upstream_failures[r][f]));
    family(o, "openova_flow_upstream_up", "gauge", "1 when the upstream's last health check passed, else 0.");
    if (g->upstream_up >= 0)
        fprintf(o->f, "openova_flow_upstream_up %d\n", g->upstream_up);
}

static void render_streams(struct out *o, const struct metrics_gauges *g)
{
    family(o, "openova_flow_streams_open", "gauge", "Streams open now.");
    fprintf(o->f, "openova_flow_streams_open %u\n", g->streams_open);
    family(o, "openova_flow_streams_max", "gauge", "The most streams open at once (OPENOVA_FLOW_MAX_STREAMS).");
    fprintf(o->f, "openova_flow_streams_max %u\n", g->streams_max);
    family(o, "openova_flow_fanout_subscriptions", "gauge",
           "Shared upstream streams open (OPENOVA_FLOW_FANOUT: one per flow watched).");
    fprintf(o->f, "openova_flow_fanout_subscriptions %u\n", g->fanout_subscriptions);
    family(o, "openova_flow_fanout_clients", "gauge", "Client streams attached to a shared upstream stream.");
    fprintf(o->f, "openova_flow_fanout_clients %u\n", g->fanout_clients);
    family(o, "openova_flow_streams_opened_total", "counter", "Streams handed to the stream loop.");
    fprintf(o->f, "openova_flow_streams_opened_total %llu\n", get(&m.streams_opened));
    family(o, "openova_flow_stream_frames_total", "counter", "Server-Sent Events frames relayed to clients.");
    fprintf(o->f, "openova_flow_stream_frames_total %llu\n", get(&m.stream_frames));
    family(o, "openova_flow_stream_bytes_total", "counter", "Stream body bytes relayed to clients.");
    fprintf(o->f, "openova_flow_stream_bytes_total %llu\n", get(&m.stream_bytes));
    family(o, "openova_flow_stream_ends_total", "counter", "Streams ended, by reason.");
    for (size_t e = 0; e < METRICS_STREAM_ENDS; e++)
        fprintf(o->f, "openova_flow_stream_ends_total{reason=\"%s\"} %llu\n", end_labels[e], get(&m.stream_ends[e]));
    family(o, "openova_flow_stream_duration_seconds", "histogram", "How long streams lived.");
    histogram(o, "openova_flow_stream_duration_seconds", "", &m.stream_lifetime, lifetime_bounds_us,
              LIFETIME_BUCKETS);
}

static void render_refusals_auth(struct out *o)
{
    family(o, "openova_flow_refusals_total", "counter", "Error answers the proxy gave, by their JSON error code.");
    for (size_t i = 0; i < METRICS_REFUSAL_CODES; i++) {
        const char *code = atomic_load(&m.refusals[i].code);
        if (code)
            fprintf(o->f, "openova_flow_refusals_total{code=\"%s\"} %llu\n", code, get(&m.refusals[i].n));
    }
    if (get(&m.refusals_other))
        fprintf(o->f, "openova_flow_refusals_total{code=\"other\"} %llu\n", get(&m.refusals_other));
    family(o, "openova_flow_auth_total", "counter",
           "Authentication decisions, by the method that decided (none: no method let the caller in) and outcome.");
    for (size_t a = 0; a < METRICS_AUTH_METHODS; a++)
        for (size_t oc = 0; oc < METRICS_AUTH_OUTCOMES; oc++)
            fprintf(o->f, "openova_flow_auth_total{method=\"%s\",outcome=\"%s\"} %llu\n", auth_method_labels[a],
                    auth_outcome_labels[oc], get(&m.auth[a][oc]));
}

static void render_process(struct out *o, const struct metrics_gauges *g)
{
    family(o, "openova_flow_workers", "gauge", "Worker threads for short requests.");
    fprintf(o->f, "openova_flow_workers %u\n", g->workers);
    family(o, "openova_flow_workers_busy", "gauge", "Workers answering a request now.");
    int busy = atomic_load_explicit(&m.workers_busy, memory_order_relaxed);
    fprintf(o->f, "openova_flow_workers_busy %d\n", busy > 0 ? busy : 0);
    family(o, "openova_flow_build_info", "info", "The version and the libcurl it runs with.");
    fprintf(o->f, "openova_flow_build_info{version=\"%s\",libcurl=\"%s\"} 1\n", g->version, g->libcurl);
    struct metrics_process p;
    metrics_process_read(&p);
    family(o, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
    fprintf(o->f, "process_cpu_seconds_total %.2f\n", p.cpu_seconds);
    family(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    fprintf(o->f, "process_resident_memory_bytes %llu\n", p.resident_bytes);
    family(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    fprintf(o->f, "process_virtual_memory_bytes %llu\n", p.virtual_bytes);
    family(o, "process_open_fds", "gauge", "Number of open file descriptors.");
    fprintf(o->f, "process_open_fds %ld\n", p.open_fds);
    family(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    fprintf(o->f, "process_max_fds %ld\n", p.max_fds);
    family(o, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
    fprintf(o->f, "process_start_time_seconds %.2f\n", p.start_time_seconds);
    family(o, "process_threads", "gauge", "Number of OS threads in the process.");
    fprintf(o->f, "process_threads %ld\n", p.threads);
}

char *metrics_render(const struct metrics_gauges *g, bool openmetrics, size_t *len)
{
    char *text = NULL;
    size_t size = 0;
    struct out o = {.f = open_memstream(&text, &size), .om = openmetrics};
    if (!o.f)
        return NULL;
    render_requests(&o);
    render_upstream(&o, g);
    render_streams(&o, g);
    render_refusals_auth(&o);
    render_process(&o, g);
    if (openmetrics)
        fputs("# EOF\n", o.f);
    if (fclose(o.f) != 0) {
        free(text);
        return NULL;
    }
    *len = size;
    return text;
}
