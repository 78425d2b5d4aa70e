/* server.c: worker threads, accept -> load -> the application's serve ->
 * finish, and the orderly stop. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "fcgi/response.h"
#include "fcgi/server.h"

/* Handlers keep at most a 16 KiB chunk on the stack; libcurl and OpenSSL
 * want some room beyond that. */
#define WORKER_STACK (512 * 1024)
/* After a failed accept (out of descriptors or memory for a moment). */
#define ACCEPT_RETRY_NS (100 * 1000 * 1000)
/* How often the stop wakes and looks for workers that ended. */
#define STOP_STEP_MS 10

struct worker {
    pthread_t thread;
    const struct fcgi_server_settings *settings;
    const struct fcgi_app *app;
    atomic_bool *stopping;
    bool joined;
};

static void serve_one(const struct fcgi_app *app, void *state, FCGX_Request *fcgx, struct buf *held)
{
    struct fcgi_request req;
    if (fcgi_request_load(&req, fcgx, held) != PROXY_OK) {
        fcgi_response_fail(&req, PROXY_ERR_NOMEM);
        proxy_log(PROXY_LOG_ERROR, req.request_id, "msg=\"out of memory loading the request\"");
    } else {
        app->serve(app->ctx, state, &req);
    }
    fcgi_response_finish(&req); /* no-op when the application detached it */
    fcgi_request_free(&req, held);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct fcgi_app *app = w->app;
    void *state = app->worker_start ? app->worker_start(app->ctx) : NULL;
    FCGX_Request fcgx;
    struct buf held; /* a response's bytes held back, reused from request to request */
    fcgi_response_held_init(&held);
    /* The stop interrupts accept() with SIGUSR2 (no SA_RESTART). */
    sigset_t wake;
    sigemptyset(&wake);
    sigaddset(&wake, SIGUSR2);
    pthread_sigmask(SIG_UNBLOCK, &wake, NULL);
    if ((app->worker_start && !state) || FCGX_InitRequest(&fcgx, w->settings->listen_fd, FCGI_FAIL_ACCEPT_ON_INTR)) {
        proxy_log(PROXY_LOG_ERROR, NULL, "msg=\"worker could not start: out of memory\"");
        if (state && app->worker_end)
            app->worker_end(app->ctx, state);
        return NULL;
    }
    while (!atomic_load(w->stopping)) {
        if (FCGX_Accept_r(&fcgx) < 0) {
            if (atomic_load(w->stopping))
                break;
            /* A worker that quit here would leave a process that answers nothing. */
            proxy_log(PROXY_LOG_ERROR, NULL, "msg=\"accept failed: %s; retrying\"", strerror(errno));
            struct timespec pause_for = {.tv_sec = 0, .tv_nsec = ACCEPT_RETRY_NS};
            nanosleep(&pause_for, NULL);
            continue;
        }
        serve_one(app, state, &fcgx, &held);
        FCGX_Finish_r(&fcgx);
    }
    FCGX_Finish_r(&fcgx);
    FCGX_Free(&fcgx, 1);
    buf_free(&held);
    if (app->worker_end)
        app->worker_end(app->ctx, state);
    return NULL;
}

static void on_wake(int signo)
{
    (void)signo;
}

/* Only the thread that runs the server takes the stop signals: they are
 * blocked in every thread started from here on. Returns the mask before. */
static sigset_t block_stop_signals(void)
{
    struct sigaction wake_action;
    memset(&wake_action, 0, sizeof wake_action);
    wake_action.sa_handler = on_wake;
    sigemptyset(&wake_action.sa_mask);
    sigaction(SIGUSR2, &wake_action, NULL); /* no SA_RESTART: accept() returns EINTR */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    return old;
}

static unsigned start_workers(struct worker *workers, const struct fcgi_server_settings *s,
                              const struct fcgi_app *app, atomic_bool *stopping)
{
    unsigned started = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKER_STACK);
    for (unsigned i = 0; i < s->workers; i++) {
        workers[i] = (struct worker){.settings = s, .app = app, .stopping = stopping};
        if (pthread_create(&workers[i].thread, &attr, worker_main, &workers[i]) != 0)
            break;
        started++;
    }
    pthread_attr_destroy(&attr);
    return started;
}

/* The stop signals stay blocked except inside sigsuspend, so one that
 * arrives between the check and the wait is not lost. */
static void wait_for_stop(sigset_t old, volatile sig_atomic_t *stop)
{
    sigset_t waiting = old;
    sigdelset(&waiting, SIGTERM);
    sigdelset(&waiting, SIGINT);
    sigdelset(&waiting, SIGHUP);
    sigdelset(&waiting, SIGUSR1);
    while (!*stop)
        sigsuspend(&waiting);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Wakes the workers until they end: requests in flight get the grace
 * period, then the application cuts them. Returns how many are left. */
static unsigned join_workers(struct worker *workers, unsigned started, const struct fcgi_app *app)
{
    unsigned joined = 0;
    for (long waited = 0; waited < FCGI_SERVER_JOIN_MS && joined < started; waited += STOP_STEP_MS) {
        if (waited == FCGI_SERVER_GRACE_MS && app->cut_short)
            app->cut_short(app->ctx);
        for (unsigned i = 0; i < started; i++) {
            if (workers[i].joined)
                continue;
            pthread_kill(workers[i].thread, SIGUSR2);
            if (pthread_tryjoin_np(workers[i].thread, NULL) == 0) {
                workers[i].joined = true;
                joined++;
            }
        }
        struct timespec step = {.tv_sec = 0, .tv_nsec = STOP_STEP_MS * 1000 * 1000};
        nanosleep(&step, NULL);
    }
    return started - joined;
}

int fcgi_server_run(const struct fcgi_server_settings *s, const struct fcgi_app *app, volatile sig_atomic_t *stop)
{
    atomic_bool stopping = false;
    sigset_t old = block_stop_signals();
    if (app->start && app->start(app->ctx) != 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return 1;
    }
    struct worker *workers = calloc(s->workers, sizeof *workers);
    unsigned started = workers ? start_workers(workers, s, app, &stopping) : 0;
    if (started == 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        proxy_log(PROXY_LOG_ERROR, NULL, "msg=\"cannot start worker threads\"");
        free(workers);
        if (app->stopped)
            app->stopped(app->ctx, false);
        return 1;
    }
    proxy_log(PROXY_LOG_INFO, NULL, "msg=\"serving\" %s workers=%u", s->banner ? s->banner : "", started);
    wait_for_stop(old, stop);

    atomic_store(&stopping, true);
    FCGX_ShutdownPending();
    /* A socket we bound ourselves can be shut down, which wakes every
     * accept(); an inherited one (systemd keeps it for the next instance)
     * must stay usable, so its workers are woken by SIGUSR2 instead. */
    if (s->own_socket)
        shutdown(s->listen_fd, SHUT_RDWR);
    if (app->stopping)
        app->stopping(app->ctx);
    unsigned left = join_workers(workers, started, app);
    if (left)
        proxy_log(PROXY_LOG_WARN, NULL, "msg=\"%u workers did not stop in time; exiting\"", left);
    if (app->stopped)
        app->stopped(app->ctx, left > 0);
    proxy_log(PROXY_LOG_INFO, NULL, "msg=\"stopped\"");
    if (left)
        _exit(0); /* a worker still blocked (reading a kept connection) shares what would be freed */
    free(workers);
    return 0;
}
