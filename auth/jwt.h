/* jwt.h: verifies signed JWTs (RS256 and ES256 against a JWKS file, HS256
 * against a secret file), both files re-read when they change. */
#ifndef OPENOVA_JWT_H
#define OPENOVA_JWT_H

#include <stddef.h>
#include <time.h>

#include "auth/credential.h"

#define JWT_MAX 8192      /* the longest token looked at */
#define JWT_USER_MAX 256  /* the longest user: it becomes an HTTP header */
#define JWT_SECRET_MIN 32 /* HS256 keys: RFC 7518 section 3.2 wants 256 bits */

struct jwt_settings {
    const char *jwks_file;   /* NULL: none */
    const char *secret_file; /* NULL: no HS256; the file's bytes (one trailing newline stripped) are the HMAC key */
    const char *issuer;      /* NULL: iss not checked */
    const char *audience;    /* NULL: aud not checked */
    const char *user_claim;  /* NULL: "email"; falls back to "sub" when the named claim is absent */
    long clock_skew_s;       /* leeway for exp and nbf, 0 to 86400 */
};

struct jwt_verifier;

/* jwt_verifier_new: loads the files s names; at least one of
 * jwks_file and secret_file must be set. The JWKS is {"keys": [...]}; its
 * RSA keys (2048 bits or more) serve RS256 and its EC P-256 keys ES256;
 * keys for another use or algorithm, and "oct" keys, are skipped, and a
 * JWKS with no usable key is an error. The secret must be at least
 * JWT_SECRET_MIN bytes. Copies what it needs from s. Returns the
 * verifier, or NULL with one sentence naming the file or setting in err.
 * The caller frees it with jwt_verifier_free. */
struct jwt_verifier *jwt_verifier_new(const struct jwt_settings *s, char *err, size_t errlen);

/* jwt_verifier_free: frees v; NULL-safe. No verification may be
 * running. */
void jwt_verifier_free(struct jwt_verifier *v);

/* jwt_verifier_reload: re-reads the key files now (watched_set_reload).
 * Thread-safe. */
void jwt_verifier_reload(struct jwt_verifier *v);

/* jwt_verify: checks token (a compact JWS) at time now: its signature
 * (RS256, ES256 or HS256 only; HS256 only with the secret, never with a
 * JWKS key), then exp (required), nbf, iss and aud, then the user claim.
 * The files are re-read first when they changed, at most once a second; a
 * file that became unreadable or invalid keeps the previous keys and is
 * logged once per change. Safe to call from many threads at once.
 * Returns PROXY_OK: out->user is the user (printable ASCII, at most
 * JWT_USER_MAX bytes), out->expires is exp; the caller frees out with
 * credential_clear. PROXY_ERR_REFUSED: why names the check that failed,
 * never the token; out is untouched. PROXY_ERR_NOMEM: out of memory; out
 * is untouched. why may be NULL. */
enum proxy_err jwt_verify(struct jwt_verifier *v, const char *token, time_t now, struct credential *out, char *why,
                          size_t whylen);

#endif
