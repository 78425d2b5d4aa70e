/* fold.h: the folded state of one flow: its flow object, nodes keyed by
 * (flowId, id) and relationships keyed by (fromId, toId, type), each kept in
 * first-insertion order. Pure: no locks, no I/O; the flow's mutex guards it. */
#ifndef OPENOVA_DS_FOLD_H
#define OPENOVA_DS_FOLD_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "error.h"
#include "message.h"

struct ds_fold {
    struct json_object *flow;  /* NULL until a snapshot or upsert-flow */
    struct json_object *nodes; /* JSON object used as an ordered map: key -> node */
    struct json_object *rels;  /* the same for relationships */
};

/* ds_fold_init: an empty state (no flow, no nodes, no relationships).
 * Returns DS_OK or DS_ERR_NOMEM; release with ds_fold_free either way. */
enum ds_err ds_fold_init(struct ds_fold *f);

/* ds_fold_free: releases the state; NULL-safe; idempotent. */
void ds_fold_free(struct ds_fold *f);

/* ds_fold_apply: folds one validated message into the state:
 *   snapshot      replaces everything (nodes and relationships optional);
 *   upsert-flow   replaces the flow object;
 *   upsert-nodes  inserts or replaces each node by (flowId, id);
 *   upsert-rels   inserts or replaces each relationship by (fromId, toId, type);
 *   delete-nodes  removes every node whose id is listed (ids carry no flowId,
 *                 so all flowIds match); relationships that name them stay,
 *                 as in the reference server;
 *   delete-rels   removes each relationship by (fromId, toId, type).
 * A replaced entry keeps the place of its first insertion; deleting an
 * absent key is not an error. The state takes its own references to parts
 * of m->root: json-c reference counts are not atomic, so m must be released
 * under the same lock as the state. Returns DS_OK, or DS_ERR_NOMEM, after
 * which the state may hold part of the message. */
enum ds_err ds_fold_apply(struct ds_fold *f, const struct ds_message *m);

/* ds_fold_snapshot_json: the state as one line of JSON encoded as the
 * reference encodes it (gojson.h),
 * {"type":"snapshot","flow":{...},"nodes":[...],"relationships":[...]},
 * with flow left out when there is none and each list when it is empty
 * ({"type":"snapshot"} for an empty state); malloc'd for the caller to free,
 * its length in *len; NULL when out of memory. */
char *ds_fold_snapshot_json(const struct ds_fold *f, size_t *len);

/* ds_fold_is_empty: no flow, no nodes, no relationships (the reference's
 * snapshot route is 404 then). */
bool ds_fold_is_empty(const struct ds_fold *f);

/* ds_fold_node_count, ds_fold_rel_count: entries held. */
size_t ds_fold_node_count(const struct ds_fold *f);
size_t ds_fold_rel_count(const struct ds_fold *f);

#endif
