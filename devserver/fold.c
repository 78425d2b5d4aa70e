/* fold.c: folding flow messages into one flow's state (see fold.h). */
/* asprintf: _GNU_SOURCE comes from the Makefile */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fold.h"
#include "gojson.h"

enum ds_err ds_fold_init(struct ds_fold *f)
{
    f->flow = NULL;
    f->nodes = json_object_new_object();
    f->rels = json_object_new_object();
    return f->nodes && f->rels ? DS_OK : DS_ERR_NOMEM;
}

void ds_fold_free(struct ds_fold *f)
{
    if (!f)
        return;
    json_object_put(f->flow);
    json_object_put(f->nodes);
    json_object_put(f->rels);
    f->flow = f->nodes = f->rels = NULL;
}

static const char *str(struct json_object *obj, const char *key)
{
    struct json_object *v = NULL;
    json_object_object_get_ex(obj, key, &v);
    return json_object_get_string(v); /* validated: present strings */
}

/* Keys are length-prefixed so that no id, whatever its characters, can make
 * two different tuples collide: "<len>:<flowId><id>". Returns a malloc'd key
 * or NULL when out of memory. */
static char *node_key(struct json_object *node)
{
    const char *flow_id = str(node, "flowId");
    char *key = NULL;
    if (asprintf(&key, "%zu:%s%s", strlen(flow_id), flow_id, str(node, "id")) < 0)
        return NULL;
    return key;
}

static char *rel_key(struct json_object *rel)
{
    const char *from = str(rel, "fromId"), *to = str(rel, "toId");
    char *key = NULL;
    if (asprintf(&key, "%zu:%s%zu:%s%s", strlen(from), from, strlen(to), to, str(rel, "type")) < 0)
        return NULL;
    return key;
}

/* put_all: upserts every element of array into map under keyfn's key. */
static enum ds_err put_all(struct json_object *map, struct json_object *array, char *(*keyfn)(struct json_object *))
{
    size_t n = array ? json_object_array_length(array) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *v = json_object_array_get_idx(array, i);
        char *key = keyfn(v);
        if (!key)
            return DS_ERR_NOMEM;
        /* An existing key keeps its place: json-c replaces the value in its
         * linked entry. The map takes the extra reference. */
        int rc = json_object_object_add(map, key, json_object_get(v));
        free(key);
        if (rc != 0) {
            json_object_put(v);
            return DS_ERR_NOMEM;
        }
    }
    return DS_OK;
}

static enum ds_err del_all(struct json_object *map, struct json_object *array, char *(*keyfn)(struct json_object *))
{
    size_t n = json_object_array_length(array);
    for (size_t i = 0; i < n; i++) {
        char *key = keyfn(json_object_array_get_idx(array, i));
        if (!key)
            return DS_ERR_NOMEM;
        json_object_object_del(map, key);
        free(key);
    }
    return DS_OK;
}

static enum ds_err delete_nodes(struct ds_fold *f, struct json_object *ids)
{
    /* a set of the ids, so one pass over the nodes suffices */
    struct json_object *set = json_object_new_object();
    if (!set)
        return DS_ERR_NOMEM;
    enum ds_err rc = DS_OK;
    for (size_t i = 0; i < json_object_array_length(ids); i++) {
        if (json_object_object_add(set, json_object_get_string(json_object_array_get_idx(ids, i)), NULL) != 0) {
            rc = DS_ERR_NOMEM;
            goto out;
        }
    }
    {
        /* json_object_object_foreach reads the next entry before the body,
         * so deleting the current one is safe. Relationships that name a
         * deleted node stay, as in the reference server. */
        json_object_object_foreach(f->nodes, nkey, node)
        {
            if (json_object_object_get_ex(set, str(node, "id"), NULL))
                json_object_object_del(f->nodes, nkey);
        }
    }
out:
    json_object_put(set);
    return rc;
}

