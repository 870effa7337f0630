// ext_narrow_reset.test.mjs: two extension corners (docs/EXTENSIONS.md)
// against a real rtmd, on the wire and through the browser SDK (web/sdk/rtm.js,
// run in node with the ws library as its WebSocket):
// - a refresh with a narrower token says which subscriptions ended
//   ({"type":"unsubscribed","channels":[...]}, before the refresh's ack), and
//   the SDK drops them from channels();
// - a resume whose held queue lost presence says so (presenceReset: true in the
//   resumed welcome) and the SDK takes the next presence frame of each channel
//   as the whole member list, so a peer who left in the gap is not listed.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startRtmd } from '../lib/rtmd.mjs';
import { frameChecker } from '../lib/schema.mjs';
import { until } from './broker_util.mjs';
import { RtmClient } from '../../web/sdk/rtm.js';

const SLOW = process.env.RTM_VALGRIND ? 4 : 1;
const frames = frameChecker();
const daemons = [];
async function daemon(config = {}) {
  const d = frames.track(await startRtmd({ config: { 'rate-connects-per-ip-per-minute': 0, ...config } }));
  daemons.push(d);
  return d;
}
after(async () => {
  try { frames.assertValid(); } finally { for (const x of daemons) await x.cleanup(); }
});
const ids = (l) => l.map((m) => m.peerId).sort();

async function member(d, peerId, channels, extra = '&ext=1') {
  const c = await d.connect((await d.mint({ peerId, channels: ['**'] })).token, extra);
  for (const ch of channels) {
    assert.equal((await c.request({ type: 'subscribe', channel: ch })).type, 'ack');
    await c.next((f) => f.type === 'presence' && f.channel === ch);
  }
  return c;
}

// Waits until the broker has noticed peer's drop (its session rows are closed with 1006).
async function noticed(d, peer) {
  return until(async () => {
    const r = await d.api('GET', `/v1/sessions?peerId=${encodeURIComponent(peer)}`);
    return r.json.sessions.some((s) => s.closeCode === 1006) && r.json.sessions.every((s) => s.closeCode !== null);
  }, { timeoutMs: 5000 * SLOW });
}

// Every SDK client is closed after its test, passed or not (a client left
// open keeps reconnecting and node would never finish the file).
const clients = [];
after(() => { for (const c of clients) c.close(); });
function sdk(d, token, opts = {}) {
  const c = new RtmClient({ url: d.wsUrl, token, WebSocket, probe: false, backoffInitialMs: 50, ...opts });
  c.on('error', () => {});
  clients.push(c);
  return c;
}
// An event as a promise that gives up after ms.
const once = (c, ev, ms = 5000 * SLOW) => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error(`no ${ev} within ${ms} ms`)), ms);
  c.on(ev, (x) => { clearTimeout(t); resolve(x); });
});

test('wire: a narrowing refresh sends unsubscribed with the ended channels before its ack; a refresh that keeps them sends none', async () => {
  const d = await daemon();
  const c = await d.connect((await d.mint({ peerId: 'nar', channels: ['zone-*', 'lobby'] })).token, '&ext=1');
  for (const ch of ['zone-a', 'zone-b', 'lobby']) assert.equal((await c.request({ type: 'subscribe', channel: ch })).type, 'ack');
  const same = (await d.mint({ peerId: 'nar', channels: ['zone-*', 'lobby'] })).token;
  assert.equal((await c.request({ type: 'refresh', token: same })).type, 'ack');
  assert.ok(!c.all.some((f) => f.type === 'unsubscribed'));
  const mark = c.all.length;
  const narrow = (await d.mint({ peerId: 'nar', channels: ['zone-a'] })).token;
  c.send({ type: 'refresh', token: narrow, requestId: 'n1' });
  const ack = await c.next((f) => f.type === 'ack' && f.requestId === 'n1');
  assert.ok(ack.expiresAt);
  const after = c.all.slice(mark).filter((f) => f.type !== 'presence');
  assert.deepEqual(after.map((f) => f.type), ['unsubscribed', 'ack'], 'the frame comes before the ack');
  assert.deepEqual(after[0].channels.sort(), ['lobby', 'zone-b']);
  // a core client never gets one: it does not speak the extensions (no refresh at all)
  await c.close();
});

