/* fuzz_headers.c: libFuzzer harness for response header filtering
 * (upstream_filter_headers) and the request's header checks (request.h). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/http.h"
#include "fcgi/request.h"
#include "handlers/upstream.h"
#include "fuzz.h"


/* Restated from upstream.h's contract rather than shared with upstream.c, so
 * that a name dropped from its tables shows up here. */
static const char *const dropped[] = {
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "TE",
    "Trailer", "Transfer-Encoding", "Upgrade", "Set-Cookie", "Status", "X-Sendfile", "X-Sendfile2",
    "X-Request-ID", "X-Fuzz-Drop", NULL,
};
static const char *const dropped_prefixes[] = {"X-Accel-", "X-LIGHTTPD-", NULL};
static const char *const drop_also[] = {"X-Fuzz-Drop", NULL};

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* The comma/space separated names of raw's well-formed Connection lines
 * (RFC 9110 7.6.1), gathered once per input. */
struct token_list {
    size_t count;
    const uint8_t **name;
    size_t *len;
};

static void collect_connection_names(const uint8_t *raw, size_t len, struct token_list *t)
{
    /* A name takes at least two bytes of raw (itself and a separator). */
    t->count = 0;
    t->name = malloc((len / 2 + 1) * sizeof *t->name);
    t->len = malloc((len / 2 + 1) * sizeof *t->len);
    CHECK(t->name && t->len);
    size_t pos = 0;
    while (pos < len) {
        const uint8_t *line = raw + pos;
        const uint8_t *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + 1;
        if (n && line[n - 1] == '\r')
            n--;
        if (n < 11 || strncasecmp((const char *)line, "Connection:", 11) != 0)
            continue;
        bool clean = true;
        for (size_t i = 11; i < n; i++)
            if (is_ctl(line[i]) && line[i] != '\t')
                clean = false; /* such a line is dropped whole, its list unread */
        if (!clean)
            continue;
        for (size_t i = 11; i < n;) {
            while (i < n && (line[i] == ',' || line[i] == ' ' || line[i] == '\t'))
                i++;
            size_t start = i;
            while (i < n && line[i] != ',' && line[i] != ' ' && line[i] != '\t')
                i++;
            if (i > start) {
                t->name[t->count] = line + start;
                t->len[t->count++] = i - start;
            }
        }
    }
}

static bool listed(const struct token_list *t, const char *name, size_t name_len)
{
    for (size_t i = 0; i < t->count; i++)
        if (t->len[i] == name_len && strncasecmp((const char *)t->name[i], name, name_len) == 0)
            return true;
    return false;
}

static size_t count_lines(const uint8_t *raw, size_t len)
{
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += raw[i] == '\n';
    return lines + (len && raw[len - 1] != '\n');
}

/* out must be "Name: value\r\n" or "Name:\r\n" lines only, with none of the
 * dropped names and no byte that could end or split a line downstream. */
static void check_output(const uint8_t *raw, size_t raw_len, const char *out, size_t len)
{
    struct token_list connection;
    collect_connection_names(raw, raw_len, &connection);
    size_t pos = 0, lines = 0;
    while (pos < len) {
        const char *line = out + pos;
        const char *crlf = NULL;
        for (size_t i = 0; i + 1 < len - pos; i++)
            if (line[i] == '\r' && line[i + 1] == '\n') {
                crlf = line + i;
                break;
            }
        CHECK(crlf != NULL); /* every line ends with CRLF */
        size_t n = (size_t)(crlf - line);
        pos += n + 2;
        lines++;

        size_t name_len = 0;
        while (name_len < n && is_tchar((unsigned char)line[name_len]))
            name_len++;
        CHECK(name_len > 0 && name_len < n && line[name_len] == ':');
        const char *value = line + name_len + 1;
        size_t value_len = n - name_len - 1;
        if (value_len) {
            /* One space, then a value trimmed of spaces and tabs at both ends. */
            CHECK(value[0] == ' ' && value_len >= 2);
            value++, value_len--;
            CHECK(value[0] != ' ' && value[0] != '\t');
            CHECK(value[value_len - 1] != ' ' && value[value_len - 1] != '\t');
        }
        for (size_t i = 0; i < value_len; i++) /* HTAB is field content (RFC 9110 5.5); nothing else is */
            CHECK(!is_ctl((unsigned char)value[i]) || value[i] == '\t');

        for (size_t i = 0; dropped[i]; i++)
            CHECK(!(strlen(dropped[i]) == name_len && strncasecmp(dropped[i], line, name_len) == 0));
        for (size_t i = 0; dropped_prefixes[i]; i++)
            CHECK(!(name_len >= strlen(dropped_prefixes[i]) &&
                    strncasecmp(dropped_prefixes[i], line, strlen(dropped_prefixes[i])) == 0));
        CHECK(!listed(&connection, line, name_len));
    }
    CHECK(lines <= count_lines(raw, raw_len)); /* lines are dropped or kept, never made up */
    free(connection.name);
    free(connection.len);
}

