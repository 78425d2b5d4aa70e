/* test_response.c: response heads and the proxy's JSON error bodies (fcgi/response.c). */
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
#include "fcgi/response.h"
#include "unit.h"

/* ---- fcgi_response_format_head ---- */

struct head_row {
    const char *name;
    size_t max;          /* the output buffer's maximum */
    const char *before;  /* already in the buffer */
    int status;
    const char *request_id;
    const char *extra;
    size_t extra_len;    /* SIZE_MAX: strlen(extra) */
    enum proxy_err rc;
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
        enum proxy_err rc = fcgi_response_format_head(&out, r->status, r->request_id, r->extra, extra_len);
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
        char *text = fcgi_response_error_json(r->code, r->message, r->request_id);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_head),
        cmocka_unit_test(test_error_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
