/* watched_file.c: credential files loaded at start and re-read when they
 * change, keeping the last good content through a bad edit. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth/watched_file.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"

/* A file changed this recently may change again within the timestamp
 * granularity without its stamp changing (git's "racy" files): re-read it
 * until it is older. */
#define RACY_S 2
/* Room read past a file's maximum: one byte that tells a file over it, and
 * the NUL. */
#define READ_SLACK 2
/* The sentence on why a file could not be read, and the one logged (the
 * first, with the file's kind in front). */
#define READ_WHY_MAX 256
#define LOG_SENTENCE_MAX 512

enum sameness { NEW_CONTENT, SAME_AS_GOOD, SAME_AS_BAD };

/* What one load of a file found. */
struct reading {
    struct file_stamp stamp;                /* of what was read */
    unsigned char hash[WATCHED_DIGEST_LEN]; /* SHA-256 of what was read */
    int read_errno;                         /* why the file could not be read; 0: it was */
    enum sameness same;                     /* whether the content was seen before */
    void *content;                          /* new valid content, for the caller to keep */
};

/* The bytes of a file, NUL-terminated. */
struct bytes {
    char *data;
    size_t len;
};

/* bytes_wipe: frees b after overwriting it (a secret file's key, a token
 * list); b is empty after. */
