/* watched_file.c: credential files loaded at start and re-read when they
 * change, keeping the last good content through a bad edit. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/error.h"
#include "core/log.h"
#include "auth/watched_file.h"

/* A file changed this recently may change again within the timestamp
 * granularity without its stamp changing (git's "racy" files): re-read it
 * until it is older. */
#define RACY_S 2

static void stamp_of(const struct stat *sb, struct file_stamp *st)
{
    memset(st, 0, sizeof *st);
    st->dev = sb->st_dev;
    st->ino = sb->st_ino;
    st->size = sb->st_size;
    st->mtime = sb->st_mtim;
    st->ctime = sb->st_ctim;
}

static bool stamp_eq(const struct file_stamp *a, const struct file_stamp *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* read_file: the whole regular file at path, NUL-terminated, at most max
 * bytes, with the stamp of what was read (fstat of the open file, so a
 * rename in between cannot pair old content with a new stamp). Returns 0,
 * or an errno value with a sentence in err. */
static int read_file(const char *path, size_t max, char **out, size_t *outlen, struct file_stamp *st, char *err,
                     size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        proxy_say(err, errlen, "cannot open %s: %s", path, strerror(e));
        return e;
    }
    int rc = 0;
    char *buf = NULL;
    size_t len = 0;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = errno;
        proxy_say(err, errlen, "cannot stat %s: %s", path, strerror(rc));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = EINVAL;
        proxy_say(err, errlen, "%s is not a regular file", path);
        goto out;
    }
    /* The size is a hint: the file may grow while being read. */
    size_t cap = (size_t)sb.st_size < max ? (size_t)sb.st_size + 2 : max + 2;
    buf = malloc(cap);
    if (!buf) {
        rc = ENOMEM;
        proxy_say(err, errlen, "out of memory reading %s", path);
        goto out;
    }
    for (;;) {
        if (len + 1 == cap) {
            size_t ncap = cap * 2 > max + 2 ? max + 2 : cap * 2;
            char *nbuf = ncap > cap ? realloc(buf, ncap) : NULL;
            if (!nbuf) {
                rc = ncap > cap ? ENOMEM : EFBIG;
                proxy_say(err, errlen, ncap > cap ? "out of memory reading %s" : "%s is too large", path);
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
            proxy_say(err, errlen, "cannot read %s: %s", path, strerror(rc));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            rc = EFBIG;
            proxy_say(err, errlen, "%s is larger than %zu bytes", path, max);
            goto out;
        }
    }
    buf[len] = '\0';
    stamp_of(&sb, st);
out:
    close(fd);
    if (rc) {
        if (buf)
            OPENSSL_cleanse(buf, len);
        free(buf);
        return rc;
    }
    *out = buf;
    *outlen = len;
    return 0;
}

enum sameness { NEW_CONTENT, SAME_AS_GOOD, SAME_AS_BAD };

/* load: reads and parses the file, unless its content is the one in use or
 * the invalid one last logged (*same says which). Returns the content, or
 * NULL with err and, in *read_errno, the errno of a read failure (0 when
 * the content is bad). */
static void *load(struct watched_file *w, struct file_stamp *st, unsigned char hash[WATCHED_DIGEST_LEN],
                  int *read_errno, enum sameness *same, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    char why[256];
    *same = NEW_CONTENT;
    *read_errno = read_file(w->path, w->kind->max, &buf, &len, st, why, sizeof why);
    if (*read_errno) {
        proxy_say(err, errlen, "%s: %s", w->kind->what, why);
        return NULL;
    }
    void *content = NULL;
    unsigned int hash_len = 0;
    if (EVP_Digest(buf, len, hash, &hash_len, w->sha256, NULL) != 1 || hash_len != WATCHED_DIGEST_LEN) {
        *read_errno = EIO;
        proxy_say(err, errlen, "%s %s: SHA-256 failed", w->kind->what, w->path);
    } else if (w->current && memcmp(hash, w->good, WATCHED_DIGEST_LEN) == 0) {
        *same = SAME_AS_GOOD;
    } else if (w->has_bad && memcmp(hash, w->bad, WATCHED_DIGEST_LEN) == 0) {
        *same = SAME_AS_BAD;
    } else {
        content = w->kind->parse(w->path, buf, len, err, errlen);
    }
    OPENSSL_cleanse(buf, len); /* a secret file's key, a token list */
    free(buf);
    return content;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void watched_set_init(struct watched_set *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->publish, NULL);
    pthread_mutex_init(&s->reload, NULL);
    s->next_check_ms = mono_ms() + WATCHED_CHECK_INTERVAL_MS;
}

static void close_file(struct watched_file *w)
{
    if (w->current)
        w->kind->release(w->current);
    free(w->path);
    memset(w, 0, sizeof *w);
}

