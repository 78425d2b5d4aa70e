/* test_config.c: duration settings in milliseconds, configuration from a
 * fake environment, and its JSON form. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/config.h"
#include "unit.h"

/* ---- config_duration_ms ---- */

struct duration_row {
    const char *text;
    enum proxy_err rc; /* PROXY_OK or PROXY_ERR_INVALID */
    long ms;           /* when rc == PROXY_OK */
};

#define OK PROXY_OK
#define BAD PROXY_ERR_INVALID

/* Expectations are Go's time.ParseDuration, in milliseconds rounded up. */
static const struct duration_row duration_rows[] = {
    {"10s", OK, 10000},
    {"1500ms", OK, 1500},
    {"1m30s", OK, 90000},
    {"0", OK, 0},
    {"+0", OK, 0},
    {"0s", OK, 0},
    {"0ms", OK, 0},
    {"1h", OK, 3600000},
    {"1.5h", OK, 5400000},
    {"2h45m", OK, 9900000},
    {"1h1m1s1ms", OK, 3661001},
    {"300us", OK, 1},               /* a fraction of a millisecond rounds up */
    {"300\xc2\xb5s", OK, 1},        /* U+00B5 micro sign */
    {"300\xce\xbcs", OK, 1},        /* U+03BC greek mu */
    {"1ns", OK, 1},
    {"1000000ns", OK, 1},
    {"1000001ns", OK, 2},
    {"1.1ms", OK, 2},
    {".5s", OK, 500},
    {"0.001s", OK, 1},
    {"10.5s", OK, 10500},
    {"1.s", OK, 1000},              /* Go accepts a bare trailing dot */
    {"+5s", OK, 5000},
    {"1.0000000000000000000001s", OK, 1000}, /* digits past what fits are ignored */
    {"2562047h", OK, 9223369200000}, /* the largest whole hour Go accepts */
    {"", BAD, 0},
    {"abc", BAD, 0},
    {"10", BAD, 0},                 /* a unit is required except for "0" */
    {"00", BAD, 0},
    {"-1s", BAD, 0},                /* Go accepts; negatives are refused here */
    {"-0", OK, 0},                  /* zero is not negative, as in Go */
    {"-0s", OK, 0},
    {"18446744073.9s", BAD, 0},     /* the fraction would wrap past 2^64 */
    {"5124095.9h", BAD, 0},
    {"2562048h", BAD, 0},           /* past Go's int64 nanoseconds */
    {"5x", BAD, 0},
    {"5S", BAD, 0},
    {"5sec", BAD, 0},
    {"1hh", BAD, 0},
    {"1m5", BAD, 0},
    {"s", BAD, 0},
    {".s", BAD, 0},
    {"1.", BAD, 0},
    {"1s.", BAD, 0},
    {".", BAD, 0},
    {"+", BAD, 0},
    {"-", BAD, 0},
    {" 1s", BAD, 0},
    {"1s ", BAD, 0},
    {"1 s", BAD, 0},
    {"99999999999999999999h", BAD, 0},
    {"18446744073709551616ns", BAD, 0},
};

static void test_duration_ms(void **state)
{
    (void)state;
    unsigned failures = 0;
    char esc[128];
    for (size_t i = 0; i < UNIT_LEN(duration_rows); i++) {
        const struct duration_row *r = &duration_rows[i];
        const char *name = unit_escape(r->text, strlen(r->text), esc, sizeof esc);
        long ms = -12345;
        enum proxy_err rc = config_duration_ms(r->text, &ms);
        if (rc != r->rc)
            unit_fail(&failures, i, name, "returned %d, want %d (ms=%ld)", rc, r->rc, ms);
        else if (rc == PROXY_OK && ms != r->ms)
            unit_fail(&failures, i, name, "gave %ld ms, want %ld", ms, r->ms);
    }
    long ms = 7;
    if (config_duration_ms(NULL, &ms) != PROXY_ERR_INVALID)
        unit_fail(&failures, UNIT_LEN(duration_rows), "NULL", "NULL text accepted");
    unit_done(failures);
}

/* ---- config_load ---- */

struct env_var {
    const char *name;
    const char *value;
};

#define MAX_VARS 6

/* The variables of the row being run; fake_env looks names up here. */
static const struct env_var *current_env;

static const char *fake_env(const char *name)
{
    for (size_t i = 0; current_env && i < MAX_VARS && current_env[i].name; i++)
        if (strcmp(current_env[i].name, name) == 0)
            return current_env[i].value;
    return NULL;
}

struct config_want {
    const char *upstream_url;
    long proxy_timeout_ms;
    const char *base_path;
    unsigned auth;             /* auth_read and auth_events */
    size_t max_body;
    long keepalive_ms;
    unsigned max_streams;
    bool tls_skip_verify;
    const char *ca_file;
    unsigned workers;
};

struct config_row {
    const char *name;
    struct env_var env[MAX_VARS];
    const char *bad_var;       /* NULL: loads; else the variable the error names */
    struct config_want want;   /* when bad_var is NULL */
};

#define U CONFIG_DEFAULT_UPSTREAM
#define B CONFIG_DEFAULT_BASE_PATH
#define RU AUTH_REMOTE_USER
#define MB 1048576

