/* fanout.c: shared upstream subscriptions, one per (upstream, flow), their
 * frame history and their members (see fanout.h). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "handlers/fanout.h"
#include "handlers/sse.h"

/* Joinable subscriptions are found by hashing their key; a process holds
 * one per flow watched, a few thousand at most. */
#define FANOUT_BUCKETS 1024
/* A frame (the snapshot frame above all) may be as large as a snapshot,
 * plus its event, id and data field names. */
#define FRAME_OVERHEAD (4 * 1024)

enum hub_state {
    HUB_WAITING, /* for the upstream's answer */
    HUB_LIVE,    /* 200: frames flow */
    HUB_REFUSED, /* another status: passed on, then over */
};

struct fanout {
    const struct proxy_config *cfg;
    CURLM *multi;
    const struct fanout_client_ops *ops;
    struct fanout_hub *hubs;                    /* every open subscription */
    struct fanout_hub *buckets[FANOUT_BUCKETS]; /* the joinable ones */
    unsigned long long serial;                  /* names each subscription's request */
    atomic_uint subscriptions, clients;         /* read by the metrics' thread */
};

struct fanout_hub {
    struct fanout *owner;
    struct fanout_hub *prev, *next; /* in owner->hubs */
    struct fanout_hub *next_joinable;
    bool joinable;                  /* in its bucket: a new client may join it */
    size_t bucket;
    char *upstream_url;             /* owned; with req.id, the key */
    enum hub_state state;
    struct fanout_member *members;
    unsigned member_count;
    bool lingering;                 /* no members since linger_until_ms's start */
    long long linger_until_ms;
    long long head_deadline_ms;     /* the upstream must answer by then */
    long long seen_ms;              /* its last byte */

    CURL *easy;
    struct upstream_exchange x;
    struct flow_request req;  /* the subscription's own: its identity and where it goes */
    struct fcgi_request stub; /* what the exchange reads of a request: an id, nothing of a client's */
    char curl_error[CURL_ERROR_SIZE];

    /* The frames since the snapshot frame, heartbeats and comments left out. */
    struct rcbuf **history;
    size_t history_count, history_cap, history_bytes;

    struct sse_splitter frames; /* the upstream's bytes into whole frames */
};

