/* test_records.c: the console's deployment records (handlers/records.c):
 * the FQDN in a record's text, the upstream template (core/url_template.c),
 * and lookups in a real directory as records come, change and go. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/url_template.h"
#include "handlers/records.h"
#include "unit.h"

/* ---- records_parse ---- */

struct parse_row {
    const char *name;
    const char *text;
    enum records_result result;
    const char *fqdn; /* RECORDS_FOUND */
};

#define FOUND RECORDS_FOUND
#define MALFORMED RECORDS_MALFORMED
#define NO_FQDN RECORDS_NO_FQDN

static const struct parse_row parse_rows[] = {
    {"camel case", "{\"id\":\"0123456789abcdef\",\"request\":{\"sovereignFQDN\":\"omantel.openova.io\"}}", FOUND,
     "omantel.openova.io"},
    {"Go's field names", "{\"ID\":\"x\",\"Request\":{\"SovereignFQDN\":\"sov.example\"}}", FOUND, "sov.example"},
    {"any case", "{\"REQUEST\":{\"SOVEREIGNFQDN\":\"a.example\"}}", FOUND, "a.example"},
    {"other fields around", "{\"status\":\"ok\",\"request\":{\"region\":\"fsn1\",\"sovereignFQDN\":\"b.example\","
                            "\"components\":[1,2,3]},\"events\":[]}",
     FOUND, "b.example"},
    {"the same key twice: the last", "{\"request\":{\"sovereignFQDN\":\"a.example\",\"sovereignFQDN\":\"b.example\"}}",
     FOUND, "b.example"},
    /* json-c keeps a repeated key at its first place, Go takes the last:
     * a record the two could read differently is refused */
    {"two cases of one key", "{\"request\":{\"sovereignFQDN\":\"a.example\",\"SovereignFQDN\":\"b.example\"}}",
     MALFORMED, NULL},
    {"three, interleaved", "{\"request\":{\"sovereignFQDN\":\"a.example\",\"SovereignFQDN\":\"b.example\","
                           "\"sovereignFQDN\":\"c.example\"}}",
     MALFORMED, NULL},
    {"two requests", "{\"request\":{\"sovereignFQDN\":\"a.example\"},\"Request\":{\"other\":1}}", MALFORMED, NULL},
    {"null fqdn", "{\"request\":{\"sovereignFQDN\":null}}", NO_FQDN, NULL},
    {"NUL in a key", "{\"request\":{\"sovereignFQDN\\u0000x\":\"a.example\"}}", MALFORMED, NULL},
    {"a comment", "{\"request\":{\"sovereignFQDN\":\"a.example\"}/* c */}", MALFORMED, NULL},
    {"a trailing comma", "{\"request\":{\"sovereignFQDN\":\"a.example\",}}", MALFORMED, NULL},
    {"white space around", " \n{\"request\":{\"sovereignFQDN\":\"a.example\"}}\n", FOUND, "a.example"},
    {"no request", "{\"id\":\"x\"}", NO_FQDN, NULL},
    {"request null", "{\"request\":null}", NO_FQDN, NULL},
    {"no fqdn", "{\"request\":{}}", NO_FQDN, NULL},
    {"empty fqdn", "{\"request\":{\"sovereignFQDN\":\"\"}}", NO_FQDN, NULL},
    {"fqdn with a path", "{\"request\":{\"sovereignFQDN\":\"evil.example/x\"}}", NO_FQDN, NULL},
    {"fqdn with a user", "{\"request\":{\"sovereignFQDN\":\"user@evil.example\"}}", NO_FQDN, NULL},
    {"fqdn with a port", "{\"request\":{\"sovereignFQDN\":\"evil.example:8443\"}}", NO_FQDN, NULL},
    {"fqdn with a percent", "{\"request\":{\"sovereignFQDN\":\"evil%2eexample\"}}", NO_FQDN, NULL},
    {"fqdn with a query", "{\"request\":{\"sovereignFQDN\":\"evil.example?x\"}}", NO_FQDN, NULL},
    {"fqdn with a fragment", "{\"request\":{\"sovereignFQDN\":\"evil.example#x\"}}", NO_FQDN, NULL},
    {"fqdn with a space", "{\"request\":{\"sovereignFQDN\":\"evil example\"}}", NO_FQDN, NULL},
    {"fqdn with an empty label", "{\"request\":{\"sovereignFQDN\":\"a..example\"}}", NO_FQDN, NULL},
    {"fqdn with a trailing dot", "{\"request\":{\"sovereignFQDN\":\"a.example.\"}}", NO_FQDN, NULL},
    {"fqdn with a NUL", "{\"request\":{\"sovereignFQDN\":\"a.example\\u0000.evil\"}}", MALFORMED, NULL},
    {"fqdn an IPv4 address", "{\"request\":{\"sovereignFQDN\":\"169.254.169.254\"}}", NO_FQDN, NULL},
    {"fqdn a number", "{\"request\":{\"sovereignFQDN\":\"2130706433\"}}", NO_FQDN, NULL},
    {"fqdn not a string", "{\"request\":{\"sovereignFQDN\":42}}", MALFORMED, NULL},
    {"request not an object", "{\"request\":\"a.example\"}", MALFORMED, NULL},
    {"an array", "[{\"request\":{\"sovereignFQDN\":\"a.example\"}}]", MALFORMED, NULL},
    {"not JSON", "request: a.example", MALFORMED, NULL},
    {"cut short", "{\"request\":{\"sovereignFQDN\":\"a.example\"}", MALFORMED, NULL},
    {"text after", "{\"request\":{\"sovereignFQDN\":\"a.example\"}} {}", MALFORMED, NULL},
    {"empty", "", MALFORMED, NULL},
};

