// flow_page.mjs: the browser half of the flow page test. Drives Debian's
// headless Chromium with playwright-core against the page served by
// lighttpd, posts events through the proxy, and checks what the page shows.
// Started by test_flow_page.py, which owns the servers: to stop or start one
// this script prints `@@control <command>` and reads one reply line (`ok` or
// `error ...`) from stdin. Ends with `browser: N passed, M failed` and exit
// status 0 only when nothing failed.
//
// Environment (set by test_flow_page.py):
//   FLOW_PAGE_URL          the page, e.g. http://127.0.0.1:PORT/
//   FLOW_API_BASE          the proxy's flows base, e.g. http://127.0.0.1:PORT/api/v1/flows
//   FLOW_PAGE_URL_NOUSER   the page on a server whose proxy wants a user (401)
//   FLOW_DEVSERVER_URL     the flow server itself (events while the proxy is down)
//   FLOW_ARTIFACTS         where screenshots go
//   FLOW_CHROMIUM          the browser, default /usr/bin/chromium
//   FLOW_DEMO_EVENTS       tools/demo-events

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { isDeepStrictEqual } from 'node:util';
import { chromium } from 'playwright-core';

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.log(`flow_page.mjs: ${name} is not set (run it through test_flow_page.py)`);
    process.exit(2);
  }
  return v;
}

const PAGE = need('FLOW_PAGE_URL');
const API = need('FLOW_API_BASE').replace(/\/+$/, '');
const PAGE_NOUSER = need('FLOW_PAGE_URL_NOUSER');
const DEVSERVER = need('FLOW_DEVSERVER_URL').replace(/\/+$/, '');
const ARTIFACTS = process.env.FLOW_ARTIFACTS || 'build/test-artifacts';
const CHROMIUM = process.env.FLOW_CHROMIUM || '/usr/bin/chromium';
const DEMO_EVENTS = process.env.FLOW_DEMO_EVENTS || 'tools/demo-events';

// "shows it within a second", measured from the proxy's answer to the POST
const LIVE_MS = 1000;
// Chromium waits 3 s before an EventSource reconnects; leave room for it.
const RECONNECT_MS = 15000;

// ---- control channel --------------------------------------------------------

const stdin = readline.createInterface({ input: process.stdin });
const replies = [];
const waiting = [];
stdin.on('line', (l) => (waiting.length ? waiting.shift()(l) : replies.push(l)));
stdin.on('close', () => {
  while (waiting.length) waiting.shift()('error stdin closed');
});

async function control(cmd) {
  console.log(`@@control ${cmd}`);
  const reply = replies.length ? replies.shift() : await new Promise((r) => waiting.push(r));
  if (reply !== 'ok') throw new Error(`control ${cmd}: ${reply}`);
}

// ---- HTTP -------------------------------------------------------------------

async function post(id, message, base = API) {
  const url = base === API ? `${API}/${encodeURIComponent(id)}/events` : `${base}/v1/flows/${encodeURIComponent(id)}/events`;
  const r = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(message) });
  const body = await r.text();
  if (r.status !== 200) throw new Error(`POST ${message.type} to ${url}: ${r.status} ${body}`);
  return JSON.parse(body).seq;
}

// errorAnswer: GETs or POSTs url expecting a refusal from the flow server,
// passed through by the proxy: that status, text/plain, one sentence and a
// newline. Returns the sentence.
async function errorAnswer(url, status, init = {}) {
  const r = await fetch(url, init);
  const body = await r.text();
  const type = r.headers.get('Content-Type') || '';
  if (r.status !== status || !/^text\/plain\b/i.test(type) || !/^[^\n]+\n$/.test(body)) {
    throw new Error(`${init.method || 'GET'} ${url}: want ${status} text/plain, one line; got ${r.status} ${type} ${JSON.stringify(body)}`);
  }
  return body.trim();
}

// ---- browser ----------------------------------------------------------------