static const struct config_row config_rows[] = {
    /* name, env, bad_var, {url, timeout, base, auth, max_body, keepalive, max_streams, tls, ca, workers} */
    {"defaults", {{NULL, NULL}}, NULL, {U, 10000, B, RU, MB, 15000, 1024, false, NULL, 16}},
    {"url trimmed", {{"OPENOVA_FLOW_SERVER_URL", "  http://x:1/ "}}, NULL,
     {"http://x:1", 10000, B, RU, MB, 15000, 1024, false, NULL, 16}},
    {"url trailing slashes", {{"OPENOVA_FLOW_SERVER_URL", "http://x//"}}, NULL,
     {"http://x", 10000, B, RU, MB, 15000, 1024, false, NULL, 16}},
    {"https url with path", {{"OPENOVA_FLOW_SERVER_URL", "https://flow.example:8443/prefix"}}, NULL,
     {"https://flow.example:8443/prefix", 10000, B, RU, MB, 15000, 1024, false, NULL, 16}},
    {"timeout and keepalive", {{"OPENOVA_FLOW_PROXY_TIMEOUT", "1m30s"}, {"OPENOVA_FLOW_KEEPALIVE", "0"}}, NULL,
     {U, 90000, B, RU, MB, 0, 1024, false, NULL, 16}},
    {"keepalive 500ms", {{"OPENOVA_FLOW_KEEPALIVE", "500ms"}}, NULL, {U, 10000, B, RU, MB, 500, 1024, false, NULL, 16}},
    {"auth none", {{"OPENOVA_FLOW_AUTH", "none"}}, NULL,
     {U, 10000, B, AUTH_NONE, MB, 15000, 1024, false, NULL, 16}},
    {"auth remote-user", {{"OPENOVA_FLOW_AUTH", "remote-user"}}, NULL,
     {U, 10000, B, RU, MB, 15000, 1024, false, NULL, 16}},
    {"largest limits",
     {{"OPENOVA_FLOW_MAX_BODY", "4294967296"}, {"OPENOVA_FLOW_MAX_STREAMS", "1000000"}, {"OPENOVA_FLOW_WORKERS", "1024"}},
     NULL, {U, 10000, B, RU, 4294967296u, 15000, 1000000, false, NULL, 1024}},
    {"smallest limits",
     {{"OPENOVA_FLOW_MAX_BODY", "1"}, {"OPENOVA_FLOW_MAX_STREAMS", "1"}, {"OPENOVA_FLOW_WORKERS", "1"}}, NULL,
     {U, 10000, B, RU, 1, 15000, 1, false, NULL, 1}},
    {"tls skip true, ca file", {{"OPENOVA_FLOW_TLS_SKIP_VERIFY", "true"}, {"OPENOVA_FLOW_CA_FILE", "/etc/ca.pem"}}, NULL,
     {U, 10000, B, RU, MB, 15000, 1024, true, "/etc/ca.pem", 16}},
    {"tls skip false", {{"OPENOVA_FLOW_TLS_SKIP_VERIFY", "false"}}, NULL,
     {U, 10000, B, RU, MB, 15000, 1024, false, NULL, 16}},
    {"tls skip empty", {{"OPENOVA_FLOW_TLS_SKIP_VERIFY", ""}}, NULL, {U, 10000, B, RU, MB, 15000, 1024, false, NULL, 16}},
    {"ca file empty", {{"OPENOVA_FLOW_CA_FILE", ""}}, NULL, {U, 10000, B, RU, MB, 15000, 1024, false, NULL, 16}},
    {"base root", {{"OPENOVA_FLOW_BASE_PATH", "/"}}, NULL, {U, 10000, "", RU, MB, 15000, 1024, false, NULL, 16}},
    {"base trailing slash trimmed", {{"OPENOVA_FLOW_BASE_PATH", " /flows/ "}}, NULL,
     {U, 10000, "/flows", RU, MB, 15000, 1024, false, NULL, 16}},

    {"url ftp", {{"OPENOVA_FLOW_SERVER_URL", "ftp://x"}}, "OPENOVA_FLOW_SERVER_URL", {0}},
    {"url no host", {{"OPENOVA_FLOW_SERVER_URL", "http://"}}, "OPENOVA_FLOW_SERVER_URL", {0}},
    {"url only slashes", {{"OPENOVA_FLOW_SERVER_URL", "http:////"}}, "OPENOVA_FLOW_SERVER_URL", {0}},
    {"url empty", {{"OPENOVA_FLOW_SERVER_URL", ""}}, "OPENOVA_FLOW_SERVER_URL", {0}},
    {"url inner space", {{"OPENOVA_FLOW_SERVER_URL", "http://x y"}}, "OPENOVA_FLOW_SERVER_URL", {0}},
    {"url query", {{"OPENOVA_FLOW_SERVER_URL", "http://x/?a=1"}}, "OPENOVA_FLOW_SERVER_URL", {0}},
    {"url fragment", {{"OPENOVA_FLOW_SERVER_URL", "http://x/#f"}}, "OPENOVA_FLOW_SERVER_URL", {0}},
    {"timeout abc", {{"OPENOVA_FLOW_PROXY_TIMEOUT", "abc"}}, "OPENOVA_FLOW_PROXY_TIMEOUT", {0}},
    {"timeout 0", {{"OPENOVA_FLOW_PROXY_TIMEOUT", "0"}}, "OPENOVA_FLOW_PROXY_TIMEOUT", {0}},
    {"timeout 0s", {{"OPENOVA_FLOW_PROXY_TIMEOUT", "0s"}}, "OPENOVA_FLOW_PROXY_TIMEOUT", {0}},
    {"timeout empty", {{"OPENOVA_FLOW_PROXY_TIMEOUT", ""}}, "OPENOVA_FLOW_PROXY_TIMEOUT", {0}},
    {"timeout negative", {{"OPENOVA_FLOW_PROXY_TIMEOUT", "-5s"}}, "OPENOVA_FLOW_PROXY_TIMEOUT", {0}},
    {"auth magic", {{"OPENOVA_FLOW_AUTH", "magic"}}, "OPENOVA_FLOW_AUTH", {0}},
    {"auth case", {{"OPENOVA_FLOW_AUTH", "None"}}, "OPENOVA_FLOW_AUTH", {0}},
    {"max body -1", {{"OPENOVA_FLOW_MAX_BODY", "-1"}}, "OPENOVA_FLOW_MAX_BODY", {0}},
    {"max body 0", {{"OPENOVA_FLOW_MAX_BODY", "0"}}, "OPENOVA_FLOW_MAX_BODY", {0}},
    {"max body abc", {{"OPENOVA_FLOW_MAX_BODY", "abc"}}, "OPENOVA_FLOW_MAX_BODY", {0}},
    {"max body 10k", {{"OPENOVA_FLOW_MAX_BODY", "10k"}}, "OPENOVA_FLOW_MAX_BODY", {0}},
    {"max body over 4 GiB", {{"OPENOVA_FLOW_MAX_BODY", "4294967297"}}, "OPENOVA_FLOW_MAX_BODY", {0}},
    {"max body empty", {{"OPENOVA_FLOW_MAX_BODY", ""}}, "OPENOVA_FLOW_MAX_BODY", {0}},
    {"keepalive x", {{"OPENOVA_FLOW_KEEPALIVE", "x"}}, "OPENOVA_FLOW_KEEPALIVE", {0}},
    {"keepalive unitless", {{"OPENOVA_FLOW_KEEPALIVE", "15"}}, "OPENOVA_FLOW_KEEPALIVE", {0}},
    {"max streams 0", {{"OPENOVA_FLOW_MAX_STREAMS", "0"}}, "OPENOVA_FLOW_MAX_STREAMS", {0}},
    {"max streams over", {{"OPENOVA_FLOW_MAX_STREAMS", "1000001"}}, "OPENOVA_FLOW_MAX_STREAMS", {0}},
    {"max streams sign", {{"OPENOVA_FLOW_MAX_STREAMS", "+5"}}, "OPENOVA_FLOW_MAX_STREAMS", {0}},
    {"fanout yes", {{"OPENOVA_FLOW_FANOUT", "yes"}}, "OPENOVA_FLOW_FANOUT", {0}},
    {"fanout 1", {{"OPENOVA_FLOW_FANOUT", "1"}}, "OPENOVA_FLOW_FANOUT", {0}},
    {"fanout case", {{"OPENOVA_FLOW_FANOUT", "On"}}, "OPENOVA_FLOW_FANOUT", {0}},
    {"linger unitless", {{"OPENOVA_FLOW_FANOUT_LINGER", "5"}}, "OPENOVA_FLOW_FANOUT_LINGER", {0}},
    {"fanout user control", {{"OPENOVA_FLOW_FANOUT_USER", "a\r\nX-Evil: 1"}}, "OPENOVA_FLOW_FANOUT_USER", {0}},
    {"fanout user spaces", {{"OPENOVA_FLOW_FANOUT_USER", " proxy"}}, "OPENOVA_FLOW_FANOUT_USER", {0}},
    {"fanout user non-ASCII", {{"OPENOVA_FLOW_FANOUT_USER", "pr\xc3\xb6xy"}}, "OPENOVA_FLOW_FANOUT_USER", {0}},
    {"client buffer 0", {{"OPENOVA_FLOW_CLIENT_BUFFER", "0"}}, "OPENOVA_FLOW_CLIENT_BUFFER", {0}},
    {"client buffer 1M", {{"OPENOVA_FLOW_CLIENT_BUFFER", "1M"}}, "OPENOVA_FLOW_CLIENT_BUFFER", {0}},
    {"history 0", {{"OPENOVA_FLOW_FANOUT_HISTORY", "0"}}, "OPENOVA_FLOW_FANOUT_HISTORY", {0}},
    {"workers 0", {{"OPENOVA_FLOW_WORKERS", "0"}}, "OPENOVA_FLOW_WORKERS", {0}},
    {"workers over", {{"OPENOVA_FLOW_WORKERS", "1025"}}, "OPENOVA_FLOW_WORKERS", {0}},
    {"tls skip yes", {{"OPENOVA_FLOW_TLS_SKIP_VERIFY", "yes"}}, "OPENOVA_FLOW_TLS_SKIP_VERIFY", {0}},
    {"tls skip 1", {{"OPENOVA_FLOW_TLS_SKIP_VERIFY", "1"}}, "OPENOVA_FLOW_TLS_SKIP_VERIFY", {0}},
    {"base relative", {{"OPENOVA_FLOW_BASE_PATH", "relative"}}, "OPENOVA_FLOW_BASE_PATH", {0}},
    {"base empty", {{"OPENOVA_FLOW_BASE_PATH", ""}}, "OPENOVA_FLOW_BASE_PATH", {0}},
    {"base query", {{"OPENOVA_FLOW_BASE_PATH", "/a?b"}}, "OPENOVA_FLOW_BASE_PATH", {0}},
    {"base percent", {{"OPENOVA_FLOW_BASE_PATH", "/a%20b"}}, "OPENOVA_FLOW_BASE_PATH", {0}},
    /* A later variable fails after earlier strings were allocated: nothing may leak. */
    {"late failure frees", {{"OPENOVA_FLOW_CA_FILE", "/etc/ca.pem"}, {"OPENOVA_FLOW_WORKERS", "x"}},
     "OPENOVA_FLOW_WORKERS", {0}},
};

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_config(unsigned *failures, size_t i, const char *name, const struct proxy_config *c,
                         const struct config_want *w)
{
    if (!str_eq(c->upstream_url, w->upstream_url))
        unit_fail(failures, i, name, "upstream_url \"%s\", want \"%s\"", c->upstream_url, w->upstream_url);
    if (c->proxy_timeout_ms != w->proxy_timeout_ms)
        unit_fail(failures, i, name, "proxy_timeout_ms %ld, want %ld", c->proxy_timeout_ms, w->proxy_timeout_ms);
    if (!str_eq(c->base_path, w->base_path))
        unit_fail(failures, i, name, "base_path \"%s\", want \"%s\"", c->base_path, w->base_path);
    if (c->auth_read != w->auth || c->auth_events != w->auth)
        unit_fail(failures, i, name, "auth %u/%u, want %u", c->auth_read, c->auth_events, w->auth);
    if (c->max_body != w->max_body)
        unit_fail(failures, i, name, "max_body %zu, want %zu", c->max_body, w->max_body);
    if (c->keepalive_ms != w->keepalive_ms)
        unit_fail(failures, i, name, "keepalive_ms %ld, want %ld", c->keepalive_ms, w->keepalive_ms);
    if (c->max_streams != w->max_streams)
        unit_fail(failures, i, name, "max_streams %u, want %u", c->max_streams, w->max_streams);
    if (c->tls_skip_verify != w->tls_skip_verify)
        unit_fail(failures, i, name, "tls_skip_verify %d, want %d", c->tls_skip_verify, w->tls_skip_verify);
    if (!str_eq(c->ca_file, w->ca_file))
        unit_fail(failures, i, name, "ca_file \"%s\", want \"%s\"", c->ca_file ? c->ca_file : "(null)",
                  w->ca_file ? w->ca_file : "(null)");
    if (c->workers != w->workers)
        unit_fail(failures, i, name, "workers %u, want %u", c->workers, w->workers);
}

