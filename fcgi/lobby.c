/* lobby.c: one thread accepts web server connections and watches the idle
 * ones with epoll; a connection goes to a worker only once bytes wait. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "fcgi/lobby.h"

/* How often deadlines are looked at: they are bounds, not timers. */
#define SWEEP_MS 250
/* Out of descriptors: how long accepting pauses before it is tried again. */
#define ACCEPT_PAUSE_MS 100
#define EVENTS_PER_WAIT 64
/* The lobby thread only polls: a small stack is plenty. */
#define LOBBY_STACK (128 * 1024)

/* A connection waiting for its next record. */
struct waiting {
    int fd;
    long long deadline_ms;
    struct waiting *prev, *next;
};

/* A first-in first-out list of descriptors. */
struct fd_queue {
    int *fds;
    size_t head, len, cap;
};

struct fcgi_lobby {
    struct fcgi_lobby_settings s;
    pthread_t thread;
    int epfd;
    int wake_fd;
    int listen_marker, wake_marker; /* what epoll events of those two point at */

    pthread_mutex_t lock; /* guards ready, returned and closing */
    pthread_cond_t has_ready;
    struct fd_queue ready;    /* bytes wait: for a worker */
    struct fd_queue returned; /* kept connections back from workers, for the lobby thread */
    bool closing;

    struct waiting *waiting; /* the lobby thread's alone */
    bool accept_paused;
    long long accept_resume_ms;
};

static bool queue_push(struct fd_queue *q, int fd)
{
    if (q->len == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 64;
        int *fds = malloc(cap * sizeof *fds);
        if (!fds)
            return false;
        for (size_t i = 0; i < q->len; i++)
            fds[i] = q->fds[(q->head + i) % q->cap];
        free(q->fds);
        q->fds = fds;
        q->cap = cap;
        q->head = 0;
    }
    q->fds[(q->head + q->len++) % q->cap] = fd;
    return true;
}

static int queue_pop(struct fd_queue *q)
{
    if (!q->len)
        return -1;
    int fd = q->fds[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    return fd;
}

static void queue_close_all(struct fd_queue *q)
{
    int fd;
    while ((fd = queue_pop(q)) >= 0)
        close(fd);
}

static void wake(struct fcgi_lobby *lobby)
{
    uint64_t one = 1;
    ssize_t ignored = write(lobby->wake_fd, &one, sizeof one);
    (void)ignored;
}

/* ---- the lobby thread ---- */

static void wait_for_record(struct fcgi_lobby *lobby, int fd, long timeout_ms)
{
    struct waiting *w = malloc(sizeof *w);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = w};
    if (!w || epoll_ctl(lobby->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        free(w);
        close(fd);
        return;
    }
    *w = (struct waiting){.fd = fd, .deadline_ms = clock_ms() + timeout_ms, .next = lobby->waiting};
    if (lobby->waiting)
        lobby->waiting->prev = w;
    lobby->waiting = w;
}

/* Takes w off the list and out of epoll; the descriptor stays open. */
static int unwait(struct fcgi_lobby *lobby, struct waiting *w)
{
    int fd = w->fd;
    epoll_ctl(lobby->epfd, EPOLL_CTL_DEL, fd, NULL);
    if (w->prev)
        w->prev->next = w->next;
    else
        lobby->waiting = w->next;
    if (w->next)
        w->next->prev = w->prev;
    free(w);
    return fd;
}

static void hand_to_worker(struct fcgi_lobby *lobby, int fd)
{
    pthread_mutex_lock(&lobby->lock);
    bool queued = !lobby->closing && queue_push(&lobby->ready, fd);
    if (queued)
        pthread_cond_signal(&lobby->has_ready);
    pthread_mutex_unlock(&lobby->lock);
    if (!queued)
        close(fd);
}

/* Bytes wait, or the web server hung up (then the connection just closes). */
static void on_readable(struct fcgi_lobby *lobby, struct waiting *w)
{
    long long deadline = w->deadline_ms;
    int fd = unwait(lobby, w);
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0)
        hand_to_worker(lobby, fd);
    else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        wait_for_record(lobby, fd, deadline - clock_ms()); /* nothing after all: wait on */
    else
        close(fd);
}

static void pause_accepting(struct fcgi_lobby *lobby)
{
    epoll_ctl(lobby->epfd, EPOLL_CTL_DEL, lobby->s.listen_fd, NULL);
    lobby->accept_paused = true;
    lobby->accept_resume_ms = clock_ms() + ACCEPT_PAUSE_MS;
}

