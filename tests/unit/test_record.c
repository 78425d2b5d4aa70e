/* test_record.c: FastCGI record framing (fcgi_record_header, fcgi_record_end_request) and the abort scanner. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fcgi/record.h"
#include "unit.h"

/* FastCGI 1.0 record types the web server sends after the request began. */
#define T_ABORT 2
#define T_PARAMS 4
#define T_STDIN 5
#define T_DATA 8

static void hex(const unsigned char *p, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o + 4 < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%02x ", p[i]);
}

/* ---- fcgi_record_header ---- */

struct header_row {
    const char *name;
    unsigned type;
    unsigned request_id;
    size_t content_len;
    unsigned char want[FCGI_HEADER_LEN];
};

static const struct header_row header_rows[] = {
    {"empty stdout id 1", FCGI_STDOUT, 1, 0, {1, 6, 0, 1, 0, 0, 0, 0}},
    {"stdout big-endian fields", FCGI_STDOUT, 0x1234, 0xabcd, {1, 6, 0x12, 0x34, 0xab, 0xcd, 0, 0}},
    {"end request max id", FCGI_END_REQUEST, 0xffff, 8, {1, 3, 0xff, 0xff, 0, 8, 0, 0}},
    {"max content", FCGI_STDOUT, 0, FCGI_MAX_LENGTH, {1, 6, 0, 0, 0xff, 0xff, 0, 0}},
    {"content 256", FCGI_STDOUT, 256, 256, {1, 6, 1, 0, 1, 0, 0, 0}},
};

static void test_record_header(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(header_rows); i++) {
        const struct header_row *r = &header_rows[i];
        unsigned char got[FCGI_HEADER_LEN + 1];
        memset(got, 0xee, sizeof got);
        fcgi_record_header(got, r->type, r->request_id, r->content_len);
        char g[64], w[64];
        if (memcmp(got, r->want, FCGI_HEADER_LEN) != 0 || got[FCGI_HEADER_LEN] != 0xee) {
            hex(got, sizeof got, g, sizeof g);
            hex(r->want, sizeof r->want, w, sizeof w);
            unit_fail(&failures, i, r->name, "got %s, want %s(then ee)", g, w);
        }
    }
    unit_done(failures);
}

/* ---- fcgi_record_end_request ---- */

struct end_row {
    const char *name;
    unsigned request_id;
    unsigned app_status;
    unsigned char want[24];
};

static const struct end_row end_rows[] = {
    {"id 1 status 0", 1, 0, {1, 6, 0, 1, 0, 0, 0, 0, /* empty FCGI_STDOUT */
                             1, 3, 0, 1, 0, 8, 0, 0, /* FCGI_END_REQUEST, 8 bytes */
                             0, 0, 0, 0, 0, 0, 0, 0}}, /* appStatus 0, REQUEST_COMPLETE */
    {"big-endian id and status", 0x0102, 0x0a0b0c0d, {1, 6, 1, 2, 0, 0, 0, 0,
                                                      1, 3, 1, 2, 0, 8, 0, 0,
                                                      0x0a, 0x0b, 0x0c, 0x0d, 0, 0, 0, 0}},
    {"max id, status 255", 0xffff, 255, {1, 6, 0xff, 0xff, 0, 0, 0, 0,
                                          1, 3, 0xff, 0xff, 0, 8, 0, 0,
                                          0, 0, 0, 0xff, 0, 0, 0, 0}},
};

static void test_record_end_request(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(end_rows); i++) {
        const struct end_row *r = &end_rows[i];
        unsigned char got[25];
        memset(got, 0xee, sizeof got);
        fcgi_record_end_request(got, r->request_id, r->app_status);
        char g[128], w[128];
        if (memcmp(got, r->want, 24) != 0 || got[24] != 0xee) {
            hex(got, sizeof got, g, sizeof g);
            hex(r->want, sizeof r->want, w, sizeof w);
            unit_fail(&failures, i, r->name, "got %s, want %s(then ee)", g, w);
        }
    }
    unit_done(failures);
}

/* ---- fcgi_record_scan ---- */

struct rec {
    unsigned type;        /* 0 ends the list */
    unsigned request_id;
    size_t content_len;
    unsigned padding;
};

#define MAX_RECS 5

struct scan_row {
    const char *name;
    unsigned watch_id;    /* the request the scanner watches */
    struct rec recs[MAX_RECS];
    size_t truncate;      /* bytes cut off the end of the stream (0: none) */
    bool aborted;
};

