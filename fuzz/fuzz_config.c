/* fuzz_config.c: libFuzzer harness for configuration from the environment
 * (config_load), with an environment parsed out of the input. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/config.h"
#include "fuzz.h"


#define PREFIX "OPENOVA_FLOW_"
#define MAX_VARS 64

/* config_env_fn takes no context: the current input's environment lives here
 * for the length of one call. libFuzzer runs inputs one at a time. */
static struct {
    char *text; /* the input, NUL-terminated, lines split in place */
    const char *names[MAX_VARS];
    const char *values[MAX_VARS];
    size_t count;
} env_table;

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Any name the loader asks for, now or after new settings are added. A line
 * may leave out the OPENOVA_FLOW_ prefix, so that short mutations reach every
 * variable. The first line that names a variable wins, as in an environment. */
static const char *fuzz_env(const char *name)
{
    /* *_FILE names files the loader may open: the fuzzer must not choose them. */
    if (ends_with(name, "_FILE"))
        return NULL;
    const char *short_name = strncmp(name, PREFIX, strlen(PREFIX)) == 0 ? name + strlen(PREFIX) : NULL;
    for (size_t i = 0; i < env_table.count; i++)
        if (strcmp(env_table.names[i], name) == 0 || (short_name && strcmp(env_table.names[i], short_name) == 0))
            return env_table.values[i];
    return NULL;
}

/* Input: NAME=VALUE lines. A line without '=' is skipped; a value ends at the
 * newline (or at a NUL byte, as in a real environment). */
static int load_env(const uint8_t *data, size_t size)
{
    env_table.count = 0;
    env_table.text = malloc(size + 1);
    if (!env_table.text)
        return -1;
    memcpy(env_table.text, data, size);
    env_table.text[size] = '\0';
    char *p = env_table.text, *end = env_table.text + size;
    while (p < end && env_table.count < MAX_VARS) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl)
            *nl = '\0';
        char *eq = strchr(p, '=');
        if (eq) {
            *eq = '\0';
            env_table.names[env_table.count] = p;
            env_table.values[env_table.count] = eq + 1;
            env_table.count++;
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    return 0;
}

static void check_config(const struct proxy_config *cfg)
{
    CHECK(cfg->upstream_url != NULL);
    CHECK(strncmp(cfg->upstream_url, "http://", 7) == 0 || strncmp(cfg->upstream_url, "https://", 8) == 0);
    size_t n = strlen(cfg->upstream_url);
    CHECK(cfg->upstream_url[n - 1] != '/');
    /* base_path: "" for the root (route.h), else absolute without a trailing '/'. */
    CHECK(cfg->base_path != NULL);
    n = strlen(cfg->base_path);
    CHECK(n == 0 || (cfg->base_path[0] == '/' && n > 1 && cfg->base_path[n - 1] != '/'));
    CHECK(cfg->proxy_timeout_ms > 0);
    CHECK(cfg->keepalive_ms >= 0);
    CHECK(cfg->max_body >= 1 && cfg->max_body <= (1ULL << 32));
    CHECK(cfg->max_streams >= 1 && cfg->max_streams <= 1000000);
    CHECK(cfg->workers >= 1 && cfg->workers <= 1024);

    char *json = config_json(cfg);
    if (!json)
        return; /* out of memory is allowed to happen */
    json_object *o = json_tokener_parse(json);
    CHECK(o != NULL && json_object_is_type(o, json_type_object));
    json_object_put(o);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (load_env(data, size))
        return 0;

    /* An error buffer of varying size, heap-allocated to the byte, so that
     * writing past it is caught. */
    size_t errlen = 1 + size % 200;
    char *err = malloc(errlen);
    if (!err)
        goto out;
    memset(err, 0, errlen);

    struct proxy_config cfg;
    memset(&cfg, 0x5a, sizeof cfg); /* load must not rely on a zeroed struct */
    enum proxy_err rc = config_load(&cfg, fuzz_env, err, errlen);
    if (rc == PROXY_OK) {
        check_config(&cfg);
    } else {
        CHECK(rc == PROXY_ERR_INVALID || rc == PROXY_ERR_NOMEM);
        /* One sentence naming the variable, cut to fit the buffer. */
        CHECK(memchr(err, '\0', errlen) != NULL);
        CHECK(errlen == 1 || err[0] != '\0');
        if (errlen >= 128)
            CHECK(strstr(err, PREFIX) != NULL);
    }
    config_free(&cfg);
    config_free(&cfg); /* idempotent, per config.h */
    config_free(NULL);
    free(err);

out:
    free(env_table.text);
    env_table.text = NULL;
    env_table.count = 0;
    return 0;
}
