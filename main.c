/* main.c: command line, configuration, the listening socket and signals;
 * then the server runs until SIGTERM. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "handlers/upstream.h"
#include "auth/auth.h"
#include "core/config.h"
#include "core/log.h"
#include "fcgi/server.h"

#ifndef OPENOVA_VERSION
#define OPENOVA_VERSION "0.1.0"
#endif

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int signo)
{
    (void)signo;
    stop_requested = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: openova-flow-fcgi [--listen unix:PATH | --listen HOST:PORT] [--print-config]\n"
            "\n"
            "FastCGI front door to an OpenovaFlow flow server: relays\n"
            "  GET  {base}/{deploymentId}/snapshot\n"
            "  POST {base}/{deploymentId}/events\n"
            "  GET  {base}/{deploymentId}/stream   (Server-Sent Events, flushed per chunk)\n"
            "\n"
            "Without --listen it serves on the FastCGI listening socket inherited on\n"
            "fd 0 (lighttpd bin-path, spawn-fcgi) or passed by systemd socket\n"
            "activation (LISTEN_FDS=1, fd 3).\n"
            "\n"
            "Options:\n"
            "  --listen unix:PATH   bind a unix socket (a stale socket file is replaced)\n"
            "  --listen HOST:PORT   bind a TCP socket\n"
            "  --print-config       print the effective configuration as JSON and exit\n"
            "  --help, --version\n"
            "\n"
            "Configuration (environment):\n"
            "  OPENOVA_FLOW_SERVER_URL       upstream base URL (default %s)\n"
            "  OPENOVA_FLOW_PROXY_TIMEOUT    snapshot/events timeout, Go duration (default 10s)\n"
            "  OPENOVA_FLOW_TLS_SKIP_VERIFY  true: skip upstream certificate checks\n"
            "  OPENOVA_FLOW_CA_FILE          CA bundle for the upstream\n"
            "  OPENOVA_FLOW_BASE_PATH        where the routes live (default %s)\n"
            "  OPENOVA_FLOW_AUTH             accepted methods: remote-user (default), bearer, jwt,\n"
            "                                comma-separated, or none alone\n"
            "  OPENOVA_FLOW_AUTH_READ        the same for snapshot and stream (default: OPENOVA_FLOW_AUTH)\n"
            "  OPENOVA_FLOW_AUTH_EVENTS      the same for events (default: OPENOVA_FLOW_AUTH)\n"
            "  OPENOVA_FLOW_TOKENS_FILE      bearer: SHA-256 hex digests, one per line, optional name\n"
            "  OPENOVA_FLOW_JWKS_FILE        jwt: JWKS with the RS256/ES256 public keys\n"
            "  OPENOVA_FLOW_JWT_SECRET_FILE  jwt: HS256 key\n"
            "  OPENOVA_FLOW_JWT_COOKIE       jwt: cookie that may carry the token\n"
            "  OPENOVA_FLOW_JWT_ISSUER       jwt: required iss\n"
            "  OPENOVA_FLOW_JWT_AUDIENCE     jwt: required aud\n"
            "  OPENOVA_FLOW_JWT_USER_CLAIM   jwt: claim sent upstream as the user (default email, then sub)\n"
            "  OPENOVA_FLOW_JWT_CLOCK_SKEW   jwt: leeway for exp and nbf (default 30s)\n"
            "  OPENOVA_FLOW_CONNECT_TIMEOUT  upstream connect timeout (default 5s or the proxy timeout)\n"
            "  OPENOVA_FLOW_MAX_SNAPSHOT     largest snapshot body in bytes (default 16777216)\n"
            "  OPENOVA_FLOW_MAX_BODY         largest events body in bytes (default 1048576)\n"
            "  OPENOVA_FLOW_KEEPALIVE        SSE keepalive interval, 0 = off (default 15s)\n"
            "  OPENOVA_FLOW_MAX_STREAMS      most streams open at once (default 1024)\n"
            "  OPENOVA_FLOW_WORKERS          threads for short requests (default 16)\n",
            CONFIG_DEFAULT_UPSTREAM, CONFIG_DEFAULT_BASE_PATH);
}

/* Each open stream holds two descriptors (the web server's connection and
 * the upstream's): raise the soft limit to the hard one, and say so when
 * even that is short of what OPENOVA_FLOW_MAX_STREAMS allows. */
