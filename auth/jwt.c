/* jwt.c: JWT verification: JSON with json-c, signatures with cjose, keys
 * from a JWKS file and a secret file that are re-read when they change. */
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjose/cjose.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "auth/jwt.h"
#include "auth/watched_file.h"
#include "core/error.h"
#include "core/log.h"

#define JWKS_FILE_MAX (1024u * 1024) /* the largest JWKS file read */
#define SECRET_FILE_MAX 4096u       /* the largest secret file read */
#define RSA_MIN_BITS 2048           /* shorter RSA keys are skipped, with a warning */
#define SKEW_MAX_S 86400            /* the largest clock skew accepted: a day */
/* An ES256 signature is r || s, 32 bytes each (RFC 7518 section 3.4): 86
 * base64url characters. cjose splits whatever length it gets in two. */
#define ES256_SIG_B64_LEN 86
/* Claims times are clamped here so that adding the skew cannot overflow. */
#define TIME_LIMIT ((int64_t)1 << 62)
#define SHOWN_MAX 16    /* the longest piece of a token a message quotes */
#define KEY_WHY_MAX 160 /* the sentence on a JWKS entry, before the file and key are put in front */

enum alg { ALG_RS256, ALG_ES256, ALG_HS256, ALG_COUNT };
static const char *const alg_names[ALG_COUNT] = {"RS256", "ES256", "HS256"};

struct key {
    cjose_jwk_t *jwk;
    char *kid;    /* NULL: none */
    enum alg alg; /* the one algorithm this key verifies */
};

/* One version of a key file. Immutable once published; whoever drops the
 * last reference frees it. cjose's own reference counts are not atomic, so
 * the cjose keys inside are never retained or released while shared: this
 * set's count stands for all of them. */
struct keys {
    atomic_uint refs;
    size_t n;
    struct key *k;
};

struct jwt_verifier {
    EVP_MD *sha256;
    struct watched_set files; /* jwks and secret, re-read together */
    /* Their current is a struct keys; all zero: not configured. */
    struct watched_file jwks, secret;
    char *issuer, *audience, *user_claim;
    int64_t skew;
};

/* ---- key sets ---- */

static void keys_release(struct keys *ks)
{
    if (!ks || atomic_fetch_sub(&ks->refs, 1) != 1)
        return;
    for (size_t i = 0; i < ks->n; i++) {
        cjose_jwk_release(ks->k[i].jwk);
        free(ks->k[i].kid);
    }
    free(ks->k);
    free(ks);
}

static struct keys *keys_new(size_t cap)
{
    struct keys *ks = calloc(1, sizeof *ks);
    if (!ks)
        return NULL;
    atomic_init(&ks->refs, 1);
    if (cap && !(ks->k = calloc(cap, sizeof *ks->k))) {
        free(ks);
        return NULL;
    }
    return ks;
}

/* parse_json: len bytes of JSON text (not NUL-terminated), strictly: one
 * value, valid UTF-8, nothing but whitespace after it. NULL when malformed
 * or out of memory. */
static json_object *parse_json(const char *s, size_t len)
{
    if (len > INT_MAX)
        return NULL;
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, s, (int)len);
    size_t end = json_tokener_get_parse_end(tok);
    if (o && json_tokener_get_error(tok) == json_tokener_success) {
        while (end < len && (s[end] == ' ' || s[end] == '\t' || s[end] == '\r' || s[end] == '\n'))
            end++;
    }
    if (!o || json_tokener_get_error(tok) != json_tokener_success || end != len) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

/* str_member: the string member name of o, or NULL when absent or not a
 * string (*bad says which). */
static const char *str_member(json_object *o, const char *name, bool *bad)
{
    json_object *m;
    *bad = false;
    if (!json_object_object_get_ex(o, name, &m) || !m)
        return NULL;
    if (!json_object_is_type(m, json_type_string)) {
        *bad = true;
        return NULL;
    }
    return json_object_get_string(m);
}

/* The JWKS key types used, each for one algorithm, with the members of its
 * public key: only these are handed to cjose, so a JWKS that carries a
 * private key by mistake does not keep it in this process. "oct" keys
 * never verify anything here: HS256 uses the secret file alone, so that no
 * published key can be used as an HMAC secret. */
static const struct key_type {
    const char *kty;
    enum alg alg;
    cjose_jwk_kty_t cjose_kty;
    const char *members[4]; /* NULL-terminated */
} key_types[] = {
    {"RSA", ALG_RS256, CJOSE_JWK_KTY_RSA, {"n", "e", NULL}},
    {"EC", ALG_ES256, CJOSE_JWK_KTY_EC, {"crv", "x", "y", NULL}},
};

/* key_type_of: what JWKS entry k is for. Returns PROXY_OK with *type, or
 * with *type NULL (and why) when the entry is not for this verifier: another
 * key type, curve, use or algorithm; PROXY_ERR_INVALID with why when the
 * entry is broken. */