static void bytes_wipe(struct bytes *b)
{
    if (b->data)
        OPENSSL_cleanse(b->data, b->len);
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

void file_stamp_of(const struct stat *sb, struct file_stamp *st)
{
    memset(st, 0, sizeof *st);
    st->dev = sb->st_dev;
    st->ino = sb->st_ino;
    st->size = sb->st_size;
    st->mtime = sb->st_mtim;
    st->ctime = sb->st_ctim;
}

bool file_stamp_racy(const struct file_stamp *st)
{
    return time(NULL) - st->mtime.tv_sec <= RACY_S;
}

bool file_stamp_equal(const struct file_stamp *a, const struct file_stamp *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* failure: records errno value e as why the file could not be read (a
 * change of it is logged once) and returns the error it stands for: out
 * of memory, over the maximum, or invalid (the file cannot be opened,
 * stat'ed, read or hashed, or is not a regular file). */
static enum proxy_err failure(struct reading *r, int e)
{
    r->read_errno = e;
    return e == ENOMEM ? PROXY_ERR_NOMEM : e == EFBIG ? PROXY_ERR_TOO_LARGE : PROXY_ERR_INVALID;
}

/* read_all: the rest of fd into b, NUL-terminated, at most w's kind's max
 * bytes. size, from fstat, is a hint: the file may grow while being read.
 * Returns as read_file; b is empty after an error. */
static enum proxy_err read_all(int fd, const struct watched_file *w, size_t size, struct bytes *b,
                               struct reading *r, char *err, size_t errlen)
{
    const size_t max = w->kind->max;
    size_t cap = size < max ? size + READ_SLACK : max + READ_SLACK;
    enum proxy_err rc = PROXY_OK;
    if (!(b->data = malloc(cap))) {
        proxy_say(err, errlen, "out of memory reading %s", w->path);
        return failure(r, ENOMEM);
    }
    while (rc == PROXY_OK) {
        /* cap stops at max + READ_SLACK, which a file over max reaches only
         * after the check below has refused it. */
        if (b->len + 1 == cap) {
            size_t ncap = cap * 2 > max + READ_SLACK ? max + READ_SLACK : cap * 2;
            char *ndata = realloc(b->data, ncap);
            if (!ndata) {
                proxy_say(err, errlen, "out of memory reading %s", w->path);
                rc = failure(r, ENOMEM);
                break;
            }
            b->data = ndata;
            cap = ncap;
        }
        ssize_t n = read(fd, b->data + b->len, cap - 1 - b->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            proxy_say(err, errlen, "cannot read %s: %s", w->path, strerror(e));
            rc = failure(r, e);
        } else if (n == 0) {
            break;
        } else if ((b->len += (size_t)n) > max) {
            proxy_say(err, errlen, "%s is larger than %zu bytes", w->path, max);
            rc = failure(r, EFBIG);
        }
    }
    if (rc != PROXY_OK) {
        bytes_wipe(b);
        return rc;
    }
    b->data[b->len] = '\0';
    return PROXY_OK;
}

/* read_file: the whole regular file of w, NUL-terminated, at most its
 * kind's max bytes, into b (the caller wipes it with bytes_wipe), with the
 * stamp of what was read in r->stamp (fstat of the open file, so a rename
 * in between cannot pair old content with a new stamp). Returns PROXY_OK,
 * or an error (see failure) with a sentence in err and r->read_errno
 * set. */
static enum proxy_err read_file(const struct watched_file *w, struct bytes *b, struct reading *r, char *err,
                                size_t errlen)
{
    int fd = open(w->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        proxy_say(err, errlen, "cannot open %s: %s", w->path, strerror(e));
        return failure(r, e);
    }
    enum proxy_err rc;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        proxy_say(err, errlen, "cannot stat %s: %s", w->path, strerror(e));
        rc = failure(r, e);
    } else if (!S_ISREG(sb.st_mode)) {
        proxy_say(err, errlen, "%s is not a regular file", w->path);
        rc = failure(r, EINVAL);
    } else if ((rc = read_all(fd, w, (size_t)sb.st_size, b, r, err, errlen)) == PROXY_OK) {
        file_stamp_of(&sb, &r->stamp);
    }
    close(fd);
    return rc;
}

/* load: reads w's file and parses it into r->content, unless its content
 * is the one in use or the invalid one last logged (r->same says which).
 * Returns PROXY_OK; an error with r->read_errno set when the file could
 * not be read or hashed; or PROXY_ERR_INVALID with r->read_errno 0 when the
 * kind's parse returned NULL (invalid content, or no memory to parse it).
 * Every error comes with a sentence in err. */
static enum proxy_err load(const struct watched_file *w, struct reading *r, char *err, size_t errlen)
{
    struct bytes b = {NULL, 0};
    char why[READ_WHY_MAX];
    memset(r, 0, sizeof *r);
    r->same = NEW_CONTENT;
    enum proxy_err rc = read_file(w, &b, r, why, sizeof why);
    if (rc != PROXY_OK) {
        proxy_say(err, errlen, "%s: %s", w->kind->what, why);
        return rc;
    }
    unsigned int hash_len = 0;
    if (EVP_Digest(b.data, b.len, r->hash, &hash_len, w->sha256, NULL) != 1 || hash_len != WATCHED_DIGEST_LEN) {
        proxy_say(err, errlen, "%s %s: SHA-256 failed", w->kind->what, w->path);
        rc = failure(r, EIO);
    } else if (w->current && memcmp(r->hash, w->good, WATCHED_DIGEST_LEN) == 0) {
        r->same = SAME_AS_GOOD;
    } else if (w->has_bad && memcmp(r->hash, w->bad, WATCHED_DIGEST_LEN) == 0) {
        r->same = SAME_AS_BAD;
    } else if (!(r->content = w->kind->parse(w->path, b.data, b.len, err, errlen))) {
        rc = PROXY_ERR_INVALID;
    }
    bytes_wipe(&b);
    return rc;
}

void watched_set_init(struct watched_set *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->publish, NULL);
    pthread_mutex_init(&s->reload, NULL);
    s->next_check_ms = clock_ms() + WATCHED_CHECK_INTERVAL_MS;
}

/* close_file: releases w's content and path; w is all zero after. */
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

enum proxy_err watched_file_open(struct watched_file *w, struct watched_set *s, const struct watched_kind *kind,
                                 const char *path, const EVP_MD *sha256, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    if (s->n == WATCHED_SET_MAX) {
        proxy_say(err, errlen, "%s %s: more than %d watched files", kind->what, path, WATCHED_SET_MAX);
        return PROXY_ERR_TOO_LARGE;
    }
    w->kind = kind;
    w->sha256 = sha256;
    w->publish = &s->publish;
    enum proxy_err rc = PROXY_ERR_NOMEM;
    struct reading r;
    if (!(w->path = strdup(path))) {
        proxy_say(err, errlen, "out of memory loading %s %s", kind->what, path);
    } else if ((rc = load(w, &r, err, errlen)) == PROXY_OK) {
        w->current = r.content;
        w->seen = r.stamp;
        memcpy(w->good, r.hash, WATCHED_DIGEST_LEN);
        s->files[s->n++] = w;
        /* Still one thread: the set is not shared before its owner is. */
        s->next_check_ms = clock_ms() + WATCHED_CHECK_INTERVAL_MS;
        return PROXY_OK;
    }
    close_file(w);
    return rc;
}

/* may_have_changed: whether w's file may hold other content than was last
 * read: its stamp changed, it changed so recently that its stamp cannot
 * tell, or it could not be read last time. A file that cannot be stat'ed
 * has not changed: that is logged once, and the content stays. */
static bool may_have_changed(struct watched_file *w)
{
    struct stat sb;
    if (stat(w->path, &sb) != 0) {
        int e = errno;
        if (e != w->read_errno)
            proxy_log(PROXY_LOG_ERROR, NULL, "%s %s: %s; keeping the %s loaded before", w->kind->what,
                      w->path, strerror(e), w->kind->items);
        w->read_errno = e;
        return false;
    }
    struct file_stamp now_st;
    file_stamp_of(&sb, &now_st);
    bool racy = file_stamp_racy(&now_st);
    return w->read_errno || !file_stamp_equal(&now_st, &w->seen) || racy;
}

/* refresh: re-reads w if it may have changed (or force) and publishes valid new
 * content, releasing the old. A failure to read it, or invalid content, is
 * logged once per change and the content in use stays. Called with the
 * set's reload lock held. */
static void refresh(struct watched_file *w, bool force)
{
    const struct watched_kind *k = w->kind;
    if (!may_have_changed(w) && !force)
        return;
    struct reading r;
    char err[LOG_SENTENCE_MAX];
    enum proxy_err rc = load(w, &r, err, sizeof err);
    if (r.read_errno) {
        if (r.read_errno != w->read_errno)
            proxy_log(PROXY_LOG_ERROR, NULL, "%s; keeping the %s loaded before", err, k->items);
        w->read_errno = r.read_errno;
        return;
    }
    w->read_errno = 0;
    w->seen = r.stamp;
    if (r.same == SAME_AS_GOOD)
        w->has_bad = false; /* back to the content in use: a bad edit again is news */
    if (r.same != NEW_CONTENT)
        return;
    if (rc != PROXY_OK) {
        memcpy(w->bad, r.hash, WATCHED_DIGEST_LEN);
        w->has_bad = true;
        proxy_log(PROXY_LOG_ERROR, NULL, "%s; keeping the %s loaded before", err, k->items);
        return;
    }
    pthread_mutex_lock(w->publish);
    void *old = w->current;
    w->current = r.content;
    pthread_mutex_unlock(w->publish);
    memcpy(w->good, r.hash, WATCHED_DIGEST_LEN);
    w->has_bad = false;
    proxy_log(PROXY_LOG_INFO, NULL, "%s %s reloaded: %zu %s", k->what, w->path, k->count(r.content),
              k->items);
    k->release(old);
}

void watched_set_refresh_if_due(struct watched_set *s)
{
    int64_t now = clock_ms();
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
            refresh(s->files[i], false);
        pthread_mutex_unlock(&s->reload);
        return;
    }
    /* That reload may have read the files before a change that made this
     * check due: the next call looks again. */
    pthread_mutex_lock(&s->publish);
    s->next_check_ms = now;
    pthread_mutex_unlock(&s->publish);
}

void watched_set_reload(struct watched_set *s)
{
    pthread_mutex_lock(&s->reload);
    for (size_t i = 0; i < s->n; i++)
        refresh(s->files[i], true);
    pthread_mutex_unlock(&s->reload);
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
