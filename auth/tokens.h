/* tokens.h: static bearer tokens, kept as SHA-256 digests in a file that is
 * re-read when it changes. */
#ifndef OPENOVA_TOKENS_H
#define OPENOVA_TOKENS_H

#include <stddef.h>
#include <time.h>

#include "auth/credential.h"

/* The longest token name; a name becomes the user sent upstream. */
#define TOKENS_NAME_MAX 128

struct tokens;

/* tokens_new: loads the tokens file at path. One token a line, as the
 * SHA-256 hex digest of the token (64 hex digits, either case), optionally
 * followed by whitespace and a name (printable ASCII, no spaces, at most
 * TOKENS_NAME_MAX characters; a lone "-", which sha256sum writes for its
 * standard input, is no name). Blank lines and lines whose first non-blank
 * character is '#' are ignored; an empty list is valid and lets no one in.
 * A digest listed twice is an error. Returns the list, or NULL with one
 * sentence naming the file (and the line, for a bad line) in err. The
 * caller frees it with tokens_free. */
struct tokens *tokens_new(const char *path, char *err, size_t errlen);

/* tokens_check: whether token (the bearer token as presented) is in the
 * list. The file is re-read first when it changed, at most once a second;
 * a file that became unreadable or invalid keeps the previous list and is
 * logged once per change. Every entry is compared, so the time taken does
 * not depend on which one matches. Safe to call from many threads at once.
 * Returns PROXY_OK: out->user is the entry's name or "token-" and the
 * digest's first 8 hex digits, out->expires is 0; the caller frees out with
 * credential_clear. PROXY_ERR_REFUSED: why says which check failed, never
 * the token nor its digest; out is untouched. PROXY_ERR_NOMEM: out of
 * memory (hashing the token included); out is untouched. why may be NULL.
 * now is unused (tokens do not expire) and kept for symmetry with
 * jwt_verify. */
enum proxy_err tokens_check(struct tokens *t, const char *token, time_t now, struct credential *out, char *why,
                            size_t whylen);

/* tokens_free: frees t; NULL-safe. No check may be running. */
void tokens_free(struct tokens *t);

/* tokens_reload: re-reads the file now (watched_set_reload). Thread-safe. */
void tokens_reload(struct tokens *t);

#endif
