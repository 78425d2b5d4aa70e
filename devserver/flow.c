/* flow.c: the in-memory store of flows, ingest, and subscribers (see flow.h). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flow.h"
#include "fold.h"
#include "ring.h"

#define BUCKETS 256 /* a development server holds few flows */

struct ds_flow {
    /* guarded by the store's mutex */
    struct ds_flow *next; /* bucket chain */
    unsigned refs;        /* holders outside the table: requests, subscribers */
    bool listed;          /* still in the table (not purged) */
    char id[DS_FLOW_ID_MAX + 1];

    pthread_mutex_t mu;
    pthread_cond_t cond; /* broadcast on every accept, purge and shutdown */
    /* guarded by mu */
    bool purged;
    uint64_t seq; /* of the last accepted message; 0 before the first */
    struct ds_ring ring;
    struct ds_fold fold;
};

struct ds_store {
    pthread_mutex_t lock;
    struct ds_flow *buckets[BUCKETS];
    size_t ring_capacity;
    /* read under flow mutexes, so atomic rather than under the store lock */
    atomic_bool shutdown;
    atomic_uint subscribers; /* open, for the stop to wait for their last chunk */
};

struct ds_sub {
    struct ds_store *store;
    struct ds_flow *flow; /* one reference */
    uint64_t cursor;      /* seq of the last frame put in out */
    uint64_t heartbeat_ms;
    struct timespec deadline; /* CLOCK_MONOTONIC: when silence earns a heartbeat */
    bool replaying;
    enum ds_err end;
    char *out; /* frames being sent: out[off..len) is still to go */
    size_t off, len, cap;
};

static const char heartbeat_frame[] = "event: heartbeat\ndata: {}\n\n";

static size_t hash(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % BUCKETS;
}

static void flow_destroy(struct ds_flow *f)
{
    if (!f)
        return;
    ds_fold_free(&f->fold);
    ds_ring_free(&f->ring);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static struct ds_flow *flow_new(const char *id, size_t ring_capacity)
{
    struct ds_flow *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    pthread_condattr_t attr;
    bool attr_ok = false, mu_ok = false, cond_ok = false;
    snprintf(f->id, sizeof f->id, "%s", id);
    if (pthread_mutex_init(&f->mu, NULL) != 0)
        goto fail;
    mu_ok = true;
    if (pthread_condattr_init(&attr) != 0)
        goto fail;
    attr_ok = true;
    /* heartbeat deadlines are on the monotonic clock: immune to clock steps */
    if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 || pthread_cond_init(&f->cond, &attr) != 0)
        goto fail;
    cond_ok = true;
    pthread_condattr_destroy(&attr);
    attr_ok = false;
    if (ds_ring_init(&f->ring, ring_capacity) != DS_OK || ds_fold_init(&f->fold) != DS_OK)
        goto fail;
    return f;
fail:
    if (attr_ok)
        pthread_condattr_destroy(&attr);
    ds_fold_free(&f->fold);
    ds_ring_free(&f->ring);
    if (cond_ok)
        pthread_cond_destroy(&f->cond);
    if (mu_ok)
        pthread_mutex_destroy(&f->mu);
    free(f);
    return NULL;
}

struct ds_store *ds_store_new(size_t ring_capacity)
{
    if (ring_capacity == 0)
        return NULL;
    struct ds_store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        return NULL;
    }
    s->ring_capacity = ring_capacity;
    atomic_init(&s->shutdown, false);
    atomic_init(&s->subscribers, 0);
    return s;
}

void ds_store_shutdown(struct ds_store *s)
{
    /* Set before taking any flow mutex: a subscriber checks the flag with
     * its flow's mutex held, then waits; the broadcast below needs that
     * mutex, so it cannot fall between the check and the wait. */
    atomic_store(&s->shutdown, true);
    pthread_mutex_lock(&s->lock);
    for (size_t b = 0; b < BUCKETS; b++) {
        for (struct ds_flow *f = s->buckets[b]; f; f = f->next) {
            pthread_mutex_lock(&f->mu);
            pthread_cond_broadcast(&f->cond);
            pthread_mutex_unlock(&f->mu);
        }
    }
    pthread_mutex_unlock(&s->lock);
}

