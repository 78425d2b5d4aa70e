/* message.c: flow message parsing with json-c, decoding into the
 * reference's canonical form, and the strict schema validation. */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gojson.h"
#include "message.h"

static const char *const type_names[] = {
    [DS_MSG_SNAPSHOT] = "snapshot",
    [DS_MSG_UPSERT_FLOW] = "upsert-flow",
    [DS_MSG_UPSERT_NODES] = "upsert-nodes",
    [DS_MSG_UPSERT_RELS] = "upsert-rels",
    [DS_MSG_DELETE_NODES] = "delete-nodes",
    [DS_MSG_DELETE_RELS] = "delete-rels",
};
#define TYPE_LIST "snapshot, upsert-flow, upsert-nodes, upsert-rels, delete-nodes, delete-rels"

static const char *const rel_types[] = {
    "contains", "finish-to-start", "start-to-start", "finish-to-finish", "start-to-finish", "triggers", NULL,
};
#define REL_TYPE_LIST "contains, finish-to-start, start-to-start, finish-to-finish, start-to-finish, triggers"

static const char *const conditions[] = {"on-success", "on-failure", "always", NULL};
#define CONDITION_LIST "on-success, on-failure, always"

/* Field paths ("nodes[12].status") are built into buffers of this size;
 * the array names and keys are ours, so they always fit. */
#define PATH_MAX_LEN 96

#define DS_STR_(x) #x
#define DS_STR(x) DS_STR_(x)

const char *ds_message_type_name(enum ds_msg_type type)
{
    if ((size_t)type < sizeof type_names / sizeof type_names[0])
        return type_names[type];
    return "unknown";
}

/* type_index: the variant named by len bytes of name, by length too
 * ("upsert-flow\u0000x" is no type); the count of names when none. */
static size_t type_index(const char *name, size_t len)
{
    size_t i = 0;
    while (i < sizeof type_names / sizeof type_names[0] &&
           (strlen(type_names[i]) != len || memcmp(name, type_names[i], len) != 0))
        i++;
    return i;
}

static enum ds_err fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static enum ds_err fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return DS_ERR_SCHEMA;
}

/* get: the member key of obj, NULL when absent or JSON null: an optional
 * field sent as null (Go's nil pointers) counts as absent. */
static struct json_object *get(struct json_object *obj, const char *key)
{
    struct json_object *v = NULL;
    if (!json_object_object_get_ex(obj, key, &v))
        return NULL;
    return v;
}

