/* test_devserver_message.c: message parsing: what the reference's Go decoder
 * accepts and refuses and the canonical form it re-encodes, the --strict
 * schema (every violation refused with its exact text), and Go's JSON
 * output (string escapes, float64 formatting, UTF-8 replacement). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../../devserver/gojson.h"
#include "../../devserver/message.h"
#include "unit.h"

#define FLOW "{\"id\":\"f1\",\"status\":\"running\",\"startedAt\":1715400000000}"
#define NODE "{\"id\":\"n1\",\"flowId\":\"f1\",\"label\":\"cilium\",\"status\":\"running\"}"
#define REL "{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"finish-to-start\"}"

struct accept_row {
    const char *name;
    const char *json;
    enum ds_msg_type type;
};

static const struct accept_row accept_rows[] = {
    {"snapshot, flow only", "{\"type\":\"snapshot\",\"flow\":" FLOW "}", DS_MSG_SNAPSHOT},
    {"snapshot, full", "{\"type\":\"snapshot\",\"flow\":" FLOW ",\"nodes\":[" NODE "],\"relationships\":[" REL "]}",
     DS_MSG_SNAPSHOT},
    {"snapshot, empty arrays", "{\"type\":\"snapshot\",\"flow\":" FLOW ",\"nodes\":[],\"relationships\":[]}",
     DS_MSG_SNAPSHOT},
    {"snapshot, null arrays", "{\"type\":\"snapshot\",\"flow\":" FLOW ",\"nodes\":null,\"relationships\":null}",
     DS_MSG_SNAPSHOT},
    {"upsert-flow", "{\"type\":\"upsert-flow\",\"flow\":" FLOW "}", DS_MSG_UPSERT_FLOW},
    {"upsert-flow, every optional field",
     "{\"type\":\"upsert-flow\",\"flow\":{\"id\":\"f1\",\"status\":\"done\",\"startedAt\":1,\"endedAt\":2,"
     "\"definitionId\":\"d\",\"parentFlowId\":\"p\",\"triggeredBy\":[{\"flowId\":\"f0\",\"when\":\"success\"}],"
     "\"meta\":{\"k\":[1,{\"x\":null}]}}}",
     DS_MSG_UPSERT_FLOW},
    {"upsert-flow, null optional fields",
     "{\"type\":\"upsert-flow\",\"flow\":{\"id\":\"f1\",\"status\":\"\",\"startedAt\":0,\"endedAt\":null,"
     "\"definitionId\":null,\"triggeredBy\":null,\"meta\":null}}",
     DS_MSG_UPSERT_FLOW},
    {"upsert-nodes", "{\"type\":\"upsert-nodes\",\"nodes\":[" NODE "]}", DS_MSG_UPSERT_NODES},
    {"upsert-nodes, two with optional fields",
     "{\"type\":\"upsert-nodes\",\"nodes\":[" NODE ",{\"id\":\"n2\",\"flowId\":\"f1\",\"label\":\"\",\"status\":\"x\","
     "\"family\":\"net\",\"region\":\"fsn1\",\"startedAt\":1,\"endedAt\":2,\"meta\":{}}]}",
     DS_MSG_UPSERT_NODES},
    {"upsert-rels", "{\"type\":\"upsert-rels\",\"relationships\":[" REL "]}", DS_MSG_UPSERT_RELS},
    {"upsert-rels, every type and condition",
     "{\"type\":\"upsert-rels\",\"relationships\":["
     "{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"contains\"},"
     "{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"finish-to-start\",\"condition\":\"on-success\"},"
     "{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"start-to-start\",\"condition\":\"on-failure\"},"
     "{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"finish-to-finish\",\"condition\":\"always\"},"
     "{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"start-to-finish\",\"lag\":30},"
     "{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"triggers\",\"fromFlowId\":\"f1\",\"toFlowId\":\"f2\",\"lag\":0.5}]}",
     DS_MSG_UPSERT_RELS},
    {"delete-nodes", "{\"type\":\"delete-nodes\",\"ids\":[\"n1\",\"n2\"]}", DS_MSG_DELETE_NODES},
    {"delete-rels", "{\"type\":\"delete-rels\",\"pairs\":[{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"triggers\"}]}",
     DS_MSG_DELETE_RELS},
    {"unknown extra fields", "{\"type\":\"upsert-nodes\",\"v\":2,\"nodes\":[" NODE "]}", DS_MSG_UPSERT_NODES},
    {"surrounding whitespace", " \r\n\t{\"type\":\"delete-nodes\",\"ids\":[\"n\"]}\n\n", DS_MSG_DELETE_NODES},
    {"unicode in strings", "{\"type\":\"delete-nodes\",\"ids\":[\"caf\xc3\xa9\",\"\\u00e9\"]}", DS_MSG_DELETE_NODES},
};

static void test_message_accepted(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(accept_rows); i++) {
        const struct accept_row *r = &accept_rows[i];
        struct ds_message m;
        char err[256] = "";
        enum ds_err rc = ds_message_parse(r->json, strlen(r->json), DS_VALIDATE_STRICT, &m, err, sizeof err);
        if (rc != DS_OK) {
            unit_fail(&failures, i, r->name, "refused (%s): %s", ds_strerror(rc), err);
            continue;
        }
        if (m.type != r->type)
            unit_fail(&failures, i, r->name, "type %s, want %s", ds_message_type_name(m.type),
                      ds_message_type_name(r->type));
        size_t len = 0;
        char *json = ds_message_to_json(&m, &len);
        if (!json || strlen(json) != len || strpbrk(json, "\r\n"))
            unit_fail(&failures, i, r->name, "not serialized on one line: %s", json ? json : "(null)");
        free(json);
        ds_message_free(&m);
        ds_message_free(&m); /* idempotent */
    }
    unit_done(failures);
}

