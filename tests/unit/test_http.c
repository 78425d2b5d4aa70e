/* test_http.c: reason phrases, header values and host names (core/http.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/http.h"
#include "unit.h"

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

/* ---- http_hostname_valid ---- */

static char label63[64], label64[65], name253[254], name254[255];

static int setup_names(void **state)
{
    (void)state;
    memset(label63, 'a', 63);
    memset(label64, 'a', 64);
    /* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 */
    snprintf(name253, sizeof name253, "%s.%s.%s.%.61s", label63, label63, label63, label63);
    snprintf(name254, sizeof name254, "%s.%s.%s.%.62s", label63, label63, label63, label63);
    return 0;
}

struct hostname_row {
    const char *name;
    bool ok;
};

static const struct hostname_row hostname_rows[] = {
    {"openova-flow.omantel.openova.io", true},
    {"sov-1.example", true},
    {"localhost", true},
    {"a", true},
    {"sov-1.example2", true},
    {"1sov.example", true}, /* a label may start with a digit (RFC 1123 2.1)... */
    {"1.2.3.4", false},     /* ...but not the last one: no IPv4 address in any form */
    {"169.254.169.254", false},
    {"2130706433", false},
    {"127.1", false},
    {"1.0x7f", false},
    {"a.1b", false},
    {"xn--bcher-kva.example", true},
    {"A.B.C", true},
    {label63, true},
    {label64, false},
    {name253, true},
    {name254, false},
    {"", false},
    {".", false},
    {"example.", false},
    {".example", false},
    {"a..b", false},
    {"-a.example", false},
    {"a-.example", false},
    {"a.-b", false},
    {"a_b.example", false},
    {"a/b", false},
    {"evil.example/path", false},
    {"user@evil.example", false},
    {"evil.example:443", false},
    {"evil%2eexample", false},
    {"evil.example?x", false},
    {"evil.example#x", false},
    {"evil example", false},
    {"evil.example\n", false},
    {"[::1]", false},
    {"caf\xc3\xa9.example", false},
};

static void test_hostname_valid(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(hostname_rows); i++) {
        const struct hostname_row *r = &hostname_rows[i];
        if (http_hostname_valid(r->name, strlen(r->name)) != r->ok)
            unit_fail(&failures, i, r->name, "%s, want %s", r->ok ? "refused" : "accepted",
                      r->ok ? "accepted" : "refused");
    }
    /* The length given is the name: a NUL inside it is no letter. */
    if (http_hostname_valid("a\0b", 3))
        unit_fail(&failures, 0, "NUL inside", "accepted");
    if (!http_hostname_valid("ab.example/x", 10))
        unit_fail(&failures, 0, "prefix of a longer text", "refused");
    unit_done(failures);
}

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_value_acceptable),
        cmocka_unit_test(test_status_reason),
        cmocka_unit_test_setup(test_hostname_valid, setup_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
