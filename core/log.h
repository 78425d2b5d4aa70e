/* log.h: one line per event on stderr, which web servers and journald
 * collect: logfmt (default) or one JSON object per line, each with an RFC
 * 3339 UTC time, the level, and the request id of a request's lines. */
#ifndef OPENOVA_LOG_H
#define OPENOVA_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum proxy_log_level { PROXY_LOG_DEBUG, PROXY_LOG_INFO, PROXY_LOG_WARN, PROXY_LOG_ERROR };
enum proxy_log_format { PROXY_LOG_LOGFMT, PROXY_LOG_JSON };

/* proxy_log_setup: the lowest level written and the format. Call once,
 * before any thread starts (the default: info, logfmt). */
void proxy_log_setup(enum proxy_log_level lowest, enum proxy_log_format format);

/* proxy_log_set_level: the lowest level written from now on; any thread. */
void proxy_log_set_level(enum proxy_log_level lowest);

/* proxy_log_enabled: whether a line of level would be written. */
bool proxy_log_enabled(enum proxy_log_level level);

/* proxy_log_level_parse / proxy_log_format_parse: "debug", "info", "warn",
 * "error" / "logfmt", "json" into *out; 0, or -1 for any other text. Pure. */
int proxy_log_level_parse(const char *text, enum proxy_log_level *out);
int proxy_log_format_parse(const char *text, enum proxy_log_format *out);
const char *proxy_log_level_name(enum proxy_log_level level);
const char *proxy_log_format_name(enum proxy_log_format format);

/* One key and its value: text (NULL: the field is left out) or a number. */
struct log_field {
    const char *key;
    const char *text;
    long long number;
    bool is_number;
};
/* Initializers, so that static tables may use them too. */
#define LOG_TEXT(k, v) {.key = (k), .text = (v)}
#define LOG_NUMBER(k, v) {.key = (k), .number = (long long)(v), .is_number = true}

/* proxy_log_fields: one line: time, level, rid (when not NULL), msg, then
 * the fields in order. Every logfmt value that needs it is quoted and
 * escaped; JSON is written by json-c. One write(2), so lines from
 * concurrent threads never interleave; a line past 4 KiB loses the end of
 * its longest values, never its shape. */
void proxy_log_fields(enum proxy_log_level level, const char *rid, const char *msg, const struct log_field *fields,
                      size_t count);

/* proxy_log: a line whose msg is the formatted sentence. */
void proxy_log(enum proxy_log_level level, const char *rid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* proxy_log_format_line: the line proxy_log_fields would write at time
 * unix_ms, into out (with its newline, NUL-terminated); its length. For
 * tests. */
size_t proxy_log_format_line(char *out, size_t outlen, long long unix_ms, enum proxy_log_level level,
                             const char *rid, const char *msg, const struct log_field *fields, size_t count);

#endif
