/* response.c: response heads, bodies and JSON errors, written as FastCGI
 * records to the web server. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <json-c/json.h>

#include "fcgi/record.h"
#include "core/http.h"
#include "fcgi/response.h"

int fcgi_response_format_head(struct buf *out, int status, const char *request_id, const char *extra,
                              size_t extra_len)
{
    const char *reason = http_status_reason(status);
    int rc = buf_appendf(out, "Status: %d%s%s\r\nX-Request-ID: %s\r\n", status, *reason ? " " : "", reason,
                              request_id);
    if (!rc && extra && extra_len)
        rc = buf_append(out, extra, extra_len);
    if (!rc)
        rc = buf_append(out, "\r\n", 2);
    return rc;
}

char *fcgi_error_json(const char *code, const char *message, const char *request_id)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    json_object_object_add(o, "error", json_object_new_string(code));
    json_object_object_add(o, "message", json_object_new_string(message));
    json_object_object_add(o, "requestId", json_object_new_string(request_id));
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    char *copy = text ? strdup(text) : NULL;
    json_object_put(o);
    return copy;
}

/* The records go to the web server's connection with writev: libfcgi's
 * out stream would copy every body byte through an 8 KiB buffer and send
 * 8 KiB records, several writes per snapshot. Here a body chunk crosses the
 * app once, from libcurl's buffer to the socket, behind record headers. */

#define BATCH_RECORDS 32

struct record_batch {
    int fd;
    unsigned request_id;
    struct iovec iov[2 * BATCH_RECORDS + 1];
    unsigned char headers[BATCH_RECORDS][FCGI_REC_HEADER_LEN];
    unsigned char end[24];
    int iov_count;
    int header_count;
    bool wrote; /* some bytes went out */
    enum proxy_err err;
};

static void batch_init(struct record_batch *b, const struct fcgi_request *req)
{
    b->fd = req->fcgx->ipcFd;
    b->request_id = (unsigned)req->fcgx->requestId;
    b->iov_count = b->header_count = 0;
    b->wrote = false;
    b->err = req->out_failed ? PROXY_ERR_CLIENT_GONE : PROXY_OK;
}

