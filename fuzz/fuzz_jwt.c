/* fuzz_jwt.c: libFuzzer harness for JWT verification (jwt_verify): the
 * input as a token, and the input as the claims of a token signed here, so
 * that the claim checks behind the signature are reached too. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjose/cjose.h>

#include "auth/jwt.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Test-only values, also used by the seeds in fuzz/corpus/jwt: the HS256
 * key is public on purpose so the seeds carry valid signatures. The RSA and
 * EC keys are made afresh at every start. */
#define FUZZ_HS256_KEY "fuzz-only HS256 key, public on purpose: not a secret"
#define FUZZ_ISSUER "https://issuer.fuzz.test"
#define FUZZ_AUDIENCE "fuzz-api"
#define FUZZ_NOW ((time_t)1700000000)

static char dir[] = "/tmp/fuzz-jwt-XXXXXX";
static char jwks_path[64], secret_path[64];
static struct jwt_verifier *verifier;
static cjose_jwk_t *rsa, *ec, *hmac;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_jwt: %s\n", what);
    exit(1);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        fail("cannot write the key files");
}

/* The verifier re-reads its files: they stay until the process ends. */
static void cleanup(void)
{
    jwt_verifier_free(verifier);
    cjose_jwk_release(rsa);
    cjose_jwk_release(ec);
    cjose_jwk_release(hmac);
    unlink(jwks_path);
    unlink(secret_path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const uint8_t e[] = {0x01, 0x00, 0x01};
    cjose_err err;
    if (!mkdtemp(dir))
        fail("mkdtemp");
    snprintf(jwks_path, sizeof jwks_path, "%s/jwks.json", dir);
    snprintf(secret_path, sizeof secret_path, "%s/secret", dir);
    rsa = cjose_jwk_create_RSA_random(2048, e, sizeof e, &err);
    ec = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &err);
    hmac = cjose_jwk_create_oct_spec((const uint8_t *)FUZZ_HS256_KEY, strlen(FUZZ_HS256_KEY), &err);
    if (!rsa || !ec || !hmac || !cjose_jwk_set_kid(rsa, "fuzz-rsa", 8, &err) ||
        !cjose_jwk_set_kid(ec, "fuzz-ec", 7, &err))
        fail("cannot make the keys");
    char *rsa_json = cjose_jwk_to_json(rsa, false, &err), *ec_json = cjose_jwk_to_json(ec, false, &err);
    if (!rsa_json || !ec_json)
        fail("cannot export the keys");
    size_t len = strlen(rsa_json) + strlen(ec_json) + 32;
    char *jwks = malloc(len);
    if (!jwks)
        fail("out of memory");
    snprintf(jwks, len, "{\"keys\":[%s,%s]}\n", rsa_json, ec_json);
    write_file(jwks_path, jwks);
    write_file(secret_path, FUZZ_HS256_KEY "\n");
    free(jwks);
    free(rsa_json);
    free(ec_json);
    struct jwt_settings s = {jwks_path, secret_path, FUZZ_ISSUER, FUZZ_AUDIENCE, NULL, 30};
    char why[512];
    if (!(verifier = jwt_verifier_new(&s, why, sizeof why)))
        fail(why);
    atexit(cleanup);
    return 0;
}

/* check: one verification and the contract of jwt.h around it. */
static void check(const char *token, size_t token_len)
{
    struct credential out = {NULL, 4242};
    char why[256] = "";
    enum proxy_err v = jwt_verify(verifier, token, FUZZ_NOW, &out, why, sizeof why);
    CHECK(v == PROXY_OK || v == PROXY_ERR_REFUSED || v == PROXY_ERR_NOMEM);
    if (v == PROXY_OK) {
        CHECK(out.user);
        size_t n = strlen(out.user);
        CHECK(n >= 1 && n <= JWT_USER_MAX);
        for (size_t i = 0; i < n; i++)
            CHECK(out.user[i] >= 0x20 && out.user[i] <= 0x7e);
        /* exp + skew must not have passed. */
        CHECK(out.expires >= FUZZ_NOW - 30);
        CHECK(token_len <= JWT_MAX);
        credential_clear(&out);
        return;
    }
    CHECK(!out.user && out.expires == 4242);
    CHECK(strncmp(why, "jwt: ", 5) == 0);
    /* why goes to the log: never the token (no message holds a base64url
     * run of 24), nor anything unprintable. */
    CHECK(token_len < 24 || !strstr(why, token));
    for (const char *p = why; *p; p++)
        CHECK(*p >= 0x20 && *p <= 0x7e);
}

/* Input: any bytes. First, up to the first NUL, a token as the client sends
 * it. Then all of it as the payload of a token this harness signs: byte 0
 * picks the key (RS256 with a kid, ES256 without, HS256 otherwise) so that
 * every check after the signature sees fuzzed claims. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    check(text, strlen(text));

    /* Past this the token is too long for the verifier anyway. */
    if (size > 0 && size <= 4096) {
        cjose_err err;
        cjose_header_t *h = cjose_header_new(&err);
        const cjose_jwk_t *key = data[0] % 8 == 0 ? rsa : data[0] % 8 == 1 ? ec : hmac;
        const char *alg = key == rsa ? CJOSE_HDR_ALG_RS256 : key == ec ? CJOSE_HDR_ALG_ES256 : CJOSE_HDR_ALG_HS256;
        if (h && cjose_header_set(h, CJOSE_HDR_ALG, alg, &err) &&
            (key != rsa || cjose_header_set(h, CJOSE_HDR_KID, "fuzz-rsa", &err))) {
            cjose_jws_t *jws = cjose_jws_sign(key, h, data, size, &err);
            const char *compact = NULL;
            if (jws && cjose_jws_export(jws, &compact, &err) && compact)
                check(compact, strlen(compact));
            cjose_jws_release(jws);
        }
        cjose_header_release(h);
    }
    free(text);
    return 0;
}
