/* message.c: flow message parsing and schema validation with json-c. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
 * surrogates, at most U+10FFFF). */
static bool scan_utf8(struct scan *s)
{
    unsigned char c = s->p[s->pos];
    size_t n;
    unsigned lo = 0x80, hi = 0xbf; /* range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        n = 1;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 2;
        if (c == 0xe0)
            lo = 0xa0;
        if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 3;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f;
    } else
        return scan_fail(s, "invalid UTF-8");
    if (s->len - s->pos <= n)
        return scan_fail(s, "invalid UTF-8");
    for (size_t i = 1; i <= n; i++) {
        unsigned char b = s->p[s->pos + i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf))
            return scan_fail(s, "invalid UTF-8");
    }
    s->pos += n + 1;
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

enum ds_err ds_json_check(const char *text, size_t len, char *err, size_t errlen)
{
    struct scan s = {.p = (const unsigned char *)text, .len = len};
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
    size_t i = 0;
    while (i < sizeof type_names / sizeof type_names[0] && strcmp(name, type_names[i]) != 0)
        i++;
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

enum ds_err ds_message_parse(const char *text, size_t len, struct ds_message *out, char *err, size_t errlen)
{
    enum ds_err rc = DS_OK;
    struct json_object *root = NULL;
    out->root = NULL;
    out->type = DS_MSG_SNAPSHOT;

    if (len > DS_MESSAGE_MAX || len > (size_t)INT32_MAX) {
        rc = DS_ERR_ARG; /* the HTTP layer answers 413 before this */
        snprintf(err, errlen, "the message is larger than %u bytes", DS_MESSAGE_MAX);
        goto out;
    }
    if ((rc = ds_json_check(text, len, err, errlen)) != DS_OK)
        goto out;
    /* json-c now only builds the tree: syntax, UTF-8 and depth are checked */
    struct json_tokener *tok = json_tokener_new_ex(DS_MESSAGE_DEPTH + 1);
    if (!tok) {
        rc = DS_ERR_NOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    root = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_continue) {
        /* A top-level number ("12") only ends at a delimiter: give it one. */
        root = json_tokener_parse_ex(tok, " ", 1);
        jerr = json_tokener_get_error(tok);
    }
    json_tokener_free(tok);
    if (jerr != json_tokener_success) {
        /* valid JSON that json-c could not hold: out of memory ("null"
         * parses to a NULL root with success, and fails validation) */
        json_object_put(root);
        root = NULL;
        rc = DS_ERR_NOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    rc = ds_message_validate(root, &out->type, err, errlen);
out:
    if (rc == DS_OK) {
        out->root = root;
        root = NULL;
    }
    json_object_put(root);
    return rc;
}

char *ds_json_dup(struct json_object *obj, size_t *len)
{
    size_t n = 0;
    const char *s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    if (!s)
        return NULL;
    char *copy = malloc(n + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, n + 1);
    if (len)
        *len = n;
    return copy;
}

char *ds_message_to_json(const struct ds_message *m, size_t *len)
{
    return ds_json_dup(m->root, len);
}

void ds_message_free(struct ds_message *m)
{
    if (!m)
        return;
    json_object_put(m->root);
    m->root = NULL;
}
