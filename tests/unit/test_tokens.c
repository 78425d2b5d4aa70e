/* test_tokens.c: the bearer tokens file: what loads and what is refused (with
 * its line), which tokens get in as whom, and re-reading on change. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "auth/tokens.h"
#include "unit.h"

#define NOW ((time_t)1700000000)

static char dir[] = "/tmp/test-tokens-XXXXXX";
static char path[128];

/* Digests of the tokens the rows use, as hex, filled by setup(). */
static char alpha[65], beta[65], beta_upper[65], gamma_[65], delta[65], piped[65];
static char name128[TOKENS_NAME_MAX + 1], name129[TOKENS_NAME_MAX + 2];

static void hex_sha256(const char *token, char out[65])
{
    unsigned char d[32];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(token, strlen(token), d, &n, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* write_file: replaces path atomically (a new inode, as deployment tools
 * do), with len bytes of text. */
static void write_file(const char *p, const char *text, size_t len)
{
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, p), 0);
}

static void write_text(const char *p, const char *text)
{
    write_file(p, text, strlen(text));
}

/* The reload check runs at most once a second. */
static void past_check_interval(void)
{
    usleep(1100 * 1000);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/tokens", dir);
    hex_sha256("alpha-token", alpha);
    hex_sha256("beta-token", beta);
    for (int i = 0; i < 65; i++)
        beta_upper[i] = (char)(beta[i] >= 'a' && beta[i] <= 'f' ? beta[i] - 'a' + 'A' : beta[i]);
    hex_sha256("gamma", gamma_);
    hex_sha256("piped-token", piped);
    hex_sha256("delta-token", delta);
    memset(name128, 'n', TOKENS_NAME_MAX);
    memset(name129, 'n', TOKENS_NAME_MAX + 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    /* What a test may leave behind when an assertion cuts it short. */
    char p[200];
    unlink(path);
    snprintf(p, sizeof p, "%s.tmp", path);
    unlink(p);
    snprintf(p, sizeof p, "%s/stderr", dir);
    unlink(p);
    rmdir(dir);
    return 0;
}

/* ---- loading ---- */

struct load_row {
    const char *name;
    const char *lines[5]; /* {A} alpha's digest, {A63} its first 63 digits, {B} beta's in upper case,
                           * {N128} and {N129} names of that length */
    const char *err;      /* NULL: loads; else a substring of the error */
};

static const struct load_row load_rows[] = {
    {"empty file", {""}, NULL},
    {"comments and blank lines", {"# tokens\n", "\n", "   \n", "\t# indented comment\n"}, NULL},
    {"named and unnamed", {"{A} alice\n", "{B}\n"}, NULL},
    {"CRLF and spaces", {"  {A}\talice  \r\n", "{B} \r\n"}, NULL},
    {"no final newline", {"{A} alice"}, NULL},
    {"128-char name", {"{A} {N128}\n"}, NULL},
    {"a long comment is fine", {"# {N128}{N128}{N128}{N128}{N128}{N128}{N128}{N128}{N128}{N128}\n"}, NULL},
    {"digest too short", {"# c\n", "{A63} alice\n"}, "line 2: expected a SHA-256 digest"},
    {"digest too long", {"{A}a alice\n"}, "line 1: expected a SHA-256 digest"},
    {"not hex", {"\n", "\n", "g{A63}\n"}, "line 3: expected a SHA-256 digest"},
    {"name glued to digest", {"{A}:alice\n"}, "line 1: expected a SHA-256 digest"},
    {"a password, not a digest", {"hunter2\n"}, "line 1: expected a SHA-256 digest"},
    {"129-char name", {"{A} {N129}\n"}, "line 1: the name is longer than 128"},
    {"two names", {"{A} alice\n", "{B} bob extra\n"}, "line 2: expected a digest and at most one name"},
    {"non-ASCII name", {"{A} al\xc3\xaf" "ce\n"}, "line 1: the name holds a byte that is not printable ASCII"},
    {"control byte in name", {"{A} al\x01" "ce\n"}, "line 1: the name holds a byte"},
    {"duplicate digest, other case", {"{A} alice\n", "{B} bob\n", "# c\n", "{B} carol\n"},
     "line 4: the same digest as line 2"},
};

/* expand: tmpl with its {placeholders} filled in, appended to out. */
static void expand(const char *tmpl, char *out, size_t outlen)
{
    static const struct {
        const char *name;
        const char *value;
        size_t len; /* 0: all of value */
    } vars[] = {
        {"{A63}", alpha, 63}, {"{A}", alpha, 0}, {"{B}", beta_upper, 0}, {"{N128}", name128, 0}, {"{N129}", name129, 0},
    };
    size_t o = strlen(out);
    while (*tmpl && o + 1 < outlen) {
        size_t v = 0;
        while (v < UNIT_LEN(vars) && strncmp(tmpl, vars[v].name, strlen(vars[v].name)) != 0)
            v++;
        if (v == UNIT_LEN(vars)) {
            out[o++] = *tmpl++;
            continue;
        }
        size_t len = vars[v].len ? vars[v].len : strlen(vars[v].value);
        for (size_t k = 0; k < len && o + 1 < outlen; k++)
            out[o++] = vars[v].value[k];
        tmpl += strlen(vars[v].name);
    }
    out[o] = '\0';
}

static void test_load(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(load_rows); i++) {
        const struct load_row *r = &load_rows[i];
        char text[4096] = "";
        for (size_t l = 0; l < UNIT_LEN(r->lines) && r->lines[l]; l++)
            expand(r->lines[l], text, sizeof text);
        write_text(path, text);
        char err[512] = "";
        struct tokens *t = tokens_new(path, err, sizeof err);
        if (!r->err && !t)
            unit_fail(&failures, i, r->name, "refused: %s", err);
        if (r->err && t)
            unit_fail(&failures, i, r->name, "loaded, want an error with \"%s\"", r->err);
        if (r->err && !t && !strstr(err, r->err))
            unit_fail(&failures, i, r->name, "error \"%s\", want \"%s\"", err, r->err);
        if (r->err && !t && !strstr(err, path))
            unit_fail(&failures, i, r->name, "error \"%s\" does not name the file", err);
        tokens_free(t);
    }
    unit_done(failures);
}

