/* error.c: texts for the proxy's error enum, and error sentences. */
#include <stdarg.h>
#include <stdio.h>

#include "core/error.h"

const char *proxy_strerror(enum proxy_err err)
{
    switch (err) {
    case PROXY_OK: return "ok";
    case PROXY_ERR_NOMEM: return "out of memory";
    case PROXY_ERR_CLIENT_GONE: return "client went away";
    case PROXY_ERR_UPSTREAM_UNREACHABLE: return "upstream unreachable";
    case PROXY_ERR_UPSTREAM_TIMEOUT: return "upstream timed out";
    case PROXY_ERR_UPSTREAM_PROTOCOL: return "upstream answered badly";
    case PROXY_ERR_UPSTREAM_TOO_LARGE: return "upstream response too large";
    case PROXY_ERR_BODY_TOO_LARGE: return "request body too large";
    case PROXY_ERR_IO: return "i/o error";
    case PROXY_ERR_SHUTDOWN: return "shutting down";
    case PROXY_ERR_WOULD_BLOCK: return "output buffer full";
    }
    return "unknown error";
}

void proxy_say(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}
