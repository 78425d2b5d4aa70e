/* stream_loop.c: one thread, epoll and curl_multi carrying every open SSE
 * stream from the upstream to its FastCGI connection, flushing each chunk
 * the moment it arrives. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "fcgi/response.h"
#include "core/metrics.h"
#include "handlers/fanout.h"
#include "handlers/request_log.h"
#include "handlers/sse.h"
#include "handlers/stream_loop.h"
#include "handlers/upstream.h"

/* Bytes a slow client may leave unwritten before the upstream is paused;
 * beyond it the stream waits rather than growing. */
#define STREAM_PENDING_HIGH (256 * 1024)
/* A record's content plus what one curl read may add while paused. */
#define STREAM_PENDING_MAX (STREAM_PENDING_HIGH + 2 * FCGI_MAX_LENGTH)
/* After the upstream ends, how long the last bytes may take to leave. */
#define STREAM_DRAIN_MS 5000
/* A cut waits this long after the last bytes left before it breaks the
 * connection: nginx drops whatever it read in the same go as the break,
 * and frames before a cut are whole events the browser should have. */
#define CUT_SETTLE_MS 200
/* How long a frame that never ends may hold back the end of a stream whose
 * credential expired. */
#define CREDENTIAL_GRACE_S 30
/* How long a slow fan-out client's broken record may wait for its web
 * server to read again (nginx's send_timeout drops a client that reads
 * nothing for 60 s); meanwhile it holds one descriptor and one record. */
#define SLOW_CUT_DRAIN_MS 60000
/* How long the stop waits for streams to end cleanly. */
#define STOP_DRAIN_MS 2000
/* The beat of keepalives and deadlines. */
#define TICK_MS 250
#define KEEPALIVE_COMMENT ": keepalive\n\n"

enum watch_kind { WATCH_WAKE, WATCH_CURL, WATCH_CLIENT };

/* What an epoll event points at. Watches and streams that end during one
 * batch of events are freed only after the batch (the graveyard), so a later
 * event of the same batch never points at freed memory. */
struct watch {
    enum watch_kind kind;
    int fd;
    bool dead;
    struct stream *stream; /* WATCH_CLIENT */
    struct watch *next_dead;
};

enum stream_state {
    STREAM_RUNNING,  /* upstream transfer in progress */
    STREAM_DRAINING, /* upstream done, END_REQUEST queued, writing out */
};

struct stream {
    struct stream_loop *loop;
    struct stream *prev, *next;
    enum stream_state state;

    struct fcgi_request fcgi; /* detached from libfcgi: owns the connection */
    struct flow_request req;  /* moved in from the worker; req.fcgi points at fcgi */
    struct watch client_watch;
    bool want_out;           /* EPOLLOUT registered */

    bool fanout;                 /* a client of a shared subscription: no transfer of its own */
    struct fanout_member member;
    /* The history a fan-out client was handed on joining may wait beyond
     * OPENOVA_FLOW_CLIENT_BUFFER until the socket has taken this many bytes
     * in all (out.bytes_written); the allowance shrinks as they leave. */
    unsigned long long replay_end;

    CURL *easy;
    char curl_error[CURL_ERROR_SIZE]; /* libcurl's reason for a failure, for the log */
    struct upstream_exchange x;
    bool paused;

    struct sse_tracker sse;
    bool sse_mode;           /* a 200 event stream: keepalives allowed */
    long long quiet_since_ms; /* last upstream byte or keepalive */
    long long upstream_seen_ms; /* last sign of life from the upstream (a byte, or the end of our own pause) */
    long long head_deadline_ms; /* the upstream must answer by then: 504 */
    long long drain_deadline_ms;
    long long cut_after_ms;  /* a cut: when the connection may be broken (0: bytes still wait) */
    long long opened_ms;     /* when the loop took it */
    long long upstream_started_us;
    long long head_us;       /* from the request's arrival to the head; -1: no head yet */
    CURLcode curl_rc;        /* libcurl's result of the finished transfer */
    bool logged;             /* the end's line is out (a slow client's, at its cut) */
    const char *end_reason;  /* one of end_reasons' texts */
};