static void test_parse(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(parse_rows); i++) {
        const struct parse_row *r = &parse_rows[i];
        char fqdn[HTTP_HOSTNAME_MAX + 1] = "", why[160] = "";
        enum records_result got = records_parse(r->text, strlen(r->text), fqdn, why, sizeof why);
        if (got != r->result)
            unit_fail(&failures, i, r->name, "result %d (%s), want %d", (int)got, why, (int)r->result);
        else if (got == RECORDS_FOUND && strcmp(fqdn, r->fqdn) != 0)
            unit_fail(&failures, i, r->name, "fqdn %s, want %s", fqdn, r->fqdn);
        else if (got != RECORDS_FOUND && !why[0])
            unit_fail(&failures, i, r->name, "no reason given");
    }
    unit_done(failures);
}

/* ---- the template ---- */

struct template_row {
    const char *tmpl;
    bool ok;
    const char *url; /* for the FQDN "sov.example" */
};

static const struct template_row template_rows[] = {
    {URL_TEMPLATE_DEFAULT, true, "https://openova-flow.sov.example"},
    {"http://flow.{sovereignFQDN}:8080", true, "http://flow.sov.example:8080"},
    {"https://{sovereignFQDN}/flow/", true, "https://sov.example/flow"},
    {"https://gateway.example/{sovereignFQDN}", true, "https://gateway.example/sov.example"},
    {"https://flow.example", false, NULL},
    {"https://{sovereignFQDN}.{sovereignFQDN}", false, NULL},
    {"https://{sovereignfqdn}", false, NULL},
    {"https://{region}.{sovereignFQDN}", false, NULL},
    {"https://{sovereignFQDN}}", false, NULL},
    {"ftp://{sovereignFQDN}", false, NULL},
    {"{sovereignFQDN}", false, NULL},
    {"https://{sovereignFQDN}?x=1", false, NULL},
    {"https://{sovereignFQDN}#x", false, NULL},
    {"https://{sovereignFQDN} /x", false, NULL},
    {"https://user:secret@{sovereignFQDN}", false, NULL},
};

static void test_template(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(template_rows); i++) {
        const struct template_row *r = &template_rows[i];
        char why[160] = "";
        bool ok = url_template_check(r->tmpl, why, sizeof why) == PROXY_OK;
        if (ok != r->ok) {
            unit_fail(&failures, i, r->tmpl, "%s, want %s", ok ? "accepted" : why, r->ok ? "accepted" : "refused");
            continue;
        }
        if (!ok)
            continue;
        char *url = url_template_expand(r->tmpl, "sov.example");
        if (!url || strcmp(url, r->url) != 0)
            unit_fail(&failures, i, r->tmpl, "%s, want %s", url ? url : "(null)", r->url);
        free(url);
    }
    unit_done(failures);
}

/* ---- lookups in a directory ---- */

static char dir[64], outside[64];

static int make_dirs(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test-records-XXXXXX");
    snprintf(outside, sizeof outside, "/tmp/test-records-out-XXXXXX");
    return mkdtemp(dir) && mkdtemp(outside) ? 0 : -1;
}

static int remove_dirs(void **state)
{
    (void)state;
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, outside);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text, time_t mtime)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    /* An old stamp: the cache trusts it (a file changed within 2 s is read
     * again whatever its stamp says). */
    struct timeval times[2] = {{mtime, 0}, {mtime, 0}};
    assert_int_equal(utimes(path, times), 0);
}

static void record(const char *id, const char *fqdn, time_t mtime)
{
    char path[128], text[256];
    snprintf(path, sizeof path, "%s/%s.json", dir, id);
    snprintf(text, sizeof text, "{\"id\":\"%s\",\"request\":{\"sovereignFQDN\":\"%s\"}}", id, fqdn);
    write_file(path, text, mtime);
}

