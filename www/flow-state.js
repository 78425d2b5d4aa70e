// flow-state.js: the page's copy of one flow, folded from snapshot and
// stream messages exactly as the flow server folds them, and the ordered
// view the page draws from it. No DOM here: pure functions over plain data.
//
// Fold rules (schema version 1; the reference flow server's behaviour, API
// doc "The reference flow server, as observed on the wire"):
//   snapshot      replaces everything; any key may be left out (no "flow":
//                 no flow record, no "nodes" / "relationships": none), and
//                 {"type":"snapshot"} is a flow never ingested
//   upsert-flow   replaces the flow record
//   upsert-nodes  inserts or replaces each node, key (flowId, id)
//   upsert-rels   inserts or replaces each relationship, key (fromId, toId, type)
//   delete-nodes  removes every node whose id is listed (whatever its flowId);
//                 relationships that name those ids stay, as on the server,
//                 so a relationship's end may be a node that is not there
//   delete-rels   removes each relationship named by (fromId, toId, type)
// An upsert replaces the whole object, it does not merge fields.
//
// The server accepts nodes without flowId, label or status (and
// relationships without toId): a missing or null string is "" here as in
// the server's re-encoding (Go's zero value), in keys and in the view; a
// node without a label is shown by its id.

export const MESSAGE_TYPES = ['snapshot', 'upsert-flow', 'upsert-nodes', 'upsert-rels', 'delete-nodes', 'delete-rels'];

// A missing or null field is "" (never "undefined"), as the server keys it.
const text = (v) => (v === undefined || v === null ? '' : String(v));
// JSON arrays as keys: no id, whatever its characters, makes two tuples collide.
export const nodeKey = (n) => JSON.stringify([text(n.flowId), text(n.id)]);
export const relKey = (r) => JSON.stringify([text(r.fromId), text(r.toId), text(r.type)]);

export function emptyState() {
  return { flow: null, nodes: new Map(), rels: new Map() };
}

const list = (v) => (Array.isArray(v) ? v : []);
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

// apply: folds one message into state (in place). Returns false for a
// message it does not know (the caller ignores it), true otherwise.
export function apply(state, msg) {
  if (!isObj(msg)) return false;
  switch (msg.type) {
    case 'snapshot':
      state.flow = isObj(msg.flow) ? msg.flow : null;
      state.nodes = new Map();
      state.rels = new Map();
      for (const n of list(msg.nodes)) if (isObj(n)) state.nodes.set(nodeKey(n), n);
      for (const r of list(msg.relationships)) if (isObj(r)) state.rels.set(relKey(r), r);
      return true;
    case 'upsert-flow':
      state.flow = isObj(msg.flow) ? msg.flow : state.flow;
      return true;
    case 'upsert-nodes':
      for (const n of list(msg.nodes)) if (isObj(n)) state.nodes.set(nodeKey(n), n);
      return true;
    case 'upsert-rels':
      for (const r of list(msg.relationships)) if (isObj(r)) state.rels.set(relKey(r), r);
      return true;
    case 'delete-nodes': {
      // Nodes only: the server keeps the relationships that named them.
      const ids = new Set(list(msg.ids).map(text));
      for (const [k, n] of state.nodes) if (ids.has(text(n.id))) state.nodes.delete(k);
      return true;
    }
    case 'delete-rels':
      for (const p of list(msg.pairs)) if (isObj(p)) state.rels.delete(relKey(p));
      return true;
    default:
      return false;
  }
}

export function isEmpty(state) {
  return state.flow === null && state.nodes.size === 0 && state.rels.size === 0;
}

// Statuses are open strings; these words get a colour, anything else is
// drawn neutral with its own text.
const CATEGORY_WORDS = {
  ok: ['ready', 'succeeded', 'success', 'successful', 'done', 'completed', 'complete', 'healthy', 'ok', 'passed', 'finished', 'installed', 'synced'],
  active: ['installing', 'running', 'in-progress', 'in_progress', 'progressing', 'deploying', 'upgrading', 'starting', 'applying', 'syncing', 'provisioning', 'started', 'active'],
  wait: ['pending', 'queued', 'waiting', 'scheduled', 'blocked', 'created', 'planned', 'not-started'],
  warn: ['retrying', 'retry', 'degraded', 'warning', 'paused', 'suspended', 'unknown', 'stalled'],
  fail: ['failed', 'failure', 'error', 'errored', 'timeout', 'timed-out', 'crashloop', 'crashloopbackoff', 'unhealthy'],
  skip: ['skipped', 'cancelled', 'canceled', 'aborted', 'superseded'],
};
const CATEGORY = new Map();
for (const [cat, words] of Object.entries(CATEGORY_WORDS)) for (const w of words) CATEGORY.set(w, cat);

export function statusCategory(status) {
  return CATEGORY.get(String(status ?? '').trim().toLowerCase()) || 'other';
}

// Categories in the order a summary lists them.
export const CATEGORY_ORDER = ['fail', 'warn', 'active', 'wait', 'ok', 'skip', 'other'];

const SEQUENCING = new Set(['finish-to-start', 'start-to-start', 'finish-to-finish', 'start-to-finish']);
// Sequencing first: containment is drawn by the tree already.
const REL_TYPE_ORDER = ['finish-to-start', 'start-to-start', 'finish-to-finish', 'start-to-finish', 'triggers', 'contains'];

const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

