/* request.c: FastCGI parameters -> struct fcgi_request; request ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "fcgi/request.h"
#include "core/http.h"

bool fcgi_request_id_acceptable(const char *id)
{
    if (!http_value_acceptable(id, FCGI_REQUEST_ID_MAX))
        return false;
    return strchr(id, ' ') == NULL;
}

void fcgi_request_id_generate(char *out)
{
    unsigned char raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < sizeof raw) {
        /* getrandom cannot fail on Linux >= 3.17 once seeded; still, an id
         * only needs to be unlikely to collide, not secret. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long long mix = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)ts.tv_sec << 20);
        for (size_t i = got; i < sizeof raw; i++)
            raw[i] = (unsigned char)(mix >> ((i % 8) * 8));
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * sizeof raw] = '\0';
}

bool fcgi_request_headers_acceptable(char **envp, size_t max_value, size_t max_total)
{
    size_t total = 0;
    for (char **p = envp; p && *p; p++) {
        if (strncmp(*p, "HTTP_", 5) != 0)
            continue;
        const char *eq = strchr(*p, '=');
        size_t len = strlen(*p);
        size_t value_len = eq ? len - (size_t)(eq + 1 - *p) : 0;
        if (value_len > max_value)
            return false;
        total += len;
        if (total > max_total)
            return false;
    }
    return true;
}

long fcgi_request_elapsed_ms(const struct fcgi_request *req)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)((now.tv_sec - req->started.tv_sec) * 1000 + (now.tv_nsec - req->started.tv_nsec) / 1000000);
}

static int copy_param(char **dst, FCGX_Request *fcgx, const char *name)
{
    const char *v = FCGX_GetParam(name, fcgx->envp);
    if (!v)
        return 0;
    *dst = strdup(v);
    return *dst ? 0 : -1;
}

int fcgi_request_load(struct fcgi_request *req, FCGX_Request *fcgx, const struct proxy_config *cfg)
{
    memset(req, 0, sizeof *req);
    clock_gettime(CLOCK_MONOTONIC, &req->started);
    req->fcgx = fcgx;
    req->cfg = cfg;
    req->content_length = -1;

    const char *rid = FCGX_GetParam("HTTP_X_REQUEST_ID", fcgx->envp);
    if (rid && fcgi_request_id_acceptable(rid))
        snprintf(req->request_id, sizeof req->request_id, "%s", rid);
    else
        fcgi_request_id_generate(req->request_id);

    const char *method = FCGX_GetParam("REQUEST_METHOD", fcgx->envp);
    snprintf(req->method, sizeof req->method, "%s", method ? method : "");

    const char *length = FCGX_GetParam("CONTENT_LENGTH", fcgx->envp);
    if (length && *length) {
        char *end;
        long long n = strtoll(length, &end, 10);
        req->content_length = (*end || n < 0) ? -2 : n; /* -2: unparsable, refused later */
    }

    if (copy_param(&req->request_uri, fcgx, "REQUEST_URI") || copy_param(&req->content_type, fcgx, "CONTENT_TYPE") ||
        copy_param(&req->accept, fcgx, "HTTP_ACCEPT") || copy_param(&req->last_event_id, fcgx, "HTTP_LAST_EVENT_ID") ||
        copy_param(&req->remote_addr, fcgx, "REMOTE_ADDR"))
        return -1;
    /* Empty strings mean "not sent": web servers pass some parameters empty. */
    if (req->content_type && !*req->content_type) {
        free(req->content_type);
        req->content_type = NULL;
    }
    return 0;
}

void fcgi_request_free(struct fcgi_request *req)
{
    if (!req)
        return;
    free(req->request_uri);
    free(req->content_type);
    free(req->accept);
    free(req->last_event_id);
    free(req->user);
    free(req->remote_addr);
    req->request_uri = req->content_type = req->accept = req->last_event_id = req->user = req->remote_addr = NULL;
}
