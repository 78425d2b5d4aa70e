/* sse_client.c: the benchmark's SSE client: opens N streams through a URL,
 * then measures how late each frame arrives and counts the frames lost
 * (make bench; not part of the proxy).
 *
 *   sse-client --url http://127.0.0.1:PORT/PATH --conns N --duration SECONDS
 *              [--sources K] [--inflight M] [--connect-timeout SECONDS]
 *              [--split SECONDS] [--flows F]
 *
 * It speaks to frames from bench/sse_upstream.c: "data: {"seq":N,"t":NS,
 * "t0":NS,...}" where t is the upstream's CLOCK_MONOTONIC at its write to
 * that connection and t0 at the start of that frame's broadcast (the same
 * on every connection). With --flows F the URL holds "{n}", which stream i
 * replaces by i % F written with four digits: F flows of N / F streams
 * each, opened flow after flow (the first F streams open one each). One thread, epoll,
 * non-blocking sockets; at most --inflight connections are being opened at
 * once; --sources K spreads them over 127.0.0.1..127.0.0.K as source
 * addresses (more ephemeral ports). Each response is read as HTTP/1.1,
 * chunked or not.
 *
 * Once every stream has its response head it prints "ready N" and measures
 * for --duration seconds. Frames counted: from the first one broadcast after
 * "ready" (lo: the first frame whose t0 is after it, so every stream was
 * open for all of it; without t0, one past the first frame seen after it)
 * to the newest seen when the duration ends (hi); a second of grace lets
 * the last one arrive everywhere. Each stream should see every seq in
 * [lo, hi]: what is missing is lost. Older frames that arrive after "ready"
 * (a proxy replaying what a flow's stream sent before this client joined)
 * are neither counted nor timed. Then it prints one JSON object: latency
 * (arrival - t) and from_broadcast (arrival - t0) p50/p90/p99/p999/max in
 * microseconds, frames, lost, streams that failed or ended. With --split,
 * frames sent more than SECONDS after "ready" have latencies of their own
 * (latency_after_split_us), for a caller that adds load from then on. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum conn_state { C_IDLE, C_CONNECTING, C_HEAD, C_BODY, C_DONE };
enum chunk_state { K_SIZE, K_DATA, K_DATA_END, K_END };

struct conn {
    int fd;
    enum conn_state state;
    bool chunked;
    bool counted_ready;
    enum chunk_state kstate;
    unsigned long long chunk_left;
    char head[2048];
    size_t head_len;
    char line[1024]; /* the SSE line (or chunk-size line) being assembled */
    size_t line_len;
    char size_line[64];
    size_t size_len;
    unsigned long long in_range; /* frames with lo <= seq <= hi */
    unsigned long long last_seq;
};

static struct {
    struct sockaddr_in dst;
    char request[1024];
    size_t request_len;
    /* --flows: the request is built per stream from these */
    int flows;
    char path[512];
    char host[128];
    int sources;
    struct conn *conns;
    int n;
    int epfd;
    /* measurement */
    bool measuring, ended;
    unsigned long long lo, hi; /* lo 0: not yet known */
    unsigned long long max_seq;
    long long t_ready;
    long long *samples;
    size_t n_samples, cap_samples;
    long long *from_broadcast; /* arrival - t0, for every sample */
    size_t n_from_broadcast, cap_from_broadcast;
    /* --split: frames sent from split_at on are counted apart (the load
     * that the caller adds then does not blur the first part). */
    long long split_at;
    long long *samples2;
    size_t n_samples2, cap_samples2;
    int ready, failed, closed_early;
    int first_fail_status;
    char first_fail[128];
    unsigned long long out_of_order;
} g;

