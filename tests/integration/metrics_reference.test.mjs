// docs/metrics.md against a real rtmd's /metrics: the scrape is parsed as
// Prometheus text (parse-prometheus-text-format, plus the line grammar checked
// here), the documented table must match the scrape exactly (names, types,
// labels), the on-call gauges and histograms move with real sessions, and
// docs/grafana-rtm.json only queries documented metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import parsePrometheus from 'parse-prometheus-text-format';
import { startRtmd, ROOT, sleep } from '../lib/rtmd.mjs';

// { name -> { type, labels: { key -> Set(values) } } } from the doc's table.
function documented() {
  const md = readFileSync(join(ROOT, 'docs', 'metrics.md'), 'utf8');
  const out = new Map();
  for (const line of md.split('\n')) {
    const m = /^\| `(rtm_[a-z0-9_]+)` \| (counter|gauge|histogram) \|\s*([^|]*?)\s*\|/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const part of m[3].split(';').map((x) => x.trim()).filter(Boolean)) {
      const lm = /^`([a-z_]+)`(?::\s*(.*))?$/.exec(part);
      assert.ok(lm, `label cell "${part}" of ${m[1]}`);
      if (lm[1] === 'le') continue; // a histogram's buckets
      labels[lm[1]] = new Set(lm[2].split(',').map((v) => v.trim()));
    }
    assert.ok(!out.has(m[1]), `${m[1]} listed once`);
    out.set(m[1], { type: m[2], labels });
  }
  return out;
}

// Line grammar of text format 0.0.4 for what rtmd emits, and the HELP/TYPE
// order: both comments come before a family's samples, once per family.
function checkTextFormat(text) {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const typed = new Map();
  let current = null;
  for (const line of text.slice(0, -1).split('\n')) {
    let m;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line))) {
      assert.ok(!typed.has(m[1]), `one HELP for ${m[1]}`);
      assert.ok(m[2].length > 0, `${m[1]} has help text`);
      current = m[1];
      continue;
    }
    if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line))) {
      assert.equal(m[1], current, `TYPE ${m[1]} follows its HELP`);
      typed.set(m[1], m[2]);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? (\S+)$/.exec(line);
    assert.ok(m, `a valid sample line: "${line}"`);
    assert.ok(!Number.isNaN(Number(m[3])) || /^[+-]Inf$/.test(m[3]), `a number: ${line}`);
    const family = typed.get(current) === 'histogram' ? m[1].replace(/_(bucket|sum|count)$/, '') : m[1];
    assert.equal(family, current, `${m[1]} belongs to the family announced last (${current})`);
  }
  return typed;
}

let d;
before(async () => { d = await startRtmd({ config: { 'session-flush-ms': 60000 } }); });
after(async () => { await d?.cleanup(); });

async function scrape() {
  const r = await d.api('GET', '/metrics', undefined, { auth: null });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const typed = checkTextFormat(r.text);
  const families = parsePrometheus(r.text);
  assert.equal(families.length, typed.size, 'the parser sees every family');
  const byName = new Map(families.map((f) => [f.name, f]));
  const value = (name, labels = {}) => {
    const f = byName.get(name);
    assert.ok(f, `${name} scraped`);
    const s = f.metrics.find((x) => Object.entries(labels).every(([k, v]) => (x.labels || {})[k] === v));
    assert.ok(s, `${name} ${JSON.stringify(labels)} scraped`);
    return f.type === 'HISTOGRAM' ? { count: Number(s.count), sum: Number(s.sum), buckets: s.buckets } : Number(s.value);
  };
  return { byName, value, text: r.text };
}

test('the documented metrics are exactly the scraped ones, with their types and labels', async () => {
  const doc = documented();
  assert.ok(doc.size >= 20, `documented metrics parsed (${doc.size})`);
  const { byName } = await scrape();
  assert.deepEqual([...byName.keys()].sort(), [...doc.keys()].sort(), 'scraped and documented names');
  for (const [name, f] of byName) {
    const want = doc.get(name);
    assert.equal(f.type.toLowerCase(), want.type, `${name} type`);
    const seen = {};
    for (const s of f.metrics)
      for (const [k, v] of Object.entries(s.labels || {})) (seen[k] ||= new Set()).add(v);
    assert.deepEqual(Object.keys(seen).sort(), Object.keys(want.labels).sort(), `${name} label names`);
    for (const k of Object.keys(seen)) assert.deepEqual([...seen[k]].sort(), [...want.labels[k]].sort(), `${name} ${k} values`);
    if (f.type === 'HISTOGRAM') {
      for (const s of f.metrics) {
        const les = Object.keys(s.buckets);
        assert.equal(les.at(-1), '+Inf', `${name} ends with +Inf`);
        let prev = -1;
        for (const le of les) {
          assert.ok(Number(s.buckets[le]) >= prev, `${name} buckets are cumulative`);
          prev = Number(s.buckets[le]);
        }
        assert.equal(Number(s.buckets['+Inf']), Number(s.count), `${name} +Inf equals _count`);
      }
    }
  }
});

