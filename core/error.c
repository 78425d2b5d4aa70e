/* error.c: the one table from the proxy's errors to log texts and to the
 * answer a client gets, and error sentences. */
#include <stdarg.h>
#include <stdio.h>

#include "core/error.h"

struct err_answer {
    const char *text; /* for the log */
    int status;
    const char *code;
    const char *message;
};

#define INTERNAL 500, "internal_error", PROXY_INTERNAL_ERROR_MESSAGE
#define UNAVAILABLE 502, "upstream_unavailable", "The flow server could not be reached or answered badly."

static const struct err_answer answers[] = {
    [PROXY_OK] = {"ok", 200, "ok", "OK."},
    [PROXY_ERR_NOMEM] = {"out of memory", INTERNAL},
    [PROXY_ERR_TOO_LARGE] = {"too large", INTERNAL},
    [PROXY_ERR_INVALID] = {"invalid", INTERNAL},
    [PROXY_ERR_REFUSED] = {"refused", INTERNAL},
    [PROXY_ERR_CLIENT_GONE] = {"client went away", INTERNAL},
    [PROXY_ERR_CLIENT_TIMEOUT] = {"request not received in time", 408, "request_timeout",
                                  "The request was not received in time."},
    [PROXY_ERR_UPSTREAM_UNREACHABLE] = {"upstream unreachable", UNAVAILABLE},
    [PROXY_ERR_UPSTREAM_TIMEOUT] = {"upstream timed out", 504, "upstream_timeout",
                                    "The flow server did not answer in time."},
    [PROXY_ERR_UPSTREAM_PROTOCOL] = {"upstream answered badly", UNAVAILABLE},
    [PROXY_ERR_UPSTREAM_TLS] = {"upstream TLS failed", 502, "upstream_tls",
                                "The TLS connection to the flow server failed (its certificate, or ours)."},
    [PROXY_ERR_UPSTREAM_TOO_LARGE] = {"upstream response too large", 502, "upstream_too_large",
                                      "The flow server's answer is larger than the proxy relays."},
    [PROXY_ERR_BODY_TOO_LARGE] = {"request body too large", 413, "body_too_large",
                                  "The request body is larger than allowed."},
    [PROXY_ERR_SHUTDOWN] = {"shutting down", 503, "shutting_down", "The proxy is shutting down; retry shortly."},
    [PROXY_ERR_WOULD_BLOCK] = {"output buffer full", INTERNAL},
};

static const struct err_answer *answer_of(enum proxy_err err)
{
    static const struct err_answer unknown = {"unknown error", INTERNAL};
    if ((size_t)err >= sizeof answers / sizeof answers[0] || !answers[err].text)
        return &unknown;
    return &answers[err];
}

const char *proxy_strerror(enum proxy_err err)
{
    return answer_of(err)->text;
}

int proxy_err_status(enum proxy_err err)
{
    return answer_of(err)->status;
}

const char *proxy_err_code(enum proxy_err err)
{
    return answer_of(err)->code;
}

const char *proxy_err_message(enum proxy_err err)
{
    return answer_of(err)->message;
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
