/* route.h: the flow server's one route table and the pure function that
 * matches a request (method and path) against it. */
#ifndef OPENOVA_DS_ROUTE_H
#define OPENOVA_DS_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "flow.h"

enum ds_route {
    DS_ROUTE_EVENTS,   /* POST   /v1/flows/{flowId}/events */
    DS_ROUTE_SNAPSHOT, /* GET    /v1/flows/{flowId}/snapshot */
    DS_ROUTE_STREAM,   /* GET    /v1/flows/{flowId}/stream */
    DS_ROUTE_PURGE,    /* DELETE /v1/flows/{flowId} */
    DS_ROUTE_HEALTHZ,  /* GET    /healthz */
    DS_ROUTE_READYZ,   /* GET    /readyz */
};

struct ds_route_entry {
    enum ds_route route;
    const char *method; /* the one method allowed, also the Allow header */
    const char *path;   /* the whole path, or the part before the flow id */
    const char *suffix; /* the part after the flow id; NULL: no flow id */
};

enum ds_route_result {
    DS_ROUTE_OK,
    DS_ROUTE_NOT_FOUND,    /* 404: not under /v1/flows/ nor a health path */
    DS_ROUTE_BAD_METHOD,   /* 405, Allow: entry->method */
    DS_ROUTE_NO_SUCH_PATH, /* 405 without Allow: another path under /v1/flows/ */
    DS_ROUTE_BAD_FLOW_ID,  /* 400 */
};

struct ds_route_match {
    const struct ds_route_entry *entry; /* set for OK, BAD_METHOD, BAD_FLOW_ID */
    char flow_id[DS_FLOW_ID_MAX + 1];   /* "" unless OK with a flow id */
};

/* ds_route_match: matches method and path (percent-decoded by MHD, no
 * query string) against the table, as the reference server answers: a
 * path of a route with another method is 405 (with Allow), any other path
 * under /v1/flows/ (an unknown suffix, a trailing slash, an id with a '/'
 * or an empty one) is 405 too, anything else 404. The method is checked
 * before the flow id. Methods match exactly: HEAD is 405 (a stream has no
 * end to measure). A flow id is opaque: any bytes up to DS_FLOW_ID_MAX
 * (longer is BAD_FLOW_ID); with strict (--strict) it must also pass
 * ds_flow_id_valid. NULL method or path is NOT_FOUND. Fills *m and returns
 * the result. */
enum ds_route_result ds_route_match(const char *method, const char *path, bool strict, struct ds_route_match *m);

/* ds_flow_id_valid: 1 to 128 bytes of A-Z a-z 0-9 . _ ~ - (the RFC 3986
 * unreserved set, what the proxy accepts), but not "." or "..", which
 * clients and proxies remove from paths as dot segments (RFC 3986 section
 * 5.2.4). */
bool ds_flow_id_valid(const char *id, size_t len);

#endif
