/* records.c: <dir>/<id>.json -> the deployment's Sovereign FQDN, cached by
 * the file's stamp. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <json-c/json.h>

#include "auth/watched_file.h"
#include "core/error.h"
#include "handlers/records.h"
#include "handlers/route.h"

/* ---- the record's text (pure) ---- */

/* A string of the record, with its length: JSON may hold a NUL inside. */
struct text {
    const char *s;
    size_t len;
};

/* The one member of obj named name in any ASCII case, into *member (NULL
 * when there is none, or it is null: Go's decoder leaves the field alone
 * then). Go lets the last of several such keys win, but json-c keeps a
 * repeated key at its first place, so the two could read different values
 * out of one record: several are refused, not guessed at. */
static enum records_result member_of(json_object *obj, const char *name, json_object **member, char *why,
                                     size_t whylen)
{
    unsigned found = 0;
    *member = NULL;
    json_object_object_foreach(obj, key, child)
    {
        if (strcasecmp(key, name) != 0)
            continue;
        found++;
        *member = child;
    }
    if (found > 1) {
        proxy_say(why, whylen, "%s is given %u times", name, found);
        return RECORDS_MALFORMED;
    }
    return RECORDS_FOUND;
}

/* request.sovereignFQDN of record, keys in any case; an absent one leaves
 * fqdn empty. */
static enum records_result fqdn_of(json_object *record, struct text *fqdn, char *why, size_t whylen)
{
    json_object *request, *value;
    enum records_result rc = member_of(record, "request", &request, why, whylen);
    if (rc != RECORDS_FOUND || !request)
        return rc;
    if (!json_object_is_type(request, json_type_object)) {
        proxy_say(why, whylen, "request is not an object");
        return RECORDS_MALFORMED;
    }
    rc = member_of(request, "sovereignFQDN", &value, why, whylen);
    if (rc != RECORDS_FOUND || !value)
        return rc;
    if (!json_object_is_type(value, json_type_string)) {
        proxy_say(why, whylen, "request.sovereignFQDN is not a string");
        return RECORDS_MALFORMED;
    }
    fqdn->s = json_object_get_string(value);
    fqdn->len = (size_t)json_object_get_string_len(value);
    return RECORDS_FOUND;
}

enum records_result records_parse(const char *text, size_t len, char fqdn[HTTP_HOSTNAME_MAX + 1], char *why,
                                  size_t whylen)
{
    if (len > RECORDS_FILE_MAX || len > (size_t)INT32_MAX) {
        proxy_say(why, whylen, "larger than %d bytes", RECORDS_FILE_MAX);
        return RECORDS_UNREADABLE;
    }
    /* A NUL in a key is cut off by json-c, where Go keeps the key whole and
     * matches nothing: a record holding one is refused, not guessed at. */
    if (memmem(text, len, "\\u0000", 6)) {
        proxy_say(why, whylen, "holds \\u0000");
        return RECORDS_MALFORMED;
    }
    json_tokener *tok = json_tokener_new();
    if (!tok) {
        proxy_say(why, whylen, "out of memory");
        return RECORDS_NOMEM;
    }
    /* Go's decoder takes no comments, single quotes or trailing commas. */
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *record = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    while (used < len && strchr(" \t\r\n", text[used]))
        used++;
    enum records_result rc = RECORDS_MALFORMED;
    struct text value = {NULL, 0};
    if (!record || jerr != json_tokener_success || used != len)
        proxy_say(why, whylen, "not JSON%s%s", jerr != json_tokener_success ? ": " : " (text after the value)",
                  jerr != json_tokener_success ? json_tokener_error_desc(jerr) : "");
    else if (!json_object_is_type(record, json_type_object))
        proxy_say(why, whylen, "not a JSON object");
    else if ((rc = fqdn_of(record, &value, why, whylen)) == RECORDS_FOUND) {
        if (!value.len) {
            proxy_say(why, whylen, "no request.sovereignFQDN");
            rc = RECORDS_NO_FQDN;
        } else if (!http_hostname_valid(value.s, value.len)) {
            proxy_say(why, whylen, "request.sovereignFQDN is not a DNS host name");
            rc = RECORDS_NO_FQDN;
        } else {
            memcpy(fqdn, value.s, value.len);
            fqdn[value.len] = '\0';
        }
    }
    json_object_put(record);
    return rc;
}

