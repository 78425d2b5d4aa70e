/* upstream.c: every libcurl detail of talking to the flow server. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "core/clock.h"
#include "core/log.h"
#include "fcgi/response.h"
#include "handlers/handlers.h"
#include "handlers/upstream.h"
#include "handlers/upstreams.h"

static atomic_bool abort_all_transfers;

int upstream_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void upstream_global_cleanup(void)
{
    curl_global_cleanup();
}

void upstream_abort_all(void)
{
    atomic_store(&abort_all_transfers, true);
}

/* ---- response header filtering (pure) ---- */

/* RFC 9110 7.6.1: hop-by-hop fields, never forwarded by a proxy. */
static const char *const hop_by_hop[] = {
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
    "TE", "Trailer", "Transfer-Encoding", "Upgrade", NULL,
};

/* Fields the flow server has no business sending through the proxy, each
 * for its reason (SECURITY.md lists them):
 * - a web server acts on them when a FastCGI app sends them (CGI Status,
 *   lighttpd/Apache X-Sendfile, nginx X-Accel-*, lighttpd X-LIGHTTPD-*): the
 *   upstream must not steer our web server;
 * - they speak for the whole origin the console is served from, not for one
 *   answer: cookies (Set-Cookie, Set-Cookie2), CORS (Access-Control-*,
 *   Timing-Allow-Origin: with JWTs in a cookie, a reflecting upstream would
 *   make snapshots readable cross-origin), transport policy
 *   (Strict-Transport-Security, Expect-CT, Public-Key-Pins*, Alt-Svc),
 *   Clear-Site-Data, Refresh (a redirect by another name), and
 *   WWW-Authenticate (a browser would prompt for the origin's credentials);
 * - X-Request-ID: the proxy sets its own. */
static const char *const never_relayed[] = {
    "Set-Cookie", "Set-Cookie2", "Status", "X-Sendfile", "X-Sendfile2", "X-Request-ID", "Timing-Allow-Origin",
    "Strict-Transport-Security", "Expect-CT", "Public-Key-Pins", "Public-Key-Pins-Report-Only", "Alt-Svc",
    "Clear-Site-Data", "Refresh", "WWW-Authenticate", NULL,
};
static const char *const never_relayed_prefixes[] = {"X-Accel-", "X-LIGHTTPD-", "Access-Control-", NULL};
static const char *const framing_length[] = {"Content-Length", NULL};

static bool is_tchar(unsigned char c)
{
    /* strchr() also finds the terminating NUL, so a NUL must be ruled out first. */
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

static bool name_in(const char *name, size_t len, const char *const *list)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strlen(list[i]) == len && strncasecmp(list[i], name, len) == 0)
            return true;
    return false;
}

static bool name_has_prefix(const char *name, size_t len, const char *const *prefixes)
{
    for (size_t i = 0; prefixes[i]; i++) {
        size_t n = strlen(prefixes[i]);
        if (len >= n && strncasecmp(prefixes[i], name, n) == 0)
            return true;
    }
    return false;
}

struct header_line {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
    bool valid;
};

/* Splits the next line of raw at *pos; false at the end. */
static bool next_header_line(const char *raw, size_t len, size_t *pos, struct header_line *h)
{
    if (*pos >= len)
        return false;
    const char *start = raw + *pos;
    const char *nl = memchr(start, '\n', len - *pos);
    size_t line_len = nl ? (size_t)(nl - start) : len - *pos;
    *pos += line_len + (nl ? 1 : 0);
    if (line_len && start[line_len - 1] == '\r')
        line_len--;

    memset(h, 0, sizeof *h);
    size_t i = 0;
    while (i < line_len && is_tchar((unsigned char)start[i]))
        i++;
    if (i == 0 || i >= line_len || start[i] != ':')
        return true; /* empty, obs-fold continuation or junk: invalid */
    h->name = start;
    h->name_len = i;
    size_t v = i + 1, end = line_len;
    while (v < end && (start[v] == ' ' || start[v] == '\t'))
        v++;
    while (end > v && (start[end - 1] == ' ' || start[end - 1] == '\t'))
        end--;
    for (size_t k = v; k < end; k++) {
        unsigned char c = (unsigned char)start[k];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return true; /* a control character could split the line downstream */
    }
    h->value = start + v;
    h->value_len = end - v;
    h->valid = true;
    return true;
}

