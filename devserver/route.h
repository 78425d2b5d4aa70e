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
    DS_ROUTE_NOT_FOUND,   /* 404 */
    DS_ROUTE_BAD_METHOD,  /* 405, Allow: entry->method */
    DS_ROUTE_BAD_FLOW_ID, /* 400 */
};

struct ds_route_match {
    const struct ds_route_entry *entry; /* set for OK, BAD_METHOD, BAD_FLOW_ID */
    char flow_id[DS_FLOW_ID_MAX + 1];   /* "" unless OK with a flow id */
};

/* ds_route_match: matches method and path (no query string; MHD strips it)
 * against the table. The method is checked before the flow id, so a wrong
 * method is 405 whatever the id. Methods match exactly: HEAD is 405 too
 * (a test server needs no HEAD; a stream has no end to measure). NULL
 * method or path is NOT_FOUND. Fills *m and returns the result. */
enum ds_route_result ds_route_match(const char *method, const char *path, struct ds_route_match *m);

/* ds_flow_id_valid: 1 to DS_FLOW_ID_MAX bytes of A-Z a-z 0-9 . _ ~ - (the
 * RFC 3986 unreserved set), but not "." or "..", which clients and proxies
 * remove from paths as dot segments (RFC 3986 section 5.2.4). */
bool ds_flow_id_valid(const char *id, size_t len);

#endif
