/* response.h: writing a response through libfcgi. One function writes the
 * head and the request remembers that it did: the status is decided before
 * the first byte, and after the head an error can only end the body. */
#ifndef OPENOVA_RESPONSE_H
#define OPENOVA_RESPONSE_H

#include <stddef.h>

#include "buf.h"
#include "error.h"
#include "request.h"

/* fcgi_status_reason: the reason phrase for an HTTP status ("" if unknown). */
const char *fcgi_status_reason(int status);

/* fcgi_response_format_head: appends the CGI response head to out:
 * "Status:", X-Request-ID, the already formatted header lines in extra
 * ("Name: value\r\n" each, may be NULL), and the blank line. Pure.
 * Returns fcgi_buf_append's result. */
int fcgi_response_format_head(struct fcgi_buf *out, int status, const char *request_id, const char *extra,
                              size_t extra_len);

/* fcgi_error_json: the body of an error the proxy makes itself,
 * {"error","message","requestId"}, built with json-c. Returns a malloc'd
 * string the caller frees, or NULL when out of memory. */
char *fcgi_error_json(const char *code, const char *message, const char *request_id);

/* fcgi_response_head: writes the head once; a second call is a no-op
 * returning FCGI_OK. FCGI_ERR_CLIENT_GONE when the web server is gone. */
enum fcgi_err fcgi_response_head(struct fcgi_request *req, int status, const char *extra, size_t extra_len);

/* fcgi_response_write: body bytes after the head. */
enum fcgi_err fcgi_response_write(struct fcgi_request *req, const void *data, size_t len);

/* fcgi_response_flush: pushes buffered bytes to the web server now. */
enum fcgi_err fcgi_response_flush(struct fcgi_request *req);

/* fcgi_response_error: a whole JSON error response (head and body) with an
 * optional extra header line ("Allow: GET\r\n"). If the head is already out
 * the body cannot change any more: nothing is written. */
enum fcgi_err fcgi_response_error(struct fcgi_request *req, int status, const char *code, const char *message,
                                  const char *extra_header);

#endif
