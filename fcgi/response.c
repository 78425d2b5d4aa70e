/* response.c: response heads, bodies, JSON errors and ends, written as
 * FastCGI records to the web server: held back and written whole on a
 * worker's blocking connection, written at once and queued when the socket
 * is full on a detached one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/http.h"
#include "fcgi/record.h"
#include "fcgi/response.h"

enum proxy_err fcgi_response_format_head(struct buf *out, int status, const char *request_id, const char *extra,
                                         size_t extra_len)
{
    const char *reason = http_status_reason(status);
    enum proxy_err rc = buf_appendf(out, "Status: %d%s%s\r\nX-Request-ID: %s\r\n", status, *reason ? " " : "", reason,
                              request_id);
    if (!rc && extra && extra_len)
        rc = buf_append(out, extra, extra_len);
    if (!rc)
        rc = buf_append(out, "\r\n", 2);
    return rc;
}

char *fcgi_response_error_json(const char *code, const char *message, const char *request_id)
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

/* Records go out with writev: a body chunk crosses the app once, from
 * libcurl's buffer to the socket, behind record headers (libfcgi's output
 * stream would copy it through an 8 KiB buffer and send 8 KiB records). */
#define BATCH_RECORDS 32

struct batch {
    struct iovec iov[2 * BATCH_RECORDS + 1];
    unsigned char headers[BATCH_RECORDS][FCGI_HEADER_LEN];
    unsigned char end[FCGI_RECORD_END_LEN];
    int iov_count;
    int header_count;
};

static bool detached(const struct fcgi_request *req)
{
    return req->detached;
}

/* note_written: n bytes of iov reached the socket: where the wire now
 * stands in its records (fcgi_response_break must finish the one under
 * way). */
static void note_written(struct fcgi_request *req, const struct iovec *iov, int count, size_t n)
{
    for (int i = 0; i < count && n > 0; i++) {
        size_t part = iov[i].iov_len < n ? iov[i].iov_len : n;
        fcgi_record_scan(&req->out.written, iov[i].iov_base, part);
        req->out.bytes_written += part;
        n -= part;
    }
}

