/* tokens.c: static bearer tokens: SHA-256 digests from a file, compared in
 * constant time, the file re-read when it changes. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "log.h"
#include "tokens.h"

#define DIGEST_LEN 32
#define FILE_MAX (8u * 1024 * 1024) /* some 100 000 named tokens */
#define LINE_MAX_LEN 1024
#define CHECK_INTERVAL_MS 1000
/* A file changed this recently may change again within the timestamp
 * granularity without its stamp changing (git's "racy" files): re-read it
 * until it is older. */
#define RACY_S 2

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

/* Enough of stat(2) to tell that a file was replaced or rewritten. */
struct stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

struct fcgi_tokens {
    char *path;
    EVP_MD *sha256;         /* fetched once: an implicit fetch per check is slow */
    pthread_mutex_t lock;   /* guards current and next_check_ms */
    struct list *current;
    int64_t next_check_ms;  /* CLOCK_MONOTONIC */
    pthread_mutex_t reload; /* one reloader at a time; guards the fields below */
    struct stamp seen;      /* the file as last read, valid or not */
    int read_errno;         /* the failure last logged; 0: the file was readable */
    unsigned char good[DIGEST_LEN]; /* SHA-256 of the content in use */
    unsigned char bad[DIGEST_LEN];  /* SHA-256 of the invalid content last logged */
    bool has_bad;
};

static void say(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void stamp_of(const struct stat *sb, struct stamp *st)
{
    memset(st, 0, sizeof *st);
    st->dev = sb->st_dev;
    st->ino = sb->st_ino;
    st->size = sb->st_size;
    st->mtime = sb->st_mtim;
    st->ctime = sb->st_ctim;
}

static bool stamp_eq(const struct stamp *a, const struct stamp *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* read_file: the whole regular file at path, NUL-terminated, at most max
 * bytes, with the stamp of what was read (fstat of the open file, so a
 * rename in between cannot pair old content with a new stamp). Returns 0,
 * or an errno value with a sentence in err. */
static int read_file(const char *path, size_t max, char **out, size_t *outlen, struct stamp *st, char *err,
                     size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        say(err, errlen, "cannot open %s: %s", path, strerror(e));
        return e;
    }
    int rc = 0;
    char *buf = NULL;
    size_t len = 0;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = errno;
        say(err, errlen, "cannot stat %s: %s", path, strerror(rc));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = EINVAL;
        say(err, errlen, "%s is not a regular file", path);
        goto out;
    }
    /* The size is a hint: the file may grow while being read. */
    size_t cap = (size_t)sb.st_size < max ? (size_t)sb.st_size + 2 : max + 2;
    buf = malloc(cap);
    if (!buf) {
        rc = ENOMEM;
        say(err, errlen, "out of memory reading %s", path);
        goto out;
    }
    for (;;) {
        if (len + 1 == cap) {
            size_t ncap = cap * 2 > max + 2 ? max + 2 : cap * 2;
            char *nbuf = ncap > cap ? realloc(buf, ncap) : NULL;
            if (!nbuf) {
                rc = ncap > cap ? ENOMEM : EFBIG;
                say(err, errlen, ncap > cap ? "out of memory reading %s" : "%s is too large", path);
                goto out;
            }
            buf = nbuf;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = errno;
            say(err, errlen, "cannot read %s: %s", path, strerror(rc));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            rc = EFBIG;
            say(err, errlen, "%s is larger than %zu bytes", path, max);
            goto out;
        }
    }
    buf[len] = '\0';
    stamp_of(&sb, st);
out:
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *outlen = len;
    return 0;
}

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
        say(err, errlen, "longer than %d bytes", LINE_MAX_LEN);
        return -1;
    }
    if (memchr(s, '\0', len)) {
        say(err, errlen, "holds a NUL byte");
        return -1;
    }
    size_t d = 0;
    for (; d < 2 * DIGEST_LEN && i + d < len; d++)
        if (hexval(s[i + d]) < 0)
            break;
    if (d != 2 * DIGEST_LEN || (i + d < len && !is_space(s[i + d]))) {
        say(err, errlen, "expected a SHA-256 digest of 64 hex digits");
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
            say(err, errlen, "the name holds a byte that is not printable ASCII");
            return -1;
        }
        i++;
    }
    if (i - start > FCGI_TOKEN_NAME_MAX) {
        say(err, errlen, "the name is longer than %d characters", FCGI_TOKEN_NAME_MAX);
        return -1;
    }
    size_t end = i;
    while (i < len && is_space(s[i]))
        i++;
    if (i != len) {
        say(err, errlen, "expected a digest and at most one name");
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
            say(err, errlen, "tokens file %s: line %zu: %s", path, line, why);
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
                say(err, errlen, "tokens file %s: line %zu: the same digest as line %zu", path, sorted[i]->line,
                    sorted[i - 1]->line);
                goto fail;
            }
        free(sorted);
    }
    return l;