static enum proxy_err key_type_of(json_object *k, const struct key_type **type, char *why, size_t whylen)
{
    bool bad_kty, bad_use, bad_alg, bad_kid, bad_crv;
    *type = NULL;
    if (!json_object_is_type(k, json_type_object)) {
        proxy_say(why, whylen, "not a JSON object");
        return PROXY_ERR_INVALID;
    }
    const char *kty = str_member(k, "kty", &bad_kty);
    const char *use = str_member(k, "use", &bad_use);
    const char *alg = str_member(k, "alg", &bad_alg);
    str_member(k, "kid", &bad_kid);
    if (!kty || bad_use || bad_alg || bad_kid) {
        proxy_say(why, whylen, "%s",
            !kty ? "no kty" : bad_use ? "use is not a string" : bad_alg ? "alg is not a string" : "kid is not a string");
        return PROXY_ERR_INVALID;
    }
    const struct key_type *t = NULL;
    for (size_t i = 0; i < sizeof key_types / sizeof key_types[0] && !t; i++)
        if (strcmp(kty, key_types[i].kty) == 0)
            t = &key_types[i];
    const char *crv = t && t->alg == ALG_ES256 ? str_member(k, "crv", &bad_crv) : NULL;
    if (!t)
        proxy_say(why, whylen, "kty %s", strcmp(kty, "oct") == 0 ? "oct" : "not RSA or EC");
    else if (t->alg == ALG_ES256 && (!crv || strcmp(crv, "P-256") != 0))
        proxy_say(why, whylen, "an EC key not on P-256");
    else if (use && strcmp(use, "sig") != 0)
        proxy_say(why, whylen, "not a signing key");
    else if (alg && strcmp(alg, alg_names[t->alg]) != 0)
        proxy_say(why, whylen, "its alg is not %s", alg_names[t->alg]);
    else
        *type = t;
    return PROXY_OK;
}

/* public_json: the JSON text of the public members of k, a key of type,
 * into *json (malloc'd: the caller frees it). Returns PROXY_OK,
 * PROXY_ERR_INVALID with why when a member is missing or not a string, or
 * PROXY_ERR_NOMEM. */
static enum proxy_err public_json(json_object *k, const struct key_type *type, char **json, char *why,
                                  size_t whylen)
{
    enum proxy_err rc = PROXY_ERR_NOMEM;
    *json = NULL;
    json_object *pub = json_object_new_object();
    if (!pub || json_object_object_add(pub, "kty", json_object_new_string(type->kty)))
        goto out;
    for (const char *const *m = type->members; *m; m++) {
        json_object *v;
        if (!json_object_object_get_ex(k, *m, &v) || !json_object_is_type(v, json_type_string)) {
            proxy_say(why, whylen, "no %s", *m);
            rc = PROXY_ERR_INVALID;
            goto out;
        }
        if (json_object_object_add(pub, *m, json_object_get(v))) {
            json_object_put(v);
            goto out;
        }
    }
    const char *text = json_object_to_json_string_ext(pub, JSON_C_TO_STRING_PLAIN);
    if (text && (*json = strdup(text)))
        rc = PROXY_OK;
out:
    json_object_put(pub);
    return rc;
}

/* import_public: cjose's key for json, the public members of a key of
 * type, into *jwk (the caller releases it). Returns PROXY_OK; with why,
 * PROXY_ERR_INVALID when cjose refuses it or reads another key type, or
 * PROXY_ERR_REFUSED for an RSA key shorter than RSA_MIN_BITS (weak: to be
 * skipped, not an error of the file); or PROXY_ERR_NOMEM. */
static enum proxy_err import_public(const char *json, const struct key_type *type, cjose_jwk_t **jwk, char *why,
                                    size_t whylen)
{
    cjose_err cerr = {0};
    enum proxy_err rc = PROXY_OK;
    *jwk = cjose_jwk_import(json, strlen(json), &cerr);
    if (!*jwk) {
        proxy_say(why, whylen, "cjose cannot import it (%s)", cerr.message ? cerr.message : "unknown error");
        return cerr.code == CJOSE_ERR_NO_MEMORY ? PROXY_ERR_NOMEM : PROXY_ERR_INVALID;
    }
    if (cjose_jwk_get_kty(*jwk, &cerr) != type->cjose_kty) {
        proxy_say(why, whylen, "cjose imported it as another key type");
        rc = PROXY_ERR_INVALID;
    } else if (type->alg == ALG_RS256 && cjose_jwk_get_keysize(*jwk, &cerr) < RSA_MIN_BITS) {
        proxy_say(why, whylen, "an RSA key of %zu bits (%d minimum)", cjose_jwk_get_keysize(*jwk, &cerr),
            RSA_MIN_BITS);
        rc = PROXY_ERR_REFUSED;
    }
    if (rc != PROXY_OK) {
        cjose_jwk_release(*jwk);
        *jwk = NULL;
    }
    return rc;
}

