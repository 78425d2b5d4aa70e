/* test_watched_file.c: the reload of watched credential files: looked at
 * once a second, by one thread at a time, a check that finds another
 * thread re-reading leaving the next call due, a bad edit keeping the
 * content in use. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "auth/watched_file.h"
#include "unit.h"

static char dir[] = "/tmp/test-watched-XXXXXX";
static char path_a[160], path_b[160];
static EVP_MD *sha256;

/* The content of a test file: its text, with a count of references. A
 * file whose text starts with "bad" is not valid. */
struct text {
    atomic_uint refs;
    char s[];
};

static void *parse_text(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
    if (strncmp(buf, "bad", 3) == 0) {
        snprintf(err, errlen, "test file %s: bad content", path);
        return NULL;
    }
    struct text *t = malloc(sizeof *t + len + 1);
    assert_non_null(t);
    atomic_init(&t->refs, 1);
    memcpy(t->s, buf, len + 1);
    return t;
}

static void retain_text(void *content)
{
    atomic_fetch_add(&((struct text *)content)->refs, 1);
}

static void release_text(void *content)
{
    struct text *t = content;
    if (t && atomic_fetch_sub(&t->refs, 1) == 1)
        free(t);
}

static size_t count_text(const void *content)
{
    (void)content;
    return 1;
}

static const struct watched_kind test_file = {
    .what = "test file",
    .items = "text",
    .max = 64,
    .parse = parse_text,
    .retain = retain_text,
    .release = release_text,
    .count = count_text,
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* write_text: replaces p atomically (a new inode, as deployment tools do). */
static void write_text(const char *p, const char *text)
{
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, p), 0);
}

/* assert_content: w holds want now. */
static void assert_content(struct watched_file *w, const char *want)
{
    struct text *t = watched_file_acquire(w);
    assert_non_null(t);
    assert_string_equal(t->s, want);
    release_text(t);
}

/* open_with: p written with text, opened into w as a file of s. */
static void open_with(struct watched_set *s, struct watched_file *w, const char *p, const char *text)
{
    char err[256] = "";
    write_text(p, text);
    assert_int_equal(watched_file_open(w, s, &test_file, p, sha256, err, sizeof err), PROXY_OK);
}

/* refresh_now: a check of s made due, then made. */
static void refresh_now(struct watched_set *s)
{
    s->next_check_ms = 0;
    watched_set_refresh_if_due(s);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(path_a, sizeof path_a, "%s/a", dir);
    snprintf(path_b, sizeof path_b, "%s/b", dir);
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    return sha256 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char p[200];
    unlink(path_a);
    unlink(path_b);
    snprintf(p, sizeof p, "%s/stderr", dir);
    unlink(p);
    rmdir(dir);
    EVP_MD_free(sha256);
    return 0;
}

static void test_open(void **state)
{
    (void)state;
    struct watched_set s;
    struct watched_file a, b, c, missing, none;
    char err[256] = "", missing_path[200];
    memset(&none, 0, sizeof none);
    watched_set_init(&s);
    open_with(&s, &a, path_a, "one");
    assert_content(&a, "one");
    assert_null(watched_file_acquire(&none)); /* not configured */

    /* A failed open leaves nothing to close. */
    snprintf(missing_path, sizeof missing_path, "%s/missing", dir);
    assert_int_equal(watched_file_open(&missing, &s, &test_file, missing_path, sha256, err, sizeof err),
                     PROXY_ERR_INVALID);
    assert_non_null(strstr(err, "cannot open"));
    assert_null(missing.path);
    assert_null(watched_file_acquire(&missing));
    write_text(path_b, "bad");
    assert_int_equal(watched_file_open(&b, &s, &test_file, path_b, sha256, err, sizeof err), PROXY_ERR_INVALID);
    assert_non_null(strstr(err, "bad content"));
    assert_int_equal(s.n, 1);

    open_with(&s, &b, path_b, "two");
    assert_int_equal(watched_file_open(&c, &s, &test_file, path_b, sha256, err, sizeof err), PROXY_ERR_TOO_LARGE);
    assert_non_null(strstr(err, "watched files"));
    assert_content(&b, "two");
    watched_set_destroy(&s);
}

/* The first check is a second after the load; a due check re-reads every
 * file of the set and pushes the next one a second away. */
static void test_checked_once_a_second(void **state)
{
    (void)state;
    struct watched_set s;
    struct watched_file a, b;
    watched_set_init(&s);
    open_with(&s, &a, path_a, "one");
    open_with(&s, &b, path_b, "two");
    assert_true(s.next_check_ms > now_ms() + WATCHED_CHECK_INTERVAL_MS / 2);

    write_text(path_a, "one, edited");
    write_text(path_b, "two, edited");
    watched_set_refresh_if_due(&s);
    assert_content(&a, "one");
    assert_content(&b, "two");

    refresh_now(&s);
    assert_content(&a, "one, edited");
    assert_content(&b, "two, edited");
    assert_true(s.next_check_ms > now_ms() + WATCHED_CHECK_INTERVAL_MS / 2);
    watched_set_destroy(&s);
}

/* A check that finds another thread re-reading does not wait for it, and
 * leaves the next call due: that reload may have read the file before the
 * change that made this check due. */
static void test_busy_reload_leaves_next_call_due(void **state)
{
    (void)state;
    struct watched_set s;
    struct watched_file a;
    watched_set_init(&s);
    open_with(&s, &a, path_a, "one");
    write_text(path_a, "one, edited");
    assert_int_equal(pthread_mutex_lock(&s.reload), 0); /* another thread re-reading */
    refresh_now(&s);
    assert_content(&a, "one");
    assert_true(s.next_check_ms <= now_ms());
    assert_int_equal(pthread_mutex_unlock(&s.reload), 0);

    watched_set_refresh_if_due(&s);
    assert_content(&a, "one, edited");
    assert_true(s.next_check_ms > now_ms() + WATCHED_CHECK_INTERVAL_MS / 2);
    watched_set_destroy(&s);
}

/* A bad edit keeps the content in use and is logged once, however many
 * checks re-read it; the content a reader holds outlives a reload. */
static void test_bad_edit_keeps_content(void **state)
{
    (void)state;
    struct watched_set s;
    struct watched_file a;
    char log[4096];
    watched_set_init(&s);
    open_with(&s, &a, path_a, "one");
    struct text *held = watched_file_acquire(&a);

    write_text(path_a, "bad edit");
    struct unit_capture cap;
    unit_capture_begin(&cap, dir);
    for (int i = 0; i < 3; i++) {
        refresh_now(&s);
        assert_content(&a, "one");
    }
    assert_int_equal(unit_capture_end(&cap, "level=error", log, sizeof log), 1);
    assert_non_null(strstr(log, path_a));

    write_text(path_a, "two");
    refresh_now(&s);
    assert_content(&a, "two");
    assert_string_equal(held->s, "one");
    release_text(held);
    watched_set_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open),
        cmocka_unit_test(test_checked_once_a_second),
        cmocka_unit_test(test_busy_reload_leaves_next_call_due),
        cmocka_unit_test(test_bad_edit_keeps_content),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
