/* config.c: environment -> struct proxy_config, with one clear error per bad
 * variable. Durations are Go's (core/duration.h): the names and formats are
 * shared with the flow server's own Go deployment. */
#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/config.h"
#include "core/duration.h"

enum proxy_err config_duration_ms(const char *text, long *ms)
{
    int64_t ns;
    if (duration_parse(text, &ns) != PROXY_OK || ns < 0)
        return PROXY_ERR_INVALID;
    /* Rounded up, so that a positive duration is never 0 ("off"). */
    int64_t whole = ns / DURATION_NS_PER_MS + (ns % DURATION_NS_PER_MS ? 1 : 0);
#if INT64_MAX > LONG_MAX
    if (whole > LONG_MAX)
        return PROXY_ERR_INVALID;
#endif
    *ms = (long)whole;
    return PROXY_OK;
}

static char *trimmed_copy(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    char *copy = malloc(n + 1);
    if (copy) {
        memcpy(copy, s, n);
        copy[n] = '\0';
    }
    return copy;
}

static int fail(char *err, size_t errlen, const char *name, const char *why)
{
    snprintf(err, errlen, "%s: %s", name, why);
    return -1;
}

static int parse_size(const char *text, unsigned long long max, unsigned long long *out)
{
    if (!text || !isdigit((unsigned char)*text))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

static int load_url(struct proxy_config *cfg, const char *raw, char *err, size_t errlen)
{
    const char *name = "OPENOVA_FLOW_SERVER_URL";
    char *url = trimmed_copy(raw ? raw : CONFIG_DEFAULT_UPSTREAM);
    if (!url)
        return fail(err, errlen, name, "out of memory");
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        url[--n] = '\0';
    const char *host = NULL;
    if (strncmp(url, "http://", 7) == 0)
        host = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        host = url + 8;
    if (!host) {
        free(url);
        return fail(err, errlen, name, "must start with http:// or https://");
    }
    if (!*host || *host == '/') {
        free(url);
        return fail(err, errlen, name, "has no host");
    }
    for (const char *c = url; *c; c++) {
        if ((unsigned char)*c <= ' ' || *c == 0x7f || *c == '?' || *c == '#') {
            free(url);
            return fail(err, errlen, name, "must be a plain base URL without spaces, query or fragment");
        }
    }
    cfg->upstream_url = url;
    return 0;
}

static int load_duration(const char *name, const char *raw, long fallback, long *out, char *err, size_t errlen)
{
    if (!raw) {
        *out = fallback;
        return 0;
    }
    if (config_duration_ms(raw, out) != PROXY_OK)
        return fail(err, errlen, name, "is not a duration such as 10s, 1500ms or 1m30s");
    return 0;
}

static const struct {
    const char *name;
    unsigned bit;
} auth_method_names[] = {
    {"remote-user", AUTH_REMOTE_USER},
    {"bearer", AUTH_BEARER},
    {"jwt", AUTH_JWT},
};

const char *config_auth_methods_text(unsigned mask, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof auth_method_names / sizeof auth_method_names[0]; i++) {
        if (!(mask & auth_method_names[i].bit))
            continue;
        int n = snprintf(out + used, outlen - used, "%s%s", used ? "," : "", auth_method_names[i].name);
        if (n < 0 || (size_t)n >= outlen - used)
            break;
        used += (size_t)n;
    }
    if (!used)
        snprintf(out, outlen, "none");
    return out;
}

/* "remote-user,bearer", "jwt", or "none" alone: a set of methods. */
static int parse_auth_methods(const char *text, unsigned *out)
{
    unsigned mask = 0;
    bool none = false;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *end = p + strcspn(p, ",");
        size_t len = (size_t)(end - p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        bool known = false;
        if (len == 4 && strncmp(p, "none", 4) == 0) {
            none = known = true;
        }
        for (size_t i = 0; !known && i < sizeof auth_method_names / sizeof auth_method_names[0]; i++) {
            if (strlen(auth_method_names[i].name) == len && strncmp(p, auth_method_names[i].name, len) == 0) {
                mask |= auth_method_names[i].bit;
                known = true;
            }
        }
        if (!known)
            return -1;
        if (!*end)
            break;
        p = end + 1;
    }
    if (none && mask)
        return -1; /* "none" cannot be combined: it would silently win */
    *out = mask;
    return 0;
}

