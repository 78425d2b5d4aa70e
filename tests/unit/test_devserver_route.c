/* test_devserver_route.c: the flow server's route table: paths, methods
 * (405 before 400), the reference's 405 for other paths under /v1/flows/,
 * opaque flow ids, and the id checks of --strict. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "../../devserver/route.h"
#include "unit.h"

#define F "/v1/flows/"

static char id_max[DS_FLOW_ID_MAX + 1];
static char path_id_max[DS_FLOW_ID_MAX + 32];
static char path_id_over[DS_FLOW_ID_MAX + 32];
static char path_id129[DS_FLOW_ID_MAX + 32];

static int setup(void **state)
{
    (void)state;
    memset(id_max, 'a', DS_FLOW_ID_MAX);
    id_max[DS_FLOW_ID_MAX] = '\0';
    snprintf(path_id_max, sizeof path_id_max, F "%s/stream", id_max);
    snprintf(path_id_over, sizeof path_id_over, F "%sb/stream", id_max);
    snprintf(path_id129, sizeof path_id129, F "%.129s/stream", id_max);
    return 0;
}

struct route_row {
    const char *name;
    bool strict;
    const char *method;
    const char *path;
    enum ds_route_result result;
    int route;         /* the entry expected, -1 for none */
    const char *allow; /* that entry's method */
    const char *id;    /* flow id expected for OK */
};

#define OK DS_ROUTE_OK
#define NF DS_ROUTE_NOT_FOUND
#define BM DS_ROUTE_BAD_METHOD
#define NP DS_ROUTE_NO_SUCH_PATH
#define BID DS_ROUTE_BAD_FLOW_ID

