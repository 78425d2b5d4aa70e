/* duration.h: Go's duration syntax ("10s", "1500ms", "1m30s", "-1.5h"), the
 * one parser of every binary; each caller converts to the unit it needs. */
#ifndef OPENOVA_DURATION_H
#define OPENOVA_DURATION_H

#include <stdint.h>

#include "core/error.h"

#define DURATION_NS_PER_MS INT64_C(1000000)

/* duration_parse: reads text as Go's time.ParseDuration does: an optional
 * sign, then one or more terms, each a decimal number ("5", "1.5", ".5" or
 * "1.") and a unit (ns, us, µs with U+00B5 or U+03BC, ms, s, m, h), with no
 * spaces; "0" alone, signed or not, needs no unit. A term's fraction is
 * truncated to whole nanoseconds; fraction digits past the eighteenth are
 * ignored. The range is Go's, an int64 count of nanoseconds: -2^63 to
 * 2^63 - 1. Returns PROXY_OK with *ns set, or PROXY_ERR_INVALID (text NULL,
 * not a duration, or out of range) with *ns untouched. Pure. */
enum proxy_err duration_parse(const char *text, int64_t *ns);

#endif