static void accept_all(struct fcgi_lobby *lobby)
{
    for (;;) {
        int fd = accept4(lobby->s.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            wait_for_record(lobby, fd, lobby->s.first_record_ms);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        /* Out of descriptors or memory for a moment: a lobby that quit
         * here would leave a process that answers nothing. */
        proxy_log(PROXY_LOG_ERROR, NULL, "accept failed: %s; retrying", strerror(errno));
        pause_accepting(lobby);
        return;
    }
}

static void adopt_returned(struct fcgi_lobby *lobby)
{
    uint64_t count;
    ssize_t ignored = read(lobby->wake_fd, &count, sizeof count);
    (void)ignored;
    for (;;) {
        pthread_mutex_lock(&lobby->lock);
        int fd = queue_pop(&lobby->returned);
        pthread_mutex_unlock(&lobby->lock);
        if (fd < 0)
            return;
        wait_for_record(lobby, fd, lobby->s.kept_idle_ms);
    }
}

static void sweep(struct fcgi_lobby *lobby, long long now)
{
    struct waiting *w = lobby->waiting;
    while (w) {
        struct waiting *next = w->next;
        if (now >= w->deadline_ms)
            close(unwait(lobby, w));
        w = next;
    }
    if (lobby->accept_paused && now >= lobby->accept_resume_ms) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &lobby->listen_marker};
        lobby->accept_paused = epoll_ctl(lobby->epfd, EPOLL_CTL_ADD, lobby->s.listen_fd, &ev) != 0;
    }
}

static bool closing(struct fcgi_lobby *lobby)
{
    pthread_mutex_lock(&lobby->lock);
    bool c = lobby->closing;
    pthread_mutex_unlock(&lobby->lock);
    return c;
}

static void *lobby_main(void *arg)
{
    struct fcgi_lobby *lobby = arg;
    struct epoll_event events[EVENTS_PER_WAIT];
    long long next_sweep = clock_ms() + SWEEP_MS;
    while (!closing(lobby)) {
        int n = epoll_wait(lobby->epfd, events, EVENTS_PER_WAIT, SWEEP_MS);
        for (int i = 0; i < n; i++) {
            void *what = events[i].data.ptr;
            if (what == &lobby->listen_marker)
                accept_all(lobby);
            else if (what == &lobby->wake_marker)
                adopt_returned(lobby);
            else
                on_readable(lobby, what);
        }
        long long now = clock_ms();
        if (now >= next_sweep) {
            sweep(lobby, now);
            next_sweep = now + SWEEP_MS;
        }
    }
    while (lobby->waiting)
        close(unwait(lobby, lobby->waiting));
    return NULL;
}

/* ---- the API ---- */

struct fcgi_lobby *fcgi_lobby_start(const struct fcgi_lobby_settings *s)
{
    struct fcgi_lobby *lobby = calloc(1, sizeof *lobby);
    if (!lobby)
        return NULL;
    lobby->s = *s;
    lobby->epfd = epoll_create1(EPOLL_CLOEXEC);
    lobby->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&lobby->lock, NULL);
    pthread_cond_init(&lobby->has_ready, NULL);
    int flags = fcntl(s->listen_fd, F_GETFL, 0);
    struct epoll_event listen_ev = {.events = EPOLLIN, .data.ptr = &lobby->listen_marker};
    struct epoll_event wake_ev = {.events = EPOLLIN, .data.ptr = &lobby->wake_marker};
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, LOBBY_STACK);
    bool ok = lobby->epfd >= 0 && lobby->wake_fd >= 0 && flags >= 0 &&
              fcntl(s->listen_fd, F_SETFL, flags | O_NONBLOCK) == 0 &&
              epoll_ctl(lobby->epfd, EPOLL_CTL_ADD, s->listen_fd, &listen_ev) == 0 &&
              epoll_ctl(lobby->epfd, EPOLL_CTL_ADD, lobby->wake_fd, &wake_ev) == 0 &&
              pthread_create(&lobby->thread, &attr, lobby_main, lobby) == 0;
    pthread_attr_destroy(&attr);
    if (ok)
        return lobby;
    if (lobby->epfd >= 0)
        close(lobby->epfd);
    if (lobby->wake_fd >= 0)
        close(lobby->wake_fd);
    pthread_cond_destroy(&lobby->has_ready);
    pthread_mutex_destroy(&lobby->lock);
    free(lobby);
    return NULL;
}

int fcgi_lobby_take(struct fcgi_lobby *lobby)
{
    pthread_mutex_lock(&lobby->lock);
    while (!lobby->closing && lobby->ready.len == 0)
        pthread_cond_wait(&lobby->has_ready, &lobby->lock);
    int fd = lobby->closing ? -1 : queue_pop(&lobby->ready);
    pthread_mutex_unlock(&lobby->lock);
    return fd;
}

void fcgi_lobby_return(struct fcgi_lobby *lobby, int fd)
{
    pthread_mutex_lock(&lobby->lock);
    bool queued = !lobby->closing && queue_push(&lobby->returned, fd);
    pthread_mutex_unlock(&lobby->lock);
    if (queued)
        wake(lobby);
    else
        close(fd);
}

void fcgi_lobby_close(struct fcgi_lobby *lobby)
{
    pthread_mutex_lock(&lobby->lock);
    lobby->closing = true;
    queue_close_all(&lobby->ready);
    queue_close_all(&lobby->returned);
    pthread_cond_broadcast(&lobby->has_ready);
    pthread_mutex_unlock(&lobby->lock);
    wake(lobby);
}

void fcgi_lobby_free(struct fcgi_lobby *lobby)
{
    if (!lobby)
        return;
    pthread_join(lobby->thread, NULL);
    close(lobby->epfd);
    close(lobby->wake_fd);
    free(lobby->ready.fds);
    free(lobby->returned.fds);
    pthread_cond_destroy(&lobby->has_ready);
    pthread_mutex_destroy(&lobby->lock);
    free(lobby);
}