struct reject_row {
    const char *name;
    const char *json;
    size_t len; /* 0: strlen(json) */
    enum ds_err rc;
    const char *err; /* exact text, or a prefix when it ends with '*' */
};

#define J DS_ERR_JSON
#define S DS_ERR_SCHEMA

static const struct reject_row reject_rows[] = {
    /* not JSON */
    {"empty", "", 0, J, "the body is not valid JSON: unexpected end of input"},
    {"whitespace only", "  \n", 0, J, "the body is not valid JSON: unexpected end of input"},
    {"truncated", "{\"type\":\"snapshot\"", 0, J, "the body is not valid JSON: unexpected end of input"},
    {"garbage", "hello", 0, J, "the body is not valid JSON: *"},
    {"trailing comma", "{\"type\":\"delete-nodes\",\"ids\":[\"a\",]}", 0, J, "the body is not valid JSON: *"},
    {"single quotes", "{'type':'delete-nodes'}", 0, J, "the body is not valid JSON: *"},
    {"two values", "{\"type\":\"x\"} {}", 0, J, "the body is not valid JSON: *"},
    {"trailing data", "{\"type\":\"delete-nodes\",\"ids\":[\"a\"]}x", 0, J,
     "the body is not valid JSON: unexpected data after the value at byte 35"},
    {"NUL byte", "{\"type\":\"delete-nodes\",\"ids\":[\"a\"]}\0", 36, J,
     "the body is not valid JSON: unexpected data after the value at byte 35"},
    {"bad UTF-8", "{\"type\":\"delete-nodes\",\"ids\":[\"\xff\"]}", 0, J, "the body is not valid JSON: *"},
    /* the envelope */
    {"array", "[]", 0, S, "a message must be a JSON object"},
    {"number", "12", 0, S, "a message must be a JSON object"},
    {"string", "\"snapshot\"", 0, S, "a message must be a JSON object"},
    {"null", "null", 0, S, "a message must be a JSON object"},
    {"no type", "{}", 0, S, "type is required"},
    {"null type", "{\"type\":null}", 0, S, "type is required"},
    {"numeric type", "{\"type\":1}", 0, S, "type must be a string"},
    {"unknown type", "{\"type\":\"upsert-node\"}", 0, S,
     "type \"upsert-node\" is not one of snapshot, upsert-flow, upsert-nodes, upsert-rels, delete-nodes, delete-rels"},
    {"type case", "{\"type\":\"Snapshot\"}", 0, S, "type \"Snapshot\" is not one of *"},
    /* snapshot and upsert-flow: the flow */
    {"snapshot without flow", "{\"type\":\"snapshot\"}", 0, S, "flow is required"},
    {"snapshot with null flow", "{\"type\":\"snapshot\",\"flow\":null}", 0, S, "flow is required"},
    {"upsert-flow without flow", "{\"type\":\"upsert-flow\"}", 0, S, "flow is required"},
    {"flow not an object", "{\"type\":\"upsert-flow\",\"flow\":[]}", 0, S, "flow must be an object"},
    {"flow without id", "{\"type\":\"upsert-flow\",\"flow\":{\"status\":\"s\",\"startedAt\":1}}", 0, S,
     "flow.id is required"},
    {"flow empty id", "{\"type\":\"upsert-flow\",\"flow\":{\"id\":\"\",\"status\":\"s\",\"startedAt\":1}}", 0, S,
     "flow.id must not be empty"},
    {"flow numeric id", "{\"type\":\"upsert-flow\",\"flow\":{\"id\":7,\"status\":\"s\",\"startedAt\":1}}", 0, S,
     "flow.id must be a string"},
    {"flow without status", "{\"type\":\"upsert-flow\",\"flow\":{\"id\":\"f\",\"startedAt\":1}}", 0, S,
     "flow.status is required"},
    {"flow without startedAt", "{\"type\":\"snapshot\",\"flow\":{\"id\":\"f\",\"status\":\"s\"}}", 0, S,
     "flow.startedAt is required"},
    {"flow string startedAt",
     "{\"type\":\"snapshot\",\"flow\":{\"id\":\"f\",\"status\":\"s\",\"startedAt\":\"2024-01-01\"}}", 0, S,
     "flow.startedAt must be a number"},
    {"flow boolean startedAt", "{\"type\":\"snapshot\",\"flow\":{\"id\":\"f\",\"status\":\"s\",\"startedAt\":true}}", 0,
     S, "flow.startedAt must be a number"},
    {"flow string endedAt",
     "{\"type\":\"upsert-flow\",\"flow\":{\"id\":\"f\",\"status\":\"s\",\"startedAt\":1,\"endedAt\":\"x\"}}", 0, S,
     "flow.endedAt must be a number"},
    {"flow meta array",
     "{\"type\":\"upsert-flow\",\"flow\":{\"id\":\"f\",\"status\":\"s\",\"startedAt\":1,\"meta\":[]}}", 0, S,
     "flow.meta must be an object"},
    {"flow triggeredBy object",
     "{\"type\":\"upsert-flow\",\"flow\":{\"id\":\"f\",\"status\":\"s\",\"startedAt\":1,\"triggeredBy\":{}}}", 0, S,
     "flow.triggeredBy must be an array"},
    {"flow triggeredBy without flowId",
     "{\"type\":\"upsert-flow\",\"flow\":{\"id\":\"f\",\"status\":\"s\",\"startedAt\":1,\"triggeredBy\":[{\"when\":"
     "\"always\"}]}}",
     0, S, "flow.triggeredBy[0].flowId is required"},
    /* snapshot's optional arrays */
    {"snapshot nodes not an array", "{\"type\":\"snapshot\",\"flow\":" FLOW ",\"nodes\":{}}", 0, S,
     "nodes must be an array"},
    {"snapshot bad node", "{\"type\":\"snapshot\",\"flow\":" FLOW ",\"nodes\":[" NODE ",{\"id\":\"x\"}]}", 0, S,
     "nodes[1].flowId is required"},
    {"snapshot bad relationship",
     "{\"type\":\"snapshot\",\"flow\":" FLOW ",\"relationships\":[{\"fromId\":\"a\",\"toId\":\"b\"}]}", 0, S,
     "relationships[0].type is required"},
    /* upsert-nodes */
    {"upsert-nodes without nodes", "{\"type\":\"upsert-nodes\"}", 0, S, "nodes is required"},
    {"upsert-nodes empty", "{\"type\":\"upsert-nodes\",\"nodes\":[]}", 0, S, "nodes must not be empty"},
    {"upsert-nodes not an array", "{\"type\":\"upsert-nodes\",\"nodes\":" NODE "}", 0, S, "nodes must be an array"},
    {"node not an object", "{\"type\":\"upsert-nodes\",\"nodes\":[" NODE ",\"n2\"]}", 0, S,
     "nodes[1] must be an object"},
    {"node without id", "{\"type\":\"upsert-nodes\",\"nodes\":[{\"flowId\":\"f\",\"label\":\"l\",\"status\":\"s\"}]}",
     0, S, "nodes[0].id is required"},
    {"node without flowId", "{\"type\":\"upsert-nodes\",\"nodes\":[{\"id\":\"n\",\"label\":\"l\",\"status\":\"s\"}]}",
     0, S, "nodes[0].flowId is required"},
    {"node without label", "{\"type\":\"upsert-nodes\",\"nodes\":[{\"id\":\"n\",\"flowId\":\"f\",\"status\":\"s\"}]}",
     0, S, "nodes[0].label is required"},
    {"third node without status",
     "{\"type\":\"upsert-nodes\",\"nodes\":[" NODE "," NODE ",{\"id\":\"n\",\"flowId\":\"f\",\"label\":\"l\"}]}", 0, S,
     "nodes[2].status is required"},
    {"node numeric status",
     "{\"type\":\"upsert-nodes\",\"nodes\":[{\"id\":\"n\",\"flowId\":\"f\",\"label\":\"l\",\"status\":3}]}", 0, S,
     "nodes[0].status must be a string"},
    {"node numeric region",
     "{\"type\":\"upsert-nodes\",\"nodes\":[{\"id\":\"n\",\"flowId\":\"f\",\"label\":\"l\",\"status\":\"s\","
     "\"region\":1}]}",
     0, S, "nodes[0].region must be a string"},
    {"node string startedAt",
     "{\"type\":\"upsert-nodes\",\"nodes\":[{\"id\":\"n\",\"flowId\":\"f\",\"label\":\"l\",\"status\":\"s\","
     "\"startedAt\":\"1\"}]}",
     0, S, "nodes[0].startedAt must be a number"},
    {"node id with NUL",
     "{\"type\":\"upsert-nodes\",\"nodes\":[{\"id\":\"a\\u0000b\",\"flowId\":\"f\",\"label\":\"l\",\"status\":\"s\"}]}",
     0, S, "nodes[0].id must not contain U+0000"},
    /* upsert-rels */
    {"upsert-rels without relationships", "{\"type\":\"upsert-rels\"}", 0, S, "relationships is required"},
    {"upsert-rels empty", "{\"type\":\"upsert-rels\",\"relationships\":[]}", 0, S, "relationships must not be empty"},
    {"relationship without fromId", "{\"type\":\"upsert-rels\",\"relationships\":[{\"toId\":\"b\",\"type\":\"contains\"}]}",
     0, S, "relationships[0].fromId is required"},
    {"relationship without toId",
     "{\"type\":\"upsert-rels\",\"relationships\":[{\"fromId\":\"a\",\"type\":\"contains\"}]}", 0, S,
     "relationships[0].toId is required"},
    {"relationship unknown type",
     "{\"type\":\"upsert-rels\",\"relationships\":[" REL ",{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"depends-on\"}]}",
     0, S,
     "relationships[1].type \"depends-on\" is not one of contains, finish-to-start, start-to-start, "
     "finish-to-finish, start-to-finish, triggers"},
    {"relationship unknown condition",
     "{\"type\":\"upsert-rels\",\"relationships\":[{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"contains\","
     "\"condition\":\"sometimes\"}]}",
     0, S, "relationships[0].condition \"sometimes\" is not one of on-success, on-failure, always"},
    {"relationship empty condition",
     "{\"type\":\"upsert-rels\",\"relationships\":[{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"contains\","
     "\"condition\":\"\"}]}",
     0, S, "relationships[0].condition \"\" is not one of on-success, on-failure, always"},
    {"relationship negative lag",
     "{\"type\":\"upsert-rels\",\"relationships\":[{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"contains\","
     "\"lag\":-1}]}",
     0, S, "relationships[0].lag must not be negative"},
    {"relationship string lag",
     "{\"type\":\"upsert-rels\",\"relationships\":[{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"contains\","
     "\"lag\":\"5s\"}]}",
     0, S, "relationships[0].lag must be a number"},
    /* delete-nodes */
    {"delete-nodes without ids", "{\"type\":\"delete-nodes\"}", 0, S, "ids is required"},
    {"delete-nodes empty", "{\"type\":\"delete-nodes\",\"ids\":[]}", 0, S, "ids must not be empty"},
    {"delete-nodes ids a string", "{\"type\":\"delete-nodes\",\"ids\":\"n1\"}", 0, S, "ids must be an array"},
    {"delete-nodes numeric id", "{\"type\":\"delete-nodes\",\"ids\":[\"a\",2]}", 0, S, "ids[1] must be a string"},
    {"delete-nodes empty id", "{\"type\":\"delete-nodes\",\"ids\":[\"\"]}", 0, S, "ids[0] must not be empty"},
    /* exact names: a key in another case would reach the decoder */
    {"type in another case too",
     "{\"type\":\"upsert-nodes\",\"nodes\":[" NODE "],\"TYPE\":\"delete-nodes\",\"ids\":[\"x\"]}", 0, S,
     "TYPE is spelt type: --strict takes the schema's names only"},
    {"nodes in another case", "{\"type\":\"upsert-nodes\",\"nodes\":[" NODE "],\"Nodes\":[{\"id\":\"b\"}]}", 0, S,
     "Nodes is spelt nodes: *"},
    {"a node's field in another case",
     "{\"type\":\"upsert-nodes\",\"nodes\":[" NODE ",{\"id\":\"n\",\"flowId\":\"f\",\"label\":\"l\","
     "\"status\":\"s\",\"STATUS\":\"t\"}]}",
     0, S, "nodes[1].STATUS is spelt status: *"},
    {"a flow's field in another case", "{\"type\":\"upsert-flow\",\"flow\":{\"id\":\"f\",\"status\":\"s\","
     "\"startedAt\":1,\"StartedAt\":2}}",
     0, S, "flow.StartedAt is spelt startedAt: *"},
    /* delete-rels */
    {"delete-rels without pairs", "{\"type\":\"delete-rels\"}", 0, S, "pairs is required"},
    {"delete-rels empty", "{\"type\":\"delete-rels\",\"pairs\":[]}", 0, S, "pairs must not be empty"},
    {"pair not an object", "{\"type\":\"delete-rels\",\"pairs\":[[\"a\",\"b\"]]}", 0, S, "pairs[0] must be an object"},
    {"pair without type", "{\"type\":\"delete-rels\",\"pairs\":[{\"fromId\":\"a\",\"toId\":\"b\"}]}", 0, S,
     "pairs[0].type is required"},
    {"pair without toId", "{\"type\":\"delete-rels\",\"pairs\":[{\"fromId\":\"a\",\"type\":\"contains\"}]}", 0, S,
     "pairs[0].toId is required"},
    {"pair unknown type", "{\"type\":\"delete-rels\",\"pairs\":[{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"x\"}]}", 0,
     S, "pairs[0].type \"x\" is not one of *"},
};

