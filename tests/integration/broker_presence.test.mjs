// broker_presence.test.mjs: presence against a real rtmd: snapshots after the
// subscribe ack, deltas per peer (not per connection), a subscriber without
// the presence permission, duplicatePeer replace (4009).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRtmd, rtmJson } from '../lib/rtmd.mjs';
import { frameChecker } from '../lib/schema.mjs';

let d;
const frames = frameChecker();
before(async () => { d = frames.track(await startRtmd({ config: { 'rate-connects-per-ip-per-minute': 0 } })); });
after(async () => {
  try { assert.ok(frames.assertValid() > 0); } finally { await d.cleanup(); }
});

async function peer(peerId, extra = {}, auth) {
  const r = await d.api('POST', '/v1/tokens', { peerId, ...extra }, auth ? { auth } : undefined);
  assert.equal(r.status, 200, r.text);
  return d.connect(r.json.token);
}
const ids = (list) => list.map((m) => m.peerId).sort();
const presence = (c) => c.next('presence');

test('snapshots and deltas across three peers, one with two connections, one without presence', async () => {
  const ch = 'pres-room';
  const A = await peer('A', { peerMetadata: { name: 'Ann' } });
  const B1 = await peer('B', { peerMetadata: { name: 'Bob' } });
  const B2 = await peer('B', { peerMetadata: { name: 'Bob' } });
  const C = await peer('C', { permissions: ['publish', 'subscribe', 'send'], peerMetadata: { name: 'Cy' } });

  // A alone: empty snapshot right after the ack
  const ack = await A.request({ type: 'subscribe', channel: ch });
  assert.equal(ack.type, 'ack');
  const snapA = await presence(A);
  assert.deepEqual(snapA, { type: 'presence', channel: ch, joined: [], left: [] });
  const ackIndex = A.all.findIndex((f) => f.type === 'ack' && f.requestId === ack.requestId);
  assert.equal(A.all[ackIndex + 1].type, 'presence', 'the snapshot follows the ack');

  // B's first connection: B1 gets a snapshot with A (and A's metadata), A a delta with B
  await B1.request({ type: 'subscribe', channel: ch });
  assert.deepEqual(await presence(B1), { type: 'presence', channel: ch, joined: [{ peerId: 'A', metadata: { name: 'Ann' } }], left: [] });
  assert.deepEqual(await presence(A), { type: 'presence', channel: ch, joined: [{ peerId: 'B', metadata: { name: 'Bob' } }], left: [] });

  // B's second connection: a snapshot for B2, nothing for A or B1 (B is already present)
  await B2.request({ type: 'subscribe', channel: ch });
  assert.deepEqual(ids((await presence(B2)).joined), ['A']);
  assert.ok(await A.none('presence', 300), 'a second connection of B is not a join');
  assert.ok(await B1.none('presence', 50));

  // C without presence: appears to the others, receives no presence frames itself
  assert.equal((await C.request({ type: 'subscribe', channel: ch })).type, 'ack');
  for (const x of [A, B1, B2]) {
    const p = await presence(x);
    assert.deepEqual(p.joined, [{ peerId: 'C', metadata: { name: 'Cy' } }]);
    assert.deepEqual(p.left, []);
  }

  // B1 leaves the channel: B is still there through B2, so no left
  await B1.request({ type: 'unsubscribe', channel: ch });
  assert.ok(await A.none('presence', 300), 'B still present through its other connection');
  // B2 disconnects: now B leaves, once, for A (B1 no longer subscribed, C has no presence)
  await B2.close();
  assert.deepEqual(await presence(A), { type: 'presence', channel: ch, joined: [], left: [{ peerId: 'B' }] });
  assert.ok(await B1.none('presence', 200), 'an unsubscribed connection hears nothing');

  // a late subscriber's snapshot lists A and C but not itself
  await B1.request({ type: 'subscribe', channel: ch });
  assert.deepEqual(ids((await presence(B1)).joined), ['A', 'C']);
  assert.deepEqual(ids((await presence(A)).joined), ['B']);

  // C unsubscribes: left for A and B1
  await C.request({ type: 'unsubscribe', channel: ch });
  for (const x of [A, B1]) assert.deepEqual((await presence(x)).left, [{ peerId: 'C' }]);
  assert.ok(await C.none('presence', 200));
  assert.equal(C.all.filter((f) => f.type === 'presence').length, 0, 'C never received presence');

  // presence is per channel: another channel is independent
  await A.request({ type: 'subscribe', channel: 'pres-other' });
  assert.deepEqual(await presence(A), { type: 'presence', channel: 'pres-other', joined: [], left: [] });
  assert.ok(await B1.none('presence', 200));

  for (const x of [A, B1, C]) await x.close();
});

