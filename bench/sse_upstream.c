/* sse_upstream.c: the benchmark's flow server: SSE frames stamped with their
 * send time, broadcast to every open stream, plus a snapshot and an events
 * route, on one HTTP/1.1 port (make bench; not part of the proxy).
 *
 *   sse-upstream --listen 127.0.0.1:PORT --interval-ms 100 --snapshot FILE
 *
 *   GET  /v1/flows/{id}/stream    200 text/event-stream, chunked: ": open"
 *                                 at once, then every --interval-ms one frame
 *                                 "id: N\nevent: tick\ndata: {"seq":N,"t":NS,
 *                                 "t0":NS,"pad":"..."}\n\n" to every open
 *                                 stream, whatever its flow id
 *   GET  /v1/flows/{id}/snapshot  200 application/json, the file's bytes
 *   POST /v1/flows/{id}/events    the body read to its end, then 200 {"seq":N}
 *   GET  /stats                   {"streams":..,"streams_total":..,"flows":..,
 *                                 "seq":..,"dropped":..,"events":..}
 *   GET  /healthz                 200 ok (the app checks it when its metrics,
 *                                 status or readiness are read)
 *
 * t is CLOCK_MONOTONIC in nanoseconds, taken for each connection just before
 * its write: the benchmark's client, on the same host, subtracts it from the
 * arrival time, so the upstream's own fan-out time is not counted against
 * the proxy in front. t0 is the same clock when the broadcast of that frame
 * began (the same on every stream): arrival - t0 is the frame's delay from
 * the upstream's first write of it, fan-out included wherever it happens.
 * Frames carry a sequence number so the client counts what was lost.
 *
 * The stream connections are counted (issue 18: with fan-out the proxy
 * opens one per flow): "streams" is how many are open now, "streams_total"
 * how many were accepted since the start, "flows" how many distinct flow
 * ids the open ones are for.
 *
 * Two threads: the main one accepts and answers requests (keep-alive); a
 * stream, once its head is out, moves to the broadcast thread, which owns
 * every open stream and writes each frame to each of them, keeping what a
 * socket does not take (bounded; past it the stream is dropped and
 * counted). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 16384
/* What a stream may owe its socket before it is dropped: about a minute of
 * frames at 10 per second. */
#define STREAM_PENDING_MAX (1024 * 1024)

enum conn_state { READ_HEAD, READ_BODY, WRITE_RESPONSE };

/* A connection of the main thread. */
struct conn {
    int fd;
    enum conn_state state;
    char in[HEAD_MAX];
    size_t in_len;
    unsigned long long body_left;
    bool close_after;
    char head[256];
    struct iovec iov[2];
    size_t out_left;
};

/* A stream, owned by the broadcast thread once handed over. */
struct stream {
    int fd;
    size_t index; /* in the broadcast array */
    unsigned *flow_open; /* its flow's count of open streams (flows[]) */
    char *pending;
    size_t pending_len, pending_cap;
    bool want_out;
    struct stream *next_incoming;
};

static struct {
    char *snapshot;
    size_t snapshot_len;
    long interval_ms;
    size_t pad_len;
    int epfd;
    /* handoff to the broadcast thread */
    pthread_mutex_t lock;
    struct stream *incoming;
    int wake_fd;
    atomic_ullong seq;
    atomic_ullong streams_open;
    atomic_ullong streams_total;
    atomic_ullong dropped;
    atomic_ullong events;
} g;

/* Open streams per flow id, under g.lock: open addressing, never shrinks
 * (a flow whose streams all closed keeps its slot at 0). Enough for the
 * benchmark's 1,000 flows many times over; past FLOW_SLOTS ids a stream is
 * not counted by flow (flows_untracked says how many). */
#define FLOW_SLOTS 16384
#define FLOW_ID_MAX 128
static struct flow_slot {
    char id[FLOW_ID_MAX + 1];
    unsigned open;
} flows[FLOW_SLOTS];
static unsigned long long flows_open, flows_untracked;

/* The count of id's open streams, its slot taken if new; NULL when the
 * table is full or id too long. Called with g.lock held. */
