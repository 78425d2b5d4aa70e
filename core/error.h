/* error.h: the one error enum of the proxy, its message table, and the
 * helper that words an error into a caller's buffer.
 * A client that leaves is PROXY_ERR_CLIENT_GONE: a normal end, not a failure. */
#ifndef OPENOVA_ERROR_H
#define OPENOVA_ERROR_H

#include <stddef.h>

enum proxy_err {
    PROXY_OK = 0,
    PROXY_ERR_NOMEM,
    PROXY_ERR_CLIENT_GONE,
    PROXY_ERR_UPSTREAM_UNREACHABLE,
    PROXY_ERR_UPSTREAM_TIMEOUT,
    PROXY_ERR_UPSTREAM_PROTOCOL,
    PROXY_ERR_UPSTREAM_TOO_LARGE,
    PROXY_ERR_BODY_TOO_LARGE,
    PROXY_ERR_IO,
    PROXY_ERR_SHUTDOWN,
    PROXY_ERR_WOULD_BLOCK, /* an output buffer is full: pause the producer */
};

/* proxy_strerror: a static, human-readable text for err; never NULL. */
const char *proxy_strerror(enum proxy_err err);

/* proxy_say: formats a sentence into the caller's error buffer (buf may be
 * NULL or len 0: nothing is written). */
void proxy_say(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