// view: the ordered picture of state the page draws, deterministic for a
// given state whatever order the messages came in (so a view that lived
// through a reconnect and a fresh load of the same flow look the same).
//
// Returns {flow, regions: [{name, rows: [{node, key, depth, after}], counts,
// total}], rels: [{rel, key, from, to}], counts, total}. A region's rows are
// its nodes as a tree: `contains` gives the nesting, siblings are ordered by
// their place in the sequencing graph (finish-to-start and friends), then
// label, then id. A relationship may name an id no node has (delete-nodes
// keeps relationships): its end is {id, label: id, region: '', known: false},
// and a row's `after` lists such a predecessor by its id.
export function view(state) {
  const nodes = [...state.nodes.values()];
  const rels = [...state.rels.values()];
  const graph = indexGraph(state.flow ? text(state.flow.id) : null, nodes, rels);

  const groups = new Map();
  for (const n of nodes) {
    const r = regionName(n);
    if (!groups.has(r)) groups.set(r, []);
    groups.get(r).push(n);
  }
  const counts = {};
  const regions = [];
  const regionNames = [...groups.keys()].sort((a, b) => (a === '') - (b === '') || cmp(a, b));
  for (const name of regionNames) {
    const members = groups.get(name);
    const rc = {};
    for (const n of members) {
      const c = statusCategory(n.status);
      rc[c] = (rc[c] || 0) + 1;
      counts[c] = (counts[c] || 0) + 1;
    }
    regions.push({ name, rows: regionRows(name, members, graph), counts: rc, total: members.length });
  }
  return { flow: state.flow, regions, rels: relRows(rels, graph), counts, total: nodes.length };
}

const label = (n) => text(n.label) || text(n.id);
const regionName = (n) => text(n.region);

// What the view's parts share about the graph: nodes by id, containers,
// sequencing predecessors, and the sibling order those give.
function indexGraph(flowId, nodes, rels) {
  // Relationships name nodes by id alone; prefer the node of this flow.
  const byId = new Map();
  for (const n of nodes) {
    const id = text(n.id);
    if (!byId.has(id) || text(n.flowId) === flowId) byId.set(id, n);
  }
  const parentOf = new Map(); // node id -> container id
  const preds = new Map(); // node id -> [ids it waits for, sequencing rels]
  for (const r of rels) {
    const from = text(r.fromId), to = text(r.toId);
    if (r.type === 'contains') {
      if (byId.has(from) && !parentOf.has(to)) parentOf.set(to, from);
    } else if (SEQUENCING.has(r.type)) {
      if (!preds.has(to)) preds.set(to, []);
      preds.get(to).push({ id: from, type: r.type });
    }
  }
  const levelOf = sequencingLevels(preds);
  const sibling = (a, b) =>
    cmp(levelOf(text(a.id)), levelOf(text(b.id))) || cmp(label(a), label(b)) || cmp(text(a.id), text(b.id)) ||
    cmp(text(a.flowId), text(b.flowId));
  return { byId, parentOf, preds, sibling };
}

// Level in the sequencing graph: 0 for nothing to wait for, else one more
// than the deepest predecessor. Cycles count as 0 where they close.
function sequencingLevels(preds) {
  const level = new Map();
  const visiting = new Set();
  const levelOf = (id) => {
    if (level.has(id)) return level.get(id);
    if (visiting.has(id)) return 0;
    visiting.add(id);
    let l = 0;
    for (const p of preds.get(id) || []) l = Math.max(l, levelOf(p.id) + 1);
    visiting.delete(id);
    level.set(id, l);
    return l;
  };
  return levelOf;
}

// A region's nodes as a tree: `contains` gives the nesting, within the region.
function regionRows(name, members, graph) {
  const { byId, parentOf, preds, sibling } = graph;
  const inRegion = new Set(members.map((n) => text(n.id)));
  const children = new Map();
  const roots = [];
  for (const n of members) {
    const p = parentOf.get(text(n.id));
    // A container in another region (or missing) does not nest it here.
    if (p !== undefined && inRegion.has(p) && p !== text(n.id)) {
      if (!children.has(p)) children.set(p, []);
      children.get(p).push(n);
    } else roots.push(n);
  }
  const rows = [];
  const placed = new Set();
  const walk = (n, depth) => {
    const k = nodeKey(n);
    if (placed.has(k)) return;
    placed.add(k);
    const after = (preds.get(text(n.id)) || [])
      .filter((p) => p.type === 'finish-to-start')
      .map((p) => {
        const pn = byId.get(p.id);
        const pr = pn ? regionName(pn) : '';
        return { id: p.id, label: pn ? label(pn) : p.id, region: pr !== name ? pr : '' };
      })
      .sort((a, b) => cmp(a.label, b.label) || cmp(a.id, b.id));
    rows.push({ node: n, key: k, depth, after, container: children.has(text(n.id)) });
    for (const c of (children.get(text(n.id)) || []).sort(sibling)) walk(c, depth + 1);
  };
  for (const n of roots.sort(sibling)) walk(n, 0);
  // Nodes only reachable through a containment cycle.
  for (const n of [...members].sort(sibling)) walk(n, 0);
  return rows;
}

function relRows(rels, graph) {
  const ref = (id) => {
    const n = graph.byId.get(id);
    return { id, label: n ? label(n) : id, region: n ? regionName(n) : '', known: !!n };
  };
  const typeRank = (t) => {
    const i = REL_TYPE_ORDER.indexOf(t);
    return i < 0 ? REL_TYPE_ORDER.length : i;
  };
  return rels
    .map((r) => ({ rel: r, key: relKey(r), from: ref(text(r.fromId)), to: ref(text(r.toId)) }))
    .sort(
      (a, b) =>
        cmp(typeRank(a.rel.type), typeRank(b.rel.type)) || cmp(text(a.rel.type), text(b.rel.type)) ||
        cmp(a.from.region, b.from.region) || cmp(a.from.label, b.from.label) || cmp(a.from.id, b.from.id) ||
        cmp(a.to.label, b.to.label) || cmp(a.to.id, b.to.id),
    );
}
