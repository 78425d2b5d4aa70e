/* dispatch.c: route -> checks -> authenticate -> handler, and the log line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "core/log.h"
#include "fcgi/response.h"
#include "core/metrics.h"
#include "handlers/dispatch.h"
#include "handlers/handlers.h"
#include "handlers/ops.h"
#include "handlers/request_log.h"
#include "handlers/upstreams.h"

static const struct dispatch_refusal route_refusals[] = {
    [ROUTE_NOT_FOUND] = {404, "not_found", "No such route."},
    [ROUTE_BAD_METHOD] = {405, "method_not_allowed", "This route does not take that method."},
    [ROUTE_ID_REQUIRED] = {400, "bad_request", "deploymentId required"},
    [ROUTE_ID_INVALID] = {400, "invalid_deployment_id",
                          "deploymentId must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ -."},
    [ROUTE_URI_TOO_LONG] = {414, "uri_too_long", "The request path is too long."},
};

static const struct dispatch_refusal headers_too_large = {431, "headers_too_large",
                                                          "The request headers are too large."};
static const struct dispatch_refusal bad_content_type = {400, "bad_request",
                                                         "Content-Type is not printable or too long."};
static const struct dispatch_refusal bad_content_length = {400, "bad_request", "Content-Length is not a number."};

/* The console's answers for a deployment it cannot send anywhere. */
static const struct dispatch_refusal target_refusals[] = {
    [UPSTREAMS_NOT_FOUND] = {404, "deployment_not_found", "No deployment with this id is known here."},
    [UPSTREAMS_RECORD_INVALID] = {502, "deployment_record_invalid",
                                  "The deployment's record cannot be read or is not valid JSON."},
    [UPSTREAMS_FQDN_INVALID] = {502, "deployment_fqdn_invalid",
                                "The deployment's record names no usable Sovereign FQDN."},
    [UPSTREAMS_NOMEM] = {500, "internal_error", PROXY_INTERNAL_ERROR_MESSAGE},
};

const struct dispatch_refusal *dispatch_route_refusal(enum route_result result)
{
    if ((size_t)result >= sizeof route_refusals / sizeof route_refusals[0] || !route_refusals[result].status)
        return NULL;
    return &route_refusals[result];
}

static void refuse(struct flow_request *req, const struct dispatch_refusal *r)
{
    char allow[64] = "";
    if (r->status == 405)
        snprintf(allow, sizeof allow, "Allow: %s\r\n", req->route->method);
    fcgi_response_error(req->fcgi, r->status, r->code, r->message, allow[0] ? allow : NULL);
}

/* The metrics' labels of an authentication outcome. */
static void count_auth(const struct auth_outcome *outcome)
{
    static const struct {
        const char *name;
        enum metrics_auth_method label;
    } methods[] = {{"remote-user", METRICS_AUTH_REMOTE_USER}, {"bearer", METRICS_AUTH_BEARER},
                   {"jwt", METRICS_AUTH_JWT}};
    enum metrics_auth_method method = METRICS_AUTH_NONE;
    for (size_t i = 0; outcome->method && i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(outcome->method, methods[i].name) == 0)
            method = methods[i].label;
    enum metrics_auth_outcome result = METRICS_AUTH_ERROR;
    if (!outcome->status)
        result = METRICS_AUTH_ACCEPTED;
    else if (outcome->status == 403)
        result = METRICS_AUTH_FORBIDDEN;
    else if (outcome->status == 401)
        result = strcmp(outcome->code, "unauthorized") == 0 ? METRICS_AUTH_UNAUTHORIZED
                                                             : METRICS_AUTH_INVALID_CREDENTIALS;
    /* A refusal names no method: none of them let the caller in. */
    metrics_auth(outcome->status && result != METRICS_AUTH_ERROR ? METRICS_AUTH_NONE : method, result);
}

/* Decides who the caller is; true to go on, false when already answered. */
static bool authenticate(struct flow_request *req)
{
    struct auth_presented presented = {
        .remote_user = fcgi_request_param(req->fcgi, "REMOTE_USER"),
        .authorization = fcgi_request_param(req->fcgi, "HTTP_AUTHORIZATION"),
        .cookie = fcgi_request_param(req->fcgi, "HTTP_COOKIE"),
        .accepted = auth_accepted(req->cfg, req->route->auth),
    };
    if (presented.accepted == AUTH_NONE) {
        req->auth_method = "none";
        metrics_auth(METRICS_AUTH_NONE, METRICS_AUTH_ACCEPTED);
        return true;
    }
    struct auth_outcome outcome;
    auth_decide(req->auth, &presented, time(NULL), &outcome);
    count_auth(&outcome);
    if (outcome.status) {
        /* The client learns a short code; the log, every check that failed. */
        proxy_log(outcome.status >= 500 ? PROXY_LOG_ERROR : PROXY_LOG_WARN, req->fcgi->request_id, "refused: %s",
                  outcome.reason);
        fcgi_response_error(req->fcgi, outcome.status, outcome.code, outcome.message, outcome.www_authenticate);
        return false;
    }
    req->user = outcome.credential.user;
    req->auth_method = outcome.method;
    req->credential_expires = outcome.credential.expires;
    return true;
}

