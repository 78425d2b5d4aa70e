/* flow.h: the in-memory store of flows and their subscribers.
 *
 * Locking: the store's mutex guards the table of flows and each flow's
 * reference count; each flow's own mutex guards its sequence counter, folded
 * state and ring, and its condition variable wakes that flow's subscribers.
 * Lock order: store, then flow; a flow's mutex is never held while taking
 * the store's. Ingest holds a flow's mutex only to fold and append; it never
 * waits for a subscriber. Each subscriber reads the ring with a cursor of
 * its own; one whose next message has left the ring is ended (it reconnects
 * with Last-Event-ID and gets a snapshot frame). */
#ifndef OPENOVA_DS_FLOW_H
#define OPENOVA_DS_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "message.h"

/* Flow ids are opaque to the reference; this bound keeps a hostile one
 * from costing memory (a deliberate difference: longer is 400). */
#define DS_FLOW_ID_MAX 1024
/* A subscriber gathers whole frames up to this many bytes per wake-up
 * (one frame larger than that still goes out whole). */
#define DS_SUB_BATCH (64u * 1024u)

struct ds_store;
struct ds_sub;

/* ds_store_new: an empty store whose flows each keep the last ring_capacity
 * (>= 1) messages. Returns NULL when out of memory or for capacity 0; the
 * caller frees it with ds_store_free. */
struct ds_store *ds_store_new(size_t ring_capacity);

/* ds_store_shutdown: ends every subscriber, now and from now on: blocked
 * ds_sub_read calls return -1 with DS_ERR_SHUTDOWN. Ingest still works.
 * Call before stopping the threads that read subscribers. */
void ds_store_shutdown(struct ds_store *s);

/* ds_store_free: frees the store and every flow; NULL-safe. No subscriber
 * may remain open. */
void ds_store_free(struct ds_store *s);

/* ds_store_ingest: accepts one validated message for flow_id (the flow is
 * created on first use): assigns the flow's next sequence number (from 1),
 * folds it, appends its SSE frame to the ring and wakes the subscribers.
 * Consumes m whatever the result. Returns DS_OK with the number in *seq, or
 * DS_ERR_NOMEM: nothing sequenced or streamed, though the state may hold
 * part of the message (see ds_fold_apply). The state itself is unbounded: it
 * is whatever the accepted messages (each at most DS_MESSAGE_MAX) add up to. */
enum ds_err ds_store_ingest(struct ds_store *s, const char *flow_id, struct ds_message *m, uint64_t *seq);

/* ds_store_snapshot: the flow's folded state as snapshot JSON (see
 * ds_fold_snapshot_json) in a malloc'd string for the caller to free.
 * Returns DS_OK, DS_ERR_NOT_FOUND when the state is empty (no message was
 * ever accepted for the flow, it was purged since, or its messages left
 * nothing, like a lone delete-nodes: the reference says 404 then too), or
 * DS_ERR_NOMEM. */
enum ds_err ds_store_snapshot(struct ds_store *s, const char *flow_id, char **json, size_t *len);

/* ds_store_purge: forgets the flow and ends its subscribers (DS_ERR_PURGED).
 * Idempotent: purging an unknown flow does nothing. */
void ds_store_purge(struct ds_store *s, const char *flow_id);

/* ds_store_subscribers: subscribers open (not yet closed); any thread. */
unsigned ds_store_subscribers(struct ds_store *s);

/* ds_store_flow_count: flows in the table (ingested ones, and empty ones
 * that have subscribers waiting for their first message). */
size_t ds_store_flow_count(struct ds_store *s);

/* ds_last_event_id_parse: a Last-Event-ID value as we issue them (decimal
 * digits, no sign, fits 64 bits). Returns true and sets *out, else false. */
bool ds_last_event_id_parse(const char *text, uint64_t *out);

/* ds_sub_open: subscribes to flow_id (creating an empty placeholder when it
 * was never ingested, so a browser may open the stream before the first
 * message; the placeholder is dropped with its last subscriber and stays
 * invisible to ds_store_snapshot). The first frame is "event: snapshot"
 * with the current state and seq (id 0 and {"type":"snapshot"} for a flow
 * never ingested), as the reference server sends whatever the client's
 * Last-Event-ID. With replay (the --replay extension), a last_event_id (the
 * request's header, or NULL) naming a seq after which every message is
 * still in the ring resumes from there instead, without a snapshot frame.
 * A heartbeat frame follows every heartbeat_ms (>= 1) by the clock from
 * the opening, whatever else was sent. Returns the subscriber, which the
 * caller closes with ds_sub_close, or NULL when out of memory. */
struct ds_sub *ds_sub_open(struct ds_store *s, const char *flow_id, const char *last_event_id, bool replay,
                           uint64_t heartbeat_ms);

/* ds_sub_replaying: true when the subscriber resumed from Last-Event-ID
 * (no snapshot frame). */
bool ds_sub_replaying(const struct ds_sub *sub);

/* ds_sub_read: copies up to max (>= 1) bytes of the stream into buf,
 * blocking until there is something to send: frames are written whole
 * across calls, in seq order, without gaps. Returns the bytes copied (> 0),
 * or -1 when the stream is over; ds_sub_end_reason says why (DS_ERR_LAGGED,
 * DS_ERR_PURGED, DS_ERR_SHUTDOWN, DS_ERR_NOMEM). One thread at a time. */
ssize_t ds_sub_read(struct ds_sub *sub, char *buf, size_t max);

/* ds_sub_end_reason: DS_OK while the stream runs, then why it ended. */
enum ds_err ds_sub_end_reason(const struct ds_sub *sub);

/* ds_sub_close: unsubscribes and frees sub; NULL-safe. */
void ds_sub_close(struct ds_sub *sub);

#endif