/* The syntax check alone: what json-c would let through must fail here. */
struct syntax_row {
    const char *name;
    const char *text;
    size_t len; /* 0: strlen(text) */
    const char *err; /* NULL: valid */
};

static const struct syntax_row syntax_rows[] = {
    {"object", "{\"a\":[1,-2.5e+3,0,0.0,1E9,true,false,null,\"s\",{}]}", 0, NULL},
    {"bare values", "  null ", 0, NULL},
    {"bare number", "12", 0, NULL},
    {"escapes", "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00\"]", 0, NULL},
    {"UTF-8 2, 3, 4 bytes", "[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]", 0, NULL},
    {"nesting 512", NULL, 512, NULL},
    {"nesting 513", NULL, 513, "the body is not valid JSON: nesting deeper than 512 at byte 512"},
    {"NaN", "[NaN]", 0, "the body is not valid JSON: unexpected character at byte 1"},
    {"Infinity", "[Infinity]", 0, "the body is not valid JSON: unexpected character at byte 1"},
    {"minus Infinity", "[-Infinity]", 0, "the body is not valid JSON: a digit expected at byte 2"},
    {"trailing dot", "[1.]", 0, "the body is not valid JSON: a digit expected at byte 3"},
    {"leading dot", "[.5]", 0, "the body is not valid JSON: unexpected character at byte 1"},
    {"leading zero", "[01]", 0, "the body is not valid JSON: ',' or ']' expected at byte 2"},
    {"plus sign", "[+1]", 0, "the body is not valid JSON: unexpected character at byte 1"},
    {"hex", "[0x1]", 0, "the body is not valid JSON: ',' or ']' expected at byte 2"},
    {"bare exponent", "[1e]", 0, "the body is not valid JSON: a digit expected at byte 3"},
    {"single-quoted key", "{'a':1}", 0, "the body is not valid JSON: a quoted member name expected at byte 1"},
    {"unquoted key", "{a:1}", 0, "the body is not valid JSON: a quoted member name expected at byte 1"},
    {"missing colon", "{\"a\" 1}", 0, "the body is not valid JSON: ':' expected at byte 5"},
    {"trailing comma in object", "{\"a\":1,}", 0, "the body is not valid JSON: a quoted member name expected at byte 7"},
    {"trailing comma in array", "[1,]", 0, "the body is not valid JSON: unexpected character at byte 3"},
    {"raw tab in string", "[\"a\tb\"]", 0, "the body is not valid JSON: a control character in a string at byte 3"},
    {"raw newline in string", "[\"a\nb\"]", 0, "the body is not valid JSON: a control character in a string at byte 3"},
    {"bad escape", "[\"\\x\"]", 0, "the body is not valid JSON: an invalid escape at byte 2"},
    {"short \\u", "[\"\\u00\"]", 0, "the body is not valid JSON: an invalid \\u escape at byte 2"},
    {"capitalised literal", "[True]", 0, "the body is not valid JSON: unexpected character at byte 1"},
    {"truncated literal", "[tru", 0, "the body is not valid JSON: unexpected end of input"},
    {"comment", "/**/{}", 0, "the body is not valid JSON: unexpected character at byte 0"},
    {"unterminated string", "[\"abc", 0, "the body is not valid JSON: unexpected end of input"},
    {"unterminated array", "[1,2", 0, "the body is not valid JSON: unexpected end of input"},
    {"lone continuation byte", "[\"\x80\"]", 0, "the body is not valid JSON: invalid UTF-8 at byte 2"},
    {"overlong", "[\"\xc0\xaf\"]", 0, "the body is not valid JSON: invalid UTF-8 at byte 2"},
    {"surrogate", "[\"\xed\xa0\x80\"]", 0, "the body is not valid JSON: invalid UTF-8 at byte 2"},
    {"past U+10FFFF", "[\"\xf4\x90\x80\x80\"]", 0, "the body is not valid JSON: invalid UTF-8 at byte 2"},
    {"truncated sequence", "[\"\xe2\x82\"]", 0, "the body is not valid JSON: invalid UTF-8 at byte 2"},
    {"byte outside strings", "[\xc3\xa9]", 0, "the body is not valid JSON: unexpected character at byte 1"},
    {"NUL inside", "[1\0]", 3, "the body is not valid JSON: ',' or ']' expected at byte 2"},
    {"second value", "{} {}", 0, "the body is not valid JSON: unexpected data after the value at byte 3"},
};

