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

#endif
