/* test_jwt.c: JWT verification against keys made at run time: good tokens
 * of each algorithm, every claim check, forged and malformed tokens, the
 * settings refused at start, and key rotation through the files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjose/cjose.h>
#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "auth/jwt.h"
#include "unit.h"

#define NOW ((time_t)1700000000)
#define ISS "https://issuer.test"
#define AUD "flow-api"
#define SKEW 30
#define ABSENT INT_MIN

static char dir[] = "/tmp/test-jwt-XXXXXX";

/* Made by setup(): nothing here outlives the test run. */
static cjose_jwk_t *rsa1, *rsa2, *ec1, *ec2, *secret_key, *wrong_secret_key, *rsa1_pem_key, *rsa1_jwk_key;
static unsigned char secret[48];
static char jwks_path[160], jwks_only_path[160], secret_path[160];
static char user256[JWT_USER_MAX + 1], user257[JWT_USER_MAX + 2];

enum { V_MAIN, V_JWKS_ONLY, V_SECRET_ONLY, V_COUNT };
static struct jwt_verifier *verifiers[V_COUNT];

/* ---- helpers ---- */

static char *b64(const void *data, size_t len)
{
    char *out = NULL;
    size_t outlen = 0;
    cjose_err err;
    assert_true(cjose_base64url_encode(data, len, &out, &outlen, &err));
    return out;
}

static void write_file(const char *path, const void *data, size_t len)
{
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0); /* a new inode, as deployment tools do */
}

static void write_text(const char *path, const char *text)
{
    write_file(path, text, strlen(text));
}

/* The reload check runs at most once a second. */
static void past_check_interval(void)
{
    usleep(1100 * 1000);
}

static cjose_jwk_t *rsa_key(size_t bits, const char *kid)
{
    static const uint8_t e[] = {0x01, 0x00, 0x01};
    cjose_err err;
    cjose_jwk_t *k = cjose_jwk_create_RSA_random(bits, e, sizeof e, &err);
    assert_non_null(k);
    assert_true(cjose_jwk_set_kid(k, kid, strlen(kid), &err));
    return k;
}

static cjose_jwk_t *ec_key(const char *kid)
{
    cjose_err err;
    cjose_jwk_t *k = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &err);
    assert_non_null(k);
    assert_true(cjose_jwk_set_kid(k, kid, strlen(kid), &err));
    return k;
}

static cjose_jwk_t *oct_key(const void *data, size_t len)
{
    cjose_err err;
    cjose_jwk_t *k = cjose_jwk_create_oct_spec(data, len, &err);
    assert_non_null(k);
    return k;
}

/* jwk_json: key k as a JWK object (public members only unless priv), with
 * extra members added from the JSON object text extra (may be NULL). */
static json_object *jwk_json(const cjose_jwk_t *k, bool priv, const char *extra)
{
    cjose_err err;
    char *text = cjose_jwk_to_json(k, priv, &err);
    assert_non_null(text);
    json_object *o = json_tokener_parse(text);
    free(text);
    assert_non_null(o);
    if (extra) {
        json_object *x = json_tokener_parse(extra);
        assert_non_null(x);
        json_object_object_foreach(x, name, value) json_object_object_add(o, name, json_object_get(value));
        json_object_put(x);
    }
    return o;
}

/* write_jwks: {"keys": [...]} of the given JWK objects (consumed). */
static void write_jwks(const char *path, json_object **keys, size_t n)
{
    json_object *root = json_object_new_object(), *arr = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(arr, keys[i]);
    json_object_object_add(root, "keys", arr);
    write_text(path, json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
    json_object_put(root);
}

/* rsa_public_pem: the SubjectPublicKeyInfo PEM of RSA key k: the bytes an
 * algorithm-confusion attacker uses as an HMAC secret. Built from the JWK's
 * n and e with OpenSSL 3's non-deprecated EVP_PKEY_fromdata. */
static char *rsa_public_pem(const cjose_jwk_t *k)
{
    json_object *pub = jwk_json(k, false, NULL);
    BIGNUM *bn[2] = {NULL, NULL};
    const char *names[2] = {"n", "e"};
    for (int i = 0; i < 2; i++) {
        json_object *m;
        assert_true(json_object_object_get_ex(pub, names[i], &m));
        uint8_t *raw = NULL;
        size_t len = 0;
        cjose_err err;
        assert_true(cjose_base64url_decode(json_object_get_string(m), (size_t)json_object_get_string_len(m), &raw,
                                           &len, &err));
        bn[i] = BN_bin2bn(raw, (int)len, NULL);
        assert_non_null(bn[i]);
        free(raw);
    }
    json_object_put(pub);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    assert_non_null(bld);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn[0]), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn[1]), 1);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    assert_non_null(params);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pkey = NULL;
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params), 1);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    assert_true(len > 0);
    char *pem = strndup(data, (size_t)len);
    assert_non_null(strstr(pem, "-----BEGIN PUBLIC KEY-----"));
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn[0]);
    BN_free(bn[1]);
    return pem;
}

/* ---- tokens ---- */

/* What the payload carries; times are seconds from NOW. */
struct claims {
    int exp, nbf;       /* ABSENT: not there */
    const char *iss;    /* NULL: not there */
    const char *aud;    /* JSON text, NULL: not there */
    const char *email;  /* NULL: not there */
    const char *sub;    /* NULL: not there */
    const char *extra;  /* JSON members text added as is (after the others), or NULL */
    const char *raw;    /* the whole payload instead of all of the above */
};

#define CLAIMS(exp_, nbf_, iss_, aud_, email_, sub_) {exp_, nbf_, iss_, aud_, email_, sub_, NULL, NULL}
#define GOOD CLAIMS(300, ABSENT, ISS, "\"" AUD "\"", "alice@example.test", "user-1")
#define RAW(text) {0, 0, NULL, NULL, NULL, NULL, NULL, text}
#define EXTRA(text) {300, ABSENT, ISS, "\"" AUD "\"", "alice@example.test", "user-1", text, NULL}

static char *payload(const struct claims *c)
{
    if (c->raw)
        return strdup(c->raw);
    const char *parts[] = {c->iss, c->aud, c->email, c->sub, c->extra};
    size_t size = 256, o = 0;
    for (size_t i = 0; i < UNIT_LEN(parts); i++)
        size += parts[i] ? strlen(parts[i]) + 16 : 0;
    char *buf = malloc(size);
    assert_non_null(buf);
    o += (size_t)snprintf(buf + o, size - o, "{\"iat\":%lld", (long long)NOW - 10);
    if (c->exp != ABSENT)
        o += (size_t)snprintf(buf + o, size - o, ",\"exp\":%lld", (long long)NOW + c->exp);
    if (c->nbf != ABSENT)
        o += (size_t)snprintf(buf + o, size - o, ",\"nbf\":%lld", (long long)NOW + c->nbf);
    if (c->iss)
        o += (size_t)snprintf(buf + o, size - o, ",\"iss\":\"%s\"", c->iss);
    if (c->aud)
        o += (size_t)snprintf(buf + o, size - o, ",\"aud\":%s", c->aud);
    if (c->email)
        o += (size_t)snprintf(buf + o, size - o, ",\"email\":\"%s\"", c->email);
    if (c->sub)
        o += (size_t)snprintf(buf + o, size - o, ",\"sub\":\"%s\"", c->sub);
    if (c->extra)
        o += (size_t)snprintf(buf + o, size - o, ",%s", c->extra);
    snprintf(buf + o, size - o, "}");
    return buf;
}

