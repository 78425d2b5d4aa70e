/* test_devserver_config.c: the flow server's environment and command line:
 * durations in whole milliseconds, HOST:PORT, every variable's bad values
 * naming the variable, and the extension flags. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "devserver/config.h"
#include "unit.h"

struct duration_row {
    const char *text;
    int rc;
    uint64_t ms;
};

static const struct duration_row duration_rows[] = {
    {"15s", 0, 15000},
    {"500ms", 0, 500},
    {"1m30s", 0, 90000},
    {"1h", 0, 3600000},
    {"1.5s", 0, 1500},
    {"0.25h", 0, 900000},
    {"2h45m", 0, 9900000},
    {"1500us", 0, 1},
    {"1500\xc2\xb5s", 0, 1},
    {"1500\xce\xbcs", 0, 1},
    {"999999ns", 0, 0},
    {"1000000ns", 0, 1},
    {"+5s", 0, 5000},
    {"0", 0, 0},
    {"0s", 0, 0},
    {".5s", 0, 500},
    {"1.s", 0, 1000},
    {"", -1, 0},
    {"15", -1, 0},
    {"s", -1, 0},
    {"-5s", -1, 0},
    {"5 s", -1, 0},
    {" 5s", -1, 0},
    {"5S", -1, 0},
    {"5d", -1, 0},
    {"5sec", -1, 0},
    {".s", -1, 0},
    {"+", -1, 0},
    {"1s2", -1, 0},
    {"99999999999999999999h", -1, 0},
    {"5124095576030431h", -1, 0}, /* past 2^64 ns */
};

static void test_duration_ms(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(duration_rows); i++) {
        const struct duration_row *r = &duration_rows[i];
        uint64_t ms = 777;
        int rc = ds_duration_ms(r->text, &ms);
        if (rc != r->rc)
            unit_fail(&failures, i, r->text, "rc %d, want %d", rc, r->rc);
        else if (rc == 0 && ms != r->ms)
            unit_fail(&failures, i, r->text, "%" PRIu64 "ms, want %" PRIu64 "ms", ms, r->ms);
    }
    unit_done(failures);
}

struct hostport_row {
    const char *text;
    int rc;
    const char *host;
    unsigned port;
};

static const struct hostport_row hostport_rows[] = {
    {"127.0.0.1:8081", 0, "127.0.0.1", 8081},
    {"localhost:0", 0, "localhost", 0},
    {":8081", 0, "", 8081},
    {"[::1]:9000", 0, "::1", 9000},
    {"[::]:65535", 0, "::", 65535},
    {"0.0.0.0:1", 0, "0.0.0.0", 1},
    {"127.0.0.1", -1, NULL, 0},
    {"127.0.0.1:", -1, NULL, 0},
    {"127.0.0.1:65536", -1, NULL, 0},
    {"127.0.0.1:123456", -1, NULL, 0},
    {"127.0.0.1:-1", -1, NULL, 0},
    {"127.0.0.1:80a", -1, NULL, 0},
    {"::1:80", -1, NULL, 0},
    {"[::1]80", -1, NULL, 0},
    {"[::1", -1, NULL, 0},
    {"", -1, NULL, 0},
};

static void test_hostport(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(hostport_rows); i++) {
        const struct hostport_row *r = &hostport_rows[i];
        char host[DS_HOST_MAX + 1] = "x", err[128] = "";
        unsigned port = 7;
        int rc = ds_parse_hostport(r->text, host, sizeof host, &port, err, sizeof err);
        if (rc != r->rc) {
            unit_fail(&failures, i, r->text, "rc %d, want %d (%s)", rc, r->rc, err);
            continue;
        }
        if (rc == 0 && (strcmp(host, r->host) != 0 || port != r->port))
            unit_fail(&failures, i, r->text, "host \"%s\" port %u, want \"%s\" %u", host, port, r->host, r->port);
        if (rc != 0 && !err[0])
            unit_fail(&failures, i, r->text, "no reason given");
    }
    unit_done(failures);
}

/* A fake environment: the row's three values. */
static const char *env_listen, *env_ring, *env_heartbeat;

static const char *fake_getenv(const char *name)
{
    if (strcmp(name, "FLOW_SERVER_LISTEN_ADDR") == 0)
        return env_listen;
    if (strcmp(name, "FLOW_SERVER_RING_CAPACITY") == 0)
        return env_ring;
    if (strcmp(name, "FLOW_SERVER_HEARTBEAT") == 0)
        return env_heartbeat;
    return NULL;
}

struct config_row {
    const char *name;
    const char *listen, *ring, *heartbeat;
    const char *err_var; /* NULL: accepted; else the error starts with it */
    const char *host;
    unsigned port;
    size_t ring_capacity;
    uint64_t heartbeat_ms;
};