static bool is_number(struct json_object *v)
{
    return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

static bool in_set(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

/* Field checks: each returns DS_OK or fills err naming path.key. */

static enum ds_err req_string(struct json_object *obj, const char *path, const char *key, bool nonempty, char *err,
                              size_t errlen)
{
    struct json_object *v = get(obj, key);
    if (!v)
        return fail(err, errlen, "%s%s is required", path, key);
    if (!json_object_is_type(v, json_type_string))
        return fail(err, errlen, "%s%s must be a string", path, key);
    if (nonempty && json_object_get_string_len(v) == 0)
        return fail(err, errlen, "%s%s must not be empty", path, key);
    /* keys are C strings: an id cut at a NUL would name another node */
    if (nonempty && strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
        return fail(err, errlen, "%s%s must not contain U+0000", path, key);
    return DS_OK;
}

static enum ds_err opt_string(struct json_object *obj, const char *path, const char *key, char *err, size_t errlen)
{
    struct json_object *v = get(obj, key);
    if (v && !json_object_is_type(v, json_type_string))
        return fail(err, errlen, "%s%s must be a string", path, key);
    return DS_OK;
}

static enum ds_err opt_number(struct json_object *obj, const char *path, const char *key, char *err, size_t errlen)
{
    struct json_object *v = get(obj, key);
    if (v && !is_number(v))
        return fail(err, errlen, "%s%s must be a number", path, key);
    return DS_OK;
}

static enum ds_err opt_object(struct json_object *obj, const char *path, const char *key, char *err, size_t errlen)
{
    struct json_object *v = get(obj, key);
    if (v && !json_object_is_type(v, json_type_object))
        return fail(err, errlen, "%s%s must be an object", path, key);
    return DS_OK;
}

static enum ds_err req_enum(struct json_object *obj, const char *path, const char *key, bool required,
                            const char *const *set, const char *list, char *err, size_t errlen)
{
    struct json_object *v = get(obj, key);
    if (!v)
        return required ? fail(err, errlen, "%s%s is required", path, key) : DS_OK;
    if (!json_object_is_type(v, json_type_string))
        return fail(err, errlen, "%s%s must be a string", path, key);
    if (!in_set(json_object_get_string(v), set))
        return fail(err, errlen, "%s%s \"%.64s\" is not one of %s", path, key, json_object_get_string(v), list);
    return DS_OK;
}

/* Object checks: path is the object's own path with a trailing '.'. */

static enum ds_err check_flow(struct json_object *f, const char *path, char *err, size_t errlen)
{
    enum ds_err rc;
    if ((rc = req_string(f, path, "id", true, err, errlen)) ||
        (rc = req_string(f, path, "status", false, err, errlen)))
        return rc;
    struct json_object *started = get(f, "startedAt");
    if (!started)
        return fail(err, errlen, "%sstartedAt is required", path);
    if (!is_number(started))
        return fail(err, errlen, "%sstartedAt must be a number", path);
    if ((rc = opt_number(f, path, "endedAt", err, errlen)) ||
        (rc = opt_string(f, path, "definitionId", err, errlen)) ||
        (rc = opt_string(f, path, "parentFlowId", err, errlen)) ||
        (rc = opt_object(f, path, "meta", err, errlen)))
        return rc;
    struct json_object *tb = get(f, "triggeredBy");
    if (!tb)
        return DS_OK;
    if (!json_object_is_type(tb, json_type_array))
        return fail(err, errlen, "%striggeredBy must be an array", path);
    for (size_t i = 0; i < json_object_array_length(tb); i++) {
        char p[PATH_MAX_LEN];
        snprintf(p, sizeof p, "%striggeredBy[%zu].", path, i);
        struct json_object *t = json_object_array_get_idx(tb, i);
        if (!json_object_is_type(t, json_type_object))
            return fail(err, errlen, "%striggeredBy[%zu] must be an object", path, i);
        if ((rc = req_string(t, p, "flowId", true, err, errlen)) || (rc = opt_string(t, p, "when", err, errlen)))
            return rc;
    }
    return DS_OK;
}

static enum ds_err check_node(struct json_object *n, const char *path, char *err, size_t errlen)
{
    enum ds_err rc;
    if ((rc = req_string(n, path, "id", true, err, errlen)) ||
        (rc = req_string(n, path, "flowId", true, err, errlen)) ||
        (rc = req_string(n, path, "label", false, err, errlen)) ||
        (rc = req_string(n, path, "status", false, err, errlen)) ||
        (rc = opt_string(n, path, "family", err, errlen)) ||
        (rc = opt_string(n, path, "region", err, errlen)) ||
        (rc = opt_number(n, path, "startedAt", err, errlen)) ||
        (rc = opt_number(n, path, "endedAt", err, errlen)) ||
        (rc = opt_object(n, path, "meta", err, errlen)))
        return rc;
    return DS_OK;
}

static enum ds_err check_rel(struct json_object *r, const char *path, char *err, size_t errlen)
{
    enum ds_err rc;
    if ((rc = req_string(r, path, "fromId", true, err, errlen)) ||
        (rc = req_string(r, path, "toId", true, err, errlen)) ||
        (rc = req_enum(r, path, "type", true, rel_types, REL_TYPE_LIST, err, errlen)) ||
        (rc = opt_string(r, path, "fromFlowId", err, errlen)) ||
        (rc = opt_string(r, path, "toFlowId", err, errlen)) ||
        (rc = req_enum(r, path, "condition", false, conditions, CONDITION_LIST, err, errlen)) ||
        (rc = opt_number(r, path, "lag", err, errlen)))
        return rc;
    struct json_object *lag = get(r, "lag");
    if (lag && json_object_get_double(lag) < 0)
        return fail(err, errlen, "%slag must not be negative", path);
    return DS_OK;
}

static enum ds_err check_pair(struct json_object *p, const char *path, char *err, size_t errlen)
{
    enum ds_err rc;
    if ((rc = req_string(p, path, "fromId", true, err, errlen)) ||
        (rc = req_string(p, path, "toId", true, err, errlen)) ||
        (rc = req_enum(p, path, "type", true, rel_types, REL_TYPE_LIST, err, errlen)))
        return rc;
    return DS_OK;
}

static enum ds_err check_id(struct json_object *id, const char *path, char *err, size_t errlen)
{
    /* path is "ids[3]." here: the element itself is the string */
    size_t n = strlen(path);
    if (!json_object_is_type(id, json_type_string))
        return fail(err, errlen, "%.*s must be a string", (int)(n - 1), path);
    if (json_object_get_string_len(id) == 0)
        return fail(err, errlen, "%.*s must not be empty", (int)(n - 1), path);
    if (strlen(json_object_get_string(id)) != (size_t)json_object_get_string_len(id))
        return fail(err, errlen, "%.*s must not contain U+0000", (int)(n - 1), path);
    return DS_OK;
}

typedef enum ds_err check_fn(struct json_object *v, const char *path, char *err, size_t errlen);

/* check_array: root[key] as an array whose every element passes check
 * (objects must be objects first, unless check is check_id). */
static enum ds_err check_array(struct json_object *root, const char *key, bool required, bool nonempty, check_fn *check,
                               char *err, size_t errlen)
{
    struct json_object *a = get(root, key);
    if (!a)
        return required ? fail(err, errlen, "%s is required", key) : DS_OK;
    if (!json_object_is_type(a, json_type_array))
        return fail(err, errlen, "%s must be an array", key);
    size_t n = json_object_array_length(a);
    if (nonempty && n == 0)
        return fail(err, errlen, "%s must not be empty", key);
    for (size_t i = 0; i < n; i++) {
        struct json_object *v = json_object_array_get_idx(a, i);
        char path[PATH_MAX_LEN];
        snprintf(path, sizeof path, "%s[%zu].", key, i);
        if (check != check_id && !json_object_is_type(v, json_type_object))
            return fail(err, errlen, "%s[%zu] must be an object", key, i);
        enum ds_err rc = check(v, path, err, errlen);
        if (rc)
            return rc;
    }
    return DS_OK;
}

static enum ds_err check_flow_member(struct json_object *root, char *err, size_t errlen)
{
    struct json_object *f = get(root, "flow");
    if (!f)
        return fail(err, errlen, "flow is required");
    if (!json_object_is_type(f, json_type_object))
        return fail(err, errlen, "flow must be an object");
    return check_flow(f, "flow.", err, errlen);
}

/* The RFC 8259 syntax check: a recursive descent over the bytes. */
struct scan {
    const unsigned char *p;
    size_t len, pos;
    unsigned depth;
    bool utf8_strict;
    const char *what; /* set on the first error */
};

static bool scan_fail(struct scan *s, const char *what)
{
    if (!s->what)
        s->what = what;
    return false;
}

static void scan_ws(struct scan *s)
{
    while (s->pos < s->len && strchr(" \t\r\n", s->p[s->pos]) && s->p[s->pos])
        s->pos++;
}

static bool scan_literal(struct scan *s, const char *word)
{
    size_t n = strlen(word), left = s->len - s->pos;
    if (left < n && memcmp(s->p + s->pos, word, left) == 0) {
        s->pos = s->len;
        return scan_fail(s, "unexpected end of input");
    }
    if (left < n || memcmp(s->p + s->pos, word, n) != 0)
        return scan_fail(s, "unexpected character");
    s->pos += n;
    return true;
}

static bool scan_digits(struct scan *s)
{
    size_t start = s->pos;
    while (s->pos < s->len && s->p[s->pos] >= '0' && s->p[s->pos] <= '9')
        s->pos++;
    return s->pos > start ? true : scan_fail(s, "a digit expected");
}

static bool scan_number(struct scan *s)
{
    if (s->p[s->pos] == '-')
        s->pos++;
    if (s->pos < s->len && s->p[s->pos] == '0')
        s->pos++; /* no leading zeros */
    else if (!scan_digits(s))
        return false;
    if (s->pos < s->len && s->p[s->pos] == '.') {
        s->pos++;
        if (!scan_digits(s))
            return false;
    }
    if (s->pos < s->len && (s->p[s->pos] == 'e' || s->p[s->pos] == 'E')) {
        s->pos++;
        if (s->pos < s->len && (s->p[s->pos] == '+' || s->p[s->pos] == '-'))
            s->pos++;
        if (!scan_digits(s))
            return false;
    }
    return true;
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* scan_utf8: one multi-byte UTF-8 sequence (RFC 3629: shortest form, no
 * surrogates, at most U+10FFFF); without utf8_strict any byte passes, as Go
 * replaces bad ones with U+FFFD. */
static bool scan_utf8(struct scan *s)
{
    size_t n = ds_utf8_seq_len(s->p + s->pos, s->len - s->pos);
    if (n == 0 && s->utf8_strict)
        return scan_fail(s, "invalid UTF-8");
    s->pos += n ? n : 1;
    return true;
}

static bool scan_string(struct scan *s)
{
    s->pos++; /* the opening quote */
    while (s->pos < s->len) {
        unsigned char c = s->p[s->pos];
        if (c == '"') {
            s->pos++;
            return true;
        }
        if (c < 0x20)
            return scan_fail(s, "a control character in a string");
        if (c == '\\') {
            if (s->pos + 1 >= s->len)
                break;
            unsigned char e = s->p[s->pos + 1];
            if (e == 'u') {
                if (s->len - s->pos < 6 || !is_hex(s->p[s->pos + 2]) || !is_hex(s->p[s->pos + 3]) ||
                    !is_hex(s->p[s->pos + 4]) || !is_hex(s->p[s->pos + 5]))
                    return scan_fail(s, "an invalid \\u escape");
                s->pos += 6;
            } else if (strchr("\"\\/bfnrt", e) && e) {
                s->pos += 2;
            } else {
                return scan_fail(s, "an invalid escape");
            }
        } else if (c >= 0x80) {
            if (!scan_utf8(s))
                return false;
        } else {
            s->pos++;
        }
    }
    return scan_fail(s, "unexpected end of input");
}

static bool scan_value(struct scan *s);

/* scan_container: an object (close '}') or an array (close ']'). */
static bool scan_container(struct scan *s, bool object)
{
    if (++s->depth > DS_MESSAGE_DEPTH)
        return scan_fail(s, "nesting deeper than " DS_STR(DS_MESSAGE_DEPTH));
    char close = object ? '}' : ']';
    s->pos++;
    scan_ws(s);
    if (s->pos < s->len && s->p[s->pos] == (unsigned char)close) {
        s->pos++;
        s->depth--;
        return true;
    }
    for (;;) {
        if (object) {
            if (s->pos >= s->len)
                return scan_fail(s, "unexpected end of input");
            if (s->p[s->pos] != '"')
                return scan_fail(s, "a quoted member name expected");
            if (!scan_string(s))
                return false;
            scan_ws(s);
            if (s->pos >= s->len)
                return scan_fail(s, "unexpected end of input");
            if (s->p[s->pos] != ':')
                return scan_fail(s, "':' expected");
            s->pos++;
        }
        if (!scan_value(s))
            return false;
        scan_ws(s);
        if (s->pos >= s->len)
            return scan_fail(s, "unexpected end of input");
        if (s->p[s->pos] == (unsigned char)close) {
            s->pos++;
            s->depth--;
            return true;
        }
        if (s->p[s->pos] != ',')
            return scan_fail(s, object ? "',' or '}' expected" : "',' or ']' expected");
        s->pos++;
        scan_ws(s);
    }
}

static bool scan_value(struct scan *s)
{
    scan_ws(s);
    if (s->pos >= s->len)
        return scan_fail(s, "unexpected end of input");
    switch (s->p[s->pos]) {
    case '{': return scan_container(s, true);
    case '[': return scan_container(s, false);
    case '"': return scan_string(s);
    case 't': return scan_literal(s, "true");
    case 'f': return scan_literal(s, "false");
    case 'n': return scan_literal(s, "null");
    default:
        if (s->p[s->pos] == '-' || (s->p[s->pos] >= '0' && s->p[s->pos] <= '9'))
            return scan_number(s);
        return scan_fail(s, "unexpected character");
    }
}

enum ds_err ds_json_check(const char *text, size_t len, bool utf8_strict, char *err, size_t errlen)
{
    struct scan s = {.p = (const unsigned char *)text, .len = len, .utf8_strict = utf8_strict};
    if (scan_value(&s)) {
        scan_ws(&s);
        if (s.pos == s.len)
            return DS_OK;
        s.what = "unexpected data after the value";
    }
    if (s.pos >= s.len && strcmp(s.what, "unexpected end of input") == 0)
        snprintf(err, errlen, "the body is not valid JSON: unexpected end of input");
    else
        snprintf(err, errlen, "the body is not valid JSON: %s at byte %zu", s.what, s.pos);
    return DS_ERR_JSON;
}

enum ds_err ds_message_validate(struct json_object *root, enum ds_msg_type *type, char *err, size_t errlen)
{
    if (!json_object_is_type(root, json_type_object))
        return fail(err, errlen, "a message must be a JSON object");
    struct json_object *t = get(root, "type");
    if (!t)
        return fail(err, errlen, "type is required");
    if (!json_object_is_type(t, json_type_string))
        return fail(err, errlen, "type must be a string");
    const char *name = json_object_get_string(t);
    size_t i = type_index(name, (size_t)json_object_get_string_len(t));
    if (i == sizeof type_names / sizeof type_names[0])
        return fail(err, errlen, "type \"%.64s\" is not one of " TYPE_LIST, name);

    enum ds_err rc = DS_OK;
    switch ((enum ds_msg_type)i) {
    case DS_MSG_SNAPSHOT:
        if ((rc = check_flow_member(root, err, errlen)) ||
            (rc = check_array(root, "nodes", false, false, check_node, err, errlen)) ||
            (rc = check_array(root, "relationships", false, false, check_rel, err, errlen)))
            return rc;
        break;
    case DS_MSG_UPSERT_FLOW:
        rc = check_flow_member(root, err, errlen);
        break;
    case DS_MSG_UPSERT_NODES:
        rc = check_array(root, "nodes", true, true, check_node, err, errlen);
        break;
    case DS_MSG_UPSERT_RELS:
        rc = check_array(root, "relationships", true, true, check_rel, err, errlen);
        break;
    case DS_MSG_DELETE_NODES:
        rc = check_array(root, "ids", true, true, check_id, err, errlen);
        break;
    case DS_MSG_DELETE_RELS:
        rc = check_array(root, "pairs", true, true, check_pair, err, errlen);
        break;
    }
    if (rc == DS_OK)
        *type = (enum ds_msg_type)i;
    return rc;
}

/* ---- decoding into the canonical form (the reference's Go structs) ---- */

enum kind {
    K_STRING,   /* string; "" when absent */
    K_INT,      /* integer literal (Go int64); 0 when absent */
    K_NUMBER,   /* any number (Go float64) */
    K_META,     /* object of anything (Go map[string]any): keys sorted */
    K_TRIGGERS, /* array of {flowId, when} */
};

struct field {
    const char *name;
    enum kind kind;
    bool always; /* written even when empty (no omitempty) */
};

static const struct field flow_fields[] = {
    {"id", K_STRING, true},          {"status", K_STRING, true},        {"startedAt", K_INT, true},
    {"endedAt", K_INT, false},       {"definitionId", K_STRING, false}, {"parentFlowId", K_STRING, false},
    {"triggeredBy", K_TRIGGERS, false}, {"meta", K_META, false},        {NULL, K_STRING, false},
};
static const struct field node_fields[] = {
    {"id", K_STRING, true},      {"flowId", K_STRING, true},  {"label", K_STRING, true},
    {"status", K_STRING, true},  {"family", K_STRING, false}, {"region", K_STRING, false},
    {"startedAt", K_INT, false}, {"endedAt", K_INT, false},   {"meta", K_META, false},
    {NULL, K_STRING, false},
};
static const struct field rel_fields[] = {
    {"fromId", K_STRING, true},      {"toId", K_STRING, true},      {"type", K_STRING, true},
    {"fromFlowId", K_STRING, false}, {"toFlowId", K_STRING, false}, {"condition", K_STRING, false},
    {"lag", K_NUMBER, false},        {NULL, K_STRING, false},
};
static const struct field pair_fields[] = {
    {"fromId", K_STRING, true}, {"toId", K_STRING, true}, {"type", K_STRING, true}, {NULL, K_STRING, false},
};
static const struct field trigger_fields[] = {
    {"flowId", K_STRING, true}, {"when", K_STRING, true}, {NULL, K_STRING, false},
};

/* member: the value Go's decoder gives the field name: that of the last
 * member whose key equals it ignoring ASCII case; NULL when there is none
 * or it is null (null leaves a Go field at its zero value). */
static struct json_object *member(struct json_object *obj, const char *name)
{
    struct json_object *found = NULL;
    json_object_object_foreach(obj, key, v)
    {
        if (strcasecmp(key, name) == 0)
            found = v;
    }
    return found;
}

/* add: obj[key] = v, consuming v either way; false when out of memory. */
static bool add(struct json_object *obj, const char *key, struct json_object *v)
{
    if (!v || json_object_object_add(obj, key, v) != 0) {
        json_object_put(v);
        return false;
    }
    return true;
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* any_copy: a meta value as Go's map[string]any holds it: objects with
 * sorted keys, every number a float64. NULL when out of memory (a JSON null
 * is returned as json-c's NULL too, so *nomem tells them apart). */
static struct json_object *any_copy(struct json_object *v, bool *nomem)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        return NULL;
    case json_type_boolean:
        return json_object_new_boolean(json_object_get_boolean(v));
    case json_type_int:
    case json_type_double:
        return json_object_new_double(json_object_get_double(v));
    case json_type_string:
        return json_object_new_string_len(json_object_get_string(v), json_object_get_string_len(v));
    case json_type_array: {
        size_t n = json_object_array_length(v);
        struct json_object *a = json_object_new_array_ext((int)n);
        for (size_t i = 0; a && i < n; i++) {
            struct json_object *e = any_copy(json_object_array_get_idx(v, i), nomem);
            if ((e == NULL && *nomem) || json_object_array_add(a, e) != 0) {
                json_object_put(e);
                json_object_put(a);
                a = NULL;
            }
        }
        if (!a)
            *nomem = true;
        return a;
    }
    case json_type_object: {
        size_t n = (size_t)json_object_object_length(v), k = 0;
        const char **keys = malloc((n ? n : 1) * sizeof *keys);
        struct json_object *o = keys ? json_object_new_object() : NULL;
        if (o) {
            json_object_object_foreach(v, key, val)
            {
                (void)val;
                keys[k++] = key;
            }
            qsort(keys, k, sizeof *keys, cmp_keys);
            for (size_t i = 0; i < k; i++) {
                struct json_object *e = any_copy(json_object_object_get(v, keys[i]), nomem);
                if ((e == NULL && *nomem) || json_object_object_add(o, keys[i], e) != 0) {
                    json_object_put(e);
                    json_object_put(o);
                    o = NULL;
                    break;
                }
            }
        }
        free(keys);
        if (!o)
            *nomem = true;
        return o;
    }
    }
    return NULL;
}

static enum ds_err decode_struct(struct json_object *in, const struct field *fields, const char *path,
                                 struct json_object **out, char *err, size_t errlen);

/* all_finite: no number in v beyond float64's range (json-c reads 1e400
 * as infinity, which Go's decoder refuses). */
static bool all_finite(struct json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_double:
        return isfinite(json_object_get_double(v));
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(v); i++)
            if (!all_finite(json_object_array_get_idx(v, i)))
                return false;
        return true;
    case json_type_object: {
        json_object_object_foreach(v, key, val)
        {
            (void)key;
            if (!all_finite(val))
                return false;
        }
        return true;
    }
    default:
        return true;
    }
}

/* decode_field: one field of a struct into out (left out when empty and
 * not always written). */
static enum ds_err decode_field(struct json_object *v, const struct field *f, const char *path,
                                struct json_object *out, char *err, size_t errlen)
{
    struct json_object *val = NULL;
    bool nomem = false;
    switch (f->kind) {
    case K_STRING:
        if (v && !json_object_is_type(v, json_type_string))
            return fail(err, errlen, "%s%s must be a string", path, f->name);
        if (!f->always && (!v || json_object_get_string_len(v) == 0))
            return DS_OK;
        val = v ? json_object_new_string_len(json_object_get_string(v), json_object_get_string_len(v))
                : json_object_new_string("");
        break;
    case K_INT:
        /* Go refuses 1.5, 1.0 and 1e3 for an int64: json-c reads them as doubles */
        if (v && !json_object_is_type(v, json_type_int))
            return fail(err, errlen, "%s%s must be a whole number", path, f->name);
        if (!f->always && (!v || json_object_get_int64(v) == 0))
            return DS_OK;
        val = json_object_new_int64(v ? json_object_get_int64(v) : 0);
        break;
    case K_NUMBER:
        if (v && !is_number(v))
            return fail(err, errlen, "%s%s must be a number", path, f->name);
        if (v && !isfinite(json_object_get_double(v)))
            return fail(err, errlen, "%s%s is out of range", path, f->name);
        if (!v || json_object_get_double(v) == 0)
            return DS_OK;
        val = json_object_new_double(json_object_get_double(v));
        break;
    case K_META:
        if (v && !json_object_is_type(v, json_type_object))
            return fail(err, errlen, "%s%s must be an object", path, f->name);
        if (!v || json_object_object_length(v) == 0)
            return DS_OK;
        if (!all_finite(v))
            return fail(err, errlen, "%s%s holds a number out of range", path, f->name);
        val = any_copy(v, &nomem);
        break;
    case K_TRIGGERS: {
        if (v && !json_object_is_type(v, json_type_array))
            return fail(err, errlen, "%s%s must be an array", path, f->name);
        size_t n = v ? json_object_array_length(v) : 0;
        if (n == 0)
            return DS_OK;
        val = json_object_new_array_ext((int)n);
        for (size_t i = 0; val && i < n; i++) {
            char p[PATH_MAX_LEN];
            struct json_object *t = NULL;
            snprintf(p, sizeof p, "%s%s[%zu].", path, f->name, i);
            enum ds_err rc = decode_struct(json_object_array_get_idx(v, i), trigger_fields, p, &t, err, errlen);
            if (rc == DS_OK && json_object_array_add(val, t) != 0) {
                json_object_put(t);
                rc = DS_ERR_NOMEM;
            }
            if (rc != DS_OK) {
                json_object_put(val);
                return rc;
            }
        }
        break;
    }
    }
    if (!add(out, f->name, val)) {
        snprintf(err, errlen, "out of memory");
        return DS_ERR_NOMEM;
    }
    return DS_OK;
}

/* decode_struct: in (an object, or NULL for JSON null: Go's zero struct)
 * into a new canonical object in *out. path ends with '.'. */
static enum ds_err decode_struct(struct json_object *in, const struct field *fields, const char *path,
                                 struct json_object **out, char *err, size_t errlen)
{
    *out = NULL;
    if (in && !json_object_is_type(in, json_type_object))
        return fail(err, errlen, "%.*s must be an object", (int)(strlen(path) - 1), path);
    struct json_object *o = json_object_new_object();
    if (!o) {
        snprintf(err, errlen, "out of memory");
        return DS_ERR_NOMEM;
    }
    for (const struct field *f = fields; f->name; f++) {
        enum ds_err rc = decode_field(in ? member(in, f->name) : NULL, f, path, o, err, errlen);
        if (rc != DS_OK) {
            json_object_put(o);
            return rc;
        }
    }
    *out = o;
    return DS_OK;
}

/* decode_list: root's array member key into a new array in *out (NULL when
 * absent or empty): objects through fields, or strings when fields is NULL
 * (ids; null is ""). */
static enum ds_err decode_list(struct json_object *root, const char *key, const struct field *fields,
                               struct json_object **out, char *err, size_t errlen)
{
    struct json_object *a = member(root, key);
    *out = NULL;
    if (a && !json_object_is_type(a, json_type_array))
        return fail(err, errlen, "%s must be an array", key);
    size_t n = a ? json_object_array_length(a) : 0;
    if (n == 0)
        return DS_OK;
    struct json_object *list = json_object_new_array_ext((int)n);
    enum ds_err rc = list ? DS_OK : DS_ERR_NOMEM;
    for (size_t i = 0; rc == DS_OK && i < n; i++) {
        struct json_object *e = json_object_array_get_idx(a, i), *c = NULL;
        char p[PATH_MAX_LEN];
        snprintf(p, sizeof p, "%s[%zu].", key, i);
        if (fields) {
            rc = decode_struct(e, fields, p, &c, err, errlen);
        } else if (e && !json_object_is_type(e, json_type_string)) {
            rc = fail(err, errlen, "%s[%zu] must be a string", key, i);
        } else {
            c = e ? json_object_new_string_len(json_object_get_string(e), json_object_get_string_len(e))
                  : json_object_new_string("");
            rc = c ? DS_OK : DS_ERR_NOMEM;
        }
        if (rc == DS_OK && json_object_array_add(list, c) != 0) {
            json_object_put(c);
            rc = DS_ERR_NOMEM;
        }
    }
    if (rc != DS_OK) {
        if (rc == DS_ERR_NOMEM)
            snprintf(err, errlen, "out of memory");
        json_object_put(list);
        return rc;
    }
    *out = list;
    return DS_OK;
}

/* decode: the whole message, as the reference's Go structs hold it. */
static enum ds_err decode(struct json_object *root, enum ds_msg_type *type, struct json_object **out, char *err,
                          size_t errlen)
{
    static const char *const list_keys[] = {"nodes", "relationships", "ids", "pairs"};
    const struct field *list_fields[] = {node_fields, rel_fields, NULL, pair_fields};
    struct json_object *lists[4] = {NULL, NULL, NULL, NULL}, *flow = NULL, *canon = NULL;
    enum ds_err rc = DS_OK;
    *out = NULL;
    if (root && !json_object_is_type(root, json_type_object))
        return fail(err, errlen, "a message must be a JSON object");
    struct json_object *t = root ? member(root, "type") : NULL;
    if (t && !json_object_is_type(t, json_type_string))
        return fail(err, errlen, "type must be a string");
    const char *name = t ? json_object_get_string(t) : "";
    size_t i = type_index(name, t ? (size_t)json_object_get_string_len(t) : 0);
    if (i == sizeof type_names / sizeof type_names[0])
        return fail(err, errlen, "unknown message type \"%.64s\": one of " TYPE_LIST " expected", name);
    *type = (enum ds_msg_type)i;

    struct json_object *f = member(root, "flow");
    if (f && (rc = decode_struct(f, flow_fields, "flow.", &flow, err, errlen)) != DS_OK)
        goto out;
    for (size_t k = 0; k < 4; k++)
        if ((rc = decode_list(root, list_keys[k], list_fields[k], &lists[k], err, errlen)) != DS_OK)
            goto out;

    /* the variant's own container: present and, for lists, not empty */
    switch (*type) {
    case DS_MSG_SNAPSHOT:
    case DS_MSG_UPSERT_FLOW:
        if (!flow)
            rc = fail(err, errlen, "flow is required for %s", name);
        break;
    case DS_MSG_UPSERT_NODES:
    case DS_MSG_UPSERT_RELS:
    case DS_MSG_DELETE_NODES:
    case DS_MSG_DELETE_RELS: {
        size_t k = (size_t)*type - DS_MSG_UPSERT_NODES;
        if (!lists[k])
            rc = fail(err, errlen, "%s must be a non-empty list for %s", list_keys[k], name);
        break;
    }
    }
    if (rc != DS_OK)
        goto out;

    canon = json_object_new_object();
    if (!canon || !add(canon, "type", json_object_new_string(name))) {
        rc = DS_ERR_NOMEM;
        goto out;
    }
    if (flow) {
        struct json_object *fl = flow;
        flow = NULL; /* add consumes it either way */
        if (!add(canon, "flow", fl)) {
            rc = DS_ERR_NOMEM;
            goto out;
        }
    }
    for (size_t k = 0; k < 4; k++) {
        struct json_object *l = lists[k];
        lists[k] = NULL;
        if (l && !add(canon, list_keys[k], l)) {
            rc = DS_ERR_NOMEM;
            goto out;
        }
    }
    *out = canon;
    canon = NULL;
out:
    if (rc == DS_ERR_NOMEM)
        snprintf(err, errlen, "out of memory");
    json_object_put(canon);
    json_object_put(flow);
    for (size_t k = 0; k < 4; k++)
        json_object_put(lists[k]);
    return rc;
}

/* beyond_int64: does the integer literal digits[0..n) (no sign; negative
 * tells which bound) lie outside Go's int64? */
static bool beyond_int64(const char *digits, size_t n, bool negative)
{
    static const char max[] = "9223372036854775807", min[] = "9223372036854775808";
    const char *bound = negative ? min : max;
    size_t blen = sizeof max - 1;
    return n > blen || (n == blen && memcmp(digits, bound, blen) > 0);
}

/* widen_big_integers: json-c saturates an integer literal past int64 (or
 * reads it as uint64), where Go refuses it for an int64 field and reads it
 * as a float64 for meta; so such a literal gets ".0" appended in a copy,
 * which json-c then reads as the double Go would hold. text passed
 * ds_json_check. Returns a malloc'd copy, *changed false and NULL when there
 * is nothing to widen, or NULL with *changed true when out of memory. */
static char *widen_big_integers(const char *text, size_t len, size_t *out_len, bool *changed)
{
    char *out = NULL;
    size_t n = 0, i = 0;
    *changed = false;
    for (int pass = 0; pass < 2; pass++) {
        for (i = 0, n = 0; i < len;) {
            char c = text[i];
            if (c == '"') {
                /* copy the string whole, escapes included */
                size_t start = i++;
                while (i < len && text[i] != '"')
                    i += text[i] == '\\' ? 2 : 1;
                i++;
                if (out)
                    memcpy(out + n, text + start, i - start);
                n += i - start;
                continue;
            }
            if (c == '-' || (c >= '0' && c <= '9')) {
                size_t start = i;
                bool negative = c == '-', integer = true;
                if (negative)
                    i++;
                size_t digits = i;
                while (i < len && strchr("0123456789.eE+-", text[i]) && text[i]) {
                    if (text[i] == '.' || text[i] == 'e' || text[i] == 'E')
                        integer = false;
                    i++;
                }
                if (out)
                    memcpy(out + n, text + start, i - start);
                n += i - start;
                if (integer && beyond_int64(text + digits, i - digits, negative)) {
                    if (out)
                        memcpy(out + n, ".0", 2);
                    n += 2;
                    *changed = true;
                }
                continue;
            }
            if (out)
                out[n] = c;
            n++;
            i++;
        }
        if (!*changed)
            return NULL;
        if (pass == 0 && !(out = malloc(n + 1)))
            return NULL;
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

/* key_case: --strict takes field names as the schema spells them: a
 * member whose key is a field's name in another case ("Nodes", "TYPE")
 * would otherwise reach the decoder, which matches keys as Go does. */
static enum ds_err key_case(struct json_object *obj, const struct field *fields, const char *path, char *err,
                            size_t errlen)
{
    if (!json_object_is_type(obj, json_type_object))
        return DS_OK;
    json_object_object_foreach(obj, key, v)
    {
        (void)v;
        for (const struct field *f = fields; f->name; f++)
            if (strcasecmp(key, f->name) == 0 && strcmp(key, f->name) != 0)
                return fail(err, errlen, "%s%s is spelt %s: --strict takes the schema's names only", path, key,
                            f->name);
    }
    return DS_OK;
}

static enum ds_err key_case_list(struct json_object *root, const char *name, const struct field *fields,
                                 char *err, size_t errlen)
{
    struct json_object *a = NULL;
    if (!json_object_object_get_ex(root, name, &a) || !json_object_is_type(a, json_type_array))
        return DS_OK;
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        char p[PATH_MAX_LEN];
        snprintf(p, sizeof p, "%s[%zu].", name, i);
        enum ds_err rc = key_case(json_object_array_get_idx(a, i), fields, p, err, errlen);
        if (rc)
            return rc;
    }
    return DS_OK;
}

static enum ds_err strict_key_case(struct json_object *root, char *err, size_t errlen)
{
    static const struct field message_fields[] = {
        {"type", K_STRING, true},     {"flow", K_META, false}, {"nodes", K_META, false},
        {"relationships", K_META, false}, {"ids", K_META, false}, {"pairs", K_META, false},
        {NULL, K_STRING, false},
    };
    struct json_object *flow = NULL;
    enum ds_err rc = key_case(root, message_fields, "", err, errlen);
    if (!rc && json_object_object_get_ex(root, "flow", &flow)) {
        rc = key_case(flow, flow_fields, "flow.", err, errlen);
        if (!rc)
            rc = key_case_list(flow, "triggeredBy", trigger_fields, err, errlen);
    }
    if (!rc)
        rc = key_case_list(root, "nodes", node_fields, err, errlen);
    if (!rc)
        rc = key_case_list(root, "relationships", rel_fields, err, errlen);
    if (!rc)
        rc = key_case_list(root, "pairs", pair_fields, err, errlen);
    return rc;
}

/* tokenize: json-c's tree of text, which ds_json_check passed, so only
 * memory can fail. *root may be NULL for "null". */
static enum ds_err tokenize(const char *text, size_t len, struct json_object **root, char *err, size_t errlen)
{
    *root = NULL;
    struct json_tokener *tok = json_tokener_new_ex(DS_MESSAGE_DEPTH + 1);
    if (!tok) {
        snprintf(err, errlen, "out of memory");
        return DS_ERR_NOMEM;
    }
    struct json_object *r = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_continue) {
        /* A top-level number ("12") only ends at a delimiter: give it one. */
        r = json_tokener_parse_ex(tok, " ", 1);
        jerr = json_tokener_get_error(tok);
    }
    json_tokener_free(tok);
    if (jerr != json_tokener_success) {
        json_object_put(r);
        snprintf(err, errlen, "out of memory");
        return DS_ERR_NOMEM;
    }
    *root = r;
    return DS_OK;
}

enum ds_err ds_message_parse(const char *text, size_t len, enum ds_validation mode, struct ds_message *out,
                             char *err, size_t errlen)
{
    enum ds_err rc = DS_OK;
    struct json_object *root = NULL;
    char *clean = NULL;
    size_t clean_len = 0;
    bool strict = mode == DS_VALIDATE_STRICT;
    out->root = NULL;
    out->type = DS_MSG_SNAPSHOT;

    if (len > DS_MESSAGE_MAX || len > (size_t)INT32_MAX) {
        rc = DS_ERR_ARG; /* the HTTP layer answers 413 before this */
        snprintf(err, errlen, "the message is larger than %u bytes", DS_MESSAGE_MAX);
        goto out;
    }
    if ((rc = ds_json_check(text, len, strict, err, errlen)) != DS_OK)
        goto out;
    /* Bad bytes can only be inside strings now: U+FFFD for each, as Go does. */
    if (!(clean = ds_utf8_sanitized(text, len, &clean_len))) {
        rc = DS_ERR_NOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    bool widened = false;
    char *wide = widen_big_integers(clean, clean_len, &clean_len, &widened);
    if (widened && !wide) {
        rc = DS_ERR_NOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (wide) {
        free(clean);
        clean = wide;
    }
    if ((rc = tokenize(clean, clean_len, &root, err, errlen)) != DS_OK)
        goto out;
    if (strict && ((rc = ds_message_validate(root, &out->type, err, errlen)) != DS_OK ||
                   (rc = strict_key_case(root, err, errlen)) != DS_OK))
        goto out;
    rc = decode(root, &out->type, &out->root, err, errlen);
out:
    json_object_put(root);
    free(clean);
    return rc;
}

char *ds_message_to_json(const struct ds_message *m, size_t *len)
{
    return ds_gojson_encode(m->root, len);
}

void ds_message_free(struct ds_message *m)
{
    if (!m)
        return;
    json_object_put(m->root);
    m->root = NULL;
}