/* import_key: JWKS entry k into out. Returns PROXY_OK with out->jwk and
 * out->kid (the caller releases and frees them), or with out->jwk NULL when
 * the entry is not for this verifier; PROXY_ERR_REFUSED with why for a key
 * too weak to use, which the caller skips; PROXY_ERR_INVALID with why for
 * a broken entry; PROXY_ERR_NOMEM. */
static enum proxy_err import_key(json_object *k, struct key *out, char *why, size_t whylen)
{
    const struct key_type *type;
    char *json = NULL;
    enum proxy_err rc = key_type_of(k, &type, why, whylen);
    if (rc != PROXY_OK || !type)
        return rc;
    rc = public_json(k, type, &json, why, whylen);
    if (rc == PROXY_OK)
        rc = import_public(json, type, &out->jwk, why, whylen);
    free(json);
    if (rc != PROXY_OK)
        return rc;
    bool bad;
    const char *kid = str_member(k, "kid", &bad);
    if (kid && !(out->kid = strdup(kid))) {
        cjose_jwk_release(out->jwk);
        out->jwk = NULL;
        return PROXY_ERR_NOMEM;
    }
    out->alg = type->alg;
    return PROXY_OK;
}

/* parse_jwks: the keys of a JWKS file (a watched_kind's parse): a new
 * struct keys with one reference, holding at least one key. NULL with a
 * sentence in err. */
static void *parse_jwks(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
    struct keys *ks = NULL;
    json_object *root = parse_json(buf, len), *arr;
    if (!root || !json_object_is_type(root, json_type_object)) {
        proxy_say(err, errlen, "jwks file %s: not a JSON object", path);
        goto out;
    }
    if (!json_object_object_get_ex(root, "keys", &arr) || !json_object_is_type(arr, json_type_array)) {
        proxy_say(err, errlen, "jwks file %s: no \"keys\" array", path);
        goto out;
    }
    size_t n = json_object_array_length(arr);
    if (!(ks = keys_new(n)))
        goto oom;
    for (size_t i = 0; i < n; i++) {
        char why[KEY_WHY_MAX];
        struct key k = {0};
        enum proxy_err rc = import_key(json_object_array_get_idx(arr, i), &k, why, sizeof why);
        if (rc == PROXY_ERR_NOMEM)
            goto oom;
        if (rc == PROXY_ERR_INVALID) {
            proxy_say(err, errlen, "jwks file %s: key %zu: %s", path, i, why);
            goto fail;
        }
        if (rc == PROXY_ERR_REFUSED)
            proxy_log(PROXY_LOG_WARN, NULL, "jwks file %s: key %zu skipped: %s", path, i, why);
        else if (k.jwk)
            ks->k[ks->n++] = k;
    }
    if (!ks->n) {
        proxy_say(err, errlen, "jwks file %s: no usable key (RSA for RS256, EC P-256 for ES256)", path);
        goto fail;
    }
    goto out;
oom:
    proxy_say(err, errlen, "jwks file %s: out of memory", path);
fail:
    keys_release(ks);
    ks = NULL;
out:
    json_object_put(root);
    return ks;
}

/* parse_secret: the HS256 key of a secret file (a watched_kind's parse):
 * a new struct keys with one reference and one key. NULL with a sentence
 * in err. */
static void *parse_secret(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
    /* Editors and `echo` end files with a newline that nobody means as key. */
    if (len && buf[len - 1] == '\n') {
        len--;
        if (len && buf[len - 1] == '\r')
            len--;
    }
    if (len < JWT_SECRET_MIN) {
        proxy_say(err, errlen, "secret file %s: %zu bytes, HS256 needs at least %d (RFC 7518 section 3.2)", path, len,
            JWT_SECRET_MIN);
        return NULL;
    }
    struct keys *ks = keys_new(1);
    cjose_err cerr = {0};
    if (!ks || !(ks->k[0].jwk = cjose_jwk_create_oct_spec((const uint8_t *)buf, len, &cerr))) {
        proxy_say(err, errlen, "secret file %s: %s", path,
            !ks || cerr.code == CJOSE_ERR_NO_MEMORY ? "out of memory" : "cjose refused the key");
        keys_release(ks);
        return NULL;
    }
    ks->k[0].alg = ALG_HS256;
    ks->n = 1;
    return ks;
}

/* ---- reading and re-reading the files ---- */

/* acquire: the current JWKS and secret keys (NULL when not configured),
 * with references the caller drops, after a reload when one is due. */
static void acquire(struct jwt_verifier *v, struct keys **jwks, struct keys **secret)
{
    watched_set_refresh_if_due(&v->files);
    *jwks = watched_file_acquire(&v->jwks);
    *secret = watched_file_acquire(&v->secret);
}

