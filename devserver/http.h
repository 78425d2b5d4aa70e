/* http.h: the flow server's HTTP front (libmicrohttpd): routes, bodies,
 * text/plain errors and SSE streams. */
#ifndef OPENOVA_DS_HTTP_H
#define OPENOVA_DS_HTTP_H

#include <stddef.h>

#include "config.h"
#include "flow.h"

struct ds_http;

/* ds_http_start: listens on cfg's host and port and serves store, one
 * thread per connection (a stream's thread blocks in ds_sub_read). Returns
 * the server, which the caller stops with ds_http_stop, or NULL with one
 * line in err (the address does not resolve, the port is taken, ...). The
 * store must outlive the server. */
struct ds_http *ds_http_start(const struct ds_config *cfg, struct ds_store *store, char *err, size_t errlen);

/* ds_http_url: the bound address as "http://HOST:PORT" (the real port when
 * cfg asked for port 0); static storage inside h. */
const char *ds_http_url(const struct ds_http *h);

/* ds_http_stop: closes the listener and every connection, waits for their
 * threads, frees h; NULL-safe. Call ds_store_shutdown first, or streams
 * blocked waiting for messages would keep it waiting. */
void ds_http_stop(struct ds_http *h);

#endif