static void test_json_syntax(void **state)
{
    (void)state;
    unsigned failures = 0;
    char deep[1100];
    for (size_t i = 0; i < UNIT_LEN(syntax_rows); i++) {
        const struct syntax_row *r = &syntax_rows[i];
        const char *text = r->text;
        size_t len = r->len ? r->len : (text ? strlen(text) : 0);
        if (!text) {
            /* r->len nested arrays */
            memset(deep, '[', r->len);
            memset(deep + r->len, ']', r->len);
            text = deep;
            len = r->len * 2;
        }
        char err[256] = "";
        enum ds_err rc = ds_json_check(text, len, true, err, sizeof err);
        if (!r->err && rc != DS_OK)
            unit_fail(&failures, i, r->name, "refused: %s", err);
        if (r->err && rc != DS_ERR_JSON)
            unit_fail(&failures, i, r->name, "accepted");
        if (r->err && rc == DS_ERR_JSON && strcmp(err, r->err) != 0)
            unit_fail(&failures, i, r->name, "error \"%s\", want \"%s\"", err, r->err);
    }
    unit_done(failures);
}

static bool err_matches(const char *got, const char *want)
{
    size_t n = strlen(want);
    if (n && want[n - 1] == '*')
        return strncmp(got, want, n - 1) == 0;
    return strcmp(got, want) == 0;
}

