/* error.h: the one error enum of the proxy and its message table.
 * A client that leaves is FCGI_ERR_CLIENT_GONE: a normal end, not a failure. */
#ifndef OPENOVA_ERROR_H
#define OPENOVA_ERROR_H

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

#endif
