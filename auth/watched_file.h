/* watched_file.h: a file of credentials (bearer token digests, a JWKS, an
 * HMAC secret) loaded at start and re-read when it changes. A missing file
 * or a bad edit is logged once and the content loaded before stays in use.
 * What the file means is the owner's: it parses and frees the content. */
#ifndef OPENOVA_WATCHED_FILE_H
#define OPENOVA_WATCHED_FILE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>

#define WATCHED_DIGEST_LEN 32

/* How one kind of file is read. parse gets the whole file, NUL-terminated,
 * and returns the content (NULL with a sentence in err when it is not
 * valid); the buffer is wiped after, so parse copies what it keeps. */
struct watched_kind {
    const char *what;  /* names the file in messages: "tokens file" */
    const char *items; /* what it holds, plural: "tokens" */
    size_t max;        /* the largest file accepted, in bytes */
    void *(*parse)(const char *path, char *buf, size_t len, char *err, size_t errlen);
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

/* current is read and replaced under the owner's publish lock; the other
 * fields belong to whoever holds the owner's reload lock. */
struct watched_file {
    const struct watched_kind *kind;
    char *path;
    const EVP_MD *sha256;
    pthread_mutex_t *publish;
    void *current;
    struct file_stamp seen;
    int read_errno; /* the failure last logged; 0: the file was readable */
    unsigned char good[WATCHED_DIGEST_LEN]; /* SHA-256 of the content in use */
    unsigned char bad[WATCHED_DIGEST_LEN];  /* SHA-256 of the invalid content last logged */
    bool has_bad;
};

/* watched_file_open: loads path (copied) for the first time. Returns 0,
 * or -1 with a sentence in err (w can then be closed). */
int watched_file_open(struct watched_file *w, const struct watched_kind *kind, const char *path,
                           const EVP_MD *sha256, pthread_mutex_t *publish, char *err, size_t errlen);

/* watched_file_refresh: re-reads the file if it changed (or changed so
 * recently that its stamp cannot tell) and publishes valid new content,
 * releasing the old. Called with the owner's reload lock held. */
void watched_file_refresh(struct watched_file *w);

/* watched_file_close: releases the current content and the path. */
void watched_file_close(struct watched_file *w);

#endif