/* How a stream ends, in the log and as the metrics count it. */
static const struct {
    const char *text;
    enum metrics_stream_end kind;
} end_reasons[] = {
    {"client-gone", METRICS_END_CLIENT_GONE},
    {"client-slow", METRICS_END_CLIENT_GONE},   /* a fan-out client past OPENOVA_FLOW_CLIENT_BUFFER */
    {"aborted", METRICS_END_CLIENT_GONE},       /* the web server's client left */
    {"drain-timeout", METRICS_END_CLIENT_GONE}, /* a client that stopped reading */
    {"upstream-ended", METRICS_END_UPSTREAM_ENDED},
    {"upstream-failed", METRICS_END_UPSTREAM_FAILED},
    {"credential-expired", METRICS_END_TOKEN_EXPIRED},
    {"upstream-idle", METRICS_END_IDLE},
    {"shutdown", METRICS_END_SHUTDOWN},
    {"out-of-memory", METRICS_END_ERROR},
    {"epoll-failed", METRICS_END_ERROR},
};

static enum metrics_stream_end end_kind(const char *text)
{
    for (size_t i = 0; text && i < sizeof end_reasons / sizeof end_reasons[0]; i++)
        if (strcmp(end_reasons[i].text, text) == 0)
            return end_reasons[i].kind;
    return METRICS_END_ERROR;
}

struct stream_loop {
    const struct proxy_config *cfg;
    pthread_t thread;
    int epfd;
    struct watch wake;
    CURLM *multi;
    long long curl_deadline_ms; /* when libcurl wants its timeouts run; -1: never */
    struct fanout *fanout;      /* the shared subscriptions; NULL without OPENOVA_FLOW_FANOUT */

    atomic_uint open;     /* reserved slots, including streams in flight */
    atomic_llong oldest_opened_ms; /* of the streams the loop holds, as of the last tick; -1: none */
    atomic_bool stopping;
    bool joined;          /* the thread ended (stream_loop_join) */

    pthread_mutex_t lock; /* guards incoming */
    struct stream *incoming;

    struct stream *streams; /* owned by the loop thread only */
    struct stream *dead_streams;
    struct watch *dead_watches;
};

static void wake_loop(struct stream_loop *loop)
{
    uint64_t one = 1;
    ssize_t ignored = write(loop->wake.fd, &one, sizeof one);
    (void)ignored;
}

/* ---- writing to the web server ---- */

/* EPOLLOUT is watched exactly while bytes wait for the socket. */
static void watch_output(struct stream *s)
{
    bool want = fcgi_response_pending(&s->fcgi) > 0;
    if (s->want_out == want)
        return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0), .data.ptr = &s->client_watch};
    if (epoll_ctl(s->loop->epfd, EPOLL_CTL_MOD, s->fcgi.detached_fd, &ev) == 0)
        s->want_out = want;
}

static enum proxy_err send_head(struct stream *s, int status, const char *lines, size_t len)
{
    enum proxy_err err = fcgi_response_head(&s->fcgi, status, lines, len);
    watch_output(s);
    return err;
}

static enum proxy_err send_body(struct stream *s, const char *data, size_t len)
{
    enum proxy_err err = fcgi_response_write(&s->fcgi, data, len);
    watch_output(s);
    return err;
}

/* ---- upstream callbacks ---- */

/* The upstream answered: its time, and the request's until now. */
static void note_head(struct stream *s)
{
    s->req.upstream_us = clock_us() - s->upstream_started_us;
    metrics_upstream_call(METRICS_ROUTE_STREAM, s->req.upstream_us);
    s->head_us = fcgi_request_elapsed_us(&s->fcgi);
}

static enum proxy_err stream_on_head(void *ctx, long status, const char *lines, size_t len)
{
    struct stream *s = ctx;
    note_head(s);
    if (status != 200)
        return send_head(s, (int)status, lines, len); /* passed on, body and all */
    /* Our own SSE head: the upstream's framing and caching lines are about
     * its hop, and anti-buffering must hold whatever it said. */
    static const char sse_head[] = "Content-Type: text/event-stream\r\n"
                                   "Cache-Control: no-cache, no-transform\r\n"
                                   "X-Accel-Buffering: no\r\n";
    s->sse_mode = true;
    s->quiet_since_ms = s->upstream_seen_ms = clock_ms();
    enum proxy_err err = send_head(s, 200, sse_head, sizeof sse_head - 1);
    /* A stream may live for hours: its start leaves a line now. */
    struct request_log_extra open_line = {.msg = "stream open", .duration_us = s->head_us};
    request_log(&s->req, PROXY_LOG_INFO, &open_line);
    return err;
}

