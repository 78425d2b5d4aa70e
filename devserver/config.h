/* config.h: the flow server's settings from the environment, parsed by pure
 * functions (the environment is passed in, so tests feed tables). */
#ifndef OPENOVA_DS_CONFIG_H
#define OPENOVA_DS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DS_DEFAULT_LISTEN "127.0.0.1:8081"
#define DS_DEFAULT_RING 4096u
#define DS_RING_MAX (1u << 20)
#define DS_DEFAULT_HEARTBEAT_MS 15000u
#define DS_HEARTBEAT_MIN_MS 1u
#define DS_HEARTBEAT_MAX_MS (24u * 3600u * 1000u)
#define DS_HOST_MAX 255
#define DS_PORT_MAX 65535u
#define DS_PATH_MAX 1024
/* --max-body is at most DS_MESSAGE_MAX (message.h) */
#define DS_MAX_BODY_DIGITS 9

struct ds_config {
    char host[DS_HOST_MAX + 1]; /* "" for every interface; IPv6 without brackets */
    unsigned port;              /* 0: any free port (the bound one is logged) */
    size_t ring_capacity;       /* FLOW_SERVER_RING_CAPACITY */
    uint64_t heartbeat_ms;      /* FLOW_SERVER_HEARTBEAT */
    /* HTTPS: a PEM certificate (chain) and its key; "" for plain HTTP. */
    char tls_cert[DS_PATH_MAX], tls_key[DS_PATH_MAX];
    /* With HTTPS: clients must show a certificate this CA signed; "" for none. */
    char tls_client_ca[DS_PATH_MAX];
    /* Extensions, off by default (the reference has none of them): */
    bool replay;     /* --replay: Last-Event-ID resumes from the ring */
    bool strict;     /* --strict: the whole schema is enforced */
    size_t max_body; /* --max-body: request body limit, default DS_BODY_DEFAULT */
};

/* What the command line asks for. */
enum ds_args_result {
    DS_ARGS_RUN,
    DS_ARGS_HELP,
    DS_ARGS_VERSION,
    DS_ARGS_ERROR, /* err says which argument and why */
};

/* ds_config_getenv_fn: how ds_config_load reads a variable (getenv, or a
 * table in tests); NULL for unset. */
typedef const char *ds_config_getenv_fn(const char *name);

/* ds_config_load: fills cfg from FLOW_SERVER_LISTEN_ADDR (HOST:PORT,
 * default 127.0.0.1:8081), FLOW_SERVER_RING_CAPACITY (1 to 1048576, default
 * 4096), FLOW_SERVER_HEARTBEAT (Go duration, 1ms to 24h, default 15s), and
 * FLOW_SERVER_TLS_CERT, FLOW_SERVER_TLS_KEY (both or neither: HTTPS) and
 * FLOW_SERVER_TLS_CLIENT_CA (needs them: mutual TLS). The files are read
 * when the server starts. An empty variable counts as unset. Returns 0, or -1 with one line in err
 * that starts with the variable's name. */
int ds_config_load(struct ds_config *cfg, ds_config_getenv_fn *get, char *err, size_t errlen);

/* ds_args_parse: the command line (argv[1..argc-1]) into cfg's extension
 * fields, which it first sets to their defaults: --replay, --strict,
 * --max-body=BYTES (a whole number from 1 to DS_MESSAGE_MAX), --help or -h,
 * --version. Pure. */
enum ds_args_result ds_args_parse(int argc, char *const *argv, struct ds_config *cfg, char *err, size_t errlen);

/* ds_parse_hostport: splits "HOST:PORT" ("[v6]:PORT" for IPv6, ":PORT" for
 * every interface; PORT decimal 0-65535) into host (brackets removed) and
 * *port. Returns 0, or -1 with the reason in err. */
int ds_parse_hostport(const char *text, char *host, size_t hostlen, unsigned *port, char *err, size_t errlen);

/* ds_duration_ms: a Go duration (core/duration.h: "15s", "500ms", "1m30s",
 * "1.5h"; "0" alone is zero) in whole milliseconds, truncated. Negative
 * durations and ones past Go's range are refused ("-0" is 0). Returns 0
 * with *ms set, or -1 with *ms untouched. Pure. */
int ds_duration_ms(const char *text, uint64_t *ms);

#endif