static size_t key_hash(const char *url, const char *id)
{
    unsigned h = 2166136261u; /* FNV-1a over url, a NUL, and the id */
    for (const char *p = url; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h *= 16777619u;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % FANOUT_BUCKETS;
}

static struct fanout_hub *lookup(struct fanout *f, const char *url, const char *id)
{
    for (struct fanout_hub *h = f->buckets[key_hash(url, id)]; h; h = h->next_joinable)
        if (strcmp(h->req.id, id) == 0 && strcmp(h->upstream_url, url) == 0)
            return h;
    return NULL;
}

static void free_history(struct fanout_hub *h)
{
    for (size_t i = 0; i < h->history_count; i++)
        rcbuf_unref(h->history[i]);
    free(h->history);
    h->history = NULL;
    h->history_count = h->history_cap = h->history_bytes = 0;
}

/* make_unjoinable: no client joins it from now on (refused, retired, or
 * ending); the next one opens a new subscription. */
static void make_unjoinable(struct fanout_hub *h)
{
    if (!h->joinable)
        return;
    struct fanout_hub **p = &h->owner->buckets[h->bucket];
    while (*p && *p != h)
        p = &(*p)->next_joinable;
    if (*p)
        *p = h->next_joinable;
    h->next_joinable = NULL;
    h->joinable = false;
    free_history(h); /* only joiners read it */
}

static void detach(struct fanout_hub *h, struct fanout_member *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        h->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    m->prev = m->next = NULL;
    m->hub = NULL;
    h->member_count--;
    atomic_fetch_sub(&h->owner->clients, 1);
}

static void hub_free(struct fanout_hub *h)
{
    struct fanout *f = h->owner;
    make_unjoinable(h);
    if (h->prev)
        h->prev->next = h->next;
    else if (f->hubs == h)
        f->hubs = h->next;
    if (h->next)
        h->next->prev = h->prev;
    if (h->easy) {
        /* an unfinished transfer removed: libcurl closes its connection */
        curl_multi_remove_handle(f->multi, h->easy);
        curl_easy_cleanup(h->easy);
    }
    upstream_exchange_release(&h->x);
    free_history(h);
    sse_splitter_free(&h->frames);
    free(h->upstream_url);
    free(h);
    atomic_fetch_sub(&f->subscriptions, 1);
}

/* hub_end: the subscription is over: every member is told, then it is
 * freed. Not from inside a libcurl callback. */
static void hub_end(struct fanout_hub *h, enum proxy_err err, const char *reason, CURLcode rc)
{
    const struct fanout_client_ops *ops = h->owner->ops;
    make_unjoinable(h);
    if (err && err != PROXY_ERR_SHUTDOWN && h->state != HUB_WAITING)
        proxy_log(PROXY_LOG_WARN, h->stub.request_id, "fan-out subscription to flow %s ended: %s%s%s", h->req.id,
                  proxy_strerror(err), h->curl_error[0] ? ": " : "", h->curl_error);
    while (h->members) {
        struct fanout_member *m = h->members;
        detach(h, m);
        ops->on_end(m->client, err, reason, rc, h->curl_error);
    }
    hub_free(h);
}

/* ---- frames ---- */

static enum proxy_err keep(struct fanout_hub *h, struct rcbuf *frame)
{
    if (h->history_bytes + frame->len > h->owner->cfg->fanout_history && h->history_count > 0) {
        /* Retired: its clients stay, a joiner opens a fresh subscription
         * (a new snapshot frame) rather than the history growing on. */
        proxy_log(PROXY_LOG_INFO, h->stub.request_id,
                  "fan-out subscription to flow %s retired: its history passed OPENOVA_FLOW_FANOUT_HISTORY",
                  h->req.id);
        make_unjoinable(h);
        return PROXY_OK;
    }
    if (h->history_count == h->history_cap) {
        size_t cap = h->history_cap ? h->history_cap * 2 : 64;
        struct rcbuf **p = realloc(h->history, cap * sizeof *p);
        if (!p)
            return PROXY_ERR_NOMEM;
        h->history = p;
        h->history_cap = cap;
    }
    h->history[h->history_count++] = rcbuf_ref(frame);
    h->history_bytes += frame->len;
    return PROXY_OK;
}

/* emit: one whole frame from the splitter: kept for joiners when it holds
 * state, and given to every member. */
static enum proxy_err emit(void *ctx, const char *data, size_t len)
{
    struct fanout_hub *h = ctx;
    struct rcbuf *frame = rcbuf_new(data, len);
    if (!frame)
        return PROXY_ERR_NOMEM;
    enum proxy_err err = PROXY_OK;
    if (h->joinable && sse_frame_is_state(frame->data, frame->len))
        err = keep(h, frame);
    const struct fanout_client_ops *ops = h->owner->ops;
    for (struct fanout_member *m = h->members, *next; !err && m; m = next) {
        next = m->next; /* the callback may detach m */
        ops->on_frame(m->client, frame);
    }
    rcbuf_unref(frame);
    return err;
}

/* ---- the upstream transfer's callbacks (inside libcurl) ---- */

static enum proxy_err hub_on_head(void *ctx, long status, const char *lines, size_t len)
{
    struct fanout_hub *h = ctx;
    const struct fanout_client_ops *ops = h->owner->ops;
    h->seen_ms = clock_ms();
    h->state = status == 200 ? HUB_LIVE : HUB_REFUSED;
    if (h->state == HUB_REFUSED) {
        make_unjoinable(h);
        proxy_log(PROXY_LOG_INFO, h->stub.request_id, "fan-out subscription to flow %s refused: %ld", h->req.id,
                  status);
    }
    for (struct fanout_member *m = h->members, *next; m; m = next) {
        next = m->next;
        ops->on_head(m->client, status, status == 200 ? NULL : lines, status == 200 ? 0 : len);
    }
    return PROXY_OK;
}

static enum proxy_err hub_on_body(void *ctx, const char *data, size_t len)
{
    struct fanout_hub *h = ctx;
    h->seen_ms = clock_ms();
    if (h->state == HUB_LIVE)
        return sse_splitter_feed(&h->frames, data, len, emit, h);
    const struct fanout_client_ops *ops = h->owner->ops;
    for (struct fanout_member *m = h->members, *next; m; m = next) {
        next = m->next;
        ops->on_body(m->client, data, len);
    }
    return PROXY_OK;
}

/* ---- the registry ---- */

static struct fanout_hub *hub_open(struct fanout *f, const struct flow_request *req, const char *url)
{
    struct fanout_hub *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->owner = f;
    h->state = HUB_WAITING;
    sse_splitter_init(&h->frames, f->cfg->max_snapshot + FRAME_OVERHEAD);
    if (!(h->upstream_url = strdup(url))) {
        free(h);
        return NULL;
    }
    h->stub.detached_fd = -1;
    snprintf(h->stub.request_id, sizeof h->stub.request_id, "fanout-%ld-%llu", (long)getpid(), ++f->serial);
    h->req = (struct flow_request){
        .fcgi = &h->stub,
        .cfg = f->cfg,
        .upstreams = req->upstreams,
        .upstream_url = h->upstream_url,
        .user = f->cfg->fanout_user, /* not owned: the configuration's */
        .route = req->route,
        .label = METRICS_ROUTE_STREAM,
        .upstream_us = -1,
    };
    memcpy(h->req.id, req->id, sizeof h->req.id);
    h->x = (struct upstream_exchange){
        .req = &h->req,
        .action = "stream",
        .on_loop = true,
        .sink = {.ctx = h, .on_head = hub_on_head, .on_body = hub_on_body},
    };
    h->easy = upstream_easy_new(f->cfg, req->upstreams, true);
    if (h->easy)
        curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, h->curl_error);
    if (!h->easy || upstream_exchange_prepare(h->easy, f->cfg, &h->x) != PROXY_OK ||
        curl_multi_add_handle(f->multi, h->easy) != CURLM_OK) {
        if (h->easy)
            curl_easy_cleanup(h->easy);
        upstream_exchange_release(&h->x);
        sse_splitter_free(&h->frames);
        free(h->upstream_url);
        free(h);
        return NULL;
    }
    long long now = clock_ms();
    h->head_deadline_ms = now + f->cfg->proxy_timeout_ms;
    h->seen_ms = now;
    h->next = f->hubs;
    if (f->hubs)
        f->hubs->prev = h;
    f->hubs = h;
    h->bucket = key_hash(url, req->id);
    h->next_joinable = f->buckets[h->bucket];
    f->buckets[h->bucket] = h;
    h->joinable = true;
    atomic_fetch_add(&f->subscriptions, 1);
    proxy_log(PROXY_LOG_INFO, h->stub.request_id, "fan-out subscription to flow %s opened (for %s)", h->req.id,
              req->fcgi->request_id);
    return h;
}

