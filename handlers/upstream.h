/* upstream.h: the request to the flow server: libcurl handle options, the
 * URL, the allowlist of request headers, response header filtering, the
 * mapping of libcurl's results to the proxy's errors, and a worker's
 * blocking relay. The stream loop drives the same exchanges with
 * curl_multi (stream_loop.c). */
#ifndef OPENOVA_UPSTREAM_H
#define OPENOVA_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/error.h"
#include "core/metrics.h"
#include "handlers/handlers.h"

struct upstreams;

#define UPSTREAM_MAX_HEADER_BYTES (64 * 1024)

/* Where the upstream's answer goes. Each callback returns 0 to go on, or an
 * fcgi_err to abort the transfer (the upstream connection is then closed). */
struct upstream_sink {
    void *ctx;
    /* The final response's status and its header lines, filtered and
     * formatted "Name: value\r\n". Called once, before any body byte. */
    enum proxy_err (*on_head)(void *ctx, long status, const char *lines, size_t len);
    /* Called with body bytes exactly as the upstream sent them (chunked
     * framing removed, content encoding untouched). */
    enum proxy_err (*on_body)(void *ctx, const char *data, size_t len);
};

/* One upstream call: what the request asks for and where its answer goes.
 * Lives as long as the transfer; the caller owns it. */
struct upstream_exchange {
    const struct flow_request *req;
    const char *action;       /* "snapshot", "events", "stream", or "purge" (DELETE /v1/flows/{id}) */
    const char *path;         /* NULL, or a path of the upstream's own ("/healthz") instead of the flow's action */
    const char *body;         /* POST body (events), not copied */
    size_t body_len;
    size_t max_response_body; /* 0: unbounded; past it the call fails (502) */
    bool on_loop;             /* prepared on the stream loop's thread: no file is read there */
    struct upstream_sink sink;

    /* Filled in during the transfer. */
    struct buf raw_headers;
    struct curl_slist *request_headers;
    long status;
    unsigned long long body_received;
    bool head_delivered;
    enum proxy_err abort_reason; /* why a callback stopped the transfer */
};

/* upstream_global_init / cleanup: once per process, before threads start. */
int upstream_global_init(void);
void upstream_global_cleanup(void);

/* upstream_abort_all: every transfer in progress or started later aborts
 * (with PROXY_ERR_SHUTDOWN) at its next progress check; for the stop. */
void upstream_abort_all(void);

/* upstream_easy_new: an easy handle with the options every call shares
 * (TLS, timeouts, no signals, and what upstreams adds: handlers/
 * upstreams.h; NULL for none). NULL when out of memory. The caller frees it
 * with curl_easy_cleanup. */
CURL *upstream_easy_new(const struct proxy_config *cfg, const struct upstreams *upstreams, bool long_lived);

/* upstream_exchange_prepare: points easy at the call described by x (URL,
 * method, body, allowlisted headers, the upstream token, callbacks into
 * x->sink). The URL's base is the request's upstream_url when dispatch set
 * one, else cfg's; a path of the upstream's own always goes to cfg's. Returns
 * PROXY_OK or PROXY_ERR_NOMEM. Release with upstream_exchange_release. */
enum proxy_err upstream_exchange_prepare(CURL *easy, const struct proxy_config *cfg, struct upstream_exchange *x);

/* upstream_exchange_release: frees what prepare allocated; NULL-safe. */
void upstream_exchange_release(struct upstream_exchange *x);

/* upstream_exchange_result: the outcome of a finished transfer. */
enum proxy_err upstream_exchange_result(const struct upstream_exchange *x, CURLcode rc);

/* upstream_error_of: libcurl's result -> the proxy's error. Pure. */
enum proxy_err upstream_error_of(CURLcode rc);

/* upstream_failure_kind: the metrics' reason for a failed call that ended
 * with err after libcurl's rc (TLS told apart from the rest by rc), or -1
 * when err is no failure of the upstream (ok, the client left, out of
 * memory, the stop). Pure. */
int upstream_failure_kind(enum proxy_err err, CURLcode rc);

/* upstream_filter_headers: copies the header lines of raw (one response's
 * header block without its status line, "Name: value" per CRLF or LF line)
 * to out, dropping hop-by-hop headers (RFC 9110 7.6.1, including those named
 * in Connection), Content-Length beside Transfer-Encoding (RFC 9112 6.3),
 * headers a web server would act on (Status, X-Sendfile, X-Accel-*,
 * X-LIGHTTPD-*), headers that speak for the whole origin (Set-Cookie, CORS,
 * HSTS and the other transport policies, Clear-Site-Data, Refresh,
 * WWW-Authenticate), X-Request-ID (the proxy sets its own), names in
 * drop_also (NULL-terminated, may be NULL), and any line with control
 * characters or without a valid name. Pure. Returns PROXY_OK,
 * PROXY_ERR_UPSTREAM_PROTOCOL when raw holds an obs-fold continuation line
 * (the caller answers 502), PROXY_ERR_TOO_LARGE when out's maximum is
 * reached or Connection lists more than 64 names, or PROXY_ERR_NOMEM. */
enum proxy_err upstream_filter_headers(const char *raw, size_t len, const char *const *drop_also, struct buf *out);

/* A worker's client: one easy handle, reused so connections stay alive. */
struct upstream_client;

/* upstream_client_new: NULL when out of memory. Free with upstream_client_free. */
struct upstream_client *upstream_client_new(const struct proxy_config *cfg, const struct upstreams *upstreams);
void upstream_client_free(struct upstream_client *client);

/* upstream_relay: performs the call and relays the answer to req's client:
 * status, filtered headers and body as they arrive, at most
 * max_response_body bytes of body (0: no bound). If the call fails before
 * the head went out, writes the JSON error with the mapped status; after
 * it, marks the response to be cut off (req->fcgi->out.cut) so that a
 * truncated body never looks complete.
 * Logs failures with the request id. Returns the outcome. */
enum proxy_err upstream_relay(struct upstream_client *client, struct flow_request *req, const char *action,
                             const char *body, size_t body_len, size_t max_response_body);

/* upstream_probe: GET {upstream}{path} on the worker's client, within
 * timeout_ms, the body read and dropped; *status is the answer's status.
 * Watches req's web server connection as a relay does. Counts the call
 * and any failure under route (whichever request asked). Returns the
 * outcome, with the reason of a failure in detail. */
enum proxy_err upstream_probe(struct upstream_client *client, struct flow_request *req, enum metrics_route route,
                              const char *path, long timeout_ms, long *status, char *detail, size_t detail_len);

/* upstream_reachable: GET {upstream}/healthz once, on a handle of its own,
 * within timeout_ms; PROXY_OK when anything answered, else the failure
 * with libcurl's reason in detail. For the start: the upstream may still
 * be starting, so the caller only warns. */
enum proxy_err upstream_reachable(const struct proxy_config *cfg, const struct upstreams *upstreams, long timeout_ms,
                                  char *detail, size_t detail_len);

/* upstream_content_length: the Content-Length of a raw header block, or -1
 * when absent, unparsable, or overridden by a Transfer-Encoding header
 * (RFC 9112 6.3). Pure. */
long long upstream_content_length(const char *raw, size_t len);

/* upstream_fail: answers req with the JSON error for err (status from
 * proxy_err_status) unless its head is out; logs the cause. */
void upstream_fail(struct flow_request *req, enum proxy_err err, const char *detail);

#endif
