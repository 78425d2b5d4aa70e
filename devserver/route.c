/* route.c: the flow server's route table and matching (see route.h). */
#include <string.h>

#include "route.h"

#define FLOWS_PREFIX "/v1/flows/"
/* The proxy's own bound on ids, which --strict holds the emitters to. */
#define DS_STRICT_FLOW_ID_MAX 128

static const struct ds_route_entry routes[] = {
    {DS_ROUTE_EVENTS, "POST", "/v1/flows/", "/events"},
    {DS_ROUTE_SNAPSHOT, "GET", "/v1/flows/", "/snapshot"},
    {DS_ROUTE_STREAM, "GET", "/v1/flows/", "/stream"},
    {DS_ROUTE_PURGE, "DELETE", "/v1/flows/", ""},
    {DS_ROUTE_HEALTHZ, "GET", "/healthz", NULL},
    {DS_ROUTE_READYZ, "GET", "/readyz", NULL},
};

bool ds_flow_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > DS_STRICT_FLOW_ID_MAX)
        return false;
    if ((len == 1 && id[0] == '.') || (len == 2 && id[0] == '.' && id[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '~' || c == '-'))
            return false;
    }
    return true;
}

/* shape: does path have this entry's shape? Sets the id span when it does:
 * everything between prefix and suffix, one non-empty segment. */
static bool shape(const struct ds_route_entry *e, const char *path, const char **id, size_t *id_len)
{
    size_t plen = strlen(e->path), len = strlen(path);
    *id = NULL;
    *id_len = 0;
    if (!e->suffix)
        return strcmp(path, e->path) == 0;
    if (len < plen || strncmp(path, e->path, plen) != 0)
        return false;
    const char *rest = path + plen;
    size_t rlen = len - plen, slen = strlen(e->suffix);
    if (rlen <= slen || strcmp(rest + rlen - slen, e->suffix) != 0)
        return false;
    if (memchr(rest, '/', rlen - slen))
        return false;
    *id = rest;
    *id_len = rlen - slen;
    return true;
}

enum ds_route_result ds_route_match(const char *method, const char *path, bool strict, struct ds_route_match *m)
{
    m->entry = NULL;
    m->flow_id[0] = '\0';
    if (!method || !path)
        return DS_ROUTE_NOT_FOUND;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const char *id;
        size_t id_len;
        if (!shape(&routes[i], path, &id, &id_len))
            continue;
        m->entry = &routes[i];
        if (strcmp(method, routes[i].method) != 0)
            return DS_ROUTE_BAD_METHOD;
        if (!routes[i].suffix)
            return DS_ROUTE_OK;
        if (id_len > DS_FLOW_ID_MAX || (strict && !ds_flow_id_valid(id, id_len)))
            return DS_ROUTE_BAD_FLOW_ID;
        memcpy(m->flow_id, id, id_len);
        m->flow_id[id_len] = '\0';
        return DS_ROUTE_OK;
    }
    /* the reference answers every other path under its flows prefix 405 */
    return strncmp(path, FLOWS_PREFIX, strlen(FLOWS_PREFIX)) == 0 ? DS_ROUTE_NO_SUCH_PATH : DS_ROUTE_NOT_FOUND;
}
