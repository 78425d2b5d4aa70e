/* request.c: reading a FastCGI request: its parameters, copied and checked
 * once; its body; the end of its input; its handoff out of libfcgi. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/http.h"
#include "fcgi/lobby.h"
#include "fcgi/request.h"
#include "fcgi/response.h"

bool fcgi_request_id_acceptable(const char *id)
{
    if (!http_value_acceptable(id, FCGI_REQUEST_ID_MAX))
        return false;
    return strchr(id, ' ') == NULL;
}

void fcgi_request_id_generate(char *out)
{
    unsigned char raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < sizeof raw) {
        /* getrandom cannot fail on Linux >= 3.17 once seeded; still, an id
         * only needs to be unlikely to collide, not secret. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long long mix = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)ts.tv_sec << 20);
        for (size_t i = got; i < sizeof raw; i++)
            raw[i] = (unsigned char)(mix >> ((i % 8) * 8));
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * sizeof raw] = '\0';
}

bool fcgi_request_headers_acceptable(char **envp, size_t max_value, size_t max_total)
{
    size_t total = 0;
    for (char **p = envp; p && *p; p++) {
        if (strncmp(*p, "HTTP_", 5) != 0)
            continue;
        const char *eq = strchr(*p, '=');
        size_t len = strlen(*p);
        size_t value_len = eq ? len - (size_t)(eq + 1 - *p) : 0;
        if (value_len > max_value)
            return false;
        total += len;
        if (total > max_total)
            return false;
    }
    return true;
}

long long fcgi_request_elapsed_us(const struct fcgi_request *req)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)(now.tv_sec - req->started.tv_sec) * 1000000 + (now.tv_nsec - req->started.tv_nsec) / 1000;
}

long fcgi_request_elapsed_ms(const struct fcgi_request *req)
{
    return (long)(fcgi_request_elapsed_us(req) / 1000);
}

const char *fcgi_request_param(const struct fcgi_request *req, const char *name)
{
    return req->fcgx ? FCGX_GetParam(name, req->fcgx->envp) : NULL;
}

static enum proxy_err copy_param(char **dst, const struct fcgi_request *req, const char *name)
{
    const char *v = fcgi_request_param(req, name);
    if (!v)
        return PROXY_OK;
    *dst = strdup(v);
    return *dst ? PROXY_OK : PROXY_ERR_NOMEM;
}

/* A value that may not go upstream is dropped, as if never sent. */
static void drop_unless_acceptable(char **value, size_t max)
{
    if (*value && !http_value_acceptable(*value, max)) {
        free(*value);
        *value = NULL;
    }
}

/* The checks every route relies on, made once; the dispatcher answers them. */
static void check_params(struct fcgi_request *req)
{
    const char *length = fcgi_request_param(req, "CONTENT_LENGTH");
    if (length && *length) {
        char *end;
        long long n = strtoll(length, &end, 10);
        req->content_length_invalid = *end || n < 0;
        req->content_length = req->content_length_invalid ? -1 : n;
    }
    /* Empty strings mean "not sent": web servers pass some parameters empty. */
    if (req->content_type && !*req->content_type) {
        free(req->content_type);
        req->content_type = NULL;
    }
    req->content_type_invalid = req->content_type && !http_value_acceptable(req->content_type, FCGI_CONTENT_TYPE_MAX);
    /* Web servers bound headers too, but the app may sit behind one
     * configured generously, or be reached directly. */
    req->headers_too_large =
        !fcgi_request_headers_acceptable(req->fcgx->envp, FCGI_HEADER_VALUE_MAX, FCGI_HEADERS_TOTAL_MAX);
    drop_unless_acceptable(&req->accept, FCGI_ACCEPT_MAX);
    drop_unless_acceptable(&req->remote_addr, FCGI_REMOTE_ADDR_MAX);
    if (req->last_event_id && !http_value_acceptable(req->last_event_id, FCGI_LAST_EVENT_ID_MAX)) {
        /* Refusing would stop the browser's EventSource for good; starting
         * from a fresh snapshot frame is the safe answer. */
        free(req->last_event_id);
        req->last_event_id = NULL;
        req->last_event_id_ignored = true;
    }
}

enum proxy_err fcgi_request_load(struct fcgi_request *req, FCGX_Request *fcgx, struct buf *held)
{
    memset(req, 0, sizeof *req);
    clock_gettime(CLOCK_MONOTONIC, &req->started);
    req->fcgx = fcgx;
    req->detached_fd = -1;
    req->fcgi_id = (unsigned)fcgx->requestId;
    req->content_length = -1;
    req->out.held = *held;
    buf_init(held, held->max);

