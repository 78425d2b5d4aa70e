/* fuzz_duration.c: libFuzzer harness for Go-style duration parsing: the
 * parser (duration_parse: sign symmetry) and the settings' milliseconds
 * (config_duration_ms: sign, range and a round trip through "<n>ms"). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/duration.h"
#include "fuzz.h"


/* The largest whole number of milliseconds inside Go's limit, an int64 count
 * of nanoseconds. A longer duration rounds up to a millisecond count whose
 * own "<n>ms" is past that limit, so its round trip is not expected. */
#define MAX_EXACT_MS (INT64_MAX / 1000000)

static enum proxy_err parse(const char *text, long *ms)
{
    *ms = -12345; /* a success that does not set *ms fails the ms >= 0 check */
    return config_duration_ms(text, ms);
}

/* The nanoseconds agree with the milliseconds: a refusal of the parser is
 * one of the settings too, and a success is rounded up from them. */
static void check_ns(const char *input, enum proxy_err ms_rc, long ms)
{
    int64_t ns = -12345;
    enum proxy_err rc = duration_parse(input, &ns);
    CHECK(rc == PROXY_OK || rc == PROXY_ERR_INVALID);
    if (rc != PROXY_OK) {
        CHECK(ms_rc == PROXY_ERR_INVALID && ns == -12345);
        return;
    }
    if (ns < 0)
        CHECK(ms_rc == PROXY_ERR_INVALID);
    else
        CHECK(ms_rc == PROXY_OK && ms == ns / 1000000 + (ns % 1000000 != 0));
}

/* Input: the duration text; a NUL byte ends it, as in an environment. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 2); /* room for a sign in front */
    if (!text)
        return 0;
    memcpy(text + 1, data, size);
    text[size + 1] = '\0';
    const char *input = text + 1;

    long ms;
    enum proxy_err rc = parse(input, &ms);
    CHECK(rc == PROXY_OK || rc == PROXY_ERR_INVALID);
    check_ns(input, rc, ms);
    if (rc == PROXY_OK) {
        CHECK(ms >= 0);

        char canonical[32];
        snprintf(canonical, sizeof canonical, "%ldms", ms);
        long again;
        enum proxy_err again_rc = parse(canonical, &again);
        if (ms <= MAX_EXACT_MS)
            CHECK(again_rc == PROXY_OK && again == ms);
        else
            CHECK(again_rc == PROXY_ERR_INVALID);

        /* An explicit sign: "+" changes nothing, "-" only ever passes for 0. */
        if (*input != '+' && *input != '-') {
            text[0] = '+';
            CHECK(parse(text, &again) == PROXY_OK && again == ms);
            text[0] = '-';
            rc = parse(text, &again);
            CHECK(ms == 0 ? rc == PROXY_OK && again == 0 : rc == PROXY_ERR_INVALID);
        }
    }

    /* The parser's sign: "-" negates what the unsigned text gives, exactly,
     * since Go's range reaches one further below 0 than above. */
    int64_t ns, negated;
    if (*input != '+' && *input != '-' && duration_parse(input, &ns) == PROXY_OK) {
        text[0] = '-';
        CHECK(duration_parse(text, &negated) == PROXY_OK && negated == -ns);
    }

    /* As in Go, a number without a unit is a duration only when it is "0". */
    if (input[0] && strspn(input, "0123456789") == strlen(input))
        CHECK((parse(input, &ms) == PROXY_OK) == (strcmp(input, "0") == 0));
    free(text);
    return 0;
}