static void test_config_load(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(config_rows); i++) {
        const struct config_row *r = &config_rows[i];
        struct proxy_config cfg;
        char err[256] = "";
        current_env = r->env;
        enum proxy_err rc = config_load(&cfg, fake_env, err, sizeof err);
        current_env = NULL;
        if (!r->bad_var) {
            if (rc != PROXY_OK)
                unit_fail(&failures, i, r->name, "failed: %s", err);
            else
                check_config(&failures, i, r->name, &cfg, &r->want);
        } else {
            size_t n = strlen(r->bad_var);
            if (rc != PROXY_ERR_INVALID)
                unit_fail(&failures, i, r->name, "returned %d, want PROXY_ERR_INVALID", rc);
            else if (strncmp(err, r->bad_var, n) != 0 || err[n] != ':' || err[n + 1] != ' ' || !err[n + 2])
                unit_fail(&failures, i, r->name, "error \"%s\" does not start with \"%s: \"", err, r->bad_var);
            else if (cfg.upstream_url || cfg.ca_file || cfg.base_path)
                unit_fail(&failures, i, r->name, "a failed load left strings in cfg");
        }
        config_free(&cfg);
        config_free(&cfg); /* idempotent */
    }
    config_free(NULL);
    unit_done(failures);
}

/* ---- fan-out ---- */

struct fanout_row {
    const char *name;
    struct env_var env[MAX_VARS];
    bool fanout;
    long linger_ms;
    const char *user;
    size_t client_buffer, history;
};