static int copy_setting(char **dst, const char *name, const char *raw, char *err, size_t errlen)
{
    if (!raw || !*raw)
        return 0;
    if (!(*dst = trimmed_copy(raw)))
        return fail(err, errlen, name, "out of memory");
    if (!**dst) {
        free(*dst);
        *dst = NULL;
    }
    return 0;
}

static int load_auth(struct proxy_config *cfg, config_env_fn env, char *err, size_t errlen)
{
    static const char methods_hint[] = "must be none, or a comma-separated list of remote-user, bearer and jwt";
    const char *v = env("OPENOVA_FLOW_AUTH");
    unsigned mask = AUTH_REMOTE_USER;
    if (v && parse_auth_methods(v, &mask))
        return fail(err, errlen, "OPENOVA_FLOW_AUTH", methods_hint);
    cfg->auth_read = cfg->auth_events = mask;
    v = env("OPENOVA_FLOW_AUTH_READ");
    if (v && parse_auth_methods(v, &cfg->auth_read))
        return fail(err, errlen, "OPENOVA_FLOW_AUTH_READ", methods_hint);
    v = env("OPENOVA_FLOW_AUTH_EVENTS");
    if (v && parse_auth_methods(v, &cfg->auth_events))
        return fail(err, errlen, "OPENOVA_FLOW_AUTH_EVENTS", methods_hint);

    if (copy_setting(&cfg->tokens_file, "OPENOVA_FLOW_TOKENS_FILE", env("OPENOVA_FLOW_TOKENS_FILE"), err, errlen) ||
        copy_setting(&cfg->jwks_file, "OPENOVA_FLOW_JWKS_FILE", env("OPENOVA_FLOW_JWKS_FILE"), err, errlen) ||
        copy_setting(&cfg->jwt_secret_file, "OPENOVA_FLOW_JWT_SECRET_FILE", env("OPENOVA_FLOW_JWT_SECRET_FILE"), err,
                     errlen) ||
        copy_setting(&cfg->jwt_cookie, "OPENOVA_FLOW_JWT_COOKIE", env("OPENOVA_FLOW_JWT_COOKIE"), err, errlen) ||
        copy_setting(&cfg->jwt_issuer, "OPENOVA_FLOW_JWT_ISSUER", env("OPENOVA_FLOW_JWT_ISSUER"), err, errlen) ||
        copy_setting(&cfg->jwt_audience, "OPENOVA_FLOW_JWT_AUDIENCE", env("OPENOVA_FLOW_JWT_AUDIENCE"), err, errlen) ||
        copy_setting(&cfg->jwt_user_claim, "OPENOVA_FLOW_JWT_USER_CLAIM", env("OPENOVA_FLOW_JWT_USER_CLAIM"), err,
                     errlen))
        return -1;
    if (!cfg->jwt_user_claim && !(cfg->jwt_user_claim = strdup("email")))
        return fail(err, errlen, "OPENOVA_FLOW_JWT_USER_CLAIM", "out of memory");
    if (cfg->jwt_cookie && strpbrk(cfg->jwt_cookie, "=;, \t\"()<>@:\\/[]?{}"))
        return fail(err, errlen, "OPENOVA_FLOW_JWT_COOKIE", "must be a cookie name (no separators or spaces)");
    if (load_duration("OPENOVA_FLOW_JWT_CLOCK_SKEW", env("OPENOVA_FLOW_JWT_CLOCK_SKEW"), 30000,
                      &cfg->jwt_clock_skew_ms, err, errlen))
        return -1;
    if (cfg->jwt_clock_skew_ms > 300000)
        return fail(err, errlen, "OPENOVA_FLOW_JWT_CLOCK_SKEW", "must be at most 5m");

    unsigned used = cfg->auth_read | cfg->auth_events;
    if ((used & AUTH_BEARER) && !cfg->tokens_file)
        return fail(err, errlen, "OPENOVA_FLOW_TOKENS_FILE", "must name the tokens file when bearer is accepted");
    if ((used & AUTH_JWT) && !cfg->jwks_file && !cfg->jwt_secret_file)
        return fail(err, errlen, "OPENOVA_FLOW_JWKS_FILE",
                    "(or OPENOVA_FLOW_JWT_SECRET_FILE) must be set when jwt is accepted");
    return 0;
}

