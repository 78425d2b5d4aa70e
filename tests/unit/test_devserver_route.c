/* test_devserver_route.c: the flow server's route table: paths, methods
 * (405 before 400), and flow id checks. */
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

static char id128[DS_FLOW_ID_MAX + 1];
static char path_id128[DS_FLOW_ID_MAX + 32];
static char path_id129[DS_FLOW_ID_MAX + 32];

static int setup(void **state)
{
    (void)state;
    memset(id128, 'a', DS_FLOW_ID_MAX);
    id128[DS_FLOW_ID_MAX] = '\0';
    snprintf(path_id128, sizeof path_id128, F "%s/stream", id128);
    snprintf(path_id129, sizeof path_id129, F "%sb/stream", id128);
    return 0;
}

struct route_row {
    const char *name;
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
#define BID DS_ROUTE_BAD_FLOW_ID

static const struct route_row rows[] = {
    {"events", "POST", F "d1/events", OK, DS_ROUTE_EVENTS, "POST", "d1"},
    {"snapshot", "GET", F "d1/snapshot", OK, DS_ROUTE_SNAPSHOT, "GET", "d1"},
    {"stream", "GET", F "d1/stream", OK, DS_ROUTE_STREAM, "GET", "d1"},
    {"purge", "DELETE", F "d1", OK, DS_ROUTE_PURGE, "DELETE", "d1"},
    {"healthz", "GET", "/healthz", OK, DS_ROUTE_HEALTHZ, "GET", ""},
    {"readyz", "GET", "/readyz", OK, DS_ROUTE_READYZ, "GET", ""},
    {"flow named events", "DELETE", F "events", OK, DS_ROUTE_PURGE, "DELETE", "events"},
    {"flow named stream", "GET", F "stream/stream", OK, DS_ROUTE_STREAM, "GET", "stream"},
    /* wrong methods: 405 with the route's one method */
    {"GET events", "GET", F "d/events", BM, DS_ROUTE_EVENTS, "POST", ""},
    {"PUT events", "PUT", F "d/events", BM, DS_ROUTE_EVENTS, "POST", ""},
    {"POST snapshot", "POST", F "d/snapshot", BM, DS_ROUTE_SNAPSHOT, "GET", ""},
    {"HEAD stream", "HEAD", F "d/stream", BM, DS_ROUTE_STREAM, "GET", ""},
    {"GET flow", "GET", F "d", BM, DS_ROUTE_PURGE, "DELETE", ""},
    {"POST healthz", "POST", "/healthz", BM, DS_ROUTE_HEALTHZ, "GET", ""},
    {"DELETE readyz", "DELETE", "/readyz", BM, DS_ROUTE_READYZ, "GET", ""},
    {"lowercase post", "post", F "d/events", BM, DS_ROUTE_EVENTS, "POST", ""},
    {"bad method before bad id", "GET", F "a b/events", BM, DS_ROUTE_EVENTS, "POST", ""},
    /* unknown paths */
    {"root", "GET", "/", NF, -1, NULL, ""},
    {"empty", "GET", "", NF, -1, NULL, ""},
    {"flows", "GET", "/v1/flows", NF, -1, NULL, ""},
    {"flows slash", "DELETE", F, NF, -1, NULL, ""},
    {"unknown suffix", "GET", F "d/status", NF, -1, NULL, ""},
    {"suffix case", "GET", F "d/Snapshot", NF, -1, NULL, ""},
    {"trailing slash", "GET", F "d/snapshot/", NF, -1, NULL, ""},
    {"purge trailing slash", "DELETE", F "d/", NF, -1, NULL, ""},
    {"healthz slash", "GET", "/healthz/", NF, -1, NULL, ""},
    {"v2", "GET", "/v2/flows/d/snapshot", NF, -1, NULL, ""},
    {"no leading slash", "GET", "v1/flows/d/snapshot", NF, -1, NULL, ""},
    {"NULL path", "GET", NULL, NF, -1, NULL, ""},
    {"NULL method", NULL, "/healthz", NF, -1, NULL, ""},
    /* flow ids */
    {"empty id", "POST", F "/events", BID, DS_ROUTE_EVENTS, "POST", ""},
    {"id 128", "GET", path_id128, OK, DS_ROUTE_STREAM, "GET", id128},
    {"id 129", "GET", path_id129, BID, DS_ROUTE_STREAM, "GET", ""},
    {"id every allowed class", "GET", F "Az09._~-/snapshot", OK, DS_ROUTE_SNAPSHOT, "GET", "Az09._~-"},
    {"id dot", "GET", F "./snapshot", BID, DS_ROUTE_SNAPSHOT, "GET", ""},
    {"id dotdot", "DELETE", F "..", BID, DS_ROUTE_PURGE, "DELETE", ""},
    {"id three dots", "DELETE", F "...", OK, DS_ROUTE_PURGE, "DELETE", "..."},
    {"id with slash", "GET", F "a/b/snapshot", BID, DS_ROUTE_SNAPSHOT, "GET", ""},
    {"id space", "POST", F "a b/events", BID, DS_ROUTE_EVENTS, "POST", ""},
    {"id percent", "POST", F "a%20b/events", BID, DS_ROUTE_EVENTS, "POST", ""},
    {"id plus", "GET", F "a+b/stream", BID, DS_ROUTE_STREAM, "GET", ""},
    {"id colon", "GET", F "a:b/stream", BID, DS_ROUTE_STREAM, "GET", ""},
    {"id unicode", "GET", F "caf\xc3\xa9/stream", BID, DS_ROUTE_STREAM, "GET", ""},
    {"id control", "GET", F "a\x01/stream", BID, DS_ROUTE_STREAM, "GET", ""},
};

static void test_route_match(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(rows); i++) {
        const struct route_row *r = &rows[i];
        struct ds_route_match m;
        memset(&m, 0x5a, sizeof m); /* results must not depend on what was there */
        enum ds_route_result got = ds_route_match(r->method, r->path, &m);
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
