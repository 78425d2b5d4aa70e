/* http.h: HTTP vocabulary shared by every layer. Pure. */
#ifndef OPENOVA_HTTP_H
#define OPENOVA_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* http_status_reason: the reason phrase for an HTTP status ("" if unknown). */
const char *http_status_reason(int status);

/* http_hex_value: the value of a hex digit (either case), or -1. */
int http_hex_value(char c);

/* http_value_acceptable: visible ASCII and spaces only, 1..max chars:
 * nothing that could end a header line or smuggle another. */
bool http_value_acceptable(const char *value, size_t max);

/* http_url_char_plain: whether a base URL (the upstream's, the console's
 * template) may hold c: no space or control character, no query or
 * fragment. */
bool http_url_char_plain(char c);

/* http_hostname_valid: a DNS host name of RFC 1123 (2.1): labels of 1 to 63
 * letters, digits and hyphens, neither starting nor ending with a hyphen,
 * joined by single dots, at most 253 characters in all, no trailing dot,
 * the last label starting with a letter. Nothing else: no port, no user,
 * no percent, no IP address in any form. */
#define HTTP_HOSTNAME_MAX 253
bool http_hostname_valid(const char *name, size_t len);

#endif