/* ---- the verifier ---- */

/* copy_opt: a copy of the optional setting src (NULL: not set) into *dst.
 * PROXY_OK, or with a sentence in err PROXY_ERR_INVALID (set but empty) or
 * PROXY_ERR_NOMEM. */
static enum proxy_err copy_opt(char **dst, const char *src, const char *name, char *err, size_t errlen)
{
    *dst = NULL;
    if (!src)
        return PROXY_OK;
    if (!*src) {
        proxy_say(err, errlen, "jwt: the %s is empty", name);
        return PROXY_ERR_INVALID;
    }
    if (!(*dst = strdup(src))) {
        proxy_say(err, errlen, "jwt: out of memory");
        return PROXY_ERR_NOMEM;
    }
    return PROXY_OK;
}

static void retain_keys(void *content)
{
    atomic_fetch_add(&((struct keys *)content)->refs, 1);
}

static void release_keys(void *content)
{
    keys_release(content);
}

static size_t count_keys(const void *content)
{
    return ((const struct keys *)content)->n;
}

static const struct watched_kind jwks_file = {
    .what = "jwks file", .items = "keys", .max = JWKS_FILE_MAX,
    .parse = parse_jwks, .retain = retain_keys, .release = release_keys, .count = count_keys,
};

static const struct watched_kind secret_file = {
    .what = "secret file", .items = "keys", .max = SECRET_FILE_MAX,
    .parse = parse_secret, .retain = retain_keys, .release = release_keys, .count = count_keys,
};

/* watch: opens an optional key file (path NULL: not configured, w stays
 * all zero). Returns as watched_file_open, or PROXY_ERR_INVALID for an
 * empty path. */
static enum proxy_err watch(struct jwt_verifier *v, struct watched_file *w, const struct watched_kind *kind,
                            const char *path, char *err, size_t errlen)
{
    if (!path)
        return PROXY_OK;
    if (!*path) {
        proxy_say(err, errlen, "jwt: the %s is empty", kind->what);
        return PROXY_ERR_INVALID;
    }
    return watched_file_open(w, &v->files, kind, path, v->sha256, err, errlen);
}

