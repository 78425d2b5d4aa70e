/* fuzz_duration.c: libFuzzer harness for Go-style duration parsing
 * (duration_parse_ms): sign, range and a round trip through "<n>ms". */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "fuzz.h"


/* The largest whole number of milliseconds inside Go's limit, an int64 count
 * of nanoseconds. A longer duration rounds up to a millisecond count whose
 * own "<n>ms" is past that limit, so its round trip is not expected. */
#define MAX_EXACT_MS (INT64_MAX / 1000000)

static int parse(const char *text, long *ms)
{
    *ms = -12345; /* a success that does not set *ms fails the ms >= 0 check */
    return duration_parse_ms(text, ms);
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
    int rc = parse(input, &ms);
    CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        CHECK(ms >= 0);

        char canonical[32];
        snprintf(canonical, sizeof canonical, "%ldms", ms);
        long again;
        int again_rc = parse(canonical, &again);
        if (ms <= MAX_EXACT_MS)
            CHECK(again_rc == 0 && again == ms);
        else
            CHECK(again_rc == -1);

        /* An explicit sign: "+" changes nothing, "-" only ever passes for 0. */
        if (*input != '+' && *input != '-') {
            text[0] = '+';
            CHECK(parse(text, &again) == 0 && again == ms);
            text[0] = '-';
            rc = parse(text, &again);
            CHECK(ms == 0 ? rc == 0 && again == 0 : rc == -1);
        }
    }

    /* As in Go, a number without a unit is a duration only when it is "0". */
    if (input[0] && strspn(input, "0123456789") == strlen(input))
        CHECK((parse(input, &ms) == 0) == (strcmp(input, "0") == 0));
    free(text);
    return 0;
}
