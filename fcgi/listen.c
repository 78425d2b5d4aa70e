/* listen.c: the FastCGI listening socket: bound by the program (--listen)
 * or inherited from a web server, spawn-fcgi or systemd. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fcgi/listen.h"

/* The socket file this process bound, to remove at exit only if it is still
 * ours. Written by the main thread only, before workers start and after
 * they end. */
static struct {
    dev_t dev;
    ino_t ino;
    bool bound;
} own_socket;

/* "0660", "660", "0777": an octal mode of at most four digits. */
static int parse_mode(const char *text, mode_t *mode)
{
    size_t n = strlen(text);
    if (n < 3 || n > 4 || strspn(text, "01234567") != n)
        return -1;
    *mode = (mode_t)strtoul(text, NULL, 8);
    return *mode <= 07777 ? 0 : -1;
}

static bool all_digits(const char *s)
{
    return *s && strspn(s, "0123456789") == strlen(s);
}

static int lookup_owner(const char *name, uid_t *uid)
{
    struct passwd *pw = all_digits(name) ? getpwuid((uid_t)strtoul(name, NULL, 10)) : getpwnam(name);
    if (all_digits(name) && !pw) {
        *uid = (uid_t)strtoul(name, NULL, 10); /* a number needs no entry in passwd */
        return 0;
    }
    if (!pw)
        return -1;
    *uid = pw->pw_uid;
    return 0;
}

static int lookup_group(const char *name, gid_t *gid)
{
    struct group *gr = all_digits(name) ? getgrgid((gid_t)strtoul(name, NULL, 10)) : getgrnam(name);
    if (all_digits(name) && !gr) {
        *gid = (gid_t)strtoul(name, NULL, 10);
        return 0;
    }
    if (!gr)
        return -1;
    *gid = gr->gr_gid;
    return 0;
}

int fcgi_socket_access_check(const struct fcgi_socket_access *a, char *err, size_t errlen)
{
    mode_t mode;
    uid_t uid;
    gid_t gid;
    if (a->mode && parse_mode(a->mode, &mode) != 0) {
        snprintf(err, errlen, "--socket-mode %s: not an octal mode such as 0660", a->mode);
        return -1;
    }
    if (a->owner && lookup_owner(a->owner, &uid) != 0) {
        snprintf(err, errlen, "--socket-owner %s: no such user", a->owner);
        return -1;
    }
    if (a->group && lookup_group(a->group, &gid) != 0) {
        snprintf(err, errlen, "--socket-group %s: no such group", a->group);
        return -1;
    }
    return 0;
}

/* Whether a process listens on the socket file at addr now. */
static bool someone_listens(const struct sockaddr_un *addr)
{
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return false;
    bool live = connect(probe, (const struct sockaddr *)addr, sizeof *addr) == 0 || errno == EAGAIN;
    close(probe);
    return live;
}

/* Clears the way for the socket at addr: nothing there, or a socket file
 * nobody listens on (removed). */
static int clear_path(const char *path, const struct sockaddr_un *addr)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        fprintf(stderr, "openova-flow-fcgi: --listen: %s exists and is not a socket\n", path);
        return -1;
    }
    if (someone_listens(addr)) {
        fprintf(stderr, "openova-flow-fcgi: --listen: another process is listening on %s\n", path);
        return -1;
    }
    unlink(path);
    return 0;
}

/* Mode, owner and group of the bound socket file. */
static int apply_access(const char *path, const struct fcgi_socket_access *a)
{
    mode_t mode = FCGI_LISTEN_UNIX_MODE;
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    char err[256];
    if (fcgi_socket_access_check(a, err, sizeof err) != 0) {
        fprintf(stderr, "openova-flow-fcgi: %s\n", err);
        return -1;
    }
    if (a->mode)
        parse_mode(a->mode, &mode);
    if (a->owner)
        lookup_owner(a->owner, &uid);
    if (a->group)
        lookup_group(a->group, &gid);
    if ((a->owner || a->group) && chown(path, uid, gid) != 0) {
        fprintf(stderr, "openova-flow-fcgi: --listen unix:%s: chown: %s\n", path, strerror(errno));
        return -1;
    }
    if (chmod(path, mode) != 0) {
        fprintf(stderr, "openova-flow-fcgi: --listen unix:%s: chmod: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int fcgi_listen_unix(const char *path, const struct fcgi_socket_access *a)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) {
        fprintf(stderr, "openova-flow-fcgi: --listen: socket path too long\n");
        return -1;
    }
    strcpy(addr.sun_path, path);
    if (clear_path(path, &addr) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* Born owner-only, and listening only once its mode and owner are set:
     * nobody connects to it before, nobody sees it half set up. */
    mode_t old_umask = umask(0177);
    int bound = fd >= 0 ? bind(fd, (struct sockaddr *)&addr, sizeof addr) : -1;
    umask(old_umask);
    if (fd < 0 || bound != 0) {
        fprintf(stderr, "openova-flow-fcgi: --listen unix:%s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        own_socket.dev = st.st_dev;
        own_socket.ino = st.st_ino;
        own_socket.bound = true;
    }
    int rc = apply_access(path, a); /* says why itself */
    if (rc == 0 && listen(fd, FCGI_LISTEN_BACKLOG) != 0) {
        fprintf(stderr, "openova-flow-fcgi: --listen unix:%s: %s\n", path, strerror(errno));
        rc = -1;
    }
    if (rc != 0) {
        close(fd);
        fcgi_listen_unix_remove(path);
        return -1;
    }
    return fd;
}

void fcgi_listen_unix_remove(const char *path)
{
    struct stat st;
    if (own_socket.bound && lstat(path, &st) == 0 && st.st_dev == own_socket.dev && st.st_ino == own_socket.ino)
        unlink(path);
    own_socket.bound = false;
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
