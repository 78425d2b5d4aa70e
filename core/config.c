/* config.c: environment -> struct proxy_config, with one sentence per bad
 * variable. Durations are Go's (core/duration.h): the names and formats are
 * shared with the flow server's own Go deployment. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/config.h"
#include "core/duration.h"
#include "core/http.h"
#include "core/url_template.h"

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

/* Writes "NAME: why" into err and returns rc. */
static enum proxy_err refuse(enum proxy_err rc, char *err, size_t errlen, const char *name, const char *why)
{
    proxy_say(err, errlen, "%s: %s", name, why);
    return rc;
}

static enum proxy_err out_of_memory(char *err, size_t errlen, const char *name)
{
    return refuse(PROXY_ERR_NOMEM, err, errlen, name, "out of memory");
}

/* A malloc'd copy of s without its leading and trailing white space; NULL
 * when out of memory. */
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

/* A string setting, trimmed, into *dst; unset, empty or all white space
 * leaves *dst as it is. */
static enum proxy_err copy_setting(char **dst, const char *name, const char *raw, char *err, size_t errlen)
{
    if (!raw || !*raw)
        return PROXY_OK;
    if (!(*dst = trimmed_copy(raw)))
        return out_of_memory(err, errlen, name);
    if (!**dst) {
        free(*dst);
        *dst = NULL;
    }
    return PROXY_OK;
}

/* ---- one variable ---- */

/* A variable of the table config_load walks: the loader that reads it (and,
 * for a few, the variables that belong with it), and for the generic
 * loaders the field it fills, its default and its largest value. */
struct setting {
    const char *name;
    enum proxy_err (*load)(const struct setting *s, struct proxy_config *cfg, config_env_fn env, char *err,
                           size_t errlen);
    size_t field; /* offsetof(struct proxy_config, ...), of the type the loader writes */
    unsigned long long fallback, max;
    const char *text; /* a text default */
};

static void *field_of(const struct setting *s, struct proxy_config *cfg)
{
    return (char *)cfg + s->field;
}

/* The part of url after its scheme, http:// or https://; NULL for any other. */
static const char *after_scheme(const char *url)
{
    static const char *const schemes[] = {"http://", "https://"};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t n = strlen(schemes[i]);
        if (strncmp(url, schemes[i], n) == 0)
            return url + n;
    }
    return NULL;
}

static const char *url_problem(const char *url)
{
    const char *host = after_scheme(url);
    if (!host)
        return "must start with http:// or https://";
    if (!*host || *host == '/')
        return "has no host";
    for (const char *c = url; *c; c++)
        if (!http_url_char_plain(*c))
            return "must be a plain base URL without spaces, query or fragment";
    return NULL;
}

/* url with the password of its user info (RFC 3986 3.2.1) replaced by
 * "***": a URL goes into logs and onto the status page, a secret must not. */
static char *shown_url(const char *url)
{
    const char *host = after_scheme(url);
    size_t authority = strcspn(host, "/");
    const char *at = memchr(host, '@', authority);
    const char *colon = at ? memchr(host, ':', (size_t)(at - host)) : NULL;
    if (!colon)
        return strdup(url);
    char *shown = NULL;
    if (asprintf(&shown, "%.*s:***%s", (int)(colon - url), url, at) < 0)
        return NULL;
    return shown;
}

static enum proxy_err load_url(const struct setting *s, struct proxy_config *cfg, config_env_fn env, char *err,
                               size_t errlen)
{
    const char *raw = env(s->name);
    char *url = trimmed_copy(raw ? raw : CONFIG_DEFAULT_UPSTREAM);
    if (!url)
        return out_of_memory(err, errlen, s->name);
    cfg->upstream_mode = raw ? UPSTREAM_FIXED : UPSTREAM_IN_CLUSTER;
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        url[--n] = '\0';
    const char *why = url_problem(url);
    if (why) {
        free(url);
        return refuse(PROXY_ERR_INVALID, err, errlen, s->name, why);
    }
    cfg->upstream_url = url;
    if (!(cfg->upstream_shown = shown_url(url)))
        return out_of_memory(err, errlen, s->name);
    return PROXY_OK;
}

/* OPENOVA_FLOW_DEPLOYMENTS_DIR (s->name) and OPENOVA_FLOW_UPSTREAM_TEMPLATE:
 * the console's mode, unless OPENOVA_FLOW_SERVER_URL (loaded before) names
 * one upstream for every deployment. */
static enum proxy_err load_console(const struct setting *s, struct proxy_config *cfg, config_env_fn env,
                                   char *err, size_t errlen)
{
    static const char template_name[] = "OPENOVA_FLOW_UPSTREAM_TEMPLATE";
    char *dir = NULL, *tmpl = NULL;
    if (copy_setting(&dir, s->name, env(s->name), err, errlen) ||
        copy_setting(&tmpl, template_name, env(template_name), err, errlen)) {
        free(dir);
        return PROXY_ERR_NOMEM;
    }
    if (!tmpl && !(tmpl = strdup(URL_TEMPLATE_DEFAULT))) {
        free(dir);
        return out_of_memory(err, errlen, template_name);
    }
    char why[160];
    enum proxy_err rc = PROXY_OK;
    if (dir && dir[0] != '/')
        rc = refuse(PROXY_ERR_INVALID, err, errlen, s->name, "must be an absolute path");
    else if (url_template_check(tmpl, why, sizeof why) != PROXY_OK)
        rc = refuse(PROXY_ERR_INVALID, err, errlen, template_name, why);
    if (rc || !dir || cfg->upstream_mode == UPSTREAM_FIXED) {
        free(dir);
        free(tmpl);
        return rc;
    }
    cfg->upstream_mode = UPSTREAM_PER_DEPLOYMENT;
    cfg->deployments_dir = dir;
    cfg->upstream_template = tmpl;
    return PROXY_OK;
}

