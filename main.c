/* main.c: where it is all wired together: the command line, the
 * configuration, credentials, the listening socket and signals; then the
 * FastCGI server runs the flow routes until SIGTERM. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "auth/auth.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/url_template.h"
#include "fcgi/listen.h"
#include "fcgi/server.h"
#include "handlers/dispatch.h"
#include "handlers/ops.h"
#include "handlers/stream_loop.h"
#include "handlers/upstream.h"
#include "handlers/upstreams.h"

#ifndef OPENOVA_VERSION
#define OPENOVA_VERSION "0.1.0"
#endif

/* How long the start waits for the upstream's health check at most. */
#define START_PROBE_MS 1000

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

static void on_stop_signal(int signo)
{
    (void)signo;
    stop_requested = 1;
}

static void on_reload_signal(int signo)
{
    (void)signo;
    reload_requested = 1;
}

static void usage_environment(FILE *out);

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: openova-flow-fcgi [--listen unix:PATH [--socket-mode MODE] [--socket-owner USER]\n"
            "                         [--socket-group GROUP] | --listen HOST:PORT]\n"
            "       openova-flow-fcgi --print-config | --check-config | --help | --version\n"
            "\n"
            "FastCGI front door to an OpenovaFlow flow server: relays\n"
            "  GET  {base}/{deploymentId}/snapshot\n"
            "  POST {base}/{deploymentId}/events\n"
            "  GET  {base}/{deploymentId}/stream   (Server-Sent Events, flushed per chunk)\n"
            "  DELETE {base}/{deploymentId}        (the purge, with OPENOVA_FLOW_AUTH_DELETE)\n"
            "\n"
            "Without --listen it serves on the FastCGI listening socket inherited on\n"
            "fd 0 (lighttpd bin-path, spawn-fcgi) or passed by systemd socket\n"
            "activation (LISTEN_FDS=1, fd 3).\n"
            "\n"
            "Options:\n"
            "  --listen unix:PATH   bind a unix socket (a stale socket file is replaced, a live one\n"
            "                       refused; the file is removed at exit)\n"
            "  --listen HOST:PORT   bind a TCP socket\n"
            "  --socket-mode MODE   unix socket's mode (default 0660)\n"
            "  --socket-owner USER  unix socket's owner (name or number)\n"
            "  --socket-group GROUP unix socket's group (name or number; the web server's)\n"
            "  --print-config       print the effective configuration as JSON and exit\n"
            "  --check-config       check the configuration and credential files, one line per\n"
            "                       problem, and exit 0 or 2 without binding\n"
            "  --help, --version\n"
            "\n");
    usage_environment(out);
}

