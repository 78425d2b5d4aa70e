/* test_auth.c: the authentication policy: which method lets a caller in,
 * 401 with the right challenge, 403 for a known caller on the wrong route,
 * and the Authorization and Cookie parsing it relies on. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "auth/auth.h"
#include "unit.h"

#define SECRET "unit-test-secret-not-used-anywhere-else-0123456789"
#define ISSUER "https://issuer.test"
#define AUDIENCE "flow"

static char dir[] = "/tmp/test-auth-XXXXXX";
/* fcgi_config owns malloc'd strings; these rows borrow writable ones. */
static char cookie_name[] = "session", issuer[] = ISSUER, audience[] = AUDIENCE, user_claim[] = "email";
static char missing_tokens[] = "/nonexistent/tokens";
static char tokens_path[64], secret_path[64];
static time_t now;

static void b64url(const unsigned char *in, size_t len, char *out)
{
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    int o = 0;
    for (int i = 0; i < n; i++) {
        if (out[i] == '=')
            break;
        out[o++] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    }
    out[o] = '\0';
}

/* An HS256 token with the given claims JSON. */
static char *mint(const char *claims)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *token = malloc(4096);
    char part[2048];
    b64url((const unsigned char *)header, strlen(header), token);
    strcat(token, ".");
    b64url((const unsigned char *)claims, strlen(claims), part);
    strcat(token, part);
    unsigned char mac[32];
    unsigned mac_len = 0;
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)token, strlen(token), mac, &mac_len);
    b64url(mac, mac_len, part);
    strcat(token, ".");
    strcat(token, part);
    return token;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(tokens_path, sizeof tokens_path, "%s/tokens", dir);
    snprintf(secret_path, sizeof secret_path, "%s/secret", dir);
    unsigned char digest[32];
    SHA256((const unsigned char *)"emitter-token", strlen("emitter-token"), digest);
    char line[128];
    for (int i = 0; i < 32; i++)
        snprintf(line + 2 * i, 3, "%02x", digest[i]);
    strcat(line, " emitter\n");
    write_file(tokens_path, line);
    write_file(secret_path, SECRET "\n");
    now = time(NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(tokens_path);
    unlink(secret_path);
    rmdir(dir);
    return 0;
}

static struct proxy_config config(unsigned read, unsigned events)
{
    struct proxy_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.auth_read = read;
    cfg.auth_events = events;
    cfg.tokens_file = tokens_path;
    cfg.jwt_secret_file = secret_path;
    cfg.jwt_cookie = cookie_name;
    cfg.jwt_issuer = issuer;
    cfg.jwt_audience = audience;
    cfg.jwt_user_claim = user_claim;
    cfg.jwt_clock_skew_ms = 5000;
    return cfg;
}

enum token_kind { NO_TOKEN, GOOD_JWT, EXPIRED_JWT, STATIC_TOKEN, WRONG_TOKEN };

struct decide_row {
    const char *name;
    unsigned read, events; /* the configuration */
    bool events_route;
    const char *remote_user;
    enum token_kind bearer; /* in Authorization: Bearer */
    enum token_kind cookie; /* in the "session" cookie */
    const char *authorization; /* used when bearer is NO_TOKEN */
    int status;
    const char *code;      /* NULL when let in */
    const char *user;      /* when let in; NULL for none */
    const char *challenge; /* a substring of WWW-Authenticate, or NULL for none */
};

#define RU AUTH_REMOTE_USER
#define BE AUTH_BEARER
#define JW AUTH_JWT

