/* test_request.c: request ids and header values, response heads and JSON errors, and bounded buffers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/buf.h"
#include "core/http.h"
#include "fcgi/request.h"
#include "fcgi/response.h"
#include "unit.h"

static char x128[129];
static char x129[130];

static int setup(void **state)
{
    (void)state;
    memset(x128, 'x', 128);
    x128[128] = '\0';
    memset(x129, 'x', 129);
    x129[129] = '\0';
    return 0;
}

/* ---- fcgi_request_id_acceptable ---- */

struct id_row {
    const char *id;
    bool ok;
};

static const struct id_row request_id_rows[] = {
    {"r1", true},
    {"0123456789abcdef0123456789abcdef", true},
    {"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", true},
    {x128, true},
    {x129, false},
    {"", false},
    {"a b", false},
    {" a", false},
    {"a\tb", false},
    {"a\r\nX-Injected: 1", false},
    {"a\nb", false},
    {"a\x7f", false},
    {"caf\xc3\xa9", false},
    {"\x01", false},
};

static void test_request_id_acceptable(void **state)
{
    (void)state;
    unsigned failures = 0;
    char esc[300];
    for (size_t i = 0; i < UNIT_LEN(request_id_rows); i++) {
        const struct id_row *r = &request_id_rows[i];
        bool got = fcgi_request_id_acceptable(r->id);
        if (got != r->ok)
            unit_fail(&failures, i, unit_escape(r->id, strlen(r->id), esc, sizeof esc), "acceptable %d, want %d", got,
                      r->ok);
    }
    unit_done(failures);
}

/* ---- http_value_acceptable ---- */

struct value_row {
    const char *value;
    size_t max;
    bool ok;
};

static const struct value_row value_rows[] = {
    {"text/event-stream", 1024, true},
    {"text/html, application/json;q=0.9", 1024, true},
    {"a b", 10, true},
    {" ", 10, true},
    {"abc", 3, true},
    {"abcd", 3, false},
    {"a", 1, true},
    {"a", 0, false},
    {"", 10, false},
    {"a\tb", 10, false},
    {"a\rb", 10, false},
    {"a\nb", 10, false},
    {"a\x7f", 10, false},
    {"\x80", 10, false},
    {"\xff", 10, false},
    {"10.0.0.1", 64, true},
    {"::1", 64, true},
};

static void test_header_value_acceptable(void **state)
{
    (void)state;
    unsigned failures = 0;
    char esc[128];
    for (size_t i = 0; i < UNIT_LEN(value_rows); i++) {
        const struct value_row *r = &value_rows[i];
        bool got = http_value_acceptable(r->value, r->max);
        if (got != r->ok)
            unit_fail(&failures, i, unit_escape(r->value, strlen(r->value), esc, sizeof esc),
                      "max %zu: acceptable %d, want %d", r->max, got, r->ok);
    }
    unit_done(failures);
}

/* ---- fcgi_request_id_generate ---- */

static void test_request_id_generate(void **state)
{
    (void)state;
    char a[64], b[64];
    memset(a, 'Z', sizeof a);
    memset(b, 'Z', sizeof b);
    fcgi_request_id_generate(a);
    fcgi_request_id_generate(b);
    const char *ids[] = {a, b};
    for (size_t i = 0; i < UNIT_LEN(ids); i++) {
        const char *id = ids[i];
        print_message("id %zu: %s\n", i, id);
        assert_int_equal(strlen(id), 32);
        assert_int_equal(strspn(id, "0123456789abcdef"), 32);
        assert_int_equal(id[33], 'Z'); /* nothing written past the NUL */
        assert_true(fcgi_request_id_acceptable(id));
    }
    assert_string_not_equal(a, b);
}

/* ---- http_status_reason ---- */

struct reason_row {
    int status;
    const char *reason;
};