struct fanout *fanout_new(const struct proxy_config *cfg, CURLM *multi, const struct fanout_client_ops *ops)
{
    struct fanout *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->cfg = cfg;
    f->multi = multi;
    f->ops = ops;
    atomic_init(&f->subscriptions, 0);
    atomic_init(&f->clients, 0);
    return f;
}

void fanout_close_all(struct fanout *f)
{
    while (f && f->hubs)
        hub_end(f->hubs, PROXY_ERR_SHUTDOWN, "shutdown", CURLE_OK);
}

void fanout_free(struct fanout *f)
{
    fanout_close_all(f);
    free(f);
}

enum proxy_err fanout_join(struct fanout *f, struct fanout_member *m, const struct flow_request *req)
{
    const char *url = req->upstream_url ? req->upstream_url : f->cfg->upstream_url;
    struct fanout_hub *h = lookup(f, url, req->id);
    if (!h && !(h = hub_open(f, req, url)))
        return PROXY_ERR_NOMEM;
    m->hub = h;
    m->prev = NULL;
    m->next = h->members;
    if (h->members)
        h->members->prev = m;
    h->members = m;
    h->member_count++;
    h->lingering = false;
    atomic_fetch_add(&f->clients, 1);
    if (h->state != HUB_LIVE)
        return PROXY_OK; /* called back when the upstream answers */
    /* What a fresh subscription would give: the snapshot frame and every
     * frame since, then live. */
    m->replaying = true;
    f->ops->on_head(m->client, 200, NULL, 0);
    for (size_t i = 0; i < h->history_count && m->hub == h; i++)
        f->ops->on_frame(m->client, h->history[i]);
    m->replaying = false;
    return PROXY_OK;
}

void fanout_leave(struct fanout_member *m)
{
    if (!m || !m->hub)
        return;
    struct fanout_hub *h = m->hub;
    detach(h, m);
    if (h->member_count == 0) {
        /* one nobody can join (refused, retired) has no reason to linger */
        h->lingering = true;
        h->linger_until_ms = clock_ms() + (h->joinable ? h->owner->cfg->fanout_linger_ms : 0);
    }
}

bool fanout_owns(const struct upstream_exchange *x)
{
    return x && x->sink.on_head == hub_on_head;
}

void fanout_transfer_done(struct upstream_exchange *x, CURLcode rc)
{
    struct fanout_hub *h = x->sink.ctx;
    enum proxy_err err = upstream_exchange_result(x, rc);
    curl_multi_remove_handle(h->owner->multi, h->easy);
    curl_easy_cleanup(h->easy);
    h->easy = NULL;
    hub_end(h, err, NULL, rc);
}

void fanout_tick(struct fanout *f, long long now_ms)
{
    long idle = f->cfg->upstream_idle_ms;
    for (struct fanout_hub *h = f->hubs, *next; h; h = next) {
        next = h->next;
        if (h->lingering && now_ms >= h->linger_until_ms)
            hub_end(h, PROXY_OK, NULL, CURLE_OK); /* no members: nobody to tell */
        else if (h->state == HUB_WAITING && now_ms >= h->head_deadline_ms)
            hub_end(h, PROXY_ERR_UPSTREAM_TIMEOUT, NULL, CURLE_OPERATION_TIMEDOUT);
        else if (h->state == HUB_LIVE && idle > 0 && now_ms - h->seen_ms >= idle)
            /* the flow server sends a heartbeat every 15 s: it is gone */
            hub_end(h, PROXY_ERR_UPSTREAM_TIMEOUT, "upstream-idle", CURLE_OPERATION_TIMEDOUT);
    }
}

void fanout_counts(const struct fanout *f, unsigned *subscriptions, unsigned *clients)
{
    *subscriptions = f ? atomic_load(&f->subscriptions) : 0;
    *clients = f ? atomic_load(&f->clients) : 0;
}
