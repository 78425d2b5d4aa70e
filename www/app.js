// app.js: the live flow page. Picks a deployment id (form, ?id=, recent
// ids), loads GET {api}/{id}/snapshot, then follows {api}/{id}/stream with
// EventSource, folding every frame into flow-state.js and redrawing. What
// changes while it runs is one object (createPageState) that start() makes
// and hands to the connection code and the drawing code alike.
//
// How the current connection began (data-resync on [data-testid=conn], set
// by its first message frame, empty until then):
//   snapshot  a snapshot frame, which replaces the state (any key may be left
//             out; {"type":"snapshot"} is a flow never ingested). The
//             reference flow server begins every stream so, a reconnection
//             too: it ignores Last-Event-ID. The devserver does by default.
//   resume    the frames after the Last-Event-ID the browser sent, and no
//             snapshot frame: the devserver with --replay, while it still
//             holds them all.
// Either way the view ends up as a fresh load's.
//
// Connection states shown in the header (data-state on [data-testid=conn]):
//   connecting    first load in progress
//   connected     the stream is open
//   reconnecting  the stream ended; the browser is reconnecting and will send
//                 Last-Event-ID (WHATWG SSE), or this page is about to retry
//   error         the proxy refused the stream (status shown); retrying later
// EventSource gives up for good on a non-200 answer (WHATWG SSE "fail the
// connection") and never says which status it got, so the page then fetches
// the stream URL itself to learn the status and the error's text (describe),
// shows them, and opens a new EventSource after a backoff. A new EventSource
// has no Last-Event-ID, so the server starts it with a snapshot frame.

import { MESSAGE_TYPES, apply, emptyState, isEmpty, statusCategory, view, CATEGORY_ORDER } from './flow-state.js';