static const struct decide_row decide_rows[] = {
    {"none lets anyone in", 0, 0, false, NULL, NO_TOKEN, NO_TOKEN, NULL, 0, NULL, NULL, NULL},
    {"remote-user in", RU, RU, false, "alice", NO_TOKEN, NO_TOKEN, NULL, 0, NULL, "alice", NULL},
    {"remote-user absent", RU, RU, false, NULL, NO_TOKEN, NO_TOKEN, NULL, 401, "unauthorized", NULL, NULL},
    {"remote-user empty", RU, RU, false, "", NO_TOKEN, NO_TOKEN, NULL, 401, "unauthorized", NULL, NULL},
    {"remote-user with a newline", RU, RU, false, "a\nb", NO_TOKEN, NO_TOKEN, NULL, 401, "invalid_credentials", NULL,
     NULL},
    {"static token", BE, BE, false, NULL, STATIC_TOKEN, NO_TOKEN, NULL, 0, NULL, "emitter", NULL},
    {"wrong static token", BE, BE, false, NULL, WRONG_TOKEN, NO_TOKEN, NULL, 401, "invalid_credentials", NULL,
     "error=\"invalid_token\""},
    {"no token, bearer route", BE, BE, false, NULL, NO_TOKEN, NO_TOKEN, NULL, 401, "unauthorized", NULL,
     "realm=\"openova-flow\""},
    {"basic scheme", BE, BE, false, NULL, NO_TOKEN, NO_TOKEN, "Basic YTpi", 401, "invalid_credentials", NULL,
     "error=\"invalid_token\""},
    {"jwt in header", JW, JW, false, NULL, GOOD_JWT, NO_TOKEN, NULL, 0, NULL, "ada@example.test", NULL},
    {"jwt in cookie", JW, JW, false, NULL, NO_TOKEN, GOOD_JWT, NULL, 0, NULL, "ada@example.test", NULL},
    {"expired header, good cookie", JW, JW, false, NULL, EXPIRED_JWT, GOOD_JWT, NULL, 0, NULL, "ada@example.test",
     NULL},
    {"expired jwt", JW, JW, false, NULL, EXPIRED_JWT, NO_TOKEN, NULL, 401, "invalid_credentials", NULL,
     "error=\"invalid_token\""},
    {"any of three: token", RU | BE | JW, RU | BE | JW, false, NULL, STATIC_TOKEN, NO_TOKEN, NULL, 0, NULL, "emitter",
     NULL},
    {"any of three: jwt", RU | BE | JW, RU | BE | JW, false, NULL, GOOD_JWT, NO_TOKEN, NULL, 0, NULL,
     "ada@example.test", NULL},
    {"any of three: remote user first", RU | BE | JW, RU | BE | JW, false, "bob", GOOD_JWT, NO_TOKEN, NULL, 0, NULL,
     "bob", NULL},
    {"split: token posts events", JW, BE, true, NULL, STATIC_TOKEN, NO_TOKEN, NULL, 0, NULL, "emitter", NULL},
    {"split: jwt reads", JW, BE, false, NULL, GOOD_JWT, NO_TOKEN, NULL, 0, NULL, "ada@example.test", NULL},
    {"split: jwt on events is 403", JW, BE, true, NULL, GOOD_JWT, NO_TOKEN, NULL, 403, "forbidden", NULL,
     "insufficient_scope"},
    {"split: token reading is 403", JW, BE, false, NULL, STATIC_TOKEN, NO_TOKEN, NULL, 403, "forbidden", NULL,
     "insufficient_scope"},
    {"split: unknown caller is 401", JW, BE, true, NULL, WRONG_TOKEN, NO_TOKEN, NULL, 401, "invalid_credentials",
     NULL, "invalid_token"},
    {"open reads, remote-user events", 0, RU, false, NULL, NO_TOKEN, NO_TOKEN, NULL, 0, NULL, NULL, NULL},
    {"remote-user route, known by token: 403", RU, BE, false, NULL, STATIC_TOKEN, NO_TOKEN, NULL, 403, "forbidden",
     NULL, NULL},
};