static void batch_flush(struct record_batch *b)
{
    struct iovec *iov = b->iov;
    int left = b->iov_count;
    b->iov_count = b->header_count = 0;
    while (!b->err && left > 0) {
        ssize_t n = writev(b->fd, iov, left);
        if (n < 0) {
            if (errno != EINTR)
                b->err = PROXY_ERR_CLIENT_GONE;
            continue;
        }
        /* A blocking socket may still take part of it (a signal): go on
         * from where it stopped. */
        b->wrote = b->wrote || n > 0;
        size_t done = (size_t)n;
        while (left > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            left--;
        }
        if (left > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
}

static void batch_stdout(struct record_batch *b, const char *data, size_t len)
{
    while (len > 0) {
        size_t part = len < FCGI_REC_MAX_CONTENT ? len : FCGI_REC_MAX_CONTENT;
        if (b->header_count == BATCH_RECORDS)
            batch_flush(b);
        unsigned char *header = b->headers[b->header_count++];
        fcgi_record_header(header, FCGI_REC_STDOUT, b->request_id, part);
        b->iov[b->iov_count++] = (struct iovec){.iov_base = header, .iov_len = FCGI_REC_HEADER_LEN};
        b->iov[b->iov_count++] = (struct iovec){.iov_base = (void *)data, .iov_len = part};
        data += part;
        len -= part;
    }
}

static void batch_pending(struct record_batch *b, struct fcgi_request *req)
{
    if (req->pending && req->pending->len)
        batch_stdout(b, req->pending->data, req->pending->len);
}

static enum proxy_err batch_done(struct record_batch *b, struct fcgi_request *req)
{
    batch_flush(b);
    /* Sent or not, what was held is spent: it is never written twice. */
    if (req->pending)
        buf_reset(req->pending);
    if (b->wrote)
        req->out_started = true;
    if (b->err)
        req->out_failed = true;
    return b->err;
}

void fcgi_response_pending_init(struct buf *pending)
{
    buf_init(pending, FCGI_RESPONSE_HEAD_MAX + FCGI_RESPONSE_COALESCE);
}

enum proxy_err fcgi_response_head(struct fcgi_request *req, int status, const char *extra, size_t extra_len)
{
    if (req->head_sent)
        return PROXY_OK;
    if (req->out_failed)
        return PROXY_ERR_CLIENT_GONE;
    size_t before = req->pending->len;
    int rc = fcgi_response_format_head(req->pending, status, req->request_id, extra, extra_len);
    if (!rc && req->pending->len - before > FCGI_RESPONSE_HEAD_MAX)
        rc = -1;
    if (rc) {
        req->pending->len = before;
        return rc == -2 ? PROXY_ERR_NOMEM : PROXY_ERR_UPSTREAM_TOO_LARGE;
    }
    req->head_sent = true;
    req->status = status;
    return PROXY_OK;
}

enum proxy_err fcgi_response_write(struct fcgi_request *req, const void *data, size_t len)
{
    if (req->out_failed)
        return PROXY_ERR_CLIENT_GONE;
    if (req->pending->len + len <= FCGI_RESPONSE_COALESCE) {
        /* A copy, but one write instead of several: libcurl hands a body
         * over in pieces of at most 16 KiB. */
        if (buf_append(req->pending, data, len) == 0) {
            req->bytes_out += len;
            return PROXY_OK;
        }
    }
    struct record_batch b;
    batch_init(&b, req);
    batch_pending(&b, req);
    batch_stdout(&b, data, len);
    enum proxy_err err = batch_done(&b, req);
    if (!err)
        req->bytes_out += len;
    return err;
}

bool fcgi_response_retract(struct fcgi_request *req)
{
    if (req->out_started)
        return false;
    buf_reset(req->pending);
    req->head_sent = false;
    req->status = 0;
    req->bytes_out = 0;
    return true;
}

/* Reads what is left of the request's input, up to a bound: closing a
 * socket with unread bytes resets it, and the web server could lose the
 * answer. True when the input ended. */
static bool drain_input(FCGX_Request *fcgx)
{
    char discard[4096];
    size_t discarded = 0;
    int got;
    while (discarded < 1024 * 1024 && (got = FCGX_GetStr(discard, (int)sizeof discard, fcgx->in)) > 0)
        discarded += (size_t)got;
    /* libfcgi marks a failed read as the end too: only a clean one counts. */
    return FCGX_HasSeenEOF(fcgx->in) == EOF && FCGX_GetError(fcgx->in) == 0;
}

/* Bounds every read of what is left of the input: a web server that
 * neither sends nor hangs up does not hold the worker (libfcgi's own
 * lingering close waits two seconds too). 0 takes the bound off again. */
static void bound_reads(int fd, long seconds)
{
    struct timeval bound = {.tv_sec = seconds};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
}

void fcgi_response_finish(struct fcgi_request *req)
{
    FCGX_Request *fcgx = req->fcgx;
    if (!fcgx)
        return;
    int fd = fcgx->ipcFd;
    bool reusable = false;
    if (req->abort_response) {
        /* What was held back goes out first, as it would have unheld; then,
         * without END_REQUEST, the web server sees the response fail and
         * drops its client instead of ending a cut body cleanly. */
        struct record_batch b;
        batch_init(&b, req);
        batch_pending(&b, req);
        batch_done(&b, req);
        shutdown(fd, SHUT_RDWR);
    } else if (fcgx->keepConnection) {
        /* The web server may send its next request as soon as it has our
         * END_REQUEST, and libfcgi drops whatever it read past this
         * request's input: so the input is read to its end first. */
        bound_reads(fd, 2);
        bool drained = drain_input(fcgx);
        bound_reads(fd, 0);
        struct record_batch b;
        batch_init(&b, req);
        batch_pending(&b, req);
        fcgi_record_end_request(b.end, b.request_id, 0);
        b.iov[b.iov_count++] = (struct iovec){.iov_base = b.end, .iov_len = sizeof b.end};
        reusable = batch_done(&b, req) == PROXY_OK && drained;
    } else {
        struct record_batch b;
        batch_init(&b, req);
        batch_pending(&b, req);
        fcgi_record_end_request(b.end, b.request_id, 0);
        b.iov[b.iov_count++] = (struct iovec){.iov_base = b.end, .iov_len = sizeof b.end};
        if (batch_done(&b, req) == PROXY_OK) {
            /* The end of our output tells a web server still sending the
             * request (nginx, after an early 413) to stop and deliver the
             * answer; it would otherwise wait to send the rest first. What
             * is left is read so that the close does not reset the
             * connection under the answer. */
            shutdown(fd, SHUT_WR);
            bound_reads(fd, 2);
            drain_input(fcgx);
        }
    }
    if (req->pending && req->pending->cap > 2 * FCGI_RESPONSE_COALESCE)
        buf_free(req->pending); /* a huge head grew it: not kept per worker */
    else if (req->pending)
        buf_reset(req->pending);
    /* libfcgi keeps reading requests from a connection the web server
     * keeps; any other is closed here, at once: its lingering close would
     * hold the worker until the web server hangs up. */
    FCGX_Free(fcgx, 0);
    if (!reusable) {
        close(fd);
        fcgx->ipcFd = -1;
    }
    req->fcgx = NULL;
}

enum proxy_err fcgi_response_error(struct fcgi_request *req, int status, const char *code, const char *message,
                                  const char *extra_header)
{
    if (req->head_sent)
        return PROXY_OK;
    req->error_code = code;
    char *body = fcgi_error_json(code, message, req->request_id);
    if (!body)
        return PROXY_ERR_NOMEM;
    struct buf extra;
    buf_init(&extra, 4096);
    enum proxy_err err = PROXY_OK;
    int rc = buf_appendf(&extra, "Content-Type: application/json\r\nContent-Length: %zu\r\n%s", strlen(body),
                              extra_header ? extra_header : "");
    if (rc)
        err = PROXY_ERR_NOMEM;
    if (!err)
        err = fcgi_response_head(req, status, extra.data, extra.len);
    if (!err)
        err = fcgi_response_write(req, body, strlen(body));
    buf_free(&extra);
    free(body);
    return err;
}
