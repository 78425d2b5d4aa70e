/* url_template.h: the console's upstream URL of a deployment, made from
 * OPENOVA_FLOW_UPSTREAM_TEMPLATE and the Sovereign's FQDN in its record.
 * Pure. */
#ifndef OPENOVA_URL_TEMPLATE_H
#define OPENOVA_URL_TEMPLATE_H

#include <stddef.h>

#include "core/error.h"

#define URL_TEMPLATE_PLACEHOLDER "{sovereignFQDN}"
#define URL_TEMPLATE_DEFAULT "https://openova-flow." URL_TEMPLATE_PLACEHOLDER

/* url_template_check: whether tmpl makes an http or https base URL: it
 * starts with http:// or https://, holds the placeholder exactly once and
 * no other brace, and has no space, control character, query, fragment or
 * user info (the URL is logged).
 * PROXY_OK, or PROXY_ERR_INVALID with the reason in why. */
enum proxy_err url_template_check(const char *tmpl, char *why, size_t whylen);

/* url_template_expand: tmpl (checked) with its placeholder replaced by
 * fqdn (a host name that http_hostname_valid accepts, the only thing that
 * makes the result a URL as well), any trailing '/' dropped; a malloc'd
 * string the caller frees, NULL when out of memory. */
char *url_template_expand(const char *tmpl, const char *fqdn);

#endif