test('re-subscribing gives a fresh snapshot after its ack', async () => {
  const X = await peer('X1');
  const Y = await peer('Y1', { peerMetadata: { v: 1 } });
  await Y.request({ type: 'subscribe', channel: 'resub' });
  await presence(Y);
  await X.request({ type: 'subscribe', channel: 'resub' });
  assert.deepEqual(ids((await presence(X)).joined), ['Y1']);
  await presence(Y);
  await X.request({ type: 'subscribe', channel: 'resub' });
  assert.deepEqual(ids((await presence(X)).joined), ['Y1']);
  assert.ok(await Y.none('presence', 200), 'no join for an idempotent subscribe');
  await X.close();
  await Y.close();
});

test('many peers joining at once: each listed exactly once', async () => {
  const W = await peer('W');
  await W.request({ type: 'subscribe', channel: 'coal' });
  await presence(W);
  // many peers join through one connection each; every frame W receives is a
  // valid presence frame and together they list each peer exactly once
  const N = 20;
  const cs = await Promise.all(Array.from({ length: N }, (_, i) => peer(`co-${i}`)));
  cs.forEach((c, i) => c.send({ type: 'subscribe', channel: 'coal', requestId: `j${i}` }));
  const seen = [];
  while (seen.length < N) {
    const p = await presence(W);
    assert.deepEqual(p.left, []);
    seen.push(...p.joined.map((m) => m.peerId));
  }
  assert.deepEqual(seen.sort(), Array.from({ length: N }, (_, i) => `co-${i}`).sort());
  await Promise.all(cs.map((c) => c.close()));
  const left = [];
  while (left.length < N) left.push(...(await presence(W)).left.map((m) => m.peerId));
  assert.equal(new Set(left).size, N);
  await W.close();
});

test('a join and a leave in one loop turn cancel out: the others see nothing', async () => {
  const W = await peer('W2');
  await W.request({ type: 'subscribe', channel: 'flap' });
  await presence(W);
  const X = await peer('X2');
  // both frames in one TCP write, so the broker reads them in one loop turn
  X.ws._socket.cork();
  X.send({ type: 'subscribe', channel: 'flap', requestId: 's' });
  X.send({ type: 'unsubscribe', channel: 'flap', requestId: 'u' });
  X.ws._socket.uncork();
  await X.next((f) => f.requestId === 'u');
  assert.ok(await W.none('presence', 400), 'no joined/left pair for a flap inside one turn');
  assert.ok(await X.none('presence', 50), 'no snapshot for a subscription already gone');
  // the same two frames in separate turns do produce a join and a leave
  X.send({ type: 'subscribe', channel: 'flap', requestId: 's2' });
  await X.next((f) => f.requestId === 's2');
  assert.deepEqual(ids((await presence(W)).joined), ['X2']);
  X.send({ type: 'unsubscribe', channel: 'flap' });
  assert.deepEqual(ids((await presence(W)).left), ['X2']);
  await X.close();
  await W.close();
});

test('duplicatePeer replace: the older connection is closed with 4009', async () => {
  const key = rtmJson(['key', 'create', '--db', d.db, '--app', 'replacing']);
  rtmJson(['app', 'set', '--db', d.db, 'replacing', 'duplicatePeer', 'replace']);
  const O = await peer('R', {}, key.secret);
  const W = await peer('watcher', {}, key.secret);
  await W.request({ type: 'subscribe', channel: 'rep' });
  await presence(W);
  await O.request({ type: 'subscribe', channel: 'rep' });
  await presence(O);
  assert.deepEqual(ids((await presence(W)).joined), ['R']);
  const N = await peer('R', {}, key.secret);
  const info = await O.closed;
  assert.equal(info.code, 4009);
  await N.request({ type: 'subscribe', channel: 'rep' });
  assert.deepEqual(ids((await presence(N)).joined), ['watcher']);
  // the watcher sees R leave and join again (or nothing if both land in one turn), never R twice
  const rest = W.all.filter((f) => f.type === 'presence').slice(2);
  for (const f of rest) assert.ok(f.joined.length + f.left.length <= 1);
  N.send({ type: 'ping' });
  await N.next('pong');
  // the default app keeps several connections per peer
  const D1 = await peer('dup');
  const D2 = await peer('dup');
  assert.ok(await D1.none(() => true, 300));
  assert.equal(D1.closeInfo, null);
  for (const x of [N, W, D1, D2]) await x.close();
});
