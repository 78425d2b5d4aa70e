/* message.h: parse and validate one flow message (schema version 1, see
 * docs/openova-flow-api.md): a JSON object whose "type" picks the variant. */
#ifndef OPENOVA_DS_MESSAGE_H
#define OPENOVA_DS_MESSAGE_H

#include <stddef.h>

#include <json-c/json.h>

#include "error.h"

/* The largest request body (and so message) the server reads: 8 MiB. */
#define DS_MESSAGE_MAX (8u * 1024u * 1024u)
/* Deepest JSON nesting accepted ("meta" objects are free-form). */
#define DS_MESSAGE_DEPTH 64

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
    struct json_object *root; /* one reference, owned by the message */
};

/* ds_message_parse: parses len bytes of text as exactly one JSON value (only
 * whitespace may follow, UTF-8 checked) and validates it as a message.
 * Returns DS_OK and fills *out (release with ds_message_free);
 * DS_ERR_JSON or DS_ERR_SCHEMA with a sentence naming the problem in err
 * (e.g. "nodes[2].status is required"); or DS_ERR_NOMEM. On error *out
 * holds nothing to free. */
enum ds_err ds_message_parse(const char *text, size_t len, struct ds_message *out, char *err, size_t errlen);

/* ds_json_check: true RFC 8259 syntax for len bytes of text: exactly one
 * value, optional surrounding whitespace, strings of valid UTF-8 without raw
 * control characters, nesting at most DS_MESSAGE_DEPTH deep. json-c, even
 * in strict mode, takes NaN, "1." and 'single-quoted' keys, so this runs
 * first. Returns DS_OK, or DS_ERR_JSON with "the body is not valid JSON:
 * <what> at byte <offset>" in err. */
enum ds_err ds_json_check(const char *text, size_t len, char *err, size_t errlen);

/* ds_message_validate: checks a parsed JSON value against the schema: the
 * variant's required fields, their types, the relationship type and
 * condition vocabularies. Unknown extra fields are allowed (additions do not
 * bump the schema version). Returns DS_OK and sets *type, or DS_ERR_SCHEMA
 * with the problem in err. Borrows root. */
enum ds_err ds_message_validate(struct json_object *root, enum ds_msg_type *type, char *err, size_t errlen);

/* ds_message_type_name: the wire name of type ("upsert-nodes"); static. */
const char *ds_message_type_name(enum ds_msg_type type);

/* ds_message_to_json: the message as compact JSON on one line (no CR or LF,
 * so it fits an SSE data: field). Returns a malloc'd NUL-terminated string
 * the caller frees, its length in *len; NULL when out of memory. */
char *ds_message_to_json(const struct ds_message *m, size_t *len);

/* ds_json_dup: the same for any JSON value (json-c's PLAIN output without
 * escaped slashes). */
char *ds_json_dup(struct json_object *obj, size_t *len);

/* ds_message_free: drops the message's reference; NULL-safe; idempotent. */
void ds_message_free(struct ds_message *m);

#endif
