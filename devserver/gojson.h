/* gojson.h: JSON text written the way the reference flow server's Go
 * encoding/json writes it, so the devserver's snapshots and frames carry the
 * same bytes: HTML-safe string escapes and Go's float64 formatting. */
#ifndef OPENOVA_DS_GOJSON_H
#define OPENOVA_DS_GOJSON_H

#include <stddef.h>

#include <json-c/json.h>

/* ds_gojson_encode: value as compact JSON, members in the object's own
 * order (the caller builds canonical order; Go sorts map keys, so meta
 * objects are built sorted). Strings: '"' and '\\' escaped, \b \f \n \r \t
 * short, other controls \u00XX, '<' '>' '&' as \u003c \u003e \u0026,
 * U+2028 and U+2029 escaped, an invalid UTF-8 byte as \ufffd; '/' as is.
 * json-c integers print as integers; doubles as Go prints a float64
 * (shortest round-trip digits; 'f' form for 1e-6 <= |x| < 1e21, else
 * "1e+21", "1e-7"). Returns a malloc'd NUL-terminated string the caller
 * frees, its length in *len (may be NULL); NULL when out of memory. */
char *ds_gojson_encode(struct json_object *value, size_t *len);

/* ds_gojson_float: one float64 as Go's encoding/json writes it, into out
 * (32 bytes suffice). Returns the length. Pure. */
size_t ds_gojson_float(double value, char out[32]);

/* ds_utf8_sanitized: a copy of len bytes of text in which every byte that
 * does not start a valid UTF-8 sequence (RFC 3629) is replaced by U+FFFD,
 * one replacement per byte, as Go's decoder does inside strings.
 * Returns a malloc'd NUL-terminated copy (length in *out_len), or NULL when
 * out of memory. */
char *ds_utf8_sanitized(const char *text, size_t len, size_t *out_len);

/* ds_utf8_seq_len: the length (1-4) of the valid UTF-8 sequence at p
 * (n bytes available), or 0 when p does not start one. Pure. */
size_t ds_utf8_seq_len(const unsigned char *p, size_t n);

#endif
