/* response.h: writing a response to the web server. One function commits the
 * head and the request remembers that it did: the status is decided before
 * the first byte, and after the head an error can only end the body. libfcgi
 * reads the request; the response's records are written here, directly. */
#ifndef OPENOVA_RESPONSE_H
#define OPENOVA_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"
#include "fcgi/request.h"

/* fcgi_response_format_head: appends the CGI response head to out:
 * "Status:", X-Request-ID, the already formatted header lines in extra
 * ("Name: value\r\n" each, may be NULL), and the blank line. Pure.
 * Returns buf_append's result. */
int fcgi_response_format_head(struct buf *out, int status, const char *request_id, const char *extra,
                              size_t extra_len);

/* fcgi_error_json: the body of an error the proxy makes itself,
 * {"error","message","requestId"}, built with json-c. Returns a malloc'd
 * string the caller frees, or NULL when out of memory. */
char *fcgi_error_json(const char *code, const char *message, const char *request_id);

/* fcgi_response_head: commits the head once (it leaves with the first body
 * bytes or at the end); a second call is a no-op returning PROXY_OK. */
enum proxy_err fcgi_response_head(struct fcgi_request *req, int status, const char *extra, size_t extra_len);

/* The response bytes held back to go out together: a whole snapshot leaves
 * in one write, and a larger body in writes of at least this much. */
#define FCGI_RESPONSE_COALESCE (64 * 1024)
/* The most a head may take (the upstream's headers, filtered). */
#define FCGI_RESPONSE_HEAD_MAX (256 * 1024)

/* fcgi_response_pending_init: the worker's buffer for req->pending. */
void fcgi_response_pending_init(struct buf *pending);

/* fcgi_response_write: body bytes after the head. Held back up to
 * FCGI_RESPONSE_COALESCE bytes, written with what is held beyond that.
 * PROXY_ERR_CLIENT_GONE when the web server is gone. */
enum proxy_err fcgi_response_write(struct fcgi_request *req, const void *data, size_t len);

/* fcgi_response_error: a whole JSON error response (head and body) with an
 * optional extra header line ("Allow: GET\r\n"). If the head is already out
 * the body cannot change any more: nothing is written. */
enum proxy_err fcgi_response_error(struct fcgi_request *req, int status, const char *code, const char *message,
                                  const char *extra_header);

/* fcgi_response_retract: takes back a committed head and body that have
 * not reached the web server yet, so that an error can still answer
 * instead. False once any of it went out. */
bool fcgi_response_retract(struct fcgi_request *req);

/* fcgi_response_finish: ends the response (a head still pending, the end of
 * the output and FCGI_END_REQUEST; or, when req->abort_response is set, a
 * cut connection without them) and hands the connection back: closed, or
 * kept for libfcgi's next accept when the web server asked to keep it. */
void fcgi_response_finish(struct fcgi_request *req);

#endif
