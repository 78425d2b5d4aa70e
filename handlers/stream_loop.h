/* stream_loop.h: the event loop that carries every open stream. A stream
 * costs its buffers and two file descriptors, not a thread: one thread
 * drives all upstream transfers with curl_multi over epoll, watches each
 * FastCGI connection for the web server leaving, and writes the records
 * with the transport's writer on the detached, non-blocking connection,
 * without ever blocking on one slow client. */
#ifndef OPENOVA_STREAM_LOOP_H
#define OPENOVA_STREAM_LOOP_H

#include <stdbool.h>

#include "core/config.h"
#include "core/error.h"
#include "handlers/handlers.h"

struct stream_loop;

/* stream_loop_start: creates the loop and its thread. NULL on failure. */
struct stream_loop *stream_loop_start(const struct proxy_config *cfg);

/* stream_loop_reserve: takes one of OPENOVA_FLOW_MAX_STREAMS slots; false
 * when all are taken or the loop is stopping. Thread-safe. */
bool stream_loop_reserve(struct stream_loop *loop);

/* stream_loop_unreserve: gives back a slot that was not used. */
void stream_loop_unreserve(struct stream_loop *loop);

/* stream_loop_submit: hands a reserved stream to the loop: detaches
 * req->fcgi from libfcgi (fcgi_request_detach) and moves it, with req's
 * user, into the loop, which answers and logs it from then on. req->fcgi
 * is left empty and req->user NULL. Returns PROXY_OK, or PROXY_ERR_NOMEM
 * when nothing was taken (the caller still answers req). Thread-safe. */
enum proxy_err stream_loop_submit(struct stream_loop *loop, struct flow_request *req);

/* stream_loop_open_streams: how many streams are open now. */
unsigned stream_loop_open_streams(struct stream_loop *loop);

/* stream_loop_fanout_counts: fan-out's subscriptions open and the client
 * streams attached to them (both 0 without OPENOVA_FLOW_FANOUT). */
void stream_loop_fanout_counts(struct stream_loop *loop, unsigned *subscriptions, unsigned *clients);

/* stream_loop_oldest_age_ms: how long the oldest open stream has been
 * open, as of the loop's last tick (within 250 ms); -1 when none is. */
long long stream_loop_oldest_age_ms(struct stream_loop *loop);

/* stream_loop_begin_stop: refuses new streams from now on and starts
 * ending the open ones; returns at once. Thread-safe. */
void stream_loop_begin_stop(struct stream_loop *loop);

/* stream_loop_join: ends every open stream cleanly (the client's response
 * ends, the upstream connection closes) and joins the thread. The loop
 * stays valid and refuses new streams. NULL-safe; once only. */
void stream_loop_join(struct stream_loop *loop);

/* stream_loop_stop: stream_loop_join, then frees the loop. NULL-safe. */
void stream_loop_stop(struct stream_loop *loop);

#endif