static const struct fanout_row fanout_rows[] = {
    {"defaults: off", {{NULL, NULL}}, false, 5000, "openova-flow-fcgi", 1048576, 16777216},
    {"on", {{"OPENOVA_FLOW_FANOUT", "on"}}, true, 5000, "openova-flow-fcgi", 1048576, 16777216},
    {"true", {{"OPENOVA_FLOW_FANOUT", "true"}}, true, 5000, "openova-flow-fcgi", 1048576, 16777216},
    {"off", {{"OPENOVA_FLOW_FANOUT", "off"}}, false, 5000, "openova-flow-fcgi", 1048576, 16777216},
    {"empty is off", {{"OPENOVA_FLOW_FANOUT", ""}}, false, 5000, "openova-flow-fcgi", 1048576, 16777216},
    {"everything set",
     {{"OPENOVA_FLOW_FANOUT", "on"},
      {"OPENOVA_FLOW_FANOUT_LINGER", "0"},
      {"OPENOVA_FLOW_FANOUT_USER", "war room"},
      {"OPENOVA_FLOW_CLIENT_BUFFER", "65536"},
      {"OPENOVA_FLOW_FANOUT_HISTORY", "1"}},
     true, 0, "war room", 65536, 1},
    {"empty user is the default", {{"OPENOVA_FLOW_FANOUT_USER", ""}}, false, 5000, "openova-flow-fcgi", 1048576,
     16777216},
};

static void test_fanout_settings(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(fanout_rows); i++) {
        const struct fanout_row *r = &fanout_rows[i];
        struct proxy_config cfg;
        char err[256] = "";
        current_env = r->env;
        enum proxy_err rc = config_load(&cfg, fake_env, err, sizeof err);
        current_env = NULL;
        if (rc != PROXY_OK)
            unit_fail(&failures, i, r->name, "failed: %s", err);
        else if (cfg.fanout != r->fanout || cfg.fanout_linger_ms != r->linger_ms ||
                 strcmp(cfg.fanout_user, r->user) != 0 || cfg.client_buffer != r->client_buffer ||
                 cfg.fanout_history != r->history)
            unit_fail(&failures, i, r->name, "fanout %d linger %ld user \"%s\" buffer %zu history %zu", cfg.fanout,
                      cfg.fanout_linger_ms, cfg.fanout_user, cfg.client_buffer, cfg.fanout_history);
        config_free(&cfg);
    }
    unit_done(failures);
}

/* ---- authentication settings ---- */

struct auth_row {
    const char *name;
    struct env_var env[MAX_VARS];
    const char *bad_var; /* NULL: loads */
    unsigned read, events;
};

#define RUB (AUTH_REMOTE_USER | AUTH_BEARER)
#define ALL (AUTH_REMOTE_USER | AUTH_BEARER | AUTH_JWT)
#define TOKENS {"OPENOVA_FLOW_TOKENS_FILE", "/etc/tokens"}
#define JWKS {"OPENOVA_FLOW_JWKS_FILE", "/etc/jwks.json"}

static const struct auth_row auth_rows[] = {
    {"default remote-user", {{NULL, NULL}}, NULL, AUTH_REMOTE_USER, AUTH_REMOTE_USER},
    {"list", {{"OPENOVA_FLOW_AUTH", "remote-user,bearer"}, TOKENS}, NULL, RUB, RUB},
    {"list with spaces", {{"OPENOVA_FLOW_AUTH", " jwt , bearer,remote-user "}, TOKENS, JWKS}, NULL, ALL, ALL},
    {"repeated method", {{"OPENOVA_FLOW_AUTH", "bearer,bearer"}, TOKENS}, NULL, AUTH_BEARER, AUTH_BEARER},
    {"jwt with secret only", {{"OPENOVA_FLOW_AUTH", "jwt"}, {"OPENOVA_FLOW_JWT_SECRET_FILE", "/s"}}, NULL,
     AUTH_JWT, AUTH_JWT},
    {"per-route overrides",
     {{"OPENOVA_FLOW_AUTH", "none"}, {"OPENOVA_FLOW_AUTH_EVENTS", "bearer"}, {"OPENOVA_FLOW_AUTH_READ", "jwt"}, TOKENS},
     "OPENOVA_FLOW_JWKS_FILE", 0, 0},
    {"emitters with tokens, browsers with jwt",
     {{"OPENOVA_FLOW_AUTH_EVENTS", "bearer"}, {"OPENOVA_FLOW_AUTH_READ", "jwt"}, TOKENS, JWKS}, NULL, AUTH_JWT,
     AUTH_BEARER},
    {"read open, events locked", {{"OPENOVA_FLOW_AUTH_READ", "none"}}, NULL, AUTH_NONE, AUTH_REMOTE_USER},
    {"none with another", {{"OPENOVA_FLOW_AUTH", "none,bearer"}, TOKENS}, "OPENOVA_FLOW_AUTH", 0, 0},
    {"empty list", {{"OPENOVA_FLOW_AUTH", ""}}, "OPENOVA_FLOW_AUTH", 0, 0},
    {"empty item", {{"OPENOVA_FLOW_AUTH", "bearer,"}, TOKENS}, "OPENOVA_FLOW_AUTH", 0, 0},
    {"unknown method", {{"OPENOVA_FLOW_AUTH", "basic"}}, "OPENOVA_FLOW_AUTH", 0, 0},
    {"bad events list", {{"OPENOVA_FLOW_AUTH_EVENTS", "Bearer"}}, "OPENOVA_FLOW_AUTH_EVENTS", 0, 0},
    {"bad read list", {{"OPENOVA_FLOW_AUTH_READ", "jwt;bearer"}}, "OPENOVA_FLOW_AUTH_READ", 0, 0},
    {"bearer without tokens file", {{"OPENOVA_FLOW_AUTH", "bearer"}}, "OPENOVA_FLOW_TOKENS_FILE", 0, 0},
    {"jwt without keys", {{"OPENOVA_FLOW_AUTH_READ", "jwt"}}, "OPENOVA_FLOW_JWKS_FILE", 0, 0},
    {"cookie name with separator", {{"OPENOVA_FLOW_JWT_COOKIE", "a;b"}}, "OPENOVA_FLOW_JWT_COOKIE", 0, 0},
    {"skew too large", {{"OPENOVA_FLOW_JWT_CLOCK_SKEW", "10m"}}, "OPENOVA_FLOW_JWT_CLOCK_SKEW", 0, 0},
    {"connect timeout 0", {{"OPENOVA_FLOW_CONNECT_TIMEOUT", "0"}}, "OPENOVA_FLOW_CONNECT_TIMEOUT", 0, 0},
    {"max snapshot 0", {{"OPENOVA_FLOW_MAX_SNAPSHOT", "0"}}, "OPENOVA_FLOW_MAX_SNAPSHOT", 0, 0},
    {"max snapshot unit", {{"OPENOVA_FLOW_MAX_SNAPSHOT", "16M"}}, "OPENOVA_FLOW_MAX_SNAPSHOT", 0, 0},
};

