/* cidr.c: address ranges with inet_pton, and their match. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cidr.h"

/* One address into c (bits: the whole address); false when it is none. */
static bool parse_address(const char *text, struct cidr *c)
{
    memset(c, 0, sizeof *c);
    if (inet_pton(AF_INET, text, c->addr) == 1) {
        c->bits = 32;
        return true;
    }
    if (inet_pton(AF_INET6, text, c->addr) == 1) {
        c->v6 = true;
        c->bits = 128;
        return true;
    }
    return false;
}

/* "a.b.c.d/n" or "x::/n" or a bare address. */
static bool parse_item(const char *item, struct cidr *c)
{
    char addr[64];
    const char *slash = strchr(item, '/');
    size_t len = slash ? (size_t)(slash - item) : strlen(item);
    if (len == 0 || len >= sizeof addr)
        return false;
    memcpy(addr, item, len);
    addr[len] = '\0';
    if (!parse_address(addr, c))
        return false;
    if (!slash)
        return true;
    const char *digits = slash + 1;
    if (!*digits || strlen(digits) > 3)
        return false;
    for (const char *d = digits; *d; d++)
        if (!isdigit((unsigned char)*d))
            return false;
    unsigned bits = (unsigned)atoi(digits);
    if (bits > c->bits)
        return false;
    c->bits = bits;
    return true;
}

static bool prefix_equal(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (!rest)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

enum proxy_err cidr_list_parse(const char *text, struct cidr_list *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!(out->items = calloc(CIDR_LIST_MAX, sizeof *out->items))) {
        proxy_say(err, errlen, "out of memory");
        return PROXY_ERR_NOMEM;
    }
    const char *p = text;
    while (*p) {
        size_t len = strcspn(p, ",");
        char item[80];
        const char *start = p, *end = p + len;
        while (start < end && isspace((unsigned char)*start))
            start++;
        while (end > start && isspace((unsigned char)end[-1]))
            end--;
        size_t n = (size_t)(end - start);
        if (n) {
            snprintf(item, sizeof item, "%.*s", (int)(n < sizeof item ? n : sizeof item - 1), start);
            if (n >= sizeof item || out->count == CIDR_LIST_MAX || !parse_item(item, &out->items[out->count])) {
                if (out->count == CIDR_LIST_MAX)
                    proxy_say(err, errlen, "more than %d ranges", CIDR_LIST_MAX);
                else
                    proxy_say(err, errlen, "\"%.40s\" is not an address or a range", item);
                cidr_list_free(out);
                return PROXY_ERR_INVALID;
            }
            out->count++;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return PROXY_OK;
}

void cidr_list_free(struct cidr_list *list)
{
    if (!list)
        return;
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

bool cidr_list_match(const struct cidr_list *list, const char *address)
{
    struct cidr a;
    if (!address || !parse_address(address, &a))
        return false;
    static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (a.v6 && memcmp(a.addr, v4_mapped, sizeof v4_mapped) == 0) {
        memmove(a.addr, a.addr + 12, 4);
        a.v6 = false;
    }
    for (size_t i = 0; i < list->count; i++)
        if (list->items[i].v6 == a.v6 && prefix_equal(list->items[i].addr, a.addr, list->items[i].bits))
            return true;
    return false;
}

const char *cidr_list_text(const struct cidr_list *list, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < list->count && used < outlen; i++) {
        char addr[INET6_ADDRSTRLEN];
        const struct cidr *c = &list->items[i];
        inet_ntop(c->v6 ? AF_INET6 : AF_INET, c->addr, addr, sizeof addr);
        int n = snprintf(out + used, outlen - used, "%s%s/%u", used ? "," : "", addr, c->bits);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return out;
}