static enum proxy_err stream_on_body(void *ctx, const char *data, size_t len)
{
    struct stream *s = ctx;
    s->upstream_seen_ms = clock_ms();
    enum proxy_err err =
        fcgi_response_pending(&s->fcgi) >= STREAM_PENDING_HIGH ? PROXY_ERR_WOULD_BLOCK : send_body(s, data, len);
    if (err == PROXY_ERR_WOULD_BLOCK) {
        s->paused = true; /* libcurl keeps these bytes and offers them again */
        return err;
    }
    if (!err) {
        unsigned long long frames_before = s->sse.frames;
        sse_tracker_feed(&s->sse, data, len);
        s->quiet_since_ms = clock_ms();
        metrics_stream_relayed(s->sse.frames - frames_before, len);
    }
    return err;
}

/* ---- stream lifecycle ---- */

/* The end's line and counts: the request (its duration: until the head),
 * and the stream's lifetime. */
static void log_end(struct stream *s)
{
    if (s->logged)
        return;
    s->logged = true;
    const char *end = s->end_reason ? s->end_reason : "upstream-ended";
    struct request_log_extra end_line = {.msg = "stream end", .end = end, .duration_us = -1};
    request_log(&s->req, request_log_level(&s->req), &end_line);
    request_count(&s->req, s->head_us >= 0 ? s->head_us : fcgi_request_elapsed_us(&s->fcgi));
    metrics_stream_ended(end_kind(end), clock_ms() - s->opened_ms);
}

static void detach_upstream(struct stream *s)
{
    if (!s->easy)
        return;
    /* Removing an unfinished transfer makes libcurl close its connection:
     * that is how the upstream learns the client left. */
    curl_multi_remove_handle(s->loop->multi, s->easy);
    curl_easy_cleanup(s->easy);
    s->easy = NULL;
    upstream_exchange_release(&s->x);
}

static void destroy(struct stream *s)
{
    struct stream_loop *loop = s->loop;
    detach_upstream(s);
    fanout_leave(&s->member);
    log_end(s);
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, s->fcgi.detached_fd, NULL);
    if (s->prev)
        s->prev->next = s->next;
    else
        loop->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    fcgi_request_free(&s->fcgi, NULL); /* closes the connection */
    free(s->req.user);
    s->req.user = NULL;
    free(s->req.upstream_url_owned);
    s->req.upstream_url_owned = NULL;
    s->client_watch.dead = true;
    s->prev = NULL;
    s->next = loop->dead_streams;
    loop->dead_streams = s;
    atomic_fetch_sub(&loop->open, 1);
}

static void bury_the_dead(struct stream_loop *loop)
{
    while (loop->dead_streams) {
        struct stream *s = loop->dead_streams;
        loop->dead_streams = s->next;
        free(s);
    }
    while (loop->dead_watches) {
        struct watch *w = loop->dead_watches;
        loop->dead_watches = w->next_dead;
        free(w);
    }
}

/* The client (or the web server) left: drop everything now. */
static void abandon(struct stream *s, const char *why)
{
    s->end_reason = why;
    destroy(s);
}

static void log_upstream_end(struct stream *s, enum proxy_err err)
{
    int kind = upstream_failure_kind(err, s->curl_rc);
    if (kind >= 0)
        metrics_upstream_failure(METRICS_ROUTE_STREAM, (enum metrics_upstream_failure)kind);
    if (!s->fcgi.out.head_sent)
        proxy_log(PROXY_LOG_ERROR, s->fcgi.request_id, "upstream stream failed: %s%s%s",
                  proxy_strerror(err), s->curl_error[0] ? ": " : "", s->curl_error);
    else
        proxy_log(PROXY_LOG_WARN, s->fcgi.request_id, "upstream stream ended: %s%s%s; response cut off",
                  proxy_strerror(err), s->curl_error[0] ? ": " : "", s->curl_error);
}