/* The header names an upstream's Connection headers list: dropped too
 * (RFC 9110 7.6.1). Collected once per header block, so filtering stays
 * linear however many lines an upstream sends. */
#define CONNECTION_TOKENS_MAX 64

struct connection_tokens {
    size_t count;
    const char *name[CONNECTION_TOKENS_MAX];
    size_t len[CONNECTION_TOKENS_MAX];
    bool transfer_encoded; /* a Transfer-Encoding header stands in the block */
};

static bool named(const struct header_line *h, const char *name)
{
    return h->valid && h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

/* Returns 0, or -1 when more names are listed than any real server would. */
static int collect_connection_tokens(const char *raw, size_t len, struct connection_tokens *t)
{
    size_t pos = 0;
    struct header_line h;
    t->count = 0;
    t->transfer_encoded = false;
    while (next_header_line(raw, len, &pos, &h)) {
        t->transfer_encoded = t->transfer_encoded || named(&h, "Transfer-Encoding");
        if (!named(&h, "Connection"))
            continue;
        size_t i = 0;
        while (i < h.value_len) {
            while (i < h.value_len && (h.value[i] == ',' || h.value[i] == ' ' || h.value[i] == '\t'))
                i++;
            size_t start = i;
            while (i < h.value_len && h.value[i] != ',' && h.value[i] != ' ' && h.value[i] != '\t')
                i++;
            if (i == start)
                continue;
            if (t->count == CONNECTION_TOKENS_MAX)
                return -1;
            t->name[t->count] = h.value + start;
            t->len[t->count++] = i - start;
        }
    }
    return 0;
}

static bool named_by_connection(const struct connection_tokens *t, const char *name, size_t name_len)
{
    for (size_t i = 0; i < t->count; i++)
        if (t->len[i] == name_len && strncasecmp(t->name[i], name, name_len) == 0)
            return true;
    return false;
}

enum proxy_err upstream_filter_headers(const char *raw, size_t len, const char *const *drop_also, struct buf *out)
{
    size_t pos = 0;
    struct header_line h;
    /* RFC 9112 5.2: a proxy either unfolds obs-fold or answers 502; a flow
     * server has no reason to fold, so refuse rather than guess. */
    for (size_t i = 0; i + 1 < len; i++)
        if (raw[i] == '\n' && (raw[i + 1] == ' ' || raw[i + 1] == '\t'))
            return PROXY_ERR_UPSTREAM_PROTOCOL;
    if (len && (raw[0] == ' ' || raw[0] == '\t'))
        return PROXY_ERR_UPSTREAM_PROTOCOL;
    struct connection_tokens connection;
    if (collect_connection_tokens(raw, len, &connection) != 0)
        return PROXY_ERR_TOO_LARGE;
    while (next_header_line(raw, len, &pos, &h)) {
        if (!h.valid || name_in(h.name, h.name_len, hop_by_hop) || name_in(h.name, h.name_len, never_relayed) ||
            name_has_prefix(h.name, h.name_len, never_relayed_prefixes) || name_in(h.name, h.name_len, drop_also) ||
            /* RFC 9112 6.3: a length beside Transfer-Encoding is wrong, and a
             * proxy must not pass it on (the web server would believe it). */
            (connection.transfer_encoded && name_in(h.name, h.name_len, framing_length)) ||
            named_by_connection(&connection, h.name, h.name_len))
            continue;
        enum proxy_err rc = buf_append(out, h.name, h.name_len);
        if (!rc)
            rc = h.value_len ? buf_append(out, ": ", 2) : buf_append(out, ":", 1);
        if (!rc)
            rc = buf_append(out, h.value, h.value_len);
        if (!rc)
            rc = buf_append(out, "\r\n", 2);
        if (rc)
            return rc;
    }
    return PROXY_OK;
}

/* ---- status mapping (pure) ---- */

enum proxy_err upstream_error_of(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return PROXY_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return PROXY_ERR_UPSTREAM_TIMEOUT;
    case CURLE_OUT_OF_MEMORY:
        return PROXY_ERR_NOMEM;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        return PROXY_ERR_UPSTREAM_TLS;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
        return PROXY_ERR_UPSTREAM_UNREACHABLE;
    default:
        return PROXY_ERR_UPSTREAM_PROTOCOL;
    }
}

