/* handlers.h: one handler per route, one signature. The dispatcher has
 * already matched the route, checked the method, the id and the caller, so
 * handlers never validate those again. Each answers the request completely
 * (or hands it on, for streams) and returns the outcome for the log. */
#ifndef OPENOVA_HANDLERS_H
#define OPENOVA_HANDLERS_H

#include "core/error.h"
#include "fcgi/request.h"

/* GET {base}/{id}/snapshot: relayed verbatim (headers filtered). */
enum proxy_err handle_snapshot(struct fcgi_request *req);

/* POST {base}/{id}/events: the body, byte for byte, with its Content-Type. */
enum proxy_err handle_events(struct fcgi_request *req);

/* GET {base}/{id}/stream: takes the FastCGI connection away from libfcgi
 * and hands it to the stream loop (req->fcgx is NULL afterwards, and the
 * loop logs the request when it ends). */
enum proxy_err handle_stream(struct fcgi_request *req);

#endif