/* What was sent leaves, then the connection closes without END_REQUEST:
 * the web server cuts its response too, as the flow server's own cut would
 * look to a client talking to it directly, never like a clean end. */
static void cut(struct stream *s)
{
    long long now = clock_ms();
    s->fcgi.out.cut = true;
    s->state = STREAM_DRAINING;
    s->drain_deadline_ms = now + STREAM_DRAIN_MS;
    s->cut_after_ms = fcgi_response_pending(&s->fcgi) ? 0 : now + CUT_SETTLE_MS;
    watch_output(s);
}

/* A draining stream whose last bytes left: ended now, or, for a cut, once
 * the web server had time to read them. */
static void drained(struct stream *s, long long now)
{
    if (!s->fcgi.out.cut) {
        destroy(s);
        return;
    }
    if (!s->cut_after_ms)
        s->cut_after_ms = now + CUT_SETTLE_MS;
    else if (now >= s->cut_after_ms)
        destroy(s);
}

/* The response is complete (or broken off): queue END_REQUEST and let it
 * drain, or cut it. */
static void finish(struct stream *s, enum proxy_err err)
{
    detach_upstream(s);
    fanout_leave(&s->member); /* nothing more of the subscription's is wanted */
    if (err == PROXY_ERR_CLIENT_GONE) {
        abandon(s, "client-gone");
        return;
    }
    if (!s->end_reason)
        s->end_reason = !err                       ? "upstream-ended"
                        : err == PROXY_ERR_NOMEM    ? "out-of-memory"
                        : err == PROXY_ERR_SHUTDOWN ? "shutdown"
                                                    : "upstream-failed";
    if (err) {
        log_upstream_end(s, err);
        if (s->fcgi.out.head_sent) {
            s->fcgi.out.error_code = proxy_err_code(err);
            cut(s);
            return;
        }
        fcgi_response_fail(&s->fcgi, err);
    }
    enum proxy_err end = fcgi_response_end(&s->fcgi);
    if (end == PROXY_ERR_CLIENT_GONE) {
        destroy(s); /* the end it was going to say stands */
        return;
    }
    if (end != PROXY_OK) {
        abandon(s, "out-of-memory");
        return;
    }
    s->state = STREAM_DRAINING;
    s->drain_deadline_ms = clock_ms() + STREAM_DRAIN_MS;
    if (fcgi_response_pending(&s->fcgi) == 0)
        destroy(s);
    else
        watch_output(s);
}

/* FCGI_ABORT_REQUEST: the upstream transfer closes at once and, as the
 * FastCGI specification wants, FCGI_END_REQUEST answers it (written if the
 * socket takes it now; the web server has no use for more). */
static void end_aborted(struct stream *s)
{
    detach_upstream(s);
    fanout_leave(&s->member);
    s->end_reason = "aborted";
    fcgi_response_end(&s->fcgi);
    fcgi_response_flush(&s->fcgi);
    destroy(s);
}

/* ---- a client of a shared subscription (fanout.h) ---- */

static enum proxy_err fan_on_frame(void *client, struct rcbuf *frame)
{
    struct stream *s = client;
    if (s->state != STREAM_RUNNING)
        return PROXY_OK;
    /* What it was given on joining may wait too, until it has left: by
     * reference, those frames are the subscription's anyway. */
    unsigned long long written = s->fcgi.out.bytes_written;
    size_t max = s->member.replaying ? SIZE_MAX
                                     : s->loop->cfg->client_buffer +
                                           (size_t)(s->replay_end > written ? s->replay_end - written : 0);
    enum proxy_err err = fcgi_response_share(&s->fcgi, frame, max);
    watch_output(s);
    if (err == PROXY_ERR_WOULD_BLOCK) {
        /* Too far behind: cut, so that it reconnects and starts afresh from
         * a snapshot frame; nobody else waits for it. A plain close would
         * let nginx end the response cleanly once the client caught up with
         * what it holds: a broken record goes out instead, when the socket
         * takes it. */
        fanout_leave(&s->member);
        s->end_reason = "client-slow";
        fcgi_response_break(&s->fcgi);
        cut(s);
        s->drain_deadline_ms = clock_ms() + SLOW_CUT_DRAIN_MS;
        log_end(s); /* its stream ends now; the broken record leaves when it can */
        return err;
    }
    if (err) {
        abandon(s, err == PROXY_ERR_CLIENT_GONE ? "client-gone" : "out-of-memory");
        return err;
    }
    s->sse.frames++; /* whole frames only: always at a boundary */
    s->quiet_since_ms = clock_ms();
    metrics_stream_relayed(1, frame->len);
    return PROXY_OK;
}

