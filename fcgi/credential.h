/* credential.h: what an authentication method learns about a caller, and
 * its verdict. Shared by the bearer token list, the JWT verifier and the
 * dispatcher's policy. */
#ifndef OPENOVA_CREDENTIAL_H
#define OPENOVA_CREDENTIAL_H

#include <stddef.h>
#include <stdlib.h>
#include <time.h>

enum fcgi_auth_verdict {
    FCGI_AUTH_ACCEPTED, /* out is filled in */
    FCGI_AUTH_REJECTED, /* why says exactly which check failed (never the token) */
    FCGI_AUTH_FAILED,   /* the proxy could not decide: out of memory */
};

struct fcgi_credential {
    char *user;      /* malloc'd: the user sent upstream */
    time_t expires;  /* when the credential stops being valid; 0: never */
};

/* fcgi_credential_clear: frees what c holds and zeroes it; NULL-safe. */
static inline void fcgi_credential_clear(struct fcgi_credential *c)
{
    if (!c)
        return;
    free(c->user);
    c->user = NULL;
    c->expires = 0;
}

#endif
