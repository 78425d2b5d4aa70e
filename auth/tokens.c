/* tokens.c: static bearer tokens: SHA-256 digests from a file, compared in
 * constant time, the file re-read when it changes. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/tokens.h"
#include "auth/watched_file.h"
#include "core/error.h"
#include "core/http.h"

#define DIGEST_LEN 32
#define FILE_MAX (8u * 1024 * 1024) /* some 100 000 named tokens */
#define LINE_MAX_LEN 1024
#define LINE_WHY_MAX 128 /* the sentence on a bad line, before the file and line are put in front */
#define ENTRIES_FIRST 16 /* the list's first allocation, doubled as needed */
/* An unnamed token's user: the prefix and the digest's first hex digits. */
#define UNNAMED_PREFIX "token-"
#define UNNAMED_HEX_DIGITS 8

struct entry {
    unsigned char digest[DIGEST_LEN];
    char *name;  /* NULL: unnamed */
    size_t line; /* for the duplicate check at load */
};

/* One version of the file. Immutable once published; whoever drops the last
 * reference frees it, so a check never holds the lock while comparing. */
struct list {
    atomic_uint refs;
    size_t n;
    struct entry *e;
};

struct tokens {
    EVP_MD *sha256;           /* fetched once: an implicit fetch per check is slow */
    struct watched_set files; /* the one file, and its reload */
    struct watched_file file; /* its current is a struct list */
};

static void list_release(struct list *l)
{
    if (!l || atomic_fetch_sub(&l->refs, 1) != 1)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->e[i].name);
    free(l->e);
    free(l);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int by_digest(const void *a, const void *b)
{
    const struct entry *const *x = a, *const *y = b;
    int c = memcmp((*x)->digest, (*y)->digest, DIGEST_LEN);
    if (c)
        return c;
    return (*x)->line < (*y)->line ? -1 : (*x)->line > (*y)->line;
}

/* ignored: a blank line or a comment (its length does not matter). */
static bool ignored(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && is_space(s[i]))
        i++;
    return i == len || s[i] == '#';
}

/* parse_line: one line of the file that is not ignored (without its '\n')
 * into e. Returns PROXY_OK, PROXY_ERR_INVALID with the problem in err, or
 * PROXY_ERR_NOMEM. */
static enum proxy_err parse_line(const char *s, size_t len, struct entry *e, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < len && is_space(s[i]))
        i++;
    if (len > LINE_MAX_LEN) {
        proxy_say(err, errlen, "longer than %d bytes", LINE_MAX_LEN);
        return PROXY_ERR_INVALID;
    }
    if (memchr(s, '\0', len)) {
        proxy_say(err, errlen, "holds a NUL byte");
        return PROXY_ERR_INVALID;
    }
    size_t d = 0;
    for (; d < 2 * DIGEST_LEN && i + d < len; d++)
        if (http_hex_value(s[i + d]) < 0)
            break;
    if (d != 2 * DIGEST_LEN || (i + d < len && !is_space(s[i + d]))) {
        proxy_say(err, errlen, "expected a SHA-256 digest of 64 hex digits");
        return PROXY_ERR_INVALID;
    }
    for (size_t k = 0; k < DIGEST_LEN; k++)
        e->digest[k] = (unsigned char)(http_hex_value(s[i + 2 * k]) << 4 | http_hex_value(s[i + 2 * k + 1]));
    i += d;
    while (i < len && is_space(s[i]))
        i++;
    e->name = NULL;
    if (i == len)
        return PROXY_OK;
    size_t start = i;
    /* The name becomes an HTTP header value upstream: printable ASCII. */
    while (i < len && !is_space(s[i])) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e) {
            proxy_say(err, errlen, "the name holds a byte that is not printable ASCII");
            return PROXY_ERR_INVALID;
        }
        i++;
    }
    if (i - start > TOKENS_NAME_MAX) {
        proxy_say(err, errlen, "the name is longer than %d characters", TOKENS_NAME_MAX);
        return PROXY_ERR_INVALID;
    }
    size_t end = i;
    while (i < len && is_space(s[i]))
        i++;
    if (i != len) {
        proxy_say(err, errlen, "expected a digest and at most one name");
        return PROXY_ERR_INVALID;
    }
    /* sha256sum writes "<digest>  -" for its standard input: that "-" is
     * the file it read, not a name, so `printf %s "$TOKEN" | sha256sum`
     * makes a working line as it is. */
    if (end - start == 1 && s[start] == '-')
        return PROXY_OK;
    e->name = strndup(s + start, end - start);
    return e->name ? PROXY_OK : PROXY_ERR_NOMEM;
}