/* check_refusals: every row refused in mode, with its code and text. */
static void check_refusals(const struct reject_row *rows, size_t count, enum ds_validation mode)
{
    unsigned failures = 0;
    for (size_t i = 0; i < count; i++) {
        const struct reject_row *r = &rows[i];
        struct ds_message m;
        char err[512] = "";
        size_t len = r->len ? r->len : strlen(r->json);
        enum ds_err rc = ds_message_parse(r->json, len, mode, &m, err, sizeof err);
        if (rc == DS_OK) {
            unit_fail(&failures, i, r->name, "accepted as %s", ds_message_type_name(m.type));
            ds_message_free(&m);
            continue;
        }
        if (rc != r->rc)
            unit_fail(&failures, i, r->name, "%s, want %s (%s)", ds_strerror(rc), ds_strerror(r->rc), err);
        if (!err_matches(err, r->err))
            unit_fail(&failures, i, r->name, "error \"%s\", want \"%s\"", err, r->err);
        if (m.root)
            unit_fail(&failures, i, r->name, "refused but root left set");
    }
    unit_done(failures);
}

static void test_message_refused(void **state)
{
    (void)state;
    check_refusals(reject_rows, UNIT_LEN(reject_rows), DS_VALIDATE_STRICT);
}

static void test_message_too_large(void **state)
{
    (void)state;
    struct ds_message m;
    char err[128];
    assert_int_equal(ds_message_parse("{}", DS_MESSAGE_MAX + 1, DS_VALIDATE_REFERENCE, &m, err, sizeof err), DS_ERR_ARG);
    assert_null(m.root);
}

struct name_row {
    enum ds_msg_type type;
    const char *name;
};

static const struct name_row name_rows[] = {
    {DS_MSG_SNAPSHOT, "snapshot"},         {DS_MSG_UPSERT_FLOW, "upsert-flow"},
    {DS_MSG_UPSERT_NODES, "upsert-nodes"}, {DS_MSG_UPSERT_RELS, "upsert-rels"},
    {DS_MSG_DELETE_NODES, "delete-nodes"}, {DS_MSG_DELETE_RELS, "delete-rels"},
};

static void test_message_type_names(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(name_rows); i++)
        if (strcmp(ds_message_type_name(name_rows[i].type), name_rows[i].name) != 0)
            unit_fail(&failures, i, name_rows[i].name, "named %s", ds_message_type_name(name_rows[i].type));
    unit_done(failures);
}

/* The reference's reading: input, then the canonical form it re-encodes. */
struct canon_row {
    const char *name;
    const char *json;
    const char *canon;
};

