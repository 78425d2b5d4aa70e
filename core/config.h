/* config.h: the proxy's settings, read once from the environment at start.
 * Immutable after config_load, so every thread reads it without a lock. */
#ifndef OPENOVA_CONFIG_H
#define OPENOVA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/cidr.h"
#include "core/error.h"
#include "core/log.h"

#define CONFIG_DEFAULT_UPSTREAM "http://openova-flow-server.catalyst-system.svc.cluster.local:8080"
#define CONFIG_DEFAULT_BASE_PATH "/api/v1/flows"
/* Who the flow server sees on fan-out's shared streams. */
#define CONFIG_DEFAULT_FANOUT_USER "openova-flow-fcgi"
/* The operations endpoints: outside the flow routes, under a prefix of
 * their own so that they sit beside other applications of the same site. */
#define CONFIG_DEFAULT_HEALTH_PATH "/openova-flow/healthz"
#define CONFIG_DEFAULT_READY_PATH "/openova-flow/readyz"
#define CONFIG_DEFAULT_METRICS_PATH "/openova-flow/metrics"
#define CONFIG_DEFAULT_STATUS_PATH "/openova-flow/status"
#define CONFIG_DEFAULT_METRICS_ALLOW "127.0.0.0/8,::1"

/* Authentication methods, as OPENOVA_FLOW_AUTH* name them. This is
 * configuration vocabulary, so it stays in core/ beside the settings that
 * carry it; auth/ checks the methods. A route accepts a set of them (a bit
 * mask), any one of which lets a request in; the empty set is "none": no
 * check. */
enum auth_method {
    AUTH_REMOTE_USER = 1 << 0, /* the web server authenticated: REMOTE_USER */
    AUTH_BEARER = 1 << 1,      /* a static token from OPENOVA_FLOW_TOKENS_FILE */
    AUTH_JWT = 1 << 2,         /* a signed JWT (bearer header or cookie) */
};
#define AUTH_NONE 0u

/* Which OPENOVA_FLOW_AUTH_* variable a route takes its methods from. */
enum auth_scope {
    AUTH_SCOPE_READ,   /* snapshot and stream: OPENOVA_FLOW_AUTH_READ */
    AUTH_SCOPE_EVENTS, /* events: OPENOVA_FLOW_AUTH_EVENTS */
    AUTH_SCOPE_DELETE, /* the purge: OPENOVA_FLOW_AUTH_DELETE */
};

/* Where the flow routes' calls go, in the order they are decided. */
enum upstream_mode {
    UPSTREAM_IN_CLUSTER,     /* neither variable: CONFIG_DEFAULT_UPSTREAM, inside a Sovereign */
    UPSTREAM_FIXED,          /* OPENOVA_FLOW_SERVER_URL: that URL for every deployment */
    UPSTREAM_PER_DEPLOYMENT, /* OPENOVA_FLOW_DEPLOYMENTS_DIR: the central console, from each record */
};

struct proxy_config {
    enum upstream_mode upstream_mode;
    char *upstream_url;       /* no trailing '/'; every call's but in UPSTREAM_PER_DEPLOYMENT */
    char *upstream_shown;     /* the same without a password, for logs and pages */
    char *deployments_dir;    /* UPSTREAM_PER_DEPLOYMENT: the records, <id>.json; else NULL */
    char *upstream_template;  /* UPSTREAM_PER_DEPLOYMENT: checked by url_template_check; else NULL */
    char *client_cert;        /* mutual TLS to the flow servers: a PEM certificate; NULL: none */
    char *client_key;         /* its key; NULL: in client_cert's file, or none */
    char *upstream_token_file; /* a bearer token sent upstream as Authorization, re-read on change */
    char *resolve;            /* curl --resolve entries, host:port:address, comma-separated; NULL: none */
    long proxy_timeout_ms;    /* snapshot and events, whole request */
    bool tls_skip_verify;
    char *ca_file;            /* NULL: the system bundle */
    char *base_path;          /* starts with '/', no trailing '/' */
    unsigned auth_read;       /* snapshot and stream: auth_method bits */
    unsigned auth_events;     /* events */
    bool purge_enabled;       /* OPENOVA_FLOW_AUTH_DELETE set: DELETE {base}/{id} is a route */
    unsigned auth_delete;     /* its methods */
    char *tokens_file;        /* bearer: SHA-256 digests, re-read on change */
    char *jwks_file;          /* jwt: public keys, re-read on change */
    char *jwt_secret_file;    /* jwt: the HS256 key */
    char *jwt_cookie;         /* jwt: a cookie that may carry the token */
    char *jwt_issuer;         /* NULL: not checked */
    char *jwt_audience;       /* NULL: not checked */
    char *jwt_user_claim;     /* default "email", falling back to "sub" */
    long jwt_clock_skew_ms;
    long connect_timeout_ms;  /* the upstream's TCP and TLS handshake */
    size_t max_snapshot;      /* the largest snapshot body relayed: 502 past it */
    size_t max_body;
    long keepalive_ms;        /* 0: no keepalive comments */
    long upstream_idle_ms;    /* a stream's upstream silent this long is cut; 0: never */
    long keepconn_idle_ms;    /* a kept FastCGI connection idle this long is closed */
    long client_timeout_ms;   /* the whole read of a request from the web server: head and body */
    unsigned max_streams;
    /* Fan-out: one upstream subscription per (upstream, flow), shared by
     * every client stream of that flow. */
    bool fanout;
    long fanout_linger_ms;    /* the subscription stays open this long after its last client */
    char *fanout_user;        /* X-Forwarded-User of the shared subscriptions */
    size_t client_buffer;     /* a fan-out client's waiting bytes: past it, its stream is cut */
    size_t fanout_history;    /* frames kept since the snapshot frame for joiners: past it, a new subscription */
    unsigned workers;         /* threads answering FastCGI requests */
    /* Liveness, readiness, metrics, status: exact paths; NULL: not served. */
    char *health_path, *ready_path, *metrics_path, *status_path;
    struct cidr_list metrics_allow; /* who may read metrics and status */
    enum proxy_log_level log_level;
    char *env_file;           /* where SIGHUP re-reads the log level (systemd's EnvironmentFile); NULL: none */
    enum proxy_log_format log_format;
};