static enum proxy_err fan_on_body(void *client, const char *data, size_t len)
{
    struct stream *s = client;
    enum proxy_err err = s->state == STREAM_RUNNING ? send_body(s, data, len) : PROXY_OK;
    if (err)
        abandon(s, "client-gone");
    return err;
}

static void fan_on_end(void *client, enum proxy_err err, const char *reason, CURLcode rc, const char *curl_error)
{
    struct stream *s = client;
    s->curl_rc = rc;
    snprintf(s->curl_error, sizeof s->curl_error, "%s", curl_error ? curl_error : "");
    if (reason)
        s->end_reason = reason;
    if (s->state == STREAM_RUNNING)
        finish(s, err);
}

static const struct fanout_client_ops fan_ops = {
    .on_head = stream_on_head, /* a shared answer is taken as a client's own */
    .on_frame = fan_on_frame,
    .on_body = fan_on_body,
    .on_end = fan_on_end,
};

static void start_stream(struct stream_loop *loop, struct stream *s)
{
    s->next = loop->streams;
    if (loop->streams)
        loop->streams->prev = s;
    loop->streams = s;

    int fd = s->fcgi.detached_fd;
    s->client_watch = (struct watch){.kind = WATCH_CLIENT, .fd = fd, .stream = s};
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = &s->client_watch};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        abandon(s, "epoll-failed");
        return;
    }
    if (s->fcgi.aborted) {
        end_aborted(s); /* the abort came before the handoff */
        return;
    }
    s->head_deadline_ms = clock_ms() + loop->cfg->proxy_timeout_ms;
    s->upstream_started_us = clock_us();
    if (loop->fanout) {
        /* The subscription calls back: at once when it is live, else when
         * the upstream answers. */
        s->fanout = true;
        s->member.client = s;
        if (fanout_join(loop->fanout, &s->member, &s->req) != PROXY_OK) {
            finish(s, PROXY_ERR_NOMEM);
            return;
        }
        if (s->member.hub)
            s->replay_end = s->fcgi.out.bytes_written + fcgi_response_pending(&s->fcgi);
        return;
    }
    s->easy = upstream_easy_new(loop->cfg, s->req.upstreams, true);
    if (s->easy)
        curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, s->curl_error);
    s->x = (struct upstream_exchange){
        .req = &s->req,
        .action = "stream",
        .on_loop = true,
        .sink = {.ctx = s, .on_head = stream_on_head, .on_body = stream_on_body},
    };
    if (!s->easy || upstream_exchange_prepare(s->easy, loop->cfg, &s->x) != PROXY_OK ||
        curl_multi_add_handle(loop->multi, s->easy) != CURLM_OK) {
        finish(s, PROXY_ERR_NOMEM);
        return;
    }
}

/* ---- the loop ---- */

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct stream_loop *loop = userp;
    struct watch *w = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (w) {
            epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
            curl_multi_assign(loop->multi, fd, NULL);
            w->dead = true;
            w->next_dead = loop->dead_watches;
            loop->dead_watches = w;
        }
        return 0;
    }
    uint32_t events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w)
            return -1;
        *w = (struct watch){.kind = WATCH_CURL, .fd = fd};
        ev.data.ptr = w;
        if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST)
            epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev);
        curl_multi_assign(loop->multi, fd, w);
    } else {
        epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev);
    }
    return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct stream_loop *loop = userp;
    loop->curl_deadline_ms = timeout_ms < 0 ? -1 : clock_ms() + timeout_ms;
    return 0;
}