/* OPENOVA_FLOW_CLIENT_CERT (s->name) and OPENOVA_FLOW_CLIENT_KEY: file
 * names; a key needs its certificate, a certificate may hold its key. */
static enum proxy_err load_client_cert(const struct setting *s, struct proxy_config *cfg, config_env_fn env,
                                       char *err, size_t errlen)
{
    static const char key_name[] = "OPENOVA_FLOW_CLIENT_KEY";
    if (copy_setting(&cfg->client_cert, s->name, env(s->name), err, errlen) ||
        copy_setting(&cfg->client_key, key_name, env(key_name), err, errlen))
        return PROXY_ERR_NOMEM;
    if (cfg->client_key && !cfg->client_cert)
        return refuse(PROXY_ERR_INVALID, err, errlen, key_name, "needs OPENOVA_FLOW_CLIENT_CERT");
    return PROXY_OK;
}

/* One "host:port:address" of curl's --resolve: a host name, a port from 1
 * to 65535, an address (IPv6 in brackets). */
static bool resolve_entry_valid(const char *entry, size_t len)
{
    const char *colon = memchr(entry, ':', len);
    if (!colon || !http_hostname_valid(entry, (size_t)(colon - entry)))
        return false;
    const char *port = colon + 1, *end = entry + len;
    const char *second = memchr(port, ':', (size_t)(end - port));
    if (!second || second == port || second - port > 5)
        return false;
    unsigned long n = 0;
    for (const char *c = port; c < second; c++) {
        if (!isdigit((unsigned char)*c))
            return false;
        n = n * 10 + (unsigned long)(*c - '0');
    }
    if (n == 0 || n > 65535 || second + 1 >= end)
        return false;
    for (const char *c = second + 1; c < end; c++)
        if (!isxdigit((unsigned char)*c) && !strchr(".:[]", *c))
            return false;
    return true;
}

const char *config_list_item(const char **p, size_t *len)
{
    const char *at = *p;
    while (at && (*at == ',' || isspace((unsigned char)*at)))
        at++;
    if (!at || !*at)
        return NULL;
    size_t n = strcspn(at, ",");
    *p = at + n;
    while (n > 0 && isspace((unsigned char)at[n - 1]))
        n--;
    *len = n;
    return at;
}

static enum proxy_err load_resolve(const struct setting *s, struct proxy_config *cfg, config_env_fn env,
                                   char *err, size_t errlen)
{
    if (copy_setting(&cfg->resolve, s->name, env(s->name), err, errlen))
        return PROXY_ERR_NOMEM;
    const char *p = cfg->resolve, *entry;
    size_t len;
    while ((entry = config_list_item(&p, &len)))
        if (!resolve_entry_valid(entry, len))
            return refuse(PROXY_ERR_INVALID, err, errlen, s->name,
                          "must be host:port:address entries, comma-separated (curl's --resolve)");
    return PROXY_OK;
}

static enum proxy_err load_base_path(const struct setting *s, struct proxy_config *cfg, config_env_fn env,
                                     char *err, size_t errlen)
{
    const char *raw = env(s->name);
    char *path = cfg->base_path = trimmed_copy(raw ? raw : CONFIG_DEFAULT_BASE_PATH);
    if (!path)
        return out_of_memory(err, errlen, s->name);
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        path[--len] = '\0';
    if (path[0] != '/' || strpbrk(path, "?#% \t"))
        return refuse(PROXY_ERR_INVALID, err, errlen, s->name, "must be an absolute path such as /api/v1/flows");
    /* "/" means routes hang directly off the root: keep it as "". */
    if (len == 1)
        path[0] = '\0';
    return PROXY_OK;
}

/* "true" or "false" into a bool field; unset or empty is false. */
static enum proxy_err load_flag(const struct setting *s, struct proxy_config *cfg, config_env_fn env, char *err,
                                size_t errlen)
{
    const char *v = env(s->name);
    bool *out = field_of(s, cfg);
    if (v && strcmp(v, "true") == 0)
        *out = true;
    else if (v && *v && strcmp(v, "false") != 0)
        return refuse(PROXY_ERR_INVALID, err, errlen, s->name, "must be true or false");
    return PROXY_OK;
}

/* "on" or "off" ("true" or "false" too) into a bool field; unset or empty
 * is off. */
