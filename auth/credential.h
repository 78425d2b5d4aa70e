/* credential.h: what an authentication method learns about a caller, and
 * its verdict. Shared by the bearer token list, the JWT verifier and the
 * dispatcher's policy. */
#ifndef OPENOVA_CREDENTIAL_H
#define OPENOVA_CREDENTIAL_H

#include <stddef.h>
#include <stdlib.h>
#include <time.h>

enum auth_verdict {
    AUTH_ACCEPTED, /* out is filled in */
    AUTH_REJECTED, /* why says exactly which check failed (never the token) */
    AUTH_FAILED,   /* the proxy could not decide: out of memory */
};

struct credential {
    char *user;      /* malloc'd: the user sent upstream */
    time_t expires;  /* when the credential stops being valid; 0: never */
};

/* credential_clear: frees what c holds and zeroes it; NULL-safe. */
static inline void credential_clear(struct credential *c)
{
    if (!c)
        return;
    free(c->user);
    c->user = NULL;
    c->expires = 0;
}

#endif
