/* listen.c: the FastCGI listening socket: bound by the program (--listen)
 * or inherited from a web server, spawn-fcgi or systemd. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fcgi/listen.h"

int fcgi_listen_unix(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) {
        fprintf(stderr, "openova-flow-fcgi: --listen: socket path too long\n");
        return -1;
    }
    strcpy(addr.sun_path, path);
    struct stat st;
    /* Replace a socket left by a previous run, never any other file. */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            fprintf(stderr, "openova-flow-fcgi: --listen: %s exists and is not a socket\n", path);
            return -1;
        }
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, FCGI_LISTEN_BACKLOG) != 0) {
        fprintf(stderr, "openova-flow-fcgi: --listen unix:%s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int fcgi_listen_tcp(const char *spec)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || !colon[1]) {
        fprintf(stderr, "openova-flow-fcgi: --listen: expected unix:PATH or HOST:PORT\n");
        return -1;
    }
    char host[256];
    size_t host_len = (size_t)(colon - spec);
    if (host_len >= sizeof host)
        return -1;
    memcpy(host, spec, host_len);
    host[host_len] = '\0';
    /* [::1]:9000 */
    char *h = host;
    if (h[0] == '[' && host_len > 1 && h[host_len - 1] == ']') {
        h[host_len - 1] = '\0';
        h++;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    int rc = getaddrinfo(h, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "openova-flow-fcgi: --listen %s: %s\n", spec, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, FCGI_LISTEN_BACKLOG) != 0) {
        fprintf(stderr, "openova-flow-fcgi: --listen %s: %s\n", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static bool is_listening_socket(int fd)
{
    int accepting = 0;
    socklen_t len = sizeof accepting;
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0 && accepting;
}

int fcgi_listen_inherited(void)
{
    const char *fds = getenv("LISTEN_FDS");
    const char *pid = getenv("LISTEN_PID");
    if (fds && pid && strtol(pid, NULL, 10) == (long)getpid()) {
        if (strcmp(fds, "1") != 0) {
            fprintf(stderr, "openova-flow-fcgi: LISTEN_FDS: expected exactly one socket, got %s\n", fds);
            return -1;
        }
        /* Not for our children (libcurl spawns none, but be tidy). */
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDNAMES");
        if (is_listening_socket(3)) {
            fcntl(3, F_SETFD, FD_CLOEXEC);
            return 3;
        }
        fprintf(stderr, "openova-flow-fcgi: LISTEN_FDS: fd 3 is not a listening socket\n");
        return -1;
    }
    if (is_listening_socket(0))
        return 0;
    fprintf(stderr, "openova-flow-fcgi: fd 0 is not a listening socket: start it from a web server "
                    "(bin-path), spawn-fcgi, systemd socket activation, or with --listen\n");
    return -1;
}
