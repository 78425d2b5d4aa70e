/* listen.h: the FastCGI listening socket. Errors are printed to stderr with
 * the reason, as the program is still starting. */
#ifndef OPENOVA_FCGI_LISTEN_H
#define OPENOVA_FCGI_LISTEN_H

/* The backlog of a socket the program binds itself. */
#define FCGI_LISTEN_BACKLOG 1024

/* fcgi_listen_unix: binds a unix socket at path (a stale socket file there is
 * replaced, any other file refused). Returns the fd or -1. */
int fcgi_listen_unix(const char *path);

/* fcgi_listen_tcp: binds HOST:PORT ([::1]:9000 for IPv6). Returns the fd or -1. */
int fcgi_listen_tcp(const char *spec);

/* fcgi_listen_inherited: the socket a spawner handed over: systemd socket
 * activation passes it as fd 3 with LISTEN_FDS/LISTEN_PID (sd_listen_fds(3));
 * web servers and spawn-fcgi pass it as fd 0 (the FastCGI convention).
 * Returns the fd or -1. */
int fcgi_listen_inherited(void);

#endif