static long long mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void fail_conn(struct conn *c, const char *why, int status)
{
    if (!g.first_fail[0]) {
        snprintf(g.first_fail, sizeof g.first_fail, "%s", why);
        g.first_fail_status = status;
    }
    if (c->state == C_BODY)
        g.closed_early++; /* counted ready: its missing frames count as lost */
    else
        g.failed++;
    if (c->fd >= 0) {
        epoll_ctl(g.epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = C_DONE;
}

static void sample_into(long long **v, size_t *n, size_t *cap, long long ns)
{
    if (*n == *cap) {
        size_t grown_cap = *cap ? *cap * 2 : 65536;
        long long *grown = realloc(*v, grown_cap * sizeof *grown);
        if (!grown)
            return;
        *v = grown;
        *cap = grown_cap;
    }
    (*v)[(*n)++] = ns;
}

static void sample(long long t, long long ns, long long from_t0)
{
    if (g.split_at && t >= g.split_at) {
        sample_into(&g.samples2, &g.n_samples2, &g.cap_samples2, ns);
    } else {
        sample_into(&g.samples, &g.n_samples, &g.cap_samples, ns);
        if (from_t0 >= 0)
            sample_into(&g.from_broadcast, &g.n_from_broadcast, &g.cap_from_broadcast, from_t0);
    }
}

/* One "data:" line of a frame. */
static void on_data_line(struct conn *c, const char *line, size_t len, long long arrival)
{
    char buf[1024];
    if (len >= sizeof buf)
        len = sizeof buf - 1;
    memcpy(buf, line, len);
    buf[len] = '\0';
    const char *ps = strstr(buf, "\"seq\":"), *pt = strstr(buf, "\"t\":"), *pt0 = strstr(buf, "\"t0\":");
    if (!ps || !pt)
        return;
    unsigned long long seq = strtoull(ps + 6, NULL, 10);
    long long t = strtoll(pt + 4, NULL, 10);
    long long t0 = pt0 ? strtoll(pt0 + 5, NULL, 10) : -1;
    if (c->last_seq && seq != c->last_seq + 1)
        g.out_of_order++;
    c->last_seq = seq;
    if (!g.measuring)
        return;
    if (g.lo == 0) {
        if (t0 < 0) {
            g.lo = seq + 1; /* the next broadcast reaches every open stream */
            return;
        }
        /* Every stream was open upstream before its head arrived, so a
         * frame whose broadcast began after "ready" reached all of them;
         * an older one (replayed to a late joiner) tells nothing. */
        if (t0 < g.t_ready)
            return;
        g.lo = seq;
    }
    if (!g.ended && seq > g.max_seq)
        g.max_seq = seq;
    if (seq < g.lo || (g.ended && seq > g.hi))
        return;
    c->in_range++;
    sample(t, arrival - t, t0 < 0 ? -1 : arrival - t0);
}

static void sse_bytes(struct conn *c, const char *p, size_t len, long long arrival)
{
    for (size_t i = 0; i < len; i++) {
        char ch = p[i];
        if (ch == '\n') {
            size_t l = c->line_len;
            if (l && c->line[l - 1] == '\r')
                l--;
            if (l >= 5 && memcmp(c->line, "data:", 5) == 0)
                on_data_line(c, c->line + 5, l - 5, arrival);
            c->line_len = 0;
        } else if (c->line_len < sizeof c->line) {
            c->line[c->line_len++] = ch;
        }
    }
}

/* Body bytes, through the chunked decoder when the response is chunked. */
static void body_bytes(struct conn *c, const char *p, size_t len, long long arrival)
{
    if (!c->chunked) {
        sse_bytes(c, p, len, arrival);
        return;
    }
    size_t i = 0;
    while (i < len) {
        switch (c->kstate) {
        case K_SIZE:
            if (p[i] == '\n') {
                c->size_line[c->size_len < sizeof c->size_line ? c->size_len : sizeof c->size_line - 1] = '\0';
                c->chunk_left = strtoull(c->size_line, NULL, 16);
                c->size_len = 0;
                c->kstate = c->chunk_left ? K_DATA : K_END;
            } else if (c->size_len < sizeof c->size_line - 1) {
                c->size_line[c->size_len++] = p[i];
            }
            i++;
            break;
        case K_DATA: {
            size_t take = len - i < c->chunk_left ? len - i : (size_t)c->chunk_left;
            sse_bytes(c, p + i, take, arrival);
            c->chunk_left -= take;
            i += take;
            if (!c->chunk_left)
                c->kstate = K_DATA_END;
            break;
        }
        case K_DATA_END: /* the CRLF after the data */
            if (p[i] == '\n')
                c->kstate = K_SIZE;
            i++;
            break;
        case K_END:
            i = len;
            break;
        }
    }
}

static void head_done(struct conn *c, size_t head_len, long long arrival)
{
    int status = 0;
    if (c->head_len > 12 && memcmp(c->head, "HTTP/1.", 7) == 0)
        status = atoi(c->head + 9);
    if (status != 200) {
        char why[96];
        snprintf(why, sizeof why, "status %d", status);
        fail_conn(c, why, status);
        return;
    }
    c->head[head_len - 1] = '\0';
    for (char *h = c->head; (h = strchr(h, '\n')) != NULL;) {
        h++;
        if (strncasecmp(h, "Transfer-Encoding:", 18) == 0 && strstr(h, "chunked"))
            c->chunked = true;
    }
    c->state = C_BODY;
    c->counted_ready = true;
    g.ready++;
    size_t rest = c->head_len - head_len;
    if (rest)
        body_bytes(c, c->head + head_len, rest, arrival);
}

/* The request of stream i: with --flows, its flow's number in the path. */
static int build_request(int i)
{
    if (g.flows < 1)
        return 0;
    char path[600];
    const char *mark = strstr(g.path, "{n}");
    int n = snprintf(path, sizeof path, "%.*s%04d%s", (int)(mark - g.path), g.path, i % g.flows, mark + 3);
    if (n < 0 || (size_t)n >= sizeof path)
        return -1;
    n = snprintf(g.request, sizeof g.request,
                 "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
                 "User-Agent: openova-bench-sse-client\r\n\r\n",
                 path, g.host);
    if (n < 0 || (size_t)n >= sizeof g.request)
        return -1;
    g.request_len = (size_t)n;
    return 0;
}

static void start_connect(int i)
{
    struct conn *c = &g.conns[i];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fail_conn(c, strerror(errno), 0);
        return;
    }
    if (g.sources > 1) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(i % g.sources))};
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0) {
            fail_conn(c, strerror(errno), 0);
            return;
        }
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = C_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
    epoll_ctl(g.epfd, EPOLL_CTL_ADD, c->fd, &ev);
    if (connect(c->fd, (struct sockaddr *)&g.dst, sizeof g.dst) != 0 && errno != EINPROGRESS)
        fail_conn(c, strerror(errno), 0);
}

