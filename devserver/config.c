/* config.c: the flow server's settings from its environment (see
 * config.h); durations are parsed by core/duration, as in the proxy. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/duration.h"
#include "devserver/config.h"
#include "devserver/message.h"

/* Digit counts past which a number is refused before it is read, so that
 * it cannot wrap: a port has at most as many as 65535; a ring capacity one
 * more than DS_RING_MAX, for a leading zero. */
#define PORT_DIGITS_MAX 5
#define RING_DIGITS_MAX 8

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* One to max_digits decimal digits, nothing else, into *n. */
static bool parse_digits(const char *s, size_t max_digits, unsigned long *n)
{
    size_t len = strlen(s);
    if (len == 0 || len > max_digits)
        return false;
    unsigned long v = 0;
    for (; *s; s++) {
        if (!is_digit(*s))
            return false;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    *n = v;
    return true;
}

int ds_duration_ms(const char *text, uint64_t *ms)
{
    /* Truncated: a heartbeat of 1500us is 1ms; under 1ms is refused by its
     * bound, not rounded up to it. */
    int64_t ns;
    if (duration_parse(text, &ns) != PROXY_OK || ns < 0)
        return -1;
    *ms = (uint64_t)(ns / DURATION_NS_PER_MS);
    return 0;
}

enum ds_args_result ds_args_parse(int argc, char *const *argv, struct ds_config *cfg, char *err, size_t errlen)
{
    static const char max_body[] = "--max-body=";
    cfg->replay = cfg->strict = false;
    cfg->max_body = DS_BODY_DEFAULT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        unsigned long n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return DS_ARGS_HELP;
        if (strcmp(a, "--version") == 0)
            return DS_ARGS_VERSION;
        if (strcmp(a, "--replay") == 0) {
            cfg->replay = true;
        } else if (strcmp(a, "--strict") == 0) {
            cfg->strict = true;
        } else if (strncmp(a, max_body, sizeof max_body - 1) == 0) {
            if (!parse_digits(a + sizeof max_body - 1, DS_MAX_BODY_DIGITS, &n) || n < 1 || n > DS_MESSAGE_MAX) {
                snprintf(err, errlen, "--max-body: a whole number of bytes from 1 to %u expected (got \"%.64s\")",
                         DS_MESSAGE_MAX, a + sizeof max_body - 1);
                return DS_ARGS_ERROR;
            }
            cfg->max_body = n;
        } else {
            snprintf(err, errlen, "unknown argument \"%.64s\" (try --help)", a);
            return DS_ARGS_ERROR;
        }
    }
    return DS_ARGS_RUN;
}

int ds_parse_hostport(const char *text, char *host, size_t hostlen, unsigned *port, char *err, size_t errlen)
{
    const char *colon;
    size_t hlen;
    const char *h = text;
    if (!text || !*text) {
        snprintf(err, errlen, "must be HOST:PORT");
        return -1;
    }
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "must be HOST:PORT, with an IPv6 address in brackets");
            return -1;
        }
        h = text + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon) {
            snprintf(err, errlen, "must be HOST:PORT");
            return -1;
        }
        hlen = (size_t)(colon - text);
        if (memchr(text, ':', hlen)) {
            snprintf(err, errlen, "must be HOST:PORT, with an IPv6 address in brackets");
            return -1;
        }
    }
    if (hlen >= hostlen || hlen > DS_HOST_MAX) {
        snprintf(err, errlen, "host is too long");
        return -1;
    }
    unsigned long v;
    if (!parse_digits(colon + 1, PORT_DIGITS_MAX, &v) || v > DS_PORT_MAX) {
        snprintf(err, errlen, "port must be a number from 0 to %u", DS_PORT_MAX);
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (unsigned)v;
    return 0;
}

static const char *value(ds_config_getenv_fn *get, const char *name)
{
    const char *v = get(name);
    return v && *v ? v : NULL;
}

/* A file name into out ("" when unset). */
static int load_path(ds_config_getenv_fn *get, const char *name, char *out, size_t outlen, char *err, size_t errlen)
{
    const char *v = value(get, name);
    out[0] = '\0';
    if (v && strlen(v) >= outlen) {
        snprintf(err, errlen, "%s: longer than %zu characters", name, outlen - 1);
        return -1;
    }
    if (v)
        snprintf(out, outlen, "%s", v);
    return 0;
}

static int load_tls(struct ds_config *cfg, ds_config_getenv_fn *get, char *err, size_t errlen)
{
    if (load_path(get, "FLOW_SERVER_TLS_CERT", cfg->tls_cert, sizeof cfg->tls_cert, err, errlen) ||
        load_path(get, "FLOW_SERVER_TLS_KEY", cfg->tls_key, sizeof cfg->tls_key, err, errlen) ||
        load_path(get, "FLOW_SERVER_TLS_CLIENT_CA", cfg->tls_client_ca, sizeof cfg->tls_client_ca, err, errlen))
        return -1;
    if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
        snprintf(err, errlen, "FLOW_SERVER_TLS_CERT: needs FLOW_SERVER_TLS_KEY and the other way round");
        return -1;
    }
    if (cfg->tls_client_ca[0] && !cfg->tls_cert[0]) {
        snprintf(err, errlen, "FLOW_SERVER_TLS_CLIENT_CA: needs FLOW_SERVER_TLS_CERT and FLOW_SERVER_TLS_KEY");
        return -1;
    }
    return 0;
}

int ds_config_load(struct ds_config *cfg, ds_config_getenv_fn *get, char *err, size_t errlen)
{
    char why[128];
    const char *v;

    v = value(get, "FLOW_SERVER_LISTEN_ADDR");
    if (ds_parse_hostport(v ? v : DS_DEFAULT_LISTEN, cfg->host, sizeof cfg->host, &cfg->port, why, sizeof why)) {
        snprintf(err, errlen, "FLOW_SERVER_LISTEN_ADDR: %s (got \"%.64s\")", why, v ? v : DS_DEFAULT_LISTEN);
        return -1;
    }

    cfg->ring_capacity = DS_DEFAULT_RING;
    v = value(get, "FLOW_SERVER_RING_CAPACITY");
    if (v) {
        unsigned long n;
        if (!parse_digits(v, RING_DIGITS_MAX, &n) || n < 1 || n > DS_RING_MAX) {
            snprintf(err, errlen, "FLOW_SERVER_RING_CAPACITY: must be a whole number from 1 to %u (got \"%.64s\")",
                     DS_RING_MAX, v);
            return -1;
        }
        cfg->ring_capacity = n;
    }

    cfg->heartbeat_ms = DS_DEFAULT_HEARTBEAT_MS;
    v = value(get, "FLOW_SERVER_HEARTBEAT");
    if (v) {
        uint64_t ms = 0;
        if (ds_duration_ms(v, &ms) || ms < DS_HEARTBEAT_MIN_MS || ms > DS_HEARTBEAT_MAX_MS) {
            snprintf(err, errlen,
                     "FLOW_SERVER_HEARTBEAT: must be a duration from 1ms to 24h such as 15s or 500ms (got \"%.64s\")",
                     v);
            return -1;
        }
        cfg->heartbeat_ms = ms;
    }
    return load_tls(cfg, get, err, errlen);
}
