/* ops.h: the operations endpoints beside the flow routes: liveness (the
 * process alone), readiness (the upstream's health check, cached), the
 * Prometheus metrics and the status page (both only for the addresses of
 * OPENOVA_FLOW_METRICS_ALLOW). Each lives at its own configured path. */
#ifndef OPENOVA_OPS_H
#define OPENOVA_OPS_H

#include "core/config.h"
#include "handlers/handlers.h"

enum ops_endpoint { OPS_NONE, OPS_HEALTH, OPS_READY, OPS_METRICS, OPS_STATUS };

/* How long a health check's result stands before the next request that
 * needs it checks again, and how long a check may take. */
#define OPS_HEALTH_CACHE_MS 2000
#define OPS_HEALTH_TIMEOUT_MS 1500

/* What the endpoints share across workers: the last health check (under a
 * lock never held during a check) and the start time. */
struct ops;

/* ops_new: NULL when out of memory. version and libcurl are static texts
 * for build info. Free with ops_free (NULL-safe) once no worker uses it. */
struct upstreams;
struct ops *ops_new(const struct proxy_config *cfg, const struct upstreams *upstreams, const char *version,
                    const char *libcurl);
void ops_free(struct ops *ops);

/* ops_match: the endpoint whose path is exactly the path of request_uri
 * (its query cut off), or OPS_NONE. Pure. */
enum ops_endpoint ops_match(const struct proxy_config *cfg, const char *request_uri);

/* ops_serve: answers req (GET or HEAD; else 405) at endpoint, and sets
 * req->label. Readiness, metrics and status check the upstream's health
 * first when the last result is older than OPS_HEALTH_CACHE_MS, on the
 * worker's own upstream client; in the console's mode (one flow server per
 * deployment) the check is the process's own: the records directory. */
void ops_serve(struct ops *ops, struct flow_request *req, enum ops_endpoint endpoint);

#endif
