// revoke_held.test.mjs: issue 11 defect 7, against a real rtmd. A revoked
// or kicked peer whose connection has just dropped (its place held for the
// resume window, 10 s here) leaves presence at once: a revocation (by jti
// or by peerId) ends held places too, and a kick or revocation racing the
// drop never leaves a place behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRtmd } from '../lib/rtmd.mjs';
import { until, claimsOf } from './broker_util.mjs';

const SLOW = process.env.RTM_VALGRIND ? 4 : 1;
const WINDOW = 10000;
let d;
before(async () => { d = await startRtmd({ config: { 'resume-window-ms': WINDOW } }); });
after(async () => {
  await d.cleanup();
  assert.doesNotMatch(d.log, /ERROR: (Address|Leak)Sanitizer|runtime error:/);
});

async function member(peerId, channel, ext = '&ext=1') {
  const { token } = await d.mint({ peerId, channels: ['**'] });
  const c = await d.connect(token, ext);
  c.token = token;
  assert.equal((await c.request({ type: 'subscribe', channel })).type, 'ack');
  await c.next((f) => f.type === 'presence' && f.channel === channel);
  return c;
}

// Drops the socket (no close frame) and waits until the broker holds the place.
async function drop(c) {
  await c.terminate();
  const peer = c.welcome.peerId;
  const held = await until(async () => {
    const r = await d.api('GET', '/v1/peers');
    const p = r.json.peers.find((x) => x.peerId === peer);
    return p && p.connections === 0;
  }, { timeoutMs: 5000 * SLOW });
  assert.ok(held, `${peer}'s place is held (listed with 0 connections)`);
}

// Resolves with the ms until watcher sees peer leave channel.
async function leaveSeen(watcher, peer, channel) {
  const t0 = Date.now();
  await watcher.next((f) => f.type === 'presence' && f.channel === channel && (f.left || []).some((m) => m.peerId === peer),
    (WINDOW - 2000) * SLOW);
  return Date.now() - t0;
}

async function gone(peer) {
  const r = await d.api('GET', '/v1/peers');
  return !r.json.peers.some((x) => x.peerId === peer);
}

test('a revocation by peerId ends a held place at once', async () => {
  const w = await member('watch-1', 'r1', '');
  const a = await member('held-1', 'r1');
  await drop(a);
  const r = await d.api('POST', '/v1/revocations', { peerId: 'held-1' });
  assert.equal(r.status, 201, r.text);
  const ms = await leaveSeen(w, 'held-1', 'r1');
  assert.ok(ms < 2000 * SLOW, `left after ${ms} ms (the window is ${WINDOW})`);
  assert.ok(await gone('held-1'));
  // and the place cannot be resumed
  const { token } = await d.mint({ peerId: 'held-1b', channels: ['**'] });
  const again = await d.connect(token, `&ext=1&resume=${encodeURIComponent(a.welcome.sessionId)}`);
  assert.equal(again.welcome.resumed, false);
  await again.close();
  await w.close();
});

test('a revocation by jti ends a held place at once', async () => {
  const w = await member('watch-2', 'r2', '');
  const a = await member('held-2', 'r2');
  await drop(a);
  const { jti } = claimsOf(a.token);
  const r = await d.api('POST', '/v1/revocations', { jti, expiresAt: Math.floor(Date.now() / 1000) + 600 });
  assert.equal(r.status, 201, r.text);
  const ms = await leaveSeen(w, 'held-2', 'r2');
  assert.ok(ms < 2000 * SLOW, `left after ${ms} ms`);
  await w.close();
});

test('a kick or revocation racing the drop leaves no held place behind', async () => {
  const w = await member('watch-3', 'r3', '');
  for (let i = 0; i < 6; i++) {
    const peer = `race-${i}`;
    const a = await member(peer, 'r3');
    await w.next((f) => f.type === 'presence' && (f.joined || []).some((m) => m.peerId === peer));
    const act = i % 2 ? d.api('DELETE', `/v1/peers/${peer}`) : d.api('POST', '/v1/revocations', { peerId: peer });
    a.ws._socket.destroy(); // the connection drops as the decision is made
    const r = await act;
    assert.ok(r.status < 300, r.text);
    const ms = await leaveSeen(w, peer, 'r3');
    assert.ok(ms < 2000 * SLOW, `${peer} left after ${ms} ms`);
    assert.ok(await until(() => gone(peer), { timeoutMs: 2000 * SLOW }), `${peer} still listed`);
  }
  await w.close();
});
