/* http.c: HTTP vocabulary shared by every layer: reason phrases and the
 * check that a value may stand in a header line. Pure. */
#include <string.h>

#include "core/http.h"

const char *http_status_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
    }
}

bool http_value_acceptable(const char *value, size_t max)
{
    size_t n = 0;
    for (const char *c = value; *c; c++, n++) {
        if (n >= max || (unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            return false;
    }
    return n > 0;
}

int http_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool http_url_char_plain(char c)
{
    return (unsigned char)c > ' ' && c != 0x7f && c != '?' && c != '#';
}

static bool hostname_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

bool http_hostname_valid(const char *name, size_t len)
{
    if (len == 0 || len > HTTP_HOSTNAME_MAX)
        return false;
    /* The last label starts with a letter (RFC 1123 2.1): no dotted quad,
     * and none of the other forms libcurl reads as an IPv4 address
     * ("2130706433", "127.1", "1.0x7f"). */
    const char *last = memrchr(name, '.', len);
    last = last ? last + 1 : name;
    if (last < name + len && !((*last >= 'a' && *last <= 'z') || (*last >= 'A' && *last <= 'Z')))
        return false;
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || name[i] == '.') {
            /* An empty label (leading, doubled or trailing dot), or one too long. */
            if (label == 0 || label > 63 || name[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!hostname_char(name[i]) || (label == 0 && name[i] == '-'))
            return false;
        label++;
    }
    return true;
}