const profile = mkdtempSync(path.join(tmpdir(), 'openova-flow-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1400, height: 900 },
  colorScheme: 'light',
});
const pageErrors = [];

let uidCount = 0;
const uid = (tag) => `bt-${tag}-${Date.now().toString(36)}-${++uidCount}`;

async function openPage(id, base = PAGE) {
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.message}`));
  await page.goto(id === undefined ? base : `${base}?id=${encodeURIComponent(id)}`);
  return page;
}

const connState = (page) => page.locator('[data-testid="conn"]').getAttribute('data-state');

async function waitConn(page, states, timeout = RECONNECT_MS) {
  const want = [].concat(states);
  try {
    await page.waitForFunction((w) => w.includes(document.querySelector('[data-testid="conn"]').dataset.state), want, {
      timeout,
      polling: 20,
    });
  } catch {
    throw new Error(`connection state is ${await connState(page)}, not ${want.join(' or ')} after ${timeout} ms`);
  }
}

// rendered: what the page shows, as data (no clocks): the comparison of two
// pages and the error messages use it.
function rendered(page) {
  return page.evaluate(() => {
    const q = (s, r = document) => r.querySelector(s);
    const notice = q('[data-testid="notice"]');
    return {
      flowId: q('[data-testid="flow-id"]').textContent,
      flowStatus: q('[data-testid="flow-status"]').textContent,
      notice: notice.hidden ? null : { kind: notice.dataset.kind, status: notice.dataset.status, title: q('[data-testid="notice-title"]', notice)?.textContent },
      seq: q('[data-testid="last-seq"]').textContent,
      regions: [...document.querySelectorAll('[data-testid="region"]')].map((r) => r.dataset.region),
      nodes: [...document.querySelectorAll('[data-testid="node"]')].map((n) => [
        n.closest('[data-testid="region"]').dataset.region,
        n.dataset.key,
        n.dataset.status,
        n.style.getPropertyValue('--depth'),
        q('[data-testid="node-label"]', n).textContent,
        q('[data-testid="node-status"]', n).textContent,
        q('.node-after', n)?.textContent ?? '',
      ]),
      rels: [...document.querySelectorAll('[data-testid="rel"]')].map((r) => [r.dataset.key, r.textContent]),
    };
  });
}

const short = (v) => {
  const s = JSON.stringify(v);
  return s.length > 1500 ? `${s.slice(0, 1500)}…` : s;
};

// within: waits until pred(arg) holds in the page, at most ms.
async function within(page, what, pred, arg, ms = LIVE_MS) {
  const t0 = Date.now();
  try {
    await page.waitForFunction(pred, arg, { timeout: ms, polling: 10 });
  } catch {
    throw new Error(`${what}: not shown within ${ms} ms; the page shows ${short(await rendered(page))}`);
  }
  return Date.now() - t0;
}

// Page-side predicates (serialised into the page).
const seqIs = (s) => document.querySelector('[data-testid="last-seq"]').textContent === String(s);
const relsAre = (keys) =>
  JSON.stringify([...document.querySelectorAll('[data-testid="rel"]')].map((e) => e.dataset.key).sort()) === JSON.stringify([...keys].sort());

const nk = (flow, id) => JSON.stringify([flow, id]);
const rk = (from, to, type) => JSON.stringify([from, to, type]);
const node = (flow, id, status, region, extra = {}) => ({ id, flowId: flow, label: id.split('.').pop(), status, region, ...extra });

// posted: POSTs a message, then waits until the page shows pred and the new
// sequence number, within LIVE_MS of the proxy's answer.
async function posted(page, id, message, what, pred, arg) {
  const seq = await post(id, message);
  await within(page, `${what} (seq ${seq})`, ([p, a, s]) => new Function(`return (${p})`)()(a) &&
    document.querySelector('[data-testid="last-seq"]').textContent === String(s), [pred.toString(), arg, seq]);
  return seq;
}

// sameAsFreshLoad: a second tab opened now must draw exactly what page does.
async function sameAsFreshLoad(page, id) {
  const fresh = await openPage(id);
  try {
    await waitConn(fresh, 'connected');
    const seq = await page.locator('[data-testid="last-seq"]').textContent();
    await within(fresh, `fresh tab at seq ${seq}`, seqIs, seq, 5000);
    const [a, b] = [await rendered(page), await rendered(fresh)];
    if (!isDeepStrictEqual(a, b)) throw new Error(`differs from a fresh load:\n  page:  ${short(a)}\n  fresh: ${short(b)}`);
    return a;
  } finally {
    await fresh.close();
  }
}

// ---- cases ------------------------------------------------------------------

const results = [];
async function check(name, fn) {
  const t0 = Date.now();
  const errorsBefore = pageErrors.length;
  try {
    await fn();
    if (pageErrors.length > errorsBefore) throw new Error(`script errors in the page: ${pageErrors.slice(errorsBefore).join('; ')}`);
    results.push(true);
    console.log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
  } catch (e) {
    results.push(false);
    console.log(`FAIL ${name}: ${e.message}`);
    for (const p of context.pages()) {
      try {
        await p.screenshot({ path: path.join(ARTIFACTS, `failed-${results.length}-${context.pages().indexOf(p)}.png`) });
      } catch {
        /* a page that died: nothing to show */
      }
    }
  } finally {
    for (const p of context.pages()) await p.close().catch(() => {});
  }
}

mkdirSync(ARTIFACTS, { recursive: true });

await check('a flow never ingested shows "no such flow yet" with the flow server\'s words and still follows the stream', async () => {
  const id = uid('never');
  // The snapshot's 404 is the flow server's text/plain sentence, passed through.
  const said = (await errorAnswer(`${API}/${encodeURIComponent(id)}/snapshot`, 404)).replace(/\s+/g, ' ');
  const page = await openPage(id);
  await waitConn(page, 'connected', 5000);
  await within(page, 'the "no such flow yet" notice with the flow server\'s sentence', (s) => {
    const n = document.querySelector('[data-testid="notice"]');
    return !n.hidden && n.dataset.kind === 'not-found' && n.textContent.includes('No such flow yet') &&
      n.querySelector('.notice-server')?.textContent === s;
  }, said, 2000);
  await within(page, 'seq 0 of the empty snapshot frame', seqIs, 0);
  await posted(page, id, { type: 'upsert-flow', flow: { id, status: 'running', startedAt: Date.now() } }, 'the first event',
    () => document.querySelector('[data-testid="flow-status"]').textContent === 'running' &&
      document.querySelector('[data-testid="notice"]').hidden);
});

await check('every message type shows within 1 s (nodes by region, status, relationships, seq)', async () => {
  const id = uid('live');
  const page = await openPage(id);
  await waitConn(page, 'connected', 5000);
  const started = Date.now() - 5000;
  await posted(page, id, { type: 'upsert-flow', flow: { id, status: 'running', startedAt: started, definitionId: 'bootstrap' } },
    'upsert-flow', () => document.querySelector('[data-testid="flow-status"]').textContent === 'running');

  await posted(page, id, {
    type: 'upsert-nodes',
    nodes: [
      node(id, 'fsn1', 'installing', 'fsn1', { label: 'fsn1 bootstrap', family: 'region' }),
      node(id, 'fsn1.cilium', 'installing', 'fsn1', { family: 'helm-release', startedAt: Date.now() }),
      node(id, 'fsn1.coredns', 'pending', 'fsn1'),
      node(id, 'hel1-1.cilium', 'pending', 'hel1-1'),
    ],
  }, 'upsert-nodes', ([a, b, c]) => {
    const f = (k) => [...document.querySelectorAll('[data-testid="node"]')].find((e) => e.dataset.key === k);
    const ok = (k, region, status) => f(k) && f(k).closest('[data-testid="region"]').dataset.region === region &&
      f(k).querySelector('[data-testid="node-status"]').textContent === status;
    const regions = [...document.querySelectorAll('[data-testid="region"]')].map((r) => r.dataset.region).join();
    return regions === 'fsn1,hel1-1' && ok(a, 'fsn1', 'installing') && ok(b, 'fsn1', 'pending') && ok(c, 'hel1-1', 'pending');
  }, [nk(id, 'fsn1.cilium'), nk(id, 'fsn1.coredns'), nk(id, 'hel1-1.cilium')]);

  await posted(page, id, {
    type: 'upsert-rels',
    relationships: [
      { fromId: 'fsn1', toId: 'fsn1.cilium', type: 'contains' },
      { fromId: 'fsn1', toId: 'fsn1.coredns', type: 'contains' },
      { fromId: 'fsn1.cilium', toId: 'fsn1.coredns', type: 'finish-to-start', condition: 'on-success' },
    ],
  }, 'upsert-rels', ([fts, coredns]) => {
    const rel = [...document.querySelectorAll('[data-testid="rel"]')].find((e) => e.dataset.key === fts);
    const n = [...document.querySelectorAll('[data-testid="node"]')].find((e) => e.dataset.key === coredns);
    return !!rel && /cilium.*finish → start.*coredns/.test(rel.textContent) &&
      document.querySelectorAll('[data-testid="rel"]').length === 3 &&
      n.querySelector('.node-after')?.textContent === 'after cilium' && n.style.getPropertyValue('--depth') === '1';
  }, [rk('fsn1.cilium', 'fsn1.coredns', 'finish-to-start'), nk(id, 'fsn1.coredns')]);

  await posted(page, id, { type: 'upsert-nodes', nodes: [node(id, 'fsn1.cilium', 'ready', 'fsn1', { family: 'helm-release' })] },
    'a status change', ([k]) => {
      const n = [...document.querySelectorAll('[data-testid="node"]')].find((e) => e.dataset.key === k);
      return n && n.dataset.cat === 'ok' && n.querySelector('[data-testid="node-status"]').textContent === 'ready';
    }, [nk(id, 'fsn1.cilium')]);

  await posted(page, id, { type: 'delete-rels', pairs: [{ fromId: 'fsn1.cilium', toId: 'fsn1.coredns', type: 'finish-to-start' }] },
    'delete-rels', relsAre, [rk('fsn1', 'fsn1.cilium', 'contains'), rk('fsn1', 'fsn1.coredns', 'contains')]);

  await posted(page, id, { type: 'delete-nodes', ids: ['hel1-1.cilium'] }, 'delete-nodes', (keys) =>
    [...document.querySelectorAll('[data-testid="region"]')].map((r) => r.dataset.region).join() === 'fsn1' &&
    JSON.stringify([...document.querySelectorAll('[data-testid="node"]')].map((e) => e.dataset.key).sort()) === JSON.stringify(keys),
  [nk(id, 'fsn1'), nk(id, 'fsn1.cilium'), nk(id, 'fsn1.coredns')].sort());

  await posted(page, id, {
    type: 'snapshot',
    flow: { id, status: 'running', startedAt: started },
    nodes: [node(id, 'fsn1.a', 'ready', 'fsn1'), node(id, 'hel1-1.b', 'failed', 'hel1-1', { meta: { error: 'boom' } })],
    relationships: [{ fromId: 'fsn1.a', toId: 'hel1-1.b', type: 'finish-to-start' }],
  }, 'a snapshot message replaces everything', (keys) => {
    const ns = [...document.querySelectorAll('[data-testid="node"]')].map((e) => e.dataset.key);
    const rs = [...document.querySelectorAll('[data-testid="rel"]')].map((e) => e.dataset.key);
    const b = document.querySelector('[data-testid="node"][data-status="failed"]');
    return JSON.stringify(ns.sort()) === JSON.stringify(keys[0]) && JSON.stringify(rs) === JSON.stringify(keys[1]) &&
      b?.textContent.includes('boom') && b?.textContent.includes('after a (fsn1)');
  }, [[nk(id, 'fsn1.a'), nk(id, 'hel1-1.b')].sort(), [rk('fsn1.a', 'hel1-1.b', 'finish-to-start')]]);

  await posted(page, id, { type: 'upsert-flow', flow: { id, status: 'succeeded', startedAt: started, endedAt: Date.now() } },
    'upsert-flow with endedAt', () => document.querySelector('[data-testid="flow-status"]').textContent === 'succeeded' &&
      !document.querySelector('[data-testid="flow-ended-wrap"]').hidden);
  await sameAsFreshLoad(page, id);
});

await check('tools/demo-events plays a two-region deployment through the proxy', async () => {
  const id = uid('demo');
  const page = await openPage(id);
  await waitConn(page, 'connected', 5000);
  const out = [];
  // Ten seconds rather than --fast: long enough to catch hel1-1's longhorn
  // in trouble for the screenshot.
  const done = new Promise((resolve, reject) => {
    const p = spawn(DEMO_EVENTS, ['--duration', '10', '--flow', id, '--base', API], { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout.on('data', (d) => out.push(d));
    p.stderr.on('data', (d) => out.push(d));
    p.on('error', reject);
    p.on('exit', resolve);
  });
  await within(page, 'hel1-1 longhorn failing, then retrying', () => {
    const n = [...document.querySelectorAll('[data-testid="node"]')].find((e) => e.dataset.id === 'hel1-1.longhorn');
    return n && (n.dataset.status === 'failed' || n.dataset.status === 'retrying');
  }, null, 15000);
  await page.screenshot({ path: path.join(ARTIFACTS, 'flow-page.png') });
  const code = await done;
  if (code !== 0) throw new Error(`demo-events exited ${code}: ${Buffer.concat(out).toString()}`);
  const lastSeq = Number(/seq (\d+)\s+upsert-flow\s+\S+ succeeded/.exec(Buffer.concat(out).toString())?.[1]);
  await within(page, 'the finished demo', (s) => {
    const nodes = [...document.querySelectorAll('[data-testid="node"]')];
    const regions = [...document.querySelectorAll('[data-testid="region"]')].map((r) => r.dataset.region).join();
    const retried = nodes.find((n) => n.dataset.id === 'hel1-1.longhorn');
    return document.querySelector('[data-testid="last-seq"]').textContent === String(s) &&
      document.querySelector('[data-testid="flow-status"]').textContent === 'succeeded' &&
      regions === 'fsn1,hel1-1' && nodes.length > 2 * 25 && nodes.every((n) => n.dataset.status === 'ready') &&
      retried?.textContent.includes('attempt 2') &&
      document.querySelectorAll('[data-testid="rel"][data-type="contains"]').length > 0 &&
      document.querySelectorAll('[data-testid="rel"][data-type="finish-to-start"]').length > 0;
  }, lastSeq, 2000);
  await page.screenshot({ path: path.join(ARTIFACTS, 'flow-page-done.png'), fullPage: true });
  await sameAsFreshLoad(page, id);
});

// The flow's messages for the reconnect cases.
const story = (id) => [
  { type: 'upsert-flow', flow: { id, status: 'running', startedAt: Date.now() - 60000 } },
  { type: 'upsert-nodes', nodes: [node(id, 'fsn1.cilium', 'ready', 'fsn1'), node(id, 'fsn1.coredns', 'installing', 'fsn1'), node(id, 'hel1-1.cilium', 'pending', 'hel1-1')] },
  { type: 'upsert-rels', relationships: [{ fromId: 'fsn1.cilium', toId: 'fsn1.coredns', type: 'finish-to-start' }, { fromId: 'fsn1.cilium', toId: 'hel1-1.cilium', type: 'start-to-start' }] },
  { type: 'upsert-nodes', nodes: [node(id, 'hel1-1.cilium', 'installing', 'hel1-1')] },
];

const resyncOf = (page) => page.locator('[data-testid="conn"]').getAttribute('data-resync');

// proxyRestart: the story, then the proxy (lighttpd) stops; while it is away
// the flow goes on (posted to the flow server itself); then it is back and
// the page must show what happened meanwhile. delete-nodes removes the node
// only: its start-to-start relationship stays (the reference server's fold)
// and is drawn with an unknown end. Returns how the reconnection began
// (data-resync).
async function proxyRestart(page, id, meanwhile = []) {
  let seq = 0;
  for (const m of story(id)) seq = await post(id, m);
  await within(page, 'the story', seqIs, seq);
  const before = await resyncOf(page);
  if (before !== 'snapshot') throw new Error(`the first connection began with "${before}", not a snapshot frame`);
  await control('stop-lighttpd');
  let down = true;
  try {
    await waitConn(page, 'reconnecting', 5000);
    const gone = await resyncOf(page);
    if (gone !== '') throw new Error(`data-resync is "${gone}" while reconnecting: it must wait for the next connection's first frame`);
    await post(id, { type: 'upsert-nodes', nodes: [node(id, 'fsn1.coredns', 'ready', 'fsn1'), node(id, 'fsn1.envoy', 'pending', 'fsn1'), ...meanwhile] }, DEVSERVER);
    seq = await post(id, { type: 'delete-nodes', ids: ['hel1-1.cilium'] }, DEVSERVER);
    await control('start-lighttpd');
    down = false;
  } finally {
    if (down) await control('start-lighttpd'); // the next cases need the proxy
  }
  await waitConn(page, 'connected');
  await within(page, 'the events sent while the proxy was down', ([s, n, kept]) => {
    const rel = [...document.querySelectorAll('[data-testid="rel"]')].find((e) => e.dataset.key === kept);
    return document.querySelector('[data-testid="last-seq"]').textContent === String(s) &&
      document.querySelectorAll('[data-testid="node"]').length === n &&
      !document.querySelector('[data-testid="region"][data-region="hel1-1"]') &&
      document.querySelectorAll('[data-testid="rel"]').length === 2 &&
      rel?.querySelectorAll('.ref.unknown').length === 1 && rel.textContent.includes('hel1-1.cilium');
  }, [seq, 3 + meanwhile.length, rk('fsn1.cilium', 'hel1-1.cilium', 'start-to-start')], 5000);
  return resyncOf(page);
}