static bool has_obs_fold(const uint8_t *raw, size_t len)
{
    if (len && (raw[0] == ' ' || raw[0] == '\t'))
        return true;
    for (size_t i = 0; i + 1 < len; i++)
        if (raw[i] == '\n' && (raw[i + 1] == ' ' || raw[i + 1] == '\t'))
            return true;
    return false;
}

/* http_value_acceptable's contract, restated. */
static bool reference_value_acceptable(const char *v, size_t max)
{
    size_t n = strlen(v);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e)
            return false;
    return true;
}

static void check_value_checks(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return;
    memcpy(text, data, size);
    text[size] = '\0';
    static const size_t maxes[] = {1, 16, FCGI_REQUEST_ID_MAX, FCGI_LAST_EVENT_ID_MAX};
    for (size_t i = 0; i < sizeof maxes / sizeof maxes[0]; i++)
        CHECK(http_value_acceptable(text, maxes[i]) == reference_value_acceptable(text, maxes[i]));
    CHECK(http_value_acceptable(text, size + 1) == reference_value_acceptable(text, size + 1));
    bool id_ok = reference_value_acceptable(text, FCGI_REQUEST_ID_MAX) && !strchr(text, ' ');
    CHECK(fcgi_request_id_acceptable(text) == id_ok);
    free(text);
}

/* fcgi_request_headers_acceptable on the input's lines as FastCGI
 * parameters ("NAME=value"): checked against what either reading of "all of
 * them together" (values, or whole parameters) must answer. */
static void check_request_headers(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    char **envp = calloc(size / 2 + 2, sizeof *envp); /* a line per two bytes at most, and the NULL */
    if (!text || !envp)
        goto out;
    memcpy(text, data, size);
    text[size] = '\0';
    size_t n = 0;
    for (char *p = text; p < text + size;) {
        char *nl = memchr(p, '\n', (size_t)(text + size - p));
        if (nl)
            *nl = '\0';
        if (*p)
            envp[n++] = p;
        if (!nl)
            break;
        p = nl + 1;
    }
    envp[n] = NULL;

    size_t longest_value = 0, values = 0, params = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(envp[i], "HTTP_", 5) != 0)
            continue;
        const char *eq = strchr(envp[i], '=');
        size_t value_len = eq ? strlen(eq + 1) : 0;
        if (value_len > longest_value)
            longest_value = value_len;
        values += value_len;
        params += strlen(envp[i]);
    }
    static const size_t limits[][2] = {{0, 0}, {4, 16}, {16, 64}, {64, 1024}, {SIZE_MAX, SIZE_MAX}};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        size_t max_value = limits[i][0], max_total = limits[i][1];
        bool ok = fcgi_request_headers_acceptable(envp, max_value, max_total);
        if (longest_value > max_value || values > max_total)
            CHECK(!ok);
        if (longest_value <= max_value && params <= max_total)
            CHECK(ok);
    }
    CHECK(fcgi_request_headers_acceptable(NULL, 0, 0));
out:
    free(envp);
    free(text);
}

/* Input: one upstream response's header block, status line removed. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *raw = (const char *)data;

    struct buf out;
    buf_init(&out, UPSTREAM_MAX_HEADER_BYTES);
    enum proxy_err rc = upstream_filter_headers(raw, size, drop_also, &out);
    CHECK(rc == PROXY_OK || rc == PROXY_ERR_TOO_LARGE || rc == PROXY_ERR_NOMEM || rc == PROXY_ERR_UPSTREAM_PROTOCOL);
    CHECK((rc == PROXY_ERR_UPSTREAM_PROTOCOL) == has_obs_fold(data, size));
    CHECK(out.len <= out.max);
    if (rc == 0)
        check_output(data, size, out.data ? out.data : "", out.len);

    /* A smaller bound: all of the same output, or a failure that kept to the
     * bound and wrote a prefix of it. */
    if (rc == 0) {
        struct buf small;
        buf_init(&small, out.len / 2);
        enum proxy_err small_rc = upstream_filter_headers(raw, size, drop_also, &small);
        CHECK(small.len <= small.max);
        if (out.len <= small.max) {
            CHECK(small_rc == 0 && small.len == out.len);
        } else {
            CHECK(small_rc == PROXY_ERR_TOO_LARGE);
        }
        CHECK(small.len == 0 || memcmp(small.data, out.data, small.len) == 0);
        buf_free(&small);
    }
    buf_free(&out);

    check_value_checks(data, size);
    check_request_headers(data, size);
    return 0;
}