int config_load(struct proxy_config *cfg, config_env_fn env, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    const char *v;
    unsigned long long n;

    if (load_url(cfg, env("OPENOVA_FLOW_SERVER_URL"), err, errlen))
        goto fail;

    if (load_duration("OPENOVA_FLOW_PROXY_TIMEOUT", env("OPENOVA_FLOW_PROXY_TIMEOUT"), 10000,
                      &cfg->proxy_timeout_ms, err, errlen))
        goto fail;
    if (cfg->proxy_timeout_ms == 0) {
        fail(err, errlen, "OPENOVA_FLOW_PROXY_TIMEOUT", "must be greater than 0");
        goto fail;
    }

    v = env("OPENOVA_FLOW_TLS_SKIP_VERIFY");
    if (v && strcmp(v, "true") == 0)
        cfg->tls_skip_verify = true;
    else if (v && *v && strcmp(v, "false") != 0) {
        fail(err, errlen, "OPENOVA_FLOW_TLS_SKIP_VERIFY", "must be true or false");
        goto fail;
    }

    v = env("OPENOVA_FLOW_CA_FILE");
    if (v && *v && !(cfg->ca_file = strdup(v))) {
        fail(err, errlen, "OPENOVA_FLOW_CA_FILE", "out of memory");
        goto fail;
    }

    v = env("OPENOVA_FLOW_BASE_PATH");
    cfg->base_path = trimmed_copy(v ? v : CONFIG_DEFAULT_BASE_PATH);
    if (!cfg->base_path) {
        fail(err, errlen, "OPENOVA_FLOW_BASE_PATH", "out of memory");
        goto fail;
    }
    {
        size_t len = strlen(cfg->base_path);
        while (len > 1 && cfg->base_path[len - 1] == '/')
            cfg->base_path[--len] = '\0';
        if (cfg->base_path[0] != '/' || strpbrk(cfg->base_path, "?#% \t")) {
            fail(err, errlen, "OPENOVA_FLOW_BASE_PATH", "must be an absolute path such as /api/v1/flows");
            goto fail;
        }
        /* "/" means routes hang directly off the root: keep it as "". */
        if (len == 1)
            cfg->base_path[0] = '\0';
    }

    if (load_auth(cfg, env, err, errlen))
        goto fail;

    cfg->max_body = 1048576;
    v = env("OPENOVA_FLOW_MAX_BODY");
    if (v) {
        if (parse_size(v, 1ULL << 32, &n) || n == 0) {
            fail(err, errlen, "OPENOVA_FLOW_MAX_BODY", "must be a byte count from 1 to 4294967296");
            goto fail;
        }
        cfg->max_body = (size_t)n;
    }

    /* Separate from the request's whole deadline: a stream lives for hours,
     * but an upstream that does not even accept the connection is down. */
    if (load_duration("OPENOVA_FLOW_CONNECT_TIMEOUT", env("OPENOVA_FLOW_CONNECT_TIMEOUT"),
                      cfg->proxy_timeout_ms < 5000 ? cfg->proxy_timeout_ms : 5000, &cfg->connect_timeout_ms, err,
                      errlen))
        goto fail;
    if (cfg->connect_timeout_ms == 0) {
        fail(err, errlen, "OPENOVA_FLOW_CONNECT_TIMEOUT", "must be greater than 0");
        goto fail;
    }

    cfg->max_snapshot = CONFIG_DEFAULT_MAX_SNAPSHOT;
    v = env("OPENOVA_FLOW_MAX_SNAPSHOT");
    if (v) {
        if (parse_size(v, 1ULL << 32, &n) || n == 0) {
            fail(err, errlen, "OPENOVA_FLOW_MAX_SNAPSHOT", "must be a byte count from 1 to 4294967296");
            goto fail;
        }
        cfg->max_snapshot = (size_t)n;
    }

    if (load_duration("OPENOVA_FLOW_KEEPALIVE", env("OPENOVA_FLOW_KEEPALIVE"), 15000, &cfg->keepalive_ms, err,
                      errlen))
        goto fail;

    cfg->max_streams = 1024;
    v = env("OPENOVA_FLOW_MAX_STREAMS");
    if (v) {
        if (parse_size(v, 1000000, &n) || n == 0) {
            fail(err, errlen, "OPENOVA_FLOW_MAX_STREAMS", "must be a whole number from 1 to 1000000");
            goto fail;
        }
        cfg->max_streams = (unsigned)n;
    }

    cfg->workers = 16;
    v = env("OPENOVA_FLOW_WORKERS");
    if (v) {
        if (parse_size(v, 1024, &n) || n == 0) {
            fail(err, errlen, "OPENOVA_FLOW_WORKERS", "must be a whole number from 1 to 1024");
            goto fail;
        }
        cfg->workers = (unsigned)n;
    }
    return 0;

fail:
    config_free(cfg);
    return -1;
}

