/* credential.h: what an authentication method learns about a caller.
 * Shared by the bearer token list, the JWT verifier and the dispatcher's
 * policy. A method's verdict is an enum proxy_err: PROXY_OK, the caller is
 * in (the credential is filled in); PROXY_ERR_REFUSED, the method's why
 * buffer says exactly which check failed (never the token);
 * PROXY_ERR_NOMEM, the proxy could not decide for want of memory. */
#ifndef OPENOVA_CREDENTIAL_H
#define OPENOVA_CREDENTIAL_H

#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include "core/error.h"

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