static void reap_transfers(struct stream_loop *loop)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(loop->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct upstream_exchange *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (fanout_owns(x)) {
            fanout_transfer_done(x, msg->data.result);
            continue;
        }
        struct stream *s = x->sink.ctx;
        s->curl_rc = msg->data.result;
        finish(s, upstream_exchange_result(x, msg->data.result));
    }
}

static void on_client_event(struct stream *s, uint32_t events)
{
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        bool aborted;
        if (fcgi_request_watch(&s->fcgi, &aborted) != PROXY_OK) {
            if (aborted)
                end_aborted(s);
            else
                abandon(s, "client-gone");
            return;
        }
    }
    if (!(events & EPOLLOUT))
        return;
    if (fcgi_response_flush(&s->fcgi) != PROXY_OK) {
        abandon(s, "client-gone");
        return;
    }
    watch_output(s);
    if (s->state == STREAM_DRAINING && fcgi_response_pending(&s->fcgi) == 0) {
        drained(s, clock_ms());
        return;
    }
    if (s->paused && s->easy && s->state == STREAM_RUNNING && fcgi_response_pending(&s->fcgi) < STREAM_PENDING_HIGH / 2) {
        s->paused = false;
        s->upstream_seen_ms = clock_ms(); /* the silence was ours */
        /* Unpausing delivers what libcurl held back, through our own
         * callbacks; a failure there ends the stream like any other. */
        CURLcode rc = curl_easy_pause(s->easy, CURLPAUSE_CONT);
        if (rc != CURLE_OK)
            finish(s, upstream_exchange_result(&s->x, rc));
    }
}

static void take_incoming(struct stream_loop *loop)
{
    uint64_t count;
    ssize_t ignored = read(loop->wake.fd, &count, sizeof count);
    (void)ignored;
    pthread_mutex_lock(&loop->lock);
    struct stream *list = loop->incoming;
    loop->incoming = NULL;
    pthread_mutex_unlock(&loop->lock);
    while (list) {
        struct stream *s = list;
        list = s->next;
        s->next = s->prev = NULL;
        start_stream(loop, s);
    }
}

/* Keepalive comments and deadlines. It walks every stream, so it runs on a
 * fixed beat rather than after every wakeup: with thousands of streams and
 * a frame each per second, walking them all per event cost most of the
 * loop's CPU. */
static void tick(struct stream_loop *loop)
{
    long long now = clock_ms();
    time_t wall = time(NULL);
    long keepalive = loop->cfg->keepalive_ms;
    long upstream_idle = loop->cfg->upstream_idle_ms;
    long long oldest = -1;
    struct stream *s = loop->streams;
    while (s) {
        struct stream *next = s->next;
        if (oldest < 0 || s->opened_ms < oldest)
            oldest = s->opened_ms;
        if (s->state == STREAM_DRAINING) {
            if (s->fcgi.out.cut && fcgi_response_pending(&s->fcgi) == 0)
                drained(s, now);
            else if (now >= s->drain_deadline_ms)
                /* a slow client's cut keeps its reason */
                abandon(s, s->end_reason && strcmp(s->end_reason, "client-slow") == 0 ? s->end_reason
                                                                                     : "drain-timeout");
        } else if (!s->fanout && !s->x.head_delivered && now >= s->head_deadline_ms) {
            /* Only the wait for the answer is bounded; the stream itself
             * may then live for hours. */
            finish(s, PROXY_ERR_UPSTREAM_TIMEOUT);
        } else if (s->req.credential_expires && wall >= s->req.credential_expires && s->state == STREAM_RUNNING &&
                   (sse_tracker_at_boundary(&s->sse) || wall >= s->req.credential_expires + CREDENTIAL_GRACE_S)) {
            /* A stream outlives no credential: the response ends between
             * frames (or, if a frame never ends, soon after anyway) and the
             * browser reconnects with a fresh token. */
            s->end_reason = "credential-expired";
            finish(s, s->fcgi.out.head_sent ? PROXY_OK : PROXY_ERR_SHUTDOWN);
        } else if (!s->fanout && upstream_idle > 0 && s->sse_mode && !s->paused &&
                   now - s->upstream_seen_ms >= upstream_idle) {
            /* A flow server that vanished without a FIN (host gone, network
             * partition) would only be noticed by TCP after minutes; it
             * sends a heartbeat every 15 s. Cut, so the browser reconnects. */
            s->end_reason = "upstream-idle";
            finish(s, PROXY_ERR_UPSTREAM_TIMEOUT);
        } else if (keepalive > 0 && s->sse_mode && !s->paused && fcgi_response_pending(&s->fcgi) == 0 &&
                   now - s->quiet_since_ms >= keepalive && sse_tracker_at_boundary(&s->sse)) {
            s->quiet_since_ms = now;
            /* Also how a vanished client is noticed behind lighttpd and
             * Apache, which do not watch an idle client socket. */
            if (send_body(s, KEEPALIVE_COMMENT, sizeof KEEPALIVE_COMMENT - 1) != PROXY_OK)
                abandon(s, "client-gone");
        }
        s = next;
    }
    atomic_store(&loop->oldest_opened_ms, oldest);
    if (loop->fanout)
        fanout_tick(loop->fanout, now);
}

