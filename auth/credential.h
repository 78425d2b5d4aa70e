/* credential.h: what an authentication method learns about a caller and
 * how it answers; shared by the tokens list, the JWT verifier and the policy. */
#ifndef OPENOVA_CREDENTIAL_H
#define OPENOVA_CREDENTIAL_H

#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include "core/error.h"

/* A method's verdict is an enum proxy_err: PROXY_OK, the caller is in and
 * the credential filled in; PROXY_ERR_REFUSED, the method's why buffer
 * says exactly which check failed (never the token); PROXY_ERR_NOMEM, the
 * proxy could not decide for want of memory. */

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
