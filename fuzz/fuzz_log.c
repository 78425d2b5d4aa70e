/* fuzz_log.c: libFuzzer harness for log lines (core/log.c): any message and
 * field values (a user name from a header, an error from libcurl) give one
 * line that keeps its shape: in JSON it parses back with the same number of
 * keys, in logfmt it holds no raw control character and no stray quote. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <json-c/json.h>

#include "core/log.h"
#include "fuzz.h"

#define FIELDS 4

/* The input split at NUL bytes: msg, then up to FIELDS values. */
static size_t split(char *text, size_t len, const char **parts, size_t max)
{
    size_t n = 0;
    parts[n++] = text;
    for (size_t i = 0; i < len && n < max; i++)
        if (text[i] == '\0')
            parts[n++] = text + i + 1;
    return n;
}

/* Every quote of a logfmt line opens or closes a value, or is escaped. */
static void check_logfmt(const char *line, size_t len)
{
    CHECK(len > 0 && line[len - 1] == '\n');
    bool quoted = false;
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned char c = (unsigned char)line[i];
        CHECK(c >= ' ' && c != 0x7f);
        if (quoted && c == '\\') {
            i++;
            continue;
        }
        if (c == '"')
            quoted = !quoted;
    }
    CHECK(!quoted);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    const char *parts[FIELDS + 1];
    size_t n = split(text, size, parts, FIELDS + 1);
    static const char *const keys[FIELDS] = {"user", "client", "error", "end"};
    struct log_field fields[FIELDS];
    for (size_t i = 0; i < FIELDS; i++)
        fields[i] = (struct log_field)LOG_TEXT(keys[i], i + 1 < n ? parts[i + 1] : NULL);
    fields[FIELDS - 1] = (struct log_field)LOG_NUMBER("status", (long long)size);
    char line[16384];

    proxy_log_setup(PROXY_LOG_DEBUG, PROXY_LOG_LOGFMT);
    size_t len = proxy_log_format_line(line, sizeof line, 1796411443007LL, PROXY_LOG_INFO, "rid", parts[0], fields,
                                       FIELDS);
    CHECK(len == strlen(line));
    check_logfmt(line, len);

    proxy_log_setup(PROXY_LOG_DEBUG, PROXY_LOG_JSON);
    len = proxy_log_format_line(line, sizeof line, 1796411443007LL, PROXY_LOG_INFO, "rid", parts[0], fields, FIELDS);
    CHECK(len == strlen(line) && line[len - 1] == '\n');
    json_object *o = json_tokener_parse(line);
    CHECK(o != NULL);
    size_t present = 0;
    for (size_t i = 0; i < FIELDS; i++)
        present += fields[i].is_number || fields[i].text;
    CHECK((size_t)json_object_object_length(o) == 4 + present); /* time, level, rid, msg */
    json_object_put(o);
    free(text);
    return 0;
}