static const struct canon_row canon_rows[] = {
    {"every field in order",
     "{\"nodes\":[{\"meta\":{\"b\":1,\"a\":2},\"region\":\"fsn1\",\"status\":\"ok\",\"label\":\"L\",\"flowId\":\"f\","
     "\"id\":\"n\",\"family\":\"helm\",\"startedAt\":5,\"endedAt\":6}],\"type\":\"upsert-nodes\"}",
     "{\"type\":\"upsert-nodes\",\"nodes\":[{\"id\":\"n\",\"flowId\":\"f\",\"label\":\"L\",\"status\":\"ok\","
     "\"family\":\"helm\",\"region\":\"fsn1\",\"startedAt\":5,\"endedAt\":6,\"meta\":{\"a\":2,\"b\":1}}]}"},
    {"missing node fields are empty strings", "{\"type\":\"upsert-nodes\",\"nodes\":[{\"id\":\"n\"}]}",
     "{\"type\":\"upsert-nodes\",\"nodes\":[{\"id\":\"n\",\"flowId\":\"\",\"label\":\"\",\"status\":\"\"}]}"},
    {"a null node is a zero node", "{\"type\":\"upsert-nodes\",\"nodes\":[null]}",
     "{\"type\":\"upsert-nodes\",\"nodes\":[{\"id\":\"\",\"flowId\":\"\",\"label\":\"\",\"status\":\"\"}]}"},
    {"keys in another case, the last match wins",
     "{\"Type\":\"delete-nodes\",\"IDS\":[\"a\"],\"ids\":[\"b\"]}", "{\"type\":\"delete-nodes\",\"ids\":[\"b\"]}"},
    {"unknown fields dropped, other containers kept",
     "{\"type\":\"delete-nodes\",\"ids\":[\"a\"],\"pairs\":[{\"fromId\":\"x\"}],\"v\":2}",
     "{\"type\":\"delete-nodes\",\"ids\":[\"a\"],\"pairs\":[{\"fromId\":\"x\",\"toId\":\"\",\"type\":\"\"}]}"},
    {"lenient relationship",
     "{\"type\":\"upsert-rels\",\"relationships\":[{\"fromId\":\"a\",\"type\":\"blocks\",\"condition\":\"\","
     "\"lag\":0}]}",
     "{\"type\":\"upsert-rels\",\"relationships\":[{\"fromId\":\"a\",\"toId\":\"\",\"type\":\"blocks\"}]}"},
    {"relationship optional fields",
     "{\"type\":\"upsert-rels\",\"relationships\":[{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"triggers\","
     "\"fromFlowId\":\"f1\",\"toFlowId\":\"f2\",\"condition\":\"always\",\"lag\":1.50}]}",
     "{\"type\":\"upsert-rels\",\"relationships\":[{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"triggers\","
     "\"fromFlowId\":\"f1\",\"toFlowId\":\"f2\",\"condition\":\"always\",\"lag\":1.5}]}"},
    {"flow without status, endedAt 0 left out",
     "{\"type\":\"upsert-flow\",\"flow\":{\"id\":\"f\",\"startedAt\":-3,\"endedAt\":0,\"meta\":{}}}",
     "{\"type\":\"upsert-flow\",\"flow\":{\"id\":\"f\",\"status\":\"\",\"startedAt\":-3}}"},
    {"flow triggeredBy",
     "{\"type\":\"snapshot\",\"flow\":{\"triggeredBy\":[{\"when\":\"w\",\"flowId\":\"p\",\"x\":1},null]}}",
     "{\"type\":\"snapshot\",\"flow\":{\"id\":\"\",\"status\":\"\",\"startedAt\":0,"
     "\"triggeredBy\":[{\"flowId\":\"p\",\"when\":\"w\"},{\"flowId\":\"\",\"when\":\"\"}]}}"},
    {"empty snapshot lists left out",
     "{\"type\":\"snapshot\",\"flow\":{\"id\":\"f\"},\"nodes\":[],\"relationships\":null}",
     "{\"type\":\"snapshot\",\"flow\":{\"id\":\"f\",\"status\":\"\",\"startedAt\":0}}"},
    {"meta re-encoded as Go does",
     "{\"type\":\"upsert-flow\",\"flow\":{\"id\":\"f\",\"meta\":{\"z\":1.0,\"y\":1e2,\"x\":[1,{\"b\":null,\"a\":true}],"
     "\"w\":\"<a&b>\",\"v\":-0.0,\"u\":12345678901234567890,\"t\":1e21,\"s\":0.000001,\"r\":1.5e-7}}}",
     "{\"type\":\"upsert-flow\",\"flow\":{\"id\":\"f\",\"status\":\"\",\"startedAt\":0,\"meta\":{\"r\":1.5e-7,"
     "\"s\":0.000001,\"t\":1e+21,\"u\":12345678901234567000,\"v\":-0,\"w\":\"\\u003ca\\u0026b\\u003e\","
     "\"x\":[1,{\"a\":true,\"b\":null}],\"y\":100,\"z\":1}}}"},
    {"invalid UTF-8 in a string: one U+FFFD per bad byte",
     "{\"type\":\"delete-nodes\",\"ids\":[\"a\xff" "b\xe2\x82\"]}",
     "{\"type\":\"delete-nodes\",\"ids\":[\"a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd\"]}"},
    {"integers past int64 in meta are float64s",
     "{\"type\":\"upsert-flow\",\"flow\":{\"meta\":{\"a\":99999999999999999999999,\"b\":-9223372036854775809,"
     "\"c\":[9223372036854775808],\"d\":\"9223372036854775808\"}}}",
     "{\"type\":\"upsert-flow\",\"flow\":{\"id\":\"\",\"status\":\"\",\"startedAt\":0,\"meta\":{"
     "\"a\":1e+23,\"b\":-9223372036854776000,\"c\":[9223372036854776000],\"d\":\"9223372036854775808\"}}}"},
    {"int64 bounds", "{\"type\":\"upsert-nodes\",\"nodes\":[{\"startedAt\":-9223372036854775808,"
     "\"endedAt\":9223372036854775807}]}",
     "{\"type\":\"upsert-nodes\",\"nodes\":[{\"id\":\"\",\"flowId\":\"\",\"label\":\"\",\"status\":\"\","
     "\"startedAt\":-9223372036854775808,\"endedAt\":9223372036854775807}]}"},
    {"escapes", "{\"type\":\"delete-nodes\",\"ids\":[\"\\u0001\\b\\f\\n\\r\\t\\\"\\\\/\\u2028\\u2029\x7f\"]}",
     "{\"type\":\"delete-nodes\",\"ids\":[\"\\u0001\\b\\f\\n\\r\\t\\\"\\\\/\\u2028\\u2029\x7f\"]}"},
};