static enum records_result lookup(struct records *r, const char *id, char *fqdn)
{
    char why[160];
    return records_lookup(r, id, fqdn, why, sizeof why);
}

static void test_lookup_follows_changes(void **state)
{
    (void)state;
    char err[160], fqdn[HTTP_HOSTNAME_MAX + 1];
    struct records *r = records_open(dir, err, sizeof err);
    assert_non_null(r);
    assert_true(records_present(r));

    assert_int_equal(lookup(r, "dep1", fqdn), RECORDS_NOT_FOUND);
    record("dep1", "a.example", 1000000);
    assert_int_equal(lookup(r, "dep1", fqdn), RECORDS_FOUND); /* added: used at once */
    assert_string_equal(fqdn, "a.example");
    assert_int_equal(lookup(r, "dep1", fqdn), RECORDS_FOUND); /* from the cache */
    assert_string_equal(fqdn, "a.example");

    /* Rewritten in place, same size, another time: read again. */
    record("dep1", "b.example", 1000100);
    assert_int_equal(lookup(r, "dep1", fqdn), RECORDS_FOUND);
    assert_string_equal(fqdn, "b.example");

    /* Replaced by a rename, as a careful writer does. */
    char tmp[128], path[128];
    snprintf(tmp, sizeof tmp, "%s/.dep1.tmp", dir);
    snprintf(path, sizeof path, "%s/dep1.json", dir);
    write_file(tmp, "{\"request\":{\"sovereignFQDN\":\"c.example\"}}", 1000100);
    assert_int_equal(rename(tmp, path), 0);
    assert_int_equal(lookup(r, "dep1", fqdn), RECORDS_FOUND);
    assert_string_equal(fqdn, "c.example");

    /* Broken, then mended. */
    write_file(path, "{\"request\":", 1000200);
    assert_int_equal(lookup(r, "dep1", fqdn), RECORDS_MALFORMED);
    write_file(path, "{\"request\":{\"sovereignFQDN\":\"d.example/x\"}}", 1000300);
    assert_int_equal(lookup(r, "dep1", fqdn), RECORDS_NO_FQDN);
    record("dep1", "e.example", 1000400);
    assert_int_equal(lookup(r, "dep1", fqdn), RECORDS_FOUND);
    assert_string_equal(fqdn, "e.example");

    /* Removed: not found at once, cached or not. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(lookup(r, "dep1", fqdn), RECORDS_NOT_FOUND);

    /* A record written just now is read on every lookup until it is older. */
    record("dep2", "f.example", time(NULL));
    assert_int_equal(lookup(r, "dep2", fqdn), RECORDS_FOUND);
    record("dep2", "g.example", time(NULL));
    assert_int_equal(lookup(r, "dep2", fqdn), RECORDS_FOUND);
    assert_string_equal(fqdn, "g.example");
    records_close(r);
}

static void test_lookup_refuses_hostile_files(void **state)
{
    (void)state;
    char err[160], fqdn[HTTP_HOSTNAME_MAX + 1], path[128], target[128];
    struct records *r = records_open(dir, err, sizeof err);
    assert_non_null(r);

    /* A symlink out of the directory, to a valid record. */
    snprintf(target, sizeof target, "%s/secret.json", outside);
    write_file(target, "{\"request\":{\"sovereignFQDN\":\"evil.example\"}}", 1000000);
    snprintf(path, sizeof path, "%s/out.json", dir);
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(lookup(r, "out", fqdn), RECORDS_UNREADABLE);
    snprintf(path, sizeof path, "%s/dots.json", dir);
    snprintf(target, sizeof target, "../%s/secret.json", strrchr(outside, '/') + 1);
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(lookup(r, "dots", fqdn), RECORDS_UNREADABLE);

    /* Too large: refused before it is read. */
    snprintf(path, sizeof path, "%s/huge.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), RECORDS_FILE_MAX + 1), 0);
    fclose(f);
    assert_int_equal(lookup(r, "huge", fqdn), RECORDS_UNREADABLE);

    /* Not a regular file: a FIFO (which must not block) and a directory. */
    snprintf(path, sizeof path, "%s/fifo.json", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(lookup(r, "fifo", fqdn), RECORDS_UNREADABLE);
    snprintf(path, sizeof path, "%s/sub.json", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(lookup(r, "sub", fqdn), RECORDS_UNREADABLE);
    records_close(r);

    assert_null(records_open("/nonexistent/records", err, sizeof err));
    assert_non_null(strstr(err, "OPENOVA_FLOW_DEPLOYMENTS_DIR"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_template),
        cmocka_unit_test(test_lookup_follows_changes),
        cmocka_unit_test(test_lookup_refuses_hostile_files),
    };
    return cmocka_run_group_tests(tests, make_dirs, remove_dirs);
}
