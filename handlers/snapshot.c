/* snapshot.c: GET {base}/{id}/snapshot -> GET {upstream}/v1/flows/{id}/snapshot. */
#include "handlers/handlers.h"
#include "handlers/upstream.h"

enum proxy_err handle_snapshot(struct flow_request *req)
{
    return upstream_relay(req->upstream, req, "snapshot", NULL, 0, req->cfg->max_snapshot);
}