static enum proxy_err load_on_off(const struct setting *s, struct proxy_config *cfg, config_env_fn env, char *err,
                                  size_t errlen)
{
    const char *v = env(s->name);
    bool *out = field_of(s, cfg);
    *out = v && (strcmp(v, "on") == 0 || strcmp(v, "true") == 0);
    if (v && *v && !*out && strcmp(v, "off") != 0 && strcmp(v, "false") != 0)
        return refuse(PROXY_ERR_INVALID, err, errlen, s->name, "must be on or off");
    return PROXY_OK;
}

/* The identity the shared subscriptions show the flow server: one header
 * value, printable ASCII without leading or trailing space. */
static enum proxy_err load_fanout_user(const struct setting *s, struct proxy_config *cfg, config_env_fn env,
                                       char *err, size_t errlen)
{
    const char *v = env(s->name);
    if (!v || !*v)
        v = s->text;
    size_t len = strlen(v);
    bool ok = len <= 256 && v[0] != ' ' && v[len - 1] != ' ';
    for (const char *p = v; ok && *p; p++)
        ok = *p >= 0x20 && *p < 0x7f;
    if (!ok)
        return refuse(PROXY_ERR_INVALID, err, errlen, s->name,
                      "must be at most 256 printable ASCII characters, without spaces at either end");
    if (!(cfg->fanout_user = strdup(v)))
        return out_of_memory(err, errlen, s->name);
    return PROXY_OK;
}

/* A file name, as given, into a char * field; unset or empty leaves it NULL. */
static enum proxy_err load_file_name(const struct setting *s, struct proxy_config *cfg, config_env_fn env,
                                     char *err, size_t errlen)
{
    const char *v = env(s->name);
    char **out = field_of(s, cfg);
    if (v && *v && !(*out = strdup(v)))
        return out_of_memory(err, errlen, s->name);
    return PROXY_OK;
}

/* A duration variable in milliseconds (config_duration_ms); fallback when
 * unset. */
static enum proxy_err read_ms(const char *name, config_env_fn env, long fallback, long *out, char *err,
                              size_t errlen)
{
    const char *raw = env(name);
    if (!raw) {
        *out = fallback;
        return PROXY_OK;
    }
    if (config_duration_ms(raw, out) != PROXY_OK)
        return refuse(PROXY_ERR_INVALID, err, errlen, name, "is not a duration such as 10s, 1500ms or 1m30s");
    return PROXY_OK;
}

/* A duration into a long field of milliseconds; 0 allowed. */
static enum proxy_err load_ms(const struct setting *s, struct proxy_config *cfg, config_env_fn env, char *err,
                              size_t errlen)
{
    return read_ms(s->name, env, (long)s->fallback, field_of(s, cfg), err, errlen);
}

/* A time limit: a duration into a long field of milliseconds, not 0. */
static enum proxy_err load_timeout(const struct setting *s, struct proxy_config *cfg, config_env_fn env,
                                   char *err, size_t errlen)
{
    const long *out = field_of(s, cfg);
    enum proxy_err rc = load_ms(s, cfg, env, err, errlen);
    if (rc == PROXY_OK && *out == 0)
        rc = refuse(PROXY_ERR_INVALID, err, errlen, s->name, "must be greater than 0");
    return rc;
}

/* The upstream's connect timeout, separate from the request's whole
 * deadline: a stream lives for hours, but an upstream that does not even
 * accept the connection is down. By default s->fallback, or the proxy
 * timeout (loaded before) when that is shorter. */
static enum proxy_err load_connect_timeout(const struct setting *s, struct proxy_config *cfg, config_env_fn env,
                                           char *err, size_t errlen)
{
    struct setting shorter = *s;
    if ((unsigned long long)cfg->proxy_timeout_ms < shorter.fallback)
        shorter.fallback = (unsigned long long)cfg->proxy_timeout_ms;
    return load_timeout(&shorter, cfg, env, err, errlen);
}

/* Decimal digits only (strtoull alone would take spaces and a sign), from
 * 1 to max, into *out. */
static enum proxy_err parse_count(const char *text, unsigned long long max, unsigned long long *out)
{
    if (!isdigit((unsigned char)*text))
        return PROXY_ERR_INVALID;
    errno = 0;
    char *end;
    unsigned long long n = strtoull(text, &end, 10);
    if (errno || *end || n == 0 || n > max)
        return PROXY_ERR_INVALID;
    *out = n;
    return PROXY_OK;
}

/* A count from 1 to s->max into *out (s->fallback when unset); what it
 * counts names it in the sentence. */
static enum proxy_err read_count(const struct setting *s, config_env_fn env, const char *what,
                                 unsigned long long *out, char *err, size_t errlen)
{
    const char *raw = env(s->name);
    *out = s->fallback;
    if (raw && parse_count(raw, s->max, out) != PROXY_OK) {
        char why[96];
        snprintf(why, sizeof why, "must be %s from 1 to %llu", what, s->max);
        return refuse(PROXY_ERR_INVALID, err, errlen, s->name, why);
    }
    return PROXY_OK;
}

/* A byte count into a size_t field. */
static enum proxy_err load_size(const struct setting *s, struct proxy_config *cfg, config_env_fn env, char *err,
                                size_t errlen)
{
    unsigned long long n;
    enum proxy_err rc = read_count(s, env, "a byte count", &n, err, errlen);
    *(size_t *)field_of(s, cfg) = (size_t)n;
    return rc;
}

