/* http.c: libmicrohttpd handlers of the flow server: the dispatcher alone
 * answers 404/405/400; each route has one function; answers, headers and
 * text/plain errors are the reference server's; every request is logged in
 * one line when it completes. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>

#include "http.h"
#include "message.h"
#include "route.h"

#define LOG_PATH_MAX 256
/* MHD asks a content reader for at most this much at a time */
#define SSE_BLOCK (16u * 1024u)
/* A certificate chain, a key or a CA bundle of the test's is far smaller. */
#define DS_PEM_MAX (64 * 1024)

struct ds_http {
    struct MHD_Daemon *daemon;
    struct ds_store *store;
    uint64_t heartbeat_ms;
    bool replay, strict; /* the --replay and --strict extensions */
    size_t max_body;
    bool verify_clients;      /* mutual TLS: a client without a trusted certificate gets 403 */
    char *tls_cert, *tls_key, *tls_client_ca; /* PEM texts MHD reads while it runs */
    char url[DS_HOST_MAX + 32];
};

/* One per request, from MHD's first call to the completion callback, which
 * logs and frees it. */
struct request {
    struct timespec start;
    char method[16];
    char path[LOG_PATH_MAX];
    char client[INET6_ADDRSTRLEN];
    enum ds_route_result result;
    struct ds_route_match match;
    char *body; /* bounded by the server's max_body */
    size_t len, cap;
    bool too_large;
    unsigned status; /* 0 until a response is queued */
};

/* copy_printable: a log-safe copy: control bytes (a decoded %0A) become '?'. */
static void copy_printable(char *dst, size_t dstlen, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < dstlen; i++)
        dst[i] = ((unsigned char)src[i] < 0x20 || src[i] == 0x7f) ? '?' : src[i];
    dst[i] = '\0';
}

