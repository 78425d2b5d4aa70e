/* test_route.c: request-line routing (route_lookup) and deployment id checks (route_id_valid). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "handlers/route.h"
#include "unit.h"

#define BASE "/api/v1/flows"

/* Filled by setup(): rows point at them. */
static char id128[ROUTE_ID_MAX + 1];
static char uri_id128[sizeof BASE + ROUTE_ID_MAX + 16];
static char uri_id129[sizeof BASE + ROUTE_ID_MAX + 16];
static char uri_id128_escaped[sizeof BASE + 3 * ROUTE_ID_MAX + 16]; /* every 'a' as %61 */
static char uri_id129_escaped[sizeof BASE + 3 * ROUTE_ID_MAX + 16];
static char uri_path4096[ROUTE_PATH_MAX + 16];  /* a path of exactly ROUTE_PATH_MAX bytes */
static char uri_path4097[ROUTE_PATH_MAX + 16];  /* one byte more */
static char uri_long_query[ROUTE_PATH_MAX * 2]; /* short path, query past ROUTE_PATH_MAX */

static int setup(void **state)
{
    (void)state;
    memset(id128, 'a', ROUTE_ID_MAX);
    id128[ROUTE_ID_MAX] = '\0';
    snprintf(uri_id128, sizeof uri_id128, BASE "/%s/snapshot", id128);
    snprintf(uri_id129, sizeof uri_id129, BASE "/%sb/snapshot", id128);
    char escaped[3 * ROUTE_ID_MAX + 1];
    for (size_t i = 0; i < ROUTE_ID_MAX; i++)
        memcpy(escaped + 3 * i, "%61", 3);
    escaped[3 * ROUTE_ID_MAX] = '\0';
    snprintf(uri_id128_escaped, sizeof uri_id128_escaped, BASE "/%s/snapshot", escaped);
    snprintf(uri_id129_escaped, sizeof uri_id129_escaped, BASE "/%s%%61/snapshot", escaped);

    /* BASE "/" id "/snapshot" with the id padding the path to the length. */
    size_t fixed = strlen(BASE "/") + strlen("/snapshot");
    size_t id_len = ROUTE_PATH_MAX - fixed;
    memcpy(uri_path4096, BASE "/", strlen(BASE "/"));
    memset(uri_path4096 + strlen(BASE "/"), 'p', id_len);
    strcpy(uri_path4096 + strlen(BASE "/") + id_len, "/snapshot");
    memcpy(uri_path4097, BASE "/", strlen(BASE "/"));
    memset(uri_path4097 + strlen(BASE "/"), 'p', id_len + 1);
    strcpy(uri_path4097 + strlen(BASE "/") + id_len + 1, "/snapshot?x=1");

    int n = snprintf(uri_long_query, sizeof uri_long_query, BASE "/d/stream?");
    memset(uri_long_query + n, 'q', sizeof uri_long_query - (size_t)n - 1);
    uri_long_query[sizeof uri_long_query - 1] = '\0';
    return 0;
}

struct route_row {
    const char *name;
    const char *base;
    const char *method;
    const char *uri;
    enum route_result result;
    const char *suffix; /* the entry expected (OK, BAD_METHOD), NULL for none */
    const char *allow;  /* that entry's method: the Allow header of a 405 */
    const char *id;     /* the id expected for OK; "" otherwise */
};

#define OK ROUTE_OK
#define NF ROUTE_NOT_FOUND
#define BM ROUTE_BAD_METHOD
#define REQ ROUTE_ID_REQUIRED
#define INV ROUTE_ID_INVALID
#define LONG ROUTE_URI_TOO_LONG

