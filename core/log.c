/* log.c: line-atomic logging to stderr in logfmt or JSON (json-c). */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/log.h"

/* The format is set once before threads start; the level may change at
 * run time (SIGHUP), so every thread reads it atomically. */
static atomic_int lowest_level = PROXY_LOG_INFO;
static enum proxy_log_format line_format = PROXY_LOG_LOGFMT;

/* A value is cut here: a line stays one write(2) that a pipe takes whole. */
#define LOG_VALUE_MAX 512
#define LOG_LINE_MAX 8192

static const char *const level_names[] = {
    [PROXY_LOG_DEBUG] = "debug", [PROXY_LOG_INFO] = "info", [PROXY_LOG_WARN] = "warn", [PROXY_LOG_ERROR] = "error"};
static const char *const format_names[] = {[PROXY_LOG_LOGFMT] = "logfmt", [PROXY_LOG_JSON] = "json"};

void proxy_log_setup(enum proxy_log_level lowest, enum proxy_log_format format)
{
    atomic_store(&lowest_level, (int)lowest);
    line_format = format;
}

void proxy_log_set_level(enum proxy_log_level lowest)
{
    atomic_store(&lowest_level, (int)lowest);
}

bool proxy_log_enabled(enum proxy_log_level level)
{
    return (int)level >= atomic_load_explicit(&lowest_level, memory_order_relaxed);
}

const char *proxy_log_level_name(enum proxy_log_level level)
{
    return (size_t)level < sizeof level_names / sizeof level_names[0] ? level_names[level] : "info";
}

const char *proxy_log_format_name(enum proxy_log_format format)
{
    return (size_t)format < sizeof format_names / sizeof format_names[0] ? format_names[format] : "logfmt";
}

int proxy_log_level_parse(const char *text, enum proxy_log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcmp(text, level_names[i]) == 0) {
            *out = (enum proxy_log_level)i;
            return 0;
        }
    return -1;
}

int proxy_log_format_parse(const char *text, enum proxy_log_format *out)
{
    for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++)
        if (strcmp(text, format_names[i]) == 0) {
            *out = (enum proxy_log_format)i;
            return 0;
        }
    return -1;
}

/* ---- values ---- */

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || len > n || (len == 2 && s[0] < 0xc2))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* value as valid UTF-8 of at most LOG_VALUE_MAX bytes into out: invalid
 * bytes become '?' (a user name from a header is not trusted to be text),
 * and a cut never splits a character. */
static void clean_value(const char *value, char *out)
{
    const unsigned char *s = (const unsigned char *)value;
    size_t n = strlen(value), used = 0;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_sequence(s + i, n - i);
        if (used + (len ? len : 1) > LOG_VALUE_MAX - 1)
            break;
        if (!len) {
            out[used++] = '?';
            i++;
            continue;
        }
        memcpy(out + used, s + i, len);
        used += len;
        i += len;
    }
    out[used] = '\0';
}

/* ---- logfmt ---- */

struct line {
    char *data;
    size_t cap, len;
};

static void put(struct line *l, const char *s, size_t n)
{
    if (n > l->cap - 1 - l->len)
        n = l->cap - 1 - l->len;
    memcpy(l->data + l->len, s, n);
    l->len += n;
}

