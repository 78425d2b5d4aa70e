/* auth.c: the authentication policy: the first of a route's methods that
 * accepts the caller lets it in; a caller only another route takes gets 403. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "auth/jwt.h"
#include "auth/tokens.h"
#include "core/error.h"
#include "core/http.h"

#define REMOTE_USER_MAX 256 /* the longest REMOTE_USER taken: it becomes an HTTP header upstream */
#define METHOD_WHY_MAX 256  /* one method's sentence on why it refused */

#define CHALLENGE "WWW-Authenticate: Bearer realm=\"openova-flow\""

struct auth {
    unsigned configured; /* every method some route accepts */
    long clock_skew_s;
    const char *jwt_cookie;
    struct tokens *tokens;
    struct jwt_verifier *jwt;
};

struct auth *auth_new(const struct proxy_config *cfg, char *err, size_t errlen)
{
    struct auth *auth = calloc(1, sizeof *auth);
    if (!auth) {
        proxy_say(err, errlen, "out of memory");
        return NULL;
    }
    auth->configured = cfg->auth_read | cfg->auth_events;
    auth->jwt_cookie = cfg->jwt_cookie;
    auth->clock_skew_s = (cfg->jwt_clock_skew_ms + 999) / 1000;
    if ((auth->configured & AUTH_BEARER) && !(auth->tokens = tokens_new(cfg->tokens_file, err, errlen)))
        goto fail;
    if (auth->configured & AUTH_JWT) {
        struct jwt_settings settings = {
            .jwks_file = cfg->jwks_file,
            .secret_file = cfg->jwt_secret_file,
            .issuer = cfg->jwt_issuer,
            .audience = cfg->jwt_audience,
            .user_claim = cfg->jwt_user_claim,
            .clock_skew_s = auth->clock_skew_s,
        };
        if (!(auth->jwt = jwt_verifier_new(&settings, err, errlen)))
            goto fail;
    }
    return auth;
fail:
    auth_free(auth);
    return NULL;
}

void auth_reload(struct auth *auth)
{
    if (auth->tokens)
        tokens_reload(auth->tokens);
    if (auth->jwt)
        jwt_verifier_reload(auth->jwt);
}

void auth_free(struct auth *auth)
{
    if (!auth)
        return;
    tokens_free(auth->tokens);
    jwt_verifier_free(auth->jwt);
    free(auth);
}

unsigned auth_accepted(const struct proxy_config *cfg, enum auth_scope scope)
{
    switch (scope) {
    case AUTH_SCOPE_EVENTS:
        return cfg->auth_events;
    case AUTH_SCOPE_DELETE:
        return cfg->auth_delete;
    case AUTH_SCOPE_READ:
        break;
    }
    return cfg->auth_read;
}

const char *auth_bearer_token(const char *value, size_t *len)
{
    if (!value || strncasecmp(value, "Bearer", 6) != 0 || (value[6] != ' ' && value[6] != '\t'))
        return NULL;
    const char *token = value + 7;
    while (*token == ' ' || *token == '\t')
        token++;
    size_t n = strlen(token);
    while (n > 0 && (token[n - 1] == ' ' || token[n - 1] == '\t'))
        n--;
    /* RFC 6750 token68: no inner spaces or control characters. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)token[i];
        if (c <= 0x20 || c >= 0x7f)
            return NULL;
    }
    if (n == 0)
        return NULL;
    *len = n;
    return token;
}

const char *auth_cookie_value(const char *header, const char *name, size_t *len)
{
    if (!header || !name || !*name)
        return NULL;
    size_t name_len = strlen(name);
    const char *p = header;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        const char *end = p + strcspn(p, ";");
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq && (size_t)(eq - p) == name_len && memcmp(p, name, name_len) == 0) {
            const char *v = eq + 1;
            size_t n = (size_t)(end - v);
            while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
                v++;
                n -= 2;
            }
            *len = n;
            return v;
        }
        p = end;
    }
    return NULL;
}

/* The credentials one request carries, copied so the verifiers get
 * NUL-terminated strings; wiped when done. */
struct presented {
    const char *remote_user;
    char bearer[AUTH_HEADER_MAX + 1];
    char cookie[AUTH_HEADER_MAX + 1];
    bool has_bearer, has_cookie, any;
};

/* note: appends one reason to out->reason, "; " between reasons; what does
 * not fit is dropped. */
static void note(struct auth_outcome *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct auth_outcome *out, const char *fmt, ...)
{
    size_t used = strlen(out->reason);
    if (used + 3 >= sizeof out->reason)
        return;
    snprintf(out->reason + used, sizeof out->reason - used, "%s", used ? "; " : "");
    used = strlen(out->reason);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reason + used, sizeof out->reason - used, fmt, ap);
    va_end(ap);
}