oom:
    say(err, errlen, "tokens file %s: out of memory", path);
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

enum sameness { NEW_CONTENT, SAME_AS_GOOD, SAME_AS_BAD };

/* load: reads and parses the file, unless its content is the one in use or
 * the invalid one last logged (*same says which). Returns the list, or NULL
 * with err and, in *read_errno, the errno of a read failure (0 when the
 * content is bad). */
static struct list *load(struct fcgi_tokens *t, struct stamp *st, unsigned char hash[DIGEST_LEN], int *read_errno,
                         enum sameness *same, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    char why[256];
    *same = NEW_CONTENT;
    *read_errno = read_file(t->path, FILE_MAX, &buf, &len, st, why, sizeof why);
    if (*read_errno) {
        say(err, errlen, "tokens file: %s", why);
        return NULL;
    }
    struct list *l = NULL;
    if (sha256(t->sha256, buf, len, hash) != 0) {
        *read_errno = EIO;
        say(err, errlen, "tokens file %s: SHA-256 failed", t->path);
    } else if (t->current && memcmp(hash, t->good, DIGEST_LEN) == 0) {
        *same = SAME_AS_GOOD;
    } else if (t->has_bad && memcmp(hash, t->bad, DIGEST_LEN) == 0) {
        *same = SAME_AS_BAD;
    } else {
        l = parse(t->path, buf, len, err, errlen);
    }
    OPENSSL_cleanse(buf, len);
    free(buf);
    return l;
}

/* refresh: re-reads the file if its stamp changed (or it is racy). Called
 * with t->reload held. */
static void refresh(struct fcgi_tokens *t)
{
    struct stat sb;
    if (stat(t->path, &sb) != 0) {
        int e = errno;
        if (e != t->read_errno)
            fcgi_log(FCGI_LOG_ERROR, NULL, "msg=\"tokens file %s: %s; keeping the tokens loaded before\"", t->path,
                     strerror(e));
        t->read_errno = e;
        return;
    }
    struct stamp now_st;
    stamp_of(&sb, &now_st);
    bool racy = time(NULL) - now_st.mtime.tv_sec <= RACY_S;
    if (!t->read_errno && stamp_eq(&now_st, &t->seen) && !racy)
        return;

    struct stamp st;
    unsigned char hash[DIGEST_LEN];
    int read_errno = 0;
    enum sameness same;
    char err[512];
    struct list *l = load(t, &st, hash, &read_errno, &same, err, sizeof err);
    if (read_errno) {
        if (read_errno != t->read_errno)
            fcgi_log(FCGI_LOG_ERROR, NULL, "msg=\"%s; keeping the tokens loaded before\"", err);
        t->read_errno = read_errno;
        return;
    }
    t->read_errno = 0;
    t->seen = st;
    if (same == SAME_AS_GOOD)
        t->has_bad = false; /* back to the list in use: a bad edit again is news */
    if (same != NEW_CONTENT)
        return;
    if (!l) {
        memcpy(t->bad, hash, DIGEST_LEN);
        t->has_bad = true;
        fcgi_log(FCGI_LOG_ERROR, NULL, "msg=\"%s; keeping the tokens loaded before\"", err);
        return;
    }
    pthread_mutex_lock(&t->lock);
    struct list *old = t->current;
    t->current = l;
    pthread_mutex_unlock(&t->lock);
    memcpy(t->good, hash, DIGEST_LEN);
    t->has_bad = false;
    fcgi_log(FCGI_LOG_INFO, NULL, "msg=\"tokens file %s reloaded: %zu token(s)\"", t->path, l->n);
    list_release(old);
}