int upstream_failure_kind(enum proxy_err err, CURLcode rc)
{
    bool tls;
    switch (rc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
        tls = true;
        break;
    default:
        tls = false;
    }
    switch (err) {
    case PROXY_ERR_UPSTREAM_TIMEOUT:
        return METRICS_UPSTREAM_TIMEOUT;
    case PROXY_ERR_UPSTREAM_TOO_LARGE:
        return METRICS_UPSTREAM_TOO_LARGE;
    case PROXY_ERR_UPSTREAM_TLS:
        return METRICS_UPSTREAM_TLS;
    case PROXY_ERR_UPSTREAM_UNREACHABLE:
        return tls ? METRICS_UPSTREAM_TLS : METRICS_UPSTREAM_UNREACHABLE;
    case PROXY_ERR_UPSTREAM_PROTOCOL:
        return tls ? METRICS_UPSTREAM_TLS : METRICS_UPSTREAM_PROTOCOL;
    default:
        return -1;
    }
}

static void count_failure(enum metrics_route route, enum proxy_err err, CURLcode rc)
{
    int kind = upstream_failure_kind(err, rc);
    if (kind >= 0)
        metrics_upstream_failure(route, (enum metrics_upstream_failure)kind);
}

void upstream_fail(struct flow_request *req, enum proxy_err err, const char *detail)
{
    if (err == PROXY_ERR_CLIENT_GONE)
        return;
    proxy_log(PROXY_LOG_ERROR, req->fcgi->request_id, "upstream %s failed: %s%s%s",
              !req->route ? "?" : req->route->kind == ROUTE_PURGE ? "purge" : req->route->suffix,
              proxy_strerror(err), detail && *detail ? ": " : "",
              detail ? detail : "");
    fcgi_response_fail(req->fcgi, err);
}

long long upstream_content_length(const char *raw, size_t len)
{
    struct connection_tokens facts;
    if (collect_connection_tokens(raw, len, &facts) == 0 && facts.transfer_encoded)
        return -1; /* RFC 9112 6.3: Transfer-Encoding overrides a length */
    static const char name[] = "content-length:";
    const char *p = raw, *end = raw + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        if ((size_t)(line_end - p) > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
            const char *v = p + sizeof name - 1;
            while (v < line_end && (*v == ' ' || *v == '\t'))
                v++;
            long long n = 0;
            const char *digits = v;
            while (v < line_end && *v >= '0' && *v <= '9' && n < (1LL << 50))
                n = n * 10 + (*v++ - '0');
            bool any_digit = v > digits;
            while (v < line_end && (*v == ' ' || *v == '\t' || *v == '\r'))
                v++;
            return v == line_end && any_digit ? n : -1;
        }
        p = line_end + 1;
    }
    return -1;
}