/* add: appends e to l, growing it. PROXY_OK or PROXY_ERR_NOMEM (e is then
 * still the caller's). */
static enum proxy_err add(struct list *l, size_t *cap, const struct entry *e)
{
    if (l->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : ENTRIES_FIRST;
        struct entry *ne = realloc(l->e, ncap * sizeof *ne);
        if (!ne)
            return PROXY_ERR_NOMEM;
        l->e = ne;
        *cap = ncap;
    }
    l->e[l->n++] = *e;
    return PROXY_OK;
}

/* find_duplicate: a digest listed twice is a mistake to surface (which
 * name would it carry?). Returns PROXY_OK when there is none,
 * PROXY_ERR_INVALID with both lines in err, or PROXY_ERR_NOMEM. */
static enum proxy_err find_duplicate(const struct list *l, const char *path, char *err, size_t errlen)
{
    if (l->n < 2)
        return PROXY_OK;
    struct entry **sorted = malloc(l->n * sizeof *sorted);
    if (!sorted)
        return PROXY_ERR_NOMEM;
    for (size_t i = 0; i < l->n; i++)
        sorted[i] = &l->e[i];
    qsort(sorted, l->n, sizeof *sorted, by_digest);
    enum proxy_err rc = PROXY_OK;
    for (size_t i = 1; i < l->n && rc == PROXY_OK; i++)
        if (memcmp(sorted[i - 1]->digest, sorted[i]->digest, DIGEST_LEN) == 0) {
            proxy_say(err, errlen, "tokens file %s: line %zu: the same digest as line %zu", path, sorted[i]->line,
                sorted[i - 1]->line);
            rc = PROXY_ERR_INVALID;
        }
    free(sorted);
    return rc;
}

/* parse_file: the content of the tokens file at path into a new struct
 * list with one reference (a watched_kind's parse). NULL with a sentence
 * in err. */
static void *parse_file(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
    struct list *l = calloc(1, sizeof *l);
    size_t cap = 0, line = 0;
    char why[LINE_WHY_MAX];
    enum proxy_err rc = l ? PROXY_OK : PROXY_ERR_NOMEM;
    if (l)
        atomic_init(&l->refs, 1);
    for (size_t pos = 0; pos < len && rc == PROXY_OK;) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        const char *s = buf + pos;
        size_t n = end - pos;
        struct entry e = {.line = ++line};
        pos = end + 1;
        if (ignored(s, n))
            continue;
        rc = parse_line(s, n, &e, why, sizeof why);
        if (rc == PROXY_ERR_INVALID)
            proxy_say(err, errlen, "tokens file %s: line %zu: %s", path, line, why);
        else if (rc == PROXY_OK && (rc = add(l, &cap, &e)) != PROXY_OK)
            free(e.name);
    }
    if (rc == PROXY_OK)
        rc = find_duplicate(l, path, err, errlen);
    if (rc == PROXY_ERR_NOMEM)
        proxy_say(err, errlen, "tokens file %s: out of memory", path);
    if (rc != PROXY_OK) {
        list_release(l);
        return NULL;
    }
    return l;
}

/* sha256: the digest of len bytes of data. PROXY_OK, or PROXY_ERR_NOMEM:
 * with a fetched SHA-256, EVP_Digest fails only when it cannot allocate
 * its context. */
static enum proxy_err sha256(const EVP_MD *md, const void *data, size_t len, unsigned char out[DIGEST_LEN])
{
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, md, NULL) == 1 && n == DIGEST_LEN ? PROXY_OK : PROXY_ERR_NOMEM;
}

static void retain_list(void *content)
{
    atomic_fetch_add(&((struct list *)content)->refs, 1);
}

static void release_list(void *content)
{
    list_release(content);
}

static size_t count_list(const void *content)
{
    return ((const struct list *)content)->n;
}

