/* test_queue.c: a detached response's waiting bytes by reference: shared
 * frames framed into STDOUT records as they are written (frames past one
 * record's 65535 bytes too), raw records queued behind them, any partial
 * write resumed exactly; fcgi_response_share over a real socket that takes
 * little at a time, keeping every byte in order; and the broken record of a
 * cut, which comes where a record starts, after the one under way. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/rcbuf.h"
#include "fcgi/queue.h"
#include "fcgi/response.h"
#include "unit.h"

/* expected: the written form of data as framed STDOUT records of id. */
static size_t frame_into(unsigned char *out, const char *data, size_t len, unsigned id)
{
    size_t n = 0;
    for (size_t at = 0; at < len; at += FCGI_MAX_LENGTH) {
        size_t part = len - at < FCGI_MAX_LENGTH ? len - at : FCGI_MAX_LENGTH;
        fcgi_record_header(out + n, FCGI_STDOUT, id, part);
        memcpy(out + n + FCGI_HEADER_LEN, data + at, part);
        n += FCGI_HEADER_LEN + part;
    }
    return n;
}

/* drain: gathers and "writes" the queue step bytes at a time into out. */
static size_t drain(struct fcgi_queue *q, unsigned id, unsigned char *out, size_t step)
{
    size_t n = 0;
    while (q->count > 0) {
        struct iovec iov[2 * FCGI_QUEUE_GATHER + 8];
        unsigned char headers[FCGI_QUEUE_GATHER][FCGI_HEADER_LEN];
        int count = fcgi_queue_gather(q, id, iov, (int)(sizeof iov / sizeof iov[0]), headers);
        assert_true(count > 0);
        size_t took = 0;
        for (int i = 0; i < count && took < step; i++) {
            size_t part = iov[i].iov_len < step - took ? iov[i].iov_len : step - took;
            memcpy(out + n + took, iov[i].iov_base, part);
            took += part;
        }
        fcgi_queue_advance(q, took);
        n += took;
    }
    return n;
}

static void test_queue_written_form(void **state)
{
    (void)state;
    size_t big_len = 2 * FCGI_MAX_LENGTH + 100;
    char *big = malloc(big_len);
    assert_non_null(big);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)('a' + i % 26);
    struct rcbuf *small = rcbuf_new("event: a\ndata: 1\n\n", 18);
    struct rcbuf *large = rcbuf_new(big, big_len);
    struct rcbuf *raw = rcbuf_new("RAWRECORDS", 10);
    size_t total = fcgi_queue_written_len(18, true) + fcgi_queue_written_len(big_len, true) + 10 +
                   fcgi_queue_written_len(18, true);
    assert_int_equal(fcgi_queue_written_len(big_len, true), big_len + 3 * FCGI_HEADER_LEN);
    unsigned char *want = malloc(total), *got = malloc(total);
    size_t n = frame_into(want, small->data, 18, 7);
    n += frame_into(want + n, big, big_len, 7);
    memcpy(want + n, "RAWRECORDS", 10);
    n += 10;
    n += frame_into(want + n, small->data, 18, 7);
    assert_int_equal(n, total);

    static const size_t steps[] = {1, 5, 8, 9, 4096, FCGI_MAX_LENGTH + 8, 1 << 20};
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        struct fcgi_queue q = {0};
        /* the first item starts 3 bytes in, as after a short direct write */
        assert_int_equal(fcgi_queue_push(&q, small, true, 3), PROXY_OK);
        assert_int_equal(fcgi_queue_push(&q, large, true, 0), PROXY_OK);
        assert_int_equal(fcgi_queue_push(&q, raw, false, 0), PROXY_OK);
        assert_int_equal(fcgi_queue_push(&q, small, true, 0), PROXY_OK);
        assert_int_equal(q.bytes, total - 3);
        assert_int_equal(q.raw_bytes, 10);
        memset(got, 0, total);
        size_t wrote = drain(&q, 7, got, steps[k]);
        assert_int_equal(wrote, total - 3);
        assert_memory_equal(got, want + 3, total - 3);
        assert_int_equal(q.bytes, 0);
        assert_int_equal(q.raw_bytes, 0);
        fcgi_queue_clear(&q);
    }
    /* the queue held references of its own and gave them back */
    assert_int_equal(small->refs, 1);
    assert_int_equal(large->refs, 1);
    /* clearing a queue with items releases them */
    struct fcgi_queue q = {0};
    for (int i = 0; i < 20; i++) /* past the first ring's size */
        assert_int_equal(fcgi_queue_push(&q, small, true, 0), PROXY_OK);
    assert_int_equal(small->refs, 21);
    fcgi_queue_clear(&q);
    assert_int_equal(small->refs, 1);
    fcgi_queue_clear(NULL);
    rcbuf_unref(small);
    rcbuf_unref(large);
    rcbuf_unref(raw);
    free(big);
    free(want);
    free(got);
}