static void usage_environment(FILE *out)
{
    fprintf(out,
            "Configuration (environment):\n"
            "  OPENOVA_FLOW_SERVER_URL       upstream base URL for every deployment (default %s)\n"
            "  OPENOVA_FLOW_DEPLOYMENTS_DIR  the central console: <id>.json records; without\n"
            "                                OPENOVA_FLOW_SERVER_URL, each deployment goes to the\n"
            "                                flow server of its record's request.sovereignFQDN\n"
            "  OPENOVA_FLOW_UPSTREAM_TEMPLATE that flow server's URL (default %s)\n"
            "  OPENOVA_FLOW_CLIENT_CERT      PEM client certificate for the flow servers (mutual TLS)\n"
            "  OPENOVA_FLOW_CLIENT_KEY       its key (default: in the certificate's file)\n"
            "  OPENOVA_FLOW_UPSTREAM_TOKEN_FILE bearer token sent upstream as Authorization, re-read\n"
            "                                when it changes\n"
            "  OPENOVA_FLOW_RESOLVE          host:port:address,... as curl's --resolve\n"
            "  OPENOVA_FLOW_PROXY_TIMEOUT    snapshot/events timeout, Go duration (default 10s)\n"
            "  OPENOVA_FLOW_TLS_SKIP_VERIFY  true: skip upstream certificate checks\n"
            "  OPENOVA_FLOW_CA_FILE          CA bundle for the upstream\n"
            "  OPENOVA_FLOW_BASE_PATH        where the routes live (default %s)\n"
            "  OPENOVA_FLOW_AUTH             accepted methods: remote-user (default), bearer, jwt,\n"
            "                                comma-separated, or none alone\n"
            "  OPENOVA_FLOW_AUTH_READ        the same for snapshot and stream (default: OPENOVA_FLOW_AUTH)\n"
            "  OPENOVA_FLOW_AUTH_EVENTS      the same for events (default: OPENOVA_FLOW_AUTH)\n"
            "  OPENOVA_FLOW_AUTH_DELETE      the same for DELETE {base}/{id}, the purge (unset: no such route)\n"
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
            "  OPENOVA_FLOW_UPSTREAM_IDLE    cut a stream whose upstream is silent this long, 0 = never (default 45s)\n"
            "  OPENOVA_FLOW_KEEPCONN_IDLE    close a kept FastCGI connection idle this long (default 60s)\n"
            "  OPENOVA_FLOW_CLIENT_TIMEOUT   read of a request from the web server, head and body (default 30s)\n"
            "  OPENOVA_FLOW_MAX_STREAMS      most streams open at once (default 1024)\n",
            CONFIG_DEFAULT_UPSTREAM, URL_TEMPLATE_DEFAULT, CONFIG_DEFAULT_BASE_PATH);
    /* in parts: C11 compilers need only take strings of 4095 characters */
    fprintf(out,
            "  OPENOVA_FLOW_FANOUT           on: one upstream stream per flow, shared by its clients (default off)\n"
            "  OPENOVA_FLOW_FANOUT_LINGER    fan-out: keep a flow's upstream stream after its last client (default 5s)\n"
            "  OPENOVA_FLOW_FANOUT_USER      fan-out: X-Forwarded-User of the shared streams (default openova-flow-fcgi)\n"
            "  OPENOVA_FLOW_CLIENT_BUFFER    fan-out: bytes a client may leave unread, then cut (default 1048576)\n"
            "  OPENOVA_FLOW_FANOUT_HISTORY   fan-out: frames kept for joiners, in bytes (default 16777216)\n"
            "  OPENOVA_FLOW_WORKERS          threads for short requests (default 16)\n"
            "  OPENOVA_FLOW_HEALTH_PATH      liveness, the process alone (default %s; empty: off)\n"
            "  OPENOVA_FLOW_READY_PATH       readiness: the upstream's GET /healthz, or the console's\n"
            "                                records directory (default %s; empty: off)\n"
            "  OPENOVA_FLOW_METRICS_PATH     Prometheus metrics (default %s; empty: off)\n"
            "  OPENOVA_FLOW_STATUS_PATH      status page, text or ?json (default %s; empty: off)\n"
            "  OPENOVA_FLOW_METRICS_ALLOW    client addresses that may read metrics and status\n"
            "                                (default %s)\n"
            "  OPENOVA_FLOW_LOG_LEVEL        debug, info (default), warn or error\n"
            "  OPENOVA_FLOW_LOG_FORMAT       logfmt (default) or json\n"
            "  OPENOVA_FLOW_ENV_FILE         environment file SIGHUP re-reads OPENOVA_FLOW_LOG_LEVEL from\n"
            "\n"
            "Signals: SIGTERM, SIGINT stop gracefully; SIGHUP re-reads the credential files,\n"
            "the upstream token and the log level and never stops; SIGUSR1, SIGUSR2 are ignored.\n",
            CONFIG_DEFAULT_HEALTH_PATH, CONFIG_DEFAULT_READY_PATH,
            CONFIG_DEFAULT_METRICS_PATH, CONFIG_DEFAULT_STATUS_PATH, CONFIG_DEFAULT_METRICS_ALLOW);
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
                 "open file limit %llu is below the %llu that OPENOVA_FLOW_MAX_STREAMS=%u needs",
                 (unsigned long long)lim.rlim_cur, (unsigned long long)need, cfg->max_streams);
}

static const char *env_lookup(const char *name)
{
    return getenv(name);
}

/* ---- the flow routes as the FastCGI server's application ---- */

static int app_start(void *ctx)
{
    struct flow_app *app = ctx;
    app->streams = stream_loop_start(app->cfg);
    if (!app->streams)
        proxy_log(PROXY_LOG_ERROR, NULL, "cannot start: out of memory");
    return app->streams ? 0 : -1;
}

static void *app_worker_start(void *ctx)
{
    const struct flow_app *app = ctx;
    return upstream_client_new(app->cfg, app->upstreams);
}

