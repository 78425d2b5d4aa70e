/* tokens.c: static bearer tokens: SHA-256 digests from a file, compared in
 * constant time, the file re-read when it changes. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/error.h"
#include "core/log.h"
#include "auth/tokens.h"
#include "auth/watched_file.h"

#define DIGEST_LEN 32
#define FILE_MAX (8u * 1024 * 1024) /* some 100 000 named tokens */
#define LINE_MAX_LEN 1024

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

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
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

/* parse_line: one line of the file (without its '\n') into e. Returns 1 for
 * an entry, 0 for a line to ignore, -1 with the problem in err, -2 when out
 * of memory. */
static int parse_line(const char *s, size_t len, struct entry *e, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < len && is_space(s[i]))
        i++;
    if (i == len || s[i] == '#')
        return 0;
    if (len > LINE_MAX_LEN) {
        proxy_say(err, errlen, "longer than %d bytes", LINE_MAX_LEN);
        return -1;
    }
    if (memchr(s, '\0', len)) {
        proxy_say(err, errlen, "holds a NUL byte");
        return -1;
    }
    size_t d = 0;
    for (; d < 2 * DIGEST_LEN && i + d < len; d++)
        if (hexval(s[i + d]) < 0)
            break;
    if (d != 2 * DIGEST_LEN || (i + d < len && !is_space(s[i + d]))) {
        proxy_say(err, errlen, "expected a SHA-256 digest of 64 hex digits");
        return -1;
    }
    for (size_t k = 0; k < DIGEST_LEN; k++)
        e->digest[k] = (unsigned char)(hexval(s[i + 2 * k]) << 4 | hexval(s[i + 2 * k + 1]));
    i += d;
    while (i < len && is_space(s[i]))
        i++;
    e->name = NULL;
    if (i == len)
        return 1;
    size_t start = i;
    /* The name becomes an HTTP header value upstream: printable ASCII. */
    while (i < len && !is_space(s[i])) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e) {
            proxy_say(err, errlen, "the name holds a byte that is not printable ASCII");
            return -1;
        }
        i++;
    }
    if (i - start > TOKENS_NAME_MAX) {
        proxy_say(err, errlen, "the name is longer than %d characters", TOKENS_NAME_MAX);
        return -1;
    }
    size_t end = i;
    while (i < len && is_space(s[i]))
        i++;
    if (i != len) {
        proxy_say(err, errlen, "expected a digest and at most one name");
        return -1;
    }
    e->name = strndup(s + start, end - start);
    return e->name ? 1 : -2;
}

/* parse: the content of the tokens file at path into a new list with one
 * reference. NULL with a sentence in err. */
static struct list *parse(const char *path, const char *buf, size_t len, char *err, size_t errlen)
{
    struct list *l = calloc(1, sizeof *l);
    struct entry **sorted = NULL;
    size_t cap = 0, line = 0;
    char why[128];
    if (!l)
        goto oom;
    atomic_init(&l->refs, 1);
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        line++;
        struct entry e = {.line = line};
        int rc = parse_line(buf + pos, end - pos, &e, why, sizeof why);
        pos = end + 1;
        if (rc == 0)
            continue;
        if (rc == -2)
            goto oom;
        if (rc < 0) {
            proxy_say(err, errlen, "tokens file %s: line %zu: %s", path, line, why);
            goto fail;
        }
        if (l->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct entry *ne = realloc(l->e, ncap * sizeof *ne);
            if (!ne) {
                free(e.name);
                goto oom;
            }
            l->e = ne;
            cap = ncap;
        }
        l->e[l->n++] = e;
    }
    /* A digest twice is a mistake to surface: which name would it carry? */
    if (l->n > 1) {
        sorted = malloc(l->n * sizeof *sorted);
        if (!sorted)
            goto oom;
        for (size_t i = 0; i < l->n; i++)
            sorted[i] = &l->e[i];
        qsort(sorted, l->n, sizeof *sorted, by_digest);
        for (size_t i = 1; i < l->n; i++)
            if (memcmp(sorted[i - 1]->digest, sorted[i]->digest, DIGEST_LEN) == 0) {
                proxy_say(err, errlen, "tokens file %s: line %zu: the same digest as line %zu", path, sorted[i]->line,
                    sorted[i - 1]->line);
                goto fail;
            }
        free(sorted);
    }
    return l;
oom:
    proxy_say(err, errlen, "tokens file %s: out of memory", path);
fail:
    free(sorted);
    list_release(l);
    return NULL;
}

static int sha256(const EVP_MD *md, const void *data, size_t len, unsigned char out[DIGEST_LEN])
{
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, md, NULL) == 1 && n == DIGEST_LEN ? 0 : -1;
}

static void *parse_file(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
    return parse(path, buf, len, err, errlen);
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
    if (watched_file_open(&t->file, &t->files, &tokens_file, path, t->sha256, err, errlen) != 0)
        goto fail;
    return t;
fail:
    tokens_free(t);
    return NULL;
}

void tokens_free(struct tokens *t)
{
    if (!t)
        return;
    watched_set_destroy(&t->files);
    EVP_MD_free(t->sha256);
    free(t);
}

enum auth_verdict tokens_check(struct tokens *t, const char *token, time_t now,
                                         struct credential *out, char *why, size_t whylen)
{
    (void)now;
    if (!token || !*token) {
        proxy_say(why, whylen, "bearer: empty token");
        return AUTH_REJECTED;
    }
    unsigned char d[DIGEST_LEN];
    if (sha256(t->sha256, token, strlen(token), d) != 0) {
        proxy_say(why, whylen, "bearer: SHA-256 failed");
        return AUTH_FAILED;
    }
    struct list *l = acquire(t);
    /* Every entry is compared and the first match picked without a branch
     * on the comparison, so timing says nothing about which entry (or how
     * many bytes of one) matched. */
    size_t hit = 0;
    unsigned any = 0;
    for (size_t i = 0; i < l->n; i++) {
        unsigned eq = (unsigned)(CRYPTO_memcmp(d, l->e[i].digest, DIGEST_LEN) == 0);
        size_t take = (size_t)0 - (size_t)(eq & (any ^ 1u));
        hit = (hit & ~take) | (i & take);
        any |= eq;
    }
    enum auth_verdict v = AUTH_REJECTED;
    if (!any) {
        proxy_say(why, whylen, "bearer: token not in the tokens file");
        goto out;
    }
    char *user;
    if (l->e[hit].name) {
        user = strdup(l->e[hit].name);
    } else {
        static const char hex[] = "0123456789abcdef";
        char name[sizeof "token-" + 8];
        memcpy(name, "token-", 6);
        for (size_t k = 0; k < 4; k++) {
            name[6 + 2 * k] = hex[l->e[hit].digest[k] >> 4];
            name[6 + 2 * k + 1] = hex[l->e[hit].digest[k] & 15];
        }
        name[14] = '\0';
        user = strdup(name);
    }
    if (!user) {
        proxy_say(why, whylen, "bearer: out of memory");
        v = AUTH_FAILED;
        goto out;
    }
    out->user = user;
    out->expires = 0;
    v = AUTH_ACCEPTED;
out:
    list_release(l);
    OPENSSL_cleanse(d, sizeof d);
    return v;
}
