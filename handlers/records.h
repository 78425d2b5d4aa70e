/* records.h: the central console's deployment records, <dir>/<id>.json,
 * written by another service: the Sovereign's FQDN of each deployment, read
 * on demand, cached, and read again when the file changes. */
#ifndef OPENOVA_RECORDS_H
#define OPENOVA_RECORDS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/http.h"

/* A record larger than this is refused unread. The FQDN is all the proxy
 * needs; a record's other fields (the request, its status) stay far below. */
#define RECORDS_FILE_MAX (1024 * 1024)
/* The records kept in memory at most: past it the cache starts again. */
#define RECORDS_CACHE_MAX 4096

enum records_result {
    RECORDS_FOUND,      /* the FQDN is filled in */
    RECORDS_NOT_FOUND,  /* no <id>.json */
    RECORDS_UNREADABLE, /* not a regular file, a symlink out of the directory, too large, or unreadable */
    RECORDS_MALFORMED,  /* not a JSON object, or request is not an object */
    RECORDS_NO_FQDN,    /* no request.sovereignFQDN, or not a DNS host name */
    RECORDS_NOMEM,
};

/* records_parse: the FQDN of a record's text (len bytes, not necessarily
 * NUL-terminated) into fqdn. Keys match as Go's encoding/json matches them
 * to the record's fields, which is how the record's writer reads them:
 * "request" and "sovereignFQDN" in any ASCII case, a null value as none.
 * Where Go and json-c could read one record two ways, it is refused
 * (RECORDS_MALFORMED): a key given more than once in different cases, a
 * \u0000 anywhere, anything json-c's strict mode refuses. The FQDN must
 * pass http_hostname_valid. Returns RECORDS_FOUND, RECORDS_MALFORMED,
 * RECORDS_NO_FQDN or RECORDS_NOMEM, with the reason in why. Pure. */
enum records_result records_parse(const char *text, size_t len, char fqdn[HTTP_HOSTNAME_MAX + 1], char *why,
                                  size_t whylen);

struct records;

/* records_open: the directory dir, opened once (a directory replaced later
 * is not followed). NULL with a sentence in err when it cannot be opened
 * or is not a directory, or when out of memory. */
struct records *records_open(const char *dir, char *err, size_t errlen);

/* records_close: NULL-safe. No lookup may be running. */
void records_close(struct records *r);

/* records_lookup: the FQDN of deployment id (a route-checked id: no '/',
 * not "." or "..") from <id>.json. The file is opened relative to the
 * directory and never through a symlink that leads out of it; its stamp
 * (auth/watched_file.h) says whether the cached result still holds. A
 * record added is found at once, a record removed is RECORDS_NOT_FOUND at
 * once. The reason of any other result is in why. Thread-safe; no lock is
 * held while a file is read. */
enum records_result records_lookup(struct records *r, const char *id, char fqdn[HTTP_HOSTNAME_MAX + 1], char *why,
                                   size_t whylen);

/* records_present: whether the directory is still there (readiness). */
bool records_present(const struct records *r);

#endif