/* A whole number into an unsigned field. */
static enum proxy_err load_unsigned(const struct setting *s, struct proxy_config *cfg, config_env_fn env,
                                    char *err, size_t errlen)
{
    unsigned long long n;
    enum proxy_err rc = read_count(s, env, "a whole number", &n, err, errlen);
    *(unsigned *)field_of(s, cfg) = (unsigned)n;
    return rc;
}

/* ---- operations ---- */

/* Whether path is base or under it: the flow routes' ground. */
static bool under_base(const char *path, const char *base)
{
    size_t n = strlen(base);
    return n > 0 && strncmp(path, base, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* An endpoint's exact path into a char * field: unset gives s->text's
 * default, empty turns the endpoint off (NULL). It must be an absolute path
 * outside the flow routes and differ from the endpoints loaded before. */
static enum proxy_err load_ops_path(const struct setting *s, struct proxy_config *cfg, config_env_fn env,
                                    char *err, size_t errlen)
{
    const char *raw = env(s->name);
    char **out = field_of(s, cfg);
    if (raw && !*raw)
        return PROXY_OK;
    if (!(*out = trimmed_copy(raw ? raw : s->text)))
        return out_of_memory(err, errlen, s->name);
    const char *path = *out;
    if (path[0] != '/' || strpbrk(path, "?#% \t"))
        return refuse(PROXY_ERR_INVALID, err, errlen, s->name, "must be an absolute path such as /openova-flow/healthz");
    if (under_base(path, cfg->base_path))
        return refuse(PROXY_ERR_INVALID, err, errlen, s->name, "must be outside OPENOVA_FLOW_BASE_PATH");
    char *const others[] = {cfg->health_path, cfg->ready_path, cfg->metrics_path, cfg->status_path};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        if (others[i] && others[i] != path && strcmp(others[i], path) == 0)
            return refuse(PROXY_ERR_INVALID, err, errlen, s->name, "is the path of another endpoint");
    return PROXY_OK;
}

static enum proxy_err load_allow(const struct setting *s, struct proxy_config *cfg, config_env_fn env, char *err,
                                 size_t errlen)
{
    const char *raw = env(s->name);
    char why[160];
    enum proxy_err rc = cidr_list_parse(raw ? raw : s->text, &cfg->metrics_allow, why, sizeof why);
    return rc ? refuse(rc, err, errlen, s->name, why) : PROXY_OK;
}

static enum proxy_err load_log(const struct setting *s, struct proxy_config *cfg, config_env_fn env, char *err,
                               size_t errlen)
{
    cfg->log_level = PROXY_LOG_INFO;
    cfg->log_format = PROXY_LOG_LOGFMT;
    const char *level = env(s->name), *format = env("OPENOVA_FLOW_LOG_FORMAT");
    if (level && *level && proxy_log_level_parse(level, &cfg->log_level) != 0)
        return refuse(PROXY_ERR_INVALID, err, errlen, s->name, "must be debug, info, warn or error");
    if (format && *format && proxy_log_format_parse(format, &cfg->log_format) != 0)
        return refuse(PROXY_ERR_INVALID, err, errlen, "OPENOVA_FLOW_LOG_FORMAT", "must be logfmt or json");
    return PROXY_OK;
}

/* The value part of an environment file's line, quotes removed, into out. */
static enum proxy_err unquote_value(const char *v, char *out, size_t outlen)
{
    size_t n = strlen(v);
    while (n > 0 && isspace((unsigned char)v[n - 1]))
        n--;
    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
        v++;
        n -= 2;
    }
    if (n >= outlen)
        return PROXY_ERR_TOO_LARGE;
    memcpy(out, v, n);
    out[n] = '\0';
    return PROXY_OK;
}

enum proxy_err config_env_file_value(const char *path, const char *name, char *out, size_t outlen, char *err,
                                     size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        proxy_say(err, errlen, "%s: %s", path, strerror(errno));
        return PROXY_ERR_INVALID;
    }
    enum proxy_err rc = PROXY_ERR_INVALID;
    char line[1024];
    size_t name_len = strlen(name);
    while (fgets(line, sizeof line, f)) {
        const char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (strncmp(p, name, name_len) == 0 && p[name_len] == '=')
            rc = unquote_value(p + name_len + 1, out, outlen); /* the last one wins, as in systemd */
    }
    fclose(f);
    if (rc == PROXY_ERR_INVALID)
        proxy_say(err, errlen, "%s does not set %s", path, name);
    return rc;
}

/* ---- authentication ---- */

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

/* "remote-user,bearer", "jwt", or "none" alone: a set of methods, into
 * *out. Returns PROXY_OK, or PROXY_ERR_INVALID with *out untouched. */