/* sign: a compact JWS of text signed by key with cjose; kid NULL for none. */
static char *sign(const cjose_jwk_t *key, const char *alg, const char *kid, const char *text)
{
    cjose_err err;
    cjose_header_t *h = cjose_header_new(&err);
    assert_non_null(h);
    assert_true(cjose_header_set(h, CJOSE_HDR_ALG, alg, &err));
    if (kid)
        assert_true(cjose_header_set(h, CJOSE_HDR_KID, kid, &err));
    cjose_jws_t *jws = cjose_jws_sign(key, h, (const uint8_t *)text, strlen(text), &err);
    assert_non_null(jws);
    const char *compact = NULL;
    assert_true(cjose_jws_export(jws, &compact, &err));
    char *token = strdup(compact);
    cjose_jws_release(jws);
    cjose_header_release(h);
    return token;
}

/* assemble: header text, payload text and signature bytes, by hand. */
static char *assemble(const char *header, const char *text, const void *sig, size_t sig_len)
{
    char *h = b64(header, strlen(header)), *p = b64(text, strlen(text)), *s = b64(sig, sig_len);
    size_t len = strlen(h) + strlen(p) + strlen(s) + 3;
    char *token = malloc(len);
    snprintf(token, len, "%s.%s.%s", h, p, s);
    free(h);
    free(p);
    free(s);
    return token;
}

/* with_segment: token with segment i (0 header, 1 payload, 2 signature) replaced. */
static char *with_segment(const char *token, int i, const char *segment)
{
    const char *d1 = strchr(token, '.'), *d2 = strchr(d1 + 1, '.');
    const char *seg[3][2] = {{token, d1}, {d1 + 1, d2}, {d2 + 1, token + strlen(token)}};
    size_t len = strlen(token) + strlen(segment) + 1;
    char *out = malloc(len);
    out[0] = '\0';
    for (int k = 0; k < 3; k++) {
        if (k)
            strcat(out, ".");
        if (k == i)
            strcat(out, segment);
        else
            strncat(out, seg[k][0], (size_t)(seg[k][1] - seg[k][0]));
    }
    return out;
}

static const char *segment(const char *token, int i, char *out, size_t outlen)
{
    const char *p = token;
    for (int k = 0; k < i; k++)
        p = strchr(p, '.') + 1;
    size_t n = strcspn(p, ".");
    snprintf(out, outlen, "%.*s", (int)(n < outlen ? n : outlen - 1), p);
    return out;
}