/* A NUL byte cannot go through the printf rows above. */
static void test_load_nul_byte(void **state)
{
    (void)state;
    char text[200];
    int n = snprintf(text, sizeof text, "# ok\n%s al", alpha);
    text[n] = '\0';
    memcpy(text + n + 1, "ce\n", 4);
    write_file(path, text, (size_t)n + 4);
    char err[512] = "";
    assert_null(tokens_new(path, err, sizeof err));
    assert_non_null(strstr(err, "line 2: holds a NUL byte"));
}

static void test_load_unreadable(void **state)
{
    (void)state;
    char err[512] = "";
    char missing[160];
    snprintf(missing, sizeof missing, "%s/missing", dir);
    assert_null(tokens_new(missing, err, sizeof err));
    assert_non_null(strstr(err, missing));
    assert_non_null(strstr(err, "cannot open"));

    assert_null(tokens_new(dir, err, sizeof err));
    assert_non_null(strstr(err, "not a regular file"));

    assert_null(tokens_new(NULL, err, sizeof err));
    assert_null(tokens_new("", err, sizeof err));
    tokens_free(NULL);
}

/* ---- checking ---- */

struct check_row {
    const char *name;
    const char *token;
    enum proxy_err want;
    const char *user; /* PROXY_OK: the user; "@beta", "@piped" for a derived name */
    const char *why;  /* PROXY_ERR_REFUSED: a substring of why */
};

static const struct check_row check_rows[] = {
    {"named", "alpha-token", PROXY_OK, "alice", NULL},
    {"unnamed, listed in upper case", "beta-token", PROXY_OK, "@beta", NULL},
    {"another named", "gamma", PROXY_OK, "ci-bot", NULL},
    /* `printf %s "$T" | sha256sum` writes "<digest>  -": the "-" is no name */
    {"sha256sum's line as it is", "piped-token", PROXY_OK, "@piped", NULL},
    {"wrong token", "delta-token", PROXY_ERR_REFUSED, NULL, "bearer: token not in the tokens file"},
    {"trailing space", "alpha-token ", PROXY_ERR_REFUSED, NULL, "not in the tokens file"},
    {"prefix", "alpha-toke", PROXY_ERR_REFUSED, NULL, "not in the tokens file"},
    {"other case", "ALPHA-TOKEN", PROXY_ERR_REFUSED, NULL, "not in the tokens file"},
    {"empty", "", PROXY_ERR_REFUSED, NULL, "bearer: empty token"},
    {"NULL", NULL, PROXY_ERR_REFUSED, NULL, "bearer: empty token"},
    /* Whoever reads the file must not get in with what is in it. */
    {"the digest itself", alpha, PROXY_ERR_REFUSED, NULL, "not in the tokens file"},
};