static const struct scan_row scan_rows[] = {
    {"abort for us", 1, {{T_ABORT, 1, 0, 0}}, 0, true},
    {"abort for another id", 1, {{T_ABORT, 2, 0, 0}}, 0, false},
    {"abort for id differing in the high byte", 1, {{T_ABORT, 0x0101, 0, 0}}, 0, false},
    {"abort for high id", 0x0101, {{T_ABORT, 0x0101, 0, 0}}, 0, true},
    {"abort for id 0 (management)", 1, {{T_ABORT, 0, 0, 0}}, 0, false},
    {"nothing", 1, {{0, 0, 0, 0}}, 0, false},
    {"stdin only", 1, {{T_STDIN, 1, 5, 3}, {T_STDIN, 1, 0, 0}}, 0, false},
    {"stdin with padding then abort", 1, {{T_STDIN, 1, 5, 3}, {T_ABORT, 1, 0, 0}}, 0, true},
    {"stdin of 300 then abort", 1, {{T_STDIN, 1, 300, 4}, {T_ABORT, 1, 0, 0}}, 0, true},
    {"stdin of 65535 with 255 padding then abort", 1, {{T_STDIN, 1, 65535, 255}, {T_ABORT, 1, 0, 0}}, 0, true},
    {"end of stdin then abort", 1, {{T_STDIN, 1, 0, 0}, {T_ABORT, 1, 0, 0}}, 0, true},
    {"params, data, then abort", 1, {{T_PARAMS, 1, 17, 7}, {T_PARAMS, 1, 0, 0}, {T_DATA, 1, 9, 0}, {T_ABORT, 1, 0, 0}}, 0,
     true},
    {"other request's stdin then ours aborts", 1, {{T_STDIN, 2, 8, 0}, {T_ABORT, 2, 0, 0}, {T_ABORT, 1, 0, 0}}, 0, true},
    {"abort with content", 1, {{T_ABORT, 1, 2, 1}}, 0, true},
    {"stdin, then an incomplete abort header", 1, {{T_STDIN, 1, 8, 0}, {T_ABORT, 1, 0, 0}}, 1, false},
    {"abort header incomplete", 1, {{T_ABORT, 1, 0, 0}}, 1, false},
    {"padding hides an abort", 1, {{T_STDIN, 1, 0, 8}}, 0, false},
};

static unsigned char stream[2 * (FCGI_HEADER_LEN + 65535 + 255)];

/* Lays the row's records out in stream. Every content and padding byte
 * repeats an FCGI_ABORT_REQUEST header for the watched id, so a scanner
 * that reads content as headers would report an abort. */
static size_t build(const struct scan_row *r)
{
    unsigned char fake[FCGI_HEADER_LEN];
    fcgi_record_header(fake, T_ABORT, r->watch_id, 0);
    size_t n = 0;
    for (size_t k = 0; k < MAX_RECS && r->recs[k].type; k++) {
        const struct rec *c = &r->recs[k];
        fcgi_record_header(stream + n, c->type, c->request_id, c->content_len);
        stream[n + 6] = (unsigned char)c->padding;
        n += FCGI_HEADER_LEN;
        for (size_t b = 0; b < c->content_len + c->padding; b++)
            stream[n++] = fake[b % FCGI_HEADER_LEN];
    }
    return n - r->truncate;
}

static void scanner_init(struct fcgi_record_scanner *s, unsigned request_id)
{
    memset(s, 0, sizeof *s);
    s->request_id = request_id;
}

static void test_record_scan(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(scan_rows); i++) {
        const struct scan_row *r = &scan_rows[i];
        size_t len = build(r);
        struct fcgi_record_scanner s;

        scanner_init(&s, r->watch_id);
        bool got = fcgi_record_scan(&s, stream, len);
        if (got != r->aborted)
            unit_fail(&failures, i, r->name, "whole: aborted %d, want %d", got, r->aborted);
        if (got && !fcgi_record_scan(&s, (const unsigned char *)"x", 1))
            unit_fail(&failures, i, r->name, "abort not remembered");

        scanner_init(&s, r->watch_id);
        got = false;
        for (size_t k = 0; k < len; k++)
            got = fcgi_record_scan(&s, stream + k, 1);
        if (len && got != r->aborted)
            unit_fail(&failures, i, r->name, "byte by byte: aborted %d, want %d", got, r->aborted);

        /* Split in two at every position; in the large row, near its two headers
         * (the first and last 64 bytes). */
        unsigned split_failures = 0;
        for (size_t cut = 0; cut <= len; cut++) {
            if (len > 1024 && cut > 64 && cut + 64 < len)
                continue;
            scanner_init(&s, r->watch_id);
            got = fcgi_record_scan(&s, stream, cut);
            got = fcgi_record_scan(&s, stream + cut, len - cut) || got;
            if (got != r->aborted && !split_failures++)
                unit_fail(&failures, i, r->name, "split at %zu: aborted %d, want %d", cut, got, r->aborted);
        }
    }
    unit_done(failures);
}

/* ---- fcgi_record_break ---- */

static void test_record_break(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    fcgi_record_break(fds[0]);
    unsigned char got[16];
    ssize_t n = read(fds[1], got, sizeof got);
    /* A header no web server accepts (version 0), then the end of the connection. */
    assert_int_equal(n, FCGI_HEADER_LEN);
    for (size_t i = 0; i < FCGI_HEADER_LEN; i++)
        assert_int_equal(got[i], 0);
    assert_int_equal(read(fds[1], got, sizeof got), 0);
    close(fds[0]);
    close(fds[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_break),
        cmocka_unit_test(test_record_header),
        cmocka_unit_test(test_record_end_request),
        cmocka_unit_test(test_record_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