/* ---- setup ---- */

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(jwks_path, sizeof jwks_path, "%s/jwks.json", dir);
    snprintf(jwks_only_path, sizeof jwks_only_path, "%s/jwks-only.json", dir);
    snprintf(secret_path, sizeof secret_path, "%s/secret", dir);

    rsa1 = rsa_key(2048, "rsa1");
    rsa2 = rsa_key(2048, "rsa2");
    ec1 = ec_key("ec1");
    ec2 = ec_key("ec2");
    /* Printable, so that the file's trailing newline is clearly not key. */
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    assert_int_equal(RAND_bytes(secret, sizeof secret), 1);
    for (size_t i = 0; i < sizeof secret; i++)
        secret[i] = (unsigned char)alphabet[secret[i] % (sizeof alphabet - 1)];
    secret_key = oct_key(secret, sizeof secret);
    unsigned char wrong[sizeof secret];
    memcpy(wrong, secret, sizeof wrong);
    wrong[0] ^= 1;
    wrong_secret_key = oct_key(wrong, sizeof wrong);
    char *pem = rsa_public_pem(rsa1);
    rsa1_pem_key = oct_key(pem, strlen(pem));
    free(pem);
    cjose_err err;
    char *jwk_text = cjose_jwk_to_json(rsa1, false, &err);
    rsa1_jwk_key = oct_key(jwk_text, strlen(jwk_text));
    free(jwk_text);

    /* The main JWKS: rsa1 and ec1 usable; an oct key, an encryption key, a
     * key for another algorithm, a P-384 key and a 1024-bit key skipped. */
    cjose_jwk_t *weak = rsa_key(1024, "weak");
    cjose_jwk_t *p384 = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_384, &err);
    assert_non_null(p384);
    assert_true(cjose_jwk_set_kid(p384, "p384", 4, &err));
    json_object *keys[] = {
        jwk_json(rsa1, false, "{\"use\":\"sig\",\"alg\":\"RS256\"}"),
        jwk_json(ec1, false, NULL),
        jwk_json(secret_key, true, "{\"kid\":\"oct1\"}"),
        jwk_json(rsa2, false, "{\"kid\":\"enc1\",\"use\":\"enc\"}"),
        jwk_json(rsa2, false, "{\"kid\":\"rs512\",\"alg\":\"RS512\"}"),
        jwk_json(ec2, false, "{\"kid\":\"ec-as-rs\",\"alg\":\"RS256\"}"),
        jwk_json(p384, false, NULL),
        jwk_json(weak, false, NULL),
    };
    write_jwks(jwks_path, keys, UNIT_LEN(keys));
    cjose_jwk_release(weak);
    cjose_jwk_release(p384);
    json_object *only[] = {jwk_json(rsa1, false, NULL), jwk_json(ec1, false, NULL)};
    write_jwks(jwks_only_path, only, UNIT_LEN(only));
    char text[sizeof secret + 2];
    memcpy(text, secret, sizeof secret);
    text[sizeof secret] = '\n';
    write_file(secret_path, text, sizeof secret + 1);

    struct jwt_settings s[V_COUNT] = {
        [V_MAIN] = {jwks_path, secret_path, ISS, AUD, NULL, SKEW},
        [V_JWKS_ONLY] = {jwks_only_path, NULL, NULL, NULL, NULL, SKEW},
        [V_SECRET_ONLY] = {NULL, secret_path, NULL, NULL, "preferred_username", 0},
    };
    for (int i = 0; i < V_COUNT; i++) {
        char e[512] = "";
        verifiers[i] = jwt_verifier_new(&s[i], e, sizeof e);
        if (!verifiers[i]) {
            print_error("verifier %d: %s\n", i, e);
            return -1;
        }
    }
    memset(user256, 'u', JWT_USER_MAX);
    memset(user257, 'u', JWT_USER_MAX + 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < V_COUNT; i++)
        jwt_verifier_free(verifiers[i]);
    cjose_jwk_t *all[] = {rsa1, rsa2, ec1, ec2, secret_key, wrong_secret_key, rsa1_pem_key, rsa1_jwk_key};
    for (size_t i = 0; i < UNIT_LEN(all); i++)
        cjose_jwk_release(all[i]);
    /* Every file a test may leave behind when an assertion cuts it short. */
    static const char *const names[] = {"jwks.json", "jwks-only.json", "secret", "settings-jwks", "settings-secret",
                                        "private-jwks", "rotating-jwks", "rotating-secret", "shared-jwks", "stderr"};
    for (size_t i = 0; i < UNIT_LEN(names); i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
        snprintf(p, sizeof p, "%s/%s.tmp", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}

/* ---- signed tokens, one row each ---- */

enum signer {
    BY_RSA1, BY_RSA2, BY_EC1, BY_EC2, BY_SECRET, BY_WRONG_SECRET,
    BY_RSA1_PEM, /* HS256 keyed with rsa1's public key PEM */
    BY_RSA1_JWK, /* HS256 keyed with rsa1's public JWK text */
    BY_HAND,     /* header as given (hdr), junk signature of sig_len bytes */
};

enum mangle {
    M_NONE,
    M_FLIP_SIG,   /* one signature character changed */
    M_PAYLOAD,    /* payload replaced, signature kept */
    M_SWAP_SIG,   /* the signature of another payload, same key */
    M_NO_SIG,     /* the signature segment emptied */
    M_SHORT_SIG,  /* the signature cut by 4 characters (3 bytes) */
};

struct sign_row {
    const char *name;
    int verifier;
    enum signer by;
    const char *alg; /* BY_HAND: the whole header JSON */
    const char *kid; /* NULL: none */
    struct claims c;
    enum mangle mangle;
    enum proxy_err want;
    const char *user; /* PROXY_OK: the user (expires is then exp) */
    const char *why;  /* PROXY_ERR_REFUSED: a substring of why */
};

#define OK PROXY_OK
#define NO PROXY_ERR_REFUSED
#define ALICE "alice@example.test"
#define BAD_SIG "jwt: signature does not verify"

static const struct sign_row sign_rows[] = {
    /* each algorithm */
    {"RS256", V_MAIN, BY_RSA1, "RS256", "rsa1", GOOD, M_NONE, OK, ALICE, NULL},
    {"ES256", V_MAIN, BY_EC1, "ES256", "ec1", GOOD, M_NONE, OK, ALICE, NULL},
    {"HS256", V_MAIN, BY_SECRET, "HS256", NULL, GOOD, M_NONE, OK, ALICE, NULL},
    {"RS256 without kid", V_MAIN, BY_RSA1, "RS256", NULL, GOOD, M_NONE, OK, ALICE, NULL},
    {"ES256 without kid", V_MAIN, BY_EC1, "ES256", NULL, GOOD, M_NONE, OK, ALICE, NULL},
    {"HS256, a kid naming no JWKS key", V_MAIN, BY_SECRET, "HS256", "hmac-1", GOOD, M_NONE, OK, ALICE, NULL},
    /* wrong keys */
    {"RS256 by a key not in the JWKS, its kid", V_MAIN, BY_RSA2, "RS256", "rsa1", GOOD, M_NONE, NO, NULL, BAD_SIG},
    {"RS256 by a key not in the JWKS, no kid", V_MAIN, BY_RSA2, "RS256", NULL, GOOD, M_NONE, NO, NULL, BAD_SIG},
    {"ES256 by a key not in the JWKS", V_MAIN, BY_EC2, "ES256", "ec1", GOOD, M_NONE, NO, NULL, BAD_SIG},
    {"HS256 by a wrong secret", V_MAIN, BY_WRONG_SECRET, "HS256", NULL, GOOD, M_NONE, NO, NULL, BAD_SIG},
    /* exp and nbf, with 30 s of skew */
    {"expired", V_MAIN, BY_RSA1, "RS256", "rsa1", CLAIMS(-31, ABSENT, ISS, "\"" AUD "\"", ALICE, NULL), M_NONE, NO,
     NULL, "jwt: expired 31 s ago"},
    {"expired within skew", V_MAIN, BY_RSA1, "RS256", "rsa1", CLAIMS(-30, ABSENT, ISS, "\"" AUD "\"", ALICE, NULL),
     M_NONE, OK, ALICE, NULL},
    {"long expired", V_MAIN, BY_SECRET, "HS256", NULL, CLAIMS(-86400, ABSENT, ISS, "\"" AUD "\"", ALICE, NULL),
     M_NONE, NO, NULL, "jwt: expired 86400 s ago"},
    {"not yet valid", V_MAIN, BY_EC1, "ES256", "ec1", CLAIMS(300, 31, ISS, "\"" AUD "\"", ALICE, NULL), M_NONE, NO,
     NULL, "jwt: not valid before"},
    {"not yet valid, within skew", V_MAIN, BY_EC1, "ES256", "ec1", CLAIMS(300, 30, ISS, "\"" AUD "\"", ALICE, NULL),
     M_NONE, OK, ALICE, NULL},
    {"valid since", V_MAIN, BY_EC1, "ES256", "ec1", CLAIMS(300, -100, ISS, "\"" AUD "\"", ALICE, NULL), M_NONE, OK,
     ALICE, NULL},
    {"no exp", V_MAIN, BY_RSA1, "RS256", "rsa1", CLAIMS(ABSENT, ABSENT, ISS, "\"" AUD "\"", ALICE, NULL), M_NONE, NO,
     NULL, "jwt: no exp claim"},
    {"exp a string", V_MAIN, BY_SECRET, "HS256", NULL, RAW("{\"exp\":\"1700000300\",\"sub\":\"u\"}"), M_NONE, NO,
     NULL, "jwt: exp is not a number"},
    {"exp null", V_SECRET_ONLY, BY_SECRET, "HS256", NULL, RAW("{\"exp\":null,\"sub\":\"u\"}"), M_NONE, NO, NULL,
     "jwt: exp is not a number"},
    {"exp fractional, just past", V_SECRET_ONLY, BY_SECRET, "HS256", NULL, RAW("{\"exp\":1699999999.5,\"sub\":\"u\"}"),
     M_NONE, NO, NULL, "jwt: expired"},
    {"exp fractional, just ahead", V_SECRET_ONLY, BY_SECRET, "HS256", NULL, RAW("{\"exp\":1700000000.5,\"sub\":\"u\"}"),
     M_NONE, OK, "u", NULL},
    {"nbf fractional, just ahead", V_SECRET_ONLY, BY_SECRET, "HS256", NULL,
     RAW("{\"exp\":1700000300,\"nbf\":1700000000.5,\"sub\":\"u\"}"), M_NONE, NO, NULL, "jwt: not valid before"},
    {"exp past int64", V_SECRET_ONLY, BY_SECRET, "HS256", NULL, RAW("{\"exp\":99999999999999999999999,\"sub\":\"u\"}"),
     M_NONE, OK, "u", NULL},
    {"nbf a string", V_MAIN, BY_SECRET, "HS256", NULL, EXTRA("\"nbf\":\"now\""), M_NONE, NO, NULL,
     "jwt: nbf is not a number"},
    {"no skew: one second late", V_SECRET_ONLY, BY_SECRET, "HS256", NULL, CLAIMS(-1, ABSENT, NULL, NULL, NULL, "u"),
     M_NONE, NO, NULL, "jwt: expired 1 s ago"},
    {"no skew: the last second", V_SECRET_ONLY, BY_SECRET, "HS256", NULL, CLAIMS(0, ABSENT, NULL, NULL, NULL, "u"),
     M_NONE, OK, "u", NULL},
    /* iss and aud */
    {"wrong issuer", V_MAIN, BY_RSA1, "RS256", "rsa1", CLAIMS(300, ABSENT, "https://evil.test", "\"" AUD "\"", ALICE,
     NULL), M_NONE, NO, NULL, "jwt: issuer mismatch"},
    {"issuer a prefix", V_MAIN, BY_RSA1, "RS256", "rsa1", CLAIMS(300, ABSENT, "https://issuer.tes", "\"" AUD "\"",
     ALICE, NULL), M_NONE, NO, NULL, "jwt: issuer mismatch"},
    {"no issuer", V_MAIN, BY_RSA1, "RS256", "rsa1", CLAIMS(300, ABSENT, NULL, "\"" AUD "\"", ALICE, NULL), M_NONE, NO,
     NULL, "jwt: no iss claim"},
    {"wrong audience", V_MAIN, BY_RSA1, "RS256", "rsa1", CLAIMS(300, ABSENT, ISS, "\"other-api\"", ALICE, NULL),
     M_NONE, NO, NULL, "jwt: audience mismatch"},
    {"audience in an array", V_MAIN, BY_RSA1, "RS256", "rsa1", CLAIMS(300, ABSENT, ISS, "[\"other\",\"" AUD "\"]",
     ALICE, NULL), M_NONE, OK, ALICE, NULL},
    {"audience not in the array", V_MAIN, BY_RSA1, "RS256", "rsa1", CLAIMS(300, ABSENT, ISS,
     "[\"other\",\"flow-ap\",1,null]", ALICE, NULL), M_NONE, NO, NULL, "jwt: audience mismatch"},
    {"audience an empty array", V_MAIN, BY_RSA1, "RS256", "rsa1", CLAIMS(300, ABSENT, ISS, "[]", ALICE, NULL), M_NONE,
     NO, NULL, "jwt: audience mismatch"},
    {"audience a number", V_MAIN, BY_RSA1, "RS256", "rsa1", CLAIMS(300, ABSENT, ISS, "7", ALICE, NULL), M_NONE, NO,
     NULL, "jwt: audience mismatch"},
    {"no audience", V_MAIN, BY_RSA1, "RS256", "rsa1", CLAIMS(300, ABSENT, ISS, NULL, ALICE, NULL), M_NONE, NO, NULL,
     "jwt: no aud claim"},
    {"iss and aud not configured", V_SECRET_ONLY, BY_SECRET, "HS256", NULL, CLAIMS(300, ABSENT, "x", "\"y\"", NULL,
     "u"), M_NONE, OK, "u", NULL},
    /* the user */
    {"user falls back to sub", V_MAIN, BY_RSA1, "RS256", "rsa1", CLAIMS(300, ABSENT, ISS, "\"" AUD "\"", NULL,
     "user-1"), M_NONE, OK, "user-1", NULL},
    {"configured user claim", V_SECRET_ONLY, BY_SECRET, "HS256", NULL, EXTRA("\"preferred_username\":\"pat\""),
     M_NONE, OK, "pat", NULL},
    {"configured claim absent: sub", V_SECRET_ONLY, BY_SECRET, "HS256", NULL, GOOD, M_NONE, OK, "user-1", NULL},
    {"no user", V_MAIN, BY_RSA1, "RS256", "rsa1", CLAIMS(300, ABSENT, ISS, "\"" AUD "\"", NULL, NULL), M_NONE, NO,
     NULL, "jwt: no user: neither email nor sub"},
    {"email a number", V_MAIN, BY_SECRET, "HS256", NULL, RAW("{\"exp\":1700000300,\"iss\":\"" ISS "\",\"aud\":\"" AUD
     "\",\"email\":5,\"sub\":\"u\"}"), M_NONE, NO, NULL, "jwt: the email claim is not printable ASCII"},
    {"email null: sub", V_MAIN, BY_SECRET, "HS256", NULL, RAW("{\"exp\":1700000300,\"iss\":\"" ISS "\",\"aud\":\"" AUD
     "\",\"email\":null,\"sub\":\"u\"}"), M_NONE, OK, "u", NULL},
    {"user with a newline", V_MAIN, BY_SECRET, "HS256", NULL, CLAIMS(300, ABSENT, ISS, "\"" AUD "\"",
     "a\\r\\nX-Admin: 1", NULL), M_NONE, NO, NULL, "jwt: the email claim is not printable ASCII"},
    {"user with a NUL", V_MAIN, BY_SECRET, "HS256", NULL, CLAIMS(300, ABSENT, ISS, "\"" AUD "\"", "a\\u0000b", NULL),
     M_NONE, NO, NULL, "not printable ASCII"},
    {"user not ASCII", V_MAIN, BY_SECRET, "HS256", NULL, CLAIMS(300, ABSENT, ISS, "\"" AUD "\"", "z\\u00e9", NULL),
     M_NONE, NO, NULL, "not printable ASCII"},
    {"user empty", V_MAIN, BY_SECRET, "HS256", NULL, CLAIMS(300, ABSENT, ISS, "\"" AUD "\"", "", "u"), M_NONE, NO,
     NULL, "not printable ASCII"},
    {"user with a leading space", V_MAIN, BY_SECRET, "HS256", NULL, CLAIMS(300, ABSENT, ISS, "\"" AUD "\"", " a",
     NULL), M_NONE, NO, NULL, "not printable ASCII"},
    {"user 256 bytes", V_MAIN, BY_SECRET, "HS256", NULL, CLAIMS(300, ABSENT, ISS, "\"" AUD "\"", user256, NULL),
     M_NONE, OK, user256, NULL},
    {"user 257 bytes", V_MAIN, BY_SECRET, "HS256", NULL, CLAIMS(300, ABSENT, ISS, "\"" AUD "\"", user257, NULL),
     M_NONE, NO, NULL, "not printable ASCII of 1 to 256 bytes"},
    /* forgeries */
    {"RS256 signature flipped", V_MAIN, BY_RSA1, "RS256", "rsa1", GOOD, M_FLIP_SIG, NO, NULL, BAD_SIG},
    {"ES256 signature flipped", V_MAIN, BY_EC1, "ES256", "ec1", GOOD, M_FLIP_SIG, NO, NULL, BAD_SIG},
    {"HS256 signature flipped", V_MAIN, BY_SECRET, "HS256", NULL, GOOD, M_FLIP_SIG, NO, NULL, BAD_SIG},
    {"RS256 payload tampered", V_MAIN, BY_RSA1, "RS256", "rsa1", GOOD, M_PAYLOAD, NO, NULL, BAD_SIG},
    {"ES256 payload tampered", V_MAIN, BY_EC1, "ES256", "ec1", GOOD, M_PAYLOAD, NO, NULL, BAD_SIG},
    {"HS256 payload tampered", V_MAIN, BY_SECRET, "HS256", NULL, GOOD, M_PAYLOAD, NO, NULL, BAD_SIG},
    {"RS256 signature swapped", V_MAIN, BY_RSA1, "RS256", "rsa1", GOOD, M_SWAP_SIG, NO, NULL, BAD_SIG},
    {"ES256 signature swapped", V_MAIN, BY_EC1, "ES256", "ec1", GOOD, M_SWAP_SIG, NO, NULL, BAD_SIG},
    {"RS256 signature cut", V_MAIN, BY_RSA1, "RS256", "rsa1", GOOD, M_SHORT_SIG, NO, NULL, BAD_SIG},
    {"ES256 signature cut", V_MAIN, BY_EC1, "ES256", "ec1", GOOD, M_SHORT_SIG, NO, NULL, BAD_SIG},
    {"RS256 signature removed", V_MAIN, BY_RSA1, "RS256", "rsa1", GOOD, M_NO_SIG, NO, NULL, "jwt: no signature"},
    {"alg none", V_MAIN, BY_HAND, "{\"alg\":\"none\"}", NULL, GOOD, M_NO_SIG, NO, NULL, "jwt: alg none refused"},
    {"alg None with a signature", V_MAIN, BY_HAND, "{\"alg\":\"None\",\"kid\":\"rsa1\"}", NULL, GOOD, M_NONE, NO, NULL,
     "jwt: alg none refused"},
    {"alg NONE", V_SECRET_ONLY, BY_HAND, "{\"typ\":\"JWT\",\"alg\":\"NONE\"}", NULL, GOOD, M_NO_SIG, NO, NULL,
     "jwt: alg none refused"},
    {"unknown kid", V_MAIN, BY_RSA1, "RS256", "rsa9", GOOD, M_NONE, NO, NULL, "jwt: unknown kid"},
    {"kid of an oct key", V_MAIN, BY_HAND, "{\"alg\":\"RS256\",\"kid\":\"oct1\"}", NULL, GOOD, M_NONE, NO, NULL,
     "jwt: unknown kid"},
    {"kid of an encryption key", V_MAIN, BY_RSA2, "RS256", "enc1", GOOD, M_NONE, NO, NULL, "jwt: unknown kid"},
    {"kid of an RS512 key", V_MAIN, BY_RSA2, "RS256", "rs512", GOOD, M_NONE, NO, NULL, "jwt: unknown kid"},
    {"kid of an EC key marked RS256", V_MAIN, BY_EC2, "ES256", "ec-as-rs", GOOD, M_NONE, NO, NULL, "jwt: unknown kid"},
    {"kid of a P-384 key", V_MAIN, BY_HAND, "{\"alg\":\"ES256\",\"kid\":\"p384\"}", NULL, GOOD, M_NONE, NO, NULL,
     "jwt: unknown kid"},
    {"kid of a 1024-bit key", V_MAIN, BY_HAND, "{\"alg\":\"RS256\",\"kid\":\"weak\"}", NULL, GOOD, M_NONE, NO, NULL,
     "jwt: unknown kid"},
    /* algorithm confusion */
    {"HS256 keyed with the RSA PEM, its kid", V_MAIN, BY_RSA1_PEM, "HS256", "rsa1", GOOD, M_NONE, NO, NULL,
     "jwt: alg HS256 with a JWKS key refused"},
    {"HS256 keyed with the RSA PEM, no kid", V_MAIN, BY_RSA1_PEM, "HS256", NULL, GOOD, M_NONE, NO, NULL, BAD_SIG},
    {"HS256 keyed with the RSA JWK, no kid", V_MAIN, BY_RSA1_JWK, "HS256", NULL, GOOD, M_NONE, NO, NULL, BAD_SIG},
    {"HS256 keyed with the RSA PEM, no secret", V_JWKS_ONLY, BY_RSA1_PEM, "HS256", NULL, GOOD, M_NONE, NO, NULL,
     "jwt: alg HS256 refused: no secret file"},
    {"HS256 keyed with the RSA JWK, its kid, no secret", V_JWKS_ONLY, BY_RSA1_JWK, "HS256", "rsa1", GOOD, M_NONE, NO,
     NULL, "jwt: alg HS256 with a JWKS key refused"},
    {"RS256 header with the EC key's kid", V_MAIN, BY_HAND, "{\"alg\":\"RS256\",\"kid\":\"ec1\"}", NULL, GOOD, M_NONE,
     NO, NULL, "jwt: alg RS256 does not fit the kid's EC key"},
    {"ES256 header with the RSA key's kid", V_MAIN, BY_HAND, "{\"alg\":\"ES256\",\"kid\":\"rsa1\"}", NULL, GOOD,
     M_NONE, NO, NULL, "jwt: alg ES256 does not fit the kid's RSA key"},
    {"RS256 signed by the EC key, relabelled", V_JWKS_ONLY, BY_HAND, "{\"alg\":\"RS256\"}", NULL, GOOD, M_NONE, NO,
     NULL, BAD_SIG},
    {"RS256 without a JWKS", V_SECRET_ONLY, BY_RSA1, "RS256", NULL, GOOD, M_NONE, NO, NULL,
     "jwt: no RS256 key in the JWKS"},
    /* other algorithms and headers */
    {"RS512", V_MAIN, BY_RSA1, "RS512", "rsa1", GOOD, M_NONE, NO, NULL, "jwt: alg RS512 not supported"},
    {"PS256", V_MAIN, BY_RSA1, "PS256", "rsa1", GOOD, M_NONE, NO, NULL, "jwt: alg PS256 not supported"},
    {"HS512", V_MAIN, BY_SECRET, "HS512", NULL, GOOD, M_NONE, NO, NULL, "jwt: alg HS512 not supported"},
    {"alg lower case", V_MAIN, BY_HAND, "{\"alg\":\"rs256\",\"kid\":\"rsa1\"}", NULL, GOOD, M_NONE, NO, NULL,
     "jwt: alg rs256 not supported"},
    {"alg with a quote", V_MAIN, BY_HAND, "{\"alg\":\"RS\\\"256\"}", NULL, GOOD, M_NONE, NO, NULL,
     "jwt: alg (unprintable or long) not supported"},
    {"alg a number", V_MAIN, BY_HAND, "{\"alg\":256}", NULL, GOOD, M_NONE, NO, NULL, "jwt: malformed header: no alg"},
    {"no alg", V_MAIN, BY_HAND, "{\"kid\":\"rsa1\"}", NULL, GOOD, M_NONE, NO, NULL, "jwt: malformed header: no alg"},
    {"kid a number", V_MAIN, BY_HAND, "{\"alg\":\"RS256\",\"kid\":1}", NULL, GOOD, M_NONE, NO, NULL,
     "jwt: malformed header: kid is not a string"},
    {"crit", V_MAIN, BY_HAND, "{\"alg\":\"RS256\",\"crit\":[\"exp\"],\"exp\":1}", NULL, GOOD, M_NONE, NO, NULL,
     "jwt: crit header not supported"},
    {"header an array", V_MAIN, BY_HAND, "[\"RS256\"]", NULL, GOOD, M_NONE, NO, NULL, "jwt: malformed header"},
    {"header trailing garbage", V_MAIN, BY_HAND, "{\"alg\":\"RS256\"}x", NULL, GOOD, M_NONE, NO, NULL,
     "jwt: malformed header"},
    {"header two values", V_MAIN, BY_HAND, "{\"alg\":\"RS256\"}{}", NULL, GOOD, M_NONE, NO, NULL,
     "jwt: malformed header"},
    {"header single quotes", V_MAIN, BY_HAND, "{'alg':'RS256'}", NULL, GOOD, M_NONE, NO, NULL,
     "jwt: malformed header"},
    {"header not UTF-8", V_MAIN, BY_HAND, "{\"alg\":\"RS256\",\"x\":\"\xff\"}", NULL, GOOD, M_NONE, NO, NULL,
     "jwt: malformed header"},
    {"alg twice", V_MAIN, BY_HAND, "{\"alg\":\"RS256\",\"alg\":\"HS256\"}", NULL, GOOD, M_NONE, NO, NULL, NULL},
    /* claims that are not a JSON object, signed */
    {"claims not JSON", V_MAIN, BY_SECRET, "HS256", NULL, RAW("exp=1700000300"), M_NONE, NO, NULL,
     "jwt: malformed claims"},
    {"claims an array", V_MAIN, BY_RSA1, "RS256", "rsa1", RAW("[{\"exp\":1700000300}]"), M_NONE, NO, NULL,
     "jwt: malformed claims"},
    {"claims with trailing garbage", V_MAIN, BY_SECRET, "HS256", NULL, RAW("{\"exp\":1700000300,\"sub\":\"u\"} x"),
     M_NONE, NO, NULL, "jwt: malformed claims"},
    {"claims with a trailing newline", V_SECRET_ONLY, BY_SECRET, "HS256", NULL,
     RAW("{\"exp\":1700000300,\"sub\":\"u\"}\n"), M_NONE, OK, "u", NULL},
    /* json-c reads NaN and Infinity even in strict mode: they are not numbers here. */
    {"exp NaN", V_SECRET_ONLY, BY_SECRET, "HS256", NULL, RAW("{\"exp\":NaN,\"sub\":\"u\"}"), M_NONE, NO, NULL,
     "jwt: exp is not a number"},
    {"exp Infinity", V_SECRET_ONLY, BY_SECRET, "HS256", NULL, RAW("{\"exp\":Infinity,\"sub\":\"u\"}"), M_NONE, NO,
     NULL, "jwt: exp is not a number"},
    {"nbf -Infinity", V_SECRET_ONLY, BY_SECRET, "HS256", NULL,
     RAW("{\"exp\":1700000300,\"nbf\":-Infinity,\"sub\":\"u\"}"), M_NONE, NO, NULL, "jwt: nbf is not a number"},
    {"claims empty", V_SECRET_ONLY, BY_SECRET, "HS256", NULL, RAW(""), M_NONE, NO, NULL, "jwt: malformed claims"},
};

static const cjose_jwk_t *signer_key(enum signer by)
{
    switch (by) {
    case BY_RSA1: return rsa1;
    case BY_RSA2: return rsa2;
    case BY_EC1: return ec1;
    case BY_EC2: return ec2;
    case BY_SECRET: return secret_key;
    case BY_WRONG_SECRET: return wrong_secret_key;
    case BY_RSA1_PEM: return rsa1_pem_key;
    case BY_RSA1_JWK: return rsa1_jwk_key;
    case BY_HAND: break;
    }
    return NULL;
}

/* make: the token row r describes. */
static char *make(const struct sign_row *r)
{
    char *text = payload(&r->c);
    char *token;
    if (r->by == BY_HAND) {
        unsigned char junk[256];
        assert_int_equal(RAND_bytes(junk, sizeof junk), 1);
        /* An RS256-labelled header over an ES256 signature: a real EC
         * signature, as a relabelling attacker would have it. */
        if (strcmp(r->name, "RS256 signed by the EC key, relabelled") == 0) {
            char *es = sign(ec1, "ES256", NULL, text);
            char *h = b64(r->alg, strlen(r->alg));
            token = with_segment(es, 0, h);
            free(h);
            free(es);
        } else {
            token = assemble(r->alg, text, junk, sizeof junk);
        }
    } else {
        token = sign(signer_key(r->by), r->alg, r->kid, text);
    }
    char *mangled = NULL, seg[2048];
    switch (r->mangle) {
    case M_NONE: break;
    case M_FLIP_SIG: {
        segment(token, 2, seg, sizeof seg);
        size_t mid = strlen(seg) / 2;
        seg[mid] = seg[mid] == 'A' ? 'B' : 'A';
        mangled = with_segment(token, 2, seg);
        break;
    }
    case M_PAYLOAD: {
        struct claims c = r->c;
        c.email = "mallory@example.test";
        char *other = payload(&c), *p = b64(other, strlen(other));
        mangled = with_segment(token, 1, p);
        free(p);
        free(other);
        break;
    }
    case M_SWAP_SIG: {
        struct claims c = r->c;
        c.exp += 1;
        char *other = payload(&c), *t2 = sign(signer_key(r->by), r->alg, r->kid, other);
        mangled = with_segment(token, 2, segment(t2, 2, seg, sizeof seg));
        free(t2);
        free(other);
        break;
    }
    case M_NO_SIG: mangled = with_segment(token, 2, ""); break;
    case M_SHORT_SIG: {
        segment(token, 2, seg, sizeof seg);
        seg[strlen(seg) - 4] = '\0';
        mangled = with_segment(token, 2, seg);
        break;
    }
    }
    free(text);
    if (mangled) {
        free(token);
        token = mangled;
    }
    return token;
}

/* check_why: why must name a check and hold no part of the token. */
static void check_why(unsigned *failures, size_t i, const char *name, const char *token, const char *why)
{
    char seg[2048];
    if (strncmp(why, "jwt: ", 5) != 0)
        unit_fail(failures, i, name, "why \"%s\" does not start with \"jwt: \"", why);
    for (int k = 0; k < 3 && strchr(token, '.') && strchr(strchr(token, '.') + 1, '.'); k++)
        if (strlen(segment(token, k, seg, sizeof seg)) >= 8 && strstr(why, seg))
            unit_fail(failures, i, name, "why \"%s\" holds segment %d of the token", why, k);
    if (strlen(token) >= 8 && strstr(why, token))
        unit_fail(failures, i, name, "why holds the token");
}

static void test_signed(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(sign_rows); i++) {
        const struct sign_row *r = &sign_rows[i];
        char *token = make(r);
        struct credential out = {NULL, 777};
        char why[256] = "";
        ERR_clear_error();
        enum proxy_err v = jwt_verify(verifiers[r->verifier], token, NOW, &out, why, sizeof why);
        if (v != r->want) {
            unit_fail(&failures, i, r->name, "verdict %d, want %d (why: %s)", v, r->want, why);
        } else if (v == OK) {
            time_t want_exp = r->c.raw ? 0 : NOW + r->c.exp;
            if (!out.user || strcmp(out.user, r->user) != 0)
                unit_fail(&failures, i, r->name, "user %s, want %s", out.user ? out.user : "(null)", r->user);
            if (want_exp && out.expires != want_exp)
                unit_fail(&failures, i, r->name, "expires %lld, want %lld", (long long)out.expires,
                          (long long)want_exp);
        } else {
            if (r->why && !strstr(why, r->why))
                unit_fail(&failures, i, r->name, "why \"%s\", want \"%s\"", why, r->why);
            if (out.user || out.expires != 777)
                unit_fail(&failures, i, r->name, "a rejection wrote the credential");
            check_why(&failures, i, r->name, token, why);
        }
        /* Errors left in the thread's OpenSSL queue would be blamed on the
         * next TLS call libcurl makes in this worker. (Whether the caller's
         * own errors survive is not checked: cjose_jws_verify clears the
         * whole queue when a signature fails.) */
        if (ERR_peek_error())
            unit_fail(&failures, i, r->name, "left error %lx in OpenSSL's queue", ERR_peek_error());
        if (v == OK)
            credential_clear(&out);
        free(token);
    }
    unit_done(failures);
}