static const struct config_row config_rows[] = {
    {"defaults", NULL, NULL, NULL, NULL, "127.0.0.1", 8081, 4096, 15000},
    {"empty is unset", "", "", "", NULL, "127.0.0.1", 8081, 4096, 15000},
    {"all set", "0.0.0.0:9000", "16", "250ms", NULL, "0.0.0.0", 9000, 16, 250},
    {"ring 1", NULL, "1", NULL, NULL, "127.0.0.1", 8081, 1, 15000},
    {"ring max", NULL, "1048576", NULL, NULL, "127.0.0.1", 8081, 1048576, 15000},
    {"heartbeat 24h", NULL, NULL, "24h", NULL, "127.0.0.1", 8081, 4096, 86400000},
    {"listen without port", "localhost", NULL, NULL, "FLOW_SERVER_LISTEN_ADDR: ", NULL, 0, 0, 0},
    {"listen bad port", "127.0.0.1:http", NULL, NULL, "FLOW_SERVER_LISTEN_ADDR: ", NULL, 0, 0, 0},
    {"ring 0", NULL, "0", NULL, "FLOW_SERVER_RING_CAPACITY: ", NULL, 0, 0, 0},
    {"ring negative", NULL, "-4", NULL, "FLOW_SERVER_RING_CAPACITY: ", NULL, 0, 0, 0},
    {"ring words", NULL, "many", NULL, "FLOW_SERVER_RING_CAPACITY: ", NULL, 0, 0, 0},
    {"ring too big", NULL, "1048577", NULL, "FLOW_SERVER_RING_CAPACITY: ", NULL, 0, 0, 0},
    {"ring huge", NULL, "99999999999999999999", NULL, "FLOW_SERVER_RING_CAPACITY: ", NULL, 0, 0, 0},
    {"ring with unit", NULL, "16k", NULL, "FLOW_SERVER_RING_CAPACITY: ", NULL, 0, 0, 0},
    {"heartbeat no unit", NULL, NULL, "15", "FLOW_SERVER_HEARTBEAT: ", NULL, 0, 0, 0},
    {"heartbeat zero", NULL, NULL, "0s", "FLOW_SERVER_HEARTBEAT: ", NULL, 0, 0, 0},
    {"heartbeat below 1ms", NULL, NULL, "500us", "FLOW_SERVER_HEARTBEAT: ", NULL, 0, 0, 0},
    {"heartbeat over 24h", NULL, NULL, "25h", "FLOW_SERVER_HEARTBEAT: ", NULL, 0, 0, 0},
    {"heartbeat negative", NULL, NULL, "-1s", "FLOW_SERVER_HEARTBEAT: ", NULL, 0, 0, 0},
};

/* HTTPS: the three file names, as the fake environment gives them. */
static const char *env_cert, *env_key, *env_client_ca;

static const char *tls_getenv(const char *name)
{
    if (strcmp(name, "FLOW_SERVER_TLS_CERT") == 0)
        return env_cert;
    if (strcmp(name, "FLOW_SERVER_TLS_KEY") == 0)
        return env_key;
    if (strcmp(name, "FLOW_SERVER_TLS_CLIENT_CA") == 0)
        return env_client_ca;
    return NULL;
}

struct tls_row {
    const char *name;
    const char *cert, *key, *client_ca;
    const char *err_var; /* NULL: accepted */
};

static const struct tls_row tls_rows[] = {
    {"plain HTTP", NULL, NULL, NULL, NULL},
    {"HTTPS", "/c.pem", "/k.pem", NULL, NULL},
    {"mutual TLS", "/c.pem", "/k.pem", "/ca.pem", NULL},
    {"empty is unset", "", "", "", NULL},
    {"cert without key", "/c.pem", NULL, NULL, "FLOW_SERVER_TLS_CERT: "},
    {"key without cert", NULL, "/k.pem", NULL, "FLOW_SERVER_TLS_CERT: "},
    {"client CA without HTTPS", NULL, NULL, "/ca.pem", "FLOW_SERVER_TLS_CLIENT_CA: "},
};

static void test_tls_settings(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(tls_rows); i++) {
        const struct tls_row *r = &tls_rows[i];
        env_cert = r->cert;
        env_key = r->key;
        env_client_ca = r->client_ca;
        struct ds_config cfg;
        char err[256] = "";
        int rc = ds_config_load(&cfg, tls_getenv, err, sizeof err);
        if (!r->err_var && rc != 0)
            unit_fail(&failures, i, r->name, "refused: %s", err);
        else if (!r->err_var && (strcmp(cfg.tls_cert, r->cert ? r->cert : "") != 0 ||
                                 strcmp(cfg.tls_client_ca, r->client_ca ? r->client_ca : "") != 0))
            unit_fail(&failures, i, r->name, "cert \"%s\" client CA \"%s\"", cfg.tls_cert, cfg.tls_client_ca);
        else if (r->err_var && (rc == 0 || strncmp(err, r->err_var, strlen(r->err_var)) != 0))
            unit_fail(&failures, i, r->name, "accepted, or \"%s\" does not open with %s", err, r->err_var);
    }
    unit_done(failures);
}