static void test_decide(void **state)
{
    (void)state;
    char good_claims[512], expired_claims[512];
    snprintf(good_claims, sizeof good_claims,
             "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"u1\",\"email\":\"ada@example.test\",\"exp\":%lld}", ISSUER,
             AUDIENCE, (long long)now + 600);
    snprintf(expired_claims, sizeof expired_claims,
             "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"u1\",\"email\":\"ada@example.test\",\"exp\":%lld}", ISSUER,
             AUDIENCE, (long long)now - 600);
    char *good = mint(good_claims), *expired = mint(expired_claims);
    const char *token_of[] = {[NO_TOKEN] = NULL, [GOOD_JWT] = good, [EXPIRED_JWT] = expired,
                              [STATIC_TOKEN] = "emitter-token", [WRONG_TOKEN] = "emitter-tokem"};
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(decide_rows); i++) {
        const struct decide_row *r = &decide_rows[i];
        struct proxy_config cfg = config(r->read, r->events);
        char err[256] = "";
        struct auth *auth = auth_new(&cfg, err, sizeof err);
        if (!auth) {
            unit_fail(&failures, i, r->name, "auth_new: %s", err);
            continue;
        }
        char authorization[4200] = "", cookie[4200] = "";
        if (token_of[r->bearer])
            snprintf(authorization, sizeof authorization, "Bearer %s", token_of[r->bearer]);
        else if (r->authorization)
            snprintf(authorization, sizeof authorization, "%s", r->authorization);
        if (token_of[r->cookie])
            snprintf(cookie, sizeof cookie, "theme=dark; session=%s; x=1", token_of[r->cookie]);
        struct auth_presented req = {
            .remote_user = r->remote_user,
            .authorization = authorization[0] ? authorization : NULL,
            .cookie = cookie[0] ? cookie : NULL,
            .accepted = auth_accepted(&cfg, r->events_route ? AUTH_SCOPE_EVENTS : AUTH_SCOPE_READ),
        };
        struct auth_outcome out;
        auth_decide(auth, &req, now, &out);
        if (out.status != r->status)
            unit_fail(&failures, i, r->name, "status %d, want %d (%s)", out.status, r->status, out.reason);
        else if (r->code && (!out.code || strcmp(out.code, r->code) != 0))
            unit_fail(&failures, i, r->name, "code %s, want %s", out.code ? out.code : "(null)", r->code);
        else if (!r->code && (r->user ? !out.credential.user || strcmp(out.credential.user, r->user) != 0
                                      : out.credential.user != NULL))
            unit_fail(&failures, i, r->name, "user %s, want %s", out.credential.user ? out.credential.user : "(null)",
                      r->user ? r->user : "(null)");
        else if (r->challenge ? !out.www_authenticate || !strstr(out.www_authenticate, r->challenge)
                              : out.www_authenticate != NULL)
            unit_fail(&failures, i, r->name, "WWW-Authenticate %s, want one with %s",
                      out.www_authenticate ? out.www_authenticate : "(none)", r->challenge ? r->challenge : "(none)");
        else if (r->status && out.credential.user)
            unit_fail(&failures, i, r->name, "a refusal kept a user");
        /* The reason is for the log: never a token. */
        if (strstr(out.reason, "emitter-tok") || strstr(out.reason, good) || strstr(out.reason, expired))
            unit_fail(&failures, i, r->name, "reason leaks the token: %s", out.reason);
        if (r->status == 401 && !out.reason[0])
            unit_fail(&failures, i, r->name, "a 401 without a reason for the log");
        credential_clear(&out.credential);
        auth_free(auth);
    }
    free(good);
    free(expired);
    unit_done(failures);
}

