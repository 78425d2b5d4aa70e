/* stream.c: GET {base}/{id}/stream. Hands the request to the stream loop,
 * so that an open stream holds no worker. */
#include "core/log.h"
#include "fcgi/response.h"
#include "handlers/handlers.h"
#include "handlers/stream_loop.h"

/* How long a refused client is told to wait. */
#define RETRY_AFTER "Retry-After: 5\r\n"

enum proxy_err handle_stream(struct flow_request *req)
{
    if (!stream_loop_reserve(req->streams)) {
        proxy_log(PROXY_LOG_WARN, req->fcgi->request_id, "stream refused: %u streams open, limit %u",
                  stream_loop_open_streams(req->streams), req->cfg->max_streams);
        fcgi_response_error(req->fcgi, 503, "too_many_streams", "Too many streams are open; retry shortly.",
                            RETRY_AFTER);
        return PROXY_OK;
    }
    if (req->fcgi->last_event_id_ignored)
        proxy_log(PROXY_LOG_WARN, req->fcgi->request_id, "Last-Event-ID ignored: not printable or too long");
    enum proxy_err err = stream_loop_submit(req->streams, req);
    if (err) {
        stream_loop_unreserve(req->streams);
        proxy_log(PROXY_LOG_ERROR, req->fcgi->request_id, "stream not started: out of memory");
    }
    return err;
}
