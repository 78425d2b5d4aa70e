/* server.c: worker threads, request -> dispatch -> handler, and the stop. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "handlers/handlers.h"
#include "core/http.h"
#include "handlers/stream_loop.h"
#include "handlers/upstream.h"
#include "auth/auth.h"
#include "core/log.h"
#include "fcgi/response.h"
#include "fcgi/server.h"

struct worker {
    pthread_t thread;
    const struct proxy_config *cfg;
    int listen_fd;
    struct stream_loop *streams;
    struct auth *auth;
    atomic_bool *stopping;
};

static const char *route_name(const struct fcgi_request *req)
{
    return req->route ? req->route->suffix : "-";
}

/* Decides who the caller is; 0 to go on, or the status already answered. */
static int authenticate(struct fcgi_request *req)
{
    bool events = req->route && req->route->route == ROUTE_EVENTS;
    struct auth_presented presented = {
        .remote_user = FCGX_GetParam("REMOTE_USER", req->fcgx->envp),
        .authorization = FCGX_GetParam("HTTP_AUTHORIZATION", req->fcgx->envp),
        .cookie = FCGX_GetParam("HTTP_COOKIE", req->fcgx->envp),
        .accepted = auth_accepted(req->cfg, events),
    };
    if (presented.accepted == AUTH_NONE)
        return 0;
    struct auth_outcome outcome;
    auth_decide(req->auth, &presented, time(NULL), &outcome);
    if (outcome.status) {
        /* The client learns a short code; the log, every check that failed. */
        proxy_log(outcome.status >= 500 ? PROXY_LOG_ERROR : PROXY_LOG_WARN, req->request_id, "msg=\"refused: %s\"",
                 outcome.reason);
        fcgi_response_error(req, outcome.status, outcome.code, outcome.message, outcome.www_authenticate);
        return outcome.status;
    }
    req->user = outcome.credential.user;
    req->credential_expires = outcome.credential.expires;
    return 0;
}

