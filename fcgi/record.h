/* record.h: FastCGI records written and scanned by hand for streams that the
 * event loop carries (libfcgi's streams block; the loop must not). Pure. */
#ifndef OPENOVA_RECORD_H
#define OPENOVA_RECORD_H

#include <stdbool.h>
#include <stddef.h>

#define FCGI_REC_HEADER_LEN 8
#define FCGI_REC_MAX_CONTENT 65535
#define FCGI_REC_ABORT_REQUEST 2
#define FCGI_REC_END_REQUEST 3
#define FCGI_REC_STDOUT 6

/* fcgi_record_header: the 8-byte header of a record (FastCGI 1.0, 3.3). */
void fcgi_record_header(unsigned char out[FCGI_REC_HEADER_LEN], unsigned type, unsigned request_id,
                        size_t content_len);

/* fcgi_record_end_request: an empty FCGI_STDOUT (end of the stream) followed
 * by FCGI_END_REQUEST with protocolStatus REQUEST_COMPLETE: 24 bytes. */
void fcgi_record_end_request(unsigned char out[24], unsigned request_id, unsigned app_status);

/* Incremental scanner of the records a web server sends after the
 * parameters: only FCGI_ABORT_REQUEST matters; the rest is skipped. */
struct fcgi_record_scanner {
    unsigned char header[FCGI_REC_HEADER_LEN];
    size_t header_have;
    size_t skip;          /* content + padding left of the current record */
    unsigned request_id;
    bool aborted;
};

/* fcgi_record_scan: feeds received bytes; returns true once an
 * FCGI_ABORT_REQUEST for request_id has been seen. */
bool fcgi_record_scan(struct fcgi_record_scanner *s, const unsigned char *data, size_t len);

#endif