static void test_auth_settings(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(auth_rows); i++) {
        const struct auth_row *r = &auth_rows[i];
        struct proxy_config cfg;
        char err[256] = "";
        current_env = r->env;
        enum proxy_err rc = config_load(&cfg, fake_env, err, sizeof err);
        current_env = NULL;
        if (!r->bad_var) {
            if (rc != PROXY_OK)
                unit_fail(&failures, i, r->name, "failed: %s", err);
            else if (cfg.auth_read != r->read || cfg.auth_events != r->events)
                unit_fail(&failures, i, r->name, "read %u events %u, want %u %u", cfg.auth_read, cfg.auth_events,
                          r->read, r->events);
        } else if (rc != PROXY_ERR_INVALID || strncmp(err, r->bad_var, strlen(r->bad_var)) != 0) {
            unit_fail(&failures, i, r->name, "rc %d, error \"%s\", want one naming %s", rc, err, r->bad_var);
        }
        config_free(&cfg);
    }
    unit_done(failures);
}

static void test_limits_defaults(void **state)
{
    (void)state;
    struct proxy_config cfg;
    char err[256] = "";
    current_env = NULL;
    assert_int_equal(config_load(&cfg, fake_env, err, sizeof err), PROXY_OK);
    assert_int_equal(cfg.max_snapshot, 16 * 1024 * 1024);
    assert_int_equal(cfg.connect_timeout_ms, 5000);
    assert_int_equal(cfg.jwt_clock_skew_ms, 30000);
    assert_string_equal(cfg.jwt_user_claim, "email");
    assert_null(cfg.jwt_cookie);
    config_free(&cfg);
    /* A short proxy timeout bounds the connect too. */
    static const struct env_var short_timeout[MAX_VARS] = {{"OPENOVA_FLOW_PROXY_TIMEOUT", "2s"}};
    current_env = short_timeout;
    assert_int_equal(config_load(&cfg, fake_env, err, sizeof err), PROXY_OK);
    current_env = NULL;
    assert_int_equal(cfg.connect_timeout_ms, 2000);
    config_free(&cfg);
    char text[64];
    assert_string_equal(config_auth_methods_text(0, text, sizeof text), "none");
    assert_string_equal(config_auth_methods_text(ALL, text, sizeof text), "remote-user,bearer,jwt");
}

/* ---- config_json ---- */

struct json_row {
    const char *name;
    struct env_var env[MAX_VARS];
    const char *upstream_url;
    long proxy_timeout_ms;
    bool tls_skip_verify;
    const char *ca_file; /* NULL: JSON null */
    const char *base_path;
    const char *auth;
    int64_t max_body;
    long keepalive_ms;
    int64_t max_streams;
    int64_t workers;
};

static const struct json_row json_rows[] = {
    {"defaults", {{NULL, NULL}}, U, 10000, false, NULL, B, "remote-user", MB, 15000, 1024, 16},
    {"everything set",
     {{"OPENOVA_FLOW_SERVER_URL", "https://a\"b/"},
      {"OPENOVA_FLOW_CA_FILE", "/etc/ca \"x\".pem"},
      {"OPENOVA_FLOW_AUTH", "none"},
      {"OPENOVA_FLOW_BASE_PATH", "/"}},
     "https://a\"b", 10000, false, "/etc/ca \"x\".pem", "/", "none", MB, 15000, 1024, 16},
    {"numbers",
     {{"OPENOVA_FLOW_MAX_BODY", "4294967296"},
      {"OPENOVA_FLOW_KEEPALIVE", "0"},
      {"OPENOVA_FLOW_TLS_SKIP_VERIFY", "true"},
      {"OPENOVA_FLOW_PROXY_TIMEOUT", "2h"}},
     U, 7200000, true, NULL, B, "remote-user", 4294967296, 0, 1024, 16},
};

static const char *const json_keys[] = {
    "upstream_url", "proxy_timeout_ms", "tls_skip_verify", "ca_file", "base_path",
    "auth_read", "auth_events", "max_body", "keepalive_ms", "max_streams", "workers",
    "tokens_file", "jwks_file", "jwt_secret_file", "jwt_cookie", "jwt_issuer", "jwt_audience",
    "jwt_user_claim", "jwt_clock_skew_ms", "connect_timeout_ms", "max_snapshot",
    "upstream_idle_ms", "keepconn_idle_ms", "client_timeout_ms",
    "health_path", "ready_path", "metrics_path", "status_path", "metrics_allow", "log_level", "log_format",
    "env_file", "upstream_mode", "deployments_dir", "upstream_template", "client_cert", "client_key",
    "upstream_token_file", "resolve", "auth_delete", "fanout", "fanout_linger_ms", "fanout_user", "client_buffer",
    "fanout_history",
};

static void check_json_string(unsigned *failures, size_t i, const char *name, json_object *o, const char *key,
                              const char *want)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v))
        unit_fail(failures, i, name, "no key %s", key);
    else if (!want && v)
        unit_fail(failures, i, name, "%s is %s, want null", key, json_object_to_json_string(v));
    else if (want && (!json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), want) != 0))
        unit_fail(failures, i, name, "%s is %s, want \"%s\"", key, json_object_to_json_string(v), want);
}

static void check_json_int(unsigned *failures, size_t i, const char *name, json_object *o, const char *key,
                           int64_t want)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        unit_fail(failures, i, name, "%s missing or not an integer", key);
    else if (json_object_get_int64(v) != want)
        unit_fail(failures, i, name, "%s is %lld, want %lld", key, (long long)json_object_get_int64(v),
                  (long long)want);
}