void watched_set_destroy(struct watched_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        close_file(s->files[i]);
    s->n = 0;
    pthread_mutex_destroy(&s->publish);
    pthread_mutex_destroy(&s->reload);
}

int watched_file_open(struct watched_file *w, struct watched_set *s, const struct watched_kind *kind,
                      const char *path, const EVP_MD *sha256, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    if (s->n == WATCHED_SET_MAX) {
        proxy_say(err, errlen, "%s %s: more than %d watched files", kind->what, path, WATCHED_SET_MAX);
        return -1;
    }
    w->kind = kind;
    w->sha256 = sha256;
    w->publish = &s->publish;
    if (!(w->path = strdup(path))) {
        proxy_say(err, errlen, "out of memory loading %s %s", kind->what, path);
        close_file(w);
        return -1;
    }
    int read_errno = 0;
    enum sameness same;
    w->current = load(w, &w->seen, w->good, &read_errno, &same, err, errlen);
    if (!w->current) {
        close_file(w);
        return -1;
    }
    s->files[s->n++] = w;
    s->next_check_ms = mono_ms() + WATCHED_CHECK_INTERVAL_MS;
    return 0;
}

/* refresh: re-reads w if it changed (or changed so recently that its stamp
 * cannot tell) and publishes valid new content, releasing the old. Called
 * with the set's reload lock held. */
static void refresh(struct watched_file *w)
{
    const struct watched_kind *k = w->kind;
    struct stat sb;
    if (stat(w->path, &sb) != 0) {
        int e = errno;
        if (e != w->read_errno)
            proxy_log(PROXY_LOG_ERROR, NULL, "msg=\"%s %s: %s; keeping the %s loaded before\"", k->what, w->path,
                     strerror(e), k->items);
        w->read_errno = e;
        return;
    }
    struct file_stamp now_st;
    stamp_of(&sb, &now_st);
    bool racy = time(NULL) - now_st.mtime.tv_sec <= RACY_S;
    if (!w->read_errno && stamp_eq(&now_st, &w->seen) && !racy)
        return;

    struct file_stamp st;
    unsigned char hash[WATCHED_DIGEST_LEN];
    int read_errno = 0;
    enum sameness same;
    char err[512];
    void *content = load(w, &st, hash, &read_errno, &same, err, sizeof err);
    if (read_errno) {
        if (read_errno != w->read_errno)
            proxy_log(PROXY_LOG_ERROR, NULL, "msg=\"%s; keeping the %s loaded before\"", err, k->items);
        w->read_errno = read_errno;
        return;
    }
    w->read_errno = 0;
    w->seen = st;
    if (same == SAME_AS_GOOD)
        w->has_bad = false; /* back to the content in use: a bad edit again is news */
    if (same != NEW_CONTENT)
        return;
    if (!content) {
        memcpy(w->bad, hash, WATCHED_DIGEST_LEN);
        w->has_bad = true;
        proxy_log(PROXY_LOG_ERROR, NULL, "msg=\"%s; keeping the %s loaded before\"", err, k->items);
        return;
    }
    pthread_mutex_lock(w->publish);
    void *old = w->current;
    w->current = content;
    pthread_mutex_unlock(w->publish);
    memcpy(w->good, hash, WATCHED_DIGEST_LEN);
    w->has_bad = false;
    proxy_log(PROXY_LOG_INFO, NULL, "msg=\"%s %s reloaded: %zu %s\"", k->what, w->path, k->count(content), k->items);
    k->release(old);
}

void watched_set_refresh_if_due(struct watched_set *s)
{
    int64_t now = mono_ms();
    bool due = false;
    pthread_mutex_lock(&s->publish);
    if (now >= s->next_check_ms) {
        s->next_check_ms = now + WATCHED_CHECK_INTERVAL_MS;
        due = true;
    }
    pthread_mutex_unlock(&s->publish);
    if (!due)
        return;
    /* Another thread still reloading (a slow disk) will publish soon enough;
     * this one goes on with what is there. */
    if (pthread_mutex_trylock(&s->reload) == 0) {
        for (size_t i = 0; i < s->n; i++)
            refresh(s->files[i]);
        pthread_mutex_unlock(&s->reload);
        return;
    }
    /* That reload may have read the files before a change that made this
     * check due: the next call looks again. */
    pthread_mutex_lock(&s->publish);
    s->next_check_ms = now;
    pthread_mutex_unlock(&s->publish);
}

void *watched_file_acquire(struct watched_file *w)
{
    if (!w->publish)
        return NULL;
    pthread_mutex_lock(w->publish);
    void *content = w->current;
    w->kind->retain(content);
    pthread_mutex_unlock(w->publish);
    return content;
}
