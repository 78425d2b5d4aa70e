/* route.h: the one route table and the pure functions that match a request
 * line against it and check deployment ids. */
#ifndef OPENOVA_ROUTE_H
#define OPENOVA_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define FCGI_ID_MAX 128
#define FCGI_PATH_MAX 4096

struct fcgi_request;
typedef enum fcgi_err fcgi_handler_fn(struct fcgi_request *req);

enum fcgi_route { FCGI_ROUTE_SNAPSHOT, FCGI_ROUTE_EVENTS, FCGI_ROUTE_STREAM };

enum fcgi_route_flags {
    FCGI_ROUTE_READS_BODY = 1 << 0, /* the request body is read and forwarded */
    FCGI_ROUTE_LONG_LIVED = 1 << 1, /* counted against OPENOVA_FLOW_MAX_STREAMS */
};

struct fcgi_route_entry {
    enum fcgi_route route;
    const char *method;
    const char *suffix;   /* the last path segment, also the upstream's */
    fcgi_handler_fn *handler;
    unsigned flags;
};

enum fcgi_route_result {
    FCGI_ROUTE_OK,
    FCGI_ROUTE_NOT_FOUND,
    FCGI_ROUTE_BAD_METHOD,  /* known route, other method: 405 */
    FCGI_ROUTE_ID_REQUIRED, /* empty id: 400 "deploymentId required" */
    FCGI_ROUTE_ID_INVALID,
    FCGI_ROUTE_URI_TOO_LONG,
    FCGI_ROUTE_HEADERS_TOO_LARGE, /* set by the dispatcher, never by fcgi_route_match */
};

struct fcgi_route_match {
    const struct fcgi_route_entry *entry; /* set for OK and BAD_METHOD */
    char id[FCGI_ID_MAX + 1];             /* set for OK */
};

/* fcgi_route_match: routes on the path of request_uri (the query is cut
 * off) below base ("" or "/api/v1/flows"). Pure: no I/O, no allocation. */
enum fcgi_route_result fcgi_route_match(const char *base, const char *method, const char *request_uri,
                                        struct fcgi_route_match *match);

/* fcgi_id_valid: 1 to 128 of A-Z a-z 0-9 . _ ~ -, and not "." or "..". */
bool fcgi_id_valid(const char *id, size_t len);

/* fcgi_route_allow: the Allow header value for a route entry. */
const char *fcgi_route_allow(const struct fcgi_route_entry *entry);

#endif