struct jwt_verifier *jwt_verifier_new(const struct jwt_settings *s, char *err, size_t errlen)
{
    if (!s || (!s->jwks_file && !s->secret_file)) {
        proxy_say(err, errlen, "jwt: needs a JWKS file or a secret file (or both)");
        return NULL;
    }
    if (s->clock_skew_s < 0 || s->clock_skew_s > SKEW_MAX_S) {
        proxy_say(err, errlen, "jwt: the clock skew must be between 0 and %d s", SKEW_MAX_S);
        return NULL;
    }
    struct jwt_verifier *v = calloc(1, sizeof *v);
    if (!v) {
        proxy_say(err, errlen, "jwt: out of memory");
        return NULL;
    }
    watched_set_init(&v->files);
    v->skew = s->clock_skew_s;
    if (copy_opt(&v->issuer, s->issuer, "issuer", err, errlen) != PROXY_OK ||
        copy_opt(&v->audience, s->audience, "audience", err, errlen) != PROXY_OK ||
        copy_opt(&v->user_claim, s->user_claim ? s->user_claim : "email", "user claim", err, errlen) != PROXY_OK)
        goto fail;
    if (!(v->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) {
        proxy_say(err, errlen, "jwt: OpenSSL has no SHA-256");
        goto fail;
    }
    if (watch(v, &v->jwks, &jwks_file, s->jwks_file, err, errlen) != PROXY_OK ||
        watch(v, &v->secret, &secret_file, s->secret_file, err, errlen) != PROXY_OK)
        goto fail;
    return v;
fail:
    jwt_verifier_free(v);
    return NULL;
}

void jwt_verifier_reload(struct jwt_verifier *v)
{
    watched_set_reload(&v->files);
}

void jwt_verifier_free(struct jwt_verifier *v)
{
    if (!v)
        return;
    watched_set_destroy(&v->files);
    EVP_MD_free(v->sha256);
    free(v->issuer);
    free(v->audience);
    free(v->user_claim);
    free(v);
}

/* ---- verification ---- */

static bool is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* shown: s fit for a log line (it comes from the token): at most
 * SHOWN_MAX printable bytes, copied into buf, else a placeholder. */
static const char *shown(const char *s, char *buf, size_t len)
{
    size_t n = strlen(s);
    if (n == 0 || n >= len || n > SHOWN_MAX)
        return "(unprintable or long)";
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            return "(unprintable or long)";
    memcpy(buf, s, n + 1);
    return buf;
}

/* numeric_claim: claim name as whole seconds, rounded down (exp) or up
 * (nbf) so that comparing with an integer now is exact, clamped to
 * +-TIME_LIMIT. Returns PROXY_OK with *present (and *out when present), or
 * PROXY_ERR_INVALID when the claim is not a number. */
static enum proxy_err numeric_claim(json_object *claims, const char *name, bool round_up, int64_t *out,
                                    bool *present)
{
    json_object *o;
    *present = json_object_object_get_ex(claims, name, &o);
    if (!*present)
        return PROXY_OK;
    if (json_object_is_type(o, json_type_int)) {
        int64_t n = json_object_get_int64(o); /* json-c saturates past int64 */
        *out = n > TIME_LIMIT ? TIME_LIMIT : n < -TIME_LIMIT ? -TIME_LIMIT : n;
        return PROXY_OK;
    }
    if (!json_object_is_type(o, json_type_double))
        return PROXY_ERR_INVALID;
    double d = json_object_get_double(o);
    if (!isfinite(d))
        return PROXY_ERR_INVALID;
    if (d >= (double)TIME_LIMIT || d <= -(double)TIME_LIMIT) {
        *out = d > 0 ? TIME_LIMIT : -TIME_LIMIT;
        return PROXY_OK;
    }
    /* The cast truncates toward zero; floor() and ceil() would need libm. */
    int64_t n = (int64_t)d;
    if (round_up && (double)n < d)
        n++;
    else if (!round_up && (double)n > d)
        n--;
    *out = n;
    return PROXY_OK;
}

/* usable_user: the user goes upstream as an HTTP header value. */
static bool usable_user(const char *u, size_t len)
{
    if (len == 0 || len > JWT_USER_MAX || u[0] == ' ' || u[len - 1] == ' ')
        return false;
    for (size_t i = 0; i < len; i++)
        if (u[i] < 0x20 || u[i] > 0x7e)
            return false;
    return true;
}

/* check_times: exp (required) and nbf, each with the clock skew as
 * leeway. Returns PROXY_OK with *exp, or PROXY_ERR_REFUSED with why. */
static enum proxy_err check_times(const struct jwt_verifier *v, json_object *claims, int64_t now, int64_t *exp,
                                  char *why, size_t whylen)
{
    bool present;
    if (numeric_claim(claims, "exp", false, exp, &present) != PROXY_OK || !present) {
        proxy_say(why, whylen, present ? "jwt: exp is not a number" : "jwt: no exp claim");
        return PROXY_ERR_REFUSED;
    }
    if (now - v->skew > *exp) {
        proxy_say(why, whylen, "jwt: expired %lld s ago", (long long)(now - *exp));
        return PROXY_ERR_REFUSED;
    }
    int64_t nbf;
    if (numeric_claim(claims, "nbf", true, &nbf, &present) != PROXY_OK) {
        proxy_say(why, whylen, "jwt: nbf is not a number");
        return PROXY_ERR_REFUSED;
    }
    if (present && now + v->skew < nbf) {
        proxy_say(why, whylen, "jwt: not valid before nbf, %lld s from now", (long long)(nbf - now));
        return PROXY_ERR_REFUSED;
    }
    return PROXY_OK;
}

/* check_audience: aud, a string or an array of strings (RFC 7519 section
 * 4.1.3), names audience. PROXY_OK, or PROXY_ERR_REFUSED with why. */
static enum proxy_err check_audience(json_object *claims, const char *audience, char *why, size_t whylen)
{
    json_object *aud;
    bool ok = false;
    if (!json_object_object_get_ex(claims, "aud", &aud) || !aud) {
        proxy_say(why, whylen, "jwt: no aud claim");
        return PROXY_ERR_REFUSED;
    }
    if (json_object_is_type(aud, json_type_string)) {
        ok = strcmp(json_object_get_string(aud), audience) == 0;
    } else if (json_object_is_type(aud, json_type_array)) {
        size_t n = json_object_array_length(aud);
        for (size_t i = 0; i < n && !ok; i++) {
            json_object *a = json_object_array_get_idx(aud, i);
            ok = json_object_is_type(a, json_type_string) && strcmp(json_object_get_string(a), audience) == 0;
        }
    }
    if (!ok) {
        proxy_say(why, whylen, "jwt: audience mismatch");
        return PROXY_ERR_REFUSED;
    }
    return PROXY_OK;
}

/* check_claims: exp, nbf, then iss and aud when the verifier is set to
 * check them, in that order. Returns PROXY_OK with *exp, or
 * PROXY_ERR_REFUSED with why. */
static enum proxy_err check_claims(const struct jwt_verifier *v, json_object *claims, int64_t now, int64_t *exp,
                                   char *why, size_t whylen)
{
    enum proxy_err rc = check_times(v, claims, now, exp, why, whylen);
    if (rc != PROXY_OK)
        return rc;
    if (v->issuer) {
        bool bad;
        const char *iss = str_member(claims, "iss", &bad);
        if (!iss || strcmp(iss, v->issuer) != 0) {
            proxy_say(why, whylen, iss || bad ? "jwt: issuer mismatch" : "jwt: no iss claim");
            return PROXY_ERR_REFUSED;
        }
    }
    return v->audience ? check_audience(claims, v->audience, why, whylen) : PROXY_OK;
}

/* user_claim: the user, from the configured claim or, when the token has
 * no such claim, from sub, into *user (borrowed from claims). Returns
 * PROXY_OK, or PROXY_ERR_REFUSED with why when there is neither or the
 * value is not fit for an HTTP header (usable_user). */
static enum proxy_err user_claim(const struct jwt_verifier *v, json_object *claims, const char **user, char *why,
                                 size_t whylen)
{
    const char *claim = v->user_claim;
    json_object *u = NULL;
    if (!json_object_object_get_ex(claims, claim, &u) || !u) {
        claim = "sub";
        if (!json_object_object_get_ex(claims, claim, &u) || !u) {
            proxy_say(why, whylen, "jwt: no user: neither %s nor sub", v->user_claim);
            return PROXY_ERR_REFUSED;
        }
    }
    if (!json_object_is_type(u, json_type_string) ||
        !usable_user(json_object_get_string(u), (size_t)json_object_get_string_len(u))) {
        proxy_say(why, whylen, "jwt: the %s claim is not printable ASCII of 1 to %d bytes", claim, JWT_USER_MAX);
        return PROXY_ERR_REFUSED;
    }
    *user = json_object_get_string(u);
    return PROXY_OK;
}

static bool has_kid(const struct keys *ks, const char *kid)
{
    for (size_t i = 0; ks && i < ks->n; i++)
        if (ks->k[i].kid && strcmp(ks->k[i].kid, kid) == 0)
            return true;
    return false;
}

/* candidates: the keys that may verify a token with this alg and kid, into
 * cand (room for jwks->n + 1). Returns how many, or 0 with why. */
static size_t candidates(const struct keys *jwks, const struct keys *secret, enum alg alg, const char *kid,
                         const cjose_jwk_t **cand, char *why, size_t whylen)
{
    size_t n = 0;
    if (alg == ALG_HS256) {
        /* An HS256 token naming a JWKS key is the algorithm-confusion attack
         * (a public key used as the HMAC secret); a kid naming nothing is
         * ignored, since the secret has no kid. */
        if (kid && has_kid(jwks, kid)) {
            proxy_say(why, whylen, "jwt: alg HS256 with a JWKS key refused");
            return 0;
        }
        if (!secret) {
            proxy_say(why, whylen, "jwt: alg HS256 refused: no secret file is configured");
            return 0;
        }
        cand[n++] = secret->k[0].jwk;
        return n;
    }
    bool named = false;
    for (size_t i = 0; jwks && i < jwks->n; i++) {
        const struct key *k = &jwks->k[i];
        if (kid && !(k->kid && strcmp(k->kid, kid) == 0))
            continue;
        named = true;
        if (k->alg == alg)
            cand[n++] = k->jwk;
    }
    if (n)
        return n;
    if (kid && !named)
        proxy_say(why, whylen, "jwt: unknown kid");
    else if (kid)
        proxy_say(why, whylen, "jwt: alg %s does not fit the kid's %s key", alg_names[alg], alg == ALG_RS256 ? "EC" : "RSA");
    else
        proxy_say(why, whylen, "jwt: no %s key in the JWKS", alg_names[alg]);
    return 0;
}

/* A token in compact serialization (RFC 7515 section 7.1), split. */
struct compact {
    const char *token;
    size_t len;        /* of the whole token */
    size_t header_len; /* the first segment: token[0, header_len) */
    size_t sig_len;    /* the last segment */
};

/* The protected header, as read before any key is looked at. */
struct header {
    json_object *json; /* owns kid; the caller puts it */
    enum alg alg;
    const char *kid; /* NULL: none */
};

/* split_compact: token into c, strictly: three base64url segments without
 * padding, at most JWT_MAX bytes. cjose's decoder stops at '=' and ignores
 * what follows, so nothing else may reach it. Returns PROXY_OK, or
 * PROXY_ERR_REFUSED with why. */
static enum proxy_err split_compact(const char *token, struct compact *c, char *why, size_t whylen)
{
    if (!token || !*token) {
        proxy_say(why, whylen, "jwt: empty token");
        return PROXY_ERR_REFUSED;
    }
    size_t len = strnlen(token, JWT_MAX + 1);
    if (len > JWT_MAX) {
        proxy_say(why, whylen, "jwt: token too long (over %d bytes)", JWT_MAX);
        return PROXY_ERR_REFUSED;
    }
    size_t dots[2], ndots = 0;
    for (size_t i = 0; i < len && ndots < 3; i++) {
        if (token[i] == '.') {
            if (ndots < 2)
                dots[ndots] = i;
            ndots++;
        } else if (!is_b64url(token[i])) {
            proxy_say(why, whylen, "jwt: a byte outside base64url");
            return PROXY_ERR_REFUSED;
        }
    }
    if (ndots != 2) {
        proxy_say(why, whylen, "jwt: not three dot-separated segments");
        return PROXY_ERR_REFUSED;
    }
    /* Unpadded base64url never leaves a last group of a single character. */
    size_t payload_len = dots[1] - dots[0] - 1, sig_len = len - dots[1] - 1;
    if (dots[0] % 4 == 1 || payload_len % 4 == 1 || sig_len % 4 == 1) {
        proxy_say(why, whylen, "jwt: a segment is not base64url");
        return PROXY_ERR_REFUSED;
    }
    *c = (struct compact){.token = token, .len = len, .header_len = dots[0], .sig_len = sig_len};
    return PROXY_OK;
}

/* read_header: the header of c into h (the caller puts h->json, set even
 * on failure): JSON, a supported alg, no crit, a kid that is a string when
 * present. Returns PROXY_OK, PROXY_ERR_REFUSED with why, or
 * PROXY_ERR_NOMEM. */
static enum proxy_err read_header(const struct compact *c, struct header *h, char *why, size_t whylen)
{
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    cjose_err cerr = {0};
    char shown_buf[SHOWN_MAX + 1];
    if (!cjose_base64url_decode(c->token, c->header_len, &raw, &raw_len, &cerr)) {
        if (cerr.code == CJOSE_ERR_NO_MEMORY)
            return PROXY_ERR_NOMEM;
        proxy_say(why, whylen, "jwt: malformed header");
        return PROXY_ERR_REFUSED;
    }
    h->json = parse_json((const char *)raw, raw_len);
    if (raw)
        cjose_get_dealloc()(raw);
    if (!h->json || !json_object_is_type(h->json, json_type_object)) {
        proxy_say(why, whylen, "jwt: malformed header");
        return PROXY_ERR_REFUSED;
    }
    bool bad;
    const char *alg = str_member(h->json, "alg", &bad);
    if (!alg) {
        proxy_say(why, whylen, "jwt: malformed header: no alg");
        return PROXY_ERR_REFUSED;
    }
    if (strcasecmp(alg, "none") == 0) {
        proxy_say(why, whylen, "jwt: alg none refused");
        return PROXY_ERR_REFUSED;
    }
    size_t a = 0;
    while (a < ALG_COUNT && strcmp(alg, alg_names[a]) != 0)
        a++;
    if (a == ALG_COUNT) {
        proxy_say(why, whylen, "jwt: alg %s not supported", shown(alg, shown_buf, sizeof shown_buf));
        return PROXY_ERR_REFUSED;
    }
    h->alg = (enum alg)a;
    /* RFC 7515 section 4.1.11: extensions not understood must be refused. */
    if (json_object_object_get_ex(h->json, "crit", NULL)) {
        proxy_say(why, whylen, "jwt: crit header not supported");
        return PROXY_ERR_REFUSED;
    }
    h->kid = str_member(h->json, "kid", &bad);
    if (bad) {
        proxy_say(why, whylen, "jwt: malformed header: kid is not a string");
        return PROXY_ERR_REFUSED;
    }
    return PROXY_OK;
}

/* import_jws: cjose's own parse of c into *jws (the caller releases it,
 * set even on failure). cjose parsed the header again with its own JSON
 * parser (jansson); both must agree on the algorithm, or duplicate members
 * could pick one for the key choice and another for the signature check.
 * Returns PROXY_OK, PROXY_ERR_REFUSED with why, or PROXY_ERR_NOMEM. */
static enum proxy_err import_jws(const struct compact *c, const struct header *h, cjose_jws_t **jws, char *why,
                                 size_t whylen)
{
    cjose_err cerr = {0};
    if (!(*jws = cjose_jws_import(c->token, c->len, &cerr))) {
        if (cerr.code == CJOSE_ERR_NO_MEMORY)
            return PROXY_ERR_NOMEM;
        proxy_say(why, whylen, "jwt: malformed token");
        return PROXY_ERR_REFUSED;
    }
    const char *alg = cjose_header_get(cjose_jws_get_protected(*jws), CJOSE_HDR_ALG, &cerr);
    if (!alg || strcmp(alg, alg_names[h->alg]) != 0) {
        proxy_say(why, whylen, "jwt: malformed header: ambiguous alg");
        return PROXY_ERR_REFUSED;
    }
    return PROXY_OK;
}

/* verify_any: whether one of the n keys of cand verifies jws. Returns
 * PROXY_OK, PROXY_ERR_REFUSED with why, or PROXY_ERR_NOMEM. */
static enum proxy_err verify_any(cjose_jws_t *jws, const cjose_jwk_t *const *cand, size_t n, char *why,
                                 size_t whylen)
{
    cjose_err cerr = {0};
    for (size_t i = 0; i < n; i++) {
        cerr.code = CJOSE_ERR_NONE;
        if (cjose_jws_verify(jws, cand[i], &cerr))
            return PROXY_OK;
        if (cerr.code == CJOSE_ERR_NO_MEMORY)
            return PROXY_ERR_NOMEM;
    }
    proxy_say(why, whylen, "jwt: signature does not verify");
    return PROXY_ERR_REFUSED;
}

/* check_signature: c, whose header is h, verified with the keys that may
 * have signed it (the key files re-read first when a check is due), into
 * *jws (the caller releases it; NULL on failure). Returns PROXY_OK,
 * PROXY_ERR_REFUSED with why, or PROXY_ERR_NOMEM. */
static enum proxy_err check_signature(struct jwt_verifier *v, const struct compact *c, const struct header *h,
                                      cjose_jws_t **jws, char *why, size_t whylen)
{
    *jws = NULL;
    if (c->sig_len == 0) {
        proxy_say(why, whylen, "jwt: no signature");
        return PROXY_ERR_REFUSED;
    }
    struct keys *jwks, *secret;
    acquire(v, &jwks, &secret);
    enum proxy_err rc = PROXY_ERR_NOMEM;
    size_t ncand;
    const cjose_jwk_t **cand = calloc((jwks ? jwks->n : 0) + 1, sizeof *cand);
    if (!cand)
        goto out;
    rc = PROXY_ERR_REFUSED;
    if (!(ncand = candidates(jwks, secret, h->alg, h->kid, cand, why, whylen)))
        goto out;
    if (h->alg == ALG_ES256 && c->sig_len != ES256_SIG_B64_LEN) {
        proxy_say(why, whylen, "jwt: signature does not verify (not 64 bytes for ES256)");
        goto out;
    }
    rc = import_jws(c, h, jws, why, whylen);
    if (rc == PROXY_OK)
        rc = verify_any(*jws, cand, ncand, why, whylen);
out:
    if (rc != PROXY_OK) {
        cjose_jws_release(*jws);
        *jws = NULL;
    }
    free(cand);
    keys_release(jwks);
    keys_release(secret);
    return rc;
}

/* read_claims: the payload of the verified jws as a JSON object, into
 * *claims (the caller puts it). Returns PROXY_OK, or PROXY_ERR_REFUSED with
 * why. */
static enum proxy_err read_claims(cjose_jws_t *jws, json_object **claims, char *why, size_t whylen)
{
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    cjose_err cerr = {0};
    if (!cjose_jws_get_plaintext(jws, &plain, &plain_len, &cerr) ||
        !(*claims = parse_json((const char *)plain, plain_len)) || !json_object_is_type(*claims, json_type_object)) {
        proxy_say(why, whylen, "jwt: malformed claims");
        return PROXY_ERR_REFUSED;
    }
    return PROXY_OK;
}

enum proxy_err jwt_verify(struct jwt_verifier *v, const char *token, time_t now, struct credential *out, char *why,
                          size_t whylen)
{
    struct compact c;
    struct header h = {0};
    cjose_jws_t *jws = NULL;
    json_object *claims = NULL;
    int64_t exp;
    const char *user;
    /* Whatever OpenSSL queues while verifying is this call's business: left
     * in the worker's queue, the next TLS call libcurl makes could report it
     * as its own. (cjose 0.6.2 itself clears the whole queue when a
     * signature fails, and leaves nothing on the paths tested; the mark is
     * for the paths and versions that do.) */
    ERR_set_mark();
    enum proxy_err rc = split_compact(token, &c, why, whylen);
    if (rc == PROXY_OK)
        rc = read_header(&c, &h, why, whylen);
    if (rc == PROXY_OK)
        rc = check_signature(v, &c, &h, &jws, why, whylen);
    if (rc == PROXY_OK)
        rc = read_claims(jws, &claims, why, whylen);
    if (rc == PROXY_OK)
        rc = check_claims(v, claims, (int64_t)now, &exp, why, whylen);
    if (rc == PROXY_OK)
        rc = user_claim(v, claims, &user, why, whylen);
    if (rc == PROXY_OK) {
        char *copy = strdup(user);
        if (copy) {
            out->user = copy;
            out->expires = (time_t)exp;
        } else {
            rc = PROXY_ERR_NOMEM;
        }
    }
    if (rc == PROXY_ERR_NOMEM)
        proxy_say(why, whylen, "jwt: out of memory");
    cjose_jws_release(jws);
    json_object_put(claims);
    json_object_put(h.json);
    ERR_pop_to_mark();
    return rc;
}