    const char *rid = fcgi_request_param(req, "HTTP_X_REQUEST_ID");
    if (rid && fcgi_request_id_acceptable(rid))
        snprintf(req->request_id, sizeof req->request_id, "%s", rid);
    else
        fcgi_request_id_generate(req->request_id);

    const char *method = fcgi_request_param(req, "REQUEST_METHOD");
    snprintf(req->method, sizeof req->method, "%s", method ? method : "");

    if (copy_param(&req->request_uri, req, "REQUEST_URI") || copy_param(&req->content_type, req, "CONTENT_TYPE") ||
        copy_param(&req->accept, req, "HTTP_ACCEPT") || copy_param(&req->last_event_id, req, "HTTP_LAST_EVENT_ID") ||
        copy_param(&req->remote_addr, req, "REMOTE_ADDR"))
        return PROXY_ERR_NOMEM;
    check_params(req);
    return PROXY_OK;
}

void fcgi_request_bound_reads(int fd, long long ms)
{
    struct timeval bound = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
}

static size_t read_raw(FCGX_Request *fcgx, char *data, size_t len)
{
    int ask = len > INT_MAX ? INT_MAX : (int)len;
    int got = FCGX_GetStr(data, ask, fcgx->in);
    return got > 0 ? (size_t)got : 0;
}

size_t fcgi_request_read(struct fcgi_request *req, char *data, size_t len)
{
    if (!req->fcgx || len == 0)
        return 0;
    if (!req->read_deadline_ms)
        return read_raw(req->fcgx, data, len);
    long long left = req->read_deadline_ms - clock_ms();
    if (left <= 0) {
        req->read_timed_out = true;
        return 0;
    }
    /* Each socket read may wait at most what is left of the deadline. What
     * libfcgi holds is taken at once; otherwise one byte is asked for, so
     * that one read (of whatever has arrived) is all the call waits for. */
    fcgi_request_bound_reads(req->fcgx->ipcFd, left);
    FCGX_Stream *in = req->fcgx->in;
    size_t held = in->stop > in->rdNext ? (size_t)(in->stop - in->rdNext) : 0;
    size_t got = read_raw(req->fcgx, data, held ? (len < held ? len : held) : 1);
    int error = FCGX_GetError(in);
    if (got == 0 && (error == EAGAIN || error == EWOULDBLOCK))
        req->read_timed_out = true;
    return got;
}

bool fcgi_request_drain(struct fcgi_request *req)
{
    char discard[4096];
    size_t discarded = 0, got;
    while (req->fcgx && discarded < FCGI_DRAIN_MAX && (got = read_raw(req->fcgx, discard, sizeof discard)) > 0)
        discarded += got;
    /* libfcgi marks a failed read as the end too: only a clean one counts. */
    return req->fcgx && FCGX_HasSeenEOF(req->fcgx->in) == EOF && FCGX_GetError(req->fcgx->in) == 0;
}

/* The leading fields of libfcgi's private reader state (FCGX_Stream_Data
 * in fcgiapp.c, the same in every libfcgi release since 2.4.0): after the
 * end of a request's input, the bytes libfcgi read beyond it are still in
 * its buffer, from the stream's rdNext to buffStop, and a web server's
 * FCGI_ABORT_REQUEST sent right behind the request may be among them. */
struct libfcgi_reader_head {
    unsigned char *buff;
    int bufflen;
    unsigned char *mBuff;
    unsigned char *buffStop;
};

static bool abort_held_by_libfcgi(const FCGX_Request *fcgx)
{
    const FCGX_Stream *in = fcgx->in;
    if (!in || !in->isClosed || !in->data)
        return false;
    const struct libfcgi_reader_head *head = in->data;
    if (!head->buffStop || !in->rdNext || head->buffStop <= in->rdNext)
        return false;
    struct fcgi_record_scanner scan = {.request_id = (unsigned)fcgx->requestId};
    return fcgi_record_scan(&scan, in->rdNext, (size_t)(head->buffStop - in->rdNext));
}

bool fcgi_request_input_broken(const struct fcgi_request *req)
{
    return req->fcgx && (FCGX_GetError(req->fcgx->in) != 0 || abort_held_by_libfcgi(req->fcgx));
}

int fcgi_request_fd(const struct fcgi_request *req)
{
    return req->fcgx ? req->fcgx->ipcFd : -1;
}

/* How much of what waits is looked at: an abort follows at most a few
 * records a web server might still have in flight. */
#define PEEK_MAX 512