await check('devserver default (the reference): after a proxy restart the stream begins with a snapshot frame, same as a fresh load', async () => {
  await control('restart-devserver-default');
  const id = uid('snapshot');
  const page = await openPage(id);
  await waitConn(page, 'connected', 5000);
  // A node without flowId, label or status: the reference accepts it.
  const bare = { id: 'fsn1.bare', region: 'fsn1' };
  const how = await proxyRestart(page, id, [bare]);
  if (how !== 'snapshot') throw new Error(`the reconnection began with "${how}", not a snapshot frame (Last-Event-ID is ignored)`);
  await within(page, 'the node without flowId, label or status, keyed and labelled by its id', (k) => {
    const n = [...document.querySelectorAll('[data-testid="node"]')].find((e) => e.dataset.key === k);
    return n?.querySelector('[data-testid="node-label"]').textContent === 'fsn1.bare' &&
      n.querySelector('[data-testid="node-status"]').textContent === '–' && !n.outerHTML.includes('undefined');
  }, nk('', 'fsn1.bare'));
  await sameAsFreshLoad(page, id);
});

await check('devserver --replay: after a proxy restart the page resumes with Last-Event-ID and matches a fresh load', async () => {
  await control('restart-devserver-replay');
  try {
    const id = uid('resume');
    const page = await openPage(id);
    await waitConn(page, 'connected', 5000);
    const how = await proxyRestart(page, id);
    if (how !== 'resume') throw new Error(`the reconnection began with "${how}", not a replay after Last-Event-ID`);
    await sameAsFreshLoad(page, id);
  } finally {
    await control('restart-devserver-default'); // the other cases expect the reference's behaviour
  }
});