static void test_reference_canonical_form(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(canon_rows); i++) {
        const struct canon_row *r = &canon_rows[i];
        struct ds_message m;
        char err[256] = "";
        if (ds_message_parse(r->json, strlen(r->json), DS_VALIDATE_REFERENCE, &m, err, sizeof err) != DS_OK) {
            unit_fail(&failures, i, r->name, "refused: %s", err);
            continue;
        }
        size_t len = 0;
        char *json = ds_message_to_json(&m, &len);
        if (!json || strcmp(json, r->canon) != 0 || len != strlen(r->canon))
            unit_fail(&failures, i, r->name, "\n  got  %s\n  want %s", json ? json : "(null)", r->canon);
        free(json);
        ds_message_free(&m);
    }
    unit_done(failures);
}

/* What the reference refuses: the error text, a prefix when it ends in '*'. */
static const struct reject_row reference_reject_rows[] = {
    {"empty", "", 0, J, "the body is not valid JSON: unexpected end of input"},
    {"malformed", "{\"type\":", 0, J, "the body is not valid JSON: *"},
    {"byte outside strings", "{\"type\":\"delete-nodes\",\"ids\":[\"a\"]\xff}", 0, J, "the body is not valid JSON: *"},
    {"array", "[]", 0, S, "a message must be a JSON object"},
    {"null", "null", 0, S, "unknown message type \"\": *"},
    {"no type", "{\"ids\":[\"a\"]}", 0, S, "unknown message type \"\": *"},
    {"unknown type", "{\"type\":\"upsert-edges\"}", 0, S,
     "unknown message type \"upsert-edges\": one of snapshot, upsert-flow, upsert-nodes, upsert-rels, "
     "delete-nodes, delete-rels expected"},
    {"type value case", "{\"type\":\"Upsert-Nodes\",\"nodes\":[{}]}", 0, S, "unknown message type *"},
    {"numeric type", "{\"type\":1}", 0, S, "type must be a string"},
    {"empty nodes", "{\"type\":\"upsert-nodes\",\"nodes\":[]}", 0, S,
     "nodes must be a non-empty list for upsert-nodes"},
    {"no relationships", "{\"type\":\"upsert-rels\"}", 0, S, "relationships must be a non-empty list for upsert-rels"},
    {"null ids", "{\"type\":\"delete-nodes\",\"ids\":null}", 0, S, "ids must be a non-empty list for delete-nodes"},
    {"empty pairs", "{\"type\":\"delete-rels\",\"pairs\":[]}", 0, S, "pairs must be a non-empty list for delete-rels"},
    {"no flow", "{\"type\":\"upsert-flow\"}", 0, S, "flow is required for upsert-flow"},
    {"flow not an object", "{\"type\":\"snapshot\",\"flow\":[]}", 0, S, "flow must be an object"},
    {"startedAt 1.5", "{\"type\":\"upsert-flow\",\"flow\":{\"id\":\"f\",\"startedAt\":1.5}}", 0, S,
     "flow.startedAt must be a whole number"},
    {"startedAt 1.0", "{\"type\":\"upsert-flow\",\"flow\":{\"startedAt\":1.0}}", 0, S,
     "flow.startedAt must be a whole number"},
    {"startedAt 1e3", "{\"type\":\"upsert-flow\",\"flow\":{\"startedAt\":1e3}}", 0, S,
     "flow.startedAt must be a whole number"},
    {"lag past float64", "{\"type\":\"upsert-rels\",\"relationships\":[{\"lag\":1e400}]}", 0, S,
     "relationships[0].lag is out of range"},
    {"meta number past float64", "{\"type\":\"upsert-nodes\",\"nodes\":[{\"meta\":{\"a\":[-1e999]}}]}", 0, S,
     "nodes[0].meta holds a number out of range"},
    {"type with a NUL", "{\"type\":\"upsert-flow\\u0000x\",\"flow\":{}}", 0, S, "unknown message type *"},
    {"startedAt past int64", "{\"type\":\"upsert-flow\",\"flow\":{\"startedAt\":9223372036854775808}}", 0, S,
     "flow.startedAt must be a whole number"},
    {"endedAt below int64", "{\"type\":\"upsert-nodes\",\"nodes\":[{\"endedAt\":-9223372036854775809}]}", 0, S,
     "nodes[0].endedAt must be a whole number"},
    {"node endedAt a string", "{\"type\":\"upsert-nodes\",\"nodes\":[{\"endedAt\":\"x\"}]}", 0, S,
     "nodes[0].endedAt must be a whole number"},
    {"status a number", "{\"type\":\"upsert-nodes\",\"nodes\":[{},{\"status\":5}]}", 0, S,
     "nodes[1].status must be a string"},
    {"node a string", "{\"type\":\"upsert-nodes\",\"nodes\":[\"n\"]}", 0, S, "nodes[0] must be an object"},
    {"meta a string", "{\"type\":\"upsert-nodes\",\"nodes\":[{\"meta\":\"m\"}]}", 0, S,
     "nodes[0].meta must be an object"},
    {"lag a string", "{\"type\":\"upsert-rels\",\"relationships\":[{\"lag\":\"5s\"}]}", 0, S,
     "relationships[0].lag must be a number"},
    {"id a number", "{\"type\":\"delete-nodes\",\"ids\":[1]}", 0, S, "ids[0] must be a string"},
    {"ids an object", "{\"type\":\"delete-nodes\",\"ids\":{}}", 0, S, "ids must be an array"},
    {"a wrong type in another container", "{\"type\":\"delete-nodes\",\"ids\":[\"a\"],\"nodes\":5}", 0, S,
     "nodes must be an array"},
    {"triggeredBy an object", "{\"type\":\"upsert-flow\",\"flow\":{\"triggeredBy\":{}}}", 0, S,
     "flow.triggeredBy must be an array"},
};

