/* test_ops.c: which operations endpoint a request line names
 * (handlers/ops.c ops_match): exact paths only, the query cut off, an
 * endpoint turned off never matches. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "handlers/ops.h"
#include "unit.h"

struct match_row {
    const char *uri;
    enum ops_endpoint want;
};

static const struct match_row match_rows[] = {
    {"/openova-flow/healthz", OPS_HEALTH},
    {"/openova-flow/readyz", OPS_READY},
    {"/openova-flow/metrics", OPS_METRICS},
    {"/openova-flow/metrics?x=1", OPS_METRICS},
    {"/openova-flow/status?json", OPS_NONE}, /* off in this configuration */
    {"/openova-flow/healthz/", OPS_NONE},
    {"/openova-flow/healthzz", OPS_NONE},
    {"/openova-flow/", OPS_NONE},
    {"/openova-flow", OPS_NONE},
    {"/OPENOVA-FLOW/healthz", OPS_NONE},
    {"/openova-flow/%68ealthz", OPS_NONE},
    {"/api/v1/flows/healthz/snapshot", OPS_NONE},
    {"", OPS_NONE},
    {"?", OPS_NONE},
};

static void test_ops_match(void **state)
{
    (void)state;
    struct proxy_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.health_path = (char *)"/openova-flow/healthz";
    cfg.ready_path = (char *)"/openova-flow/readyz";
    cfg.metrics_path = (char *)"/openova-flow/metrics";
    cfg.status_path = NULL;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(match_rows); i++) {
        enum ops_endpoint got = ops_match(&cfg, match_rows[i].uri);
        if (got != match_rows[i].want)
            unit_fail(&failures, i, match_rows[i].uri, "endpoint %d, want %d", got, match_rows[i].want);
    }
    if (ops_match(&cfg, NULL) != OPS_NONE)
        unit_fail(&failures, UNIT_LEN(match_rows), "NULL", "matched");
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