static void client_address(struct MHD_Connection *c, char *out, size_t outlen)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, outlen, "-");
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (getnameinfo(sa, len, out, (socklen_t)outlen, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(out, outlen, "-");
}

/* body_append: keeps at most limit bytes; past that the request is marked
 * too large and the rest is read and dropped, so the client, still
 * sending, gets the 413 instead of a reset connection. */
static void body_append(struct request *rq, const char *data, size_t len, size_t limit)
{
    if (rq->too_large)
        return;
    if (len > limit - rq->len) {
        rq->too_large = true;
        free(rq->body);
        rq->body = NULL;
        rq->len = rq->cap = 0;
        return;
    }
    if (rq->len + len > rq->cap) {
        size_t cap = rq->cap ? rq->cap : 4096;
        while (cap < rq->len + len)
            cap *= 2;
        char *p = realloc(rq->body, cap);
        if (!p) {
            /* out of memory: answered 500 when the body is complete */
            rq->status = 500;
            return;
        }
        rq->body = p;
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, data, len);
    rq->len += len;
}

/* respond: the one function that queues a response with a complete body. */
static enum MHD_Result respond(struct MHD_Connection *c, struct request *rq, unsigned status, const char *type,
                               const char *body, size_t len, const char *allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO; /* out of memory: MHD closes the connection */
    if (type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    rq->status = status;
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* respond_error: the reference's errors (Go's http.Error): one line of
 * text/plain, its sentence and a newline, never sniffed as HTML. */
static enum MHD_Result respond_error(struct MHD_Connection *c, struct request *rq, unsigned status,
                                     const char *message, const char *allow)
{
    char body[512];
    int n = snprintf(body, sizeof body, "%s\n", message);
    if (n < 0 || (size_t)n >= sizeof body) {
        n = (int)sizeof body - 1;
        body[n - 1] = '\n';
    }
    /* one line: a client's text echoed in the sentence keeps no control byte */
    for (int i = 0; i < n - 1; i++)
        if ((unsigned char)body[i] < 0x20 || body[i] == 0x7f)
            body[i] = '?';
    struct MHD_Response *r = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    rq->status = status;
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* A body already in memory sent chunked, without Content-Length, as the
 * reference streams its snapshot. */
struct buffer_reader {
    char *data;
    size_t len;
};

static ssize_t buffer_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct buffer_reader *b = cls;
    if (pos >= b->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = b->len - (size_t)pos < max ? b->len - (size_t)pos : max;
    memcpy(buf, b->data + pos, n);
    return (ssize_t)n;
}

static void buffer_free(void *cls)
{
    struct buffer_reader *b = cls;
    free(b->data);
    free(b);
}

/* route_events: the body is read as JSON whatever its Content-Type says. */
static enum MHD_Result route_events(struct ds_http *h, struct MHD_Connection *c, struct request *rq)
{
    char err[256];
    struct ds_message m;
    if (rq->too_large) {
        snprintf(err, sizeof err, "request body too large: the limit is %zu bytes", h->max_body);
        return respond_error(c, rq, 413, err, NULL);
    }
    if (rq->status == 500)
        return respond_error(c, rq, 500, "out of memory", NULL);
    enum ds_err rc = ds_message_parse(rq->body ? rq->body : "", rq->len,
                                      h->strict ? DS_VALIDATE_STRICT : DS_VALIDATE_REFERENCE, &m, err, sizeof err);
    if (rc == DS_ERR_JSON || rc == DS_ERR_SCHEMA)
        return respond_error(c, rq, 400, err, NULL);
    if (rc != DS_OK)
        return respond_error(c, rq, 500, ds_strerror(rc), NULL);
    uint64_t seq = 0;
    rc = ds_store_ingest(h->store, rq->match.flow_id, &m, &seq);
    if (rc != DS_OK)
        return respond_error(c, rq, 500, ds_strerror(rc), NULL);
    char body[48];
    int n = snprintf(body, sizeof body, "{\"seq\":%" PRIu64 "}", seq);
    return respond(c, rq, 200, "application/json", body, (size_t)n, NULL);
}

static enum MHD_Result route_snapshot(struct ds_http *h, struct MHD_Connection *c, struct request *rq)
{
    char *json = NULL;
    size_t len = 0;
    enum ds_err rc = ds_store_snapshot(h->store, rq->match.flow_id, &json, &len);
    if (rc == DS_ERR_NOT_FOUND)
        return respond_error(c, rq, 404, "flow not found", NULL);
    if (rc != DS_OK)
        return respond_error(c, rq, 500, ds_strerror(rc), NULL);
    /* Go's json.Encoder ends the value with a newline */
    struct buffer_reader *b = malloc(sizeof *b);
    char *body = b ? realloc(json, len + 1) : NULL;
    if (!body) {
        free(b);
        free(json);
        return respond_error(c, rq, 500, "out of memory", NULL);
    }
    body[len] = '\n';
    *b = (struct buffer_reader){.data = body, .len = len + 1};
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SSE_BLOCK, buffer_read, b,
                                                               buffer_free);
    if (!r) {
        buffer_free(b);
        return respond_error(c, rq, 500, "out of memory", NULL);
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    rq->status = 200;
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    /* Blocking here is allowed: each connection has its own thread. */
    ssize_t n = ds_sub_read(cls, buf, max);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : n;
}

static void sse_free(void *cls)
{
    ds_sub_close(cls);
}

/* route_stream: 200 and SSE at once, also for a flow never ingested (a
 * snapshot frame of an empty flow, id 0, then live), so a browser can open
 * the page before the first message; the snapshot route alone says 404.
 * Last-Event-ID counts only with --replay: the reference ignores it.
 * The connection's thread waits inside ds_sub_read, so a client that left
 * is noticed when the next frame or heartbeat fails to go out. */
static enum MHD_Result route_stream(struct ds_http *h, struct MHD_Connection *c, struct request *rq)
{
    /* WHATWG SSE: EventSource sends the last id it saw on reconnection */
    const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
    struct ds_sub *sub = ds_sub_open(h->store, rq->match.flow_id, last, h->replay, h->heartbeat_ms);
    if (!sub)
        return respond_error(c, rq, 500, "out of memory", NULL);
    /* unknown size on HTTP/1.1: MHD sends it chunked */
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SSE_BLOCK, sse_read, sub, sse_free);
    if (!r) {
        ds_sub_close(sub);
        return respond_error(c, rq, 500, "out of memory", NULL);
    }
    /* the reference's stream headers; libmicrohttpd drops a Connection
     * header added by hand and sends its own only when asked to */
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_set_response_options(r, MHD_RF_SEND_KEEP_ALIVE_HEADER, MHD_RO_END);
    /* nginx and proxies that honour it must not buffer the stream */
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    rq->status = 200;
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r); /* MHD holds its own reference until the end */
    return ret;
}

/* Mutual TLS: whether the client showed a certificate that the client CA
 * signed (MHD asks for one when it has that CA; gnutls checks it here). */
static bool client_verified(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    unsigned status = 0;
    return ci && ci->tls_session &&
           gnutls_certificate_verify_peers2((gnutls_session_t)ci->tls_session, &status) == GNUTLS_E_SUCCESS &&
           status == 0;
}

static enum MHD_Result dispatch(struct ds_http *h, struct MHD_Connection *c, struct request *rq)
{
    static const char ok[] = "ok\n";
    char msg[LOG_PATH_MAX + 64];
    if (h->verify_clients && !client_verified(c))
        return respond_error(c, rq, 403, "a client certificate signed by FLOW_SERVER_TLS_CLIENT_CA is required", NULL);
    switch (rq->result) {
    case DS_ROUTE_NOT_FOUND:
        return respond_error(c, rq, 404, "404 page not found", NULL);
    case DS_ROUTE_BAD_METHOD:
        snprintf(msg, sizeof msg, "method not allowed: %s accepts %s only", rq->path, rq->match.entry->method);
        return respond_error(c, rq, 405, msg, rq->match.entry->method);
    case DS_ROUTE_NO_SUCH_PATH:
        snprintf(msg, sizeof msg, "method not allowed: no route for %s", rq->path);
        return respond_error(c, rq, 405, msg, NULL);
    case DS_ROUTE_BAD_FLOW_ID:
        if (h->strict)
            snprintf(msg, sizeof msg, "invalid flow id: 1 to 128 characters of A-Z a-z 0-9 . _ ~ - (not . or ..)");
        else
            snprintf(msg, sizeof msg, "invalid flow id: longer than %d bytes", DS_FLOW_ID_MAX);
        return respond_error(c, rq, 400, msg, NULL);
    case DS_ROUTE_OK:
        break;
    }
    switch (rq->match.entry->route) {
    case DS_ROUTE_EVENTS:
        return route_events(h, c, rq);
    case DS_ROUTE_SNAPSHOT:
        return route_snapshot(h, c, rq);
    case DS_ROUTE_STREAM:
        return route_stream(h, c, rq);
    case DS_ROUTE_PURGE:
        /* idempotent: an unknown flow is purged already */
        ds_store_purge(h->store, rq->match.flow_id);
        return respond(c, rq, 204, NULL, "", 0, NULL);
    case DS_ROUTE_HEALTHZ:
    case DS_ROUTE_READYZ:
        return respond(c, rq, 200, "text/plain; charset=utf-8", ok, sizeof ok - 1, NULL);
    }
    return respond_error(c, rq, 500, "unhandled route", NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct ds_http *h = cls;
    struct request *rq = *con_cls;
    (void)version;
    if (!rq) {
        /* first call: the head is in, the body (if any) is not */
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &rq->start);
        copy_printable(rq->method, sizeof rq->method, method);
        copy_printable(rq->path, sizeof rq->path, url);
        client_address(c, rq->client, sizeof rq->client);
        rq->result = ds_route_match(method, url, h->strict, &rq->match);
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size) {
        /* only the events route reads its body; others drop theirs */
        if (rq->result == DS_ROUTE_OK && rq->match.entry->route == DS_ROUTE_EVENTS)
            body_append(rq, upload_data, *upload_data_size, h->max_body);
        *upload_data_size = 0;
        return MHD_YES;
    }
    return dispatch(h, c, rq);
}

static const char *termination(enum MHD_RequestTerminationCode toe)
{
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK: return NULL;
    case MHD_REQUEST_TERMINATED_WITH_ERROR: return "error";
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED: return "timeout";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN: return "shutdown";
    case MHD_REQUEST_TERMINATED_READ_ERROR: return "read error";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT: return "client gone";
    }
    return "unknown";
}