static void on_event(int i, uint32_t events, char *buf, size_t cap)
{
    struct conn *c = &g.conns[i];
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            fail_conn(c, strerror(err), 0);
            return;
        }
        /* The request is small: one write takes it. */
        if (build_request(i) != 0 || write(c->fd, g.request, g.request_len) != (ssize_t)g.request_len) {
            fail_conn(c, "short write", 0);
            return;
        }
        c->state = C_HEAD;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
        epoll_ctl(g.epfd, EPOLL_CTL_MOD, c->fd, &ev);
        return;
    }
    (void)events;
    for (;;) {
        ssize_t n = read(c->fd, buf, cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            fail_conn(c, n == 0 ? "closed by the server" : strerror(errno), 0);
            return;
        }
        long long arrival = mono_ns();
        if (c->state == C_HEAD) {
            size_t take = (size_t)n < sizeof c->head - c->head_len ? (size_t)n : sizeof c->head - c->head_len;
            memcpy(c->head + c->head_len, buf, take);
            c->head_len += take;
            char *blank = memmem(c->head, c->head_len, "\r\n\r\n", 4);
            if (!blank) {
                if (c->head_len == sizeof c->head)
                    fail_conn(c, "response head too large", 0);
                continue;
            }
            head_done(c, (size_t)(blank - c->head) + 4, arrival);
            if (c->state != C_BODY)
                return;
            if (take < (size_t)n)
                body_bytes(c, buf + take, (size_t)n - take, arrival);
        } else if (c->state == C_BODY) {
            body_bytes(c, buf, (size_t)n, arrival);
        }
        /* Level-triggered: what is left wakes epoll again, so a short read
         * ends the turn without a read that would only say EAGAIN. */
        if ((size_t)n < cap)
            return;
    }
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* The p-th percentile of sorted v[0..n), in microseconds; -1 when empty. */
static double pct_us(const long long *v, size_t n, double p)
{
    if (!n)
        return -1;
    size_t k = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return (double)v[k] / 1000.0;
}

static void print_latency(const char *name, long long *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_ll);
    double mean = 0;
    for (size_t i = 0; i < n; i++)
        mean += (double)v[i];
    mean = n ? mean / (double)n / 1000.0 : -1;
    printf("\"%s\":{\"n\":%zu,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f}", name,
           n, pct_us(v, n, 50), pct_us(v, n, 90), pct_us(v, n, 99), pct_us(v, n, 99.9), n ? (double)v[n - 1] / 1000.0 : -1,
           mean);
}