/* The refusal that stands in the handler's way, or NULL. */
static const struct dispatch_refusal *check(const struct flow_request *req, enum route_result result)
{
    if (result != ROUTE_OK)
        return dispatch_route_refusal(result);
    if (req->fcgi->content_type_invalid)
        return &bad_content_type;
    if (req->route->reads_body && req->fcgi->content_length_invalid)
        return &bad_content_length;
    return NULL;
}

/* Where the deployment's calls go (the console reads its record); true to
 * go on, false when refused: then nothing goes upstream. */
static bool target(struct flow_request *req)
{
    char why[160] = "";
    enum upstreams_target t = upstreams_base(req->upstreams, req->id, &req->upstream_url, &req->upstream_url_owned,
                                             why, sizeof why);
    if (t == UPSTREAMS_OK)
        return true;
    const struct dispatch_refusal *r = &target_refusals[t];
    proxy_log(r->status >= 500 ? PROXY_LOG_ERROR : PROXY_LOG_WARN, req->fcgi->request_id, "refused: deployment %s: %s",
              req->id, why);
    refuse(req, r);
    return false;
}

/* The request's line and counts; refusals name their reason: the error
 * code the client got too. */
static void log_line(const struct flow_request *req, const char *end)
{
    struct request_log_extra line = {.msg = "request", .end = end, .duration_us = -1};
    long long duration_us = fcgi_request_elapsed_us(req->fcgi);
    request_log(req, request_log_level(req), &line);
    request_count(req, duration_us);
}

/* Runs the handler; false when nothing is left to answer or log here. */
static bool run_handler(struct flow_request *req)
{
    enum proxy_err err = req->route->handler(req);
    if (!req->fcgi->fcgx)
        return false; /* a stream: the loop owns it and logs it */
    if (err == PROXY_ERR_CLIENT_GONE && !req->fcgi->out.head_sent) {
        /* A client that left is a normal end: nothing to answer. */
        log_line(req, "client-gone");
        return false;
    }
    return true;
}

static const enum metrics_route route_labels[] = {
    [ROUTE_SNAPSHOT] = METRICS_ROUTE_SNAPSHOT, [ROUTE_EVENTS] = METRICS_ROUTE_EVENTS,
    [ROUTE_STREAM] = METRICS_ROUTE_STREAM, [ROUTE_PURGE] = METRICS_ROUTE_PURGE};

void dispatch(const struct flow_app *app, struct upstream_client *upstream, struct fcgi_request *fcgi)
{
    struct flow_request req = {.fcgi = fcgi, .cfg = app->cfg, .upstream = upstream, .streams = app->streams,
                               .auth = app->auth, .upstreams = app->upstreams, .label = METRICS_ROUTE_NONE,
                               .upstream_us = -1};
    struct route_match match = {0};
    enum ops_endpoint endpoint = ops_match(app->cfg, fcgi->request_uri);
    enum route_result result = endpoint ? ROUTE_NOT_FOUND
                                        : route_lookup(app->cfg->base_path, fcgi->method, fcgi->request_uri, &match);
    if (match.entry && match.entry->kind == ROUTE_PURGE && !app->cfg->purge_enabled) {
        /* Off: {base}/{id} is no route, whatever the method. */
        match.entry = NULL;
        result = ROUTE_NOT_FOUND;
    }
    req.route = endpoint ? NULL : match.entry;
    if (req.route)
        req.label = route_labels[req.route->kind];
    bool answer = true;
    if (fcgi->headers_too_large) {
        refuse(&req, &headers_too_large);
    } else if (endpoint) {
        ops_serve(app->ops, &req, endpoint);
    } else if (result == ROUTE_NOT_FOUND || result == ROUTE_URI_TOO_LONG || result == ROUTE_BAD_METHOD) {
        refuse(&req, dispatch_route_refusal(result));
    } else if (authenticate(&req)) {
        /* The id is checked after the caller: a stranger learns nothing. */
        const struct dispatch_refusal *refusal = check(&req, result);
        if (refusal) {
            refuse(&req, refusal);
        } else {
            memcpy(req.id, match.id, sizeof req.id);
            if (target(&req))
                answer = run_handler(&req);
        }
    }
    if (answer) {
        if (!fcgi->out.head_sent)
            fcgi_response_fail(fcgi, PROXY_ERR_NOMEM);
        log_line(&req, NULL);
    }
    free(req.user);
    free(req.upstream_url_owned);
}