static enum proxy_err parse_auth_methods(const char *text, unsigned *out)
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
        if (len == strlen("none") && strncmp(p, "none", len) == 0)
            none = known = true;
        for (size_t i = 0; !known && i < sizeof auth_method_names / sizeof auth_method_names[0]; i++) {
            if (strlen(auth_method_names[i].name) == len && strncmp(p, auth_method_names[i].name, len) == 0) {
                mask |= auth_method_names[i].bit;
                known = true;
            }
        }
        if (!known)
            return PROXY_ERR_INVALID;
        if (!*end)
            break;
        p = end + 1;
    }
    if (none && mask)
        return PROXY_ERR_INVALID; /* "none" cannot be combined: it would silently win */
    *out = mask;
    return PROXY_OK;
}

/* A set of methods into *mask; unset keeps *mask. */
static enum proxy_err load_methods(const char *name, config_env_fn env, unsigned *mask, char *err, size_t errlen)
{
    const char *raw = env(name);
    if (raw && parse_auth_methods(raw, mask) != PROXY_OK)
        return refuse(PROXY_ERR_INVALID, err, errlen, name,
                      "must be none, or a comma-separated list of remote-user, bearer and jwt");
    return PROXY_OK;
}

/* The JWT clock skew: how far token times may be off the proxy's clock. */
#define JWT_CLOCK_SKEW_DEFAULT_MS 30000L
#define JWT_CLOCK_SKEW_MAX_MS 300000L /* 5m, as the sentence says */

/* A cookie name is a token (RFC 6265 section 4.1.1): none of RFC 2616's
 * separators (section 2.2), space and tab among them. */
static const char cookie_separators[] = "=;, \t\"()<>@:\\/[]?{}";

static enum proxy_err load_jwt(struct proxy_config *cfg, config_env_fn env, char *err, size_t errlen)
{
    if (!cfg->jwt_user_claim && !(cfg->jwt_user_claim = strdup("email")))
        return out_of_memory(err, errlen, "OPENOVA_FLOW_JWT_USER_CLAIM");
    if (cfg->jwt_cookie && strpbrk(cfg->jwt_cookie, cookie_separators))
        return refuse(PROXY_ERR_INVALID, err, errlen, "OPENOVA_FLOW_JWT_COOKIE",
                      "must be a cookie name (no separators or spaces)");
    enum proxy_err rc = read_ms("OPENOVA_FLOW_JWT_CLOCK_SKEW", env, JWT_CLOCK_SKEW_DEFAULT_MS,
                                &cfg->jwt_clock_skew_ms, err, errlen);
    if (rc == PROXY_OK && cfg->jwt_clock_skew_ms > JWT_CLOCK_SKEW_MAX_MS)
        rc = refuse(PROXY_ERR_INVALID, err, errlen, "OPENOVA_FLOW_JWT_CLOCK_SKEW", "must be at most 5m");
    return rc;
}

/* OPENOVA_FLOW_AUTH (s->name) and every variable of authentication after
 * it: the methods of each route, the files and claims they need, and
 * whether the methods accepted have what they need. */
static enum proxy_err load_auth(const struct setting *s, struct proxy_config *cfg, config_env_fn env, char *err,
                                size_t errlen)
{
    /* OPENOVA_FLOW_AUTH for every route, unless a route's own variable says otherwise. */
    unsigned mask = AUTH_REMOTE_USER;
    enum proxy_err rc = load_methods(s->name, env, &mask, err, errlen);
    if (rc)
        return rc;
    cfg->auth_read = cfg->auth_events = mask;
    rc = load_methods("OPENOVA_FLOW_AUTH_READ", env, &cfg->auth_read, err, errlen);
    if (rc)
        return rc;
    rc = load_methods("OPENOVA_FLOW_AUTH_EVENTS", env, &cfg->auth_events, err, errlen);
    if (rc)
        return rc;
    /* The purge is a route only when its methods are named: never by default. */
    const char *purge = env("OPENOVA_FLOW_AUTH_DELETE");
    cfg->purge_enabled = purge && *purge;
    rc = cfg->purge_enabled ? load_methods("OPENOVA_FLOW_AUTH_DELETE", env, &cfg->auth_delete, err, errlen)
                            : PROXY_OK;
    if (rc)
        return rc;

    const struct {
        const char *name;
        char **dst;
    } strings[] = {
        {"OPENOVA_FLOW_TOKENS_FILE", &cfg->tokens_file},
        {"OPENOVA_FLOW_JWKS_FILE", &cfg->jwks_file},
        {"OPENOVA_FLOW_JWT_SECRET_FILE", &cfg->jwt_secret_file},
        {"OPENOVA_FLOW_JWT_COOKIE", &cfg->jwt_cookie},
        {"OPENOVA_FLOW_JWT_ISSUER", &cfg->jwt_issuer},
        {"OPENOVA_FLOW_JWT_AUDIENCE", &cfg->jwt_audience},
        {"OPENOVA_FLOW_JWT_USER_CLAIM", &cfg->jwt_user_claim},
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        rc = copy_setting(strings[i].dst, strings[i].name, env(strings[i].name), err, errlen);
        if (rc)
            return rc;
    }
    rc = load_jwt(cfg, env, err, errlen);
    if (rc)
        return rc;

    unsigned used = cfg->auth_read | cfg->auth_events | (cfg->purge_enabled ? cfg->auth_delete : 0);
    if ((used & AUTH_BEARER) && !cfg->tokens_file)
        return refuse(PROXY_ERR_INVALID, err, errlen, "OPENOVA_FLOW_TOKENS_FILE",
                      "must name the tokens file when bearer is accepted");
    if ((used & AUTH_JWT) && !cfg->jwks_file && !cfg->jwt_secret_file)
        return refuse(PROXY_ERR_INVALID, err, errlen, "OPENOVA_FLOW_JWKS_FILE",
                      "(or OPENOVA_FLOW_JWT_SECRET_FILE) must be set when jwt is accepted");
    return PROXY_OK;
}

