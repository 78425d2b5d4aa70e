/* test_duration.c: Go's duration syntax to nanoseconds (core/duration.h):
 * units, fractions, signs, Go's int64 range, and what is not a duration. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <string.h>

#include "core/duration.h"
#include "unit.h"

/* Texts Go's time.ParseDuration accepts, and the nanoseconds it gives. */
static const struct {
    const char *text;
    int64_t ns;
} accepted[] = {
    /* zero, the one number that needs no unit, with either sign */
    {"0", 0}, {"+0", 0}, {"-0", 0}, {"0s", 0}, {"-0s", 0},
    /* each unit; the micro sign in both of its code points, as Go */
    {"1ns", 1}, {"1us", 1000}, {"1\xc2\xb5s", 1000}, {"1\xce\xbcs", 1000},
    {"1ms", 1000000}, {"1s", 1000000000}, {"1m", 60000000000}, {"1h", 3600000000000},
    /* terms add up, in any order, a unit again or not */
    {"1h1m1s1ms1us1ns", 3661001001001}, {"1s1s", 2000000000}, {"1ns1h", 3600000000001},
    /* a fraction is of its own term's unit, truncated to a nanosecond */
    {"1.5h", 5400000000000}, {".5s", 500000000}, {"1.s", 1000000000}, {"0.000000001s", 1},
    {"0.0000000009s", 0}, {"1.9ns", 1}, {"1.0000000000000000000001s", 1000000000},
    /* one sign, for the whole duration */
    {"+5s", 5000000000}, {"-5s", -5000000000}, {"-1.5h", -5400000000000}, {"-1m30s", -90000000000},
    /* Go's range: an int64, one further below 0 than above */
    {"9223372036854775807ns", INT64_MAX}, {"2562047h47m16.854775807s", INT64_MAX},
    {"-9223372036854775808ns", INT64_MIN}, {"-2562047h47m16.854775808s", INT64_MIN},
};

/* Texts that are not durations, or are past Go's range. */
static const char *const refused[] = {
    "", "+", "-", "--1s", "+-1s", "1h-1m", " 1s", "1s ", "1 s",      /* signs and spaces */
    "10", "00", "-10", "1m5", "s", ".s", ".", "1.", "1s.", "1e3s", "1,5s", /* numbers without units */
    "5x", "5S", "5sec", "1hh", "5d", "1\xc2s",                           /* unknown units */
    "9223372036854775808ns", "2562047h47m16.854775808s", "-9223372036854775809ns", /* just past the range */
    "2562048h", "18446744073709551616ns", "99999999999999999999h",      /* far past it */
};

#define UNTOUCHED INT64_C(-12345)

static void test_accepted(void **state)
{
    (void)state;
    unsigned failures = 0;
    char esc[128];
    for (size_t i = 0; i < UNIT_LEN(accepted); i++) {
        int64_t ns = UNTOUCHED;
        if (duration_parse(accepted[i].text, &ns) != PROXY_OK || ns != accepted[i].ns)
            unit_fail(&failures, i, unit_escape(accepted[i].text, strlen(accepted[i].text), esc, sizeof esc),
                      "gave %" PRId64 " ns, want %" PRId64, ns, accepted[i].ns);
    }
    unit_done(failures);
}

static void test_refused(void **state)
{
    (void)state;
    unsigned failures = 0;
    char esc[128];
    for (size_t i = 0; i <= UNIT_LEN(refused); i++) {
        const char *text = i < UNIT_LEN(refused) ? refused[i] : NULL; /* and NULL last */
        int64_t ns = UNTOUCHED;
        enum proxy_err rc = duration_parse(text, &ns);
        if (rc != PROXY_ERR_INVALID || ns != UNTOUCHED)
            unit_fail(&failures, i, text ? unit_escape(text, strlen(text), esc, sizeof esc) : "NULL",
                      "returned %d with %" PRId64 " ns, want a refusal that leaves ns alone", rc, ns);
    }
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
