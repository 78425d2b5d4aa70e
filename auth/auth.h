/* auth.h: who may call which route. Tries the route's accepted methods
 * (remote-user, bearer, jwt) in turn and decides 401, 403 or in; the log
 * gets the exact reason, the client a short code. */
#ifndef OPENOVA_AUTH_H
#define OPENOVA_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/config.h"
#include "auth/credential.h"

#define AUTH_HEADER_MAX 8192 /* Authorization and the JWT cookie's value */

struct auth;

/* What the caller presented, borrowed from the FastCGI parameters. */
struct auth_presented {
    const char *remote_user;   /* REMOTE_USER, may be NULL */
    const char *authorization; /* HTTP_AUTHORIZATION, may be NULL */
    const char *cookie;        /* HTTP_COOKIE, may be NULL */
    unsigned accepted;         /* the route's methods (auth_method bits) */
};

struct auth_outcome {
    int status;                   /* 0: let in; 401, 403, or 500 */
    const char *code;             /* static, for the JSON error */
    const char *message;          /* static, for the JSON error */
    const char *www_authenticate; /* static header line ("WWW-Authenticate: ...\r\n") or NULL */
    const char *method;           /* the method that let the caller in */
    struct credential credential;
    char reason[512];             /* for the log: every check that failed, never a secret */
};

/* auth_new: loads what cfg's methods need (tokens file, JWKS, secret).
 * NULL with one sentence in err when a file is missing or invalid. */
struct auth *auth_new(const struct proxy_config *cfg, char *err, size_t errlen);
void auth_free(struct auth *auth);

/* auth_accepted: the methods the route accepts. */
unsigned auth_accepted(const struct proxy_config *cfg, bool events_route);

/* auth_decide: the verdict for one request at time now. With status 0
 * out->credential holds the user (NULL for "none") and when it expires; the
 * caller clears it. Thread-safe. */
void auth_decide(struct auth *auth, const struct auth_presented *r, time_t now,
                      struct auth_outcome *out);

/* auth_bearer_token: the token of an "Authorization: Bearer <token>"
 * value (scheme case-insensitive), as a pointer into value with its length;
 * NULL when value is not a usable bearer credential. Pure. */
const char *auth_bearer_token(const char *value, size_t *len);

/* auth_cookie_value: the value of cookie name in a Cookie header value,
 * as a pointer into header with its length; NULL when absent. Pure. */
const char *auth_cookie_value(const char *header, const char *name, size_t *len);

#endif