static const struct route_row route_rows[] = {
    /* the three routes */
    {"snapshot", BASE, "GET", BASE "/d1/snapshot", OK, "snapshot", "GET", "d1"},
    {"events", BASE, "POST", BASE "/d1/events", OK, "events", "POST", "d1"},
    {"stream", BASE, "GET", BASE "/d1/stream", OK, "stream", "GET", "d1"},
    /* query and fragment are not part of the path */
    {"query ignored", BASE, "GET", BASE "/d/snapshot?x=1", OK, "snapshot", "GET", "d"},
    {"empty query", BASE, "GET", BASE "/d/snapshot?", OK, "snapshot", "GET", "d"},
    {"query with slashes", BASE, "GET", BASE "/d/snapshot?next=/a/b/events", OK, "snapshot", "GET", "d"},
    {"fragment ignored", BASE, "GET", BASE "/d/stream#top", OK, "stream", "GET", "d"},
    {"fragment then query", BASE, "POST", BASE "/d/events#a?b", OK, "events", "POST", "d"},
    /* wrong method: 405 with the entry, checked before the id */
    {"POST snapshot", BASE, "POST", BASE "/d/snapshot", BM, "snapshot", "GET", ""},
    {"GET events", BASE, "GET", BASE "/d/events", BM, "events", "POST", ""},
    {"DELETE stream", BASE, "DELETE", BASE "/d/stream", BM, "stream", "GET", ""},
    {"HEAD snapshot", BASE, "HEAD", BASE "/d/snapshot", BM, "snapshot", "GET", ""},
    {"lowercase get", BASE, "get", BASE "/d/snapshot", BM, "snapshot", "GET", ""},
    {"empty method", BASE, "", BASE "/d/snapshot", BM, "snapshot", "GET", ""},
    {"bad method before empty id", BASE, "POST", BASE "//snapshot", BM, "snapshot", "GET", ""},
    {"bad method before bad id", BASE, "GET", BASE "/a%20b/events", BM, "events", "POST", ""},
    {"NULL method", BASE, NULL, BASE "/d/snapshot", NF, NULL, NULL, ""},
    /* unknown suffixes and other paths */
    {"unknown suffix", BASE, "GET", BASE "/d/status", NF, NULL, NULL, ""},
    {"suffix case", BASE, "GET", BASE "/d/Snapshot", NF, NULL, NULL, ""},
    {"suffix prefix", BASE, "GET", BASE "/d/snap", NF, NULL, NULL, ""},
    {"suffix longer", BASE, "GET", BASE "/d/snapshots", NF, NULL, NULL, ""},
    {"suffix with params", BASE, "GET", BASE "/d/snapshot;v=1", NF, NULL, NULL, ""},
    {"trailing slash", BASE, "GET", BASE "/d/snapshot/", NF, NULL, NULL, ""},
    {"base alone", BASE, "GET", BASE, NF, NULL, NULL, ""},
    {"base slash", BASE, "GET", BASE "/", NF, NULL, NULL, ""},
    /* {base}/{id} is the purge's, DELETE alone (dispatch makes it not found
     * unless it is enabled) */
    {"base and id only", BASE, "GET", BASE "/d", BM, "", "DELETE", ""},
    {"base and id slash", BASE, "GET", BASE "/d/", NF, NULL, NULL, ""},
    {"purge and id slash", BASE, "DELETE", BASE "/d/", NF, NULL, NULL, ""},
    {"suffix without id segment", BASE, "GET", BASE "/snapshot", BM, "", "DELETE", ""},
    {"purge", BASE, "DELETE", BASE "/d1", OK, "", "DELETE", "d1"},
    {"purge with query", BASE, "DELETE", BASE "/d1?x=1", OK, "", "DELETE", "d1"},
    {"purge bad id", BASE, "DELETE", BASE "/a%20b", INV, "", "DELETE", ""},
    {"purge dotdot", BASE, "DELETE", BASE "/..", INV, "", "DELETE", ""},
    {"purge of base", BASE, "DELETE", BASE "/", NF, NULL, NULL, ""},
    {"purge two segments", BASE, "DELETE", BASE "/a/b", NF, NULL, NULL, ""},
    {"base with query", BASE, "GET", BASE "?/d/snapshot", NF, NULL, NULL, ""},
    {"base prefix of segment", BASE, "GET", BASE "x/d/snapshot", NF, NULL, NULL, ""},
    {"other prefix", BASE, "GET", "/api/v2/flows/d/snapshot", NF, NULL, NULL, ""},
    {"base case", BASE, "GET", "/API/v1/flows/d/snapshot", NF, NULL, NULL, ""},
    {"encoded base", BASE, "GET", "/api/v1/%66lows/d/snapshot", NF, NULL, NULL, ""},
    {"no leading slash", BASE, "GET", "api/v1/flows/d/snapshot", NF, NULL, NULL, ""},
    {"root", BASE, "GET", "/", NF, NULL, NULL, ""},
    {"empty uri", BASE, "GET", "", NF, NULL, NULL, ""},
    {"asterisk", BASE, "GET", "*", NF, NULL, NULL, ""},
    {"NULL uri", BASE, "GET", NULL, NF, NULL, NULL, ""},
    /* ids */
    {"empty id", BASE, "GET", BASE "//snapshot", REQ, "snapshot", "GET", ""},
    {"empty id events", BASE, "POST", BASE "//events", REQ, "events", "POST", ""},
    {"id 128", BASE, "GET", uri_id128, OK, "snapshot", "GET", id128},
    {"id 129", BASE, "GET", uri_id129, INV, "snapshot", "GET", ""},
    {"id dot", BASE, "GET", BASE "/./snapshot", INV, "snapshot", "GET", ""},
    {"id dotdot", BASE, "GET", BASE "/../snapshot", INV, "snapshot", "GET", ""},
    {"id three dots", BASE, "GET", BASE "/.../snapshot", OK, "snapshot", "GET", "..."},
    {"id a.b", BASE, "GET", BASE "/a.b/snapshot", OK, "snapshot", "GET", "a.b"},
    {"id ~_-", BASE, "GET", BASE "/~_-/stream", OK, "stream", "GET", "~_-"},
    {"id mixed", BASE, "POST", BASE "/Prod-EU_1.v2~x/events", OK, "events", "POST", "Prod-EU_1.v2~x"},
    /* percent-encoded unreserved characters are those characters (RFC 3986 2.3) */
    {"id percent-encoded", BASE, "GET", BASE "/%2D/snapshot", OK, "snapshot", "GET", "-"},
    {"id escape lower hex", BASE, "GET", BASE "/dep%2dx/snapshot", OK, "snapshot", "GET", "dep-x"},
    {"id every char escaped", BASE, "GET", BASE "/%64%65%70%7E%2E%5F%31/stream", OK, "stream", "GET", "dep~._1"},
    {"id escaped slash", BASE, "GET", BASE "/a%2Fb/snapshot", INV, "snapshot", "GET", ""},
    {"id escaped percent", BASE, "GET", BASE "/a%25b/snapshot", INV, "snapshot", "GET", ""},
    {"id escaped space", BASE, "GET", BASE "/a%20b/snapshot", INV, "snapshot", "GET", ""},
    {"id escaped NUL", BASE, "GET", BASE "/a%00b/snapshot", INV, "snapshot", "GET", ""},
    {"id escaped high byte", BASE, "GET", BASE "/a%C3%A9/snapshot", INV, "snapshot", "GET", ""},
    {"id bad hex", BASE, "GET", BASE "/a%zzb/snapshot", INV, "snapshot", "GET", ""},
    {"id short escape", BASE, "GET", BASE "/ab%2/snapshot", INV, "snapshot", "GET", ""},
    {"id lone percent", BASE, "GET", BASE "/%/snapshot", INV, "snapshot", "GET", ""},
    {"id escaped dotdot", BASE, "GET", BASE "/%2E%2E/snapshot", INV, "snapshot", "GET", ""},
    {"id escaped to 128", BASE, "GET", uri_id128_escaped, OK, "snapshot", "GET", id128},
    {"id escaped to 129", BASE, "GET", uri_id129_escaped, INV, "snapshot", "GET", ""},
    {"id with slash", BASE, "GET", BASE "/a/b/snapshot", INV, "snapshot", "GET", ""},
    {"id dot segments", BASE, "GET", BASE "/../../etc/snapshot", INV, "snapshot", "GET", ""},
    {"id empty segment", BASE, "GET", BASE "/a//snapshot", INV, "snapshot", "GET", ""},
    {"id unicode", BASE, "GET", BASE "/caf\xc3\xa9/snapshot", INV, "snapshot", "GET", ""},
    {"id high byte", BASE, "GET", BASE "/\xff/snapshot", INV, "snapshot", "GET", ""},
    {"id space", BASE, "GET", BASE "/a b/snapshot", INV, "snapshot", "GET", ""},
    {"id control", BASE, "GET", BASE "/a\x01/snapshot", INV, "snapshot", "GET", ""},
    {"id plus", BASE, "GET", BASE "/a+b/snapshot", INV, "snapshot", "GET", ""},
    {"id colon", BASE, "GET", BASE "/a:b/snapshot", INV, "snapshot", "GET", ""},
    /* routes at the root */
    {"root base ok", "", "GET", "/d/snapshot", OK, "snapshot", "GET", "d"},
    {"root base events", "", "POST", "/d/events?x", OK, "events", "POST", "d"},
    {"root base empty id", "", "GET", "//snapshot", REQ, "snapshot", "GET", ""},
    {"root base suffix only", "", "GET", "/snapshot", BM, "", "DELETE", ""},
    {"root base slash", "", "GET", "/", NF, NULL, NULL, ""},
    {"root base full path", "", "GET", BASE "/d/snapshot", INV, "snapshot", "GET", ""},
    {"root base no slash", "", "GET", "d/snapshot", NF, NULL, NULL, ""},
    /* length */
    {"path of 4096", BASE, "GET", uri_path4096, INV, "snapshot", "GET", ""},
    {"path of 4097", BASE, "GET", uri_path4097, LONG, NULL, NULL, ""},
    {"long query", BASE, "GET", uri_long_query, OK, "stream", "GET", "d"},
};