static void test_config_load(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(config_rows); i++) {
        const struct config_row *r = &config_rows[i];
        env_listen = r->listen;
        env_ring = r->ring;
        env_heartbeat = r->heartbeat;
        struct ds_config cfg;
        char err[256] = "";
        int rc = ds_config_load(&cfg, fake_getenv, err, sizeof err);
        if (!r->err_var) {
            if (rc != 0) {
                unit_fail(&failures, i, r->name, "refused: %s", err);
                continue;
            }
            if (strcmp(cfg.host, r->host) != 0 || cfg.port != r->port || cfg.ring_capacity != r->ring_capacity ||
                cfg.heartbeat_ms != r->heartbeat_ms)
                unit_fail(&failures, i, r->name, "got %s:%u ring %zu heartbeat %" PRIu64 "ms", cfg.host, cfg.port,
                          cfg.ring_capacity, cfg.heartbeat_ms);
            continue;
        }
        if (rc == 0)
            unit_fail(&failures, i, r->name, "accepted");
        else if (strncmp(err, r->err_var, strlen(r->err_var)) != 0 || strchr(err, '\n'))
            unit_fail(&failures, i, r->name, "error \"%s\" does not open with \"%s\" on one line", err, r->err_var);
    }
    unit_done(failures);
}

struct args_row {
    const char *name;
    const char *argv[4]; /* after argv[0], NULL-terminated */
    enum ds_args_result result;
    bool replay, strict;
    size_t max_body;
    const char *err; /* a prefix of the error */
};

static const struct args_row args_rows[] = {
    {"none", {NULL}, DS_ARGS_RUN, false, false, 1048576, NULL},
    {"replay", {"--replay", NULL}, DS_ARGS_RUN, true, false, 1048576, NULL},
    {"every extension", {"--strict", "--max-body=8388608", "--replay", NULL}, DS_ARGS_RUN, true, true, 8388608, NULL},
    {"max-body 1", {"--max-body=1", NULL}, DS_ARGS_RUN, false, false, 1, NULL},
    {"max-body 64 MiB", {"--max-body=67108864", NULL}, DS_ARGS_RUN, false, false, 67108864, NULL},
    {"help", {"--replay", "-h", NULL}, DS_ARGS_HELP, true, false, 1048576, NULL},
    {"version", {"--version", NULL}, DS_ARGS_VERSION, false, false, 1048576, NULL},
    {"max-body 0", {"--max-body=0", NULL}, DS_ARGS_ERROR, false, false, 0, "--max-body: "},
    {"max-body past 64 MiB", {"--max-body=67108865", NULL}, DS_ARGS_ERROR, false, false, 0, "--max-body: "},
    {"max-body with a unit", {"--max-body=1M", NULL}, DS_ARGS_ERROR, false, false, 0, "--max-body: "},
    {"max-body empty", {"--max-body=", NULL}, DS_ARGS_ERROR, false, false, 0, "--max-body: "},
    {"max-body apart", {"--max-body", "5", NULL}, DS_ARGS_ERROR, false, false, 0, "unknown argument \"--max-body\""},
    {"unknown", {"--port=1", NULL}, DS_ARGS_ERROR, false, false, 0, "unknown argument \"--port=1\""},
};

static void test_args(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(args_rows); i++) {
        const struct args_row *r = &args_rows[i];
        char *argv[5] = {(char *)"openova-flow-devserver"};
        int argc = 1;
        while (r->argv[argc - 1]) {
            argv[argc] = (char *)r->argv[argc - 1];
            argc++;
        }
        struct ds_config cfg;
        char err[256] = "";
        enum ds_args_result got = ds_args_parse(argc, argv, &cfg, err, sizeof err);
        if (got != r->result)
            unit_fail(&failures, i, r->name, "result %d, want %d (%s)", (int)got, (int)r->result, err);
        else if (got == DS_ARGS_ERROR && strncmp(err, r->err, strlen(r->err)) != 0)
            unit_fail(&failures, i, r->name, "error \"%s\", want \"%s...\"", err, r->err);
        else if (got != DS_ARGS_ERROR &&
                 (cfg.replay != r->replay || cfg.strict != r->strict || cfg.max_body != r->max_body))
            unit_fail(&failures, i, r->name, "replay %d strict %d max_body %zu", cfg.replay, cfg.strict, cfg.max_body);
    }
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_ms),
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_config_load),
        cmocka_unit_test(test_tls_settings),
        cmocka_unit_test(test_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
