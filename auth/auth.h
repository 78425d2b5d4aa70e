/* auth.h: who may call which route: the route's methods (remote-user,
 * bearer, jwt) tried in turn decide in, 401 or 403, with the reason logged. */
#ifndef OPENOVA_AUTH_H
#define OPENOVA_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "auth/credential.h"
#include "core/config.h"

#define AUTH_HEADER_MAX 8192 /* the longest token taken from Authorization or the JWT cookie */
#define AUTH_REASON_MAX 512  /* the reasons logged for one decision; more are dropped */

struct auth;

/* What the caller presented, borrowed from the FastCGI parameters. */
struct auth_presented {
    const char *remote_user;   /* REMOTE_USER, may be NULL */
    const char *authorization; /* HTTP_AUTHORIZATION, may be NULL */
    const char *cookie;        /* HTTP_COOKIE, may be NULL */
    unsigned accepted;         /* the route's methods (auth_method bits) */
};

struct auth_outcome {
    int status;                   /* 0: let in; 401, 403, or 500 (the proxy could not decide) */
    const char *code;             /* static, for the JSON error */
    const char *message;          /* static, for the JSON error */
    const char *www_authenticate; /* static header line ("WWW-Authenticate: ...\r\n") or NULL */
    const char *method;           /* static: the method that let the caller in (or could not decide) */
    struct credential credential;
    char reason[AUTH_REASON_MAX]; /* for the log: every check that failed, never a secret */
};

/* auth_new: loads what the methods of cfg's routes need (tokens file,
 * JWKS, secret); borrows cfg's jwt_cookie, which must outlive it. Returns
 * the policy, or NULL with one sentence in err when a file is missing or
 * invalid or memory runs out. The caller frees it with auth_free. */
struct auth *auth_new(const struct proxy_config *cfg, char *err, size_t errlen);

/* auth_free: frees auth; NULL-safe. No decision may be running. */
void auth_free(struct auth *auth);

/* auth_reload: re-reads the credential files now (SIGHUP), as they are
 * re-read within a second of a change anyway; decisions go on meanwhile
 * with what is loaded. Thread-safe. */
void auth_reload(struct auth *auth);

/* auth_accepted: the methods the route accepts (auth_method bits). Pure. */
unsigned auth_accepted(const struct proxy_config *cfg, enum auth_scope scope);

/* auth_decide: the verdict for one request at time now, into out (which
 * it overwrites). With status 0 out->credential holds the user (NULL for
 * "none") and when it expires, and the caller frees it with
 * credential_clear; with any other status it holds nothing. The files the
 * methods use are re-read first when they changed (looked at once a
 * second). Thread-safe. */
void auth_decide(struct auth *auth, const struct auth_presented *r, time_t now, struct auth_outcome *out);

/* auth_bearer_token: the token of an "Authorization: Bearer <token>"
 * value (scheme case-insensitive), as a pointer into value with its length;
 * NULL when value is not a usable bearer credential. Pure. */
const char *auth_bearer_token(const char *value, size_t *len);

/* auth_cookie_value: the value of cookie name in a Cookie header value,
 * as a pointer into header with its length; NULL when absent. Pure. */
const char *auth_cookie_value(const char *header, const char *name, size_t *len);

#endif
