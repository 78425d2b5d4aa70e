/* gojson.c: JSON written as Go's encoding/json writes it (see gojson.h). */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gojson.h"

/* The encoder's output; failed is sticky, so callers check once at the end. */
struct out {
    char *p;
    size_t len, cap;
    bool failed;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (n + 1 > o->cap - o->len) {
        size_t cap = o->cap ? o->cap : 256;
        while (n + 1 > cap - o->len)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->failed = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

size_t ds_utf8_seq_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xbf; /* range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* no overlong forms */
        if (c == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f; /* nothing past U+10FFFF */
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        unsigned char b = p[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf))
            return 0;
    }
    return len;
}

char *ds_utf8_sanitized(const char *text, size_t len, size_t *out_len)
{
    static const char replacement[] = "\xef\xbf\xbd";
    const unsigned char *p = (const unsigned char *)text;
    struct out o = {0};
    put(&o, "", 0); /* an empty text still gets its NUL */
    size_t i = 0;
    while (i < len) {
        size_t n = ds_utf8_seq_len(p + i, len - i);
        size_t run = i;
        /* copy runs of valid sequences at once */
        while (n) {
            i += n;
            n = i < len ? ds_utf8_seq_len(p + i, len - i) : 0;
        }
        put(&o, text + run, i - run);
        if (i < len) {
            put(&o, replacement, 3);
            i++;
        }
    }
    if (o.failed) {
        free(o.p);
        return NULL;
    }
    *out_len = o.len;
    return o.p;
}

static void encode_string(struct out *o, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, start = 0;
    put(o, "\"", 1);
    while (i < len) {
        unsigned char c = p[i];
        const char *esc = NULL;
        char u[7];
        size_t skip = 1;
        if (c < 0x80) {
            if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
                i++;
                continue;
            }
            switch (c) {
            case '"': esc = "\\\""; break;
            case '\\': esc = "\\\\"; break;
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            default:
                /* other controls and the HTML-sensitive <, >, & */
                snprintf(u, sizeof u, "\\u00%c%c", hex[c >> 4], hex[c & 0xf]);
                esc = u;
            }
        } else {
            size_t n = ds_utf8_seq_len(p + i, len - i);
            if (n == 3 && c == 0xe2 && p[i + 1] == 0x80 && (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)) {
                /* U+2028, U+2029: line terminators to JavaScript */
                esc = p[i + 2] == 0xa8 ? "\\u2028" : "\\u2029";
                skip = 3;
            } else if (n == 0) {
                esc = "\\ufffd";
            } else {
                i += n;
                continue;
            }
        }
        put(o, s + start, i - start);
        puts_(o, esc);
        i += skip;
        start = i;
    }
    put(o, s + start, i - start);
    put(o, "\"", 1);
}

size_t ds_gojson_float(double value, char out[32])
{
    if (value == 0)
        return (size_t)snprintf(out, 32, signbit(value) ? "-0" : "0");
    if (!isfinite(value))
        return (size_t)snprintf(out, 32, "null"); /* JSON has no such number; never parsed */
    /* Shortest round-trip digits: the fewest significant digits that read
     * back as the same double (what Go's 'g'/-1 precision gives). */
    char e[40];
    for (int prec = 0; prec < 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec, value);
        if (strtod(e, NULL) == value)
            break;
    }
    /* e is "-d.ddde+XX": split into sign, digits and exponent */
    bool neg = e[0] == '-';
    const char *m = e + (neg ? 1 : 0);
    char digits[24];
    size_t nd = 0;
    const char *x = m;
    for (; *x && *x != 'e'; x++)
        if (*x != '.')
            digits[nd++] = *x;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    int exp10 = atoi(x + 1);
    double a = fabs(value);
    size_t n = 0;
    if (neg)
        out[n++] = '-';
    if (a < 1e-6 || a >= 1e21) {
        /* Go: "1e+21", "1.5e-07" cleaned to "1.5e-7" */
        out[n++] = digits[0];
        if (nd > 1) {
            out[n++] = '.';
            memcpy(out + n, digits + 1, nd - 1);
            n += nd - 1;
        }
        int ex = exp10 < 0 ? -exp10 : exp10;
        n += (size_t)snprintf(out + n, 32 - n, exp10 < 0 ? "e-%d" : "e+%02d", ex);
        return n;
    }
    if (exp10 < 0) {
        out[n++] = '0';
        out[n++] = '.';
        for (int z = -1; z > exp10; z--)
            out[n++] = '0';
        memcpy(out + n, digits, nd);
        n += nd;
    } else {
        size_t whole = (size_t)exp10 + 1;
        for (size_t i = 0; i < whole; i++)
            out[n++] = i < nd ? digits[i] : '0';
        if (nd > whole) {
            out[n++] = '.';
            memcpy(out + n, digits + whole, nd - whole);
            n += nd - whole;
        }
    }
    out[n] = '\0';
    return n;
}

static void encode(struct out *o, struct json_object *v)
{
    char num[32];
    switch (json_object_get_type(v)) {
    case json_type_null:
        puts_(o, "null");
        break;
    case json_type_boolean:
        puts_(o, json_object_get_boolean(v) ? "true" : "false");
        break;
    case json_type_int:
        snprintf(num, sizeof num, "%" PRId64, json_object_get_int64(v));
        puts_(o, num);
        break;
    case json_type_double:
        put(o, num, ds_gojson_float(json_object_get_double(v), num));
        break;
    case json_type_string:
        encode_string(o, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        break;
    case json_type_array: {
        size_t n = json_object_array_length(v);
        put(o, "[", 1);
        for (size_t i = 0; i < n; i++) {
            if (i)
                put(o, ",", 1);
            encode(o, json_object_array_get_idx(v, i));
        }
        put(o, "]", 1);
        break;
    }
    case json_type_object: {
        bool first = true;
        put(o, "{", 1);
        json_object_object_foreach(v, key, member)
        {
            if (!first)
                put(o, ",", 1);
            first = false;
            encode_string(o, key, strlen(key));
            put(o, ":", 1);
            encode(o, member);
        }
        put(o, "}", 1);
        break;
    }
    }
}

char *ds_gojson_encode(struct json_object *value, size_t *len)
{
    struct out o = {0};
    encode(&o, value);
    if (o.failed) {
        free(o.p);
        return NULL;
    }
    if (len)
        *len = o.len;
    return o.p;
}