static void test_route_match(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(route_rows); i++) {
        const struct route_row *r = &route_rows[i];
        struct route_match m;
        memset(&m, 0x5a, sizeof m); /* results must not depend on what was there */
        enum route_result got = route_lookup(r->base, r->method, r->uri, &m);
        if (got != r->result) {
            unit_fail(&failures, i, r->name, "result %d, want %d", (int)got, (int)r->result);
            continue;
        }
        if (!r->suffix && m.entry)
            unit_fail(&failures, i, r->name, "entry \"%s\" set, want none", m.entry->suffix);
        if (r->suffix && (!m.entry || strcmp(m.entry->suffix, r->suffix) != 0))
            unit_fail(&failures, i, r->name, "entry \"%s\", want \"%s\"", m.entry ? m.entry->suffix : "(none)",
                      r->suffix);
        if (r->suffix && m.entry && strcmp(m.entry->method, r->allow) != 0)
            unit_fail(&failures, i, r->name, "allow \"%s\", want \"%s\"", m.entry->method, r->allow);
        if (strcmp(m.id, r->id) != 0)
            unit_fail(&failures, i, r->name, "id \"%.40s\", want \"%.40s\"", m.id, r->id);
    }
    unit_done(failures);
}

/* The table itself: each route's method, upstream suffix, handler, whether
 * it reads a body and which authentication list it takes. */