/* ---- libcurl plumbing ---- */

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct upstream_exchange *x = userdata;
    size_t len = size * nmemb;
    if (x->head_delivered)
        return len; /* trailers after a chunked body: nothing to relay */
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new response (after 100 Continue, say): start over. */
        buf_reset(&x->raw_headers);
        x->status = 0;
        const char *sp = memchr(data, ' ', len);
        if (sp && (size_t)(sp - data) + 4 <= len)
            x->status = strtol(sp + 1, NULL, 10);
        return len;
    }
    if ((len == 2 && data[0] == '\r' && data[1] == '\n') || (len == 1 && data[0] == '\n')) {
        if (x->status >= 100 && x->status < 200)
            return len; /* interim response: the final one follows */
        if (x->max_response_body &&
            upstream_content_length(x->raw_headers.data ? x->raw_headers.data : "", x->raw_headers.len) >
                (long long)x->max_response_body) {
            /* Known to be too large before any of it is relayed: a real 502. */
            x->abort_reason = PROXY_ERR_UPSTREAM_TOO_LARGE;
            return 0;
        }
        struct buf lines;
        buf_init(&lines, UPSTREAM_MAX_HEADER_BYTES);
        enum proxy_err err = upstream_filter_headers(x->raw_headers.data ? x->raw_headers.data : "",
                                                     x->raw_headers.len, NULL, &lines);
        if (err == PROXY_ERR_TOO_LARGE)
            err = PROXY_ERR_UPSTREAM_TOO_LARGE;
        if (!err) {
            x->head_delivered = true;
            err = x->sink.on_head(x->sink.ctx, x->status, lines.data ? lines.data : "", lines.len);
        }
        buf_free(&lines);
        if (err) {
            x->abort_reason = err;
            return 0;
        }
        return len;
    }
    enum proxy_err rc = buf_append(&x->raw_headers, data, len);
    if (rc) {
        x->abort_reason = rc == PROXY_ERR_NOMEM ? PROXY_ERR_NOMEM : PROXY_ERR_UPSTREAM_TOO_LARGE;
        return 0;
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct upstream_exchange *x = userdata;
    size_t len = size * nmemb;
    if (!x->head_delivered) {
        x->abort_reason = PROXY_ERR_UPSTREAM_PROTOCOL;
        return 0;
    }
    if (x->max_response_body && x->body_received + len > x->max_response_body) {
        x->abort_reason = PROXY_ERR_UPSTREAM_TOO_LARGE;
        return 0;
    }
    x->body_received += len;
    enum proxy_err err = x->sink.on_body(x->sink.ctx, data, len);
    if (err == PROXY_ERR_WOULD_BLOCK)
        return CURL_WRITEFUNC_PAUSE; /* the sink asks to wait: its buffer is full */
    if (err) {
        x->abort_reason = err;
        return 0;
    }
    return len;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    struct upstream_exchange *x = userdata;
    if (atomic_load(&abort_all_transfers)) {
        x->abort_reason = PROXY_ERR_SHUTDOWN;
        return 1;
    }
    return 0;
}

CURL *upstream_easy_new(const struct proxy_config *cfg, const struct upstreams *upstreams, bool long_lived)
{
    CURL *easy = curl_easy_init();
    if (!easy)
        return NULL;
    upstreams_configure(upstreams, easy);
    /* Worker threads: signals would hit any thread; timeouts use no alarm(). */
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Behind an egress proxy, its CONNECT reply must not pass for the
     * upstream's head. */
    curl_easy_setopt(easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    /* One connection per stream, so a client leaving closes exactly its
     * upstream connection (HTTP/2 would multiplex them on one). */
    if (long_lived)
        curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    /* Bodies pass through undecoded: no Accept-Encoding of our own. */
    curl_easy_setopt(easy, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    curl_easy_setopt(easy, CURLOPT_HTTP_TRANSFER_DECODING, 1L);
    if (cfg->tls_skip_verify) {
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (cfg->ca_file)
        curl_easy_setopt(easy, CURLOPT_CAINFO, cfg->ca_file);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout_ms);
    /* A stream lives for hours: only its connect is bounded. */
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, long_lived ? 0L : cfg->proxy_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    /* Small reads keep a stream's memory small. A worker's one handle takes
     * a snapshot in few, large reads: each read becomes one write of
     * FastCGI records. */
    curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, long_lived ? 8192L : 65536L);
    return easy;
}

/* The longest header line that goes upstream: every value was bounded
 * when the request was read (fcgi/request.h) or authenticated, or is the
 * upstream token (handlers/upstreams.h). */
#define HEADER_LINE_MAX (FCGI_ACCEPT_MAX + FCGI_LAST_EVENT_ID_MAX + UPSTREAMS_TOKEN_MAX)

static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[HEADER_LINE_MAX];
    /* "Name:" with nothing after it tells libcurl to drop its own default. */
    int n = value ? snprintf(line, sizeof line, "%s: %s", name, value) : snprintf(line, sizeof line, "%s:", name);
    if (n < 0 || (size_t)n >= sizeof line)
        return -1; /* values are bounded before; never send libcurl's default instead */
    struct curl_slist *grown = curl_slist_append(*list, line);
    OPENSSL_cleanse(line, (size_t)n); /* the upstream token passes through here */
    if (!grown)
        return -1;
    *list = grown;
    return 0;
}