static void stop_all(struct stream_loop *loop)
{
    struct stream *s = loop->streams;
    while (s) {
        struct stream *next = s->next;
        if (s->state == STREAM_RUNNING) {
            s->end_reason = "shutdown";
            finish(s, s->fcgi.out.head_sent ? PROXY_OK : PROXY_ERR_SHUTDOWN);
        }
        s = next;
    }
}

static void *loop_main(void *arg)
{
    struct stream_loop *loop = arg;
    struct epoll_event events[256];
    long long stop_deadline = 0;
    int running = 0;
    /* The tick also enforces answer deadlines, so it runs even without
     * keepalives; short keepalives get a beat fine enough for them. */
    long long tick_ms = TICK_MS;
    if (loop->cfg->keepalive_ms > 0 && loop->cfg->keepalive_ms < 1000)
        tick_ms = loop->cfg->keepalive_ms / 4 + 1;
    long long next_tick_ms = clock_ms() + tick_ms;
    for (;;) {
        if (atomic_load(&loop->stopping)) {
            if (!stop_deadline) {
                take_incoming(loop);
                stop_all(loop);
                stop_deadline = clock_ms() + STOP_DRAIN_MS;
            }
            if (!loop->streams || clock_ms() >= stop_deadline)
                break;
        }
        long long now = clock_ms();
        long long wake_at = next_tick_ms;
        if (loop->curl_deadline_ms >= 0 && loop->curl_deadline_ms < wake_at)
            wake_at = loop->curl_deadline_ms;
        int wait_ms = wake_at > now ? (int)(wake_at - now) : 0;
        int n = epoll_wait(loop->epfd, events, (int)(sizeof events / sizeof events[0]), wait_ms);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            struct watch *w = events[i].data.ptr;
            uint32_t ev = events[i].events;
            if (w->dead)
                continue;
            if (w->kind == WATCH_WAKE) {
                take_incoming(loop);
            } else if (w->kind == WATCH_CURL) {
                int mask = (ev & EPOLLIN ? CURL_CSELECT_IN : 0) | (ev & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                           (ev & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
                curl_multi_socket_action(loop->multi, w->fd, mask, &running);
                reap_transfers(loop);
            } else {
                on_client_event(w->stream, ev);
            }
        }
        now = clock_ms();
        if (loop->curl_deadline_ms >= 0 && now >= loop->curl_deadline_ms) {
            /* Cleared first: libcurl sets the next deadline from inside. */
            loop->curl_deadline_ms = -1;
            curl_multi_socket_action(loop->multi, CURL_SOCKET_TIMEOUT, 0, &running);
            reap_transfers(loop);
        }
        if (now >= next_tick_ms) {
            tick(loop);
            next_tick_ms = now + tick_ms;
        }
        bury_the_dead(loop);
    }
    /* Whatever is left could not drain in time. */
    while (loop->streams)
        abandon(loop->streams, "shutdown");
    fanout_close_all(loop->fanout); /* the subscriptions that lingered; freed by stream_loop_stop */
    bury_the_dead(loop);
    return NULL;
}

/* ---- the API the workers use ---- */

struct stream_loop *stream_loop_start(const struct proxy_config *cfg)
{
    struct stream_loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return NULL;
    loop->cfg = cfg;
    loop->curl_deadline_ms = -1;
    atomic_init(&loop->oldest_opened_ms, -1);
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->wake = (struct watch){.kind = WATCH_WAKE, .fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
    loop->multi = curl_multi_init();
    pthread_mutex_init(&loop->lock, NULL);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &loop->wake};
    if (loop->epfd < 0 || loop->wake.fd < 0 || !loop->multi ||
        epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wake.fd, &ev) != 0)
        goto fail;
    curl_multi_setopt(loop->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(loop->multi, CURLMOPT_SOCKETDATA, loop);
    curl_multi_setopt(loop->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(loop->multi, CURLMOPT_TIMERDATA, loop);
    if (cfg->fanout && !(loop->fanout = fanout_new(cfg, loop->multi, &fan_ops)))
        goto fail;

    /* The loop only polls and copies: a small stack is plenty. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int rc = pthread_create(&loop->thread, &attr, loop_main, loop);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        goto fail;
    return loop;

fail:
    fanout_free(loop->fanout);
    if (loop->multi)
        curl_multi_cleanup(loop->multi);
    if (loop->wake.fd >= 0)
        close(loop->wake.fd);
    if (loop->epfd >= 0)
        close(loop->epfd);
    pthread_mutex_destroy(&loop->lock);
    free(loop);
    return NULL;
}

bool stream_loop_reserve(struct stream_loop *loop)
{
    if (atomic_load(&loop->stopping))
        return false;
    unsigned open = atomic_load(&loop->open);
    do {
        if (open >= loop->cfg->max_streams)
            return false;
    } while (!atomic_compare_exchange_weak(&loop->open, &open, open + 1));
    return true;
}

void stream_loop_unreserve(struct stream_loop *loop)
{
    atomic_fetch_sub(&loop->open, 1);
}

void stream_loop_fanout_counts(struct stream_loop *loop, unsigned *subscriptions, unsigned *clients)
{
    fanout_counts(loop->fanout, subscriptions, clients);
}

unsigned stream_loop_open_streams(struct stream_loop *loop)
{
    return atomic_load(&loop->open);
}

long long stream_loop_oldest_age_ms(struct stream_loop *loop)
{
    long long oldest = atomic_load(&loop->oldest_opened_ms);
    return oldest < 0 || !atomic_load(&loop->open) ? -1 : clock_ms() - oldest;
}

enum proxy_err stream_loop_submit(struct stream_loop *loop, struct flow_request *req)
{
    struct stream *s = calloc(1, sizeof *s);
    if (!s)
        return PROXY_ERR_NOMEM;
    s->loop = loop;
    s->state = STREAM_RUNNING;
    s->opened_ms = clock_ms();
    s->head_us = -1;
    fcgi_request_detach(req->fcgi, &s->fcgi, STREAM_PENDING_MAX);
    s->req = *req;
    s->req.fcgi = &s->fcgi;
    s->req.upstream = NULL; /* the worker's */
    req->user = NULL;       /* moved */
    req->upstream_url_owned = NULL;
    sse_tracker_init(&s->sse);

    pthread_mutex_lock(&loop->lock);
    s->next = loop->incoming;
    loop->incoming = s;
    pthread_mutex_unlock(&loop->lock);
    wake_loop(loop);
    metrics_stream_opened();
    return PROXY_OK;
}

void stream_loop_begin_stop(struct stream_loop *loop)
{
    atomic_store(&loop->stopping, true);
    wake_loop(loop);
}

void stream_loop_join(struct stream_loop *loop)
{
    if (!loop || loop->joined)
        return;
    stream_loop_begin_stop(loop);
    pthread_join(loop->thread, NULL);
    loop->joined = true;
}

void stream_loop_stop(struct stream_loop *loop)
{
    if (!loop)
        return;
    stream_loop_join(loop);
    fanout_free(loop->fanout);
    curl_multi_cleanup(loop->multi);
    close(loop->wake.fd);
    close(loop->epfd);
    pthread_mutex_destroy(&loop->lock);
    free(loop);
}
