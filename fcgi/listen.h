/* listen.h: the FastCGI listening socket. Errors are printed to stderr with
 * the reason, as the program is still starting. */
#ifndef OPENOVA_FCGI_LISTEN_H
#define OPENOVA_FCGI_LISTEN_H

#include <stddef.h>

/* The backlog of a socket the program binds itself. */
#define FCGI_LISTEN_BACKLOG 1024

/* Who may connect to a unix socket the program binds: its mode (octal
 * text such as "0660"; NULL: FCGI_LISTEN_UNIX_MODE), owner and group
 * (names or numbers; NULL: the process's own). */
struct fcgi_socket_access {
    const char *mode;
    const char *owner;
    const char *group;
};
/* Owner and group read and write: the web server's group connects. */
#define FCGI_LISTEN_UNIX_MODE 0660

/* fcgi_socket_access_check: whether a's mode, owner and group are a mode
 * and known names, with the reason in err (for --check-config and the
 * start). Returns 0 or -1. */
int fcgi_socket_access_check(const struct fcgi_socket_access *a, char *err, size_t errlen);

/* fcgi_listen_unix: binds a unix socket at path with a's access. A socket
 * file left by a process that is gone is replaced; one that a live process
 * listens on is refused, as is any other file. Returns the fd or -1 (the
 * reason printed). The caller removes the file at exit with
 * fcgi_listen_unix_remove. */
int fcgi_listen_unix(const char *path, const struct fcgi_socket_access *a);

/* fcgi_listen_unix_remove: unlinks path if it is still the socket file
 * this process bound there (not one a later instance put in its place). */
void fcgi_listen_unix_remove(const char *path);

/* fcgi_listen_tcp: binds HOST:PORT ([::1]:9000 for IPv6). Returns the fd or -1. */
int fcgi_listen_tcp(const char *spec);

/* fcgi_listen_inherited: the socket a spawner handed over: systemd socket
 * activation passes it as fd 3 with LISTEN_FDS/LISTEN_PID (sd_listen_fds(3));
 * web servers and spawn-fcgi pass it as fd 0 (the FastCGI convention).
 * Returns the fd or -1. */
int fcgi_listen_inherited(void);

#endif