static void app_worker_end(void *ctx, void *worker)
{
    (void)ctx;
    upstream_client_free(worker);
}

static void app_serve(void *ctx, void *worker, struct fcgi_request *req)
{
    metrics_worker_busy(1);
    dispatch(ctx, worker, req);
    metrics_worker_busy(-1);
}

/* SIGHUP: the credential files now, and the log level from the
 * environment file, if one is named; nothing else changes without a restart. */
static void app_reload(void *ctx)
{
    struct flow_app *app = ctx;
    auth_reload(app->auth);
    upstreams_reload(app->upstreams);
    const char *level_text = proxy_log_level_name(app->cfg->log_level);
    char value[32], err[256];
    enum proxy_log_level level = app->cfg->log_level;
    if (app->cfg->env_file) {
        enum proxy_err rc = config_env_file_value(app->cfg->env_file, "OPENOVA_FLOW_LOG_LEVEL", value, sizeof value,
                                                  err, sizeof err);
        if (rc == PROXY_OK && proxy_log_level_parse(value, &level) != 0)
            proxy_log(PROXY_LOG_WARN, NULL, "reload: OPENOVA_FLOW_LOG_LEVEL=%s in %s is not a level; keeping %s",
                      value, app->cfg->env_file, level_text);
        else if (rc == PROXY_OK)
            level_text = proxy_log_level_name(level);
    }
    proxy_log_set_level(level);
    struct log_field fields[] = {LOG_TEXT("log_level", level_text)};
    /* An operator's action leaves a line, whatever the level says. */
    proxy_log_fields(level > PROXY_LOG_INFO ? level : PROXY_LOG_INFO, NULL,
                     "reloaded on SIGHUP: credential files re-read", fields, 1);
}

static void app_stopping(void *ctx)
{
    struct flow_app *app = ctx;
    proxy_log(PROXY_LOG_INFO, NULL, "stopping: %u streams open", stream_loop_open_streams(app->streams));
    stream_loop_begin_stop(app->streams);
}

static void app_cut_short(void *ctx)
{
    (void)ctx;
    upstream_abort_all();
}

static void app_stopped(void *ctx, bool workers_left)
{
    struct flow_app *app = ctx;
    /* A worker that never ended may still reserve a slot: the loop stays
     * (refusing) until the process exits. */
    if (workers_left) {
        stream_loop_join(app->streams);
        return;
    }
    stream_loop_stop(app->streams);
    app->streams = NULL;
}

/* ---- start ---- */

struct options {
    const char *listen_spec;
    bool print_config, check_config;
    struct fcgi_socket_access access; /* --listen unix: only */
};

/* An option with a value ("--name VALUE" or "--name=VALUE") into *out;
 * true when argv[*i] is it. */
