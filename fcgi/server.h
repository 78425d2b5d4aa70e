/* server.h: the FastCGI responder: worker threads accepting on one
 * listening socket, each request handed to the application through a
 * callback, and the orderly stop. The transport knows nothing of routes,
 * credentials or upstreams: the application brings them in fcgi_app. */
#ifndef OPENOVA_FCGI_SERVER_H
#define OPENOVA_FCGI_SERVER_H

#include <signal.h>
#include <stdbool.h>

#include "core/log.h"
#include "fcgi/request.h"

/* What the application gives the transport. Every callback but serve may
 * be NULL. */
struct fcgi_app {
    void *ctx;
    /* Once, before any worker starts, with the stop signals blocked so that
     * threads it starts never take them; non-zero: the server does not start. */
    int (*start)(void *ctx);
    /* A worker's own state (a reused upstream client, say), made on the
     * worker's thread; NULL means the worker cannot start. */
    void *(*worker_start)(void *ctx);
    void (*worker_end)(void *ctx, void *worker);
    /* Answers one loaded request completely (fcgi/response.h), or detaches
     * it to carry on elsewhere. Called on a worker thread. */
    void (*serve)(void *ctx, void *worker, struct fcgi_request *req);
    /* SIGHUP: re-read what can change without a restart. Called on the
     * thread that runs the server, outside any signal handler. */
    void (*reload)(void *ctx);
    /* The stop began: accepting has ended; refuse new long-lived work. */
    void (*stopping)(void *ctx);
    /* The grace period is over: cut what is still in flight. */
    void (*cut_short)(void *ctx);
    /* Last: end what start began. workers_left: some worker did not end
     * and may still use what ctx points at, so nothing it reaches may be
     * freed (the process exits right after). */
    void (*stopped)(void *ctx, bool workers_left);
};

struct fcgi_server_settings {
    int listen_fd;
    bool own_socket;  /* bound by the program (--listen): it may shut it down;
                         an inherited one is left intact for the next instance */
    unsigned workers; /* threads answering requests */
    long client_timeout_ms; /* reading a request from the web server, head and body together */
    long keepconn_idle_ms;  /* a kept connection waits this long for its next request */
    const struct log_field *banner; /* logged with "serving": what is served */
    size_t banner_count;
};

/* fcgi_server_run: serves on s->listen_fd until *stop becomes non-zero (set
 * from a signal handler; each time *reload becomes non-zero meanwhile, it
 * is cleared and app->reload runs), then stops accepting, gives requests in flight
 * FCGI_SERVER_GRACE_MS, cuts them (app->cut_short), and returns 0 once every
 * worker ended (1 if the server could not start). A worker that has not
 * ended by FCGI_SERVER_JOIN_MS (blocked reading a kept connection) may still
 * use what app points at: then app->stopped runs and the process exits 0 at
 * once, freeing nothing. */
#define FCGI_SERVER_GRACE_MS 2000
#define FCGI_SERVER_JOIN_MS 3000
int fcgi_server_run(const struct fcgi_server_settings *s, const struct fcgi_app *app, volatile sig_atomic_t *stop,
                    volatile sig_atomic_t *reload);

#endif
