/* duration.c: Go's duration syntax to a signed count of nanoseconds (see
 * duration.h); pure, so unit tests and fuzzers feed it text directly. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/duration.h"

/* Go's range, an int64 count of nanoseconds, as a magnitude per sign. */
#define MAX_POSITIVE_NS ((uint64_t)INT64_MAX)
#define MAX_NEGATIVE_NS ((uint64_t)INT64_MAX + 1)

/* 10^18: eighteen fraction digits fit a uint64 with room for one more
 * multiplication by 10; later digits are worth less than a nanosecond even
 * of an hour, so they are read and ignored. */
#define MAX_FRACTION_SCALE UINT64_C(1000000000000000000)

struct duration_unit {
    const char *name;
    uint64_t ns;
};

static const struct duration_unit duration_units[] = {
    {"ns", 1},
    {"us", 1000},
    {"\xc2\xb5s", 1000}, /* U+00B5 micro sign, as Go accepts */
    {"\xce\xbcs", 1000}, /* U+03BC greek mu, as Go accepts */
    {"ms", 1000000},
    {"s", 1000000000},
    {"m", 60000000000},
    {"h", 3600000000000},
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The longest unit name p starts with, so that "ms" is not read as "m"
 * followed by "s"; NULL when none. */
static const struct duration_unit *match_unit(const char *p, size_t *len)
{
    const struct duration_unit *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++) {
        size_t n = strlen(duration_units[i].name);
        if (n > best_len && strncmp(p, duration_units[i].name, n) == 0) {
            best = &duration_units[i];
            best_len = n;
        }
    }
    *len = best_len;
    return best;
}

/* One term at p, such as "1.5h": adds its nanoseconds to *total, which may
 * not pass limit. Returns the text after the term, or NULL when p holds no
 * term or the sum would pass limit. */
static const char *parse_term(const char *p, uint64_t limit, uint64_t *total)
{
    uint64_t whole = 0, frac = 0, scale = 1;
    bool digits = false;
    while (is_digit(*p)) {
        if (whole > (UINT64_MAX - 9) / 10)
            return NULL; /* past uint64, so past any limit */
        whole = whole * 10 + (uint64_t)(*p++ - '0');
        digits = true;
    }
    if (*p == '.') {
        for (p++; is_digit(*p); p++) {
            if (scale < MAX_FRACTION_SCALE) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                scale *= 10;
            }
            digits = true;
        }
    }
    if (!digits)
        return NULL;
    size_t len;
    const struct duration_unit *unit = match_unit(p, &len);
    if (!unit || whole > limit / unit->ns)
        return NULL;
    /* The fraction of this term's unit, so "1.5h" is exact. long double
     * holds frac * unit->ns (below 10^18 * 3.6e12); the quotient is below
     * unit->ns, so with whole * unit->ns <= limit the sum fits a uint64. */
    uint64_t ns = whole * unit->ns +
                  (uint64_t)((long double)frac * (long double)unit->ns / (long double)scale);
    if (ns > limit - *total)
        return NULL;
    *total += ns;
    return p + len;
}

enum proxy_err duration_parse(const char *text, int64_t *ns)
{
    if (!text)
        return PROXY_ERR_INVALID;
    const char *p = text;
    bool negative = false;
    if (*p == '+' || *p == '-')
        negative = *p++ == '-';
    if (strcmp(p, "0") == 0) {
        *ns = 0;
        return PROXY_OK;
    }
    if (!*p)
        return PROXY_ERR_INVALID;
    uint64_t limit = negative ? MAX_NEGATIVE_NS : MAX_POSITIVE_NS;
    uint64_t total = 0;
    while (*p) {
        p = parse_term(p, limit, &total);
        if (!p)
            return PROXY_ERR_INVALID;
    }
    if (!negative)
        *ns = (int64_t)total;
    else
        *ns = total == MAX_NEGATIVE_NS ? INT64_MIN : -(int64_t)total;
    return PROXY_OK;
}