enum proxy_err upstream_exchange_prepare(CURL *easy, const struct proxy_config *cfg, struct upstream_exchange *x)
{
    const struct flow_request *req = x->req;
    const struct fcgi_request *in = req->fcgi;
    bool stream = strcmp(x->action, "stream") == 0;
    buf_init(&x->raw_headers, UPSTREAM_MAX_HEADER_BYTES);
    x->request_headers = NULL;
    x->status = 0;
    x->head_delivered = false;
    x->abort_reason = PROXY_OK;

    /* The deployment's own upstream (dispatch resolved it), or the one of
     * every call; a path of the upstream's own (/healthz) is always the
     * latter's. */
    const char *base = req->upstream_url && !x->path ? req->upstream_url : cfg->upstream_url;
    bool purge = strcmp(x->action, "purge") == 0;
    char *url = NULL;
    size_t url_len = strlen(base) + strlen(req->id) + strlen(x->action) + 16 + (x->path ? strlen(x->path) : 0);
    if (!(url = malloc(url_len)))
        return PROXY_ERR_NOMEM;
    /* The id was checked to be unreserved characters only: no escaping. */
    if (x->path)
        snprintf(url, url_len, "%s%s", base, x->path);
    else if (purge)
        snprintf(url, url_len, "%s/v1/flows/%s", base, req->id);
    else
        snprintf(url, url_len, "%s/v1/flows/%s/%s", base, req->id, x->action);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    free(url); /* libcurl keeps its own copy */

    /* The allowlist: nothing else of the client's headers goes upstream. */
    struct curl_slist **h = &x->request_headers;
    int rc = 0;
    if (stream)
        rc |= add_header(h, "Accept", "text/event-stream");
    else
        rc |= add_header(h, "Accept", in->accept);
    if (x->body)
        rc |= add_header(h, "Content-Type", in->content_type);
    if (stream && in->last_event_id)
        rc |= add_header(h, "Last-Event-ID", in->last_event_id);
    rc |= add_header(h, "X-Request-ID", in->request_id);
    if (req->user)
        rc |= add_header(h, "X-Forwarded-User", req->user);
    if (in->remote_addr)
        rc |= add_header(h, "X-Forwarded-For", in->remote_addr);
    /* The proxy's own credential to the flow servers, never the client's. */
    char authorization[UPSTREAMS_TOKEN_MAX + 16];
    if (upstreams_authorization(req->upstreams, !x->on_loop, authorization, sizeof authorization))
        rc |= add_header(h, "Authorization", authorization);
    OPENSSL_cleanse(authorization, sizeof authorization);
    rc |= add_header(h, "Expect", NULL); /* no 100-continue round trip */
    if (rc) {
        upstream_exchange_release(x);
        return PROXY_ERR_NOMEM;
    }
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, x->request_headers);

    if (x->body) {
        curl_easy_setopt(easy, CURLOPT_POST, 1L);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, x->body);
    } else {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    }
    /* A reused handle forgets the method of its last call here. */
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, purge ? "DELETE" : NULL);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(easy, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
    return PROXY_OK;
}

void upstream_exchange_release(struct upstream_exchange *x)
{
    if (!x)
        return;
    /* One of the lines may be the upstream token. */
    for (struct curl_slist *line = x->request_headers; line; line = line->next)
        OPENSSL_cleanse(line->data, strlen(line->data));
    curl_slist_free_all(x->request_headers);
    x->request_headers = NULL;
    buf_free(&x->raw_headers);
}

enum proxy_err upstream_exchange_result(const struct upstream_exchange *x, CURLcode rc)
{
    if (x->abort_reason)
        return x->abort_reason;
    return upstream_error_of(rc);
}

/* ---- a worker's synchronous client ---- */

struct upstream_client {
    const struct proxy_config *cfg;
    CURL *easy;
    CURLM *multi; /* drives easy, so that the web server's connection is watched alongside */
    char error[CURL_ERROR_SIZE];
};

/* How often a call in progress looks at the web server's connection at the
 * latest: an FCGI_ABORT_REQUEST ends the call within this. */
#define WATCH_MS 50

