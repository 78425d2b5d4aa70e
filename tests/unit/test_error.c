/* test_error.c: the one table from the proxy's errors to log texts and client answers (core/error.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "core/error.h"
#include "unit.h"

/* Every value of the error enum: its status, code and sentence, and a log text of its own. */
struct err_row {
    const char *name;
    enum proxy_err err;
    int status;
    const char *code;
    const char *message;
};

#define ERR_ROW(err, status, ...) {#err, err, status, __VA_ARGS__}
#define INTERNAL "internal_error", "The proxy failed to handle the request."
#define UNAVAILABLE "upstream_unavailable", "The flow server could not be reached or answered badly."

static const struct err_row err_rows[] = {
    ERR_ROW(PROXY_OK, 200, "ok", "OK."),
    ERR_ROW(PROXY_ERR_NOMEM, 500, INTERNAL),
    ERR_ROW(PROXY_ERR_TOO_LARGE, 500, INTERNAL),
    ERR_ROW(PROXY_ERR_INVALID, 500, INTERNAL),
    ERR_ROW(PROXY_ERR_REFUSED, 500, INTERNAL),
    ERR_ROW(PROXY_ERR_CLIENT_GONE, 500, INTERNAL),
    ERR_ROW(PROXY_ERR_CLIENT_TIMEOUT, 408, "request_timeout", "The request was not received in time."),
    ERR_ROW(PROXY_ERR_UPSTREAM_UNREACHABLE, 502, UNAVAILABLE),
    ERR_ROW(PROXY_ERR_UPSTREAM_TIMEOUT, 504, "upstream_timeout", "The flow server did not answer in time."),
    ERR_ROW(PROXY_ERR_UPSTREAM_PROTOCOL, 502, UNAVAILABLE),
    ERR_ROW(PROXY_ERR_UPSTREAM_TOO_LARGE, 502, "upstream_too_large",
            "The flow server's answer is larger than the proxy relays."),
    ERR_ROW(PROXY_ERR_BODY_TOO_LARGE, 413, "body_too_large", "The request body is larger than allowed."),
    ERR_ROW(PROXY_ERR_SHUTDOWN, 503, "shutting_down", "The proxy is shutting down; retry shortly."),
    ERR_ROW(PROXY_ERR_WOULD_BLOCK, 500, INTERNAL),
    ERR_ROW((enum proxy_err)999, 500, INTERNAL),
};

static void test_error_status(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(err_rows); i++) {
        const struct err_row *r = &err_rows[i];
        int status = proxy_err_status(r->err);
        if (status != r->status)
            unit_fail(&failures, i, r->name, "status %d, want %d", status, r->status);
        if (strcmp(proxy_err_code(r->err), r->code) != 0)
            unit_fail(&failures, i, r->name, "code %s, want %s", proxy_err_code(r->err), r->code);
        if (strcmp(proxy_err_message(r->err), r->message) != 0)
            unit_fail(&failures, i, r->name, "message \"%s\", want \"%s\"", proxy_err_message(r->err), r->message);
        const char *text = proxy_strerror(r->err);
        bool unknown = strcmp(text, "unknown error") == 0;
        if (!*text || unknown != (r->err == (enum proxy_err)999))
            unit_fail(&failures, i, r->name, "log text \"%s\"", text);
    }
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
