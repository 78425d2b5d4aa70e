/* url_template.c: OPENOVA_FLOW_UPSTREAM_TEMPLATE checked once, expanded per
 * deployment. */
#include <stdlib.h>
#include <string.h>

#include "core/http.h"
#include "core/url_template.h"

enum proxy_err url_template_check(const char *tmpl, char *why, size_t whylen)
{
    if (strncmp(tmpl, "https://", 8) != 0 && strncmp(tmpl, "http://", 7) != 0) {
        proxy_say(why, whylen, "must start with http:// or https://");
        return PROXY_ERR_INVALID;
    }
    const char *at = strstr(tmpl, URL_TEMPLATE_PLACEHOLDER);
    if (!at || strstr(at + 1, URL_TEMPLATE_PLACEHOLDER)) {
        proxy_say(why, whylen, "must hold %s exactly once", URL_TEMPLATE_PLACEHOLDER);
        return PROXY_ERR_INVALID;
    }
    size_t placeholder_len = strlen(URL_TEMPLATE_PLACEHOLDER);
    for (const char *c = tmpl; *c; c++) {
        if (c == at) {
            c += placeholder_len - 1;
            continue;
        }
        if (*c == '{' || *c == '}') {
            proxy_say(why, whylen, "has a brace outside %s, its only placeholder", URL_TEMPLATE_PLACEHOLDER);
            return PROXY_ERR_INVALID;
        }
        if (!http_url_char_plain(*c)) {
            proxy_say(why, whylen, "must be a plain base URL without spaces, query or fragment");
            return PROXY_ERR_INVALID;
        }
        if (*c == '@') {
            /* The URL of each call is logged: no secret may be part of it. */
            proxy_say(why, whylen, "must hold no user or password (OPENOVA_FLOW_UPSTREAM_TOKEN_FILE and "
                                   "OPENOVA_FLOW_CLIENT_CERT carry credentials)");
            return PROXY_ERR_INVALID;
        }
    }
    return PROXY_OK;
}

char *url_template_expand(const char *tmpl, const char *fqdn)
{
    const char *at = strstr(tmpl, URL_TEMPLATE_PLACEHOLDER);
    if (!at)
        return NULL;
    size_t head = (size_t)(at - tmpl), fqdn_len = strlen(fqdn);
    const char *tail = at + strlen(URL_TEMPLATE_PLACEHOLDER);
    size_t tail_len = strlen(tail);
    char *url = malloc(head + fqdn_len + tail_len + 1);
    if (!url)
        return NULL;
    memcpy(url, tmpl, head);
    memcpy(url + head, fqdn, fqdn_len);
    memcpy(url + head + fqdn_len, tail, tail_len + 1);
    size_t n = head + fqdn_len + tail_len;
    while (n > 0 && url[n - 1] == '/')
        url[--n] = '\0';
    return url;
}
