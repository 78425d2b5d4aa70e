/* route.h: the one route table and the pure functions that match a request
 * line against it and check deployment ids. */
#ifndef OPENOVA_ROUTE_H
#define OPENOVA_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/error.h"

#define ROUTE_ID_MAX 128    /* a deployment id's length */
#define ROUTE_PATH_MAX 4096 /* a longer path is 414 */

struct flow_request;
typedef enum proxy_err handler_fn(struct flow_request *req);

enum route_kind { ROUTE_SNAPSHOT, ROUTE_EVENTS, ROUTE_STREAM, ROUTE_PURGE };

struct route {
    enum route_kind kind;
    const char *method;   /* the one method it takes; also the Allow header of a 405 */
    const char *suffix;   /* the last path segment, also the upstream's; "" for {base}/{id} itself */
    handler_fn *handler;
    bool reads_body;      /* the body is read and forwarded: its Content-Length is checked first */
    enum auth_scope auth; /* the variable that names its methods */
};

enum route_result {
    ROUTE_OK,
    ROUTE_NOT_FOUND,
    ROUTE_BAD_METHOD,  /* known route, other method: 405 */
    ROUTE_ID_REQUIRED, /* empty id: 400 "deploymentId required" */
    ROUTE_ID_INVALID,
    ROUTE_URI_TOO_LONG,
};

struct route_match {
    const struct route *entry; /* set for OK, BAD_METHOD, ID_REQUIRED and ID_INVALID */
    char id[ROUTE_ID_MAX + 1]; /* set for OK */
};

/* route_lookup: routes on the path of request_uri (the query is cut off)
 * below base ("" or "/api/v1/flows"): {base}/{id}/{suffix}, or {base}/{id}
 * for the purge (which dispatch refuses as not found unless it is
 * enabled). The id is percent-decoded where an
 * escape stands for an unreserved character ("dep%2Dx" is "dep-x", RFC 3986
 * 2.3); any other escape makes it ROUTE_ID_INVALID. Pure: no I/O, no
 * allocation. */
enum route_result route_lookup(const char *base, const char *method, const char *request_uri,
                               struct route_match *match);

/* route_id_valid: 1 to 128 of A-Z a-z 0-9 . _ ~ -, and not "." or "..". */
bool route_id_valid(const char *id, size_t len);

#endif
