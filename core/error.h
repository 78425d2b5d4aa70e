/* error.h: the one error convention of the program: functions that can fail
 * return an enum proxy_err (PROXY_OK = 0) and, where a sentence helps, write
 * it into a caller's buffer with proxy_say. Each error has one client-facing
 * answer (status, code, sentence) in one table, error.c.
 * A client that leaves is PROXY_ERR_CLIENT_GONE: a normal end, not a failure. */
#ifndef OPENOVA_ERROR_H
#define OPENOVA_ERROR_H

#include <stddef.h>

enum proxy_err {
    PROXY_OK = 0,
    PROXY_ERR_NOMEM,
    PROXY_ERR_TOO_LARGE,   /* a bound was reached: a buffer's maximum, a list's length */
    PROXY_ERR_INVALID,     /* input is not what it must be; the sentence says how */
    PROXY_ERR_REFUSED,     /* a credential was checked and refused; the sentence says by which check */
    PROXY_ERR_CLIENT_GONE,
    PROXY_ERR_CLIENT_TIMEOUT, /* the web server did not deliver the request in time */
    PROXY_ERR_UPSTREAM_UNREACHABLE,
    PROXY_ERR_UPSTREAM_TIMEOUT,
    PROXY_ERR_UPSTREAM_PROTOCOL,
    PROXY_ERR_UPSTREAM_TLS, /* the TLS handshake failed: a certificate not trusted, not ours, or refused */
    PROXY_ERR_UPSTREAM_TOO_LARGE,
    PROXY_ERR_BODY_TOO_LARGE,
    PROXY_ERR_SHUTDOWN,
    PROXY_ERR_WOULD_BLOCK, /* an output buffer is full: pause the producer */
};

/* The sentence of an answer the proxy failed to give for a reason of its own. */
#define PROXY_INTERNAL_ERROR_MESSAGE "The proxy failed to handle the request."

/* proxy_strerror: a static, human-readable text for err, for the log; never NULL. */
const char *proxy_strerror(enum proxy_err err);

/* proxy_err_status, proxy_err_code, proxy_err_message: the answer a client
 * gets when a request fails with err: the HTTP status (unreachable or a bad
 * upstream answer 502, timeout 504, shutdown 503, a body too large 413, a
 * request not received in time 408,
 * anything else 500; PROXY_OK 200), the short code and the one sentence of
 * the JSON error. Static strings, no internal detail. Pure. */
int proxy_err_status(enum proxy_err err);
const char *proxy_err_code(enum proxy_err err);
const char *proxy_err_message(enum proxy_err err);

/* proxy_say: formats a sentence into the caller's error buffer (buf may be
 * NULL or len 0: nothing is written). */
void proxy_say(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