static void test_config_json(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(json_rows); i++) {
        const struct json_row *r = &json_rows[i];
        struct proxy_config cfg;
        char err[256] = "";
        current_env = r->env;
        enum proxy_err rc = config_load(&cfg, fake_env, err, sizeof err);
        current_env = NULL;
        if (rc != PROXY_OK) {
            unit_fail(&failures, i, r->name, "load failed: %s", err);
            continue;
        }
        char *text = config_json(&cfg);
        json_object *o = text ? json_tokener_parse(text) : NULL;
        if (!o || !json_object_is_type(o, json_type_object)) {
            unit_fail(&failures, i, r->name, "not a JSON object: %s", text ? text : "(null)");
        } else {
            if ((size_t)json_object_object_length(o) != UNIT_LEN(json_keys))
                unit_fail(&failures, i, r->name, "%d keys, want %zu: %s", json_object_object_length(o),
                          UNIT_LEN(json_keys), text);
            for (size_t k = 0; k < UNIT_LEN(json_keys); k++)
                if (!json_object_object_get_ex(o, json_keys[k], NULL))
                    unit_fail(&failures, i, r->name, "key %s missing: %s", json_keys[k], text);
            check_json_string(&failures, i, r->name, o, "upstream_url", r->upstream_url);
            check_json_int(&failures, i, r->name, o, "proxy_timeout_ms", r->proxy_timeout_ms);
            json_object *tls = NULL;
            if (!json_object_object_get_ex(o, "tls_skip_verify", &tls) || !json_object_is_type(tls, json_type_boolean) ||
                json_object_get_boolean(tls) != r->tls_skip_verify)
                unit_fail(&failures, i, r->name, "tls_skip_verify wrong: %s", text);
            check_json_string(&failures, i, r->name, o, "ca_file", r->ca_file);
            check_json_string(&failures, i, r->name, o, "base_path", r->base_path);
            check_json_string(&failures, i, r->name, o, "auth_read", r->auth);
            check_json_string(&failures, i, r->name, o, "auth_events", r->auth);
            check_json_int(&failures, i, r->name, o, "max_body", r->max_body);
            check_json_int(&failures, i, r->name, o, "keepalive_ms", r->keepalive_ms);
            check_json_int(&failures, i, r->name, o, "max_streams", r->max_streams);
            check_json_int(&failures, i, r->name, o, "workers", r->workers);
        }
        json_object_put(o);
        free(text);
        config_free(&cfg);
    }
    unit_done(failures);
}

/* Loads row i's environment into cfg. A row with bad_var must be refused
 * naming it; any other must load. True when cfg loaded and is the caller's
 * to check and free; a failure is counted in *failures. */
static bool load_row(const struct env_var *env, const char *name, const char *bad_var, size_t i,
                     unsigned *failures, struct proxy_config *cfg)
{
    current_env = env;
    char err[256] = "";
    enum proxy_err rc = config_load(cfg, fake_env, err, sizeof err);
    current_env = NULL;
    if (bad_var) {
        if (rc == PROXY_OK || !strstr(err, bad_var))
            unit_fail(failures, i, name, "loaded, or the error does not name %s: \"%s\"", bad_var, err);
        if (rc == PROXY_OK)
            config_free(cfg);
        return false;
    }
    if (rc != PROXY_OK)
        unit_fail(failures, i, name, "refused: %s", err);
    return rc == PROXY_OK;
}

/* The time limits on the web server's side and the upstream's silence. */
struct limit_row {
    const char *name;
    struct env_var env[MAX_VARS];
    const char *bad_var; /* NULL: loads */
    long upstream_idle_ms, keepconn_idle_ms, client_timeout_ms;
};

static const struct limit_row limit_rows[] = {
    {"defaults", {{NULL, NULL}}, NULL, 45000, 60000, 30000},
    {"set",
     {{"OPENOVA_FLOW_UPSTREAM_IDLE", "1m"}, {"OPENOVA_FLOW_KEEPCONN_IDLE", "2s"},
      {"OPENOVA_FLOW_CLIENT_TIMEOUT", "1500ms"}},
     NULL, 60000, 2000, 1500},
    {"upstream idle off", {{"OPENOVA_FLOW_UPSTREAM_IDLE", "0"}}, NULL, 0, 60000, 30000},
    {"keepconn idle 0", {{"OPENOVA_FLOW_KEEPCONN_IDLE", "0"}}, "OPENOVA_FLOW_KEEPCONN_IDLE", 0, 0, 0},
    {"client timeout 0", {{"OPENOVA_FLOW_CLIENT_TIMEOUT", "0s"}}, "OPENOVA_FLOW_CLIENT_TIMEOUT", 0, 0, 0},
    {"upstream idle junk", {{"OPENOVA_FLOW_UPSTREAM_IDLE", "soon"}}, "OPENOVA_FLOW_UPSTREAM_IDLE", 0, 0, 0},
};

static void test_time_limits(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(limit_rows); i++) {
        const struct limit_row *r = &limit_rows[i];
        struct proxy_config cfg;
        if (!load_row(r->env, r->name, r->bad_var, i, &failures, &cfg))
            continue;
        if (cfg.upstream_idle_ms != r->upstream_idle_ms || cfg.keepconn_idle_ms != r->keepconn_idle_ms ||
            cfg.client_timeout_ms != r->client_timeout_ms)
            unit_fail(&failures, i, r->name, "%ld %ld %ld, want %ld %ld %ld", cfg.upstream_idle_ms,
                      cfg.keepconn_idle_ms, cfg.client_timeout_ms, r->upstream_idle_ms, r->keepconn_idle_ms,
                      r->client_timeout_ms);
        config_free(&cfg);
    }
    unit_done(failures);
}

/* The operations endpoints, who may read metrics, and the log. */
struct ops_row {
    const char *name;
    struct env_var env[MAX_VARS];
    const char *bad_var; /* NULL: loads */
    const char *health, *metrics, *allow; /* NULL: off */
    enum proxy_log_level level;
    enum proxy_log_format format;
};

