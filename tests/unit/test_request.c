/* test_request.c: request ids and the bound on request headers (fcgi/request.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi/request.h"
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_id_acceptable),
        cmocka_unit_test(test_request_id_generate),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
