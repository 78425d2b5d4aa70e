/* message.h: parse, validate and re-encode one flow message (schema version
 * 1, see docs/openova-flow-api.md): a JSON object whose "type" picks the
 * variant, read the way the reference server's Go decoder reads it. */
#ifndef OPENOVA_DS_MESSAGE_H
#define OPENOVA_DS_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "error.h"

/* The request body limit: the reference's 1 MiB by default (--max-body
 * raises it, up to DS_MESSAGE_MAX). */
#define DS_BODY_DEFAULT (1024u * 1024u)
#define DS_MESSAGE_MAX (64u * 1024u * 1024u)
/* Deepest JSON nesting accepted ("meta" objects are free-form). Go allows
 * 10000; 512 keeps the recursive decoder and encoder well inside a
 * connection thread's stack. */
#define DS_MESSAGE_DEPTH 512

/* How much of the schema is enforced. */
enum ds_validation {
    DS_VALIDATE_REFERENCE, /* what the reference accepts (Go's decoder) */
    DS_VALIDATE_STRICT,    /* --strict: the whole schema, strict UTF-8, exact keys */
};

enum ds_msg_type {
    DS_MSG_SNAPSHOT,
    DS_MSG_UPSERT_FLOW,
    DS_MSG_UPSERT_NODES,
    DS_MSG_UPSERT_RELS,
    DS_MSG_DELETE_NODES,
    DS_MSG_DELETE_RELS,
};

struct ds_message {
    enum ds_msg_type type;
    /* one reference, owned by the message: the canonical form (see
     * ds_message_parse), never the client's own tree */
    struct json_object *root;
};

/* ds_message_parse: parses len bytes of text as exactly one JSON value (only
 * whitespace may follow) and decodes it as the reference's Go structs do:
 * members matched to fields ignoring ASCII case (the last match wins),
 * unknown members dropped, null as absent, an invalid UTF-8 byte inside a
 * string as U+FFFD. Refused: not JSON; not an object; an unknown type; a
 * member of the wrong JSON type; startedAt or endedAt not an integer; the
 * variant's container (flow, nodes, relationships, ids, pairs) missing or
 * empty. DS_VALIDATE_STRICT also applies ds_message_validate (exact keys,
 * every required field) and refuses invalid UTF-8.
 * The message's root is then the canonical form, in the fields' order:
 * type, flow, nodes, relationships, ids, pairs, each left out when empty;
 * inside them the required fields always, the optional ones only when
 * non-empty (Go's omitempty), meta keys sorted and meta numbers as doubles.
 * Returns DS_OK and fills *out (release with ds_message_free);
 * DS_ERR_JSON or DS_ERR_SCHEMA with a sentence naming the problem in err
 * (e.g. "nodes[2].status must be a string"); or DS_ERR_NOMEM. On error *out
 * holds nothing to free. */
enum ds_err ds_message_parse(const char *text, size_t len, enum ds_validation mode, struct ds_message *out,
                             char *err, size_t errlen);

/* ds_json_check: true RFC 8259 syntax for len bytes of text: exactly one
 * value, optional surrounding whitespace, strings without raw control
 * characters, nesting at most DS_MESSAGE_DEPTH deep; with utf8_strict, the
 * strings must be valid UTF-8 too (without it, Go's decoder replaces bad
 * bytes, so they are let through; outside strings they are always an
 * error). json-c, even in strict mode, takes NaN, "1." and 'single-quoted'
 * keys, so this runs first. Returns DS_OK, or DS_ERR_JSON with "the body is
 * not valid JSON: <what> at byte <offset>" in err. */
enum ds_err ds_json_check(const char *text, size_t len, bool utf8_strict, char *err, size_t errlen);

/* ds_message_validate: checks a parsed JSON value against the schema: the
 * variant's required fields, their types, the relationship type and
 * condition vocabularies. Unknown extra fields are allowed (additions do not
 * bump the schema version). Returns DS_OK and sets *type, or DS_ERR_SCHEMA
 * with the problem in err. Borrows root. */
enum ds_err ds_message_validate(struct json_object *root, enum ds_msg_type *type, char *err, size_t errlen);

/* ds_message_type_name: the wire name of type ("upsert-nodes"); static. */
const char *ds_message_type_name(enum ds_msg_type type);

/* ds_message_to_json: the canonical message as the reference encodes it
 * (devserver/gojson.h), one line (no CR or LF, so it fits an SSE data:
 * field). Returns a malloc'd NUL-terminated string the caller frees, its
 * length in *len; NULL when out of memory. */
char *ds_message_to_json(const struct ds_message *m, size_t *len);

/* ds_message_free: drops the message's reference; NULL-safe; idempotent. */
void ds_message_free(struct ds_message *m);

#endif