static void raise_fd_limit(const struct proxy_config *cfg)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
        return;
    if (lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
        getrlimit(RLIMIT_NOFILE, &lim);
    }
    rlim_t need = (rlim_t)cfg->max_streams * 2 + cfg->workers * 2 + 64;
    if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < need)
        proxy_log(PROXY_LOG_WARN, NULL,
                 "msg=\"open file limit %llu is below the %llu that OPENOVA_FLOW_MAX_STREAMS=%u needs\"",
                 (unsigned long long)lim.rlim_cur, (unsigned long long)need, cfg->max_streams);
}

static const char *env_lookup(const char *name)
{
    return getenv(name);
}

static int listen_unix(const char *path)
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
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 1024) != 0) {
        fprintf(stderr, "openova-flow-fcgi: --listen unix:%s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int listen_tcp(const char *spec)
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
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
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

/* The socket a spawner handed over: systemd socket activation passes it as
 * fd 3 with LISTEN_FDS/LISTEN_PID (sd_listen_fds(3)); web servers and
 * spawn-fcgi pass it as fd 0 (the FastCGI convention). Returns the fd or -1. */
static int inherited_listener(void)
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

int main(int argc, char **argv)
{
    const char *listen_spec = NULL;
    int print_config = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("openova-flow-fcgi %s (libcurl %s)\n", OPENOVA_VERSION, curl_version_info(CURLVERSION_NOW)->version);
            return 0;
        } else if (strcmp(argv[i], "--print-config") == 0) {
            print_config = 1;
        } else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen_spec = argv[++i];
        } else if (strncmp(argv[i], "--listen=", 9) == 0) {
            listen_spec = argv[i] + 9;
        } else {
            fprintf(stderr, "openova-flow-fcgi: unknown argument %s (see --help)\n", argv[i]);
            return 2;
        }
    }

    struct proxy_config cfg;
    char err[256];
    if (config_load(&cfg, env_lookup, err, sizeof err) != 0) {
        fprintf(stderr, "openova-flow-fcgi: %s\n", err);
        return 2;
    }
    if (print_config) {
        char *json = config_json(&cfg);
        if (!json)
            return 1;
        puts(json);
        free(json);
        config_free(&cfg);
        return 0;
    }

    /* The tokens file and the keys are read now: a bad one stops the start
     * with its reason, before a socket is taken. */
    struct auth *auth = auth_new(&cfg, err, sizeof err);
    if (!auth) {
        fprintf(stderr, "openova-flow-fcgi: %s\n", err);
        config_free(&cfg);
        return 2;
    }

    int listen_fd;
    if (listen_spec)
        listen_fd = strncmp(listen_spec, "unix:", 5) == 0 ? listen_unix(listen_spec + 5) : listen_tcp(listen_spec);
    else
        listen_fd = inherited_listener();
    if (listen_fd < 0) {
        auth_free(auth);
        config_free(&cfg);
        return 2;
    }

    /* A client that leaves turns writes into EPIPE, not a dead process. */
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: pause() must return */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* Some spawners (lighttpd) send SIGUSR1 for a graceful restart. */
    sigaction(SIGUSR1, &sa, NULL);
    /* A hang-up of the controlling terminal stops cleanly too. */
    sigaction(SIGHUP, &sa, NULL);

    raise_fd_limit(&cfg);
    if (cfg.auth_read == AUTH_NONE || cfg.auth_events == AUTH_NONE) {
        const char *open_routes = cfg.auth_read == cfg.auth_events       ? "every route"
                                  : cfg.auth_read == AUTH_NONE ? "snapshot and stream"
                                                                    : "events";
        proxy_log(PROXY_LOG_WARN, NULL, "msg=\"no authentication for %s: anyone is let in\"", open_routes);
    }
    if (cfg.tls_skip_verify)
        proxy_log(PROXY_LOG_WARN, NULL, "msg=\"OPENOVA_FLOW_TLS_SKIP_VERIFY=true: upstream certificates are not checked\"");

    int rc = 1;
    if (FCGX_Init() != 0 || upstream_global_init() != 0)
        proxy_log(PROXY_LOG_ERROR, NULL, "msg=\"cannot initialise libfcgi or libcurl\"");
    else
        rc = fcgi_server_run(&cfg, auth, listen_fd, listen_spec != NULL, &stop_requested);
    auth_free(auth);
    upstream_global_cleanup();
    if (listen_spec)
        close(listen_fd);
    config_free(&cfg);
    return rc;
}
