/* events.c: POST {base}/{id}/events -> POST {upstream}/v1/flows/{id}/events.
 * The body is read whole (bounded by OPENOVA_FLOW_MAX_BODY) so that a body
 * too large is refused before the upstream hears of it. */
#include <stdlib.h>

#include "core/buf.h"
#include "core/log.h"
#include "fcgi/response.h"
#include "handlers/handlers.h"
#include "handlers/upstream.h"

/* The flow server answers {"seq": N}; anything near this is not an answer. */
#define EVENTS_MAX_ANSWER (1024 * 1024)

static enum proxy_err refuse_too_large(struct fcgi_request *req, unsigned long long size_hint)
{
    proxy_log(PROXY_LOG_WARN, req->request_id, "msg=\"events body of %llu+ bytes refused: limit %zu\"", size_hint,
             req->cfg->max_body);
    fcgi_response_error(req, 413, "body_too_large", "The request body is larger than allowed.", NULL);
    return PROXY_ERR_BODY_TOO_LARGE;
}

enum proxy_err handle_events(struct fcgi_request *req)
{
    size_t max = req->cfg->max_body;
    if (req->content_length == -2) {
        fcgi_response_error(req, 400, "bad_request", "Content-Length is not a number.", NULL);
        return PROXY_OK;
    }
    if (req->content_length >= 0 && (unsigned long long)req->content_length > max)
        return refuse_too_large(req, (unsigned long long)req->content_length);

    /* Read one byte past the limit to tell "exactly max" from "more". */
    size_t want = req->content_length >= 0 ? (size_t)req->content_length : max + 1;
    struct buf body;
    buf_init(&body, max + 1);
    enum proxy_err err = PROXY_OK;
    char chunk[16384];
    while (body.len < want) {
        size_t ask = want - body.len < sizeof chunk ? want - body.len : sizeof chunk;
        int got = FCGX_GetStr(chunk, (int)ask, req->fcgx->in);
        if (got <= 0)
            break;
        if (buf_append(&body, chunk, (size_t)got) == PROXY_ERR_NOMEM) {
            err = PROXY_ERR_NOMEM;
            break;
        }
    }
    if (err) {
        upstream_fail(req, err, "reading the request body");
    } else if (body.len > max) {
        err = refuse_too_large(req, body.len);
    } else if (req->content_length >= 0 && body.len < (size_t)req->content_length) {
        /* The web server ended the body early: the client left mid-upload. */
        proxy_log(PROXY_LOG_WARN, req->request_id, "msg=\"events body ended after %zu of %lld bytes\"", body.len,
                 req->content_length);
        err = PROXY_ERR_CLIENT_GONE;
    } else {
        err = upstream_relay(req->upstream, req, "events", body.data ? body.data : "", body.len,
                             EVENTS_MAX_ANSWER);
    }
    buf_free(&body);
    return err;
}
