/* route.c: the route table and request-line matching. Routing uses
 * REQUEST_URI because every web server passes it unmodified, while
 * SCRIPT_NAME/PATH_INFO differ between servers and lighttpd collapses "//". */
#include <string.h>

#include "core/http.h"
#include "handlers/handlers.h"
#include "handlers/route.h"

static const struct route routes[] = {
    {.kind = ROUTE_SNAPSHOT, .method = "GET", .suffix = "snapshot", .handler = handle_snapshot},
    {.kind = ROUTE_EVENTS, .method = "POST", .suffix = "events", .handler = handle_events, .reads_body = true,
     .auth = AUTH_SCOPE_EVENTS},
    {.kind = ROUTE_STREAM, .method = "GET", .suffix = "stream", .handler = handle_stream},
    {.kind = ROUTE_PURGE, .method = "DELETE", .suffix = "", .handler = handle_purge, .auth = AUTH_SCOPE_DELETE},
};

/* RFC 3986 unreserved characters: safe in a URL path without escaping. */
static bool unreserved(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '~' || c == '-';
}

bool route_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > ROUTE_ID_MAX)
        return false;
    if ((len == 1 && id[0] == '.') || (len == 2 && id[0] == '.' && id[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!unreserved(id[i]))
            return false;
    return true;
}

/* The id as the flow server reads it: a percent-encoded unreserved
 * character is the character itself (RFC 3986 2.3); any other escape, and
 * an id that is not valid once decoded, is refused. */
static bool decode_id(const char *raw, size_t len, char out[ROUTE_ID_MAX + 1])
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (n == ROUTE_ID_MAX)
            return false;
        char c = raw[i];
        if (c == '%') {
            if (len - i < 3 || http_hex_value(raw[i + 1]) < 0 || http_hex_value(raw[i + 2]) < 0)
                return false;
            c = (char)(http_hex_value(raw[i + 1]) * 16 + http_hex_value(raw[i + 2]));
            if (!unreserved(c))
                return false;
            i += 2;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    return route_id_valid(out, n);
}

enum route_result route_lookup(const char *base, const char *method, const char *request_uri,
                               struct route_match *match)
{
    match->entry = NULL;
    match->id[0] = '\0';
    if (!request_uri || !method)
        return ROUTE_NOT_FOUND;

    size_t path_len = strcspn(request_uri, "?#");
    if (path_len > ROUTE_PATH_MAX)
        return ROUTE_URI_TOO_LONG;
    size_t base_len = strlen(base);
    if (path_len <= base_len + 1 || strncmp(request_uri, base, base_len) != 0 || request_uri[base_len] != '/')
        return ROUTE_NOT_FOUND;

    /* {base}/{id}/{suffix}: the suffix is the last segment, the id all
     * between; {base}/{id}: the id alone, and the suffix "". */
    const char *rest = request_uri + base_len + 1;
    size_t rest_len = path_len - base_len - 1;
    const char *slash = NULL;
    for (size_t i = rest_len; i > 0; i--) {
        if (rest[i - 1] == '/') {
            slash = rest + i - 1;
            break;
        }
    }
    const char *suffix = slash ? slash + 1 : rest + rest_len;
    size_t suffix_len = rest_len - (size_t)(suffix - rest);
    size_t id_len = slash ? (size_t)(slash - rest) : rest_len;
    if (slash && suffix_len == 0)
        return ROUTE_NOT_FOUND; /* {base}/{id}/: no route ends in a slash */

    const struct route *entry = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strlen(routes[i].suffix) == suffix_len && memcmp(routes[i].suffix, suffix, suffix_len) == 0) {
            entry = &routes[i];
            break;
        }
    }
    if (!entry)
        return ROUTE_NOT_FOUND;
    match->entry = entry;
    if (strcmp(entry->method, method) != 0)
        return ROUTE_BAD_METHOD;
    if (id_len == 0)
        return ROUTE_ID_REQUIRED;
    if (!decode_id(rest, id_len, match->id)) {
        match->id[0] = '\0';
        return ROUTE_ID_INVALID;
    }
    return ROUTE_OK;
}