/* A JWT credential lasts until exp plus the leeway that let it in. */
static void test_jwt_expiry_includes_skew(void **state)
{
    (void)state;
    char claims[512];
    snprintf(claims, sizeof claims, "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"u1\",\"exp\":%lld}", ISSUER, AUDIENCE,
             (long long)now + 100);
    char *token = mint(claims);
    char header[4200];
    snprintf(header, sizeof header, "Bearer %s", token);
    struct proxy_config cfg = config(JW, JW);
    char err[256];
    struct auth *auth = auth_new(&cfg, err, sizeof err);
    assert_non_null(auth);
    struct auth_presented req = {.authorization = header, .accepted = JW};
    struct auth_outcome out;
    auth_decide(auth, &req, now, &out);
    assert_int_equal(out.status, 0);
    assert_string_equal(out.credential.user, "u1"); /* no email: sub */
    assert_int_equal(out.credential.expires, now + 100 + 5);
    credential_clear(&out.credential);
    auth_free(auth);
    free(token);
}

static void test_missing_tokens_file_fails_to_start(void **state)
{
    (void)state;
    struct proxy_config cfg = config(BE, BE);
    cfg.tokens_file = missing_tokens;
    char err[256] = "";
    assert_null(auth_new(&cfg, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/tokens"));
}

struct bearer_row {
    const char *value;
    const char *token; /* NULL: not a bearer credential */
};

static const struct bearer_row bearer_rows[] = {
    {"Bearer abc", "abc"},
    {"bearer abc", "abc"},
    {"BEARER  abc  ", "abc"},
    {"Bearer\tabc", "abc"},
    {"Bearer a.b-c_d~e+f/g=", "a.b-c_d~e+f/g="},
    {"Bearer", NULL},
    {"Bearer ", NULL},
    {"Bearerabc", NULL},
    {"Basic abc", NULL},
    {"Bearer a b", NULL},
    {"Bearer a\x01", NULL},
    {"Bearer \xc3\xa9", NULL},
    {"", NULL},
};

static void test_bearer_token(void **state)
{
    (void)state;
    unsigned failures = 0;
    char esc[64];
    for (size_t i = 0; i < UNIT_LEN(bearer_rows); i++) {
        const struct bearer_row *r = &bearer_rows[i];
        const char *name = unit_escape(r->value, strlen(r->value), esc, sizeof esc);
        size_t len = 0;
        const char *got = auth_bearer_token(r->value, &len);
        if (!r->token != !got || (got && (len != strlen(r->token) || strncmp(got, r->token, len) != 0)))
            unit_fail(&failures, i, name, "got %.*s, want %s", got ? (int)len : 6, got ? got : "(null)",
                      r->token ? r->token : "(null)");
    }
    size_t len;
    if (auth_bearer_token(NULL, &len))
        unit_fail(&failures, UNIT_LEN(bearer_rows), "NULL", "NULL accepted");
    unit_done(failures);
}

struct cookie_row {
    const char *header;
    const char *value; /* NULL: absent */
};

static const struct cookie_row cookie_rows[] = {
    {"session=abc", "abc"},
    {"a=1; session=abc; b=2", "abc"},
    {"a=1;session=abc", "abc"},
    {"session=\"abc\"", "abc"},
    {"xsession=abc", NULL},
    {"session_x=abc", NULL},
    {"a=session=abc", NULL},
    {"session=", ""},
    {"", NULL},
    {"session", NULL},
};

static void test_cookie_value(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(cookie_rows); i++) {
        const struct cookie_row *r = &cookie_rows[i];
        size_t len = 0;
        const char *got = auth_cookie_value(r->header, "session", &len);
        if (!r->value != !got || (got && (len != strlen(r->value) || strncmp(got, r->value, len) != 0)))
            unit_fail(&failures, i, r->header, "got %.*s, want %s", got ? (int)len : 6, got ? got : "(null)",
                      r->value ? r->value : "(null)");
    }
    size_t len;
    if (auth_cookie_value(NULL, "session", &len) || auth_cookie_value("session=a", NULL, &len))
        unit_fail(&failures, UNIT_LEN(cookie_rows), "NULL", "NULL accepted");
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_jwt_expiry_includes_skew),
        cmocka_unit_test(test_missing_tokens_file_fails_to_start),
        cmocka_unit_test(test_bearer_token),
        cmocka_unit_test(test_cookie_value),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