/* A blocking socket takes all of it, maybe in parts (a signal). */
static enum proxy_err write_all(struct fcgi_request *req, struct iovec *iov, int left)
{
    int fd = req->fcgx->ipcFd;
    while (left > 0) {
        ssize_t n = writev(fd, iov, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return PROXY_ERR_CLIENT_GONE;
        }
        req->out.out_started = req->out.out_started || n > 0;
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
    return PROXY_OK;
}

/* queue_records: bytes that must wait behind shared frames join the queue,
 * as one buffer of records, so that they cannot overtake. */
static enum proxy_err queue_records(struct fcgi_request *req, const struct iovec *iov, int count, size_t total)
{
    struct rcbuf *b = rcbuf_alloc(total);
    if (!b)
        return PROXY_ERR_NOMEM;
    size_t at = 0;
    for (int i = 0; i < count; i++) {
        memcpy(b->data + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    enum proxy_err err = fcgi_queue_push(&req->out.queue, b, false, 0);
    rcbuf_unref(b);
    return err;
}

/* A non-blocking socket takes what it can; the rest waits in out.unsent,
 * behind which everything later queues, so bytes never overtake. Once
 * shared frames wait (out.queue), later bytes queue behind them instead. */
static enum proxy_err write_some(struct fcgi_request *req, const struct iovec *iov, int count)
{
    struct buf *unsent = &req->out.unsent;
    size_t total = 0;
    for (int i = 0; i < count; i++)
        total += iov[i].iov_len;
    if (total + unsent->len + req->out.queue.raw_bytes > unsent->max)
        return PROXY_ERR_WOULD_BLOCK; /* nothing taken: the caller pauses */
    if (req->out.queue.count > 0)
        return queue_records(req, iov, count, total);
    size_t done = 0;
    if (unsent->len == 0) {
        ssize_t n;
        do
            n = writev(req->detached_fd, iov, count);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return PROXY_ERR_CLIENT_GONE;
        done = n > 0 ? (size_t)n : 0;
        req->out.out_started = req->out.out_started || done > 0;
        note_written(req, iov, count, done);
    }
    for (int i = 0; i < count; i++) {
        size_t skip = done < iov[i].iov_len ? done : iov[i].iov_len;
        done -= skip;
        if (skip < iov[i].iov_len &&
            buf_append(unsent, (const char *)iov[i].iov_base + skip, iov[i].iov_len - skip) != PROXY_OK) {
            /* Room was checked: only memory failed, and the records on the
             * wire are now cut short: nothing more can follow them. */
            req->out.out_failed = true;
            return PROXY_ERR_NOMEM;
        }
    }
    return PROXY_OK;
}

static enum proxy_err batch_send(struct fcgi_request *req, struct batch *b)
{
    int count = b->iov_count;
    b->iov_count = b->header_count = 0;
    if (req->out.out_failed)
        return PROXY_ERR_CLIENT_GONE;
    if (count == 0)
        return PROXY_OK;
    enum proxy_err err = detached(req) ? write_some(req, b->iov, count) : write_all(req, b->iov, count);
    if (err == PROXY_ERR_CLIENT_GONE)
        req->out.out_failed = true;
    return err;
}

static enum proxy_err batch_stdout(struct fcgi_request *req, struct batch *b, const char *data, size_t len)
{
    while (len > 0) {
        size_t part = len < FCGI_MAX_LENGTH ? len : FCGI_MAX_LENGTH;
        if (b->header_count == BATCH_RECORDS) {
            enum proxy_err err = batch_send(req, b);
            if (err)
                return err;
        }
        unsigned char *header = b->headers[b->header_count++];
        fcgi_record_header(header, FCGI_STDOUT, req->fcgi_id, part);
        b->iov[b->iov_count++] = (struct iovec){.iov_base = header, .iov_len = FCGI_HEADER_LEN};
        b->iov[b->iov_count++] = (struct iovec){.iov_base = (void *)data, .iov_len = part};
        data += part;
        len -= part;
    }
    return PROXY_OK;
}

/* Writes what is held, then data, then (with_end) the end of the request.
 * Sent or not, what was held is spent: it is never written twice. */
static enum proxy_err send_out(struct fcgi_request *req, const void *data, size_t len, bool with_end)
{
    struct batch b;
    b.iov_count = b.header_count = 0;
    struct buf *held = &req->out.held;
    enum proxy_err err = batch_stdout(req, &b, held->data, held->len);
    if (!err)
        err = batch_stdout(req, &b, data, len);
    if (!err && with_end) {
        fcgi_record_end_request(b.end, req->fcgi_id, 0);
        b.iov[b.iov_count++] = (struct iovec){.iov_base = b.end, .iov_len = sizeof b.end};
    }
    if (!err)
        err = batch_send(req, &b);
    buf_reset(held);
    return err;
}

void fcgi_response_held_init(struct buf *held)
{
    buf_init(held, FCGI_RESPONSE_HEAD_MAX + FCGI_RESPONSE_COALESCE);
}

enum proxy_err fcgi_response_head(struct fcgi_request *req, int status, const char *lines, size_t len)
{
    struct fcgi_response *out = &req->out;
    if (out->head_sent)
        return PROXY_OK;
    if (out->out_failed)
        return PROXY_ERR_CLIENT_GONE;
    size_t before = out->held.len;
    enum proxy_err err = fcgi_response_format_head(&out->held, status, req->request_id, lines, len);
    if (!err && out->held.len - before > FCGI_RESPONSE_HEAD_MAX)
        err = PROXY_ERR_TOO_LARGE;
    if (err) {
        buf_truncate(&out->held, before);
        return err == PROXY_ERR_NOMEM ? err : PROXY_ERR_UPSTREAM_TOO_LARGE;
    }
    if (detached(req)) {
        /* A stream's head leaves at once, and its buffer is not kept: an
         * open stream should cost only what waits for a slow web server. */
        err = send_out(req, NULL, 0, false);
        buf_free(&out->held);
        if (err)
            return err;
    }
    out->head_sent = true;
    out->status = status;
    return PROXY_OK;
}

enum proxy_err fcgi_response_write(struct fcgi_request *req, const void *data, size_t len)
{
    struct fcgi_response *out = &req->out;
    if (out->out_failed)
        return PROXY_ERR_CLIENT_GONE;
    /* A copy, but one write instead of several: libcurl hands a body over
     * in pieces of at most 64 KiB. */
    if (!detached(req) && out->held.len + len <= FCGI_RESPONSE_COALESCE &&
        buf_append(&out->held, data, len) == PROXY_OK) {
        out->bytes_out += len;
        return PROXY_OK;
    }
    enum proxy_err err = send_out(req, data, len, false);
    if (!err)
        out->bytes_out += len;
    return err;
}

bool fcgi_response_retract(struct fcgi_request *req)
{
    if (req->out.out_started)
        return false;
    buf_reset(&req->out.held);
    req->out.head_sent = false;
    req->out.status = 0;
    req->out.bytes_out = 0;
    return true;
}

void fcgi_response_finish(struct fcgi_request *req)
{
    FCGX_Request *fcgx = req->fcgx;
    if (!fcgx)
        return;
    int fd = fcgx->ipcFd;
    bool reusable = false;
    if (req->out.cut) {
        /* What was held back goes out first, as it would have unheld; then,
         * without END_REQUEST, the web server sees the response fail and
         * drops its client instead of ending a cut body cleanly. */
        send_out(req, NULL, 0, false);
        fcgi_record_break(fd);
    } else if (fcgx->keepConnection) {
        /* The web server may send its next request as soon as it has our
         * END_REQUEST, and libfcgi drops whatever it read past this
         * request's input: so the input is read to its end first. */
        /* Each read of what is left is bounded (libfcgi's own lingering
         * close waits two seconds too). */
        fcgi_request_bound_reads(fd, FCGI_RESPONSE_DRAIN_MS);
        bool drained = fcgi_request_drain(req);
        fcgi_request_bound_reads(fd, 0);
        reusable = send_out(req, NULL, 0, true) == PROXY_OK && drained;
    } else if (send_out(req, NULL, 0, true) == PROXY_OK) {
        /* The end of our output tells a web server still sending the
         * request (nginx, after an early 413) to stop and deliver the
         * answer; it would otherwise wait to send the rest first. What is
         * left is read so that the close does not reset the connection
         * under the answer. */
        shutdown(fd, SHUT_WR);
        fcgi_request_bound_reads(fd, FCGI_RESPONSE_DRAIN_MS);
        fcgi_request_drain(req);
    }
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

enum proxy_err fcgi_response_end(struct fcgi_request *req)
{
    enum proxy_err err = send_out(req, NULL, 0, true);
    req->out.ended = err == PROXY_OK;
    return err;
}

/* writev on the detached socket: the bytes written, 0 when it takes none
 * now, -1 when the web server is gone. */
static ssize_t write_detached(struct fcgi_request *req, const struct iovec *iov, int count)
{
    ssize_t n;
    do
        n = writev(req->detached_fd, iov, count);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    req->out.out_started = req->out.out_started || n > 0;
    return n;
}

static enum proxy_err flush_queue(struct fcgi_request *req)
{
    struct fcgi_queue *q = &req->out.queue;
    while (q->count > 0) {
        struct iovec iov[2 * FCGI_QUEUE_GATHER + 8];
        unsigned char headers[FCGI_QUEUE_GATHER][FCGI_HEADER_LEN];
        int count = fcgi_queue_gather(q, req->fcgi_id, iov, (int)(sizeof iov / sizeof iov[0]), headers);
        ssize_t n = write_detached(req, iov, count);
        if (n < 0) {
            req->out.out_failed = true;
            return PROXY_ERR_CLIENT_GONE;
        }
        if (n == 0)
            return PROXY_OK;
        note_written(req, iov, count, (size_t)n);
        fcgi_queue_advance(q, (size_t)n);
    }
    return PROXY_OK;
}

enum proxy_err fcgi_response_share(struct fcgi_request *req, struct rcbuf *body, size_t max_pending)
{
    struct fcgi_response *out = &req->out;
    if (out->out_failed)
        return PROXY_ERR_CLIENT_GONE;
    if (!detached(req) || !out->head_sent || out->ended)
        return PROXY_ERR_INVALID;
    size_t written = fcgi_queue_written_len(body->len, true);
    size_t pending = fcgi_response_pending(req);
    /* a frame larger than the bound alone is taken when nothing waits */
    if (pending > 0 && (written > max_pending || pending > max_pending - written))
        return PROXY_ERR_WOULD_BLOCK;
    size_t done = 0;
    struct fcgi_queue_item item = {.buf = body, .framed = true};
    if (pending == 0) {
        /* nothing waits: straight from the shared buffer to the socket */
        struct iovec iov[2 * FCGI_QUEUE_GATHER];
        unsigned char headers[FCGI_QUEUE_GATHER][FCGI_HEADER_LEN];
        int count = fcgi_queue_gather_item(&item, 0, req->fcgi_id, iov, (int)(sizeof iov / sizeof iov[0]), headers);
        ssize_t n = write_detached(req, iov, count);
        if (n < 0) {
            out->out_failed = true;
            return PROXY_ERR_CLIENT_GONE;
        }
        done = (size_t)n;
        note_written(req, iov, count, done);
    }
    if (done < written && fcgi_queue_push(&out->queue, body, true, done) != PROXY_OK) {
        /* part of a record may be out: nothing can follow it any more */
        out->out_failed = true;
        return PROXY_ERR_NOMEM;
    }
    out->bytes_out += body->len;
    return PROXY_OK;
}

/* copy_pending: the first max bytes waiting (unsent, then the queue's
 * written form) into dst; returns how many. */
static size_t copy_pending(const struct fcgi_request *req, unsigned char *dst, size_t max)
{
    const struct buf *unsent = &req->out.unsent;
    size_t n = unsent->len < max ? unsent->len : max;
    if (n)
        memcpy(dst, unsent->data, n);
    struct iovec iov[2 * FCGI_QUEUE_GATHER + 8];
    unsigned char headers[FCGI_QUEUE_GATHER][FCGI_HEADER_LEN];
    int count = fcgi_queue_gather(&req->out.queue, req->fcgi_id, iov, (int)(sizeof iov / sizeof iov[0]), headers);
    for (int i = 0; i < count && n < max; i++) {
        size_t part = iov[i].iov_len < max - n ? iov[i].iov_len : max - n;
        memcpy(dst + n, iov[i].iov_base, part);
        n += part;
    }
    return n;
}

/* record_rest: how many of the waiting bytes finish the record the wire is
 * in the middle of (0 at a record boundary). */
static size_t record_rest(const struct fcgi_request *req, const unsigned char *pending, size_t len)
{
    struct fcgi_record_scanner s = req->out.written;
    size_t i = 0;
    while (i < len && (s.header_have || s.skip)) {
        size_t step = s.skip ? (s.skip < len - i ? s.skip : len - i) : 1;
        fcgi_record_scan(&s, pending + i, step);
        i += step;
    }
    return i;
}

void fcgi_response_break(struct fcgi_request *req)
{
    static const unsigned char invalid[FCGI_HEADER_LEN] = {0}; /* version 0 */
    struct fcgi_response *out = &req->out;
    /* A web server reads the invalid record only where a record starts:
     * the one under way on the wire is finished first. */
    enum { RECORD_MAX = FCGI_HEADER_LEN + FCGI_MAX_LENGTH + 255 };
    unsigned char *rest = malloc(RECORD_MAX);
    size_t need = rest ? record_rest(req, rest, copy_pending(req, rest, RECORD_MAX)) : 0;
    fcgi_queue_clear(&out->queue);
    buf_reset(&out->unsent);
    /* never fails for want of room: the bound is far above one record */
    if ((need && buf_append(&out->unsent, rest, need) != PROXY_OK) ||
        buf_append(&out->unsent, invalid, sizeof invalid) != PROXY_OK)
        buf_reset(&out->unsent); /* out of memory: the close alone ends it */
    free(rest);
    out->cut = true;
}

size_t fcgi_response_pending(const struct fcgi_request *req)
{
    return req->out.unsent.len + req->out.queue.bytes;
}

enum proxy_err fcgi_response_flush(struct fcgi_request *req)
{
    struct buf *unsent = &req->out.unsent;
    while (unsent->len) {
        ssize_t n = write(req->detached_fd, unsent->data, unsent->len);
        if (n > 0) {
            fcgi_record_scan(&req->out.written, (const unsigned char *)unsent->data, (size_t)n);
            req->out.bytes_written += (size_t)n;
            buf_consume(unsent, (size_t)n);
            req->out.out_started = true;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return PROXY_OK;
        req->out.out_failed = true;
        return PROXY_ERR_CLIENT_GONE;
    }
    return flush_queue(req);
}

/* An error's own header lines: its type and length, and one extra line. */
#define ERROR_HEAD_LINES_MAX 4096

enum proxy_err fcgi_response_error(struct fcgi_request *req, int status, const char *code, const char *message,
                                   const char *extra_header)
{
    if (req->out.head_sent)
        return PROXY_OK;
    req->out.error_code = code;
    char *body = fcgi_response_error_json(code, message, req->request_id);
    if (!body)
        return PROXY_ERR_NOMEM;
    size_t body_len = strlen(body);
    struct buf lines;
    buf_init(&lines, ERROR_HEAD_LINES_MAX);
    enum proxy_err err = buf_appendf(&lines, "Content-Type: application/json\r\nContent-Length: %zu\r\n%s", body_len,
                                     extra_header ? extra_header : "");
    if (!err)
        err = fcgi_response_head(req, status, lines.data, lines.len);
    if (!err)
        err = fcgi_response_write(req, body, body_len);
    buf_free(&lines);
    free(body);
    return err;
}

enum proxy_err fcgi_response_fail(struct fcgi_request *req, enum proxy_err err)
{
    return fcgi_response_error(req, proxy_err_status(err), proxy_err_code(err), proxy_err_message(err), NULL);
}