static unsigned *flow_slot(const char *id, size_t len)
{
    if (len > FLOW_ID_MAX)
        return NULL;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211ULL;
    for (size_t probe = 0; probe < FLOW_SLOTS; probe++) {
        struct flow_slot *f = &flows[(h + probe) % FLOW_SLOTS];
        if (!f->id[0]) {
            memcpy(f->id, id, len);
            f->id[len] = '\0';
            return &f->open;
        }
        if (strlen(f->id) == len && memcmp(f->id, id, len) == 0)
            return &f->open;
    }
    return NULL;
}

/* A stream of the flow behind count opened (count NULL: untracked).
 * Called with g.lock held. */
static void flow_enter(unsigned *count)
{
    if (!count) {
        flows_untracked++;
        return;
    }
    if ((*count)++ == 0)
        flows_open++;
}

static void flow_leave(unsigned *count)
{
    pthread_mutex_lock(&g.lock);
    if (!count)
        flows_untracked--;
    else if (--*count == 0)
        flows_open--;
    pthread_mutex_unlock(&g.lock);
}

static long long mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "sse-upstream: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void raise_fd_limit(void)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
}

/* ---- the broadcast thread ---- */

static struct stream **streams;
static size_t n_streams, cap_streams;

static int pending_append(struct stream *s, const char *data, size_t len)
{
    if (s->pending_len + len > STREAM_PENDING_MAX)
        return -1;
    if (s->pending_len + len > s->pending_cap) {
        size_t cap = s->pending_cap ? s->pending_cap : 4096;
        while (cap < s->pending_len + len)
            cap *= 2;
        char *grown = realloc(s->pending, cap);
        if (!grown)
            return -1;
        s->pending = grown;
        s->pending_cap = cap;
    }
    memcpy(s->pending + s->pending_len, data, len);
    s->pending_len += len;
    return 0;
}

static void stream_watch(int bfd, struct stream *s, bool out)
{
    if (s->want_out == out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0), .data.ptr = s};
    epoll_ctl(bfd, EPOLL_CTL_MOD, s->fd, &ev);
    s->want_out = out;
}

static void stream_close(int bfd, struct stream *s)
{
    epoll_ctl(bfd, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    size_t i = s->index;
    streams[i] = streams[--n_streams];
    streams[i]->index = i;
    flow_leave(s->flow_open);
    free(s->pending);
    free(s);
    atomic_fetch_sub(&g.streams_open, 1);
}

/* Writes what s owes; -1 when the peer is gone. */
static int stream_flush(int bfd, struct stream *s)
{
    while (s->pending_len) {
        ssize_t n = write(s->fd, s->pending, s->pending_len);
        if (n > 0) {
            memmove(s->pending, s->pending + n, s->pending_len - (size_t)n);
            s->pending_len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            stream_watch(bfd, s, true);
            return 0;
        } else {
            return -1;
        }
    }
    stream_watch(bfd, s, false);
    return 0;
}

/* Sends one chunk; what the socket does not take waits in pending. */
static int stream_send(int bfd, struct stream *s, const char *data, size_t len)
{
    if (s->pending_len)
        return pending_append(s, data, len);
    ssize_t n;
    do
        n = write(s->fd, data, len);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return -1;
    size_t done = n > 0 ? (size_t)n : 0;
    if (done < len) {
        if (pending_append(s, data + done, len - done))
            return -1;
        stream_watch(bfd, s, true);
    }
    return 0;
}

static void take_incoming(int bfd)
{
    uint64_t count;
    ssize_t ignored = read(g.wake_fd, &count, sizeof count);
    (void)ignored;
    pthread_mutex_lock(&g.lock);
    struct stream *list = g.incoming;
    g.incoming = NULL;
    pthread_mutex_unlock(&g.lock);
    while (list) {
        struct stream *s = list;
        list = s->next_incoming;
        if (n_streams == cap_streams) {
            size_t cap = cap_streams ? cap_streams * 2 : 1024;
            struct stream **grown = realloc(streams, cap * sizeof *grown);
            if (!grown) {
                close(s->fd);
                flow_leave(s->flow_open);
                free(s->pending);
                free(s);
                atomic_fetch_sub(&g.streams_open, 1);
                continue;
            }
            streams = grown;
            cap_streams = cap;
        }
        s->index = n_streams;
        streams[n_streams++] = s;
        s->want_out = s->pending_len > 0;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (s->want_out ? EPOLLOUT : 0), .data.ptr = s};
        if (epoll_ctl(bfd, EPOLL_CTL_ADD, s->fd, &ev) != 0 || stream_flush(bfd, s) != 0) {
            atomic_fetch_add(&g.dropped, 1);
            stream_close(bfd, s);
        }
    }
}

