/* lobby.h: where web server connections wait while they have nothing to
 * say: new ones until their first record arrives, kept ones (FCGI_KEEP_CONN)
 * between requests. One thread accepts and watches them all with epoll and
 * hands a connection to a worker only when bytes are waiting, so an idle or
 * silent connection never holds a worker; each waits at most its deadline. */
#ifndef OPENOVA_FCGI_LOBBY_H
#define OPENOVA_FCGI_LOBBY_H

#include <stdbool.h>

struct fcgi_lobby;

struct fcgi_lobby_settings {
    int listen_fd;          /* made non-blocking; accepted from by the lobby alone */
    long first_record_ms;   /* a new connection that sends nothing this long is closed */
    long kept_idle_ms;      /* a kept connection idle this long is closed */
};

/* fcgi_lobby_start: the lobby and its thread (started with the caller's
 * signal mask). NULL when out of memory or descriptors. */
struct fcgi_lobby *fcgi_lobby_start(const struct fcgi_lobby_settings *s);

/* fcgi_lobby_take: a connection with bytes waiting, for a worker, which then
 * owns it; blocks until there is one. -1 once the lobby is closing.
 * Thread-safe. */
int fcgi_lobby_take(struct fcgi_lobby *lobby);

/* fcgi_lobby_return: a kept connection whose request is done waits for the
 * next one (closed at once when the lobby is closing). Thread-safe. */
void fcgi_lobby_return(struct fcgi_lobby *lobby, int fd);

/* fcgi_lobby_close: accepts no more, closes every waiting connection and
 * wakes the workers waiting in fcgi_lobby_take; returns at once. */
void fcgi_lobby_close(struct fcgi_lobby *lobby);

/* fcgi_lobby_free: joins the thread and frees the lobby; after
 * fcgi_lobby_close and once no worker can call into it. NULL-safe. */
void fcgi_lobby_free(struct fcgi_lobby *lobby);

#endif
