/* test_status.c: the one mapping of upstream failures to errors and HTTP statuses. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "core/error.h"
#include "handlers/upstream.h"
#include "unit.h"

/* libcurl's result -> the proxy's error -> the status the client sees. */
struct curl_row {
    const char *name;
    CURLcode rc;
    enum proxy_err err;
    int status;
};

#define CURL_ROW(rc, err, status) {#rc, rc, err, status}

static const struct curl_row curl_rows[] = {
    CURL_ROW(CURLE_OK, PROXY_OK, 200),
    /* connection refused or never made: 502 */
    CURL_ROW(CURLE_COULDNT_CONNECT, PROXY_ERR_UPSTREAM_UNREACHABLE, 502),
    CURL_ROW(CURLE_COULDNT_RESOLVE_HOST, PROXY_ERR_UPSTREAM_UNREACHABLE, 502),
    CURL_ROW(CURLE_COULDNT_RESOLVE_PROXY, PROXY_ERR_UPSTREAM_UNREACHABLE, 502),
    CURL_ROW(CURLE_SSL_CONNECT_ERROR, PROXY_ERR_UPSTREAM_UNREACHABLE, 502),
    CURL_ROW(CURLE_PEER_FAILED_VERIFICATION, PROXY_ERR_UPSTREAM_UNREACHABLE, 502),
    CURL_ROW(CURLE_SSL_CACERT_BADFILE, PROXY_ERR_UPSTREAM_UNREACHABLE, 502),
    CURL_ROW(CURLE_SEND_ERROR, PROXY_ERR_UPSTREAM_UNREACHABLE, 502),
    CURL_ROW(CURLE_GOT_NOTHING, PROXY_ERR_UPSTREAM_UNREACHABLE, 502),
    /* too slow: 504 */
    CURL_ROW(CURLE_OPERATION_TIMEDOUT, PROXY_ERR_UPSTREAM_TIMEOUT, 504),
    /* a broken answer: 502 */
    CURL_ROW(CURLE_RECV_ERROR, PROXY_ERR_UPSTREAM_PROTOCOL, 502),
    CURL_ROW(CURLE_WEIRD_SERVER_REPLY, PROXY_ERR_UPSTREAM_PROTOCOL, 502),
    CURL_ROW(CURLE_PARTIAL_FILE, PROXY_ERR_UPSTREAM_PROTOCOL, 502),
    CURL_ROW(CURLE_HTTP2, PROXY_ERR_UPSTREAM_PROTOCOL, 502),
    CURL_ROW(CURLE_BAD_CONTENT_ENCODING, PROXY_ERR_UPSTREAM_PROTOCOL, 502),
    CURL_ROW(CURLE_UNSUPPORTED_PROTOCOL, PROXY_ERR_UPSTREAM_PROTOCOL, 502),
    /* our own failure: 500 */
    CURL_ROW(CURLE_OUT_OF_MEMORY, PROXY_ERR_NOMEM, 500),
};

static void test_error_of(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(curl_rows); i++) {
        const struct curl_row *r = &curl_rows[i];
        enum proxy_err err = upstream_error_of(r->rc);
        if (err != r->err) {
            unit_fail(&failures, i, r->name, "error \"%s\", want \"%s\"", proxy_strerror(err), proxy_strerror(r->err));
            continue;
        }
        int status = proxy_err_status(err);
        if (status != r->status)
            unit_fail(&failures, i, r->name, "status %d, want %d", status, r->status);
    }
    unit_done(failures);
}

/* Every value of the error enum: its status and its text. */
struct err_row {
    const char *name;
    enum proxy_err err;
    int status;
};

#define ERR_ROW(err, status) {#err, err, status}

static const struct err_row err_rows[] = {
    ERR_ROW(PROXY_OK, 200),
    ERR_ROW(PROXY_ERR_NOMEM, 500),
    ERR_ROW(PROXY_ERR_CLIENT_GONE, 500),
    ERR_ROW(PROXY_ERR_UPSTREAM_UNREACHABLE, 502),
    ERR_ROW(PROXY_ERR_UPSTREAM_TIMEOUT, 504),
    ERR_ROW(PROXY_ERR_UPSTREAM_PROTOCOL, 502),
    ERR_ROW(PROXY_ERR_UPSTREAM_TOO_LARGE, 502),
    ERR_ROW(PROXY_ERR_BODY_TOO_LARGE, 413),
    ERR_ROW(PROXY_ERR_SHUTDOWN, 503),
    ERR_ROW(PROXY_ERR_WOULD_BLOCK, 500),
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
        const char *text = proxy_strerror(r->err);
        if (!text || !*text || strcmp(text, "unknown error") == 0)
            unit_fail(&failures, i, r->name, "no text of its own: \"%s\"", text ? text : "(null)");
    }
    unit_done(failures);
}

/* A callback's reason for stopping a transfer wins over libcurl's code. */
struct result_row {
    const char *name;
    enum proxy_err abort_reason;
    CURLcode rc;
    enum proxy_err want;
};

static const struct result_row result_rows[] = {
    {"no abort, ok", PROXY_OK, CURLE_OK, PROXY_OK},
    {"no abort, refused", PROXY_OK, CURLE_COULDNT_CONNECT, PROXY_ERR_UPSTREAM_UNREACHABLE},
    {"no abort, timeout", PROXY_OK, CURLE_OPERATION_TIMEDOUT, PROXY_ERR_UPSTREAM_TIMEOUT},
    {"client gone in write", PROXY_ERR_CLIENT_GONE, CURLE_WRITE_ERROR, PROXY_ERR_CLIENT_GONE},
    {"headers too large", PROXY_ERR_UPSTREAM_TOO_LARGE, CURLE_WRITE_ERROR, PROXY_ERR_UPSTREAM_TOO_LARGE},
    {"shutdown in progress", PROXY_ERR_SHUTDOWN, CURLE_ABORTED_BY_CALLBACK, PROXY_ERR_SHUTDOWN},
    {"body before head", PROXY_ERR_UPSTREAM_PROTOCOL, CURLE_WRITE_ERROR, PROXY_ERR_UPSTREAM_PROTOCOL},
    {"out of memory in callback", PROXY_ERR_NOMEM, CURLE_WRITE_ERROR, PROXY_ERR_NOMEM},
};

static void test_exchange_result(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(result_rows); i++) {
        const struct result_row *r = &result_rows[i];
        struct upstream_exchange x;
        memset(&x, 0, sizeof x);
        x.abort_reason = r->abort_reason;
        enum proxy_err got = upstream_exchange_result(&x, r->rc);
        if (got != r->want)
            unit_fail(&failures, i, r->name, "\"%s\", want \"%s\"", proxy_strerror(got), proxy_strerror(r->want));
    }
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_of),
        cmocka_unit_test(test_error_status),
        cmocka_unit_test(test_exchange_result),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