struct upstream_client *upstream_client_new(const struct proxy_config *cfg, const struct upstreams *upstreams)
{
    struct upstream_client *client = calloc(1, sizeof *client);
    if (!client)
        return NULL;
    client->cfg = cfg;
    client->easy = upstream_easy_new(cfg, upstreams, false);
    client->multi = curl_multi_init();
    if (client->multi)
        curl_multi_setopt(client->multi, CURLMOPT_MAXCONNECTS, UPSTREAMS_KEPT_CONNECTIONS);
    if (!client->easy || !client->multi) {
        curl_easy_cleanup(client->easy);
        if (client->multi)
            curl_multi_cleanup(client->multi);
        free(client);
        return NULL;
    }
    curl_easy_setopt(client->easy, CURLOPT_ERRORBUFFER, client->error);
    return client;
}

void upstream_client_free(struct upstream_client *client)
{
    if (!client)
        return;
    curl_easy_cleanup(client->easy);
    curl_multi_cleanup(client->multi);
    free(client);
}

/* The call, while the web server's connection is watched: an abort or a
 * hang-up ends it at once (the upstream connection then closes) and sets
 * *gone. The connections of one client stay in its multi handle's cache,
 * so they are still reused from call to call. */
static CURLcode perform_watching(struct upstream_client *client, struct fcgi_request *in, bool *gone)
{
    CURLcode rc = CURLE_OK;
    int running = 1;
    bool watching = true;
    if (curl_multi_add_handle(client->multi, client->easy) != CURLM_OK)
        return CURLE_OUT_OF_MEMORY;
    while (running) {
        if (curl_multi_perform(client->multi, &running) != CURLM_OK) {
            rc = CURLE_OUT_OF_MEMORY;
            break;
        }
        if (!running)
            break;
        struct curl_waitfd web = {.fd = fcgi_request_fd(in), .events = CURL_WAIT_POLLIN};
        curl_multi_poll(client->multi, &web, watching ? 1 : 0, WATCH_MS, NULL);
        if (watching && (web.revents & CURL_WAIT_POLLIN)) {
            enum fcgi_input input = fcgi_request_peek(in);
            if (input == FCGI_INPUT_GONE) {
                *gone = true;
                break;
            }
            /* Bytes a web server should not send here: read on, unwatched. */
            watching = input == FCGI_INPUT_QUIET;
        }
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(client->multi, &left)))
        if (msg->msg == CURLMSG_DONE)
            rc = msg->data.result;
    curl_multi_remove_handle(client->multi, client->easy);
    return rc;
}

static enum proxy_err relay_head(void *ctx, long status, const char *lines, size_t len)
{
    return fcgi_response_head(ctx, (int)status, lines, len);
}

static enum proxy_err relay_body(void *ctx, const char *data, size_t len)
{
    return fcgi_response_write(ctx, data, len);
}

