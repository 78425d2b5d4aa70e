/* server.c: worker threads, accept -> load -> the application's serve ->
 * finish, and the orderly stop. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "fcgi/lobby.h"
#include "fcgi/response.h"
#include "fcgi/server.h"

/* Handlers keep at most a 16 KiB chunk on the stack; libcurl and OpenSSL
 * want some room beyond that. */
#define WORKER_STACK (512 * 1024)
/* How often the stop looks for workers that ended. */
#define STOP_STEP_MS 10

struct worker {
    pthread_t thread;
    const struct fcgi_server_settings *settings;
    const struct fcgi_app *app;
    struct fcgi_lobby *lobby;
    bool joined;
};

static void serve_one(const struct fcgi_app *app, void *state, FCGX_Request *fcgx, struct buf *held,
                      long long read_deadline_ms, struct fcgi_lobby *lobby)
{
    struct fcgi_request req;
    enum proxy_err loaded = fcgi_request_load(&req, fcgx, held);
    req.read_deadline_ms = read_deadline_ms;
    req.lobby = lobby;
    if (loaded != PROXY_OK) {
        fcgi_response_fail(&req, PROXY_ERR_NOMEM);
        proxy_log(PROXY_LOG_ERROR, req.request_id, "out of memory loading the request");
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
    /* No listening socket of its own (-1): libfcgi reads requests from the
     * connections the lobby hands over, and a connection it cannot read a
     * request from is closed and ends the call instead of waiting for another. */
    if ((app->worker_start && !state) || FCGX_InitRequest(&fcgx, -1, FCGI_FAIL_ACCEPT_ON_INTR)) {
        proxy_log(PROXY_LOG_ERROR, NULL, "worker could not start: out of memory");
        if (state && app->worker_end)
            app->worker_end(app->ctx, state);
        return NULL;
    }
    long timeout_ms = w->settings->client_timeout_ms;
    int fd;
    while ((fd = fcgi_lobby_take(w->lobby)) >= 0) {
        long long read_deadline_ms = clock_ms() + timeout_ms;
        fcgi_request_bound_reads(fd, timeout_ms);
        /* Kept, so that libfcgi's finish of the previous request, at the
         * start of the next accept, leaves this connection open. */
        fcgx.ipcFd = fd;
        fcgx.keepConnection = 1;
        if (FCGX_Accept_r(&fcgx) < 0)
            continue; /* no request could be read: libfcgi closed the connection */
        serve_one(app, state, &fcgx, &held, read_deadline_ms, w->lobby);
        if (fcgx.ipcFd >= 0) {
            /* Kept by the web server for its next request: it waits in the
             * lobby, not in a worker. */
            int kept = fcgx.ipcFd;
            fcgx.ipcFd = -1;
            fcgi_request_bound_reads(kept, 0);
            fcgi_lobby_return(w->lobby, kept);
        }
        FCGX_Finish_r(&fcgx);
    }
    FCGX_Finish_r(&fcgx);
    FCGX_Free(&fcgx, 1);
    buf_free(&held);
    if (app->worker_end)
        app->worker_end(app->ctx, state);
    return NULL;
}

/* Only the thread that runs the server takes the stop signals: they are
 * blocked in every thread started from here on. Returns the mask before. */
static sigset_t block_stop_signals(void)
{
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
                              const struct fcgi_app *app, struct fcgi_lobby *lobby)
{
    unsigned started = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKER_STACK);
    for (unsigned i = 0; i < s->workers; i++) {
        workers[i] = (struct worker){.settings = s, .app = app, .lobby = lobby};
        if (pthread_create(&workers[i].thread, &attr, worker_main, &workers[i]) != 0)
            break;
        started++;
    }
    pthread_attr_destroy(&attr);
    return started;
}

/* The signals stay blocked except inside sigsuspend, so one that arrives
 * between the check and the wait is not lost. A reload runs here, on this
 * thread, never in the handler. */