static const struct reason_row reason_rows[] = {
    {200, "OK"},
    {204, "No Content"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {429, "Too Many Requests"},
    {500, "Internal Server Error"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {299, ""},
    {0, ""},
    {-1, ""},
    {999, ""},
};

static void test_status_reason(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(reason_rows); i++) {
        const struct reason_row *r = &reason_rows[i];
        char name[16];
        snprintf(name, sizeof name, "%d", r->status);
        const char *got = http_status_reason(r->status);
        if (!got || strcmp(got, r->reason) != 0)
            unit_fail(&failures, i, name, "reason \"%s\", want \"%s\"", got ? got : "(null)", r->reason);
    }
    unit_done(failures);
}

/* ---- fcgi_response_format_head ---- */

struct head_row {
    const char *name;
    size_t max;          /* the output buffer's maximum */
    const char *before;  /* already in the buffer */
    int status;
    const char *request_id;
    const char *extra;
    size_t extra_len;    /* SIZE_MAX: strlen(extra) */
    int rc;
    const char *want;    /* when rc == 0: the whole buffer */
};

#define ALL SIZE_MAX

static const struct head_row head_rows[] = {
    {"404", 4096, "", 404, "r1", NULL, 0, 0, "Status: 404 Not Found\r\nX-Request-ID: r1\r\n\r\n"},
    {"unknown status: no reason, no space", 4096, "", 299, "r1", NULL, 0, 0, "Status: 299\r\nX-Request-ID: r1\r\n\r\n"},
    {"extra lines", 4096, "", 405, "r2", "Allow: GET\r\nContent-Type: application/json\r\n", ALL, 0,
     "Status: 405 Method Not Allowed\r\nX-Request-ID: r2\r\nAllow: GET\r\nContent-Type: application/json\r\n\r\n"},
    {"200 stream", 4096, "", 200, "0123456789abcdef0123456789abcdef",
     "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n", ALL, 0,
     "Status: 200 OK\r\nX-Request-ID: 0123456789abcdef0123456789abcdef\r\n"
     "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n\r\n"},
    {"extra with length 0", 4096, "", 204, "r", "Ignored: 1\r\n", 0, 0, "Status: 204 No Content\r\nX-Request-ID: r\r\n\r\n"},
    {"extra cut by its length", 4096, "", 502, "r", "A: 1\r\nB: 2\r\n", 6, 0,
     "Status: 502 Bad Gateway\r\nX-Request-ID: r\r\nA: 1\r\n\r\n"},
    {"appends to what is there", 4096, "xyz", 204, "r", NULL, 0, 0, "xyzStatus: 204 No Content\r\nX-Request-ID: r\r\n\r\n"},
    {"fits exactly", 33, "", 299, "r1", NULL, 0, 0, "Status: 299\r\nX-Request-ID: r1\r\n\r\n"},
    {"one byte short", 32, "", 299, "r1", NULL, 0, PROXY_ERR_TOO_LARGE, NULL},
    {"extra too large", 40, "", 299, "r1", "Long-Header: 1234567890\r\n", ALL, PROXY_ERR_TOO_LARGE, NULL},
};

static void test_format_head(void **state)
{
    (void)state;
    unsigned failures = 0;
    char got_esc[512], want_esc[512];
    for (size_t i = 0; i < UNIT_LEN(head_rows); i++) {
        const struct head_row *r = &head_rows[i];
        struct buf out;
        buf_init(&out, r->max);
        if (buf_append(&out, r->before, strlen(r->before)) != 0) {
            unit_fail(&failures, i, r->name, "setup append failed");
            buf_free(&out);
            continue;
        }
        size_t extra_len = r->extra_len == ALL ? strlen(r->extra) : r->extra_len;
        int rc = fcgi_response_format_head(&out, r->status, r->request_id, r->extra, extra_len);
        if (rc != r->rc)
            unit_fail(&failures, i, r->name, "returned %d, want %d", rc, r->rc);
        else if (rc == 0 && (out.len != strlen(r->want) || memcmp(out.data, r->want, out.len) != 0))
            unit_fail(&failures, i, r->name, "got \"%s\", want \"%s\"",
                      unit_escape(out.data, out.len, got_esc, sizeof got_esc),
                      unit_escape(r->want, strlen(r->want), want_esc, sizeof want_esc));
        if (out.len > r->max)
            unit_fail(&failures, i, r->name, "%zu bytes, past the maximum %zu", out.len, r->max);
        buf_free(&out);
    }
    unit_done(failures);
}

/* ---- fcgi_error_json ---- */

struct json_row {
    const char *name;
    const char *code;
    const char *message;
    const char *request_id;
};

static const struct json_row json_rows[] = {
    {"plain", "not_found", "No such route.", "r1"},
    {"quotes and controls", "bad_request", "say \"hi\"\n\tthen \x01\x1f and \\ and / and \x7f", "r-2"},
    {"non-ASCII", "x", "caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80", "0123456789abcdef0123456789abcdef"},
    {"html", "x", "</script><script>alert(1)</script>", "r"},
    {"empty strings", "", "", ""},
};

static void test_error_json(void **state)
{
    (void)state;
    unsigned failures = 0;
    static const char *const keys[] = {"error", "message", "requestId"};
    for (size_t i = 0; i < UNIT_LEN(json_rows); i++) {
        const struct json_row *r = &json_rows[i];
        const char *want[] = {r->code, r->message, r->request_id};
        char *text = fcgi_error_json(r->code, r->message, r->request_id);
        if (!text) {
            unit_fail(&failures, i, r->name, "NULL");
            continue;
        }
        for (const char *c = text; *c; c++)
            if ((unsigned char)*c < 0x20) {
                unit_fail(&failures, i, r->name, "raw control character 0x%02x in %s", (unsigned char)*c, text);
                break;
            }
        json_object *o = json_tokener_parse(text);
        if (!o || !json_object_is_type(o, json_type_object)) {
            unit_fail(&failures, i, r->name, "not a JSON object: %s", text);
        } else {
            if (json_object_object_length(o) != (int)UNIT_LEN(keys))
                unit_fail(&failures, i, r->name, "%d keys, want 3: %s", json_object_object_length(o), text);
            for (size_t k = 0; k < UNIT_LEN(keys); k++) {
                json_object *v = NULL;
                if (!json_object_object_get_ex(o, keys[k], &v) || !json_object_is_type(v, json_type_string))
                    unit_fail(&failures, i, r->name, "no string %s: %s", keys[k], text);
                else if (strcmp(json_object_get_string(v), want[k]) != 0)
                    unit_fail(&failures, i, r->name, "%s does not round-trip: %s", keys[k], text);
            }
        }
        json_object_put(o);
        free(text);
    }
    unit_done(failures);
}

/* ---- struct buf ---- */

enum buf_op { END = 0, APPEND, APPENDF, CONSUME, RESET, FREE };

struct buf_step {
    enum buf_op op;
    const char *arg;  /* APPEND: the bytes; APPENDF: "%s|%zu" of arg and n */
    size_t n;         /* APPEND: length; CONSUME: count; APPENDF: the number */
    int rc;           /* APPEND, APPENDF */
    const char *want; /* the whole content after the step; NULL: not checked */
    size_t want_len;
};

/* A literal with its length, NUL bytes included. */
#define W(s) s, sizeof(s) - 1

struct buf_row {
    const char *name;
    size_t max;
    struct buf_step steps[10];
};

static const struct buf_row buf_rows[] = {
    {"append up to max, then past it", 8,
     {{APPEND, "abcd", 4, 0, W("abcd")},
      {APPEND, "efgh", 4, 0, W("abcdefgh")},
      {APPEND, "i", 1, PROXY_ERR_TOO_LARGE, W("abcdefgh")},
      {APPEND, "", 0, 0, W("abcdefgh")},
      {APPENDF, "x", 1, PROXY_ERR_TOO_LARGE, W("abcdefgh")},
      {CONSUME, NULL, 3, 0, W("defgh")},
      {APPEND, "xyz", 3, 0, W("defghxyz")},
      {APPEND, "!", 1, PROXY_ERR_TOO_LARGE, W("defghxyz")}}},
    {"one large append past max", 4, {{APPEND, "abcde", 5, PROXY_ERR_TOO_LARGE, W("")}, {APPEND, "abcd", 4, 0, W("abcd")}}},
    {"huge length refused", 16, {{APPEND, "ab", 2, 0, W("ab")}, {APPEND, "c", SIZE_MAX, PROXY_ERR_TOO_LARGE, W("ab")}}},
    {"appendf", 16,
     {{APPENDF, "a", 1, 0, W("a|1")},
      {APPENDF, "bc", 22, 0, W("a|1bc|22")},
      {APPENDF, "12345678", 9, PROXY_ERR_TOO_LARGE, W("a|1bc|22")},
      {APPENDF, "123456", 7, 0, W("a|1bc|22123456|7")}}},
    {"consume", 32,
     {{APPEND, "hello world", 11, 0, W("hello world")},
      {CONSUME, NULL, 0, 0, W("hello world")},
      {CONSUME, NULL, 6, 0, W("world")},
      {CONSUME, NULL, 5, 0, W("")},
      {APPEND, "again", 5, 0, W("again")},
      {CONSUME, NULL, 100, 0, W("")}}},
    {"reset keeps working", 8,
     {{APPEND, "abcdefgh", 8, 0, W("abcdefgh")},
      {RESET, NULL, 0, 0, W("")},
      {APPEND, "12345678", 8, 0, W("12345678")},
      {RESET, NULL, 0, 0, W("")},
      {RESET, NULL, 0, 0, W("")}}},
    {"free then reuse", 8,
     {{APPEND, "abc", 3, 0, W("abc")},
      {FREE, NULL, 0, 0, W("")},
      {FREE, NULL, 0, 0, W("")},
      {APPEND, "12345678", 8, 0, W("12345678")},
      {APPEND, "9", 1, PROXY_ERR_TOO_LARGE, W("12345678")}}},
    {"max 0", 0, {{APPEND, "", 0, 0, W("")}, {APPEND, "a", 1, PROXY_ERR_TOO_LARGE, W("")}, {APPENDF, "", 0, PROXY_ERR_TOO_LARGE, W("")}}},
    {"binary bytes", 8, {{APPEND, "a\0b", 3, 0, W("a\0b")}, {CONSUME, NULL, 1, 0, W("\0b")}}},
    {"growth past the first allocation", 1024,
     {{APPEND, "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
               "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
               "01234567890123456789012345678901234567890123456789012345",
       256, 0, NULL, 0},
      {APPEND, "x", 1, 0, NULL, 0},
      {CONSUME, NULL, 250, 0, W("012345x")}}},
};

static void test_buf(void **state)
{
    (void)state;
    unsigned failures = 0;
    char got_esc[128], want_esc[128];
    for (size_t i = 0; i < UNIT_LEN(buf_rows); i++) {
        const struct buf_row *r = &buf_rows[i];
        struct buf b;
        buf_init(&b, r->max);
        for (size_t k = 0; k < UNIT_LEN(r->steps) && r->steps[k].op != END; k++) {
            const struct buf_step *s = &r->steps[k];
            int rc = 0;
            switch (s->op) {
            case APPEND: rc = buf_append(&b, s->arg, s->n); break;
            case APPENDF: rc = buf_appendf(&b, "%s|%zu", s->arg, s->n); break;
            case CONSUME: buf_consume(&b, s->n); break;
            case RESET: buf_reset(&b); break;
            case FREE:
                buf_free(&b);
                if (b.data || b.len)
                    unit_fail(&failures, i, r->name, "step %zu: not empty after free", k);
                break;
            case END: break;
            }
            if (rc != s->rc)
                unit_fail(&failures, i, r->name, "step %zu: returned %d, want %d", k, rc, s->rc);
            if (b.len > b.max)
                unit_fail(&failures, i, r->name, "step %zu: %zu bytes, past the maximum %zu", k, b.len, b.max);
            if (b.data && b.data[b.len] != '\0')
                unit_fail(&failures, i, r->name, "step %zu: not NUL-terminated", k);
            if (!s->want)
                continue;
            size_t wl = s->want_len;
            if (b.len != wl || (wl && memcmp(b.data, s->want, wl) != 0))
                unit_fail(&failures, i, r->name, "step %zu: holds \"%s\", want \"%s\"", k,
                          unit_escape(b.data, b.len, got_esc, sizeof got_esc),
                          unit_escape(s->want, wl, want_esc, sizeof want_esc));
        }
        buf_free(&b);
    }
    buf_free(NULL);
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_id_acceptable),
        cmocka_unit_test(test_header_value_acceptable),
        cmocka_unit_test(test_request_id_generate),
        cmocka_unit_test(test_status_reason),
        cmocka_unit_test(test_format_head),
        cmocka_unit_test(test_error_json),
        cmocka_unit_test(test_buf),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