static const struct route_row rows[] = {
    {"events", false, "POST", F "d1/events", OK, DS_ROUTE_EVENTS, "POST", "d1"},
    {"snapshot", false, "GET", F "d1/snapshot", OK, DS_ROUTE_SNAPSHOT, "GET", "d1"},
    {"stream", false, "GET", F "d1/stream", OK, DS_ROUTE_STREAM, "GET", "d1"},
    {"purge", false, "DELETE", F "d1", OK, DS_ROUTE_PURGE, "DELETE", "d1"},
    {"healthz", false, "GET", "/healthz", OK, DS_ROUTE_HEALTHZ, "GET", ""},
    {"readyz", false, "GET", "/readyz", OK, DS_ROUTE_READYZ, "GET", ""},
    {"flow named events", false, "DELETE", F "events", OK, DS_ROUTE_PURGE, "DELETE", "events"},
    {"flow named stream", false, "GET", F "stream/stream", OK, DS_ROUTE_STREAM, "GET", "stream"},
    /* wrong methods: 405 with the route's one method */
    {"GET events", false, "GET", F "d/events", BM, DS_ROUTE_EVENTS, "POST", ""},
    {"PUT events", false, "PUT", F "d/events", BM, DS_ROUTE_EVENTS, "POST", ""},
    {"POST snapshot", false, "POST", F "d/snapshot", BM, DS_ROUTE_SNAPSHOT, "GET", ""},
    {"HEAD stream", false, "HEAD", F "d/stream", BM, DS_ROUTE_STREAM, "GET", ""},
    {"GET flow", false, "GET", F "d", BM, DS_ROUTE_PURGE, "DELETE", ""},
    {"POST healthz", false, "POST", "/healthz", BM, DS_ROUTE_HEALTHZ, "GET", ""},
    {"DELETE readyz", false, "DELETE", "/readyz", BM, DS_ROUTE_READYZ, "GET", ""},
    {"lowercase post", false, "post", F "d/events", BM, DS_ROUTE_EVENTS, "POST", ""},
    {"bad method before bad id", true, "GET", F "a b/events", BM, DS_ROUTE_EVENTS, "POST", ""},
    /* other paths under the flows prefix: 405 without an entry, as the reference */
    {"flows slash", false, "DELETE", F, NP, -1, NULL, ""},
    {"unknown suffix", false, "GET", F "d/status", NP, -1, NULL, ""},
    {"suffix case", false, "GET", F "d/Snapshot", NP, -1, NULL, ""},
    {"trailing slash", false, "GET", F "d/snapshot/", NP, -1, NULL, ""},
    {"purge trailing slash", false, "DELETE", F "d/", NP, -1, NULL, ""},
    {"empty id", false, "POST", F "/events", NP, -1, NULL, ""},
    {"id with slash", false, "GET", F "a/b/snapshot", NP, -1, NULL, ""},
    {"unknown suffix, strict too", true, "GET", F "d/status", NP, -1, NULL, ""},
    /* anything else: 404 */
    {"root", false, "GET", "/", NF, -1, NULL, ""},
    {"empty", false, "GET", "", NF, -1, NULL, ""},
    {"flows", false, "GET", "/v1/flows", NF, -1, NULL, ""},
    {"healthz slash", false, "GET", "/healthz/", NF, -1, NULL, ""},
    {"v2", false, "GET", "/v2/flows/d/snapshot", NF, -1, NULL, ""},
    {"no leading slash", false, "GET", "v1/flows/d/snapshot", NF, -1, NULL, ""},
    {"NULL path", false, "GET", NULL, NF, -1, NULL, ""},
    {"NULL method", false, NULL, "/healthz", NF, -1, NULL, ""},
    /* flow ids: opaque, bounded */
    {"id at the bound", false, "GET", path_id_max, OK, DS_ROUTE_STREAM, "GET", id_max},
    {"id past the bound", false, "GET", path_id_over, BID, DS_ROUTE_STREAM, "GET", ""},
    {"id space", false, "POST", F "a b/events", OK, DS_ROUTE_EVENTS, "POST", "a b"},
    {"id colon", false, "GET", F "a:b/stream", OK, DS_ROUTE_STREAM, "GET", "a:b"},
    {"id unicode", false, "GET", F "caf\xc3\xa9/stream", OK, DS_ROUTE_STREAM, "GET", "caf\xc3\xa9"},
    {"id dot", false, "GET", F "./snapshot", OK, DS_ROUTE_SNAPSHOT, "GET", "."},
    /* flow ids under --strict: what the proxy accepts */
    {"strict id of 129 bytes", true, "GET", path_id129, BID, DS_ROUTE_STREAM, "GET", ""},
    {"strict every allowed class", true, "GET", F "Az09._~-/snapshot", OK, DS_ROUTE_SNAPSHOT, "GET", "Az09._~-"},
    {"strict id dot", true, "GET", F "./snapshot", BID, DS_ROUTE_SNAPSHOT, "GET", ""},
    {"strict id dotdot", true, "DELETE", F "..", BID, DS_ROUTE_PURGE, "DELETE", ""},
    {"strict id three dots", true, "DELETE", F "...", OK, DS_ROUTE_PURGE, "DELETE", "..."},
    {"strict id space", true, "POST", F "a b/events", BID, DS_ROUTE_EVENTS, "POST", ""},
    {"strict id percent", true, "POST", F "a%20b/events", BID, DS_ROUTE_EVENTS, "POST", ""},
    {"strict id plus", true, "GET", F "a+b/stream", BID, DS_ROUTE_STREAM, "GET", ""},
    {"strict id colon", true, "GET", F "a:b/stream", BID, DS_ROUTE_STREAM, "GET", ""},
    {"strict id unicode", true, "GET", F "caf\xc3\xa9/stream", BID, DS_ROUTE_STREAM, "GET", ""},
    {"strict id control", true, "GET", F "a\x01/stream", BID, DS_ROUTE_STREAM, "GET", ""},
};

static void test_route_match(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(rows); i++) {
        const struct route_row *r = &rows[i];
        struct ds_route_match m;
        memset(&m, 0x5a, sizeof m); /* results must not depend on what was there */
        enum ds_route_result got = ds_route_match(r->method, r->path, r->strict, &m);
        if (got != r->result) {
            unit_fail(&failures, i, r->name, "result %d, want %d", (int)got, (int)r->result);
            continue;
        }
        if (r->route < 0 && m.entry)
            unit_fail(&failures, i, r->name, "entry %d set, want none", (int)m.entry->route);
        if (r->route >= 0 && (!m.entry || (int)m.entry->route != r->route))
            unit_fail(&failures, i, r->name, "entry %d, want %d", m.entry ? (int)m.entry->route : -1, r->route);
        if (r->route >= 0 && m.entry && strcmp(m.entry->method, r->allow) != 0)
            unit_fail(&failures, i, r->name, "method %s, want %s", m.entry->method, r->allow);
        if (strcmp(m.flow_id, r->id) != 0)
            unit_fail(&failures, i, r->name, "id \"%.40s\", want \"%.40s\"", m.flow_id, r->id);
    }
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_route_match, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
