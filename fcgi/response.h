/* response.h: the one writer of responses to the web server, as FastCGI
 * records: the head (once; the request remembers it), body bytes, the JSON
 * error the proxy makes itself, and the end. The same functions serve a
 * worker's blocking connection, where bytes are held back to leave in few
 * writes, and a detached non-blocking one (a stream), where every byte goes
 * out at once and what the socket does not take waits in out.unsent. */
#ifndef OPENOVA_FCGI_RESPONSE_H
#define OPENOVA_FCGI_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/rcbuf.h"
#include "fcgi/request.h"

/* The response bytes held back to go out together: a whole snapshot leaves
 * in one write, and a larger body in writes of at least this much. */
#define FCGI_RESPONSE_COALESCE (64 * 1024)
/* The most a head may take (the upstream's headers, filtered). */
#define FCGI_RESPONSE_HEAD_MAX (256 * 1024)
/* A worker keeps a held buffer up to this size from request to request. */
#define FCGI_RESPONSE_HELD_KEEP (2 * FCGI_RESPONSE_COALESCE)
/* How long each read of the web server's remaining input may wait at the end. */
#define FCGI_RESPONSE_DRAIN_MS 2000

/* fcgi_response_held_init: a worker's buffer, lent to each request it loads. */
void fcgi_response_held_init(struct buf *held);

/* fcgi_response_format_head: appends the CGI response head to out:
 * "Status:", X-Request-ID, the already formatted header lines in extra
 * ("Name: value\r\n" each, may be NULL), and the blank line. Pure.
 * Returns buf_append's result. */
enum proxy_err fcgi_response_format_head(struct buf *out, int status, const char *request_id, const char *extra,
                                         size_t extra_len);

/* fcgi_response_error_json: the body of an error the proxy makes itself,
 * {"error","message","requestId"}, built with json-c. Returns a malloc'd
 * string the caller frees, or NULL when out of memory. */
char *fcgi_response_error_json(const char *code, const char *message, const char *request_id);

/* fcgi_response_head: commits the head once: status and header lines
 * ("Name: value\r\n" each). It leaves with the first body bytes (at once on
 * a detached request). A second call is a no-op returning PROXY_OK.
 * PROXY_ERR_UPSTREAM_TOO_LARGE past FCGI_RESPONSE_HEAD_MAX. */
enum proxy_err fcgi_response_head(struct fcgi_request *req, int status, const char *lines, size_t len);

/* fcgi_response_write: body bytes after the head. PROXY_ERR_CLIENT_GONE
 * when the web server is gone; on a detached request PROXY_ERR_WOULD_BLOCK
 * when out.unsent is full (nothing of data was taken). */
enum proxy_err fcgi_response_write(struct fcgi_request *req, const void *data, size_t len);

/* fcgi_response_error: a whole JSON error response (head and body) with an
 * optional extra header line ("Allow: GET\r\n"); sets out.error_code. If the
 * head is already out the answer cannot change any more: nothing is written. */
enum proxy_err fcgi_response_error(struct fcgi_request *req, int status, const char *code, const char *message,
                                   const char *extra_header);

/* fcgi_response_fail: fcgi_response_error with the answer core/error.h
 * gives err. */
enum proxy_err fcgi_response_fail(struct fcgi_request *req, enum proxy_err err);

/* fcgi_response_retract: takes back a committed head and body that have
 * not reached the web server yet, so that an error can still answer
 * instead. False once any of it went out. */
bool fcgi_response_retract(struct fcgi_request *req);

/* fcgi_response_finish: ends a worker's response: a head still held, the
 * end of the output and FCGI_END_REQUEST (or, when out.cut is set, what
 * was held and then a cut connection without them), and hands the
 * connection back: closed, or kept for libfcgi's next accept when the web
 * server asked to keep it and its input ended cleanly. No-op once detached. */
void fcgi_response_finish(struct fcgi_request *req);

/* fcgi_response_end: on a detached request, queues the end of the output
 * and FCGI_END_REQUEST behind what waits and writes what the socket takes.
 * PROXY_ERR_CLIENT_GONE or PROXY_ERR_NOMEM when it cannot. */
enum proxy_err fcgi_response_end(struct fcgi_request *req);

/* fcgi_response_flush: on a detached request, writes what waits in
 * out.unsent, then in out.queue, as far as the socket takes it.
 * PROXY_ERR_CLIENT_GONE when the web server is gone. */
enum proxy_err fcgi_response_flush(struct fcgi_request *req);

/* fcgi_response_share: body bytes after the head of a detached request, by
 * reference: the shared buffer goes straight to the socket behind record
 * headers built for this request, and what the socket does not take waits
 * in out.queue holding a reference (never a copy), behind what waits
 * already. PROXY_ERR_WOULD_BLOCK, nothing taken, when bytes wait already
 * and with these they would pass max_pending (so one larger than the bound
 * alone is taken when nothing waits); PROXY_ERR_CLIENT_GONE when the web
 * server is gone; PROXY_ERR_INVALID before the head or after the end. */
enum proxy_err fcgi_response_share(struct fcgi_request *req, struct rcbuf *body, size_t max_pending);

/* fcgi_response_break: gives up what waits on a detached request and queues
 * in its place a record no web server accepts, and sets out.cut: for a
 * client too slow to keep, whose web server would otherwise, with the
 * connection closed at a record boundary and every byte before it already
 * in its socket, end the response cleanly (nginx does, with buffering off).
 * The bytes given up never reach the web server, so the record it reads
 * last is broken either way. */
void fcgi_response_break(struct fcgi_request *req);

/* fcgi_response_pending: the bytes of a detached response still waiting
 * for the socket (out.unsent and out.queue). */
size_t fcgi_response_pending(const struct fcgi_request *req);

#endif