/* ---- the directory and its cache ---- */

struct cached {
    char id[ROUTE_ID_MAX + 1];
    struct file_stamp stamp;
    enum records_result result;
    char fqdn[HTTP_HOSTNAME_MAX + 1];
    char why[96];
    struct cached *next; /* the bucket's chain */
};

#define BUCKETS 1024

struct records {
    int dirfd;
    atomic_bool no_openat2; /* the kernel (or a seccomp filter) refused openat2: O_NOFOLLOW instead */
    pthread_mutex_t lock;   /* guards the buckets and count, never held while a file is read */
    struct cached *buckets[BUCKETS];
    size_t count;
};

struct records *records_open(const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        proxy_say(err, errlen, "OPENOVA_FLOW_DEPLOYMENTS_DIR: cannot open %s: %s", dir, strerror(errno));
        return NULL;
    }
    struct records *r = calloc(1, sizeof *r);
    if (!r) {
        close(fd);
        proxy_say(err, errlen, "OPENOVA_FLOW_DEPLOYMENTS_DIR: out of memory");
        return NULL;
    }
    r->dirfd = fd;
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

static void forget_all(struct records *r)
{
    for (size_t i = 0; i < BUCKETS; i++) {
        while (r->buckets[i]) {
            struct cached *c = r->buckets[i];
            r->buckets[i] = c->next;
            free(c);
        }
    }
    r->count = 0;
}

void records_close(struct records *r)
{
    if (!r)
        return;
    forget_all(r);
    pthread_mutex_destroy(&r->lock);
    close(r->dirfd);
    free(r);
}

bool records_present(const struct records *r)
{
    struct stat sb;
    /* A directory removed while open still answers fstat, with no links. */
    return fstat(r->dirfd, &sb) == 0 && S_ISDIR(sb.st_mode) && sb.st_nlink > 0;
}

static size_t bucket_of(const char *id)
{
    size_t h = 5381;
    for (const char *c = id; *c; c++)
        h = h * 33 + (unsigned char)*c;
    return h % BUCKETS;
}

/* The cache entry of id; with the lock held. */
static struct cached **find(struct records *r, const char *id)
{
    struct cached **at = &r->buckets[bucket_of(id)];
    while (*at && strcmp((*at)->id, id) != 0)
        at = &(*at)->next;
    return at;
}

static void forget(struct records *r, const char *id)
{
    pthread_mutex_lock(&r->lock);
    struct cached **at = find(r, id);
    if (*at) {
        struct cached *gone = *at;
        *at = gone->next;
        free(gone);
        r->count--;
    }
    pthread_mutex_unlock(&r->lock);
}

/* Opens name in the directory for reading, never through a symlink that
 * leads out of it (RESOLVE_BENEATH; without openat2, no symlink at all).
 * O_NONBLOCK: a FIFO planted there must not hold the worker. */
