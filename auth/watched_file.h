/* watched_file.h: credential files (token digests, a JWKS, an HMAC secret)
 * loaded at start and re-read when they change, looked at once a second. */
#ifndef OPENOVA_WATCHED_FILE_H
#define OPENOVA_WATCHED_FILE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>

#include "core/error.h"

/* A missing file or a bad edit is logged once and the content loaded
 * before stays in use. What a file means is its owner's: the owner parses
 * and frees the content. An owner's files form a set, looked at together. */

#define WATCHED_DIGEST_LEN 32
#define WATCHED_CHECK_INTERVAL_MS 1000 /* how often a set's files are looked at */
#define WATCHED_SET_MAX 2              /* the files of one owner: a JWKS and a secret */

/* How one kind of file is read. parse gets the whole file, NUL-terminated,
 * and returns the content with one reference (NULL with a sentence in err
 * when it is not valid or memory runs out); the buffer is wiped after, so
 * parse copies what it keeps. The owner counts references: retain adds one
 * for a reader, release drops one and frees the content with the last;
 * count says how many items the content holds, for the log. */
struct watched_kind {
    const char *what;  /* names the file in messages: "tokens file" */
    const char *items; /* what it holds, plural: "tokens" */
    size_t max;        /* the largest file accepted, in bytes */
    void *(*parse)(const char *path, char *buf, size_t len, char *err, size_t errlen);
    void (*retain)(void *content);
    void (*release)(void *content);
    size_t (*count)(const void *content);
};

/* Enough of stat(2) to tell that a file was replaced or rewritten. */
struct file_stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

/* file_stamp_of: the stamp of a stat(2) result. file_stamp_equal: whether
 * two stamps are the same file, unchanged. file_stamp_racy: whether the
 * file changed so recently (2 s) that it may change again within the
 * timestamp granularity without its stamp changing (git's "racy" files):
 * its content must be read again, whatever the stamp says. Pure but for
 * the clock. */
void file_stamp_of(const struct stat *sb, struct file_stamp *st);
bool file_stamp_equal(const struct file_stamp *a, const struct file_stamp *b);
bool file_stamp_racy(const struct file_stamp *st);

/* One file. current is read and replaced under the set's publish lock; the
 * other fields belong to whoever holds the set's reload lock. All zero: a
 * file that is not configured. */
struct watched_file {
    const struct watched_kind *kind;
    char *path;
    const EVP_MD *sha256;
    pthread_mutex_t *publish; /* the set's */
    void *current;
    struct file_stamp seen;
    int read_errno; /* the failure last logged; 0: the file was readable */
    unsigned char good[WATCHED_DIGEST_LEN]; /* SHA-256 of the content in use */
    unsigned char bad[WATCHED_DIGEST_LEN];  /* SHA-256 of the invalid content last logged */
    bool has_bad;
};

/* The files of one owner and the clock and locks of their reload. The
 * owner embeds the set and its files and never touches these fields
 * (tests may, to make a check due). */
struct watched_set {
    pthread_mutex_t publish; /* guards next_check_ms and every file's current */
    pthread_mutex_t reload;  /* held by the one thread re-reading the files */
    int64_t next_check_ms;   /* CLOCK_MONOTONIC: when the files are next looked at */
    size_t n;
    struct watched_file *files[WATCHED_SET_MAX];
};

/* watched_set_init: an empty set, its first check a second from now. */
void watched_set_init(struct watched_set *s);

/* watched_set_destroy: closes every file of s (releasing the content in
 * use and the path) and the locks. No check may be running. */
void watched_set_destroy(struct watched_set *s);

/* watched_file_open: loads path (copied) for the first time into w, a file
 * the caller owns and keeps at the same address until watched_set_destroy,
 * and adds it to s; the set's next check is a second after this load. kind
 * and sha256 are borrowed and must outlive s. Returns PROXY_OK, or with a
 * sentence in err: PROXY_ERR_NOMEM, PROXY_ERR_TOO_LARGE (the file is
 * larger than kind->max, or s already holds WATCHED_SET_MAX files),
 * PROXY_ERR_INVALID (the file cannot be read, or kind->parse returned
 * NULL); w is all zero then. */
enum proxy_err watched_file_open(struct watched_file *w, struct watched_set *s, const struct watched_kind *kind,
                                 const char *path, const EVP_MD *sha256, char *err, size_t errlen);

/* watched_set_refresh_if_due: when a second has passed since the last check,
 * re-reads each file of s that changed (or changed so recently that its
 * stamp cannot tell) and publishes valid new content, releasing the old.
 * One thread re-reads at a time; a check that finds another thread
 * re-reading goes on without waiting and leaves the next call due, since
 * that reload may have read a file before the change. Thread-safe. */
void watched_set_refresh_if_due(struct watched_set *s);

/* watched_set_reload: re-reads every file of s now, whatever its stamp
 * says (SIGHUP), waiting for a reload in progress; publishes valid new
 * content as watched_set_refresh_if_due does. Thread-safe. */
void watched_set_reload(struct watched_set *s);

/* watched_file_acquire: the content in use, with a reference the caller
 * drops with w's kind's release; NULL when w is not configured (all zero).
 * Thread-safe. */
void *watched_file_acquire(struct watched_file *w);

#endif