/* on_completed: the request's one log line, then its memory. stdio holds
 * stderr's lock for a whole fprintf, so lines from threads never interleave. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct request *rq = *con_cls;
    (void)cls;
    (void)c;
    if (!rq)
        return;
    struct timespec now, wall;
    clock_gettime(CLOCK_MONOTONIC, &now);
    clock_gettime(CLOCK_REALTIME, &wall);
    long ms = (long)(now.tv_sec - rq->start.tv_sec) * 1000 + (now.tv_nsec - rq->start.tv_nsec) / 1000000;
    struct tm tm;
    char when[32] = "-";
    if (gmtime_r(&wall.tv_sec, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    char status[12] = "-";
    if (rq->status)
        snprintf(status, sizeof status, "%u", rq->status);
    const char *how = termination(toe);
    fprintf(stderr, "%s.%03ldZ %s \"%s %s\" %s %ldms%s%s%s\n", when, wall.tv_nsec / 1000000, rq->client, rq->method,
            rq->path, status, ms, how ? " (" : "", how ? how : "", how ? ")" : "");
    free(rq->body);
    free(rq);
    *con_cls = NULL;
}

/* A whole PEM file, NUL-terminated; NULL with the reason in err. */
static char *read_pem(const char *name, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *text = NULL;
    size_t len = 0;
    if (f) {
        text = malloc(DS_PEM_MAX + 1);
        len = text ? fread(text, 1, DS_PEM_MAX + 1, f) : 0;
        fclose(f);
    }
    if (!text || len == 0 || len > DS_PEM_MAX) {
        snprintf(err, errlen, "%s: cannot read %s (or empty, or over %d bytes)", name, path, DS_PEM_MAX);
        free(text);
        return NULL;
    }
    text[len] = '\0';
    return text;
}