/* ---- garbage, one row each ---- */

static char too_long[JWT_MAX + 2];

struct raw_row {
    const char *name;
    const char *token;
    const char *why;
};

static const struct raw_row raw_rows[] = {
    {"NULL", NULL, "jwt: empty token"},
    {"empty", "", "jwt: empty token"},
    {"one segment", "abc", "jwt: not three dot-separated segments"},
    {"two segments", "eyJhbGciOiJSUzI1NiJ9.e30", "jwt: not three dot-separated segments"},
    {"four segments", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln.c2ln", "jwt: not three dot-separated segments"},
    {"JWE-like five segments", "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", "jwt: not three dot-separated segments"},
    {"dots only", "..", "jwt: malformed header"},
    {"padding", "eyJhbGciOiJSUzI1NiJ9.e30=.c2ln", "jwt: a byte outside base64url"},
    {"standard base64", "eyJhbGciOiJSUzI1NiJ9.e30.c2l+/w", "jwt: a byte outside base64url"},
    {"space", "eyJhbGciOiJSUzI1NiJ9 .e30.c2ln", "jwt: a byte outside base64url"},
    {"Bearer prefix left on", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "jwt: a byte outside base64url"},
    {"high byte", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\xc3\xa9", "jwt: a byte outside base64url"},
    {"bad base64 length", "eyJhbGciOiJSUzI1NiJ9a.e30.c2ln", "jwt: a segment is not base64url"},
    {"header not JSON", "bm90IGpzb24.e30.c2ln", "jwt: malformed header"},
    {"header empty object", "e30.e30.c2ln", "jwt: malformed header: no alg"},
    {"header empty", ".e30.c2ln", "jwt: malformed header"},
    {"no signature", "eyJhbGciOiJSUzI1NiJ9.e30.", "jwt: no signature"},
    {"payload empty, RS256", "eyJhbGciOiJSUzI1NiJ9..c2ln", "jwt: signature does not verify"},
    {"too long", too_long, "jwt: token too long"},
};

static void test_garbage(void **state)
{
    (void)state;
    memset(too_long, 'A', sizeof too_long - 1);
    too_long[100] = '.';
    too_long[200] = '.';
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(raw_rows); i++) {
        const struct raw_row *r = &raw_rows[i];
        for (int k = 0; k < V_COUNT; k++) {
            struct credential out = {NULL, 0};
            char why[256] = "";
            enum proxy_err v = jwt_verify(verifiers[k], r->token, NOW, &out, why, sizeof why);
            /* Which check fails may depend on the keys once the header is
             * read; the first rows fail before. */
            bool keyed = strstr(r->why, "signature") != NULL;
            if (v != NO)
                unit_fail(&failures, i, r->name, "verifier %d: verdict %d, want rejected", k, v);
            else if ((!keyed || k == V_MAIN) && !strstr(why, r->why))
                unit_fail(&failures, i, r->name, "verifier %d: why \"%s\", want \"%s\"", k, why, r->why);
            if (r->token)
                check_why(&failures, i, r->name, r->token, why);
            credential_clear(&out);
        }
    }
    unit_done(failures);
}

/* The longest token accepted is JWT_MAX bytes: pad a real one up to
 * it, then one claim byte past it. */
static void test_length_limit(void **state)
{
    (void)state;
    char extra[JWT_MAX];
    char *fit = NULL, *over = NULL;
    for (size_t pad = 5800; pad < 6400 && !over; pad++) {
        snprintf(extra, sizeof extra, "\"pad\":\"%0*d\"", (int)pad, 0);
        struct claims c = EXTRA(extra);
        char *text = payload(&c), *token = sign(secret_key, "HS256", NULL, text);
        free(text);
        if (strlen(token) <= JWT_MAX) {
            free(fit);
            fit = token;
        } else {
            over = token;
        }
    }
    assert_non_null(fit);
    assert_non_null(over);
    assert_true(strlen(fit) > JWT_MAX - 4);
    struct credential out = {0};
    char why[256] = "";
    assert_int_equal(jwt_verify(verifiers[V_MAIN], fit, NOW, &out, why, sizeof why), OK);
    assert_string_equal(out.user, ALICE);
    credential_clear(&out);
    assert_int_equal(jwt_verify(verifiers[V_MAIN], over, NOW, &out, why, sizeof why), NO);
    assert_non_null(strstr(why, "jwt: token too long"));
    free(fit);
    free(over);
}

/* ---- settings refused at start ---- */

struct settings_row {
    const char *name;
    const char *jwks;   /* file content, NULL: no JWKS file; "@missing": a path that does not exist */
    const char *secret; /* file content, NULL: no secret file */
    const char *issuer;
    long skew;
    const char *err;    /* NULL: loads; else a substring of the error */
};

static const struct settings_row settings_rows[] = {
    {"neither file", NULL, NULL, NULL, 0, "needs a JWKS file or a secret file"},
    {"missing JWKS file", "@missing", NULL, NULL, 0, "cannot open"},
    {"missing secret file", NULL, "@missing", NULL, 0, "cannot open"},
    {"JWKS not JSON", "{keys: []}", NULL, NULL, 0, "not a JSON object"},
    {"JWKS an array", "[]", NULL, NULL, 0, "not a JSON object"},
    {"JWKS without keys", "{\"key\":[]}", NULL, NULL, 0, "no \"keys\" array"},
    {"JWKS with no keys", "{\"keys\":[]}", NULL, NULL, 0, "no usable key"},
    {"JWKS with only oct keys", "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\"}]}", NULL,
     NULL, 0, "no usable key"},
    {"JWKS key not an object", "{\"keys\":[\"RSA\"]}", NULL, NULL, 0, "key 0: not a JSON object"},
    {"JWKS key without kty", "{\"keys\":[{\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", NULL, NULL, 0, "key 0: no kty"},
    {"JWKS RSA key without n", "{\"keys\":[{\"kty\":\"oct\"},{\"kty\":\"RSA\",\"e\":\"AQAB\"}]}", NULL, NULL, 0,
     "key 1: no n"},
    {"JWKS RSA key, kid a number", "{\"keys\":[{\"kty\":\"RSA\",\"kid\":1,\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", NULL,
     NULL, 0, "key 0: kid is not a string"},
    {"JWKS EC key, bad point", "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AQAB\",\"y\":\"AQAB\"}]}", NULL,
     NULL, 0, "key 0: cjose cannot import it"},
    {"secret too short", NULL, "0123456789abcdef0123456789abcde\n", NULL, 0, "31 bytes, HS256 needs at least 32"},
    {"secret empty", NULL, "", NULL, 0, "0 bytes"},
    {"secret of 32 bytes and CRLF", NULL, "0123456789abcdef0123456789abcdef\r\n", NULL, 0, NULL},
    {"negative skew", NULL, "0123456789abcdef0123456789abcdef", NULL, -1, "clock skew"},
    {"skew over a day", NULL, "0123456789abcdef0123456789abcdef", NULL, 86401, "clock skew"},
    {"empty issuer", NULL, "0123456789abcdef0123456789abcdef", "", 0, "the issuer is empty"},
};

static void test_settings(void **state)
{
    (void)state;
    unsigned failures = 0;
    char jpath[200], spath[200], missing[200];
    snprintf(jpath, sizeof jpath, "%s/settings-jwks", dir);
    snprintf(spath, sizeof spath, "%s/settings-secret", dir);
    snprintf(missing, sizeof missing, "%s/missing", dir);
    for (size_t i = 0; i < UNIT_LEN(settings_rows); i++) {
        const struct settings_row *r = &settings_rows[i];
        struct jwt_settings s = {NULL, NULL, r->issuer, NULL, NULL, r->skew};
        if (r->jwks && strcmp(r->jwks, "@missing") == 0) {
            s.jwks_file = missing;
        } else if (r->jwks) {
            write_text(jpath, r->jwks);
            s.jwks_file = jpath;
        }
        if (r->secret && strcmp(r->secret, "@missing") == 0) {
            s.secret_file = missing;
        } else if (r->secret) {
            write_text(spath, r->secret);
            s.secret_file = spath;
        }
        char err[512] = "";
        struct jwt_verifier *v = jwt_verifier_new(&s, err, sizeof err);
        if (!r->err && !v)
            unit_fail(&failures, i, r->name, "refused: %s", err);
        if (r->err && v)
            unit_fail(&failures, i, r->name, "loaded, want an error with \"%s\"", r->err);
        if (r->err && !v && !strstr(err, r->err))
            unit_fail(&failures, i, r->name, "error \"%s\", want \"%s\"", err, r->err);
        if (r->err && !v && (s.jwks_file || s.secret_file) && strstr(r->name, "file") &&
            !strstr(err, s.jwks_file ? s.jwks_file : s.secret_file))
            unit_fail(&failures, i, r->name, "error \"%s\" does not name the file", err);
        jwt_verifier_free(v);
    }
    unlink(jpath);
    unlink(spath);
    assert_null(jwt_verifier_new(NULL, NULL, 0));
    jwt_verifier_free(NULL);
    unit_done(failures);
}

/* A JWKS holding private keys by mistake still verifies (with the public
 * half), and the secret file's one trailing newline is not key. */
static void test_private_jwks_and_secret_newline(void **state)
{
    (void)state;
    char jpath[200];
    snprintf(jpath, sizeof jpath, "%s/private-jwks", dir);
    json_object *keys[] = {jwk_json(rsa1, true, NULL), jwk_json(ec1, true, NULL)};
    write_jwks(jpath, keys, UNIT_LEN(keys));
    struct jwt_settings s = {jpath, secret_path, NULL, NULL, NULL, 0};
    char err[512] = "";
    struct jwt_verifier *v = jwt_verifier_new(&s, err, sizeof err);
    assert_non_null(v);
    struct claims c = GOOD;
    char *text = payload(&c);
    const cjose_jwk_t *by[] = {rsa1, ec1, secret_key};
    const char *alg[] = {"RS256", "ES256", "HS256"};
    for (int i = 0; i < 3; i++) {
        char *token = sign(by[i], alg[i], NULL, text);
        struct credential out = {0};
        char why[256] = "";
        assert_int_equal(jwt_verify(v, token, NOW, &out, why, sizeof why), OK);
        assert_string_equal(out.user, ALICE);
        credential_clear(&out);
        free(token);
    }
    /* The key with the newline is another key. */
    char with_nl[sizeof secret + 1];
    memcpy(with_nl, secret, sizeof secret);
    with_nl[sizeof secret] = '\n';
    cjose_jwk_t *nl_key = oct_key(with_nl, sizeof with_nl);
    char *token = sign(nl_key, "HS256", NULL, text);
    struct credential out = {0};
    char why[256] = "";
    assert_int_equal(jwt_verify(v, token, NOW, &out, why, sizeof why), NO);
    assert_string_equal(why, BAD_SIG);
    free(token);
    cjose_jwk_release(nl_key);
    free(text);
    jwt_verifier_free(v);
    unlink(jpath);
}

/* ---- rotation ---- */

static enum proxy_err verify(struct jwt_verifier *v, const char *token, char *why, size_t whylen)
{
    struct credential out = {0};
    why[0] = '\0';
    enum proxy_err verdict = jwt_verify(v, token, NOW, &out, why, whylen);
    credential_clear(&out);
    return verdict;
}

static void test_rotation(void **state)
{
    (void)state;
    char jpath[200], spath[200], why[256], log[4096];
    snprintf(jpath, sizeof jpath, "%s/rotating-jwks", dir);
    snprintf(spath, sizeof spath, "%s/rotating-secret", dir);
    json_object *before[] = {jwk_json(rsa1, false, NULL), jwk_json(ec1, false, NULL)};
    write_jwks(jpath, before, UNIT_LEN(before));
    write_file(spath, secret, sizeof secret);
    struct jwt_settings s = {jpath, spath, NULL, NULL, NULL, 0};
    char err[512] = "";
    struct jwt_verifier *v = jwt_verifier_new(&s, err, sizeof err);
    assert_non_null(v);

    struct claims c = GOOD;
    char *text = payload(&c);
    char *old_rs = sign(rsa1, "RS256", "rsa1", text), *old_rs_nokid = sign(rsa1, "RS256", NULL, text);
    char *old_es = sign(ec1, "ES256", "ec1", text), *old_hs = sign(secret_key, "HS256", NULL, text);
    char *new_rs = sign(rsa2, "RS256", "rsa2", text), *new_es = sign(ec2, "ES256", "ec2", text);
    char *new_hs = sign(rsa1_pem_key, "HS256", NULL, text); /* any other key will do as the new secret */
    char *pem = rsa_public_pem(rsa1);

    assert_int_equal(verify(v, old_rs, why, sizeof why), OK);
    assert_int_equal(verify(v, old_hs, why, sizeof why), OK);
    assert_int_equal(verify(v, new_rs, why, sizeof why), NO);
    assert_string_equal(why, "jwt: unknown kid");

    /* Rotate both: the new keys in, the old ones out. */
    json_object *after[] = {jwk_json(rsa2, false, NULL), jwk_json(ec2, false, NULL)};
    write_jwks(jpath, after, UNIT_LEN(after));
    /* The file's one trailing newline is stripped: the PEM keeps its own. */
    char *pem_file = malloc(strlen(pem) + 2);
    snprintf(pem_file, strlen(pem) + 2, "%s\n", pem);
    write_text(spath, pem_file);
    free(pem_file);
    past_check_interval();
    assert_int_equal(verify(v, new_rs, why, sizeof why), OK);
    assert_int_equal(verify(v, new_es, why, sizeof why), OK);
    assert_int_equal(verify(v, new_hs, why, sizeof why), OK);
    assert_int_equal(verify(v, old_rs, why, sizeof why), NO);
    assert_string_equal(why, "jwt: unknown kid");
    assert_int_equal(verify(v, old_rs_nokid, why, sizeof why), NO);
    assert_string_equal(why, BAD_SIG);
    assert_int_equal(verify(v, old_es, why, sizeof why), NO);
    assert_int_equal(verify(v, old_hs, why, sizeof why), NO);
    assert_string_equal(why, BAD_SIG);

    /* Bad edits keep the keys in use, with one error each. */
    write_text(jpath, "{\"keys\": [");
    write_text(spath, "short");
    past_check_interval();
    struct unit_capture cap;
    unit_capture_begin(&cap, dir);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(verify(v, new_rs, why, sizeof why), OK);
        assert_int_equal(verify(v, new_hs, why, sizeof why), OK);
    }
    past_check_interval(); /* recent files are re-read: same content, no new error */
    assert_int_equal(verify(v, new_es, why, sizeof why), OK);
    int errors = unit_capture_end(&cap, "level=error", log, sizeof log);
    assert_int_equal(errors, 2);
    assert_non_null(strstr(log, jpath));
    assert_non_null(strstr(log, spath));
    assert_null(strstr(log, "short")); /* the secret's bytes stay out of the log */

    /* Removed files too. */
    assert_int_equal(unlink(jpath), 0);
    assert_int_equal(unlink(spath), 0);
    past_check_interval();
    unit_capture_begin(&cap, dir);
    assert_int_equal(verify(v, new_rs, why, sizeof why), OK);
    past_check_interval();
    assert_int_equal(verify(v, new_hs, why, sizeof why), OK);
    errors = unit_capture_end(&cap, "level=error", log, sizeof log);
    assert_int_equal(errors, 2);

    /* The files back, with the first keys. */
    json_object *again[] = {jwk_json(rsa1, false, NULL), jwk_json(ec1, false, NULL)};
    write_jwks(jpath, again, UNIT_LEN(again));
    write_file(spath, secret, sizeof secret);
    past_check_interval();
    assert_int_equal(verify(v, old_rs, why, sizeof why), OK);
    assert_int_equal(verify(v, old_hs, why, sizeof why), OK);
    assert_int_equal(verify(v, new_rs, why, sizeof why), NO);
    assert_int_equal(verify(v, new_hs, why, sizeof why), NO);

    char *all[] = {text, old_rs, old_rs_nokid, old_es, old_hs, new_rs, new_es, new_hs, pem};
    for (size_t i = 0; i < UNIT_LEN(all); i++)
        free(all[i]);
    jwt_verifier_free(v);
    unlink(jpath);
    unlink(spath);
}

