/* cidr.h: client address ranges ("127.0.0.0/8,::1"), as the metrics and
 * status pages are allowed to them, and the match of an address. */
#ifndef OPENOVA_CIDR_H
#define OPENOVA_CIDR_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

struct cidr {
    unsigned char addr[16]; /* network order; an IPv4 range in the first 4 */
    unsigned bits;
    bool v6;
};

struct cidr_list {
    struct cidr *items;
    size_t count;
};

#define CIDR_LIST_MAX 64

/* cidr_list_parse: a comma-separated list of addresses and ranges
 * ("10.0.0.0/8", "::1", "fd00::/8"; a bare address is one host; white space
 * around items ignored; "" an empty list) into out, at most CIDR_LIST_MAX
 * items. Returns PROXY_OK; PROXY_ERR_INVALID with the sentence (the bad
 * item named) and out empty; or PROXY_ERR_NOMEM. Free with cidr_list_free. */
enum proxy_err cidr_list_parse(const char *text, struct cidr_list *out, char *err, size_t errlen);

/* cidr_list_free: NULL-safe, idempotent. */
void cidr_list_free(struct cidr_list *list);

/* cidr_list_match: whether address (text, as REMOTE_ADDR gives it) is in
 * one of the ranges. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches
 * IPv4 ranges; an address that does not parse matches nothing. Pure. */
bool cidr_list_match(const struct cidr_list *list, const char *address);

/* cidr_list_text: the list back as text ("127.0.0.0/8,::1/128") into out. */
const char *cidr_list_text(const struct cidr_list *list, char *out, size_t outlen);

#endif