/* gather: what r carries into p, noting in out what cannot be used. */
static void gather(const struct auth *auth, const struct auth_presented *r, struct presented *p,
                   struct auth_outcome *out)
{
    p->remote_user = r->remote_user && *r->remote_user ? r->remote_user : NULL;
    p->any = p->remote_user != NULL;
    /* Authorization only counts where a method reads it: behind basic auth
     * in the web server it carries a password the app has no use for. */
    if (r->authorization && *r->authorization && (auth->configured & (AUTH_BEARER | AUTH_JWT))) {
        p->any = true;
        size_t n;
        const char *token = auth_bearer_token(r->authorization, &n);
        if (!token)
            note(out, "authorization: not a Bearer credential");
        else if (n > AUTH_HEADER_MAX)
            note(out, "authorization: token longer than %d bytes", AUTH_HEADER_MAX);
        else {
            memcpy(p->bearer, token, n);
            p->bearer[n] = '\0';
            p->has_bearer = true;
        }
    }
    size_t n;
    const char *cookie = auth->jwt_cookie ? auth_cookie_value(r->cookie, auth->jwt_cookie, &n) : NULL;
    if (cookie && n > 0) {
        p->any = true;
        if (n > AUTH_HEADER_MAX)
            note(out, "cookie: token longer than %d bytes", AUTH_HEADER_MAX);
        else {
            memcpy(p->cookie, cookie, n);
            p->cookie[n] = '\0';
            p->has_cookie = true;
        }
    }
}

/* The methods: each returns a verdict as in credential.h, filling in
 * out->credential when it lets the caller in and noting its reason in out
 * when it does not. */

static enum proxy_err try_remote_user(const struct presented *p, struct auth_outcome *out)
{
    if (!p->remote_user) {
        note(out, "remote-user: absent");
        return PROXY_ERR_REFUSED;
    }
    if (!http_value_acceptable(p->remote_user, REMOTE_USER_MAX)) {
        note(out, "remote-user: not printable or longer than %d", REMOTE_USER_MAX);
        return PROXY_ERR_REFUSED;
    }
    out->credential.user = strdup(p->remote_user);
    return out->credential.user ? PROXY_OK : PROXY_ERR_NOMEM;
}

static enum proxy_err try_bearer(struct auth *auth, const struct presented *p, time_t now, struct auth_outcome *out)
{
    if (!p->has_bearer) {
        note(out, "bearer: no bearer token");
        return PROXY_ERR_REFUSED;
    }
    char why[METHOD_WHY_MAX] = "";
    enum proxy_err rc = tokens_check(auth->tokens, p->bearer, now, &out->credential, why, sizeof why);
    if (rc != PROXY_OK)
        note(out, "%s", why);
    return rc;
}

/* try_jwt: the bearer token first, then the cookie's. */
static enum proxy_err try_jwt(struct auth *auth, const struct presented *p, time_t now, struct auth_outcome *out)
{
    if (!p->has_bearer && !p->has_cookie) {
        note(out, "%s", auth->jwt_cookie ? "jwt: no bearer token and no token cookie" : "jwt: no bearer token");
        return PROXY_ERR_REFUSED;
    }
    const char *tokens[2] = {p->has_bearer ? p->bearer : NULL, p->has_cookie ? p->cookie : NULL};
    enum proxy_err rc = PROXY_ERR_REFUSED;
    for (int i = 0; i < 2 && rc == PROXY_ERR_REFUSED; i++) {
        if (!tokens[i])
            continue;
        char why[METHOD_WHY_MAX] = "";
        rc = jwt_verify(auth->jwt, tokens[i], now, &out->credential, why, sizeof why);
        if (rc != PROXY_OK)
            note(out, i == 0 ? "%s (bearer)" : "%s (cookie)", why);
    }
    return rc;
}