static void test_check(void **state)
{
    (void)state;
    char text[512];
    snprintf(text, sizeof text, "# who\n%s alice\n%s\n\n%s ci-bot\n%s  -\n", alpha, beta_upper, gamma_, piped);
    write_text(path, text);
    char err[512] = "";
    struct tokens *t = tokens_new(path, err, sizeof err);
    assert_non_null(t);
    char beta_user[16], piped_user[16];
    snprintf(beta_user, sizeof beta_user, "token-%.8s", beta);
    snprintf(piped_user, sizeof piped_user, "token-%.8s", piped);

    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(check_rows); i++) {
        const struct check_row *r = &check_rows[i];
        struct credential out = {NULL, 12345};
        char why[256] = "";
        enum proxy_err v = tokens_check(t, r->token, NOW, &out, why, sizeof why);
        const char *want_user = !r->user                        ? NULL
                                : strcmp(r->user, "@beta") == 0  ? beta_user
                                : strcmp(r->user, "@piped") == 0 ? piped_user
                                                                 : r->user;
        if (v != r->want)
            unit_fail(&failures, i, r->name, "verdict %d, want %d (why: %s)", v, r->want, why);
        else if (v == PROXY_OK && (!out.user || strcmp(out.user, want_user) != 0 || out.expires != 0))
            unit_fail(&failures, i, r->name, "user %s expires %lld, want %s and 0", out.user ? out.user : "(null)",
                      (long long)out.expires, want_user);
        else if (v == PROXY_ERR_REFUSED && !strstr(why, r->why))
            unit_fail(&failures, i, r->name, "why \"%s\", want \"%s\"", why, r->why);
        else if (v == PROXY_ERR_REFUSED && (out.user || out.expires != 12345))
            unit_fail(&failures, i, r->name, "a rejection wrote the credential");
        if (r->token && *r->token && strstr(why, r->token))
            unit_fail(&failures, i, r->name, "why \"%s\" holds the token", why);
        if (strstr(why, alpha) || strstr(why, beta) || strstr(why, "token-"))
            unit_fail(&failures, i, r->name, "why \"%s\" holds a digest", why);
        if (v == PROXY_OK)
            credential_clear(&out);
    }
    tokens_free(t);
    unit_done(failures);
}

static void test_empty_list_lets_no_one_in(void **state)
{
    (void)state;
    write_text(path, "# nobody yet\n");
    char err[512] = "";
    struct tokens *t = tokens_new(path, err, sizeof err);
    assert_non_null(t);
    struct credential out = {0};
    char why[256];
    assert_int_equal(tokens_check(t, "alpha-token", NOW, &out, why, sizeof why), PROXY_ERR_REFUSED);
    assert_int_equal(tokens_check(t, "x", NOW, &out, NULL, 0), PROXY_ERR_REFUSED);
    assert_null(out.user);
    tokens_free(t);
}

/* ---- re-reading ---- */

static enum proxy_err check(struct tokens *t, const char *token, const char *want_user)
{
    struct credential out = {0};
    char why[256] = "";
    enum proxy_err v = tokens_check(t, token, NOW, &out, why, sizeof why);
    if (v == PROXY_OK && want_user)
        assert_string_equal(out.user, want_user);
    credential_clear(&out);
    return v;
}

static void test_reload_on_change(void **state)
{
    (void)state;
    char text[512];
    snprintf(text, sizeof text, "%s alice\n%s\n", alpha, beta);
    write_text(path, text);
    char err[512] = "";
    struct tokens *t = tokens_new(path, err, sizeof err);
    assert_non_null(t);
    assert_int_equal(check(t, "alpha-token", "alice"), PROXY_OK);

    /* alpha revoked, delta added, beta renamed. */
    snprintf(text, sizeof text, "%s bob\n%s dave\n", beta, delta);
    write_text(path, text);
    past_check_interval();
    assert_int_equal(check(t, "alpha-token", NULL), PROXY_ERR_REFUSED);
    assert_int_equal(check(t, "delta-token", "dave"), PROXY_OK);
    assert_int_equal(check(t, "beta-token", "bob"), PROXY_OK);

    /* Rewritten in place (same inode, same size), its mtime set ahead: a
     * changed mtime alone is enough. */
    snprintf(text, sizeof text, "%s bob\n%s carl\n", beta, gamma_);
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    struct timespec times[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = time(NULL) + 60}};
    assert_int_equal(futimens(fd, times), 0);
    close(fd);
    past_check_interval();
    assert_int_equal(check(t, "delta-token", NULL), PROXY_ERR_REFUSED);
    assert_int_equal(check(t, "gamma", "carl"), PROXY_OK);
    tokens_free(t);
}