enum fcgi_input fcgi_request_peek(const struct fcgi_request *req)
{
    unsigned char waiting[PEEK_MAX];
    ssize_t n = req->fcgx ? recv(req->fcgx->ipcFd, waiting, sizeof waiting, MSG_PEEK | MSG_DONTWAIT) : 0;
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? FCGI_INPUT_QUIET : FCGI_INPUT_GONE;
    if (n == 0)
        return FCGI_INPUT_GONE;
    struct fcgi_record_scanner scan = {.request_id = req->fcgi_id};
    return fcgi_record_scan(&scan, waiting, (size_t)n) ? FCGI_INPUT_GONE : FCGI_INPUT_OTHER;
}

void fcgi_request_detach(struct fcgi_request *req, struct fcgi_request *to, size_t unsent_max)
{
    /* Every web server sends the empty FCGI_STDIN of a GET at once: bytes
     * libfcgi buffered are lost at the handoff, and Apache answers 503
     * itself when its write of that record meets a closed connection. */
    bool clean = fcgi_request_drain(req);
    FCGX_Request *fcgx = req->fcgx;
    int fd = fcgx->ipcFd;
    /* libfcgi reads a FCGI_ABORT_REQUEST among the input as a protocol
     * error and drops what it held: the new owner must know. */
    req->aborted = (!clean && FCGX_GetError(fcgx->in) != 0) || abort_held_by_libfcgi(fcgx);
    req->peer_done = req->aborted;
    /* Free libfcgi's buffers and parameters but keep the descriptor, and
     * tell libfcgi there is no connection, so its next accept starts afresh
     * instead of closing what the new owner now holds. */
    FCGX_Free(fcgx, 0);
    fcgx->ipcFd = -1;

    *to = *req;
    struct buf held = req->out.held; /* the worker's: a stream's head needs little */
    memset(req, 0, sizeof *req);
    req->detached_fd = -1;
    req->out.held = held;
    buf_reset(&req->out.held);
    buf_init(&to->out.held, held.max);
    to->keep_conn = fcgx->keepConnection != 0;
    to->fcgx = NULL;
    to->detached = true;
    to->detached_fd = fd;
    to->scan = (struct fcgi_record_scanner){.request_id = to->fcgi_id};
    buf_init(&to->out.unsent, unsent_max);
    int flags = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

enum proxy_err fcgi_request_watch(struct fcgi_request *req, bool *aborted)
{
    unsigned char scratch[4096];
    *aborted = false;
    for (;;) {
        ssize_t n = read(req->detached_fd, scratch, sizeof scratch);
        if (n > 0) {
            if (fcgi_record_scan(&req->scan, scratch, (size_t)n)) {
                *aborted = req->aborted = true;
                req->peer_done = true;
                return PROXY_ERR_CLIENT_GONE;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return PROXY_OK;
        req->peer_done = true;
        return PROXY_ERR_CLIENT_GONE; /* EOF or error: the web server closed */
    }
}

/* A kept connection whose response ended cleanly serves the web server's
 * next request (Apache with enablereuse reuses it without asking); any
 * other detached connection is closed. */
static void release_detached(struct fcgi_request *req)
{
    int fd = req->detached_fd;
    const struct fcgi_response *out = &req->out;
    if (req->keep_conn && req->lobby && out->ended && !out->unsent.len && !out->queue.count && !out->out_failed &&
        !out->cut &&
        !req->peer_done) {
        int flags = fcntl(fd, F_GETFL, 0);
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK); /* workers read it blocking */
        fcgi_lobby_return(req->lobby, fd);
        return;
    }
    if (out->cut)
        fcgi_record_break(fd);
    close(fd);
}

void fcgi_request_free(struct fcgi_request *req, struct buf *held)
{
    if (!req)
        return;
    free(req->request_uri);
    free(req->content_type);
    free(req->accept);
    free(req->last_event_id);
    free(req->remote_addr);
    req->request_uri = req->content_type = req->accept = req->last_event_id = req->remote_addr = NULL;
    if (req->detached)
        release_detached(req);
    req->detached = false;
    req->detached_fd = -1;
    buf_free(&req->out.unsent);
    fcgi_queue_clear(&req->out.queue);
    /* The buffer goes back to the worker for its next request, unless a
     * huge head grew it: that memory is not kept per worker. */
    if (held && req->out.held.data && req->out.held.cap <= FCGI_RESPONSE_HELD_KEEP) {
        buf_reset(&req->out.held);
        *held = req->out.held;
    } else {
        buf_free(&req->out.held);
    }
    buf_init(&req->out.held, 0);
}