/* ---- many threads ---- */

struct worker {
    struct jwt_verifier *v;
    const char *tokens[3];
    atomic_bool *stop;
    unsigned checks, wrong;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    while (!atomic_load(w->stop) || w->checks < 6) {
        struct credential out = {0};
        const char *token = w->tokens[w->checks % 3];
        if (jwt_verify(w->v, token, NOW, &out, NULL, 0) != OK || !out.user || strcmp(out.user, ALICE) != 0)
            w->wrong++;
        credential_clear(&out);
        w->checks++;
    }
    return NULL;
}

/* Threads verify while the JWKS is replaced by one that still holds their
 * keys: every verification succeeds, and ASan/valgrind see the swap. */
static void test_concurrent_verification_across_a_reload(void **state)
{
    (void)state;
    char jpath[200];
    snprintf(jpath, sizeof jpath, "%s/shared-jwks", dir);
    json_object *before[] = {jwk_json(rsa1, false, NULL), jwk_json(ec1, false, NULL)};
    write_jwks(jpath, before, UNIT_LEN(before));
    struct jwt_settings s = {jpath, secret_path, NULL, NULL, NULL, 0};
    char err[512] = "";
    struct jwt_verifier *v = jwt_verifier_new(&s, err, sizeof err);
    assert_non_null(v);
    struct claims c = GOOD;
    char *text = payload(&c);
    char *t[3] = {sign(rsa1, "RS256", "rsa1", text), sign(ec1, "ES256", "ec1", text),
                  sign(secret_key, "HS256", NULL, text)};
    atomic_bool stop = false;
    struct worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){v, {t[0], t[1], t[2]}, &stop, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    json_object *after[] = {jwk_json(rsa2, false, NULL), jwk_json(ec1, false, NULL), jwk_json(rsa1, false, NULL)};
    write_jwks(jpath, after, UNIT_LEN(after));
    past_check_interval();
    atomic_store(&stop, true);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].wrong, 0);
    }
    char *new_rs = sign(rsa2, "RS256", "rsa2", text), why[256];
    assert_int_equal(verify(v, new_rs, why, sizeof why), OK);
    free(new_rs);
    for (int i = 0; i < 3; i++)
        free(t[i]);
    free(text);
    jwt_verifier_free(v);
    unlink(jpath);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_private_jwks_and_secret_newline),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_concurrent_verification_across_a_reload),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