/* acquire: the current list, with a reference the caller drops, after a
 * reload when one is due. */
static struct list *acquire(struct fcgi_tokens *t)
{
    int64_t now = mono_ms();
    bool due = false;
    pthread_mutex_lock(&t->lock);
    if (now >= t->next_check_ms) {
        t->next_check_ms = now + CHECK_INTERVAL_MS;
        due = true;
    }
    pthread_mutex_unlock(&t->lock);
    /* Another thread still reloading (a slow disk) will publish soon enough;
     * this one goes on with what is there. */
    if (due && pthread_mutex_trylock(&t->reload) == 0) {
        refresh(t);
        pthread_mutex_unlock(&t->reload);
    }
    pthread_mutex_lock(&t->lock);
    struct list *l = t->current;
    atomic_fetch_add(&l->refs, 1);
    pthread_mutex_unlock(&t->lock);
    return l;
}

struct fcgi_tokens *fcgi_tokens_new(const char *path, char *err, size_t errlen)
{
    if (!path || !*path) {
        say(err, errlen, "no tokens file given");
        return NULL;
    }
    struct fcgi_tokens *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(path))) {
        free(t);
        say(err, errlen, "out of memory loading tokens file %s", path);
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    pthread_mutex_init(&t->reload, NULL);
    t->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!t->sha256) {
        say(err, errlen, "tokens file %s: OpenSSL has no SHA-256", path);
        goto fail;
    }
    int read_errno = 0;
    enum sameness same;
    t->current = load(t, &t->seen, t->good, &read_errno, &same, err, errlen);
    if (!t->current)
        goto fail;
    t->next_check_ms = mono_ms() + CHECK_INTERVAL_MS;
    return t;
fail:
    fcgi_tokens_free(t);
    return NULL;
}

void fcgi_tokens_free(struct fcgi_tokens *t)
{
    if (!t)
        return;
    list_release(t->current);
    EVP_MD_free(t->sha256);
    pthread_mutex_destroy(&t->lock);
    pthread_mutex_destroy(&t->reload);
    free(t->path);
    free(t);
}

enum fcgi_auth_verdict fcgi_tokens_check(struct fcgi_tokens *t, const char *token, time_t now,
                                         struct fcgi_credential *out, char *why, size_t whylen)
{
    (void)now;
    if (!token || !*token) {
        say(why, whylen, "bearer: empty token");
        return FCGI_AUTH_REJECTED;
    }
    unsigned char d[DIGEST_LEN];
    if (sha256(t->sha256, token, strlen(token), d) != 0) {
        say(why, whylen, "bearer: SHA-256 failed");
        return FCGI_AUTH_FAILED;
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
    enum fcgi_auth_verdict v = FCGI_AUTH_REJECTED;
    if (!any) {
        say(why, whylen, "bearer: token not in the tokens file");
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
        say(why, whylen, "bearer: out of memory");
        v = FCGI_AUTH_FAILED;
        goto out;
    }
    out->user = user;
    out->expires = 0;
    v = FCGI_AUTH_ACCEPTED;
out:
    list_release(l);
    OPENSSL_cleanse(d, sizeof d);
    return v;
}
