/* purge.c: DELETE {base}/{id} -> DELETE {upstream}/v1/flows/{id}, when
 * OPENOVA_FLOW_AUTH_DELETE makes it a route. */
#include "handlers/handlers.h"
#include "handlers/upstream.h"

/* The flow server answers 204; anything longer than this is not a purge's. */
#define PURGE_RESPONSE_MAX (64 * 1024)

enum proxy_err handle_purge(struct flow_request *req)
{
    return upstream_relay(req->upstream, req, "purge", NULL, 0, PURGE_RESPONSE_MAX);
}