/* A detached request on one end of a socket pair whose buffers are small. */
static void detached_request(struct fcgi_request *req, int fd)
{
    memset(req, 0, sizeof *req);
    req->detached = true;
    req->detached_fd = fd;
    req->fcgi_id = 1;
    buf_init(&req->out.held, 1 << 20);
    buf_init(&req->out.unsent, 1 << 20);
}

/* streaming_request: a detached request after its head, writing to sv[0]
 * of a fresh socket pair whose send buffer is small; the test reads sv[1]. */
static void streaming_request(struct fcgi_request *req, int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    detached_request(req, sv[0]);
    req->out.head_sent = true;
}

/* read_records: every STDOUT record's content from fd, until it has want
 * bytes; END_REQUEST must not come before them. */
static size_t read_records(int fd, char *out, size_t want)
{
    size_t n = 0;
    unsigned char h[FCGI_HEADER_LEN];
    while (n < want) {
        ssize_t r = recv(fd, h, sizeof h, MSG_WAITALL);
        assert_int_equal(r, FCGI_HEADER_LEN);
        assert_int_equal(h[1], FCGI_STDOUT);
        size_t len = (size_t)h[4] << 8 | h[5];
        r = recv(fd, out + n, len, MSG_WAITALL);
        assert_int_equal((size_t)r, len);
        n += len;
    }
    return n;
}

static void test_share_in_order(void **state)
{
    (void)state;
    int sv[2];
    struct fcgi_request req;
    streaming_request(&req, sv);

    /* frames of 3000 bytes, each a different letter, with a raw write
     * between some: they must arrive in this order, whole */
    enum { FRAMES = 40, SIZE = 3000 };
    char frame[SIZE], *want = malloc(FRAMES * SIZE + FRAMES), *got = malloc(FRAMES * SIZE + FRAMES);
    size_t wn = 0;
    for (int i = 0; i < FRAMES; i++) {
        memset(frame, 'A' + i % 26, SIZE);
        struct rcbuf *b = rcbuf_new(frame, SIZE);
        assert_int_equal(fcgi_response_share(&req, b, 1 << 20), PROXY_OK);
        rcbuf_unref(b); /* the queue holds its own reference when it needs one */
        memcpy(want + wn, frame, SIZE);
        wn += SIZE;
        if (i % 7 == 3) {
            assert_int_equal(fcgi_response_write(&req, ":", 1), PROXY_OK);
            want[wn++] = ':';
        }
    }
    assert_true(fcgi_response_pending(&req) > 0); /* the socket did not take it all */
    /* the bound: nothing taken past it */
    struct rcbuf *b = rcbuf_new(frame, SIZE);
    assert_int_equal(fcgi_response_share(&req, b, fcgi_response_pending(&req)), PROXY_ERR_WOULD_BLOCK);
    rcbuf_unref(b);

    size_t gn = 0;
    while (fcgi_response_pending(&req) > 0) {
        size_t got_now = read_records(sv[1], got + gn, 1);
        gn += got_now;
        assert_int_equal(fcgi_response_flush(&req), PROXY_OK);
    }
    /* what is left on the wire */
    if (gn < wn)
        gn += read_records(sv[1], got + gn, wn - gn);
    assert_int_equal(gn, wn);
    assert_memory_equal(got, want, wn);
    /* the end goes behind everything */
    assert_int_equal(fcgi_response_end(&req), PROXY_OK);
    unsigned char end[FCGI_HEADER_LEN];
    assert_int_equal(recv(sv[1], end, sizeof end, MSG_WAITALL), FCGI_HEADER_LEN);
    assert_int_equal(end[1], FCGI_STDOUT); /* the empty STDOUT that ends the output */
    req.detached = false; /* the test owns the socket */
    fcgi_request_free(&req, NULL);
    close(sv[0]);
    close(sv[1]);
    free(want);
    free(got);
}