/* Reads an environment variable; getenv in the program, a table in tests. */
typedef const char *(*config_env_fn)(const char *name);

/* config_load: fills cfg from env (defaults where unset), checking the
 * variables in a fixed order. Returns PROXY_OK; or, at the first bad one,
 * PROXY_ERR_INVALID (a bad value) or PROXY_ERR_NOMEM, with one sentence in
 * err that starts with the variable's name and ": ". On failure cfg holds
 * nothing to free. On success the caller frees cfg's strings with
 * config_free. */
enum proxy_err config_load(struct proxy_config *cfg, config_env_fn env, char *err, size_t errlen);

/* config_check_all: as config_load, but goes on past a bad variable and
 * calls report with the sentence of each (--check-config: one line per
 * problem). Returns how many were bad; cfg holds what loaded, freed by
 * config_free in any case. */
typedef void (*config_report_fn)(const char *sentence, void *ctx);
unsigned config_check_all(struct proxy_config *cfg, config_env_fn env, config_report_fn report, void *ctx);

/* config_unknown_variables: calls report with a sentence for each name in
 * names (an environment's variable names, NULL-terminated entries
 * "NAME=value" as in environ) that starts with OPENOVA_FLOW_ and is no
 * setting of this program, naming the closest known one. Returns how many. */
unsigned config_unknown_variables(char *const *environment, config_report_fn report, void *ctx);

/* config_list_item: the next item of a comma-separated setting at *p
 * (OPENOVA_FLOW_RESOLVE), without the white space around it: returns where
 * it starts and sets *len; moves *p past it and the commas after it. NULL
 * at the end (or for a NULL *p). Pure. */
const char *config_list_item(const char **p, size_t *len);

/* config_free: frees the strings cfg owns; NULL-safe, idempotent. */
void config_free(struct proxy_config *cfg);

/* config_json: the effective configuration as one JSON object text.
 * Returns a malloc'd string the caller frees, or NULL when out of memory. */
char *config_json(const struct proxy_config *cfg);

/* config_auth_methods_text: the methods of mask by their names, joined by
 * commas ("remote-user,bearer"), or "none" for the empty set, into out;
 * outlen must hold every name (CONFIG_AUTH_METHODS_TEXT_MAX does). Returns
 * out. */
#define CONFIG_AUTH_METHODS_TEXT_MAX 64
const char *config_auth_methods_text(unsigned mask, char *out, size_t outlen);

/* config_env_file_value: the value of name in an environment file as
 * systemd's EnvironmentFile= reads it (NAME=value lines; '#' and ';'
 * comments; a value in single or double quotes loses them) into out.
 * Returns PROXY_OK, PROXY_ERR_INVALID when the file cannot be read or does
 * not set name (a sentence in err), or PROXY_ERR_TOO_LARGE when the value
 * does not fit out. */
enum proxy_err config_env_file_value(const char *path, const char *name, char *out, size_t outlen, char *err,
                                     size_t errlen);

/* config_duration_ms: a Go duration (core/duration.h: "10s", "1500ms",
 * "1m30s", "0") in milliseconds, as every duration setting reads it: a
 * fraction of a millisecond rounds up, so that a positive duration never
 * becomes 0 (which means "off" to some settings); negative durations are
 * refused, as no setting means anything by one ("-0" is 0). Returns PROXY_OK
 * with *ms set, or PROXY_ERR_INVALID (not a duration, negative, or past
 * Go's range) with *ms untouched. Pure. */
enum proxy_err config_duration_ms(const char *text, long *ms);

#endif