static int open_beneath(struct records *r, const char *name)
{
    int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    if (!atomic_load_explicit(&r->no_openat2, memory_order_relaxed)) {
        struct open_how how = {.flags = (unsigned long long)flags,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
        long fd = syscall(SYS_openat2, r->dirfd, name, &how, sizeof how);
        if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
            return (int)fd;
        atomic_store_explicit(&r->no_openat2, true, memory_order_relaxed);
    }
    return openat(r->dirfd, name, flags | O_NOFOLLOW);
}

/* The cached result for stamp, when it still holds; with the lock free. */
static bool from_cache(struct records *r, const char *id, const struct file_stamp *stamp,
                       char fqdn[HTTP_HOSTNAME_MAX + 1], char *why, size_t whylen, enum records_result *rc)
{
    bool hit = false;
    pthread_mutex_lock(&r->lock);
    struct cached *c = *find(r, id);
    if (c && file_stamp_equal(&c->stamp, stamp) && !file_stamp_racy(stamp)) {
        hit = true;
        *rc = c->result;
        memcpy(fqdn, c->fqdn, sizeof c->fqdn);
        proxy_say(why, whylen, "%s", c->why);
    }
    pthread_mutex_unlock(&r->lock);
    return hit;
}

static void remember(struct records *r, const char *id, const struct file_stamp *stamp, enum records_result rc,
                     const char *fqdn, const char *why)
{
    pthread_mutex_lock(&r->lock);
    struct cached **at = find(r, id);
    if (!*at && r->count >= RECORDS_CACHE_MAX) {
        forget_all(r); /* rare: only a console with more deployments than that */
        at = find(r, id);
    }
    if (!*at && (*at = calloc(1, sizeof **at))) {
        snprintf((*at)->id, sizeof (*at)->id, "%s", id);
        r->count++;
    }
    if (*at) {
        (*at)->stamp = *stamp;
        (*at)->result = rc;
        snprintf((*at)->fqdn, sizeof (*at)->fqdn, "%s", fqdn);
        snprintf((*at)->why, sizeof (*at)->why, "%s", why);
    }
    pthread_mutex_unlock(&r->lock);
}

/* Reads the open record fd of size bytes and parses it. */
static enum records_result read_record(int fd, size_t size, char fqdn[HTTP_HOSTNAME_MAX + 1], char *why,
                                       size_t whylen)
{
    /* One byte more than the stamp says: a file that grew since is read whole or found too large. */
    char *text = malloc(size + 1);
    if (!text) {
        proxy_say(why, whylen, "out of memory");
        return RECORDS_NOMEM;
    }
    size_t got = 0;
    while (got < size + 1) {
        ssize_t n = read(fd, text + got, size + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            proxy_say(why, whylen, "cannot be read: %s", strerror(errno));
            free(text);
            return RECORDS_UNREADABLE;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    enum records_result rc = records_parse(text, got, fqdn, why, whylen);
    free(text);
    return rc;
}

enum records_result records_lookup(struct records *r, const char *id, char fqdn[HTTP_HOSTNAME_MAX + 1], char *why,
                                   size_t whylen)
{
    char name[ROUTE_ID_MAX + sizeof ".json"];
    snprintf(name, sizeof name, "%s.json", id);
    fqdn[0] = '\0';
    /* The common case, a record read before and unchanged since, costs one
     * fstatat: the same stamp is the same file, as the open below read it
     * (a symlink is not followed here, so it takes the open's way). */
    struct stat sb;
    struct file_stamp stamp;
    enum records_result rc;
    if (fstatat(r->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode)) {
        file_stamp_of(&sb, &stamp);
        if (from_cache(r, id, &stamp, fqdn, why, whylen, &rc))
            return rc;
    }
    int fd = open_beneath(r, name);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT) {
            forget(r, id);
            proxy_say(why, whylen, "no record %s", name);
            return RECORDS_NOT_FOUND;
        }
        proxy_say(why, whylen, "%s: %s", name,
                  e == EXDEV || e == ELOOP ? "a symlink that leaves the records directory" : strerror(e));
        return RECORDS_UNREADABLE;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        proxy_say(why, whylen, "%s is not a regular file", name);
        rc = RECORDS_UNREADABLE;
    } else if (sb.st_size > RECORDS_FILE_MAX) {
        proxy_say(why, whylen, "%s is larger than %d bytes", name, RECORDS_FILE_MAX);
        rc = RECORDS_UNREADABLE;
    } else {
        file_stamp_of(&sb, &stamp);
        if (!from_cache(r, id, &stamp, fqdn, why, whylen, &rc)) {
            rc = read_record(fd, (size_t)sb.st_size, fqdn, why, whylen);
            /* What the content says is kept; a failed read may pass (EIO,
             * ESTALE), so the next request reads again. */
            if (rc != RECORDS_NOMEM && rc != RECORDS_UNREADABLE)
                remember(r, id, &stamp, rc, fqdn, rc == RECORDS_FOUND ? "" : why);
        }
    }
    close(fd);
    return rc;
}