/* try_methods: the methods of mask in a fixed order; the first that does
 * not refuse decides, and out->method names it. */
static enum proxy_err try_methods(struct auth *auth, unsigned mask, const struct presented *p, time_t now,
                                  struct auth_outcome *out)
{
    enum proxy_err rc = PROXY_ERR_REFUSED;
    if (mask & AUTH_REMOTE_USER) {
        rc = try_remote_user(p, out);
        if (rc != PROXY_ERR_REFUSED) {
            out->method = "remote-user";
            return rc;
        }
    }
    if ((mask & AUTH_BEARER) && auth->tokens) {
        rc = try_bearer(auth, p, now, out);
        if (rc != PROXY_ERR_REFUSED) {
            out->method = "bearer";
            return rc;
        }
    }
    if ((mask & AUTH_JWT) && auth->jwt) {
        rc = try_jwt(auth, p, now, out);
        if (rc != PROXY_ERR_REFUSED) {
            out->method = "jwt";
            /* The leeway that let the token in also bounds how long it lasts. */
            if (rc == PROXY_OK && out->credential.expires)
                out->credential.expires += auth->clock_skew_s;
            return rc;
        }
    }
    return PROXY_ERR_REFUSED;
}

/* refuse: every method of the route refused p: 403 when a method of
 * another route accepts it, else 401, with the challenge of RFC 6750
 * section 3 on routes that take a bearer token. */
static void refuse(struct auth *auth, const struct auth_presented *r, const struct presented *p, time_t now,
                   struct auth_outcome *out)
{
    bool bearer_route = r->accepted & (AUTH_BEARER | AUTH_JWT);
    unsigned others = auth->configured & ~r->accepted;
    struct auth_outcome elsewhere;
    memset(&elsewhere, 0, sizeof elsewhere);
    if (others && p->any && try_methods(auth, others, p, now, &elsewhere) == PROXY_OK) {
        out->status = 403;
        out->code = "forbidden";
        out->message = "This credential may not use this route.";
        out->www_authenticate = bearer_route ? CHALLENGE ", error=\"insufficient_scope\"\r\n" : NULL;
        note(out, "forbidden: accepted by %s, which this route does not accept", elsewhere.method);
    } else {
        out->status = 401;
        out->code = p->any ? "invalid_credentials" : "unauthorized";
        out->message = p->any ? "The credential was not accepted." : "Authentication is required.";
        out->www_authenticate = !bearer_route ? NULL
                                : p->any      ? CHALLENGE ", error=\"invalid_token\"\r\n"
                                              : CHALLENGE "\r\n";
    }
    credential_clear(&elsewhere.credential);
}

/* fail: the proxy could not decide (err): the answer error.c gives it. */
static void fail(struct auth_outcome *out, enum proxy_err err)
{
    out->status = proxy_err_status(err);
    out->code = proxy_err_code(err);
    out->message = proxy_err_message(err);
}

void auth_decide(struct auth *auth, const struct auth_presented *r, time_t now, struct auth_outcome *out)
{
    memset(out, 0, sizeof *out);
    if (r->accepted == AUTH_NONE) {
        out->method = "none";
        return;
    }
    struct presented *p = calloc(1, sizeof *p);
    if (!p) {
        fail(out, PROXY_ERR_NOMEM);
        snprintf(out->reason, sizeof out->reason, "out of memory");
        return;
    }
    gather(auth, r, p, out);
    enum proxy_err rc = try_methods(auth, r->accepted, p, now, out);
    if (rc != PROXY_OK) {
        credential_clear(&out->credential);
        if (rc == PROXY_ERR_REFUSED)
            refuse(auth, r, p, now, out);
        else
            fail(out, rc);
    }
    explicit_bzero(p, sizeof *p);
    free(p);
}