await check('a devserver restart mid-stream: reconnecting, then live again, same as a fresh load', async () => {
  const id = uid('restart');
  const page = await openPage(id);
  await waitConn(page, 'connected', 5000);
  let seq = 0;
  for (const m of story(id)) seq = await post(id, m);
  await within(page, 'the story', seqIs, seq);
  const before = await rendered(page);
  await control('kill-devserver');
  await waitConn(page, 'reconnecting', 5000);
  await within(page, 'the stale view while reconnecting', () => document.body.classList.contains('stale'), null);
  await control('start-devserver');
  // The devserver lost its memory: the page must say so, not keep old state.
  await waitConn(page, 'connected');
  await within(page, 'the restarted (empty) flow', () =>
    document.querySelector('[data-testid="last-seq"]').textContent === '0' &&
    document.querySelector('[data-testid="notice"]').dataset.kind === 'not-found' &&
    document.querySelectorAll('[data-testid="node"]').length === 0, null, 5000);
  for (const m of story(id)) seq = await post(id, m);
  await within(page, 'the story posted again', seqIs, seq);
  const after = await sameAsFreshLoad(page, id);
  if (!isDeepStrictEqual(before, after)) throw new Error(`differs from before the restart:\n  before: ${short(before)}\n  after:  ${short(after)}`);
});