static void test_share_refuses_before_the_head(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct fcgi_request req;
    detached_request(&req, sv[0]);
    struct rcbuf *b = rcbuf_new("data: 1\n\n", 9);
    assert_int_equal(fcgi_response_share(&req, b, 1 << 20), PROXY_ERR_INVALID);
    /* a web server that left */
    req.out.head_sent = true;
    close(sv[1]);
    assert_int_equal(fcgi_response_share(&req, b, 1 << 20), PROXY_ERR_CLIENT_GONE);
    assert_int_equal(fcgi_response_share(&req, b, 1 << 20), PROXY_ERR_CLIENT_GONE);
    assert_int_equal(b->refs, 1);
    rcbuf_unref(b);
    req.detached = false;
    fcgi_request_free(&req, NULL);
    close(sv[0]);
}

static void test_break_after_the_record_under_way(void **state)
{
    (void)state;
    int sv[2];
    struct fcgi_request req;
    streaming_request(&req, sv);
    /* frames until the socket stops taking them: one is cut short */
    char frame[3001];
    memset(frame, 'x', sizeof frame);
    for (int i = 0; i < 40; i++) {
        struct rcbuf *b = rcbuf_new(frame, sizeof frame);
        assert_int_equal(fcgi_response_share(&req, b, 1 << 20), PROXY_OK);
        rcbuf_unref(b);
    }
    assert_true(fcgi_response_pending(&req) > 0);
    fcgi_response_break(&req);
    assert_true(req.out.cut);
    assert_int_equal(req.out.queue.count, 0);
    /* what was on the wire, then the rest of its record, then version 0 */
    unsigned char *wire = malloc(1 << 20);
    size_t n = 0;
    for (int rounds = 0; rounds < 1000 && fcgi_response_pending(&req) > 0; rounds++) {
        ssize_t r = recv(sv[1], wire + n, (1 << 20) - n, MSG_DONTWAIT);
        if (r > 0)
            n += (size_t)r;
        assert_int_equal(fcgi_response_flush(&req), PROXY_OK);
    }
    assert_int_equal(fcgi_response_pending(&req), 0);
    ssize_t r;
    while ((r = recv(sv[1], wire + n, (1 << 20) - n, MSG_DONTWAIT)) > 0)
        n += (size_t)r;
    size_t at = 0, records = 0;
    while (at + FCGI_HEADER_LEN <= n && wire[at] == FCGI_VERSION_1) {
        assert_int_equal(wire[at + 1], FCGI_STDOUT);
        at += FCGI_HEADER_LEN + ((size_t)wire[at + 4] << 8 | wire[at + 5]) + wire[at + 6];
        records++;
    }
    assert_true(records >= 1);
    assert_int_equal(at + FCGI_HEADER_LEN, n); /* whole records, then the broken header, nothing else */
    assert_int_equal(wire[at], 0);
    free(wire);
    req.detached = false;
    fcgi_request_free(&req, NULL);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_written_form),
        cmocka_unit_test(test_share_in_order),
        cmocka_unit_test(test_share_refuses_before_the_head),
        cmocka_unit_test(test_break_after_the_record_under_way),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