static void test_reference_refused(void **state)
{
    (void)state;
    check_refusals(reference_reject_rows, UNIT_LEN(reference_reject_rows), DS_VALIDATE_REFERENCE);
}

struct float_row {
    double value;
    const char *text;
};

static const struct float_row float_rows[] = {
    {0.0, "0"},          {-0.0, "-0"},         {1.0, "1"},
    {-1.5, "-1.5"},      {100.0, "100"},       {0.1, "0.1"},
    {1e20, "100000000000000000000"},           {1e21, "1e+21"},
    {1.5e300, "1.5e+300"}, {0.000001, "0.000001"}, {1e-7, "1e-7"},
    {1.5e-10, "1.5e-10"}, {123456789.125, "123456789.125"},
    {12345678901234567890.0, "12345678901234567000"},
    {5e-324, "5e-324"},  {1.7976931348623157e308, "1.7976931348623157e+308"},
    {0.30000000000000004, "0.30000000000000004"},
};

static void test_gojson_float(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(float_rows); i++) {
        char out[32];
        size_t n = ds_gojson_float(float_rows[i].value, out);
        if (strcmp(out, float_rows[i].text) != 0 || n != strlen(out))
            unit_fail(&failures, i, float_rows[i].text, "printed %s", out);
    }
    unit_done(failures);
}

struct sanitize_row {
    const char *name, *in, *out;
};

static const struct sanitize_row sanitize_rows[] = {
    {"valid", "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
    {"lone continuation", "\x80", "\xef\xbf\xbd"},
    {"truncated then ASCII", "\xe2\x82" "a", "\xef\xbf\xbd\xef\xbf\xbd" "a"},
    {"overlong", "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
    {"surrogate", "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"past U+10FFFF", "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"empty", "", ""},
};

static void test_utf8_sanitized(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(sanitize_rows); i++) {
        size_t len = 0;
        char *out = ds_utf8_sanitized(sanitize_rows[i].in, strlen(sanitize_rows[i].in), &len);
        if (!out || strcmp(out, sanitize_rows[i].out) != 0 || len != strlen(sanitize_rows[i].out))
            unit_fail(&failures, i, sanitize_rows[i].name, "got %s", out ? out : "(null)");
        free(out);
    }
    unit_done(failures);
}

static void test_lenient_syntax(void **state)
{
    (void)state;
    char err[128];
    /* inside strings Go replaces bad bytes; outside them they are an error */
    assert_int_equal(ds_json_check("[\"\xff\"]", 5, false, err, sizeof err), DS_OK);
    assert_int_equal(ds_json_check("[\"\xe2\x82\"]", 6, false, err, sizeof err), DS_OK);
    assert_int_equal(ds_json_check("[\xff]", 3, false, err, sizeof err), DS_ERR_JSON);
    assert_string_equal(err, "the body is not valid JSON: unexpected character at byte 1");
}

static void test_message_serialization(void **state)
{
    (void)state;
    /* one line, slashes not escaped, newlines in strings escaped */
    const char *in = "{\"type\":\"delete-nodes\",\n \"ids\": [\"a/b\", \"line\\nbreak\"]}";
    struct ds_message m;
    char err[128];
    assert_int_equal(ds_message_parse(in, strlen(in), DS_VALIDATE_REFERENCE, &m, err, sizeof err), DS_OK);
    size_t len = 0;
    char *json = ds_message_to_json(&m, &len);
    assert_non_null(json);
    assert_string_equal(json, "{\"type\":\"delete-nodes\",\"ids\":[\"a/b\",\"line\\nbreak\"]}");
    assert_int_equal(len, strlen(json));
    free(json);
    ds_message_free(&m);
    ds_message_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message_accepted),       cmocka_unit_test(test_message_refused),
        cmocka_unit_test(test_message_too_large),      cmocka_unit_test(test_message_type_names),
        cmocka_unit_test(test_message_serialization), cmocka_unit_test(test_json_syntax),
        cmocka_unit_test(test_reference_canonical_form), cmocka_unit_test(test_reference_refused),
        cmocka_unit_test(test_gojson_float),          cmocka_unit_test(test_utf8_sanitized),
        cmocka_unit_test(test_lenient_syntax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
