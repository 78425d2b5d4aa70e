/* test_dispatch.c: the dispatcher's table from a route result to the status,
 * code and sentence of its refusal (handlers/dispatch.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "handlers/dispatch.h"
#include "unit.h"

struct refusal_row {
    const char *name;
    enum route_result result;
    int status; /* 0: no refusal (the handler runs) */
    const char *code;
    const char *message;
};

#define ROW(result, status, code, message) {#result, result, status, code, message}

static const struct refusal_row refusal_rows[] = {
    ROW(ROUTE_OK, 0, NULL, NULL),
    ROW(ROUTE_NOT_FOUND, 404, "not_found", "No such route."),
    ROW(ROUTE_BAD_METHOD, 405, "method_not_allowed", "This route does not take that method."),
    ROW(ROUTE_ID_REQUIRED, 400, "bad_request", "deploymentId required"),
    ROW(ROUTE_ID_INVALID, 400, "invalid_deployment_id",
        "deploymentId must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ -."),
    ROW(ROUTE_URI_TOO_LONG, 414, "uri_too_long", "The request path is too long."),
    ROW((enum route_result)99, 0, NULL, NULL),
};

static void test_route_refusals(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(refusal_rows); i++) {
        const struct refusal_row *r = &refusal_rows[i];
        const struct dispatch_refusal *got = dispatch_route_refusal(r->result);
        if (!r->status) {
            if (got)
                unit_fail(&failures, i, r->name, "refused with %d, want no refusal", got->status);
            continue;
        }
        if (!got) {
            unit_fail(&failures, i, r->name, "no refusal, want %d", r->status);
            continue;
        }
        if (got->status != r->status)
            unit_fail(&failures, i, r->name, "status %d, want %d", got->status, r->status);
        if (strcmp(got->code, r->code) != 0)
            unit_fail(&failures, i, r->name, "code %s, want %s", got->code, r->code);
        if (strcmp(got->message, r->message) != 0)
            unit_fail(&failures, i, r->name, "message \"%s\", want \"%s\"", got->message, r->message);
    }
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