static const struct ops_row ops_rows[] = {
    {"defaults", {{NULL, NULL}}, NULL, "/openova-flow/healthz", "/openova-flow/metrics", "127.0.0.0/8,::1/128",
     PROXY_LOG_INFO, PROXY_LOG_LOGFMT},
    {"set",
     {{"OPENOVA_FLOW_HEALTH_PATH", " /ping "}, {"OPENOVA_FLOW_METRICS_PATH", "/m"},
      {"OPENOVA_FLOW_METRICS_ALLOW", "10.0.0.0/8, fd00::/8,192.168.1.7"}, {"OPENOVA_FLOW_LOG_LEVEL", "debug"},
      {"OPENOVA_FLOW_LOG_FORMAT", "json"}},
     NULL, "/ping", "/m", "10.0.0.0/8,fd00::/8,192.168.1.7/32", PROXY_LOG_DEBUG, PROXY_LOG_JSON},
    {"off", {{"OPENOVA_FLOW_HEALTH_PATH", ""}, {"OPENOVA_FLOW_METRICS_PATH", ""}, {"OPENOVA_FLOW_METRICS_ALLOW", ""}},
     NULL, NULL, NULL, "", PROXY_LOG_INFO, PROXY_LOG_LOGFMT},
    {"relative path", {{"OPENOVA_FLOW_READY_PATH", "readyz"}}, "OPENOVA_FLOW_READY_PATH", NULL, NULL, NULL, 0, 0},
    {"path with query", {{"OPENOVA_FLOW_STATUS_PATH", "/s?x"}}, "OPENOVA_FLOW_STATUS_PATH", NULL, NULL, NULL, 0, 0},
    {"under the flow routes", {{"OPENOVA_FLOW_METRICS_PATH", "/api/v1/flows/metrics"}}, "OPENOVA_FLOW_METRICS_PATH",
     NULL, NULL, NULL, 0, 0},
    {"the base itself", {{"OPENOVA_FLOW_HEALTH_PATH", "/api/v1/flows"}}, "OPENOVA_FLOW_HEALTH_PATH", NULL, NULL,
     NULL, 0, 0},
    {"two endpoints, one path", {{"OPENOVA_FLOW_STATUS_PATH", "/openova-flow/metrics"}}, "OPENOVA_FLOW_STATUS_PATH",
     NULL, NULL, NULL, 0, 0},
    {"a bad range", {{"OPENOVA_FLOW_METRICS_ALLOW", "10.0.0.0/33"}}, "OPENOVA_FLOW_METRICS_ALLOW", NULL, NULL, NULL,
     0, 0},
    {"a host name", {{"OPENOVA_FLOW_METRICS_ALLOW", "localhost"}}, "OPENOVA_FLOW_METRICS_ALLOW", NULL, NULL, NULL, 0,
     0},
    {"level", {{"OPENOVA_FLOW_LOG_LEVEL", "verbose"}}, "OPENOVA_FLOW_LOG_LEVEL", NULL, NULL, NULL, 0, 0},
    {"format", {{"OPENOVA_FLOW_LOG_FORMAT", "text"}}, "OPENOVA_FLOW_LOG_FORMAT", NULL, NULL, NULL, 0, 0},
};

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void test_ops_settings(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(ops_rows); i++) {
        const struct ops_row *r = &ops_rows[i];
        struct proxy_config cfg;
        if (!load_row(r->env, r->name, r->bad_var, i, &failures, &cfg))
            continue;
        char allow[512];
        cidr_list_text(&cfg.metrics_allow, allow, sizeof allow);
        if (!same_text(cfg.health_path, r->health) || !same_text(cfg.metrics_path, r->metrics) ||
            strcmp(allow, r->allow) != 0 || cfg.log_level != r->level || cfg.log_format != r->format)
            unit_fail(&failures, i, r->name, "health %s metrics %s allow %s level %d format %d",
                      cfg.health_path ? cfg.health_path : "(off)", cfg.metrics_path ? cfg.metrics_path : "(off)",
                      allow, cfg.log_level, cfg.log_format);
        config_free(&cfg);
    }
    unit_done(failures);
}

/* Where calls go: one URL, or the console's records and template; the
 * purge; the client certificate and the --resolve entries. */
struct upstream_row {
    const char *name;
    struct env_var env[MAX_VARS];
    const char *bad_var; /* NULL: loads */
    enum upstream_mode mode;
    const char *dir, *template_text, *resolve;
    bool purge;
    unsigned auth_delete;
};

#define DIR_VAR "OPENOVA_FLOW_DEPLOYMENTS_DIR"
#define TEMPLATE_VAR "OPENOVA_FLOW_UPSTREAM_TEMPLATE"

static const struct upstream_row upstream_rows[] = {
    {"defaults", {{NULL, NULL}}, NULL, UPSTREAM_IN_CLUSTER, NULL, NULL, NULL, false, 0},
    {"server url", {{"OPENOVA_FLOW_SERVER_URL", "http://flow:8080"}}, NULL, UPSTREAM_FIXED, NULL, NULL, NULL, false,
     0},
    {"console", {{DIR_VAR, "/var/lib/catalyst/deployments"}}, NULL, UPSTREAM_PER_DEPLOYMENT,
     "/var/lib/catalyst/deployments", "https://openova-flow.{sovereignFQDN}", NULL, false, 0},
    {"console with a template", {{DIR_VAR, "/d"}, {TEMPLATE_VAR, " http://flow.{sovereignFQDN}:8080/ "}}, NULL,
     UPSTREAM_PER_DEPLOYMENT, "/d", "http://flow.{sovereignFQDN}:8080/", NULL, false, 0},
    {"server url wins", {{DIR_VAR, "/d"}, {"OPENOVA_FLOW_SERVER_URL", "http://flow:8080"}}, NULL, UPSTREAM_FIXED,
     NULL, NULL, NULL, false, 0},
    {"empty dir", {{DIR_VAR, ""}}, NULL, UPSTREAM_IN_CLUSTER, NULL, NULL, NULL, false, 0},
    {"relative dir", {{DIR_VAR, "records"}}, DIR_VAR, 0, NULL, NULL, NULL, false, 0},
    {"template without placeholder", {{DIR_VAR, "/d"}, {TEMPLATE_VAR, "https://flow.example"}}, TEMPLATE_VAR, 0,
     NULL, NULL, NULL, false, 0},
    {"template twice", {{DIR_VAR, "/d"}, {TEMPLATE_VAR, "https://{sovereignFQDN}.{sovereignFQDN}"}}, TEMPLATE_VAR,
     0, NULL, NULL, NULL, false, 0},
    {"template other placeholder", {{DIR_VAR, "/d"}, {TEMPLATE_VAR, "https://{region}.{sovereignFQDN}"}},
     TEMPLATE_VAR, 0, NULL, NULL, NULL, false, 0},
    {"template ftp", {{DIR_VAR, "/d"}, {TEMPLATE_VAR, "ftp://{sovereignFQDN}"}}, TEMPLATE_VAR, 0, NULL, NULL, NULL,
     false, 0},
    {"template query", {{DIR_VAR, "/d"}, {TEMPLATE_VAR, "https://{sovereignFQDN}/?x=1"}}, TEMPLATE_VAR, 0, NULL,
     NULL, NULL, false, 0},
    {"template checked without the dir", {{TEMPLATE_VAR, "{sovereignFQDN}"}}, TEMPLATE_VAR, 0, NULL, NULL, NULL,
     false, 0},
    {"resolve", {{"OPENOVA_FLOW_RESOLVE", "a.example:443:127.0.0.1, b.example:8443:[::1]"}}, NULL,
     UPSTREAM_IN_CLUSTER, NULL, NULL, "a.example:443:127.0.0.1, b.example:8443:[::1]", false, 0},
    {"resolve without address", {{"OPENOVA_FLOW_RESOLVE", "a.example:443:"}}, "OPENOVA_FLOW_RESOLVE", 0, NULL, NULL,
     NULL, false, 0},
    {"resolve port 0", {{"OPENOVA_FLOW_RESOLVE", "a.example:0:127.0.0.1"}}, "OPENOVA_FLOW_RESOLVE", 0, NULL, NULL,
     NULL, false, 0},
    {"resolve bad host", {{"OPENOVA_FLOW_RESOLVE", "a/b:443:127.0.0.1"}}, "OPENOVA_FLOW_RESOLVE", 0, NULL, NULL,
     NULL, false, 0},
    {"purge off", {{"OPENOVA_FLOW_AUTH_DELETE", ""}}, NULL, UPSTREAM_IN_CLUSTER, NULL, NULL, NULL, false, 0},
    {"purge", {{"OPENOVA_FLOW_AUTH_DELETE", "remote-user"}}, NULL, UPSTREAM_IN_CLUSTER, NULL, NULL, NULL, true,
     AUTH_REMOTE_USER},
    {"purge open", {{"OPENOVA_FLOW_AUTH_DELETE", "none"}}, NULL, UPSTREAM_IN_CLUSTER, NULL, NULL, NULL, true,
     AUTH_NONE},
    {"purge by bearer needs tokens", {{"OPENOVA_FLOW_AUTH_DELETE", "bearer"}}, "OPENOVA_FLOW_TOKENS_FILE", 0, NULL,
     NULL, NULL, false, 0},
    {"purge junk", {{"OPENOVA_FLOW_AUTH_DELETE", "admin"}}, "OPENOVA_FLOW_AUTH_DELETE", 0, NULL, NULL, NULL, false,
     0},
    {"key without cert", {{"OPENOVA_FLOW_CLIENT_KEY", "/k.pem"}}, "OPENOVA_FLOW_CLIENT_KEY", 0, NULL, NULL, NULL,
     false, 0},
};