static void wait_for_stop(sigset_t old, const struct fcgi_app *app, volatile sig_atomic_t *stop,
                          volatile sig_atomic_t *reload)
{
    sigset_t waiting = old;
    sigdelset(&waiting, SIGTERM);
    sigdelset(&waiting, SIGINT);
    sigdelset(&waiting, SIGHUP);
    while (!*stop) {
        sigsuspend(&waiting);
        if (reload && *reload) {
            *reload = 0;
            if (app->reload)
                app->reload(app->ctx);
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Waits for the workers to end: requests in flight get the grace period
 * (nothing interrupts them; idle workers were woken by the lobby closing),
 * then the application cuts them. Returns how many are left. */
static unsigned join_workers(struct worker *workers, unsigned started, const struct fcgi_app *app)
{
    unsigned joined = 0;
    for (long waited = 0; waited < FCGI_SERVER_JOIN_MS && joined < started; waited += STOP_STEP_MS) {
        if (waited == FCGI_SERVER_GRACE_MS && app->cut_short)
            app->cut_short(app->ctx);
        for (unsigned i = 0; i < started; i++) {
            if (!workers[i].joined && pthread_tryjoin_np(workers[i].thread, NULL) == 0) {
                workers[i].joined = true;
                joined++;
            }
        }
        struct timespec step = {.tv_sec = 0, .tv_nsec = STOP_STEP_MS * 1000 * 1000};
        nanosleep(&step, NULL);
    }
    return started - joined;
}

static struct fcgi_lobby *open_lobby(const struct fcgi_server_settings *s)
{
    struct fcgi_lobby_settings ls = {.listen_fd = s->listen_fd,
                                     .first_record_ms = s->client_timeout_ms,
                                     .kept_idle_ms = s->keepconn_idle_ms};
    struct fcgi_lobby *lobby = fcgi_lobby_start(&ls);
    if (!lobby)
        proxy_log(PROXY_LOG_ERROR, NULL, "cannot start: out of memory or descriptors");
    return lobby;
}

/* "serving": the application's banner and the workers that started. */
static void log_serving(const struct fcgi_server_settings *s, unsigned started)
{
    struct log_field fields[16];
    size_t n = 0;
    for (size_t i = 0; i < s->banner_count && n < sizeof fields / sizeof fields[0] - 1; i++)
        fields[n++] = s->banner[i];
    fields[n++] = (struct log_field)LOG_NUMBER("workers", started);
    proxy_log_fields(PROXY_LOG_INFO, NULL, "serving", fields, n);
}

int fcgi_server_run(const struct fcgi_server_settings *s, const struct fcgi_app *app, volatile sig_atomic_t *stop,
                    volatile sig_atomic_t *reload)
{
    sigset_t old = block_stop_signals();
    struct fcgi_lobby *lobby = open_lobby(s);
    if (!lobby || (app->start && app->start(app->ctx) != 0)) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (lobby)
            fcgi_lobby_close(lobby);
        fcgi_lobby_free(lobby);
        return 1;
    }
    struct worker *workers = calloc(s->workers, sizeof *workers);
    unsigned started = workers ? start_workers(workers, s, app, lobby) : 0;
    if (started == 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        proxy_log(PROXY_LOG_ERROR, NULL, "cannot start worker threads");
        free(workers);
        fcgi_lobby_close(lobby);
        fcgi_lobby_free(lobby);
        if (app->stopped)
            app->stopped(app->ctx, false);
        return 1;
    }
    log_serving(s, started);
    wait_for_stop(old, app, stop, reload);

    /* Accepting ends and idle workers leave; a socket we bound ourselves is
     * shut down so that web servers fail over at once, an inherited one
     * (systemd keeps it for the next instance) stays as it is. */
    fcgi_lobby_close(lobby);
    if (s->own_socket)
        shutdown(s->listen_fd, SHUT_RDWR);
    if (app->stopping)
        app->stopping(app->ctx);
    unsigned left = join_workers(workers, started, app);
    if (left)
        proxy_log(PROXY_LOG_WARN, NULL, "%u workers did not stop in time; exiting", left);
    if (app->stopped)
        app->stopped(app->ctx, left > 0);
    proxy_log(PROXY_LOG_INFO, NULL, "stopped");
    if (left)
        _exit(0); /* a worker still at work shares what would be freed */
    fcgi_lobby_free(lobby);
    free(workers);
    return 0;
}
