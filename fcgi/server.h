/* server.h: the FastCGI responder: worker threads accepting on one
 * listening socket, the dispatcher, and the orderly stop. */
#ifndef OPENOVA_SERVER_H
#define OPENOVA_SERVER_H

#include <signal.h>
#include <stdbool.h>

#include "core/config.h"
#include "fcgi/request.h"

/* dispatch: routes, authenticates and answers one loaded request; the
 * only place that answers 404/405/400/401/403. Logs the request's line unless a
 * stream took it over (the stream logs when it ends). */
void dispatch(struct fcgi_request *req);

/* fcgi_server_run: serves on listen_fd with cfg->workers threads until
 * *stop becomes non-zero (set from a signal handler), then stops accepting,
 * ends open streams and returns 0 (1 if the threads could not start).
 * own_socket: the program bound listen_fd itself (--listen) and may shut it
 * down; an inherited socket is left intact for the next instance. */
struct auth;
int fcgi_server_run(const struct proxy_config *cfg, struct auth *auth, int listen_fd, bool own_socket, volatile sig_atomic_t *stop);

#endif
