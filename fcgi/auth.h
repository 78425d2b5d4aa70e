/* auth.h: who may call which route. Tries the route's accepted methods
 * (remote-user, bearer, jwt) in turn and decides 401, 403 or in; the log
 * gets the exact reason, the client a short code. */
#ifndef OPENOVA_AUTH_H
#define OPENOVA_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config.h"
#include "credential.h"

#define FCGI_AUTH_HEADER_MAX 8192 /* Authorization and the JWT cookie's value */

struct fcgi_auth;

/* What the caller presented, borrowed from the FastCGI parameters. */
struct fcgi_auth_request {
    const char *remote_user;   /* REMOTE_USER, may be NULL */
    const char *authorization; /* HTTP_AUTHORIZATION, may be NULL */
    const char *cookie;        /* HTTP_COOKIE, may be NULL */
    unsigned accepted;         /* the route's methods (fcgi_auth_method bits) */
};

struct fcgi_auth_outcome {
    int status;                   /* 0: let in; 401, 403, or 500 */
    const char *code;             /* static, for the JSON error */
    const char *message;          /* static, for the JSON error */
    const char *www_authenticate; /* static header line ("WWW-Authenticate: ...\r\n") or NULL */
    const char *method;           /* the method that let the caller in */
    struct fcgi_credential credential;
    char reason[512];             /* for the log: every check that failed, never a secret */
};

/* fcgi_auth_new: loads what cfg's methods need (tokens file, JWKS, secret).
 * NULL with one sentence in err when a file is missing or invalid. */
struct fcgi_auth *fcgi_auth_new(const struct fcgi_config *cfg, char *err, size_t errlen);
void fcgi_auth_free(struct fcgi_auth *auth);

/* fcgi_auth_accepted: the methods the route accepts. */
unsigned fcgi_auth_accepted(const struct fcgi_config *cfg, bool events_route);

/* fcgi_auth_decide: the verdict for one request at time now. With status 0
 * out->credential holds the user (NULL for "none") and when it expires; the
 * caller clears it. Thread-safe. */
void fcgi_auth_decide(struct fcgi_auth *auth, const struct fcgi_auth_request *r, time_t now,
                      struct fcgi_auth_outcome *out);

/* fcgi_auth_bearer_token: the token of an "Authorization: Bearer <token>"
 * value (scheme case-insensitive), as a pointer into value with its length;
 * NULL when value is not a usable bearer credential. Pure. */
const char *fcgi_auth_bearer_token(const char *value, size_t *len);

/* fcgi_auth_cookie_value: the value of cookie name in a Cookie header value,
 * as a pointer into header with its length; NULL when absent. Pure. */
const char *fcgi_auth_cookie_value(const char *header, const char *name, size_t *len);

#endif