static int parse_url(const char *url)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0)
        return -1;
    p += 7;
    const char *slash = strchr(p, '/');
    const char *colon = strchr(p, ':');
    if (!slash || !colon || colon > slash)
        return -1;
    char host[64];
    size_t hl = (size_t)(colon - p);
    if (hl >= sizeof host)
        return -1;
    memcpy(host, p, hl);
    host[hl] = '\0';
    g.dst.sin_family = AF_INET;
    g.dst.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &g.dst.sin_addr) != 1)
        return -1;
    if (g.flows > 0) {
        int hn = snprintf(g.host, sizeof g.host, "%.*s", (int)(slash - p), p);
        int pn = snprintf(g.path, sizeof g.path, "%s", slash);
        if (hn < 0 || (size_t)hn >= sizeof g.host || pn < 0 || (size_t)pn >= sizeof g.path || !strstr(g.path, "{n}"))
            return -1;
        return build_request(0);
    }
    int n = snprintf(g.request, sizeof g.request,
                     "GET %s HTTP/1.1\r\nHost: %.*s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
                     "User-Agent: openova-bench-sse-client\r\n\r\n",
                     slash, (int)(slash - p), p);
    if (n < 0 || (size_t)n >= sizeof g.request)
        return -1;
    g.request_len = (size_t)n;
    return 0;
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    double duration = 10, connect_timeout = 60, grace = 1.0, split = 0;
    int inflight = 256;
    g.n = 100;
    g.sources = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--url") == 0)
            url = argv[i + 1];
        else if (strcmp(argv[i], "--conns") == 0)
            g.n = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--duration") == 0)
            duration = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--split") == 0)
            split = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--grace") == 0)
            grace = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--sources") == 0)
            g.sources = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--inflight") == 0)
            inflight = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--connect-timeout") == 0)
            connect_timeout = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--flows") == 0)
            g.flows = atoi(argv[i + 1]);
        else
            url = NULL, i = argc;
    }
    if (!url || g.n < 1 || g.sources < 1 || inflight < 1 || g.flows < 0 || parse_url(url) != 0) {
        fprintf(stderr, "usage: sse-client --url http://HOST:PORT/PATH --conns N --duration SECONDS [--sources K] "
                        "[--inflight M] [--connect-timeout SECONDS] [--grace SECONDS] [--split SECONDS] "
                        "[--flows F (the URL holds {n})]\n");
        return 2;
    }
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
        if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < (rlim_t)g.n + 16) {
            fprintf(stderr, "sse-client: open file limit %llu is below the %d streams asked for\n",
                    (unsigned long long)lim.rlim_cur, g.n);
            return 1;
        }
    }
    g.conns = calloc((size_t)g.n, sizeof *g.conns);
    g.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!g.conns || g.epfd < 0) {
        perror("sse-client");
        return 1;
    }
    for (int i = 0; i < g.n; i++)
        g.conns[i].fd = -1;

    static char buf[65536];
    struct epoll_event *events = calloc(1024, sizeof *events);
    long long t0 = mono_ns(), t_ready = 0, t_end = 0;
    int next = 0;
    for (;;) {
        long long now = mono_ns();
        if (!g.measuring) {
            /* Open streams, at most `inflight` waiting for their head. */
            int opening = next - g.ready - g.failed;
            while (next < g.n && opening < inflight) {
                start_connect(next++);
                opening++;
            }
            bool all = g.ready + g.failed >= g.n;
            if (all || now - t0 > (long long)(connect_timeout * 1e9)) {
                g.measuring = true;
                t_ready = g.t_ready = now;
                if (split > 0)
                    g.split_at = now + (long long)(split * 1e9);
                printf("ready %d\n", g.ready);
                fflush(stdout);
            }
        } else if (!g.ended && now - t_ready >= (long long)(duration * 1e9)) {
            g.ended = true;
            g.hi = g.max_seq;
            t_end = now;
        } else if (g.ended && now - t_end >= (long long)(grace * 1e9)) {
            break;
        }
        int n = epoll_wait(g.epfd, events, 1024, 20);
        for (int k = 0; k < n; k++)
            on_event((int)events[k].data.u32, events[k].events, buf, sizeof buf);
    }

    unsigned long long frames = 0, lost = 0, expected = 0;
    bool window = g.lo && g.hi >= g.lo;
    unsigned long long per_stream = window ? g.hi - g.lo + 1 : 0;
    for (int i = 0; i < g.n; i++) {
        struct conn *c = &g.conns[i];
        if (!c->counted_ready)
            continue;
        frames += c->in_range;
        expected += per_stream;
        if (per_stream > c->in_range)
            lost += per_stream - c->in_range;
    }
    printf("{\"conns\":%d,\"ready\":%d,\"failed\":%d,\"closed_early\":%d,\"first_failure\":\"%s\","
           "\"connect_s\":%.3f,\"seq_lo\":%llu,\"seq_hi\":%llu,\"frames_per_stream\":%llu,"
           "\"frames\":%llu,\"expected\":%llu,\"lost\":%llu,\"out_of_order\":%llu,\"flows\":%d,",
           g.n, g.ready, g.failed, g.closed_early, g.first_fail, (double)(t_ready - t0) / 1e9, g.lo, g.hi, per_stream,
           frames, expected, lost, g.out_of_order, g.flows > 0 ? g.flows : 1);
    print_latency("latency_us", g.samples, g.n_samples);
    printf(",");
    print_latency("from_broadcast_us", g.from_broadcast, g.n_from_broadcast);
    if (split > 0) {
        printf(",");
        print_latency("latency_after_split_us", g.samples2, g.n_samples2);
    }
    printf("}\n");
    return window ? 0 : 1;
}
