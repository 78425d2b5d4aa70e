/* record.h: FastCGI records the app writes itself (libfcgi's output stream
 * copies every byte through a small buffer and blocks), the way a response
 * is broken off, and the scanner that finds FCGI_ABORT_REQUEST on a
 * connection taken from libfcgi. All pure but fcgi_record_break. The record
 * types and lengths are libfcgi's own, from <fastcgi.h>. */
#ifndef OPENOVA_RECORD_H
#define OPENOVA_RECORD_H

#include <stdbool.h>
#include <stddef.h>

#include <fastcgi.h>

/* An empty FCGI_STDOUT (the end of the output) and FCGI_END_REQUEST. */
#define FCGI_RECORD_END_LEN (3 * FCGI_HEADER_LEN)

/* fcgi_record_header: the 8-byte header of a record (FastCGI 1.0, 3.3),
 * without padding. content_len is at most FCGI_MAX_LENGTH. */
void fcgi_record_header(unsigned char out[FCGI_HEADER_LEN], unsigned type, unsigned request_id, size_t content_len);

/* fcgi_record_end_request: an empty FCGI_STDOUT followed by
 * FCGI_END_REQUEST with protocolStatus FCGI_REQUEST_COMPLETE. */
void fcgi_record_end_request(unsigned char out[FCGI_RECORD_END_LEN], unsigned request_id, unsigned app_status);

/* fcgi_record_break: ends a response as failed, for a body cut short: a
 * record no web server accepts (version 0), then the connection shut down,
 * never FCGI_END_REQUEST. A close alone is not enough: nginx ends an
 * unbuffered response without a length cleanly when the connection closes,
 * while a record it cannot parse makes it drop its client without the last
 * chunk; lighttpd and Apache fail the response either way. */
void fcgi_record_break(int fd);

/* Incremental scanner of the records a web server sends after the
 * parameters: only FCGI_ABORT_REQUEST matters; the rest is skipped. */
struct fcgi_record_scanner {
    unsigned char header[FCGI_HEADER_LEN];
    size_t header_have;
    size_t skip;          /* content + padding left of the current record */
    unsigned request_id;
    bool aborted;
};

/* fcgi_record_scan: feeds received bytes; returns true once an
 * FCGI_ABORT_REQUEST for request_id has been seen. */
bool fcgi_record_scan(struct fcgi_record_scanner *s, const unsigned char *data, size_t len);

#endif