/* One frame to every stream, each stamped just before its write. */
static void broadcast(int bfd)
{
    unsigned long long seq = atomic_fetch_add(&g.seq, 1) + 1;
    long long t0 = mono_ns();
    char frame[8192];
    const size_t room = 16; /* for the chunk-size line, written in front */
    size_t i = 0;
    while (i < n_streams) {
        struct stream *s = streams[i];
        long long t = mono_ns();
        int n = snprintf(frame + room, sizeof frame - room - 2,
                         "id: %llu\nevent: tick\ndata: {\"seq\":%llu,\"t\":%lld,\"t0\":%lld,\"pad\":\"%.*s\"}\n\n", seq,
                         seq, t, t0, (int)g.pad_len,
                         "................................................................................................"
                         "................................................................................................"
                         "................................................................................................"
                         "................................................................................................");
        size_t payload = (size_t)n;
        char size_line[16];
        int h = snprintf(size_line, sizeof size_line, "%zx\r\n", payload);
        char *start = frame + room - h;
        memcpy(start, size_line, (size_t)h);
        memcpy(frame + room + payload, "\r\n", 2);
        if (stream_send(bfd, s, start, (size_t)h + payload + 2) != 0) {
            atomic_fetch_add(&g.dropped, 1);
            stream_close(bfd, s); /* the last one moved into slot i */
            continue;
        }
        i++;
    }
}

static void *broadcast_main(void *arg)
{
    (void)arg;
    int bfd = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (bfd < 0 || tfd < 0)
        die("broadcast thread");
    struct itimerspec its = {
        .it_interval = {.tv_sec = g.interval_ms / 1000, .tv_nsec = (g.interval_ms % 1000) * 1000000L},
    };
    its.it_value = its.it_interval;
    timerfd_settime(tfd, 0, &its, NULL);
    /* Markers for the two fds that are not streams. */
    static char wake_marker, timer_marker;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &wake_marker};
    epoll_ctl(bfd, EPOLL_CTL_ADD, g.wake_fd, &ev);
    ev.data.ptr = &timer_marker;
    epoll_ctl(bfd, EPOLL_CTL_ADD, tfd, &ev);
    struct epoll_event events[512];
    char scratch[4096];
    for (;;) {
        int n = epoll_wait(bfd, events, 512, -1);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        bool tick = false;
        for (int k = 0; k < n; k++) {
            void *p = events[k].data.ptr;
            if (p == &wake_marker) {
                take_incoming(bfd);
                continue;
            }
            if (p == &timer_marker) {
                uint64_t expirations;
                ssize_t ignored = read(tfd, &expirations, sizeof expirations);
                (void)ignored;
                tick = true;
                continue;
            }
            /* epoll reports each fd once per batch, and a stream is only
             * closed by its own event (or by a tick, after the batch), so
             * s is live here. */
            struct stream *s = p;
            uint32_t e = events[k].events;
            bool gone = false;
            if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                    ssize_t r = read(s->fd, scratch, sizeof scratch);
                    if (r > 0)
                        continue;
                    if (r < 0 && errno == EINTR)
                        continue;
                    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        break;
                    gone = true;
                    break;
                }
            }
            if (!gone && (e & EPOLLOUT) && stream_flush(bfd, s) != 0)
                gone = true;
            if (gone)
                stream_close(bfd, s);
        }
        if (tick) {
            take_incoming(bfd); /* streams that arrived just now hear this frame too */
            broadcast(bfd);
        }
    }
    return NULL;
}

/* ---- the main thread: requests ---- */

