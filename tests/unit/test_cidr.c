/* test_cidr.c: address ranges (core/cidr.c): what parses, what matches,
 * IPv4-mapped IPv6 addresses, and the text form. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "core/cidr.h"
#include "unit.h"

struct match_row {
    const char *list;
    const char *address;
    bool match;
};

static const struct match_row match_rows[] = {
    {"127.0.0.0/8,::1", "127.0.0.1", true},
    {"127.0.0.0/8,::1", "127.255.1.2", true},
    {"127.0.0.0/8,::1", "128.0.0.1", false},
    {"127.0.0.0/8,::1", "::1", true},
    {"127.0.0.0/8,::1", "::2", false},
    {"127.0.0.0/8,::1", "::ffff:127.0.0.1", true}, /* a dual-stack socket's view of IPv4 */
    {"127.0.0.0/8,::1", "::ffff:10.0.0.1", false},
    {"127.0.0.0/8,::1", "localhost", false},
    {"127.0.0.0/8,::1", "", false},
    {"127.0.0.0/8,::1", "127.0.0.1 ", false},
    {"10.1.2.3", "10.1.2.3", true},
    {"10.1.2.3", "10.1.2.4", false},
    {"10.0.0.0/9", "10.127.255.255", true},
    {"10.0.0.0/9", "10.128.0.0", false},
    {"0.0.0.0/0", "203.0.113.9", true},
    {"0.0.0.0/0", "2001:db8::1", false},
    {"::/0", "2001:db8::1", true},
    {"fd00::/8", "fd12:3456::1", true},
    {"fd00::/8", "fe80::1", false},
    {"2001:db8::/33", "2001:db8:7fff::1", true},
    {"2001:db8::/33", "2001:db8:8000::1", false},
    {"", "127.0.0.1", false},
    {" 192.168.0.0/16 , 10.0.0.0/8 ", "10.9.9.9", true},
};

static void test_cidr_match(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(match_rows); i++) {
        const struct match_row *r = &match_rows[i];
        struct cidr_list list;
        char err[128] = "";
        if (cidr_list_parse(r->list, &list, err, sizeof err) != PROXY_OK) {
            unit_fail(&failures, i, r->address, "%s refused: %s", r->list, err);
            continue;
        }
        if (cidr_list_match(&list, r->address) != r->match)
            unit_fail(&failures, i, r->address, "in %s: %d, want %d", r->list, !r->match, r->match);
        cidr_list_free(&list);
    }
    unit_done(failures);
}

struct parse_row {
    const char *list;
    const char *text; /* NULL: refused */
};

static const struct parse_row parse_rows[] = {
    {"127.0.0.0/8,::1", "127.0.0.0/8,::1/128"},
    {"10.0.0.1", "10.0.0.1/32"},
    {"10.0.0.0/0", "10.0.0.0/0"},
    {",,10.0.0.0/8,", "10.0.0.0/8"},
    {"", ""},
    {"10.0.0.0/33", NULL},
    {"::/129", NULL},
    {"10.0.0.0/", NULL},
    {"10.0.0.0/-1", NULL},
    {"10.0.0.0/8x", NULL},
    {"10.0.0", NULL},
    {"localhost", NULL},
    {"10.0.0.0/8,bad", NULL},
    {"/8", NULL},
};

static void test_cidr_parse(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(parse_rows); i++) {
        const struct parse_row *r = &parse_rows[i];
        struct cidr_list list;
        char err[128] = "", text[256];
        enum proxy_err rc = cidr_list_parse(r->list, &list, err, sizeof err);
        if (!r->text) {
            if (rc != PROXY_ERR_INVALID || !err[0] || list.items)
                unit_fail(&failures, i, r->list, "not refused with a sentence (%d: %s)", rc, err);
        } else if (rc != PROXY_OK) {
            unit_fail(&failures, i, r->list, "refused: %s", err);
        } else if (strcmp(cidr_list_text(&list, text, sizeof text), r->text) != 0) {
            unit_fail(&failures, i, r->list, "reads back as %s, want %s", text, r->text);
        }
        cidr_list_free(&list);
    }
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_match),
        cmocka_unit_test(test_cidr_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