/* ---- the whole configuration ---- */

#define FIELD(name) offsetof(struct proxy_config, name)

/* Every variable in the order config_load reads them, so the first bad one
 * is the one named; the defaults and bounds of each stand in its row. */
static const struct setting settings[] = {
    {.name = "OPENOVA_FLOW_SERVER_URL", .load = load_url},
    {.name = "OPENOVA_FLOW_DEPLOYMENTS_DIR", .load = load_console},
    {.name = "OPENOVA_FLOW_CLIENT_CERT", .load = load_client_cert},
    {.name = "OPENOVA_FLOW_UPSTREAM_TOKEN_FILE", .load = load_file_name, .field = FIELD(upstream_token_file)},
    {.name = "OPENOVA_FLOW_RESOLVE", .load = load_resolve},
    {.name = "OPENOVA_FLOW_PROXY_TIMEOUT", .load = load_timeout, .field = FIELD(proxy_timeout_ms), .fallback = 10000},
    {.name = "OPENOVA_FLOW_TLS_SKIP_VERIFY", .load = load_flag, .field = FIELD(tls_skip_verify)},
    {.name = "OPENOVA_FLOW_CA_FILE", .load = load_file_name, .field = FIELD(ca_file)},
    {.name = "OPENOVA_FLOW_BASE_PATH", .load = load_base_path},
    {.name = "OPENOVA_FLOW_AUTH", .load = load_auth},
    {.name = "OPENOVA_FLOW_MAX_BODY", .load = load_size, .field = FIELD(max_body),
     .fallback = 1024 * 1024, .max = 1ULL << 32},
    {.name = "OPENOVA_FLOW_CONNECT_TIMEOUT", .load = load_connect_timeout, .field = FIELD(connect_timeout_ms),
     .fallback = 5000},
    {.name = "OPENOVA_FLOW_MAX_SNAPSHOT", .load = load_size, .field = FIELD(max_snapshot),
     .fallback = 16 * 1024 * 1024, .max = 1ULL << 32},
    {.name = "OPENOVA_FLOW_KEEPALIVE", .load = load_ms, .field = FIELD(keepalive_ms), .fallback = 15000},
    /* Three missed heartbeats of the flow server (one every 15 s). */
    {.name = "OPENOVA_FLOW_UPSTREAM_IDLE", .load = load_ms, .field = FIELD(upstream_idle_ms), .fallback = 45000},
    {.name = "OPENOVA_FLOW_KEEPCONN_IDLE", .load = load_timeout, .field = FIELD(keepconn_idle_ms), .fallback = 60000},
    {.name = "OPENOVA_FLOW_CLIENT_TIMEOUT", .load = load_timeout, .field = FIELD(client_timeout_ms),
     .fallback = 30000},
    {.name = "OPENOVA_FLOW_MAX_STREAMS", .load = load_unsigned, .field = FIELD(max_streams),
     .fallback = 1024, .max = 1000000},
    /* Off by default: with it on the flow server sees one identity for
     * every user's stream, which is for the operator to decide. */
    {.name = "OPENOVA_FLOW_FANOUT", .load = load_on_off, .field = FIELD(fanout)},
    {.name = "OPENOVA_FLOW_FANOUT_LINGER", .load = load_ms, .field = FIELD(fanout_linger_ms), .fallback = 5000},
    {.name = "OPENOVA_FLOW_FANOUT_USER", .load = load_fanout_user, .text = CONFIG_DEFAULT_FANOUT_USER},
    {.name = "OPENOVA_FLOW_CLIENT_BUFFER", .load = load_size, .field = FIELD(client_buffer),
     .fallback = 1024 * 1024, .max = 1ULL << 30},
    {.name = "OPENOVA_FLOW_FANOUT_HISTORY", .load = load_size, .field = FIELD(fanout_history),
     .fallback = 16 * 1024 * 1024, .max = 1ULL << 32},
    {.name = "OPENOVA_FLOW_WORKERS", .load = load_unsigned, .field = FIELD(workers), .fallback = 16, .max = 1024},
    {.name = "OPENOVA_FLOW_HEALTH_PATH", .load = load_ops_path, .field = FIELD(health_path),
     .text = CONFIG_DEFAULT_HEALTH_PATH},
    {.name = "OPENOVA_FLOW_READY_PATH", .load = load_ops_path, .field = FIELD(ready_path),
     .text = CONFIG_DEFAULT_READY_PATH},
    {.name = "OPENOVA_FLOW_METRICS_PATH", .load = load_ops_path, .field = FIELD(metrics_path),
     .text = CONFIG_DEFAULT_METRICS_PATH},
    {.name = "OPENOVA_FLOW_STATUS_PATH", .load = load_ops_path, .field = FIELD(status_path),
     .text = CONFIG_DEFAULT_STATUS_PATH},
    {.name = "OPENOVA_FLOW_METRICS_ALLOW", .load = load_allow, .text = CONFIG_DEFAULT_METRICS_ALLOW},
    {.name = "OPENOVA_FLOW_LOG_LEVEL", .load = load_log},
    {.name = "OPENOVA_FLOW_ENV_FILE", .load = load_file_name, .field = FIELD(env_file)},
};