test('wire: presenceReset only in a resumed welcome whose held queue lost presence', async () => {
  const d = await daemon({ 'resume-queue-messages': 3 });
  // a resume with nothing lost: no presenceReset
  const x = await member(d, 'xen', ['quiet']);
  await x.terminate();
  assert.ok(await noticed(d, 'xen'));
  const x2 = await d.connect((await d.mint({ peerId: 'xen', channels: ['**'] })).token, `&ext=1&resume=${x.welcome.sessionId}`);
  assert.equal(x2.welcome.resumed, true);
  assert.equal('presenceReset' in x2.welcome, false);
  await x2.close();
  // overflow: [joined wes, 1, 2] -> 3, 4, 5 push the presence frame out
  const a = await member(d, 'tess', ['room']);
  const b = await member(d, 'uma', ['room']);
  await a.terminate();
  assert.ok(await noticed(d, 'tess'));
  const w = await member(d, 'wes', ['room']);
  for (let i = 1; i <= 5; i++) assert.equal((await b.request({ type: 'send', to: 'tess', data: i })).type, 'ack');
  await b.close(1000);
  await w.next((f) => f.type === 'presence' && f.left.length === 1);
  const a2 = await d.connect((await d.mint({ peerId: 'tess', channels: ['**'] })).token, `&ext=1&resume=${a.welcome.sessionId}`);
  assert.deepEqual([a2.welcome.resumed, a2.welcome.presenceReset], [true, true]);
  const snap = await a2.next('presence', 2000 * SLOW);
  assert.deepEqual([snap.channel, ids(snap.joined), snap.left], ['room', ['wes'], []]);
  for (const c of [a2, w]) await c.close();
});

test('browser SDK: a narrowing refresh drops the ended channels from channels() and says so', async () => {
  const d = await daemon({ 'token-expiring-notice-sec': 60 });
  let calls = 0;
  const provider = async () => {
    calls++;
    // the first token expires soon (the notice comes at once); the refreshed one is narrower
    const req = calls === 1 ? { peerId: 'sdk-nar', channels: ['zone-*'], expiresInSec: 30 } : { peerId: 'sdk-nar', channels: ['zone-a'] };
    return (await d.mint(req)).token;
  };
  const c = sdk(d, provider);
  const ended = [];
  c.on('unsubscribed', (e) => ended.push(...e.channels));
  const refreshed = once(c, 'refreshed');
  await c.connect();
  await c.subscribe('zone-a');
  await c.subscribe('zone-b');
  // the refresh may already be under way; zone-b is ended either way
  await refreshed;
  assert.ok(await until(() => ended.length > 0, { timeoutMs: 3000 }));
  assert.deepEqual(ended, ['zone-b']);
  assert.deepEqual(c.channels(), ['zone-a']);
  c.close();
});

test('browser SDK: after a resume with presenceReset a peer who left in the gap is not listed', async () => {
  const d = await daemon({ 'resume-queue-messages': 3 });
  let gate = null;
  let open = () => {};
  const provider = async () => {
    if (gate) await gate; // the reconnect waits until the gap is made
    return (await d.mint({ peerId: 'sdk-tess', channels: ['**'] })).token;
  };
  const c = sdk(d, provider);
  await c.connect();
  const b = await member(d, 'sdk-uma', ['room']);
  const synced = once(c, 'sync');
  await c.subscribe('room');
  await synced;
  assert.deepEqual(ids(c.members('room')), ['sdk-uma']);
  const welcomes = [];
  c.on('connected', (w) => welcomes.push(w));
  gate = new Promise((r) => { open = r; });
  c._ws._socket.destroy(); // the network goes: no close frame
  assert.ok(await noticed(d, 'sdk-tess'));
  const w = await member(d, 'sdk-wes', ['room']);
  for (let i = 1; i <= 5; i++) assert.equal((await b.request({ type: 'send', to: 'sdk-tess', data: i })).type, 'ack');
  await b.close(1000);
  await w.next((f) => f.type === 'presence' && f.left.length === 1);
  open();
  assert.ok(await until(() => welcomes.length === 1, { timeoutMs: 5000 * SLOW }));
  assert.equal(welcomes[0].resumed, true);
  assert.ok(await until(() => ids(c.members('room')).join() === 'sdk-wes', { timeoutMs: 3000 * SLOW }),
    `members after the resume: ${ids(c.members('room'))}`);
  c.close();
  await w.close();
});