const API = new URL(
  (document.querySelector('meta[name="openova-flow-api"]')?.content || '/api/v1/flows').replace(/\/*$/, '/'),
  document.baseURI,
);
// The proxy's rule for a deployment id (README "Routes").
const ID_RE = /^[A-Za-z0-9._~-]{1,128}$/;
const validId = (id) => ID_RE.test(id) && id !== '.' && id !== '..';
const flowUrl = (id, what) => new URL(`${encodeURIComponent(id)}/${what}`, API).href;

const RECENT_KEY = 'openova-flow.recent';
const RETRY_S = [1, 2, 4, 8, 15];
const AUTH_RETRY_S = 30;
const NOT_FOUND_RETRY_S = 5;

const $ = (sel) => document.querySelector(sel);
const el = {
  form: $('#pick'),
  input: $('#flow-input'),
  recentList: $('#recent-ids'),
  recentWrap: $('#recent-wrap'),
  recent: $('#recent'),
  conn: $('[data-testid="conn"]'),
  connText: $('[data-testid="conn-text"]'),
  seq: $('[data-testid="last-seq"]'),
  notice: $('#notice'),
  welcome: $('#welcome'),
  flow: $('#flow'),
  flowId: $('[data-testid="flow-id"]'),
  flowStatus: $('[data-testid="flow-status"]'),
  flowStarted: $('[data-testid="flow-started"]'),
  flowElapsedLabel: $('[data-testid="flow-elapsed-label"]'),
  flowElapsed: $('[data-testid="flow-elapsed"]'),
  flowEndedWrap: $('[data-testid="flow-ended-wrap"]'),
  flowEnded: $('[data-testid="flow-ended"]'),
  flowMeta: $('[data-testid="flow-meta"]'),
  progress: $('[data-testid="flow-progress"]'),
  summary: $('[data-testid="flow-summary"]'),
  regions: $('#regions'),
  rels: $('#rels'),
  relsCount: $('[data-testid="rels-count"]'),
  relsBody: $('[data-testid="rels"]'),
  relsEmpty: $('[data-testid="rels-empty"]'),
  relsFilter: $('#rels-filter'),
  relsType: $('#rels-type'),
};

// ---- page state (one flow at a time) --------------------------------------

// createPageState: all that changes while the page runs, in one object. The
// connection code writes what is shown and the drawing code reads it (and
// keeps its own pending-redraw timer here); both take it as a parameter rather
// than sharing module-level variables, so what a function touches shows in
// its signature.
function createPageState() {
  return {
    flowId: null, // the id being followed, or null on the welcome screen
    fs: emptyState(), // folded flow state
    seq: null, // id of the last frame applied
    loaded: false, // the snapshot answered (200 or 404) or a frame arrived
    conn: { state: 'idle', status: null, retryAt: 0 },
    problem: null, // {status, title, detail, code, message, requestId, kind}
    notFound: null, // the snapshot's 404 (describe()), told while the flow is empty
    resync: '', // how the current connection began: 'snapshot' or 'resume'
    gen: 0, // bumped on every follow(): late callbacks of an old flow are dropped
    source: null, // the live EventSource
    retryTimer: null,
    attempt: 0,
    renderTimer: null, // a redraw is due soon (scheduleRender)
  };
}

// ---- HTTP -----------------------------------------------------------------

// request: GET url; for a stream, only the status and, on an error, the body
// are read, then the request is aborted. Never throws: status 0 is a network
// failure.
async function request(url, { stream = false } = {}) {
  const ctl = new AbortController();
  try {
    const resp = await fetch(url, {
      headers: { Accept: stream ? 'text/event-stream' : 'application/json' },
      cache: 'no-store',
      signal: ctl.signal,
    });
    const out = {
      status: resp.status,
      contentType: resp.headers.get('Content-Type') || '',
      requestId: resp.headers.get('X-Request-ID'),
      retryAfter: resp.headers.get('Retry-After'),
      text: '',
    };
    if (!(stream && resp.ok)) out.text = await resp.text();
    return out;
  } catch (e) {
    return { status: 0, text: '', error: String(e && e.message ? e.message : e) };
  } finally {
    ctl.abort();
  }
}

const parseJson = (t) => {
  try {
    return JSON.parse(t);
  } catch {
    return null;
  }
};

// The longest error text shown, in characters.
const MESSAGE_MAX = 200;

// errorBody: what an error body says, by its Content-Type. The flow server's
// errors, passed through by the proxy, are text/plain: one sentence and a
// newline (shown trimmed, on one line, capped). The proxy's own errors are
// JSON {error, message, requestId}. Anything else (a web server's HTML page)
// says nothing: ignored.
function errorBody(r) {
  const type = String(r.contentType || '').split(';')[0].trim().toLowerCase();
  if (type === 'text/plain') {
    const t = [...String(r.text).replace(/[\s\u0000-\u001f\u007f]+/g, ' ').trim()];
    return { message: t.length > MESSAGE_MAX ? `${t.slice(0, MESSAGE_MAX - 1).join('')}…` : t.join('') };
  }
  if (type === 'text/html' || type === 'application/xhtml+xml') return {};
  const j = parseJson(r.text);
  if (!j || typeof j !== 'object' || Array.isArray(j)) return {};
  const field = (k) => (typeof j[k] === 'string' ? j[k] : '');
  return { code: field('error'), message: field('message'), requestId: field('requestId') };
}

// describe: what an unsuccessful answer means for the operator: a title and
// detail by status, and the body's own words (errorBody).
function describe(r) {
  const body = errorBody(r);
  const base = {
    status: r.status,
    code: body.code || '',
    message: body.message || r.error || '',
    requestId: body.requestId || r.requestId || '',
    kind: 'error',
  };
  const s = r.status;
  const table = {
    0: ['Cannot reach the proxy', 'The browser got no answer from this web server. Retrying.'],
    400: ['Invalid deployment id', 'The proxy refused this id. Check it and try again.'],
    401: ['Not signed in (401)', 'The proxy needs an authenticated user. Sign in through the web server (reload the page to be asked) and try again.'],
    403: ['Access denied (403)', 'Your user may not read this flow.'],
    404: ['No such flow yet', ''],
    502: ['Flow server unreachable (502)', 'The proxy could not reach the flow server. This page keeps retrying and picks the flow up again when it is back.'],
    503: ['Flow server busy (503)', 'Too many open streams, or the flow server is not ready. Retrying.'],
    504: ['Flow server too slow (504)', 'The flow server did not answer in time. Retrying.'],
  };
  const [title, detail] = table[s] || [`Unexpected answer (${s})`, s >= 500 ? 'The proxy answered with an error. Retrying.' : ''];
  if (s === 404) base.kind = 'not-found';
  return { ...base, title, detail };
}

// ---- connection -----------------------------------------------------------

function stop(page) {
  page.gen++;
  if (page.source) page.source.close();
  page.source = null;
  clearTimeout(page.retryTimer);
  page.retryTimer = null;
  page.attempt = 0;
}

async function follow(page, id) {
  stop(page);
  const my = page.gen;
  page.flowId = id;
  page.fs = emptyState();
  page.seq = null;
  page.loaded = false;
  page.problem = null;
  page.notFound = null;
  page.resync = '';
  if (!id) {
    setConn(page, 'idle');
    render(page);
    return;
  }
  remember(id);
  el.input.value = id;
  if (!validId(id)) {
    page.problem = describe({ status: 400, text: '' });
    page.problem.detail = 'A deployment id is 1 to 128 characters of A-Z a-z 0-9 . _ ~ - (not . or ..).';
    setConn(page, 'error', 400);
    render(page);
    return;
  }
  setConn(page, 'connecting');
  render(page);
  const r = await request(flowUrl(id, 'snapshot'));
  if (my !== page.gen) return;
  const body = r.status === 200 ? parseJson(r.text) : null;
  if (body && typeof body === 'object') {
    apply(page.fs, { ...body, type: 'snapshot' });
    page.loaded = true;
  } else if (r.status === 404) {
    page.loaded = true; // never ingested: the stream still works and brings the first message
    page.notFound = describe(r);
  } else {
    page.problem = describe(r.status === 200 ? { ...r, status: 502, text: '' } : r);
    if (r.status === 400) {
      setConn(page, 'error', 400);
      render(page);
      return;
    }
  }
  render(page);
  openStream(page, my);
}

function openStream(page, my) {
  if (my !== page.gen) return;
  const es = new EventSource(flowUrl(page.flowId, 'stream'));
  page.source = es;
  page.resync = '';
  let first = true; // the first message frame tells how this connection began
  es.onopen = () => {
    if (page.source !== es) return;
    first = true;
    page.attempt = 0;
    page.problem = null;
    setConn(page, 'connected');
    render(page);
  };
  const onFrame = (ev) => {
    if (page.source !== es) return;
    const msg = parseJson(ev.data);
    if (!msg || typeof msg !== 'object') return;
    if (typeof msg.type !== 'string') msg.type = ev.type;
    if (!apply(page.fs, msg)) return; // a type this page does not know: skip it
    if (first) {
      // A snapshot frame reloads everything; anything else is the server
      // (devserver --replay) replaying what followed our Last-Event-ID.
      first = false;
      page.resync = msg.type === 'snapshot' ? 'snapshot' : 'resume';
    }
    if (!isEmpty(page.fs)) page.notFound = null; // the 404 is history
    if (/^\d+$/.test(ev.lastEventId)) page.seq = Number(ev.lastEventId);
    page.loaded = true;
    if (page.conn.state !== 'connected') {
      page.problem = null;
      setConn(page, 'connected');
    }
    scheduleRender(page);
  };
  for (const t of MESSAGE_TYPES) es.addEventListener(t, onFrame);
  es.addEventListener('message', onFrame); // frames without an event: line
  // heartbeat frames only keep the connection warm: nothing to apply.
  es.onerror = () => {
    if (page.source !== es) return;
    if (es.readyState === EventSource.CONNECTING) {
      // The response ended; the browser reconnects by itself with Last-Event-ID.
      page.resync = ''; // the next connection's first frame tells how it began
      setConn(page, 'reconnecting');
      render(page);
      return;
    }
    es.close();
    page.source = null;
    diagnose(page, my);
  };
}

// diagnose: the browser gave up on the stream (a non-200 answer). Learn the
// status, show it, retry.
async function diagnose(page, my) {
  setConn(page, 'reconnecting');
  const r = await request(flowUrl(page.flowId, 'stream'), { stream: true });
  if (my !== page.gen) return;
  if (r.status === 200) {
    // It answers now: the refusal was passing. Reopen at once the first
    // time; should it keep failing like this, back off.
    if (page.attempt++ === 0) openStream(page, my);
    else page.retryTimer = setTimeout(() => my === page.gen && openStream(page, my), RETRY_S[Math.min(page.attempt, RETRY_S.length - 1)] * 1000);
    return;
  }
  page.problem = describe(r);
  if (r.status === 400) {
    setConn(page, 'error', 400);
    render(page);
    return;
  }
  let delay = RETRY_S[Math.min(page.attempt, RETRY_S.length - 1)];
  if (r.status === 401 || r.status === 403) delay = AUTH_RETRY_S;
  if (r.status === 404) delay = NOT_FOUND_RETRY_S;
  const ra = Number(r.retryAfter);
  if (Number.isFinite(ra) && ra > 0) delay = Math.min(ra, 300);
  page.attempt++;
  page.conn.retryAt = Date.now() + delay * 1000;
  setConn(page, 'error', r.status, page.conn.retryAt);
  render(page);
  page.retryTimer = setTimeout(() => {
    if (my !== page.gen) return;
    setConn(page, 'reconnecting');
    render(page);
    openStream(page, my);
  }, delay * 1000);
}

function setConn(page, state, status = null, retryAt = 0) {
  page.conn = { state, status, retryAt };
  drawConn(page);
}

// ---- rendering ------------------------------------------------------------

const esc = (v) =>
  String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const ms = (v) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : null);
const pad = (n) => String(n).padStart(2, '0');

function fmtClock(t) {
  const d = new Date(t);
  const now = new Date();
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === now.toDateString()) return hms;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms}`;
}

function fmtDur(d) {
  if (d === null || d < 0) return '';
  if (d < 10000) return `${(Math.floor(d / 100) / 10).toFixed(1)}s`;
  const s = Math.floor(d / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor(s / 3600) % 24}h`;
}

const CONN_TEXT = { idle: 'Idle', connecting: 'Connecting…', connected: 'Live', reconnecting: 'Reconnecting…', error: 'Error' };

function drawConn(page) {
  el.conn.dataset.state = page.conn.state;
  el.conn.dataset.status = page.conn.status ?? '';
  el.conn.dataset.resync = page.resync;
  let t = CONN_TEXT[page.conn.state] || page.conn.state;
  if (page.conn.state === 'error') {
    t = `Error ${page.conn.status || 'network'}`;
    if (page.conn.retryAt) t += ` · retry in ${Math.max(0, Math.ceil((page.conn.retryAt - Date.now()) / 1000))}s`;
  }
  el.connText.textContent = t;
  el.conn.title = {
    connected: `Following the stream${{ snapshot: ' (began with a snapshot)', resume: ' (resumed after the last sequence number seen)' }[page.resync] || ''}`,
    reconnecting: 'The stream ended; reconnecting',
    error: 'The proxy refused the stream',
    connecting: 'Loading the flow',
    idle: 'No flow picked',
  }[page.conn.state] || '';
  document.body.classList.toggle('stale', page.conn.state !== 'connected' && page.conn.state !== 'idle' && page.loaded);
}

// setHtml: replaces el's content only when it differs, so a redraw that
// changes nothing keeps text selections, hover and focus.
const drawn = new WeakMap();
function setHtml(e, html) {
  if (drawn.get(e) === html) return;
  drawn.set(e, html);
  e.innerHTML = html;
}

function scheduleRender(page) {
  // Frames can come in bursts: draw once per burst, soon after.
  if (page.renderTimer === null) page.renderTimer = setTimeout(() => render(page), 15);
}

function render(page) {
  clearTimeout(page.renderTimer);
  page.renderTimer = null;
  drawConn(page);
  el.seq.textContent = page.seq === null ? '–' : String(page.seq);
  el.welcome.hidden = page.flowId !== null;
  drawNotice(page);
  if (page.flowId === null) {
    el.flow.hidden = true;
    drawRegions({ regions: [] });
    el.rels.hidden = true;
    drawRecent();
    document.title = 'OpenovaFlow';
    return;
  }
  const v = view(page.fs);
  drawFlow(page, v);
  drawRegions(v);
  drawRels(v);
  tick(page);
}

function drawNotice(page) {
  let p = page.problem;
  if (!p && page.flowId !== null && page.loaded && isEmpty(page.fs)) {
    p = {
      kind: 'not-found',
      title: 'No such flow yet',
      detail: `Nothing has been posted to “${page.flowId}” so far. This page follows its stream and shows the flow as soon as the first event arrives.`,
      // what the snapshot's 404 said (the flow server's sentence), if it came
      code: page.notFound?.code || '',
      message: page.notFound?.message || '',
    };
  }
  if (p && p.kind === 'not-found' && !isEmpty(page.fs)) p = null; // a 404 seen before the first frame
  el.notice.hidden = !p;
  if (!p) {
    setHtml(el.notice, '');
    el.notice.removeAttribute('data-kind');
    el.notice.removeAttribute('data-status');
    return;
  }
  el.notice.dataset.kind = p.kind;
  el.notice.dataset.status = p.status ?? '';
  const extra = [];
  if (p.code || p.message) extra.push(`<span class="notice-server">${esc([p.code, p.message].filter(Boolean).join(': '))}</span>`);
  if (p.requestId) extra.push(`<span class="notice-rid">request id <code>${esc(p.requestId)}</code></span>`);
  setHtml(
    el.notice,
    `<strong data-testid="notice-title">${esc(p.title)}</strong>` +
      (p.detail ? ` <span class="notice-detail">${esc(p.detail)}</span>` : '') +
      (extra.length ? `<div class="notice-extra">${extra.join(' ')}</div>` : ''),
  );
}

function drawFlow(page, v) {
  // Nothing known yet (first load failed): the notice says why; no empty card.
  el.flow.hidden = !page.loaded && isEmpty(page.fs);
  const f = v.flow;
  el.flowId.textContent = f && f.id ? String(f.id) : page.flowId;
  const status = f ? String(f.status ?? '') : '';
  el.flowStatus.textContent = f ? status || '–' : 'no flow record yet';
  el.flowStatus.dataset.cat = f ? statusCategory(status) : 'wait';
  el.flowStatus.dataset.status = status;
  const started = f ? ms(f.startedAt) : null;
  const ended = f ? ms(f.endedAt) : null;
  el.flowStarted.textContent = started ? fmtClock(started) : '–';
  el.flowStarted.title = started ? new Date(started).toISOString() : '';
  el.flowEndedWrap.hidden = !ended;
  el.flowEnded.textContent = ended ? fmtClock(ended) : '';
  el.flowEnded.title = ended ? new Date(ended).toISOString() : '';
  el.flowElapsedLabel.textContent = ended ? 'took' : 'elapsed';
  el.flowElapsed.dataset.since = started && !ended ? String(started) : '';
  el.flowElapsed.textContent = started ? fmtDur((ended || Date.now()) - started) : '–';

  const meta = [];
  if (f && f.definitionId) meta.push(`definition <b>${esc(f.definitionId)}</b>`);
  if (f && f.parentFlowId) meta.push(`parent <a href="?id=${esc(encodeURIComponent(f.parentFlowId))}">${esc(f.parentFlowId)}</a>`);
  if (f && Array.isArray(f.triggeredBy) && f.triggeredBy.length) {
    meta.push(
      'triggered by ' +
        f.triggeredBy
          .map((t) => (t && t.flowId ? `<a href="?id=${esc(encodeURIComponent(t.flowId))}">${esc(t.flowId)}</a>${t.when ? ` (${esc(t.when)})` : ''}` : ''))
          .filter(Boolean)
          .join(', '),
    );
  }
  if (f && f.meta && typeof f.meta === 'object') {
    for (const [k, val] of Object.entries(f.meta).slice(0, 6)) {
      if (val === null || typeof val === 'object') continue;
      meta.push(`${esc(k)} <b>${esc(val)}</b>`);
    }
  }
  setHtml(el.flowMeta, meta.join('<span class="sep">·</span>'));
  el.flowMeta.hidden = meta.length === 0;

  // Summary by status text, ordered by how urgent the status is.
  const byStatus = new Map();
  for (const n of page.fs.nodes.values()) {
    const s = String(n.status ?? '');
    byStatus.set(s, (byStatus.get(s) || 0) + 1);
  }
  const statuses = [...byStatus.entries()].sort(
    (a, b) => CATEGORY_ORDER.indexOf(statusCategory(a[0])) - CATEGORY_ORDER.indexOf(statusCategory(b[0])) || b[1] - a[1] || (a[0] < b[0] ? -1 : 1),
  );
  drawProgress(el.progress, v.counts);
  el.progress.hidden = v.total === 0;
  const parts = statuses.map(
    ([s, c]) => `<span class="chip" data-cat="${statusCategory(s)}"><span class="dot"></span>${c} ${esc(s || '(none)')}</span>`,
  );
  const nRegions = v.regions.filter((r) => r.name !== '').length;
  parts.push(
    `<span class="totals">${v.total} node${v.total === 1 ? '' : 's'} · ${nRegions} region${nRegions === 1 ? '' : 's'} · ${v.rels.length} relationship${v.rels.length === 1 ? '' : 's'}</span>`,
  );
  setHtml(el.summary, parts.join(''));
  document.title = `${f && f.id ? f.id : page.flowId}${status ? ` · ${status}` : ''} — OpenovaFlow`;
}

// A stacked bar: done first, then in progress, trouble, waiting.
const BAR_ORDER = ['ok', 'skip', 'active', 'warn', 'fail', 'wait', 'other'];
function progressBar(counts) {
  return BAR_ORDER
    .filter((c) => counts[c])
    .map((c) => `<span data-cat="${c}" style="flex-grow:${counts[c]}"></span>`)
    .join('');
}

// drawProgress: the flow's bar, updated in place so that it glides.
function drawProgress(bar, counts) {
  if (bar.children.length !== BAR_ORDER.length) {
    bar.innerHTML = BAR_ORDER.map((c) => `<span data-cat="${c}"></span>`).join('');
  }
  BAR_ORDER.forEach((c, i) => {
    bar.children[i].style.flexGrow = String(counts[c] || 0);
    bar.children[i].hidden = !counts[c];
  });
}

// One <section> per region, kept across redraws and rewritten only when its
// own content changed.
const regionEls = new Map(); // region name -> section
function drawRegions(v) {
  const seen = new Set();
  let prev = null;
  for (const r of v.regions) {
    const ok = (r.counts.ok || 0) + (r.counts.skip || 0);
    const trouble = (r.counts.fail || 0) + (r.counts.warn || 0);
    const name = r.name || 'no region';
    let sec = regionEls.get(r.name);
    if (!sec) {
      sec = document.createElement('section');
      sec.className = 'region';
      sec.dataset.testid = 'region';
      sec.dataset.region = r.name;
      regionEls.set(r.name, sec);
    }
    setHtml(
      sec,
      `<header class="region-head"><h2 data-testid="region-name">${esc(name)}</h2>` +
        `<span class="region-count" data-testid="region-count">${ok}/${r.total} done${trouble ? ` · <span class="trouble">${trouble} need attention</span>` : ''}</span>` +
        `</header><div class="progress thin">${progressBar(r.counts)}</div>` +
        `<ul class="nodes">${r.rows.map(nodeRow).join('')}</ul>`,
    );
    const at = prev ? prev.nextSibling : el.regions.firstChild;
    if (at !== sec) el.regions.insertBefore(sec, at);
    prev = sec;
    seen.add(r.name);
  }
  for (const [name, sec] of regionEls) {
    if (!seen.has(name)) {
      sec.remove();
      regionEls.delete(name);
    }
  }
}

function nodeRow({ node: n, key, depth, after, container }) {
  const status = String(n.status ?? '');
  const cat = statusCategory(status);
  const started = ms(n.startedAt);
  const ended = ms(n.endedAt);
  let time = '';
  let since = '';
  if (started && ended) time = fmtDur(ended - started);
  else if (started && (cat === 'active' || cat === 'warn')) since = String(started); // tick() writes it
  const label = String(n.label ?? '') || String(n.id ?? '') || '–'; // the id when there is no label
  const meta = n.meta && typeof n.meta === 'object' ? n.meta : null;
  const note = meta ? meta.error || meta.message || meta.reason : '';
  const attempt = meta && Number(meta.attempt) > 1 ? `attempt ${Number(meta.attempt)}` : '';
  const tip = [
    `id ${n.id ?? ''}`,
    n.flowId ? `flow ${n.flowId}` : '',
    started ? `started ${new Date(started).toISOString()}` : '',
    ended ? `ended ${new Date(ended).toISOString()}` : '',
    after.length ? `after ${after.map((a) => a.label + (a.region ? ` (${a.region})` : '')).join(', ')}` : '',
  ]
    .filter(Boolean)
    .join('\n');
  const afterHtml = after.length
    ? `<span class="node-after">after ${after.map((a) => `${esc(a.label)}${a.region ? ` <i>(${esc(a.region)})</i>` : ''}`).join(', ')}</span>`
    : '';
  return (
    `<li class="node${container ? ' container' : ''}" data-testid="node" data-key="${esc(key)}" data-id="${esc(n.id)}" data-region="${esc(n.region ?? '')}" ` +
    `data-status="${esc(status)}" data-cat="${cat}" style="--depth:${depth}" title="${esc(tip)}">` +
    `<span class="dot" aria-hidden="true"></span>` +
    `<span class="node-main"><span class="node-line"><span class="node-label" data-testid="node-label">${esc(label)}</span>` +
    (n.family ? `<span class="node-family">${esc(n.family)}</span>` : '') +
    (attempt ? `<span class="node-attempt">${esc(attempt)}</span>` : '') +
    `${afterHtml}</span>` +
    (note ? `<span class="node-note">${esc(note)}</span>` : '') +
    `</span>` +
    `<span class="node-status" data-testid="node-status">${esc(status || '–')}</span>` +
    `<span class="node-time"${since ? ` data-since="${since}"` : ''}>${esc(time)}</span>` +
    `</li>`
  );
}

const REL_TEXT = {
  contains: 'contains',
  'finish-to-start': 'finish → start',
  'start-to-start': 'start → start',
  'finish-to-finish': 'finish → finish',
  'start-to-finish': 'start → finish',
  triggers: 'triggers',
};

function drawRels(v) {
  el.rels.hidden = v.rels.length === 0;
  el.relsCount.textContent = String(v.rels.length);
  // An end whose node is not there (deleted: its relationships stay) is
  // drawn by its id, marked unknown.
  const ref = (x) =>
    `<span class="ref${x.known ? '' : ' unknown'}" title="${esc(x.id)}">${esc(x.label || '–')}</span>` +
    (x.region ? ` <span class="region-tag">${esc(x.region)}</span>` : '');
  setHtml(el.relsBody, v.rels
    .map(({ rel: r, key, from, to }) => {
      const details = [];
      if (r.condition) details.push(esc(r.condition));
      if (r.lag !== undefined && r.lag !== null && r.lag !== '') details.push(`lag ${esc(r.lag)}s`);
      if (r.fromFlowId) details.push(`from flow ${esc(r.fromFlowId)}`);
      if (r.toFlowId) details.push(`to flow ${esc(r.toFlowId)}`);
      return (
        `<tr data-testid="rel" data-key="${esc(key)}" data-type="${esc(r.type)}" data-from="${esc(r.fromId)}" data-to="${esc(r.toId)}">` +
        `<td>${ref(from)}</td><td><span class="reltype" data-type="${esc(r.type)}">${esc(REL_TEXT[r.type] || r.type || '–')}</span></td>` +
        `<td>${ref(to)}</td><td class="details">${details.join(' · ')}</td></tr>`
      );
    })
    .join(''));
  // The type picker lists the types present, with counts; the choice sticks.
  const byType = new Map();
  for (const { rel } of v.rels) byType.set(String(rel.type ?? ''), (byType.get(String(rel.type ?? '')) || 0) + 1);
  const chosen = el.relsType.value;
  const opts = [`<option value="">all types (${v.rels.length})</option>`];
  for (const [t, c] of byType) opts.push(`<option value="${esc(t)}">${esc(REL_TEXT[t] || t)} (${c})</option>`);
  if (chosen && !byType.has(chosen)) opts.push(`<option value="${esc(chosen)}">${esc(REL_TEXT[chosen] || chosen)} (0)</option>`);
  setHtml(el.relsType, opts.join(''));
  el.relsType.value = chosen;
  filterRels();
}

function filterRels() {
  const q = el.relsFilter.value.trim().toLowerCase();
  const type = el.relsType.value;
  let shown = 0;
  for (const tr of el.relsBody.children) {
    const hit = (!type || tr.dataset.type === type) && (!q || tr.textContent.toLowerCase().includes(q));
    tr.hidden = !hit;
    if (hit) shown++;
  }
  el.relsEmpty.hidden = shown > 0 || el.relsBody.children.length === 0;
}

// tick: the clocks that move on their own (elapsed times, retry countdown).
function tick(page) {
  const now = Date.now();
  for (const e of document.querySelectorAll('[data-since]')) {
    const since = Number(e.dataset.since);
    if (since) e.textContent = fmtDur(now - since);
  }
  if (page.conn.state === 'error' && page.conn.retryAt) drawConn(page);
}

// ---- picking a flow -------------------------------------------------------

function recentIds() {
  try {
    const v = JSON.parse(localStorage.getItem(RECENT_KEY) || '[]');
    return Array.isArray(v) ? v.filter((x) => typeof x === 'string' && validId(x)) : [];
  } catch {
    return [];
  }
}

function remember(id) {
  if (!validId(id)) return;
  const ids = [id, ...recentIds().filter((x) => x !== id)].slice(0, 8);
  try {
    localStorage.setItem(RECENT_KEY, JSON.stringify(ids));
  } catch {
    /* storage disabled: no recent list */
  }
  drawRecent();
}

function drawRecent() {
  const ids = recentIds();
  el.recentList.innerHTML = ids.map((id) => `<option value="${esc(id)}">`).join('');
  el.recentWrap.hidden = ids.length === 0;
  el.recent.innerHTML = ids.map((id) => `<a class="chip" href="?id=${esc(encodeURIComponent(id))}">${esc(id)}</a>`).join(' ');
}

function idFromUrl() {
  const id = new URLSearchParams(location.search).get('id');
  return id === null || id.trim() === '' ? null : id.trim();
}

// ---- start ----------------------------------------------------------------

// start: makes the one page state and wires the page's events to it. The
// state lives here, not at module level, so a function that is not handed it
// cannot reach it.
function start() {
  const page = createPageState();
  el.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = el.input.value.trim();
    if (!id) return;
    const url = new URL(location.href);
    url.searchParams.set('id', id);
    if (url.href !== location.href) history.pushState(null, '', url);
    follow(page, id);
  });
  window.addEventListener('popstate', () => follow(page, idFromUrl()));
  el.relsFilter.addEventListener('input', filterRels);
  el.relsType.addEventListener('change', filterRels);
  setInterval(() => tick(page), 1000);

  drawRecent();
  follow(page, idFromUrl());
}

start();
