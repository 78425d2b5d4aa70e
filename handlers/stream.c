/* stream.c: GET {base}/{id}/stream. Takes the connection from libfcgi and
 * hands it to the stream loop, so that an open stream holds no worker. */
#include <stdlib.h>
#include <unistd.h>

#include "core/log.h"
#include "core/http.h"
#include "fcgi/response.h"
#include "handlers/handlers.h"
#include "handlers/stream_loop.h"

enum proxy_err handle_stream(struct fcgi_request *req)
{
    if (!stream_loop_reserve(req->streams)) {
        proxy_log(PROXY_LOG_WARN, req->request_id, "msg=\"stream refused: %u streams open, limit %u\"",
                 stream_loop_open_streams(req->streams), req->cfg->max_streams);
        fcgi_response_error(req, 503, "too_many_streams", "Too many streams are open; retry shortly.",
                            "Retry-After: 5\r\n");
        return PROXY_OK;
    }
    if (req->last_event_id && !http_value_acceptable(req->last_event_id, FCGI_LAST_EVENT_ID_MAX)) {
        /* Refusing would stop the browser's EventSource for good; starting
         * from a fresh snapshot frame is the safe answer. */
        proxy_log(PROXY_LOG_WARN, req->request_id, "msg=\"Last-Event-ID ignored: not printable or too long\"");
        free(req->last_event_id);
        req->last_event_id = NULL;
    }

    /* Take the socket out of libfcgi: free its buffers and parameters but
     * keep the descriptor, and tell libfcgi there is no connection, so its
     * next accept starts afresh instead of closing what the loop now owns. */
    FCGX_Request *fcgx = req->fcgx;
    /* Read the request's input to its end (an empty FCGI_STDIN for a GET,
     * sent at once by every web server): bytes libfcgi buffered are lost at
     * the handoff, and Apache answers 503 itself when its write of the
     * empty STDIN record meets a closed connection. */
    char discard[4096];
    size_t discarded = 0;
    int got;
    while (discarded < 1024 * 1024 && (got = FCGX_GetStr(discard, (int)sizeof discard, fcgx->in)) > 0)
        discarded += (size_t)got;
    int fd = fcgx->ipcFd;
    unsigned fcgi_id = (unsigned)fcgx->requestId;
    FCGX_Free(fcgx, 0);
    fcgx->ipcFd = -1;
    req->fcgx = NULL;

    if (stream_loop_submit(req->streams, req, fd, fcgi_id) != 0) {
        stream_loop_unreserve(req->streams);
        close(fd);
        proxy_log(PROXY_LOG_ERROR, req->request_id, "msg=\"stream not started: out of memory\"");
        return PROXY_ERR_NOMEM;
    }
    return PROXY_OK;
}
