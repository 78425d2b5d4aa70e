/* error.c: texts for the proxy's error enum, and error sentences. */
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

const char *fcgi_strerror(enum fcgi_err err)
{
    switch (err) {
    case FCGI_OK: return "ok";
    case FCGI_ERR_NOMEM: return "out of memory";
    case FCGI_ERR_CLIENT_GONE: return "client went away";
    case FCGI_ERR_UPSTREAM_UNREACHABLE: return "upstream unreachable";
    case FCGI_ERR_UPSTREAM_TIMEOUT: return "upstream timed out";
    case FCGI_ERR_UPSTREAM_PROTOCOL: return "upstream answered badly";
    case FCGI_ERR_UPSTREAM_TOO_LARGE: return "upstream response too large";
    case FCGI_ERR_BODY_TOO_LARGE: return "request body too large";
    case FCGI_ERR_IO: return "i/o error";
    case FCGI_ERR_SHUTDOWN: return "shutting down";
    case FCGI_ERR_WOULD_BLOCK: return "output buffer full";
    }
    return "unknown error";
}

void fcgi_say(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}