static void test_upstream_settings(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(upstream_rows); i++) {
        const struct upstream_row *r = &upstream_rows[i];
        struct proxy_config cfg;
        if (!load_row(r->env, r->name, r->bad_var, i, &failures, &cfg))
            continue;
        if (cfg.upstream_mode != r->mode || !same_text(cfg.deployments_dir, r->dir) ||
            !same_text(cfg.upstream_template, r->template_text) || !same_text(cfg.resolve, r->resolve) ||
            cfg.purge_enabled != r->purge || cfg.auth_delete != r->auth_delete)
            unit_fail(&failures, i, r->name, "mode %d dir %s template %s resolve %s purge %d/%u", cfg.upstream_mode,
                      cfg.deployments_dir ? cfg.deployments_dir : "-",
                      cfg.upstream_template ? cfg.upstream_template : "-", cfg.resolve ? cfg.resolve : "-",
                      cfg.purge_enabled, cfg.auth_delete);
        config_free(&cfg);
    }
    unit_done(failures);
}

/* The upstream as logs and the status page show it: no password. */
static const struct {
    const char *url, *shown;
} shown_rows[] = {
    {"http://flow:8080", "http://flow:8080"},
    {"https://user:secret@flow.example/base", "https://user:***@flow.example/base"},
    {"https://user@flow.example", "https://user@flow.example"},
    {"http://flow/a:b@c", "http://flow/a:b@c"}, /* an @ in the path is no user info */
    {"http://u:p:q@flow:1/", "http://u:***@flow:1"},
};

static void test_upstream_shown(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(shown_rows); i++) {
        struct env_var env[MAX_VARS] = {{"OPENOVA_FLOW_SERVER_URL", shown_rows[i].url}};
        current_env = env;
        struct proxy_config cfg;
        char err[256] = "";
        enum proxy_err rc = config_load(&cfg, fake_env, err, sizeof err);
        current_env = NULL;
        if (rc != PROXY_OK) {
            unit_fail(&failures, i, shown_rows[i].url, "refused: %s", err);
            continue;
        }
        if (strcmp(cfg.upstream_shown, shown_rows[i].shown) != 0)
            unit_fail(&failures, i, shown_rows[i].url, "shown as %s, want %s", cfg.upstream_shown, shown_rows[i].shown);
        config_free(&cfg);
    }
    unit_done(failures);
}

/* What SIGHUP reads from an environment file, as systemd reads it. */
static const struct {
    const char *name;
    const char *text;
    const char *want; /* NULL: not set */
} env_file_rows[] = {
    {"plain", "OPENOVA_FLOW_LOG_LEVEL=warn\n", "warn"},
    {"double quotes", "OPENOVA_FLOW_LOG_LEVEL=\"debug\"\n", "debug"},
    {"single quotes", "  OPENOVA_FLOW_LOG_LEVEL='error'  \n", "error"},
    {"the last wins", "OPENOVA_FLOW_LOG_LEVEL=info\nOPENOVA_FLOW_LOG_LEVEL=warn", "warn"},
    {"comments", "# OPENOVA_FLOW_LOG_LEVEL=debug\n; OPENOVA_FLOW_LOG_LEVEL=x\nOPENOVA_FLOW_LOG_LEVEL=info\n", "info"},
    {"another name", "OPENOVA_FLOW_LOG_LEVELS=debug\nXOPENOVA_FLOW_LOG_LEVEL=debug\n", NULL},
    {"empty file", "", NULL},
};

static void test_env_file(void **state)
{
    (void)state;
    unsigned failures = 0;
    char path[] = "/tmp/test-config-env-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    for (size_t i = 0; i < UNIT_LEN(env_file_rows); i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(env_file_rows[i].text, f);
        fclose(f);
        char value[32] = "", err[256] = "";
        enum proxy_err rc = config_env_file_value(path, "OPENOVA_FLOW_LOG_LEVEL", value, sizeof value, err, sizeof err);
        const char *want = env_file_rows[i].want;
        if (want ? rc != PROXY_OK || strcmp(value, want) != 0 : rc != PROXY_ERR_INVALID || !err[0])
            unit_fail(&failures, i, env_file_rows[i].name, "rc %d value \"%s\" err \"%s\"", rc, value, err);
    }
    unlink(path);
    char value[8], err[256] = "";
    if (config_env_file_value("/nonexistent/env", "X", value, sizeof value, err, sizeof err) != PROXY_ERR_INVALID ||
        !strstr(err, "/nonexistent/env"))
        unit_fail(&failures, UNIT_LEN(env_file_rows), "missing file", "%s", err);
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_limits),
        cmocka_unit_test(test_duration_ms),
        cmocka_unit_test(test_config_load),
        cmocka_unit_test(test_config_json),
        cmocka_unit_test(test_fanout_settings),
        cmocka_unit_test(test_auth_settings),
        cmocka_unit_test(test_limits_defaults),
        cmocka_unit_test(test_ops_settings),
        cmocka_unit_test(test_upstream_shown),
        cmocka_unit_test(test_upstream_settings),
        cmocka_unit_test(test_env_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