void dispatch(struct fcgi_request *req)
{
    struct route_match match;
    enum route_result result = route_lookup(req->cfg->base_path, req->method, req->request_uri, &match);
    req->route = match.entry;
    char allow[64];
    /* Web servers bound headers too, but the app may sit behind one
     * configured generously, or be reached directly. */
    if (req->fcgx && !fcgi_request_headers_acceptable(req->fcgx->envp, FCGI_HEADER_VALUE_MAX, FCGI_HEADERS_TOTAL_MAX))
        result = ROUTE_HEADERS_TOO_LARGE;
    switch (result) {
    case ROUTE_HEADERS_TOO_LARGE:
        fcgi_response_error(req, 431, "headers_too_large", "The request headers are too large.", NULL);
        break;
    case ROUTE_NOT_FOUND:
        fcgi_response_error(req, 404, "not_found", "No such route.", NULL);
        break;
    case ROUTE_URI_TOO_LONG:
        fcgi_response_error(req, 414, "uri_too_long", "The request path is too long.", NULL);
        break;
    case ROUTE_BAD_METHOD:
        snprintf(allow, sizeof allow, "Allow: %s\r\n", route_allow(match.entry));
        fcgi_response_error(req, 405, "method_not_allowed", "This route does not take that method.", allow);
        break;
    case ROUTE_ID_REQUIRED:
    case ROUTE_ID_INVALID:
    case ROUTE_OK:
        if (authenticate(req) != 0)
            break;
        if (result == ROUTE_ID_REQUIRED) {
            fcgi_response_error(req, 400, "bad_request", "deploymentId required", NULL);
            break;
        }
        if (result == ROUTE_ID_INVALID) {
            fcgi_response_error(req, 400, "invalid_deployment_id",
                                "deploymentId must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ -.", NULL);
            break;
        }
        if (req->content_type && !http_value_acceptable(req->content_type, 1024)) {
            fcgi_response_error(req, 400, "bad_request", "Content-Type is not printable or too long.", NULL);
            break;
        }
        memcpy(req->id, match.id, sizeof req->id);
        if (match.entry->handler(req) == PROXY_ERR_CLIENT_GONE && !req->head_sent && req->fcgx) {
            /* A client that left is a normal end: nothing to answer. */
            proxy_log(PROXY_LOG_INFO, req->request_id, "method=%s route=%s id=%s status=0 bytes=0 ms=%ld end=client-gone",
                     req->method, route_name(req), req->id, fcgi_request_elapsed_ms(req));
            return;
        }
        if (!req->fcgx)
            return; /* a stream: the loop owns it and logs it */
        break;
    }
    if (!req->head_sent)
        fcgi_response_error(req, 500, "internal_error", "The proxy failed to handle the request.", NULL);
    /* Refusals name their reason: the error code the client got too. */
    proxy_log(req->status >= 500 ? PROXY_LOG_ERROR : req->error_code ? PROXY_LOG_WARN : PROXY_LOG_INFO, req->request_id,
             "method=%s route=%s id=%s status=%d bytes=%llu ms=%ld%s%s", req->method[0] ? req->method : "-",
             route_name(req), req->id[0] ? req->id : "-", req->status, req->bytes_out, fcgi_request_elapsed_ms(req),
             req->error_code ? " error=" : "", req->error_code ? req->error_code : "");
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct upstream_client *client = upstream_client_new(w->cfg);
    FCGX_Request fcgx;
    struct buf pending; /* a response's bytes held back, reused from request to request */
    fcgi_response_pending_init(&pending);
    /* The stop interrupts accept() with SIGUSR2 (no SA_RESTART). */
    sigset_t wake;
    sigemptyset(&wake);
    sigaddset(&wake, SIGUSR2);
    pthread_sigmask(SIG_UNBLOCK, &wake, NULL);
    if (!client || FCGX_InitRequest(&fcgx, w->listen_fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
        proxy_log(PROXY_LOG_ERROR, NULL, "msg=\"worker could not start: out of memory\"");
        upstream_client_free(client);
        return NULL;
    }
    while (!atomic_load(w->stopping)) {
        if (FCGX_Accept_r(&fcgx) < 0) {
            if (atomic_load(w->stopping))
                break;
            /* Out of descriptors or memory for a moment: a worker that quit
             * here would leave a process that answers nothing. */
            proxy_log(PROXY_LOG_ERROR, NULL, "msg=\"accept failed: %s; retrying\"", strerror(errno));
            struct timespec pause_for = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
            nanosleep(&pause_for, NULL);
            continue;
        }
        struct fcgi_request req;
        int loaded = fcgi_request_load(&req, &fcgx, w->cfg);
        req.pending = &pending;
        if (loaded != 0) {
            fcgi_response_error(&req, 500, "internal_error", "The proxy failed to handle the request.", NULL);
            proxy_log(PROXY_LOG_ERROR, req.request_id, "msg=\"out of memory loading the request\"");
        } else {
            req.upstream = client;
            req.streams = w->streams;
            req.auth = w->auth;
            dispatch(&req);
        }
        fcgi_response_finish(&req); /* a stream's connection is the loop's: req.fcgx is NULL then */
        fcgi_request_free(&req);
        FCGX_Finish_r(&fcgx);
    }
    FCGX_Finish_r(&fcgx);
    FCGX_Free(&fcgx, 1);
    buf_free(&pending);
    upstream_client_free(client);
    return NULL;
}

static void on_wake(int signo)
{
    (void)signo;
}

int fcgi_server_run(const struct proxy_config *cfg, struct auth *auth, int listen_fd, bool own_socket, volatile sig_atomic_t *stop)
{
    struct sigaction wake_action;
    memset(&wake_action, 0, sizeof wake_action);
    wake_action.sa_handler = on_wake;
    sigemptyset(&wake_action.sa_mask);
    sigaction(SIGUSR2, &wake_action, NULL); /* no SA_RESTART: accept() returns EINTR */
    atomic_bool stopping = false;
    /* Only this thread takes SIGTERM and friends: block them in every
     * thread started from here on. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    struct stream_loop *streams = stream_loop_start(cfg);
    struct worker *workers = calloc(cfg->workers, sizeof *workers);
    if (!streams || !workers) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        proxy_log(PROXY_LOG_ERROR, NULL, "msg=\"cannot start: out of memory\"");
        stream_loop_stop(streams);
        free(workers);
        return 1;
    }

    unsigned started = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    /* Handlers keep at most a 16 KiB chunk on the stack; libcurl and
     * OpenSSL want some room beyond that. */
    pthread_attr_setstacksize(&attr, 512 * 1024);
    for (unsigned i = 0; i < cfg->workers; i++) {
        workers[i] = (struct worker){.cfg = cfg, .listen_fd = listen_fd, .streams = streams, .auth = auth,
                                    .stopping = &stopping};
        if (pthread_create(&workers[i].thread, &attr, worker_main, &workers[i]) != 0)
            break;
        started++;
    }
    pthread_attr_destroy(&attr);
    if (started == 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        proxy_log(PROXY_LOG_ERROR, NULL, "msg=\"cannot start worker threads\"");
        stream_loop_stop(streams);
        free(workers);
        return 1;
    }
    proxy_log(PROXY_LOG_INFO, NULL, "msg=\"serving\" upstream=%s workers=%u max_streams=%u", cfg->upstream_url, started,
             cfg->max_streams);

    /* The stop signals stay blocked except inside sigsuspend, so one that
     * arrives between the check and the wait is not lost. */
    sigset_t waiting = old;
    sigdelset(&waiting, SIGTERM);
    sigdelset(&waiting, SIGINT);
    sigdelset(&waiting, SIGHUP);
    sigdelset(&waiting, SIGUSR1);
    while (!*stop)
        sigsuspend(&waiting);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    proxy_log(PROXY_LOG_INFO, NULL, "msg=\"stopping: %u streams open\"", stream_loop_open_streams(streams));
    atomic_store(&stopping, true);
    FCGX_ShutdownPending();
    /* A socket we bound ourselves can be shut down, which wakes every
     * accept(); an inherited one (systemd keeps it for the next instance)
     * must stay usable, so its workers are woken by SIGUSR2 instead. */
    if (own_socket)
        shutdown(listen_fd, SHUT_RDWR);
    stream_loop_begin_stop(streams);
    /* In-flight snapshot and events calls get two seconds, then are cut. */
    unsigned joined = 0;
    bool *done = calloc(started, sizeof *done);
    for (int round = 0; done && round < 300 && joined < started; round++) {
        if (round == 200)
            upstream_abort_all();
        for (unsigned i = 0; i < started; i++) {
            if (done[i])
                continue;
            pthread_kill(workers[i].thread, SIGUSR2);
            if (pthread_tryjoin_np(workers[i].thread, NULL) == 0) {
                done[i] = true;
                joined++;
            }
        }
        struct timespec step = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
        nanosleep(&step, NULL);
    }
    free(done);
    if (joined < started) {
        /* A worker still blocked (reading a kept-alive web server
         * connection) shares what we would free: end the streams and leave. */
        proxy_log(PROXY_LOG_WARN, NULL, "msg=\"%u workers did not stop in time; exiting\"", started - joined);
        stream_loop_stop(streams);
        proxy_log(PROXY_LOG_INFO, NULL, "msg=\"stopped\"");
        _exit(0);
    }
    stream_loop_stop(streams);
    free(workers);
    proxy_log(PROXY_LOG_INFO, NULL, "msg=\"stopped\"");
    return 0;
}
