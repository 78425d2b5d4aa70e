/* test_upstream.c: the upstream client's pure parts (handlers/upstream.c): response header
 * filtering, libcurl's results mapped to the proxy's errors and statuses, and
 * a callback's reason winning over libcurl's. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "handlers/upstream.h"
#include "unit.h"

struct header_row {
    const char *name;
    const char *raw;
    size_t raw_len;
    const char *const *drop_also;
    const char *want;
};

/* A literal with its length, NUL bytes included. */
#define RAW(s) s, sizeof(s) - 1

static const char *const drop_length_custom[] = {"Content-Length", "x-custom", NULL};
static const char *const drop_prefix_only[] = {"X-Cust", NULL};
static const char *const drop_empty[] = {NULL};

static const struct header_row header_rows[] = {
    /* kept, in order, with case and value */
    {"ordinary kept", RAW("Content-Type: application/json\r\nETag: \"v1\"\r\nCache-Control: no-store\r\n"), NULL,
     "Content-Type: application/json\r\nETag: \"v1\"\r\nCache-Control: no-store\r\n"},
    {"case preserved", RAW("x-MiXeD-Case: VaLuE Two\r\n"), NULL, "x-MiXeD-Case: VaLuE Two\r\n"},
    {"OWS trimmed", RAW("X-A:   v  \t\r\nX-B:\tw\r\nX-C:x\r\n"), NULL, "X-A: v\r\nX-B: w\r\nX-C: x\r\n"},
    {"inner spaces and tabs kept", RAW("X-A: a  b\tc\r\n"), NULL, "X-A: a  b\tc\r\n"},
    {"colon in value", RAW("Location: http://x:1/a?b=c:d\r\n"), NULL, "Location: http://x:1/a?b=c:d\r\n"},
    {"obs-text kept", RAW("X-A: caf\xc3\xa9\r\n"), NULL, "X-A: caf\xc3\xa9\r\n"},
    {"tchar name", RAW("X!#$%&'*+-.^_`|~1: v\r\n"), NULL, "X!#$%&'*+-.^_`|~1: v\r\n"},
    {"NUL in name dropped", RAW("a\0:b\r\nX-B: 2\r\n"), NULL, "X-B: 2\r\n"},
    {"LF-only lines", RAW("A: 1\nB: 2\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"mixed line ends", RAW("A: 1\r\nB: 2\nC: 3\r\n"), NULL, "A: 1\r\nB: 2\r\nC: 3\r\n"},
    {"no final line end", RAW("A: 1\r\nB: 2"), NULL, "A: 1\r\nB: 2\r\n"},
    {"empty block", RAW(""), NULL, ""},
    {"empty lines skipped", RAW("\r\n\nA: 1\r\n\r\n"), NULL, "A: 1\r\n"},
    {"similar names kept", RAW("Connection-Id: 1\r\nX-Accel: 2\r\nTE-X: 3\r\nStatus-Text: 4\r\nX-Request-IDs: 5\r\n"),
     NULL, "Connection-Id: 1\r\nX-Accel: 2\r\nTE-X: 3\r\nStatus-Text: 4\r\nX-Request-IDs: 5\r\n"},
    /* RFC 9110 7.6.1 hop-by-hop fields, any case */
    {"Connection", RAW("A: 1\r\nConnection: close\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"connection lower", RAW("A: 1\r\nconnection: keep-alive\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"Keep-Alive", RAW("A: 1\r\nkeep-alive: timeout=5\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"Proxy-Authenticate", RAW("A: 1\r\nPROXY-AUTHENTICATE: Basic\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"Proxy-Authorization", RAW("A: 1\r\nproxy-authorization: Basic eA==\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"Proxy-Connection", RAW("A: 1\r\nProxy-Connection: keep-alive\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"TE", RAW("A: 1\r\nte: trailers\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"Trailer", RAW("A: 1\r\nTRAILER: X-Sum\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"Transfer-Encoding", RAW("A: 1\r\nTransfer-Encoding: chunked\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"transfer-encoding mixed", RAW("A: 1\r\ntRaNsFeR-eNcOdInG: chunked\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    /* RFC 9112 6.3: a length beside Transfer-Encoding is not passed on, before or after it */
    {"length after chunked", RAW("Transfer-Encoding: chunked\r\nContent-Length: 5\r\nA: 1\r\n"), NULL, "A: 1\r\n"},
    {"length before chunked", RAW("content-length: 5\r\nA: 1\r\ntransfer-encoding: chunked\r\n"), NULL, "A: 1\r\n"},
    {"length alone kept", RAW("Content-Length: 5\r\nA: 1\r\n"), NULL, "Content-Length: 5\r\nA: 1\r\n"},
    /* headers that speak for the whole origin */
    {"CORS", RAW("Access-Control-Allow-Origin: *\r\naccess-control-allow-credentials: true\r\n"
                 "Access-Control-Expose-Headers: X\r\nA: 1\r\nTiming-Allow-Origin: *\r\n"), NULL, "A: 1\r\n"},
    {"transport policy", RAW("Strict-Transport-Security: max-age=0\r\nExpect-CT: max-age=0\r\nAlt-Svc: h3=\":443\"\r\n"
                             "Public-Key-Pins: x\r\nPublic-Key-Pins-Report-Only: x\r\nA: 1\r\n"), NULL, "A: 1\r\n"},
    {"origin state", RAW("Clear-Site-Data: \"*\"\r\nRefresh: 0; url=/x\r\nSet-Cookie2: a=1\r\nA: 1\r\n"
                         "WWW-Authenticate: Basic\r\n"), NULL, "A: 1\r\n"},
    {"names alike kept", RAW("Access-Control: 1\r\nRefresh-Rate: 2\r\n"), NULL,
     "Access-Control: 1\r\nRefresh-Rate: 2\r\n"},
    {"Upgrade", RAW("A: 1\r\nUpgrade: h2c\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"all hop-by-hop", RAW("Connection: close\r\nKeep-Alive: 1\r\nProxy-Authenticate: x\r\nProxy-Authorization: x\r\n"
                           "TE: x\r\nTrailer: x\r\nTransfer-Encoding: chunked\r\nUpgrade: x\r\n"),
     NULL, ""},
    /* fields named in Connection, before or after it */
    {"named after Connection", RAW("Connection: close, X-Foo\r\nX-Foo: 1\r\nX-Bar: 2\r\n"), NULL, "X-Bar: 2\r\n"},
    {"named before Connection", RAW("X-Foo: 1\r\nConnection: close, X-Foo\r\nX-Bar: 2\r\n"), NULL, "X-Bar: 2\r\n"},
    {"named any case", RAW("x-foo: 1\r\nConnection: X-FOO\r\n"), NULL, ""},
    {"named list separators", RAW("Connection: ,\tX-A ,, X-B,\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\n"), NULL, "X-C: 3\r\n"},
    {"two Connection fields", RAW("Connection: X-A\r\nX-A: 1\r\nX-B: 2\r\nconnection: x-b\r\nX-C: 3\r\n"), NULL,
     "X-C: 3\r\n"},
    {"named token is whole", RAW("Connection: X-Fo\r\nX-Foo: 1\r\n"), NULL, "X-Foo: 1\r\n"},
    {"named ordinary field", RAW("Content-Type: text/plain\r\nConnection: content-type\r\nX-B: 2\r\n"), NULL,
     "X-B: 2\r\n"},
    /* fields a web server would act on, or the proxy owns */
    {"Set-Cookie", RAW("A: 1\r\nSet-Cookie: s=1; HttpOnly\r\nset-cookie: t=2\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"Status", RAW("A: 1\r\nStatus: 302 Found\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"status lower", RAW("A: 1\r\nstatus: 200\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"X-Sendfile", RAW("A: 1\r\nX-Sendfile: /etc/passwd\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"X-Sendfile2", RAW("A: 1\r\nx-sendfile2: /etc/passwd 0-\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"X-Accel-Redirect", RAW("A: 1\r\nX-Accel-Redirect: /internal\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"X-Accel-Buffering", RAW("A: 1\r\nx-accel-buffering: yes\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"X-LIGHTTPD-send-file", RAW("A: 1\r\nX-LIGHTTPD-send-file: /etc/passwd\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"x-lighttpd lower", RAW("A: 1\r\nx-lighttpd-send-tempfile: /tmp/x\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    {"X-Request-ID", RAW("A: 1\r\nX-Request-ID: theirs\r\nx-request-id: theirs\r\nB: 2\r\n"), NULL, "A: 1\r\nB: 2\r\n"},
    /* lines that could not be relayed safely */
    {"control character", RAW("X-A: a\x01" "b\r\nX-B: ok\r\n"), NULL, "X-B: ok\r\n"},
    {"bare CR inside", RAW("X-A: a\rInjected: 1\r\nX-B: ok\r\n"), NULL, "X-B: ok\r\n"},
    {"CR before CRLF", RAW("X-A: a\r\r\nX-B: ok\r\n"), NULL, "X-B: ok\r\n"},
    {"NUL inside", RAW("X-A: a\0b\r\nX-B: ok\r\n"), NULL, "X-B: ok\r\n"},
    {"DEL inside", RAW("X-A: a\x7f" "b\r\nX-B: ok\r\n"), NULL, "X-B: ok\r\n"},
    {"ESC inside", RAW("X-A: \x1b[31m\r\nX-B: ok\r\n"), NULL, "X-B: ok\r\n"},
    /* RFC 9112 5.2: obs-fold is refused (want NULL: -3, the caller's 502) */
    {"obs-fold space", RAW("X-A: 1\r\n continued\r\nX-B: 2\r\n"), NULL, NULL},
    {"obs-fold tab", RAW("X-A: 1\r\n\tcontinued: x\r\nX-B: 2\r\n"), NULL, NULL},
    {"obs-fold LF only", RAW("X-A: 1\n continued\n"), NULL, NULL},
    {"leading fold", RAW(" X-A: 1\r\n"), NULL, NULL},
    {"empty value has no trailing space", RAW("X-A:\r\nX-B: \r\n"), NULL, "X-A:\r\nX-B:\r\n"},
    {"many Connection names, the last still dropped",
     RAW("Connection: a1,a2,a3,a4,a5,a6,a7,a8,a9,a10,a11,a12,a13,a14,a15,a16,a17,a18,a19,a20,a21,a22,a23,a24,a25,"
         "a26,a27,a28,a29,a30,a31,a32,X-Secret\r\nX-Secret: 1\r\nX-Kept: 2\r\n"),
     NULL, "X-Kept: 2\r\n"},
    {"no colon", RAW("NoColonHere\r\nX-B: 2\r\n"), NULL, "X-B: 2\r\n"},
    {"status line", RAW("HTTP/1.1 200 OK\r\nX-B: 2\r\n"), NULL, "X-B: 2\r\n"},
    {"space before colon", RAW("X-A : 1\r\nX-B: 2\r\n"), NULL, "X-B: 2\r\n"},
    {"empty name", RAW(": v\r\nX-B: 2\r\n"), NULL, "X-B: 2\r\n"},
    {"separator in name", RAW("X(A): 1\r\nX@A: 1\r\nX/A: 1\r\nX-B: 2\r\n"), NULL, "X-B: 2\r\n"},
    {"non-ASCII name", RAW("X-\xc3\xa9: 1\r\nX-B: 2\r\n"), NULL, "X-B: 2\r\n"},
    /* the caller's own list */
    {"drop_also", RAW("Content-Length: 5\r\nX-Custom: 1\r\nX-Keep: 2\r\n"), drop_length_custom, "X-Keep: 2\r\n"},
    {"drop_also whole names only", RAW("X-Custom: 1\r\n"), drop_prefix_only, "X-Custom: 1\r\n"},
    {"drop_also empty list", RAW("X-Custom: 1\r\n"), drop_empty, "X-Custom: 1\r\n"},
};

static void test_filter_headers(void **state)
{
    (void)state;
    unsigned failures = 0;
    char got_esc[512], want_esc[512];
    for (size_t i = 0; i < UNIT_LEN(header_rows); i++) {
        const struct header_row *r = &header_rows[i];
        struct buf out;
        buf_init(&out, 64 * 1024);
        enum proxy_err rc = upstream_filter_headers(r->raw, r->raw_len, r->drop_also, &out);
        if (!r->want) {
            if (rc != PROXY_ERR_UPSTREAM_PROTOCOL)
                unit_fail(&failures, i, r->name, "returned %d, want PROXY_ERR_UPSTREAM_PROTOCOL (refused)", rc);
            buf_free(&out);
            continue;
        }
        size_t want_len = strlen(r->want);
        if (rc != 0)
            unit_fail(&failures, i, r->name, "returned %d", rc);
        else if (out.len != want_len || (want_len && memcmp(out.data, r->want, want_len) != 0))
            unit_fail(&failures, i, r->name, "got \"%s\", want \"%s\"",
                      unit_escape(out.data ? out.data : "", out.len, got_esc, sizeof got_esc),
                      unit_escape(r->want, want_len, want_esc, sizeof want_esc));
        buf_free(&out);
    }
    unit_done(failures);
}

/* The output is bounded by the buffer's maximum. */
struct limit_row {
    const char *name;
    size_t max;
    enum proxy_err rc;
};

static const struct limit_row limit_rows[] = {
    {"fits exactly", 20, 0}, /* "A: 1\r\nB: 2\r\nCc: 33\r\n" is 20 bytes */
    {"one byte short", 19, PROXY_ERR_TOO_LARGE},
    {"nothing fits", 0, PROXY_ERR_TOO_LARGE},
};

static void test_filter_headers_limit(void **state)
{
    (void)state;
    unsigned failures = 0;
    static const char raw[] = "A: 1\r\nB: 2\r\nCc: 33\r\n";
    for (size_t i = 0; i < UNIT_LEN(limit_rows); i++) {
        const struct limit_row *r = &limit_rows[i];
        struct buf out;
        buf_init(&out, r->max);
        enum proxy_err rc = upstream_filter_headers(raw, sizeof raw - 1, NULL, &out);
        if (rc != r->rc)
            unit_fail(&failures, i, r->name, "returned %d, want %d", rc, r->rc);
        if (out.len > r->max)
            unit_fail(&failures, i, r->name, "%zu bytes out past the maximum %zu", out.len, r->max);
        buf_free(&out);
    }
    unit_done(failures);
}

/* Connection may name headers to drop, but not without bound: the names
 * are collected once, so a block of thousands of lines stays linear. */
static void test_connection_token_bound(void **state)
{
    (void)state;
    char raw[4096];
    for (int count = 63; count <= 65; count++) {
        size_t n = (size_t)snprintf(raw, sizeof raw, "Connection: close");
        for (int i = 1; i < count; i++)
            n += (size_t)snprintf(raw + n, sizeof raw - n, ", X-Drop-%d", i);
        n += (size_t)snprintf(raw + n, sizeof raw - n, "\r\nX-Drop-5: a\r\nX-Keep: b\r\n");
        struct buf out;
        buf_init(&out, 4096);
        enum proxy_err rc = upstream_filter_headers(raw, n, NULL, &out);
        if (count <= 64) {
            assert_int_equal(rc, 0);
            assert_int_equal(out.len, strlen("X-Keep: b\r\n"));
            assert_memory_equal(out.data, "X-Keep: b\r\n", out.len);
        } else {
            assert_int_equal(rc, PROXY_ERR_TOO_LARGE);
        }
        buf_free(&out);
    }
}


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
    /* TLS is named apart: a wrong CA or certificate is the operator's to fix */
    CURL_ROW(CURLE_SSL_CONNECT_ERROR, PROXY_ERR_UPSTREAM_TLS, 502),
    CURL_ROW(CURLE_PEER_FAILED_VERIFICATION, PROXY_ERR_UPSTREAM_TLS, 502),
    CURL_ROW(CURLE_SSL_CACERT_BADFILE, PROXY_ERR_UPSTREAM_TLS, 502),
    CURL_ROW(CURLE_SSL_CERTPROBLEM, PROXY_ERR_UPSTREAM_TLS, 502),
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

/* The metrics' reason of a failed call: TLS told apart by libcurl's code;
 * what is not the upstream's failure is none (-1). */
struct kind_row {
    const char *name;
    enum proxy_err err;
    CURLcode rc;
    int kind;
};

static const struct kind_row kind_rows[] = {
    {"refused", PROXY_ERR_UPSTREAM_UNREACHABLE, CURLE_COULDNT_CONNECT, METRICS_UPSTREAM_UNREACHABLE},
    {"no such host", PROXY_ERR_UPSTREAM_UNREACHABLE, CURLE_COULDNT_RESOLVE_HOST, METRICS_UPSTREAM_UNREACHABLE},
    {"handshake", PROXY_ERR_UPSTREAM_UNREACHABLE, CURLE_SSL_CONNECT_ERROR, METRICS_UPSTREAM_TLS},
    {"certificate", PROXY_ERR_UPSTREAM_UNREACHABLE, CURLE_PEER_FAILED_VERIFICATION, METRICS_UPSTREAM_TLS},
    {"tls error", PROXY_ERR_UPSTREAM_TLS, CURLE_PEER_FAILED_VERIFICATION, METRICS_UPSTREAM_TLS},
    {"client certificate", PROXY_ERR_UPSTREAM_PROTOCOL, CURLE_SSL_CERTPROBLEM, METRICS_UPSTREAM_TLS},
    {"timeout", PROXY_ERR_UPSTREAM_TIMEOUT, CURLE_OPERATION_TIMEDOUT, METRICS_UPSTREAM_TIMEOUT},
    {"answer deadline", PROXY_ERR_UPSTREAM_TIMEOUT, CURLE_OK, METRICS_UPSTREAM_TIMEOUT},
    {"bad answer", PROXY_ERR_UPSTREAM_PROTOCOL, CURLE_WEIRD_SERVER_REPLY, METRICS_UPSTREAM_PROTOCOL},
    {"too large", PROXY_ERR_UPSTREAM_TOO_LARGE, CURLE_WRITE_ERROR, METRICS_UPSTREAM_TOO_LARGE},
    {"ok", PROXY_OK, CURLE_OK, -1},
    {"client left", PROXY_ERR_CLIENT_GONE, CURLE_WRITE_ERROR, -1},
    {"out of memory", PROXY_ERR_NOMEM, CURLE_OUT_OF_MEMORY, -1},
    {"the stop", PROXY_ERR_SHUTDOWN, CURLE_ABORTED_BY_CALLBACK, -1},
};

static void test_failure_kind(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(kind_rows); i++) {
        const struct kind_row *r = &kind_rows[i];
        int kind = upstream_failure_kind(r->err, r->rc);
        if (kind != r->kind)
            unit_fail(&failures, i, r->name, "kind %d, want %d", kind, r->kind);
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

/* ---- upstream_content_length ---- */

struct length_row {
    const char *name;
    const char *raw;
    long long want;
};

static const struct length_row length_rows[] = {
    {"plain", "Content-Type: a\r\nContent-Length: 1234\r\n", 1234},
    {"any case, spaces", "content-LENGTH:   7  \r\n", 7},
    {"absent", "Content-Type: a\r\n", -1},
    {"not a number", "Content-Length: 12a\r\n", -1},
    {"empty", "Content-Length: \r\n", -1},
    {"beside chunked", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", -1},
    {"chunked first", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", -1},
};

static void test_content_length(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(length_rows); i++) {
        const struct length_row *r = &length_rows[i];
        long long got = upstream_content_length(r->raw, strlen(r->raw));
        if (got != r->want)
            unit_fail(&failures, i, r->name, "%lld, want %lld", got, r->want);
    }
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_headers),
        cmocka_unit_test(test_filter_headers_limit),
        cmocka_unit_test(test_connection_token_bound),
        cmocka_unit_test(test_error_of),
        cmocka_unit_test(test_failure_kind),
        cmocka_unit_test(test_exchange_result),
        cmocka_unit_test(test_content_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