static void put_text(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

static bool needs_quotes(const char *v)
{
    if (!*v)
        return true;
    for (const unsigned char *c = (const unsigned char *)v; *c; c++)
        if (*c <= ' ' || *c == '=' || *c == '"' || *c == '\\' || *c == 0x7f)
            return true;
    return false;
}

static void put_quoted(struct line *l, const char *v)
{
    put(l, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\')
            snprintf(esc, sizeof esc, "\\%c", *c);
        else if (*c == '\n')
            snprintf(esc, sizeof esc, "\\n");
        else if (*c == '\t')
            snprintf(esc, sizeof esc, "\\t");
        else if (*c == '\r')
            snprintf(esc, sizeof esc, "\\r");
        else if (*c < ' ' || *c == 0x7f)
            snprintf(esc, sizeof esc, "\\u%04x", *c);
        else {
            put(l, (const char *)c, 1);
            continue;
        }
        put_text(l, esc);
    }
    put(l, "\"", 1);
}

static void put_pair(struct line *l, const char *key, const char *value)
{
    char clean[LOG_VALUE_MAX];
    clean_value(value, clean);
    if (l->len)
        put(l, " ", 1);
    put_text(l, key);
    put(l, "=", 1);
    if (needs_quotes(clean))
        put_quoted(l, clean);
    else
        put_text(l, clean);
}

static void logfmt_line(struct line *l, const char *time_text, enum proxy_log_level level, const char *rid,
                        const char *msg, const struct log_field *fields, size_t count)
{
    put_pair(l, "time", time_text);
    put_pair(l, "level", proxy_log_level_name(level));
    if (rid)
        put_pair(l, "rid", rid);
    put_pair(l, "msg", msg);
    for (size_t i = 0; i < count; i++) {
        char number[32];
        if (fields[i].is_number)
            snprintf(number, sizeof number, "%lld", fields[i].number);
        else if (!fields[i].text)
            continue;
        put_pair(l, fields[i].key, fields[i].is_number ? number : fields[i].text);
    }
}

/* ---- JSON ---- */

static void json_add_text(json_object *o, const char *key, const char *value)
{
    char clean[LOG_VALUE_MAX];
    clean_value(value, clean);
    json_object_object_add(o, key, json_object_new_string(clean));
}

static void json_line(struct line *l, const char *time_text, enum proxy_log_level level, const char *rid,
                      const char *msg, const struct log_field *fields, size_t count)
{
    json_object *o = json_object_new_object();
    if (!o)
        return;
    json_add_text(o, "time", time_text);
    json_add_text(o, "level", proxy_log_level_name(level));
    if (rid)
        json_add_text(o, "rid", rid);
    json_add_text(o, "msg", msg);
    for (size_t i = 0; i < count; i++) {
        if (fields[i].is_number)
            json_object_object_add(o, fields[i].key, json_object_new_int64(fields[i].number));
        else if (fields[i].text)
            json_add_text(o, fields[i].key, fields[i].text);
    }
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t n = text ? strlen(text) : 0;
    /* A JSON line cut in the middle would not parse: drop it whole instead. */
    if (n < l->cap - 1)
        put(l, text, n);
    json_object_put(o);
}

/* ---- lines ---- */

static void format_time(long long unix_ms, char *out, size_t outlen)
{
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char whole[32];
    strftime(whole, sizeof whole, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%03dZ", whole, (int)(unix_ms % 1000));
}

size_t proxy_log_format_line(char *out, size_t outlen, long long unix_ms, enum proxy_log_level level,
                             const char *rid, const char *msg, const struct log_field *fields, size_t count)
{
    if (outlen < 2)
        return 0;
    char time_text[40];
    format_time(unix_ms, time_text, sizeof time_text);
    struct line l = {.data = out, .cap = outlen - 1}; /* room for the newline */
    if (line_format == PROXY_LOG_JSON)
        json_line(&l, time_text, level, rid, msg, fields, count);
    else
        logfmt_line(&l, time_text, level, rid, msg, fields, count);
    out[l.len++] = '\n';
    out[l.len] = '\0';
    return l.len;
}

void proxy_log_fields(enum proxy_log_level level, const char *rid, const char *msg, const struct log_field *fields,
                      size_t count)
{
    if (!proxy_log_enabled(level))
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char line[LOG_LINE_MAX];
    size_t len = proxy_log_format_line(line, sizeof line, (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000,
                                       level, rid, msg, fields, count);
    /* One write(2): stderr is shared by every thread and, behind lighttpd,
     * by the web server's own error log. */
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}

void proxy_log(enum proxy_log_level level, const char *rid, const char *fmt, ...)
{
    if (!proxy_log_enabled(level))
        return;
    char msg[LOG_VALUE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    proxy_log_fields(level, rid, msg, NULL, 0);
}