static void free_tls(struct ds_http *h)
{
    free(h->tls_cert);
    free(h->tls_key);
    free(h->tls_client_ca);
}

/* HTTPS from cfg's files: MHD's flags and the PEM texts in h. */
static int load_tls(struct ds_http *h, const struct ds_config *cfg, unsigned *flags, char *err, size_t errlen)
{
    if (!cfg->tls_cert[0])
        return 0;
    if (!(h->tls_cert = read_pem("FLOW_SERVER_TLS_CERT", cfg->tls_cert, err, errlen)) ||
        !(h->tls_key = read_pem("FLOW_SERVER_TLS_KEY", cfg->tls_key, err, errlen)) ||
        (cfg->tls_client_ca[0] &&
         !(h->tls_client_ca = read_pem("FLOW_SERVER_TLS_CLIENT_CA", cfg->tls_client_ca, err, errlen))))
        return -1;
    h->verify_clients = h->tls_client_ca != NULL;
    *flags |= MHD_USE_TLS;
    return 0;
}

struct ds_http *ds_http_start(const struct ds_config *cfg, struct ds_store *store, char *err, size_t errlen)
{
    struct ds_http *h = calloc(1, sizeof *h);
    struct addrinfo *ai = NULL;
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->store = store;
    h->heartbeat_ms = cfg->heartbeat_ms;
    h->replay = cfg->replay;
    h->strict = cfg->strict;
    h->max_body = cfg->max_body ? cfg->max_body : DS_BODY_DEFAULT;
    unsigned tls_flags = 0;
    if (load_tls(h, cfg, &tls_flags, err, errlen) != 0)
        goto fail;

    char port[8];
    snprintf(port, sizeof port, "%u", cfg->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    if (!cfg->host[0]) {
        /* ":PORT": every IPv4 interface */
        hints.ai_family = AF_INET;
        hints.ai_flags |= AI_PASSIVE;
    }
    int gai = getaddrinfo(cfg->host[0] ? cfg->host : NULL, port, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, errlen, "FLOW_SERVER_LISTEN_ADDR: cannot resolve \"%s\": %s", cfg->host, gai_strerror(gai));
        goto fail;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
                     MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0) | tls_flags;
    /* No idle timeout shorter than a few heartbeats: a stream's thread may
     * wait a whole heartbeat inside the content reader. */
    uint64_t timeout_s = cfg->heartbeat_ms / 1000 * 3 + 1;
    if (timeout_s < 120)
        timeout_s = 120;
    /* The array ends at its first MHD_OPTION_END: plain HTTP passes none of
     * these, HTTPS without a client CA stops after the key. */
    struct MHD_OptionItem tls_options[] = {
        {h->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, h->tls_cert},
        {h->tls_key ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, h->tls_key},
        {h->tls_client_ca ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, h->tls_client_ca},
        {MHD_OPTION_END, 0, NULL},
    };
    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned int)timeout_s, MHD_OPTION_ARRAY, tls_options, MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(err, errlen, "FLOW_SERVER_LISTEN_ADDR: cannot listen on %s:%u (in use, or not an address of this host)",
                 cfg->host, cfg->port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    char host[INET6_ADDRSTRLEN] = "0.0.0.0";
    getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, NULL, 0, NI_NUMERICHOST);
    snprintf(h->url, sizeof h->url, ai->ai_family == AF_INET6 ? "%s://[%s]:%u" : "%s://%s:%u",
             h->tls_cert ? "https" : "http", host, di ? (unsigned)di->port : cfg->port);
    freeaddrinfo(ai);
    return h;
fail:
    if (ai)
        freeaddrinfo(ai);
    free_tls(h);
    free(h);
    return NULL;
}

const char *ds_http_url(const struct ds_http *h)
{
    return h->url;
}

void ds_http_stop(struct ds_http *h)
{
    if (!h)
        return;
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    free_tls(h);
    free(h);
}
