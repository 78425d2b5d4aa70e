/* error.h: the one error enum of the proxy, its message table, and the
 * helper that words an error into a caller's buffer.
 * A client that leaves is FCGI_ERR_CLIENT_GONE: a normal end, not a failure. */
#ifndef OPENOVA_ERROR_H
#define OPENOVA_ERROR_H

#include <stddef.h>

enum fcgi_err {
    FCGI_OK = 0,
    FCGI_ERR_NOMEM,
    FCGI_ERR_CLIENT_GONE,
    FCGI_ERR_UPSTREAM_UNREACHABLE,
    FCGI_ERR_UPSTREAM_TIMEOUT,
    FCGI_ERR_UPSTREAM_PROTOCOL,
    FCGI_ERR_UPSTREAM_TOO_LARGE,
    FCGI_ERR_BODY_TOO_LARGE,
    FCGI_ERR_IO,
    FCGI_ERR_SHUTDOWN,
    FCGI_ERR_WOULD_BLOCK, /* an output buffer is full: pause the producer */
};

/* fcgi_strerror: a static, human-readable text for err; never NULL. */
const char *fcgi_strerror(enum fcgi_err err);

/* fcgi_say: formats a sentence into the caller's error buffer (buf may be
 * NULL or len 0: nothing is written). */
void fcgi_say(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
