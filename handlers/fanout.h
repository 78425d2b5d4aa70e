/* fanout.h: fan-out (OPENOVA_FLOW_FANOUT=on): one upstream subscription per
 * (upstream, flow) per process, shared by every client stream of that flow.
 * A subscription splits the upstream's bytes into whole frames, each in one
 * shared buffer, and keeps those since its first (the snapshot frame) so a
 * client joining later gets exactly what a fresh subscription would give.
 * Everything here runs on the stream loop's thread. */
#ifndef OPENOVA_FANOUT_H
#define OPENOVA_FANOUT_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "core/config.h"
#include "core/error.h"
#include "core/rcbuf.h"
#include "handlers/handlers.h"
#include "handlers/upstream.h"

struct fanout;
struct fanout_hub;

/* How a subscription talks to the client streams attached to it (the
 * stream loop's). A callback may detach its own member (fanout_leave), and
 * no other. */
struct fanout_client_ops {
    /* The upstream answered: 200 (the client sends its own event-stream
     * head) or a refusal passed on with its filtered head lines. */
    enum proxy_err (*on_head)(void *client, long status, const char *lines, size_t len);
    /* One whole frame, shared: a reference is the client's to take. */
    enum proxy_err (*on_frame)(void *client, struct rcbuf *frame);
    /* A refusal's body bytes, as they come. */
    enum proxy_err (*on_body)(void *client, const char *data, size_t len);
    /* The subscription is over for this client, which is detached already:
     * err is PROXY_OK for a clean end; reason (or NULL) names the end for
     * the log; rc and curl_error are libcurl's. */
    void (*on_end)(void *client, enum proxy_err err, const char *reason, CURLcode rc, const char *curl_error);
};

/* A client stream's place in a subscription. */
struct fanout_member {
    struct fanout_member *prev, *next;
    struct fanout_hub *hub; /* NULL while not attached */
    void *client;           /* passed to every callback */
    bool replaying;         /* fanout_join is handing it the history: no bound applies yet */
};

/* fanout_new: the registry of one stream loop, whose transfers go into
 * multi. NULL when out of memory. */
struct fanout *fanout_new(const struct proxy_config *cfg, CURLM *multi, const struct fanout_client_ops *ops);

/* fanout_close_all: closes every subscription (members are told with
 * PROXY_ERR_SHUTDOWN); on the loop's thread, before it ends. NULL-safe. */
void fanout_close_all(struct fanout *f);

/* fanout_free: frees f, whose subscriptions are closed; after the loop's
 * thread ended and no thread reads fanout_counts any more. NULL-safe. */
void fanout_free(struct fanout *f);

/* fanout_join: attaches m (m->client set by the caller) to the subscription
 * of req's upstream and flow, opening one when there is none to join. A
 * live subscription calls on_head and then on_frame for every frame since
 * its snapshot frame before this returns; a new one calls back once the
 * upstream answers. Returns PROXY_OK, or PROXY_ERR_NOMEM (not attached). */
enum proxy_err fanout_join(struct fanout *f, struct fanout_member *m, const struct flow_request *req);

/* fanout_leave: detaches m; a subscription left without members closes
 * after OPENOVA_FLOW_FANOUT_LINGER (at a later fanout_tick, never here).
 * NULL-safe; idempotent. */
void fanout_leave(struct fanout_member *m);

/* fanout_owns: whether x (CURLINFO_PRIVATE of a finished transfer) is a
 * subscription's. */
bool fanout_owns(const struct upstream_exchange *x);

/* fanout_transfer_done: libcurl finished a subscription's transfer with rc:
 * every member ends (clean or cut, as the transfer did) and the
 * subscription is freed. */
void fanout_transfer_done(struct upstream_exchange *x, CURLcode rc);

/* fanout_tick: the deadlines: the upstream's answer (504 to the waiting
 * clients), its silence past OPENOVA_FLOW_UPSTREAM_IDLE (every client cut),
 * and the linger of subscriptions without clients. */
void fanout_tick(struct fanout *f, long long now_ms);

/* fanout_counts: subscriptions open and clients attached, for the metrics;
 * any thread. */
void fanout_counts(const struct fanout *f, unsigned *subscriptions, unsigned *clients);

#endif