void ds_store_free(struct ds_store *s)
{
    if (!s)
        return;
    for (size_t b = 0; b < BUCKETS; b++) {
        struct ds_flow *f = s->buckets[b];
        while (f) {
            struct ds_flow *next = f->next;
            flow_destroy(f);
            f = next;
        }
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* acquire: the flow with that id, with a reference the caller drops with
 * release; created when create is set. NULL when absent (or out of memory,
 * which *nomem tells apart). */
static struct ds_flow *acquire(struct ds_store *s, const char *id, bool create, bool *nomem)
{
    size_t b = hash(id);
    *nomem = false;
    pthread_mutex_lock(&s->lock);
    struct ds_flow *f = s->buckets[b];
    while (f && strcmp(f->id, id) != 0)
        f = f->next;
    if (!f && create) {
        f = flow_new(id, s->ring_capacity);
        if (f) {
            f->listed = true;
            f->next = s->buckets[b];
            s->buckets[b] = f;
        } else {
            *nomem = true;
        }
    }
    if (f)
        f->refs++;
    pthread_mutex_unlock(&s->lock);
    return f;
}

static void unlink_flow(struct ds_store *s, struct ds_flow *f)
{
    struct ds_flow **p = &s->buckets[hash(f->id)];
    while (*p && *p != f)
        p = &(*p)->next;
    if (*p)
        *p = f->next;
    f->next = NULL;
    f->listed = false;
}

/* release: drops a reference from acquire. The last holder frees a purged
 * flow, and a placeholder that never got a message (opened by a stream). */
static void release(struct ds_store *s, struct ds_flow *f)
{
    pthread_mutex_lock(&s->lock);
    bool destroy = false;
    if (--f->refs == 0) {
        if (!f->listed) {
            destroy = true;
        } else {
            pthread_mutex_lock(&f->mu);
            bool empty = f->seq == 0;
            pthread_mutex_unlock(&f->mu);
            if (empty) {
                unlink_flow(s, f);
                destroy = true;
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (destroy)
        flow_destroy(f);
}

/* frame: "event: <event>\nid: <seq>\ndata: <data>\n\n", per the WHATWG
 * server-sent events format; data must hold no CR or LF. Returns a malloc'd
 * string and its length, or NULL when out of memory. */
static char *frame(const char *event, uint64_t seq, const char *data, size_t data_len, size_t *len)
{
    size_t cap = data_len + strlen(event) + 64;
    char *f = malloc(cap);
    if (!f)
        return NULL;
    int n = snprintf(f, cap, "event: %s\nid: %" PRIu64 "\ndata: ", event, seq);
    memcpy(f + n, data, data_len);
    memcpy(f + (size_t)n + data_len, "\n\n", 3);
    *len = (size_t)n + data_len + 2;
    return f;
}

enum ds_err ds_store_ingest(struct ds_store *s, const char *flow_id, struct ds_message *m, uint64_t *seq)
{
    enum ds_err rc = DS_OK;
    struct ds_flow *f = NULL;
    size_t json_len = 0;
    bool nomem = false;
    /* serialized before the message is shared with the state, so outside
     * the lock */
    char *json = ds_message_to_json(m, &json_len);
    if (!json) {
        ds_message_free(m);
        return DS_ERR_NOMEM;
    }
    f = acquire(s, flow_id, true, &nomem);
    if (!f) {
        ds_message_free(m);
        rc = DS_ERR_NOMEM;
        goto out;
    }
    pthread_mutex_lock(&f->mu);
    /* A purge that won the race after acquire: the message is accepted
     * and then purged with the flow, as if it had come just before. */
    uint64_t next = f->seq + 1;
    size_t frame_len = 0;
    char *fr = frame(ds_message_type_name(m->type), next, json, json_len, &frame_len);
    if (!fr) {
        rc = DS_ERR_NOMEM;
    } else if ((rc = ds_fold_apply(&f->fold, m)) != DS_OK) {
        free(fr);
    } else {
        ds_ring_push(&f->ring, next, fr, frame_len); /* seq is last + 1: cannot fail */
        f->seq = next;
        *seq = next;
        pthread_cond_broadcast(&f->cond);
    }
    /* under the lock: the state now shares parts of the message, and json-c
     * reference counts are not atomic */
    ds_message_free(m);
    pthread_mutex_unlock(&f->mu);
    release(s, f);
out:
    free(json);
    return rc;
}

enum ds_err ds_store_snapshot(struct ds_store *s, const char *flow_id, char **json, size_t *len)
{
    bool nomem = false;
    *json = NULL;
    struct ds_flow *f = acquire(s, flow_id, false, &nomem);
    if (!f)
        return DS_ERR_NOT_FOUND;
    enum ds_err rc = DS_OK;
    pthread_mutex_lock(&f->mu);
    if (f->seq == 0 || f->purged || ds_fold_is_empty(&f->fold))
        rc = DS_ERR_NOT_FOUND;
    else if (!(*json = ds_fold_snapshot_json(&f->fold, len)))
        rc = DS_ERR_NOMEM;
    pthread_mutex_unlock(&f->mu);
    release(s, f);
    return rc;
}

void ds_store_purge(struct ds_store *s, const char *flow_id)
{
    struct ds_flow *destroy = NULL;
    pthread_mutex_lock(&s->lock);
    struct ds_flow *f = s->buckets[hash(flow_id)];
    while (f && strcmp(f->id, flow_id) != 0)
        f = f->next;
    if (f) {
        unlink_flow(s, f);
        pthread_mutex_lock(&f->mu);
        f->purged = true;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->mu);
        if (f->refs == 0)
            destroy = f; /* else the last release frees it */
    }
    pthread_mutex_unlock(&s->lock);
    flow_destroy(destroy);
}

unsigned ds_store_subscribers(struct ds_store *s)
{
    return atomic_load(&s->subscribers);
}

size_t ds_store_flow_count(struct ds_store *s)
{
    size_t n = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t b = 0; b < BUCKETS; b++)
        for (struct ds_flow *f = s->buckets[b]; f; f = f->next)
            n++;
    pthread_mutex_unlock(&s->lock);
    return n;
}

bool ds_last_event_id_parse(const char *text, uint64_t *out)
{
    uint64_t v = 0;
    if (!text || !*text)
        return false;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool passed(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec || (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* next_heartbeat: moves the deadline one interval on, by the clock (the
 * reference's ticker), skipping beats missed while the reader was away so
 * that a stalled reader does not get a burst of them. */
static void next_heartbeat(struct ds_sub *sub)
{
    do {
        uint64_t ns = (uint64_t)sub->deadline.tv_nsec + (sub->heartbeat_ms % 1000) * 1000000u;
        sub->deadline.tv_sec += (time_t)(sub->heartbeat_ms / 1000 + ns / 1000000000u);
        sub->deadline.tv_nsec = (long)(ns % 1000000000u);
    } while (passed(&sub->deadline));
}

/* out_append: appends to the subscriber's pending output, which is bounded
 * by DS_SUB_BATCH plus one frame (itself bounded by DS_MESSAGE_MAX). */
static enum ds_err out_append(struct ds_sub *sub, const char *data, size_t len)
{
    if (sub->len + len > sub->cap) {
        size_t cap = sub->cap ? sub->cap : 4096;
        while (cap < sub->len + len)
            cap *= 2;
        char *p = realloc(sub->out, cap);
        if (!p)
            return DS_ERR_NOMEM;
        sub->out = p;
        sub->cap = cap;
    }
    memcpy(sub->out + sub->len, data, len);
    sub->len += len;
    return DS_OK;
}

struct ds_sub *ds_sub_open(struct ds_store *s, const char *flow_id, const char *last_event_id, bool replay,
                           uint64_t heartbeat_ms)
{
    bool nomem = false;
    struct ds_sub *sub = calloc(1, sizeof *sub);
    if (!sub)
        return NULL;
    sub->store = s;
    atomic_fetch_add(&s->subscribers, 1);
    sub->heartbeat_ms = heartbeat_ms ? heartbeat_ms : 1;
    sub->flow = acquire(s, flow_id, true, &nomem);
    if (!sub->flow) {
        atomic_fetch_sub(&s->subscribers, 1);
        free(sub);
        return NULL;
    }
    struct ds_flow *f = sub->flow;
    enum ds_err rc = DS_OK;
    uint64_t after = 0;
    pthread_mutex_lock(&f->mu);
    if (replay && ds_last_event_id_parse(last_event_id, &after) && ds_ring_holds_after(&f->ring, after)) {
        /* WHATWG SSE: the client resumes after the last id it saw */
        sub->cursor = after;
        sub->replaying = true;
    } else {
        size_t json_len = 0, frame_len = 0;
        char *json = ds_fold_snapshot_json(&f->fold, &json_len);
        char *fr = json ? frame("snapshot", f->seq, json, json_len, &frame_len) : NULL;
        rc = fr ? out_append(sub, fr, frame_len) : DS_ERR_NOMEM;
        sub->cursor = f->seq;
        free(fr);
        free(json);
    }
    pthread_mutex_unlock(&f->mu);
    clock_gettime(CLOCK_MONOTONIC, &sub->deadline);
    next_heartbeat(sub);
    if (rc != DS_OK) {
        ds_sub_close(sub);
        return NULL;
    }
    return sub;
}

bool ds_sub_replaying(const struct ds_sub *sub)
{
    return sub->replaying;
}

/* fill: waits for the next frames or heartbeat and puts them in out.
 * Called with out empty. A heartbeat that falls due goes out before the
 * frames gathered with it, whatever else was sent since the last one. */
static enum ds_err fill(struct ds_sub *sub)
{
    struct ds_flow *f = sub->flow;
    enum ds_err rc = DS_OK;
    sub->off = sub->len = 0;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        if (atomic_load(&sub->store->shutdown)) {
            rc = DS_ERR_SHUTDOWN;
            break;
        }
        if (f->purged) {
            rc = DS_ERR_PURGED;
            break;
        }
        if (passed(&sub->deadline)) {
            if ((rc = out_append(sub, heartbeat_frame, sizeof heartbeat_frame - 1)) != DS_OK)
                break;
            next_heartbeat(sub);
        }
        while (sub->cursor < f->seq) {
            const struct ds_ring_entry *e = ds_ring_get(&f->ring, sub->cursor + 1);
            if (!e) {
                /* overwritten: send what was gathered, end next time */
                if (sub->len == 0)
                    rc = DS_ERR_LAGGED;
                break;
            }
            if (sub->len > 0 && sub->len + e->len > DS_SUB_BATCH)
                break;
            if ((rc = out_append(sub, e->data, e->len)) != DS_OK)
                break;
            sub->cursor++;
        }
        if (rc != DS_OK || sub->len > 0)
            break;
        pthread_cond_timedwait(&f->cond, &f->mu, &sub->deadline);
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

ssize_t ds_sub_read(struct ds_sub *sub, char *buf, size_t max)
{
    if (sub->end != DS_OK)
        return -1;
    if (sub->off == sub->len) {
        enum ds_err rc = fill(sub);
        if (rc != DS_OK) {
            sub->end = rc;
            return -1;
        }
    }
    size_t n = sub->len - sub->off;
    if (n > max)
        n = max;
    memcpy(buf, sub->out + sub->off, n);
    sub->off += n;
    return (ssize_t)n;
}

enum ds_err ds_sub_end_reason(const struct ds_sub *sub)
{
    return sub->end;
}

void ds_sub_close(struct ds_sub *sub)
{
    if (!sub)
        return;
    if (sub->flow)
        release(sub->store, sub->flow);
    atomic_fetch_sub(&sub->store->subscribers, 1);
    free(sub->out);
    free(sub);
}
