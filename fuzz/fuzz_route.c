/* fuzz_route.c: libFuzzer harness for request-line routing (route_lookup)
 * and deployment id checks (route_id_valid), checked against their contracts. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>

#include "handlers/route.h"
#include "fuzz.h"


/* The bases config_load can produce: "" for "/", or a path without a
 * trailing slash. */
static const char *const bases[] = {"", "/api/v1/flows"};
static const char *const methods[] = {"GET", "POST", "HEAD", "get", "DELETE"};

/* Written apart from route.c: the id rule of route.h, restated. */
static int reference_hex(char c)
{
    static const char digits[] = "0123456789abcdef";
    char lower = (char)tolower((unsigned char)c);
    const char *at = lower ? memchr(digits, lower, sizeof digits - 1) : NULL;
    return at ? (int)(at - digits) : -1;
}

/* The id route.h promises for raw: every %XX decoded. Returns its length,
 * or -1 for a malformed escape. */
static long reference_decode(const char *raw, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (raw[i] != '%') {
            out[n++] = raw[i];
            continue;
        }
        if (len - i < 3 || reference_hex(raw[i + 1]) < 0 || reference_hex(raw[i + 2]) < 0)
            return -1;
        out[n++] = (char)(reference_hex(raw[i + 1]) * 16 + reference_hex(raw[i + 2]));
        i += 2;
    }
    return (long)n;
}

static bool reference_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > ROUTE_ID_MAX)
        return false;
    if ((len == 1 && id[0] == '.') || (len == 2 && memcmp(id, "..", 2) == 0))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-", id[i]) || !id[i])
            return false;
    return true;
}

static void check_match(const char *base, const char *method, const char *uri)
{
    struct route_match m;
    memset(&m, 0xa5, sizeof m); /* the function must set what it promises, not rely on zeroes */
    enum route_result r = route_lookup(base, method, uri, &m);
    /* ROUTE_HEADERS_TOO_LARGE is the dispatcher's alone. */
    CHECK(r == ROUTE_OK || r == ROUTE_NOT_FOUND || r == ROUTE_BAD_METHOD ||
          r == ROUTE_ID_REQUIRED || r == ROUTE_ID_INVALID || r == ROUTE_URI_TOO_LONG);

    size_t path_len = strcspn(uri, "?#");
    CHECK((r == ROUTE_URI_TOO_LONG) == (path_len > ROUTE_PATH_MAX));
    /* After the id: "/suffix", or nothing for the purge's {base}/{id}. */
    size_t tail_len = 0;
    if (r == ROUTE_OK || r == ROUTE_BAD_METHOD || r == ROUTE_ID_REQUIRED || r == ROUTE_ID_INVALID) {
        CHECK(m.entry != NULL);
        tail_len = m.entry->suffix[0] ? strlen(m.entry->suffix) + 1 : 0;
    }
    if (r == ROUTE_ID_INVALID) {
        /* Refused only when the decoded id is not valid, or an escape is malformed. */
        size_t base_len = strlen(base);
        size_t raw_len = path_len - base_len - 1 - tail_len;
        char decoded[ROUTE_PATH_MAX];
        long n = reference_decode(uri + base_len + 1, raw_len, decoded);
        CHECK(n < 0 || !reference_id_valid(decoded, (size_t)n));
    }
    if (r == ROUTE_OK || r == ROUTE_BAD_METHOD || r == ROUTE_ID_REQUIRED ||
        r == ROUTE_ID_INVALID) {
        /* A known route: its suffix is the last segment of the path, below base. */
        CHECK(m.entry != NULL);
        const char *allow = m.entry->method;
        CHECK(allow != NULL && *allow);
        size_t base_len = strlen(base), suffix_len = strlen(m.entry->suffix);
        CHECK(strncmp(uri, base, base_len) == 0 && uri[base_len] == '/');
        CHECK(path_len > base_len + suffix_len);
        CHECK(memcmp(uri + path_len - suffix_len, m.entry->suffix, suffix_len) == 0);
        if (suffix_len)
            CHECK(uri[path_len - suffix_len - 1] == '/');
        else /* {base}/{id}: one segment */
            CHECK(memchr(uri + base_len + 1, '/', path_len - base_len - 1) == NULL);
        CHECK((strcmp(m.entry->method, method) == 0) == (r != ROUTE_BAD_METHOD));
    }
    if (r == ROUTE_OK) {
        size_t id_len = strnlen(m.id, sizeof m.id);
        CHECK(id_len < sizeof m.id);
        CHECK(route_id_valid(m.id, id_len));
        /* The id is what stands between base/ and /suffix, decoded. */
        size_t base_len = strlen(base);
        size_t raw_len = path_len - base_len - 1 - tail_len;
        char decoded[ROUTE_PATH_MAX];
        CHECK(reference_decode(uri + base_len + 1, raw_len, decoded) == (long)id_len);
        CHECK(memcmp(decoded, m.id, id_len) == 0);
    }

    /* Pure: the same question gets the same answer. */
    struct route_match again;
    CHECK(route_lookup(base, method, uri, &again) == r);
    if (r == ROUTE_OK)
        CHECK(again.entry == m.entry && strcmp(again.id, m.id) == 0);
}

/* Input: a selector byte, then either the request URI (base and method from
 * the fixed tables), or, when the selector's top bit is set, "base\0method\0uri". */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CHECK(route_id_valid((const char *)data, size) == reference_id_valid((const char *)data, size));
    if (size == 0)
        return 0;

    char *text = malloc(size); /* the bytes after the selector, NUL-terminated */
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    unsigned sel = data[0];

    if (sel & 0x80) {
        const char *fields[3] = {"", "", ""};
        size_t at = 0;
        for (int f = 0; f < 3 && at < size; f++) {
            fields[f] = text + at;
            at += strlen(text + at) + 1;
        }
        check_match(fields[0], fields[1], fields[2]);
    } else {
        check_match(bases[sel & 1], methods[(sel >> 1) & 3], text);
    }

    struct route_match m;
    CHECK(route_lookup("", NULL, text, &m) == ROUTE_NOT_FOUND && m.entry == NULL);
    CHECK(route_lookup("", "GET", NULL, &m) == ROUTE_NOT_FOUND && m.entry == NULL);
    free(text);
    return 0;
}