static bool value_option(int argc, char **argv, int *i, const char *name, const char **out)
{
    size_t n = strlen(name);
    if (strcmp(argv[*i], name) == 0 && *i + 1 < argc) {
        *out = argv[++*i];
        return true;
    }
    if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=') {
        *out = argv[*i] + n + 1;
        return true;
    }
    return false;
}

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, struct options *o)
{
    for (int i = 1; i < argc; i++) {
        if (value_option(argc, argv, &i, "--listen", &o->listen_spec) ||
            value_option(argc, argv, &i, "--socket-mode", &o->access.mode) ||
            value_option(argc, argv, &i, "--socket-owner", &o->access.owner) ||
            value_option(argc, argv, &i, "--socket-group", &o->access.group))
            continue;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("openova-flow-fcgi %s (libcurl %s)\n", OPENOVA_VERSION, curl_version_info(CURLVERSION_NOW)->version);
            return 0;
        } else if (strcmp(argv[i], "--print-config") == 0) {
            o->print_config = true;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            o->check_config = true;
        } else {
            fprintf(stderr, "openova-flow-fcgi: unknown argument %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    bool unix_socket = o->listen_spec && strncmp(o->listen_spec, "unix:", 5) == 0;
    if ((o->access.mode || o->access.owner || o->access.group) && !unix_socket) {
        fprintf(stderr, "openova-flow-fcgi: --socket-mode, --socket-owner and --socket-group need --listen unix:PATH\n");
        return 2;
    }
    return -1;
}

static void print_problem(const char *sentence, void *ctx)
{
    unsigned *count = ctx;
    fprintf(stderr, "openova-flow-fcgi: %s\n", sentence);
    if (count)
        (*count)++;
}

/* --check-config: everything a start does short of binding, one line per
 * problem; unknown variables are warnings, not problems. */
static int check_config(const struct options *o)
{
    struct proxy_config cfg;
    unsigned bad = config_check_all(&cfg, env_lookup, print_problem, NULL);
    config_unknown_variables(environ, print_problem, NULL);
    char err[256];
    if (!bad) {
        struct auth *auth = auth_new(&cfg, err, sizeof err);
        if (!auth)
            print_problem(err, &bad);
        auth_free(auth);
        if (upstream_global_init() != 0) {
            print_problem("cannot initialise libcurl", &bad);
        } else {
            struct upstreams *upstreams = upstreams_new(&cfg, err, sizeof err);
            if (!upstreams)
                print_problem(err, &bad);
            upstreams_free(upstreams);
            upstream_global_cleanup();
        }
    }
    if (o->listen_spec && strncmp(o->listen_spec, "unix:", 5) == 0 &&
        fcgi_socket_access_check(&o->access, err, sizeof err) != 0)
        print_problem(err, &bad);
    config_free(&cfg);
    if (!bad)
        printf("openova-flow-fcgi: configuration OK\n");
    return bad ? 2 : 0;
}

static void log_warning(const char *sentence, void *ctx)
{
    (void)ctx;
    proxy_log(PROXY_LOG_WARN, NULL, "%s", sentence);
}

static int print_config(struct proxy_config *cfg)
{
    char *json = config_json(cfg);
    if (json)
        puts(json);
    free(json);
    config_free(cfg);
    return json ? 0 : 1;
}

static void install_signals(void)
{
    /* A client that leaves turns writes into EPIPE, not a dead process. */
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the wait for the stop must return */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* SIGHUP reloads (a reflexive kill -HUP, logrotate's postrotate): it
     * never stops the process. */
    sa.sa_handler = on_reload_signal;
    sigaction(SIGHUP, &sa, NULL);
    /* Nothing here uses them: a stray one must not end the process (their
     * default action). */
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
}

static void warn_about(const struct proxy_config *cfg)
{
    if (cfg->auth_read == AUTH_NONE || cfg->auth_events == AUTH_NONE) {
        const char *open_routes = cfg->auth_read == cfg->auth_events ? "every route"
                                  : cfg->auth_read == AUTH_NONE       ? "snapshot and stream"
                                                                       : "events";
        proxy_log(PROXY_LOG_WARN, NULL, "no authentication for %s: anyone is let in", open_routes);
    }
    if (cfg->tls_skip_verify)
        proxy_log(PROXY_LOG_WARN, NULL,
                  "OPENOVA_FLOW_TLS_SKIP_VERIFY=true: upstream certificates are not checked");
    const char *dir = getenv("OPENOVA_FLOW_DEPLOYMENTS_DIR");
    if (cfg->upstream_mode == UPSTREAM_FIXED && dir && *dir)
        proxy_log(PROXY_LOG_WARN, NULL,
                  "OPENOVA_FLOW_DEPLOYMENTS_DIR is not used: OPENOVA_FLOW_SERVER_URL sends every deployment to %s",
                  cfg->upstream_shown);
}

/* Not fatal: the flow server may start after the proxy. The console has no
 * one flow server to look at. */
static void probe_upstream(const struct proxy_config *cfg, const struct upstreams *upstreams)
{
    char why[CURL_ERROR_SIZE + 64];
    if (cfg->upstream_mode == UPSTREAM_PER_DEPLOYMENT)
        return;
    if (upstream_reachable(cfg, upstreams, START_PROBE_MS, why, sizeof why) != PROXY_OK)
        proxy_log(PROXY_LOG_WARN, NULL, "upstream %s cannot be reached now (%s); serving anyway", cfg->upstream_shown,
                  why);
}

static int serve(const struct proxy_config *cfg, struct auth *auth, struct upstreams *upstreams, int listen_fd,
                 bool own_socket)
{
    raise_fd_limit(cfg);
    warn_about(cfg);
    if (FCGX_Init() != 0) {
        proxy_log(PROXY_LOG_ERROR, NULL, "cannot initialise libfcgi");
        return 1;
    }
    probe_upstream(cfg, upstreams);
    const char *libcurl = curl_version_info(CURLVERSION_NOW)->version;
    struct flow_app flow = {.cfg = cfg, .auth = auth, .upstreams = upstreams,
                            .ops = ops_new(cfg, upstreams, OPENOVA_VERSION, libcurl)};
    if (!flow.ops) {
        proxy_log(PROXY_LOG_ERROR, NULL, "cannot start: out of memory");
        return 1;
    }
    struct fcgi_app app = {
        .ctx = &flow,
        .start = app_start,
        .worker_start = app_worker_start,
        .worker_end = app_worker_end,
        .serve = app_serve,
        .reload = app_reload,
        .stopping = app_stopping,
        .cut_short = app_cut_short,
        .stopped = app_stopped,
    };
    const struct log_field banner[] = {
        LOG_TEXT("version", OPENOVA_VERSION),
        LOG_TEXT("upstream", cfg->upstream_mode == UPSTREAM_PER_DEPLOYMENT ? cfg->upstream_template
                                                                             : cfg->upstream_shown),
        LOG_NUMBER("max_streams", cfg->max_streams),
        LOG_TEXT("metrics", cfg->metrics_path ? cfg->metrics_path : "off"),
    };
    struct fcgi_server_settings settings = {.listen_fd = listen_fd,
                                            .own_socket = own_socket,
                                            .workers = cfg->workers,
                                            .client_timeout_ms = cfg->client_timeout_ms,
                                            .keepconn_idle_ms = cfg->keepconn_idle_ms,
                                            .banner = banner,
                                            .banner_count = sizeof banner / sizeof banner[0]};
    int rc = fcgi_server_run(&settings, &app, &stop_requested, &reload_requested);
    /* A worker that never ended may still read the state: the process exits
     * from inside fcgi_server_run then, so here every worker is gone. */
    ops_free(flow.ops);
    return rc;
}

int main(int argc, char **argv)
{
    struct options opts = {0};
    int rc = parse_args(argc, argv, &opts);
    if (rc >= 0)
        return rc;
    if (opts.check_config)
        return check_config(&opts);
    bool unix_socket = opts.listen_spec && strncmp(opts.listen_spec, "unix:", 5) == 0;
    struct proxy_config cfg;
    char err[256];
    if (config_load(&cfg, env_lookup, err, sizeof err) != 0) {
        fprintf(stderr, "openova-flow-fcgi: %s\n", err);
        return 2;
    }
    if (opts.print_config)
        return print_config(&cfg);
    proxy_log_setup(cfg.log_level, cfg.log_format);
    config_unknown_variables(environ, log_warning, NULL);
    /* Nothing reads the counters without the metrics or the status page. */
    metrics_enable(cfg.metrics_path || cfg.status_path);
    /* The tokens file and the keys, the upstream token and the records
     * directory are read now: a bad one stops the start with its reason,
     * before a socket is taken. */
    if (upstream_global_init() != 0) {
        fprintf(stderr, "openova-flow-fcgi: cannot initialise libcurl\n");
        config_free(&cfg);
        return 1;
    }
    struct auth *auth = auth_new(&cfg, err, sizeof err);
    struct upstreams *upstreams = auth ? upstreams_new(&cfg, err, sizeof err) : NULL;
    int listen_fd = -1;
    if (!auth || !upstreams)
        fprintf(stderr, "openova-flow-fcgi: %s\n", err);
    else if (opts.listen_spec)
        listen_fd = unix_socket ? fcgi_listen_unix(opts.listen_spec + 5, &opts.access)
                                : fcgi_listen_tcp(opts.listen_spec);
    else
        listen_fd = fcgi_listen_inherited();
    rc = 2;
    if (listen_fd >= 0) {
        install_signals();
        rc = serve(&cfg, auth, upstreams, listen_fd, opts.listen_spec != NULL);
        if (opts.listen_spec)
            close(listen_fd);
        if (unix_socket)
            fcgi_listen_unix_remove(opts.listen_spec + 5);
    }
    upstreams_free(upstreams);
    auth_free(auth);
    upstream_global_cleanup();
    config_free(&cfg);
    return rc;
}