static void conn_close(struct conn *c)
{
    epoll_ctl(g.epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

static void conn_watch(struct conn *c, bool out)
{
    struct epoll_event ev = {.events = out ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    epoll_ctl(g.epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes what is left of the response; 1 done, 0 waiting, -1 gone. */
static int conn_write(struct conn *c)
{
    while (c->out_left) {
        int cnt = c->iov[0].iov_len ? 2 : 1;
        struct iovec *iov = c->iov[0].iov_len ? c->iov : c->iov + 1;
        ssize_t n = writev(c->fd, iov, cnt);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return -1;
        size_t done = (size_t)n;
        c->out_left -= done;
        for (int k = 0; k < 2 && done; k++) {
            size_t take = done < c->iov[k].iov_len ? done : c->iov[k].iov_len;
            c->iov[k].iov_base = (char *)c->iov[k].iov_base + take;
            c->iov[k].iov_len -= take;
            done -= take;
        }
    }
    return 1;
}

static void respond(struct conn *c, int status, const char *reason, const char *type, const char *body, size_t len)
{
    int h = snprintf(c->head, sizeof c->head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status, reason, type, len,
                     c->close_after ? "Connection: close\r\n" : "");
    c->iov[0] = (struct iovec){c->head, (size_t)h};
    c->iov[1] = (struct iovec){(void *)body, len};
    c->out_left = (size_t)h + len;
    c->state = WRITE_RESPONSE;
}

/* Moves c to the broadcast thread as a stream of flow id[0..id_len); c is
 * gone afterwards (id points into it: used before it is freed). */
static void start_stream(struct conn *c, const char *id, size_t id_len)
{
    static const char head[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/event-stream\r\n"
                               "Cache-Control: no-cache, no-transform\r\n"
                               "X-Accel-Buffering: no\r\n"
                               "Transfer-Encoding: chunked\r\n"
                               "\r\n"
                               "8\r\n: open\n\n\r\n";
    struct stream *s = calloc(1, sizeof *s);
    epoll_ctl(g.epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (!s) {
        close(c->fd);
        free(c);
        return;
    }
    s->fd = c->fd;
    pthread_mutex_lock(&g.lock);
    s->flow_open = flow_slot(id, id_len);
    flow_enter(s->flow_open);
    pthread_mutex_unlock(&g.lock);
    free(c);
    ssize_t n = write(s->fd, head, sizeof head - 1);
    size_t done = n > 0 ? (size_t)n : 0;
    if (done < sizeof head - 1 && pending_append(s, head + done, sizeof head - 1 - done) != 0) {
        close(s->fd);
        flow_leave(s->flow_open);
        free(s);
        return;
    }
    atomic_fetch_add(&g.streams_open, 1);
    atomic_fetch_add(&g.streams_total, 1);
    pthread_mutex_lock(&g.lock);
    s->next_incoming = g.incoming;
    g.incoming = s;
    pthread_mutex_unlock(&g.lock);
    uint64_t one = 1;
    ssize_t ignored = write(g.wake_fd, &one, sizeof one);
    (void)ignored;
}

static bool header_is(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len > n && strncasecmp(line, name, n) == 0 && line[n] == ':';
}

static bool path_is_route(const char *path, size_t len, const char *action)
{
    static const char prefix[] = "/v1/flows/";
    size_t p = sizeof prefix - 1, a = strlen(action);
    if (len <= p + a + 1 || memcmp(path, prefix, p) != 0 || memcmp(path + len - a, action, a) != 0 ||
        path[len - a - 1] != '/')
        return false;
    return memchr(path + p, '/', len - p - a - 1) == NULL;
}

/* Parses the head in c->in[0..head_len); decides the answer. Returns 1 when
 * c became a stream (and is gone). */
static int handle_head(struct conn *c, size_t head_len)
{
    const char *line = c->in, *end = c->in + head_len;
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    const char *sp1 = memchr(line, ' ', (size_t)(eol - line));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    unsigned long long content_length = 0;
    bool chunked = false;
    c->close_after = false;
    if (!sp1 || !sp2) {
        c->close_after = true;
        respond(c, 400, "Bad Request", "text/plain", "bad request\n", 12);
        return 0;
    }
    if (eol - sp2 >= 9 && memcmp(sp2 + 1, "HTTP/1.0", 8) == 0)
        c->close_after = true;
    for (const char *h = eol + 1; h < end;) {
        const char *nl = memchr(h, '\n', (size_t)(end - h));
        size_t len = (size_t)(nl - h);
        if (header_is(h, len, "Content-Length"))
            content_length = strtoull(h + 15, NULL, 10);
        else if (header_is(h, len, "Transfer-Encoding"))
            chunked = true;
        else if (header_is(h, len, "Connection") && memmem(h, len, "close", 5))
            c->close_after = true;
        else if (header_is(h, len, "Connection") && memmem(h, len, "keep-alive", 10))
            c->close_after = false;
        h = nl + 1;
    }
    const char *path = sp1 + 1;
    size_t path_len = (size_t)(sp2 - path);
    const char *q = memchr(path, '?', path_len);
    if (q)
        path_len = (size_t)(q - path);
    size_t method_len = (size_t)(sp1 - line);
    bool get = method_len == 3 && memcmp(line, "GET", 3) == 0;
    bool post = method_len == 4 && memcmp(line, "POST", 4) == 0;
    if (chunked) {
        c->close_after = true;
        respond(c, 411, "Length Required", "text/plain", "length required\n", 16);
    } else if (get && path_is_route(path, path_len, "stream")) {
        static const size_t prefix = sizeof "/v1/flows/" - 1, suffix = sizeof "/stream" - 1;
        start_stream(c, path + prefix, path_len - prefix - suffix);
        return 1;
    } else if (get && path_is_route(path, path_len, "snapshot")) {
        respond(c, 200, "OK", "application/json", g.snapshot, g.snapshot_len);
    } else if (post && path_is_route(path, path_len, "events")) {
        c->body_left = content_length;
        c->state = READ_BODY;
        return 0;
    } else if (get && path_len == 8 && memcmp(path, "/healthz", 8) == 0) {
        respond(c, 200, "OK", "text/plain", "ok\n", 3);
    } else if (get && path_len == 6 && memcmp(path, "/stats", 6) == 0) {
        static char stats[320];
        pthread_mutex_lock(&g.lock);
        unsigned long long n_flows = flows_open, untracked = flows_untracked;
        pthread_mutex_unlock(&g.lock);
        int n = snprintf(stats, sizeof stats,
                         "{\"streams\":%llu,\"streams_total\":%llu,\"flows\":%llu,\"flows_untracked\":%llu,"
                         "\"seq\":%llu,\"dropped\":%llu,\"events\":%llu}\n",
                         atomic_load(&g.streams_open), atomic_load(&g.streams_total), n_flows, untracked,
                         atomic_load(&g.seq), atomic_load(&g.dropped), atomic_load(&g.events));
        respond(c, 200, "OK", "application/json", stats, (size_t)n);
    } else {
        respond(c, 404, "Not Found", "text/plain", "not found\n", 10);
    }
    return 0;
}

static void answer_events(struct conn *c)
{
    static _Thread_local char body[64];
    unsigned long long seq = atomic_fetch_add(&g.events, 1) + 1;
    int n = snprintf(body, sizeof body, "{\"seq\":%llu}", seq);
    respond(c, 200, "OK", "application/json", body, (size_t)n);
}

/* Runs c's state machine as far as the bytes at hand allow. */
static void conn_drive(struct conn *c, bool readable)
{
    static char scratch[65536];
    for (;;) {
        if (c->state == WRITE_RESPONSE) {
            int rc = conn_write(c);
            if (rc < 0) {
                conn_close(c);
                return;
            }
            if (rc == 0) {
                conn_watch(c, true);
                return;
            }
            if (c->close_after) {
                conn_close(c);
                return;
            }
            conn_watch(c, false);
            c->state = READ_HEAD;
            continue; /* a pipelined request may already be in c->in */
        }
        if (c->state == READ_BODY) {
            /* Bytes already read past the head count first. */
            size_t take = c->in_len < c->body_left ? c->in_len : (size_t)c->body_left;
            memmove(c->in, c->in + take, c->in_len - take);
            c->in_len -= take;
            c->body_left -= take;
            while (c->body_left) {
                size_t want = c->body_left < sizeof scratch ? (size_t)c->body_left : sizeof scratch;
                ssize_t n = read(c->fd, scratch, want);
                if (n > 0) {
                    c->body_left -= (unsigned long long)n;
                    continue;
                }
                if (n < 0 && errno == EINTR)
                    continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    return;
                conn_close(c);
                return;
            }
            answer_events(c);
            continue;
        }
        /* READ_HEAD */
        char *blank = c->in_len >= 4 ? memmem(c->in, c->in_len, "\r\n\r\n", 4) : NULL;
        if (blank) {
            size_t head_len = (size_t)(blank - c->in) + 4;
            size_t rest = c->in_len - head_len;
            char saved[HEAD_MAX];
            memcpy(saved, c->in + head_len, rest);
            if (handle_head(c, head_len))
                return;
            memcpy(c->in, saved, rest);
            c->in_len = rest;
            continue;
        }
        if (!readable && c->in_len == 0)
            return;
        if (c->in_len == sizeof c->in) {
            conn_close(c);
            return;
        }
        ssize_t n = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_close(c);
        return;
    }
}

static int listen_on(const char *spec)
{
    const char *colon = strrchr(spec, ':');
    if (!colon)
        return -1;
    char host[64];
    size_t hl = (size_t)(colon - spec);
    if (hl >= sizeof host)
        return -1;
    memcpy(host, spec, hl);
    host[hl] = '\0';
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 4096) != 0)
        return -1;
    return fd;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat st;
    char *data = NULL;
    if (fstat(fileno(f), &st) == 0 && (data = malloc((size_t)st.st_size + 1)) &&
        fread(data, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        free(data);
        data = NULL;
    }
    fclose(f);
    if (data)
        *len = (size_t)st.st_size;
    return data;
}

int main(int argc, char **argv)
{
    const char *listen_spec = "127.0.0.1:8090", *snapshot = NULL;
    long frame_bytes = 256;
    g.interval_ms = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0)
            listen_spec = argv[i + 1];
        else if (strcmp(argv[i], "--interval-ms") == 0)
            g.interval_ms = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--snapshot") == 0)
            snapshot = argv[i + 1];
        else if (strcmp(argv[i], "--frame-bytes") == 0)
            frame_bytes = atol(argv[i + 1]);
        else {
            fprintf(stderr, "usage: sse-upstream --listen HOST:PORT [--interval-ms N] [--snapshot FILE] "
                            "[--frame-bytes N]\n");
            return 2;
        }
    }
    if (g.interval_ms < 1)
        g.interval_ms = 1;
    /* The frame's fixed part is about 104 bytes; the pad makes up the rest. */
    g.pad_len = frame_bytes > 104 + 384 ? 384 : frame_bytes > 104 ? (size_t)(frame_bytes - 104) : 0;
    static const char empty_flow[] = "{\"type\":\"snapshot\",\"flow\":null,\"nodes\":[],\"relationships\":[]}";
    g.snapshot = (char *)empty_flow;
    g.snapshot_len = sizeof empty_flow - 1;
    if (snapshot && !(g.snapshot = read_file(snapshot, &g.snapshot_len)))
        die(snapshot);

    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    int lfd = listen_on(listen_spec);
    if (lfd < 0)
        die(listen_spec);
    g.epfd = epoll_create1(EPOLL_CLOEXEC);
    g.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&g.lock, NULL);
    if (g.epfd < 0 || g.wake_fd < 0)
        die("epoll");
    pthread_t thread;
    if (pthread_create(&thread, NULL, broadcast_main, NULL) != 0)
        die("pthread_create");
    static char listen_marker;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_marker};
    epoll_ctl(g.epfd, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(g.epfd, events, 256, -1);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int k = 0; k < n; k++) {
            if (events[k].data.ptr == &listen_marker) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *c = calloc(1, sizeof *c);
                    if (!c) {
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(g.epfd, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            /* A connection is closed only by its own event: each fd is
             * reported once per batch, so c is live here. */
            conn_drive(events[k].data.ptr, true);
        }
    }
}