unsigned config_check_all(struct proxy_config *cfg, config_env_fn env, config_report_fn report, void *ctx)
{
    memset(cfg, 0, sizeof *cfg);
    unsigned bad = 0;
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        char err[256];
        if (settings[i].load(&settings[i], cfg, env, err, sizeof err) != PROXY_OK) {
            report(err, ctx);
            bad++;
        }
    }
    return bad;
}

/* The variables read inside another's loader (the table names the first
 * of each group) and those the tools around the program read. */
static const char *const other_names[] = {
    "OPENOVA_FLOW_AUTH_READ",     "OPENOVA_FLOW_AUTH_EVENTS",     "OPENOVA_FLOW_TOKENS_FILE",
    "OPENOVA_FLOW_JWKS_FILE",     "OPENOVA_FLOW_JWT_SECRET_FILE", "OPENOVA_FLOW_JWT_COOKIE",
    "OPENOVA_FLOW_JWT_ISSUER",    "OPENOVA_FLOW_JWT_AUDIENCE",    "OPENOVA_FLOW_JWT_USER_CLAIM",
    "OPENOVA_FLOW_JWT_CLOCK_SKEW", "OPENOVA_FLOW_LOG_FORMAT",  "OPENOVA_FLOW_AUTH_DELETE",
    "OPENOVA_FLOW_UPSTREAM_TEMPLATE", "OPENOVA_FLOW_CLIENT_KEY",
    /* The scripts around it: conf/container (entrypoint, health check),
     * conf/spawn-fcgi, tools/demo-events, and the test harness's. */
    "OPENOVA_FLOW_LISTEN", "OPENOVA_FLOW_BIN", "OPENOVA_FLOW_RUN_USER", "OPENOVA_FLOW_SOCKET",
    "OPENOVA_FLOW_SOCKET_GROUP", "OPENOVA_FLOW_DEMO_BASE", "OPENOVA_FLOW_DEMO_ID", "OPENOVA_FLOW_DEMO_USER",
    "OPENOVA_FLOW_FCGI_BIN", "OPENOVA_FLOW_DEVSERVER_BIN", "OPENOVA_FLOW_FCGI_WRAPPER",
};

/* Levenshtein distance of a and b (names are short), capped at 99. */
static unsigned distance(const char *a, const char *b)
{
    size_t n = strlen(b);
    if (strlen(a) > 64 || n > 64)
        return 99;
    unsigned row[65];
    for (size_t j = 0; j <= n; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; a[i - 1]; i++) {
        unsigned diagonal = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= n; j++) {
            unsigned up = row[j];
            unsigned best = diagonal + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diagonal = up;
        }
    }
    return row[n];
}

/* The known name closest to name, or NULL when name is one. */
static const char *closest_known(const char *name, bool *known)
{
    const char *best = NULL;
    unsigned best_d = 100;
    *known = false;
    for (size_t i = 0; i < sizeof settings / sizeof settings[0] + sizeof other_names / sizeof other_names[0]; i++) {
        size_t n_settings = sizeof settings / sizeof settings[0];
        const char *candidate = i < n_settings ? settings[i].name : other_names[i - n_settings];
        unsigned d = distance(name, candidate);
        if (d == 0)
            *known = true;
        if (d < best_d) {
            best_d = d;
            best = candidate;
        }
    }
    return best;
}

unsigned config_unknown_variables(char *const *environment, config_report_fn report, void *ctx)
{
    static const char prefix[] = "OPENOVA_FLOW_";
    unsigned unknown = 0;
    for (size_t i = 0; environment && environment[i]; i++) {
        const char *entry = environment[i];
        size_t len = strcspn(entry, "=");
        char name[128];
        if (strncmp(entry, prefix, sizeof prefix - 1) != 0 || len >= sizeof name)
            continue;
        memcpy(name, entry, len);
        name[len] = '\0';
        bool known;
        const char *near = closest_known(name, &known);
        if (known)
            continue;
        char sentence[256];
        snprintf(sentence, sizeof sentence, "%s is not a setting of openova-flow-fcgi (did you mean %s?)", name, near);
        report(sentence, ctx);
        unknown++;
    }
    return unknown;
}

enum proxy_err config_load(struct proxy_config *cfg, config_env_fn env, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    enum proxy_err rc = PROXY_OK;
    for (size_t i = 0; rc == PROXY_OK && i < sizeof settings / sizeof settings[0]; i++)
        rc = settings[i].load(&settings[i], cfg, env, err, errlen);
    if (rc != PROXY_OK)
        config_free(cfg);
    return rc;
}