test('the on-call gauges and the signaling histograms follow real sessions', async () => {
  const a = await scrape();
  const w0 = a.value('rtm_ws_welcome_seconds').count;
  const ds0 = a.value('rtm_direct_send_seconds').count;
  const { token: ta } = await d.mint({ peerId: 'met-a' });
  const { token: tb } = await d.mint({ peerId: 'met-b' });
  const { token: tc } = await d.mint({ peerId: 'met-c' });
  const ca = await d.connect(ta);
  const cb = await d.connect(tb);
  const cc = await d.connect(tc, '&ext=1'); // extension session: leaves a held place when dropped
  for (const [c, ch] of [[ca, 'room-1'], [ca, 'room-2'], [cb, 'room-1'], [cc, 'room-1']])
    assert.equal((await c.request({ type: 'subscribe', channel: ch })).type, 'ack');
  for (let i = 0; i < 3; i++) {
    assert.equal((await ca.request({ type: 'send', to: 'met-b', data: { i } })).type, 'ack');
    await cb.next('direct');
  }
  const b = await scrape();
  assert.equal(b.value('rtm_ws_sessions'), 3);
  assert.equal(b.value('rtm_channels'), 2);
  assert.equal(b.value('rtm_subscriptions'), 4);
  assert.equal(b.value('rtm_held_places'), 0);
  assert.ok(b.value('rtm_queue_bytes') >= 0);
  // session rows wait for the (here one-minute) batch: the lag is their age
  const lag = b.value('rtm_store_write_lag_seconds');
  assert.ok(lag > 0 && lag < 60, `store write lag ${lag}`);
  const w = b.value('rtm_ws_welcome_seconds');
  assert.equal(w.count - w0, 3, 'one welcome observed per connect');
  assert.ok(w.sum > 0 && w.sum < 30);
  const ds = b.value('rtm_direct_send_seconds');
  assert.equal(ds.count - ds0, 3, 'one observation per direct delivered');
  assert.ok(ds.sum > 0 && ds.sum / ds.count < 5);

  cc.terminate(); // dropped without a close: its place is held for the resume window
  let c;
  for (let i = 0; i < 500; i++) { // bounded: 10 s (valgrind is slow to see the drop)
    c = await scrape();
    if (c.value('rtm_ws_sessions') === 2) break;
    await sleep(20);
  }
  assert.equal(c.value('rtm_ws_sessions'), 2);
  assert.equal(c.value('rtm_held_places'), 1);
  await ca.close();
  await cb.close();
});

test('docs/grafana-rtm.json is a dashboard whose queries use only documented metrics', () => {
  const doc = documented();
  const dash = JSON.parse(readFileSync(join(ROOT, 'docs', 'grafana-rtm.json'), 'utf8'));
  assert.ok(dash.title && Array.isArray(dash.panels) && dash.panels.length >= 6, 'a dashboard with panels');
  const used = new Set();
  for (const p of dash.panels) {
    for (const t of p.targets || []) {
      assert.ok(t.expr, `panel "${p.title}" has a query`);
      for (const m of t.expr.matchAll(/\b(rtm_[a-z0-9_]+)/g)) {
        const base = m[1].replace(/_(bucket|sum|count)$/, '');
        assert.ok(doc.has(m[1]) || (doc.has(base) && doc.get(base).type === 'histogram'), `${m[1]} in "${p.title}" is documented`);
        used.add(doc.has(m[1]) ? m[1] : base);
      }
    }
  }
  for (const g of ['rtm_ws_sessions', 'rtm_held_places', 'rtm_channels', 'rtm_subscriptions', 'rtm_queue_bytes',
    'rtm_store_write_lag_seconds', 'rtm_ws_welcome_seconds', 'rtm_direct_send_seconds'])
    assert.ok(used.has(g), `the dashboard shows ${g}`);
});