enum proxy_err upstream_relay(struct upstream_client *client, struct flow_request *req, const char *action,
                             const char *body, size_t body_len, size_t max_response_body)
{
    struct upstream_exchange x = {
        .req = req,
        .action = action,
        .body = body,
        .body_len = body_len,
        .max_response_body = max_response_body,
        .sink = {.ctx = req->fcgi, .on_head = relay_head, .on_body = relay_body},
    };
    client->error[0] = '\0';
    /* The rest of the request's input first: afterwards the web server
     * sends nothing but an abort, so whatever arrives during the call is one. */
    fcgi_request_drain(req->fcgi);
    if (fcgi_request_input_broken(req->fcgi))
        return PROXY_ERR_CLIENT_GONE;
    enum proxy_err err = upstream_exchange_prepare(client->easy, client->cfg, &x);
    if (err) {
        upstream_fail(req, err, NULL);
        return err;
    }
    bool gone = false;
    long long started_us = clock_us();
    CURLcode rc = perform_watching(client, req->fcgi, &gone);
    req->upstream_us = clock_us() - started_us;
    metrics_upstream_call(req->label, req->upstream_us);
    err = gone ? PROXY_ERR_CLIENT_GONE : upstream_exchange_result(&x, rc);
    upstream_exchange_release(&x);
    /* The handle outlives the call: leave no pointer into this frame behind. */
    curl_easy_setopt(client->easy, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(client->easy, CURLOPT_POSTFIELDS, NULL);
    struct fcgi_response *out = &req->fcgi->out;
    if (err == PROXY_OK && !out->head_sent) {
        /* An empty answer with headers only still has a head. */
        err = PROXY_ERR_UPSTREAM_PROTOCOL;
    }
    count_failure(req->label, err, rc);
    if (err && err != PROXY_ERR_CLIENT_GONE) {
        /* Held back and not yet sent, a head can still give way to a clean
         * error answer; once out, the body can only be cut. */
        if (out->head_sent && !fcgi_response_retract(req->fcgi)) {
            proxy_log(PROXY_LOG_ERROR, req->fcgi->request_id, "upstream %s ended early: %s%s%s; response cut off",
                     action, proxy_strerror(err), client->error[0] ? ": " : "", client->error);
            out->error_code = proxy_err_code(err);
            out->cut = true;
        } else
            upstream_fail(req, err, client->error);
    }
    return err;
}

static enum proxy_err probe_head(void *ctx, long status, const char *lines, size_t len)
{
    (void)lines;
    (void)len;
    *(long *)ctx = status;
    return PROXY_OK;
}

static enum proxy_err probe_body(void *ctx, const char *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
    return PROXY_OK; /* read and dropped: only the status matters */
}

/* A health check's answer is a word or a small JSON object. */
#define PROBE_BODY_MAX (64 * 1024)

enum proxy_err upstream_probe(struct upstream_client *client, struct flow_request *req, enum metrics_route route,
                              const char *path, long timeout_ms, long *status, char *detail, size_t detail_len)
{
    struct upstream_exchange x = {
        .req = req,
        .action = "health",
        .path = path,
        .max_response_body = PROBE_BODY_MAX,
        .sink = {.ctx = status, .on_head = probe_head, .on_body = probe_body},
    };
    *status = 0;
    client->error[0] = '\0';
    fcgi_request_drain(req->fcgi);
    enum proxy_err err = upstream_exchange_prepare(client->easy, client->cfg, &x);
    if (err) {
        proxy_say(detail, detail_len, "%s", proxy_strerror(err));
        return err;
    }
    curl_easy_setopt(client->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    bool gone = false;
    long long started_us = clock_us();
    CURLcode rc = perform_watching(client, req->fcgi, &gone);
    req->upstream_us = clock_us() - started_us;
    metrics_upstream_call(route, req->upstream_us);
    err = gone ? PROXY_ERR_CLIENT_GONE : upstream_exchange_result(&x, rc);
    count_failure(route, err, rc);
    proxy_say(detail, detail_len, "%s%s%s", proxy_strerror(err), client->error[0] ? ": " : "", client->error);
    upstream_exchange_release(&x);
    /* The handle goes on serving relays: their deadline, no dangling list. */
    curl_easy_setopt(client->easy, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(client->easy, CURLOPT_TIMEOUT_MS, client->cfg->proxy_timeout_ms);
    return err;
}

static size_t drop_body(char *data, size_t size, size_t n, void *ctx)
{
    (void)data;
    (void)ctx;
    return size * n;
}

enum proxy_err upstream_reachable(const struct proxy_config *cfg, const struct upstreams *upstreams, long timeout_ms,
                                  char *detail, size_t detail_len)
{
    CURL *easy = upstream_easy_new(cfg, upstreams, false);
    char *url = NULL;
    if (!easy || asprintf(&url, "%s/healthz", cfg->upstream_url) < 0) {
        curl_easy_cleanup(easy);
        proxy_say(detail, detail_len, "out of memory");
        return PROXY_ERR_NOMEM;
    }
    char error[CURL_ERROR_SIZE] = "";
    /* Not an exchange: none of the relay's callbacks. */
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, NULL);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, drop_body);
    curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error);
    CURLcode rc = curl_easy_perform(easy);
    enum proxy_err err = upstream_error_of(rc);
    proxy_say(detail, detail_len, "%s%s%s", proxy_strerror(err), error[0] ? ": " : "", error);
    curl_easy_cleanup(easy);
    free(url);
    return err;
}