static struct json_object *member(struct json_object *obj, const char *key)
{
    struct json_object *v = NULL;
    json_object_object_get_ex(obj, key, &v);
    return json_object_is_type(v, json_type_null) ? NULL : v;
}

static void set_flow(struct ds_fold *f, struct json_object *flow)
{
    json_object_put(f->flow);
    f->flow = json_object_get(flow);
}

enum ds_err ds_fold_apply(struct ds_fold *f, const struct ds_message *m)
{
    struct json_object *root = m->root;
    switch (m->type) {
    case DS_MSG_SNAPSHOT: {
        struct json_object *nodes = json_object_new_object(), *rels = json_object_new_object();
        enum ds_err rc = DS_OK;
        if (!nodes || !rels)
            rc = DS_ERR_NOMEM;
        if (rc == DS_OK)
            rc = put_all(nodes, member(root, "nodes"), node_key);
        if (rc == DS_OK)
            rc = put_all(rels, member(root, "relationships"), rel_key);
        if (rc != DS_OK) {
            /* the old state stays whole */
            json_object_put(nodes);
            json_object_put(rels);
            return rc;
        }
        set_flow(f, member(root, "flow"));
        json_object_put(f->nodes);
        json_object_put(f->rels);
        f->nodes = nodes;
        f->rels = rels;
        return DS_OK;
    }
    case DS_MSG_UPSERT_FLOW:
        set_flow(f, member(root, "flow"));
        return DS_OK;
    case DS_MSG_UPSERT_NODES:
        return put_all(f->nodes, member(root, "nodes"), node_key);
    case DS_MSG_UPSERT_RELS:
        return put_all(f->rels, member(root, "relationships"), rel_key);
    case DS_MSG_DELETE_NODES:
        return delete_nodes(f, member(root, "ids"));
    case DS_MSG_DELETE_RELS:
        return del_all(f->rels, member(root, "pairs"), rel_key);
    }
    return DS_ERR_ARG;
}

/* values: a new array holding references to map's values, in order. */
static struct json_object *values(struct json_object *map)
{
    struct json_object *a = json_object_new_array_ext(json_object_object_length(map));
    if (!a)
        return NULL;
    json_object_object_foreach(map, key, v)
    {
        (void)key;
        if (json_object_array_add(a, json_object_get(v)) != 0) {
            json_object_put(v);
            json_object_put(a);
            return NULL;
        }
    }
    return a;
}

char *ds_fold_snapshot_json(const struct ds_fold *f, size_t *len)
{
    char *out = NULL;
    struct json_object *snap = json_object_new_object();
    struct json_object *type = json_object_new_string("snapshot");
    struct json_object *nodes = NULL, *rels = NULL;
    if (!snap || !type || json_object_object_add(snap, "type", type) != 0)
        goto out;
    type = NULL; /* the snapshot's now */
    /* json_object_object_add consumes the reference only on success */
    if (f->flow && json_object_object_add(snap, "flow", json_object_get(f->flow)) != 0) {
        json_object_put(f->flow);
        goto out;
    }
    if (json_object_object_length(f->nodes) > 0) {
        if (!(nodes = values(f->nodes)) || json_object_object_add(snap, "nodes", nodes) != 0)
            goto out;
        nodes = NULL;
    }
    if (json_object_object_length(f->rels) > 0) {
        if (!(rels = values(f->rels)) || json_object_object_add(snap, "relationships", rels) != 0)
            goto out;
        rels = NULL;
    }
    out = ds_gojson_encode(snap, len);
out:
    json_object_put(type);
    json_object_put(nodes);
    json_object_put(rels);
    json_object_put(snap);
    return out;
}

bool ds_fold_is_empty(const struct ds_fold *f)
{
    return !f->flow && json_object_object_length(f->nodes) == 0 && json_object_object_length(f->rels) == 0;
}

size_t ds_fold_node_count(const struct ds_fold *f)
{
    return (size_t)json_object_object_length(f->nodes);
}

size_t ds_fold_rel_count(const struct ds_fold *f)
{
    return (size_t)json_object_object_length(f->rels);
}
