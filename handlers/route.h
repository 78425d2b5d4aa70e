/* route.h: the one route table and the pure functions that match a request
 * line against it and check deployment ids. */
#ifndef OPENOVA_ROUTE_H
#define OPENOVA_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

#define ROUTE_ID_MAX 128
#define ROUTE_PATH_MAX 4096

struct fcgi_request;
typedef enum proxy_err handler_fn(struct fcgi_request *req);

enum route_kind { ROUTE_SNAPSHOT, ROUTE_EVENTS, ROUTE_STREAM };

enum route_flags {
    ROUTE_READS_BODY = 1 << 0, /* the request body is read and forwarded */
    ROUTE_LONG_LIVED = 1 << 1, /* counted against OPENOVA_FLOW_MAX_STREAMS */
};

struct route {
    enum route_kind route;
    const char *method;
    const char *suffix;   /* the last path segment, also the upstream's */
    handler_fn *handler;
    unsigned flags;
};

enum route_result {
    ROUTE_OK,
    ROUTE_NOT_FOUND,
    ROUTE_BAD_METHOD,  /* known route, other method: 405 */
    ROUTE_ID_REQUIRED, /* empty id: 400 "deploymentId required" */
    ROUTE_ID_INVALID,
    ROUTE_URI_TOO_LONG,
    ROUTE_HEADERS_TOO_LARGE, /* set by the dispatcher, never by route_lookup */
};

struct route_match {
    const struct route *entry; /* set for OK and BAD_METHOD */
    char id[ROUTE_ID_MAX + 1];             /* set for OK */
};

/* route_lookup: routes on the path of request_uri (the query is cut
 * off) below base ("" or "/api/v1/flows"). Pure: no I/O, no allocation. */
enum route_result route_lookup(const char *base, const char *method, const char *request_uri,
                                        struct route_match *match);

/* route_id_valid: 1 to 128 of A-Z a-z 0-9 . _ ~ -, and not "." or "..". */
bool route_id_valid(const char *id, size_t len);

/* route_allow: the Allow header value for a route entry. */
const char *route_allow(const struct route *entry);

#endif
