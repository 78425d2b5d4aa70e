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
/* The body is read in pieces this large, on the worker's stack. */
#define READ_CHUNK (16 * 1024)

static enum proxy_err refuse_too_large(struct flow_request *req, unsigned long long size_hint)
{
    proxy_log(PROXY_LOG_WARN, req->fcgi->request_id, "events body of %llu+ bytes refused: limit %zu", size_hint,
             req->cfg->max_body);
    fcgi_response_fail(req->fcgi, PROXY_ERR_BODY_TOO_LARGE);
    return PROXY_ERR_BODY_TOO_LARGE;
}

enum proxy_err handle_events(struct flow_request *req)
{
    size_t max = req->cfg->max_body;
    long long declared = req->fcgi->content_length;
    if (declared >= 0 && (unsigned long long)declared > max)
        return refuse_too_large(req, (unsigned long long)declared);

    /* Read one byte past the limit to tell "exactly max" from "more". */
    size_t want = declared >= 0 ? (size_t)declared : max + 1;
    struct buf body;
    buf_init(&body, max + 1);
    enum proxy_err err = PROXY_OK;
    char chunk[READ_CHUNK];
    while (body.len < want) {
        size_t ask = want - body.len < sizeof chunk ? want - body.len : sizeof chunk;
        size_t got = fcgi_request_read(req->fcgi, chunk, ask);
        if (got == 0)
            break;
        if (buf_append(&body, chunk, got) == PROXY_ERR_NOMEM) {
            err = PROXY_ERR_NOMEM;
            break;
        }
    }
    if (err) {
        upstream_fail(req, err, "reading the request body");
    } else if (body.len > max) {
        err = refuse_too_large(req, body.len);
    } else if (req->fcgi->read_timed_out) {
        /* A body trickling in, or stalled, holds a worker no longer. */
        proxy_log(PROXY_LOG_WARN, req->fcgi->request_id, "events body not received in time: %zu bytes",
                  body.len);
        fcgi_response_fail(req->fcgi, PROXY_ERR_CLIENT_TIMEOUT);
        err = PROXY_ERR_CLIENT_TIMEOUT;
    } else if (declared >= 0 && body.len < (size_t)declared) {
        /* The web server ended the body early: the client left mid-upload. */
        proxy_log(PROXY_LOG_WARN, req->fcgi->request_id, "events body ended after %zu of %lld bytes",
                  body.len, declared);
        err = PROXY_ERR_CLIENT_GONE;
    } else {
        err = upstream_relay(req->upstream, req, "events", body.data ? body.data : "", body.len,
                             EVENTS_MAX_ANSWER);
    }
    buf_free(&body);
    return err;
}