void config_free(struct proxy_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->upstream_url);
    free(cfg->upstream_shown);
    free(cfg->deployments_dir);
    free(cfg->upstream_template);
    free(cfg->client_cert);
    free(cfg->client_key);
    free(cfg->upstream_token_file);
    free(cfg->resolve);
    free(cfg->ca_file);
    free(cfg->base_path);
    free(cfg->tokens_file);
    free(cfg->jwks_file);
    free(cfg->jwt_secret_file);
    free(cfg->jwt_cookie);
    free(cfg->jwt_issuer);
    free(cfg->jwt_audience);
    free(cfg->jwt_user_claim);
    free(cfg->health_path);
    free(cfg->ready_path);
    free(cfg->metrics_path);
    free(cfg->status_path);
    free(cfg->env_file);
    free(cfg->fanout_user);
    cidr_list_free(&cfg->metrics_allow);
    memset(cfg, 0, sizeof *cfg);
}

char *config_json(const struct proxy_config *cfg)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    static const char *const modes[] = {[UPSTREAM_IN_CLUSTER] = "in-cluster", [UPSTREAM_FIXED] = "sovereign",
                                        [UPSTREAM_PER_DEPLOYMENT] = "console"};
    json_object_object_add(o, "upstream_mode", json_object_new_string(modes[cfg->upstream_mode]));
    json_object_object_add(o, "upstream_url", cfg->upstream_mode == UPSTREAM_PER_DEPLOYMENT
                                                  ? NULL
                                                  : json_object_new_string(cfg->upstream_shown));
    const struct {
        const char *key, *value;
    } upstream_texts[] = {
        {"deployments_dir", cfg->deployments_dir},   {"upstream_template", cfg->upstream_template},
        {"client_cert", cfg->client_cert},           {"client_key", cfg->client_key},
        {"upstream_token_file", cfg->upstream_token_file}, {"resolve", cfg->resolve},
    };
    for (size_t i = 0; i < sizeof upstream_texts / sizeof upstream_texts[0]; i++)
        json_object_object_add(o, upstream_texts[i].key,
                               upstream_texts[i].value ? json_object_new_string(upstream_texts[i].value) : NULL);
    json_object_object_add(o, "proxy_timeout_ms", json_object_new_int64(cfg->proxy_timeout_ms));
    json_object_object_add(o, "tls_skip_verify", json_object_new_boolean(cfg->tls_skip_verify));
    json_object_object_add(o, "ca_file", cfg->ca_file ? json_object_new_string(cfg->ca_file) : NULL);
    json_object_object_add(o, "base_path", json_object_new_string(cfg->base_path[0] ? cfg->base_path : "/"));
    char methods[CONFIG_AUTH_METHODS_TEXT_MAX];
    json_object_object_add(o, "auth_read",
                           json_object_new_string(config_auth_methods_text(cfg->auth_read, methods, sizeof methods)));
    json_object_object_add(o, "auth_events",
                           json_object_new_string(config_auth_methods_text(cfg->auth_events, methods, sizeof methods)));
    /* null: no purge route at all. */
    json_object_object_add(o, "auth_delete", cfg->purge_enabled ? json_object_new_string(config_auth_methods_text(
                                                                     cfg->auth_delete, methods, sizeof methods))
                                                                : NULL);
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
    json_object_object_add(o, "upstream_idle_ms", json_object_new_int64(cfg->upstream_idle_ms));
    json_object_object_add(o, "keepconn_idle_ms", json_object_new_int64(cfg->keepconn_idle_ms));
    json_object_object_add(o, "client_timeout_ms", json_object_new_int64(cfg->client_timeout_ms));
    json_object_object_add(o, "max_streams", json_object_new_int64(cfg->max_streams));
    json_object_object_add(o, "fanout", json_object_new_boolean(cfg->fanout));
    json_object_object_add(o, "fanout_linger_ms", json_object_new_int64(cfg->fanout_linger_ms));
    json_object_object_add(o, "fanout_user", json_object_new_string(cfg->fanout_user));
    json_object_object_add(o, "client_buffer", json_object_new_int64((int64_t)cfg->client_buffer));
    json_object_object_add(o, "fanout_history", json_object_new_int64((int64_t)cfg->fanout_history));
    json_object_object_add(o, "workers", json_object_new_int64(cfg->workers));
    const struct {
        const char *key, *path;
    } ops[] = {{"health_path", cfg->health_path},
               {"ready_path", cfg->ready_path},
               {"metrics_path", cfg->metrics_path},
               {"status_path", cfg->status_path}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        json_object_object_add(o, ops[i].key, ops[i].path ? json_object_new_string(ops[i].path) : NULL);
    char allow[CIDR_LIST_MAX * 48];
    json_object_object_add(o, "metrics_allow",
                           json_object_new_string(cidr_list_text(&cfg->metrics_allow, allow, sizeof allow)));
    json_object_object_add(o, "log_level", json_object_new_string(proxy_log_level_name(cfg->log_level)));
    json_object_object_add(o, "log_format", json_object_new_string(proxy_log_format_name(cfg->log_format)));
    json_object_object_add(o, "env_file", cfg->env_file ? json_object_new_string(cfg->env_file) : NULL);
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    char *copy = text ? strdup(text) : NULL;
    json_object_put(o);
    return copy;
}