struct entry_row {
    const char *suffix;
    enum route_kind route;
    const char *method;
    bool reads_body;
    enum auth_scope auth;
};

static const struct entry_row entry_rows[] = {
    {"snapshot", ROUTE_SNAPSHOT, "GET", false, AUTH_SCOPE_READ},
    {"events", ROUTE_EVENTS, "POST", true, AUTH_SCOPE_EVENTS},
    {"stream", ROUTE_STREAM, "GET", false, AUTH_SCOPE_READ},
    {"", ROUTE_PURGE, "DELETE", false, AUTH_SCOPE_DELETE},
};

static void test_route_entries(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(entry_rows); i++) {
        const struct entry_row *r = &entry_rows[i];
        char uri[64];
        snprintf(uri, sizeof uri, r->suffix[0] ? "/x/%s" : "/x%s", r->suffix);
        struct route_match m;
        if (route_lookup("", r->method, uri, &m) != ROUTE_OK || !m.entry) {
            unit_fail(&failures, i, r->suffix, "does not route");
            continue;
        }
        if (m.entry->kind != r->route)
            unit_fail(&failures, i, r->suffix, "route %d, want %d", (int)m.entry->kind, (int)r->route);
        if (strcmp(m.entry->method, r->method) != 0)
            unit_fail(&failures, i, r->suffix, "method %s, want %s", m.entry->method, r->method);
        if (m.entry->reads_body != r->reads_body || m.entry->auth != r->auth)
            unit_fail(&failures, i, r->suffix, "reads_body %d auth %d, want %d %d", m.entry->reads_body,
                      (int)m.entry->auth, r->reads_body, (int)r->auth);
        if (!m.entry->handler)
            unit_fail(&failures, i, r->suffix, "no handler");
    }
    unit_done(failures);
}

struct id_row {
    const char *name;
    const char *id;
    size_t len;
    bool valid;
};

#define ID(s) s, sizeof(s) - 1

static const struct id_row id_rows[] = {
    {"one char", ID("a"), true},
    {"128", id128, ROUTE_ID_MAX, true},
    {"129", id128, ROUTE_ID_MAX + 1, false}, /* reads the NUL: one byte too many, and not allowed */
    {"empty", ID(""), false},
    {"dot", ID("."), false},
    {"dotdot", ID(".."), false},
    {"three dots", ID("..."), true},
    {"dot prefix", ID(".a"), true},
    {"a.b", ID("a.b"), true},
    {"unreserved marks", ID("~_-"), true},
    {"alnum", ID("AZaz09"), true},
    {"percent", ID("%2D"), false},
    {"slash", ID("a/b"), false},
    {"backslash", ID("a\\b"), false},
    {"space", ID("a b"), false},
    {"NUL inside", ID("a\0b"), false},
    {"utf-8", ID("\xc3\xa9"), false},
    {"DEL", ID("a\x7f"), false},
    {"prefix of a longer string", "ab/c", 2, true},
    {"dot prefix of longer", "..x", 2, false},
};

static void test_id_valid(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(id_rows); i++) {
        const struct id_row *r = &id_rows[i];
        bool got = route_id_valid(r->id, r->len);
        if (got != r->valid)
            unit_fail(&failures, i, r->name, "valid=%d, want %d", got, r->valid);
    }
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_match),
        cmocka_unit_test(test_route_entries),
        cmocka_unit_test(test_id_valid),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