await check('clear messages: 502 while the flow server is down, 401 without a user, 400 for a bad id, the flow server\'s 400', async () => {
  const id = uid('down');
  const following = await openPage(id);
  await waitConn(following, 'connected', 5000);
  await control('stop-devserver');
  try {
    const fresh = await openPage(uid('down-fresh'));
    const is502 = () => {
      const n = document.querySelector('[data-testid="notice"]');
      const c = document.querySelector('[data-testid="conn"]');
      return !n.hidden && n.dataset.status === '502' && n.textContent.includes('Flow server unreachable (502)') &&
        n.textContent.includes('request id') && c.dataset.state === 'error' && c.dataset.status === '502' &&
        c.textContent.includes('502');
    };
    await within(fresh, 'the 502 message on a fresh load', is502, null, 5000);
    await within(following, 'the 502 message on a page that was following', is502, null, RECONNECT_MS);
    await fresh.screenshot({ path: path.join(ARTIFACTS, 'flow-page-502.png') });
    await fresh.close();
  } finally {
    await control('start-devserver');
  }
  await waitConn(following, 'connected', 20000);
  await within(following, 'the notice gone once the flow server is back', () => {
    const n = document.querySelector('[data-testid="notice"]');
    return n.hidden || n.dataset.kind === 'not-found';
  }, null);

  const denied = await openPage('dep-any', PAGE_NOUSER);
  await within(denied, 'the 401 message', () => {
    const n = document.querySelector('[data-testid="notice"]');
    const c = document.querySelector('[data-testid="conn"]');
    return !n.hidden && n.dataset.status === '401' && n.textContent.includes('Not signed in (401)') &&
      c.dataset.state === 'error' && c.dataset.status === '401';
  }, null, 5000);

  const bad = await openPage('no spaces/allowed');
  await within(bad, 'the 400 message', () => {
    const n = document.querySelector('[data-testid="notice"]');
    return !n.hidden && n.dataset.status === '400' && n.textContent.includes('Invalid deployment id');
  }, null, 2000);

  // A message the flow server refuses (an empty nodes list): its 400 and its
  // sentence reach the emitter through the proxy as they were.
  const refused = await errorAnswer(`${API}/${encodeURIComponent(uid('refused'))}/events`, 400, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ type: 'upsert-nodes', nodes: [] }),
  });
  if (!refused) throw new Error('the refusal of an empty nodes list says nothing');
});

await context.close();
rmSync(profile, { recursive: true, force: true });
stdin.close();
const passed = results.filter(Boolean).length;
console.log(`browser: ${passed} passed, ${results.length - passed} failed`);
process.exit(passed === results.length ? 0 : 1);