static void test_bad_reload_keeps_old_list(void **state)
{
    (void)state;
    char text[512];
    snprintf(text, sizeof text, "%s alice\n", alpha);
    write_text(path, text);
    char err[512] = "", log[4096];
    struct tokens *t = tokens_new(path, err, sizeof err);
    assert_non_null(t);

    /* A bad edit: the old list stays, one error for the change however
     * many requests and checks follow. */
    snprintf(text, sizeof text, "%s alice\n%s dave\nnot-a-digest\n", alpha, delta);
    write_text(path, text);
    past_check_interval();
    struct unit_capture cap;
    unit_capture_begin(&cap, dir);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(check(t, "alpha-token", "alice"), PROXY_OK);
        assert_int_equal(check(t, "delta-token", NULL), PROXY_ERR_REFUSED);
    }
    past_check_interval(); /* the file is recent: re-read, same content */
    assert_int_equal(check(t, "alpha-token", "alice"), PROXY_OK);
    int errors = unit_capture_end(&cap, "level=error", log, sizeof log);
    assert_int_equal(errors, 1);
    assert_non_null(strstr(log, "line 3"));
    assert_non_null(strstr(log, path));

    /* The file removed: still the old list, one error however many
     * checks find it missing. */
    assert_int_equal(unlink(path), 0);
    past_check_interval();
    unit_capture_begin(&cap, dir);
    assert_int_equal(check(t, "alpha-token", "alice"), PROXY_OK);
    past_check_interval();
    assert_int_equal(check(t, "alpha-token", "alice"), PROXY_OK);
    errors = unit_capture_end(&cap, "level=error", log, sizeof log);
    assert_int_equal(errors, 1);

    /* Fixed: the new list is taken. */
    snprintf(text, sizeof text, "%s dave\n", delta);
    write_text(path, text);
    past_check_interval();
    assert_int_equal(check(t, "delta-token", "dave"), PROXY_OK);
    assert_int_equal(check(t, "alpha-token", NULL), PROXY_ERR_REFUSED);
    tokens_free(t);
}

/* ---- many threads ---- */

struct worker {
    struct tokens *t;
    atomic_bool *stop;
    unsigned checks, wrong;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    while (!atomic_load(w->stop) || w->checks < 20) {
        struct credential out = {0};
        /* beta is in every version of the file, alpha never. */
        if (tokens_check(w->t, "beta-token", NOW, &out, NULL, 0) != PROXY_OK ||
            tokens_check(w->t, "alpha-token", NOW, &out, NULL, 0) != PROXY_ERR_REFUSED)
            w->wrong++;
        credential_clear(&out);
        w->checks++;
    }
    return NULL;
}

static void test_concurrent_checks_across_a_reload(void **state)
{
    (void)state;
    char text[512];
    snprintf(text, sizeof text, "%s bob\n", beta);
    write_text(path, text);
    char err[512] = "";
    struct tokens *t = tokens_new(path, err, sizeof err);
    assert_non_null(t);
    atomic_bool stop = false;
    struct worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){t, &stop, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    snprintf(text, sizeof text, "%s bob\n%s dave\n", beta, delta);
    write_text(path, text);
    past_check_interval();
    atomic_store(&stop, true);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].wrong, 0);
    }
    assert_int_equal(check(t, "delta-token", "dave"), PROXY_OK);
    tokens_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_load_nul_byte),
        cmocka_unit_test(test_load_unreadable),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_empty_list_lets_no_one_in),
        cmocka_unit_test(test_reload_on_change),
        cmocka_unit_test(test_bad_reload_keeps_old_list),
        cmocka_unit_test(test_concurrent_checks_across_a_reload),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
