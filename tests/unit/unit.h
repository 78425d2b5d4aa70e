/* unit.h: what every table-driven unit test shares: name the failing row,
 * keep checking the other rows, fail the test once at the end.
 * Include after <cmocka.h>. */
#ifndef OPENOVA_TEST_UNIT_H
#define OPENOVA_TEST_UNIT_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define UNIT_LEN(array) (sizeof(array) / sizeof((array)[0]))

/* unit_fail: reports that row (its index and name) went wrong, and how;
 * counts it in *failures. The caller ends with unit_done. */
static inline void unit_fail(unsigned *failures, size_t row, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline void unit_fail(unsigned *failures, size_t row, const char *name, const char *fmt, ...)
{
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    print_error("row %zu \"%s\": %s\n", row, name, why);
    (*failures)++;
}

/* unit_done: fails the running test if any row failed. */
static inline void unit_done(unsigned failures)
{
    if (failures)
        fail_msg("%u row(s) failed, see above", failures);
}

/* unit_escape: len bytes of s as a C-like literal for messages (without
 * quotes), truncated to fit out. Returns out. */
static inline const char *unit_escape(const char *s, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    if (!s) {
        snprintf(out, outlen, "(null)");
        return out;
    }
    for (size_t i = 0; i < len && o + 5 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n' || c == '\t' || c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)(c == '\r' ? 'r' : c == '\n' ? 'n' : c == '\t' ? 't' : c);
        } else if (c < 0x20 || c >= 0x7f) {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return out;
}

/* Captures what the code under test logs to stderr (fd 2) between begin
 * and end, through a file in dir. */
struct unit_capture {
    int saved;
    char file[256];
};

static inline void unit_capture_begin(struct unit_capture *c, const char *dir)
{
    snprintf(c->file, sizeof c->file, "%s/stderr", dir);
    int fd = open(c->file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    c->saved = dup(2);
    assert_true(c->saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    close(fd);
}

/* unit_capture_end: how many times the captured text holds needle; the
 * text into out. */
static inline int unit_capture_end(struct unit_capture *c, const char *needle, char *out, size_t outlen)
{
    fflush(stderr);
    assert_int_equal(dup2(c->saved, 2), 2);
    close(c->saved);
    FILE *f = fopen(c->file, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, outlen - 1, f);
    out[n] = '\0';
    fclose(f);
    unlink(c->file);
    int count = 0;
    for (const char *p = out; (p = strstr(p, needle)); p += strlen(needle))
        count++;
    return count;
}

#endif