static const struct watched_kind tokens_file = {
    .what = "tokens file",
    .items = "tokens",
    .max = FILE_MAX,
    .parse = parse_file,
    .retain = retain_list,
    .release = release_list,
    .count = count_list,
};

/* acquire: the current list, with a reference the caller drops, after a
 * reload when one is due. */
static struct list *acquire(struct tokens *t)
{
    watched_set_refresh_if_due(&t->files);
    return watched_file_acquire(&t->file);
}

struct tokens *tokens_new(const char *path, char *err, size_t errlen)
{
    if (!path || !*path) {
        proxy_say(err, errlen, "no tokens file given");
        return NULL;
    }
    struct tokens *t = calloc(1, sizeof *t);
    if (!t) {
        proxy_say(err, errlen, "out of memory loading tokens file %s", path);
        return NULL;
    }
    watched_set_init(&t->files);
    t->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!t->sha256) {
        proxy_say(err, errlen, "tokens file %s: OpenSSL has no SHA-256", path);
        goto fail;
    }
    if (watched_file_open(&t->file, &t->files, &tokens_file, path, t->sha256, err, errlen) != PROXY_OK)
        goto fail;
    return t;
fail:
    tokens_free(t);
    return NULL;
}

void tokens_reload(struct tokens *t)
{
    watched_set_reload(&t->files);
}

void tokens_free(struct tokens *t)
{
    if (!t)
        return;
    watched_set_destroy(&t->files);
    EVP_MD_free(t->sha256);
    free(t);
}

/* match: the index of the first entry of l whose digest is d, into *hit.
 * Every entry is compared and the first match picked without a branch on
 * the comparison, so timing says nothing about which entry (or how many
 * bytes of one) matched. */
static bool match(const struct list *l, const unsigned char d[DIGEST_LEN], size_t *hit)
{
    size_t first = 0;
    unsigned any = 0;
    for (size_t i = 0; i < l->n; i++) {
        unsigned eq = (unsigned)(CRYPTO_memcmp(d, l->e[i].digest, DIGEST_LEN) == 0);
        size_t take = (size_t)0 - (size_t)(eq & (any ^ 1u));
        first = (first & ~take) | (i & take);
        any |= eq;
    }
    *hit = first;
    return any;
}

/* user_of: the user e lets in, malloc'd: its name, or for an unnamed
 * token UNNAMED_PREFIX and its digest's first UNNAMED_HEX_DIGITS hex
 * digits. NULL when out of memory. */
static char *user_of(const struct entry *e)
{
    static const char hex[] = "0123456789abcdef";
    if (e->name)
        return strdup(e->name);
    char name[sizeof UNNAMED_PREFIX + UNNAMED_HEX_DIGITS];
    size_t n = sizeof UNNAMED_PREFIX - 1;
    memcpy(name, UNNAMED_PREFIX, n);
    for (size_t k = 0; k < UNNAMED_HEX_DIGITS / 2; k++) {
        name[n++] = hex[e->digest[k] >> 4];
        name[n++] = hex[e->digest[k] & 15];
    }
    name[n] = '\0';
    return strdup(name);
}

enum proxy_err tokens_check(struct tokens *t, const char *token, time_t now, struct credential *out, char *why,
                            size_t whylen)
{
    (void)now;
    if (!token || !*token) {
        proxy_say(why, whylen, "bearer: empty token");
        return PROXY_ERR_REFUSED;
    }
    unsigned char d[DIGEST_LEN];
    if (sha256(t->sha256, token, strlen(token), d) != PROXY_OK) {
        proxy_say(why, whylen, "bearer: SHA-256 failed");
        return PROXY_ERR_NOMEM;
    }
    struct list *l = acquire(t);
    size_t hit;
    char *user = NULL;
    enum proxy_err rc = PROXY_OK;
    if (!match(l, d, &hit)) {
        proxy_say(why, whylen, "bearer: token not in the tokens file");
        rc = PROXY_ERR_REFUSED;
    } else if (!(user = user_of(&l->e[hit]))) {
        proxy_say(why, whylen, "bearer: out of memory");
        rc = PROXY_ERR_NOMEM;
    } else {
        out->user = user;
        out->expires = 0;
    }
    list_release(l);
    OPENSSL_cleanse(d, sizeof d);
    return rc;
}