void config_free(struct proxy_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->upstream_url);
    free(cfg->ca_file);
    free(cfg->base_path);
    free(cfg->tokens_file);
    free(cfg->jwks_file);
    free(cfg->jwt_secret_file);
    free(cfg->jwt_cookie);
    free(cfg->jwt_issuer);
    free(cfg->jwt_audience);
    free(cfg->jwt_user_claim);
    memset(cfg, 0, sizeof *cfg);
}

char *config_json(const struct proxy_config *cfg)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    json_object_object_add(o, "upstream_url", json_object_new_string(cfg->upstream_url));
    json_object_object_add(o, "proxy_timeout_ms", json_object_new_int64(cfg->proxy_timeout_ms));
    json_object_object_add(o, "tls_skip_verify", json_object_new_boolean(cfg->tls_skip_verify));
    json_object_object_add(o, "ca_file", cfg->ca_file ? json_object_new_string(cfg->ca_file) : NULL);
    json_object_object_add(o, "base_path", json_object_new_string(cfg->base_path[0] ? cfg->base_path : "/"));
    char methods[64];
    json_object_object_add(o, "auth_read",
                           json_object_new_string(config_auth_methods_text(cfg->auth_read, methods, sizeof methods)));
    json_object_object_add(o, "auth_events",
                           json_object_new_string(config_auth_methods_text(cfg->auth_events, methods, sizeof methods)));
    /* File names and claims, never the keys or tokens themselves. */
    json_object_object_add(o, "tokens_file", cfg->tokens_file ? json_object_new_string(cfg->tokens_file) : NULL);
    json_object_object_add(o, "jwks_file", cfg->jwks_file ? json_object_new_string(cfg->jwks_file) : NULL);
    json_object_object_add(o, "jwt_secret_file",
                           cfg->jwt_secret_file ? json_object_new_string(cfg->jwt_secret_file) : NULL);
    json_object_object_add(o, "jwt_cookie", cfg->jwt_cookie ? json_object_new_string(cfg->jwt_cookie) : NULL);
    json_object_object_add(o, "jwt_issuer", cfg->jwt_issuer ? json_object_new_string(cfg->jwt_issuer) : NULL);
    json_object_object_add(o, "jwt_audience", cfg->jwt_audience ? json_object_new_string(cfg->jwt_audience) : NULL);
    json_object_object_add(o, "jwt_user_claim", json_object_new_string(cfg->jwt_user_claim));
    json_object_object_add(o, "jwt_clock_skew_ms", json_object_new_int64(cfg->jwt_clock_skew_ms));
    json_object_object_add(o, "connect_timeout_ms", json_object_new_int64(cfg->connect_timeout_ms));
    json_object_object_add(o, "max_snapshot", json_object_new_int64((int64_t)cfg->max_snapshot));
    json_object_object_add(o, "max_body", json_object_new_int64((int64_t)cfg->max_body));
    json_object_object_add(o, "keepalive_ms", json_object_new_int64(cfg->keepalive_ms));
    json_object_object_add(o, "max_streams", json_object_new_int64(cfg->max_streams));
    json_object_object_add(o, "workers", json_object_new_int64(cfg->workers));
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    char *copy = text ? strdup(text) : NULL;
    json_object_put(o);
    return copy;
}
