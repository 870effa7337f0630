// cluster_direct.test.mjs: direct send across two rtmd nodes through a real
// redis-server (docs/CLUSTER.md, "Direct send"): a send reaches every
// connection of the recipient on either node, the scope rule (a shared
// channel, on any node) and peer_not_found hold cluster-wide, a sender's
// directs arrive in order with gap-free seq, a Redis outage answers
// cluster_unavailable for a recipient elsewhere while a recipient on the same
// node still gets it, and the records go when the peers do. A resume through
// another node moves the held place there (docs/CLUSTER.md, "Resume through
// another node"), or says resumed: false when no live node holds it.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startRtmd, sleep } from '../lib/rtmd.mjs';
import { startCluster, until } from '../lib/cluster.mjs';
import { frameChecker } from '../lib/schema.mjs';

let cl, redis, a, b;
const frames = frameChecker();

before(async () => {
  cl = await startCluster({ nodes: 2, config: { 'cluster-timeout-ms': 500, 'cluster-node-dead-ms': 3000 },
    track: (d) => frames.track(d) });
  ({ redis, nodes: [a, b] } = cl);
});
after(async () => {
  if (cl) await cl.stop();
  assert.ok(frames.assertValid() > 0);
});

async function member(node, peerId, channels, { extra = '', claims = {} } = {}) {
  const { token } = await a.mint({ peerId, ...claims });
  const c = await node.connect(token, extra);
  for (const ch of channels) assert.equal((await c.request({ type: 'subscribe', channel: ch })).type, 'ack');
  return c;
}

describe('direct send across nodes', () => {
  test('reaches every connection of the recipient on either node, with the sender\'s metadata', async () => {
    const alice = await member(a, 'd-alice', ['d-room'], { claims: { peerMetadata: { n: 'Al' } } });
    const bobB = await member(b, 'd-bob', ['d-room']);
    const bobA = await member(a, 'd-bob', []); // a second tab, in no channel, on the sender's node
    const r = await alice.request({ type: 'send', to: 'd-bob', data: { sdp: 'offer' } });
    assert.equal(r.type, 'ack');
    for (const c of [bobB, bobA]) {
      const f = await c.next('direct', 5000);
      assert.deepEqual([f.from, f.data, f.fromMetadata], ['d-alice', { sdp: 'offer' }, { n: 'Al' }]);
    }
    const back = await bobB.request({ type: 'send', to: 'd-alice', data: 'answer' });
    assert.equal(back.type, 'ack');
    assert.equal((await alice.next('direct', 5000)).data, 'answer');
    assert.ok(await bobA.none('direct', 200), 'the sender\'s other tab does not get its own message');
    for (const c of [alice, bobB, bobA]) await c.close();
  });

  test('peer_not_found for a peer that shares no channel anywhere, or is offline', async () => {
    const alice = await member(a, 'nf-alice', ['nf-room']);
    const carol = await member(b, 'nf-carol', ['nf-other']);
    for (const to of ['nf-carol', 'nf-nobody']) {
      const r = await alice.request({ type: 'send', to, data: 1 });
      assert.deepEqual([r.type, r.code], ['error', 'peer_not_found'], to);
    }
    assert.ok(await carol.none('direct', 200));
    // Once carol joins the channel on her node, the same send goes through.
    await carol.request({ type: 'subscribe', channel: 'nf-room' });
    assert.equal((await alice.request({ type: 'send', to: 'nf-carol', data: 2 })).type, 'ack');
    assert.equal((await carol.next('direct', 5000)).data, 2);
    await carol.close();
    await until(async () => (await alice.request({ type: 'send', to: 'nf-carol', data: 3 })).type === 'error', 3000,
      'carol to be gone');
    await alice.close();
  });

  test('a sender\'s directs arrive in order across nodes, with gap-free seq for an extension client', async () => {
    const alice = await member(a, 'sq-alice', ['sq-room']);
    const bob = await member(b, 'sq-bob', ['sq-room'], { extra: '&ext=1' });
    const N = 50;
    const acks = [];
    for (let i = 0; i < N; i++) acks.push(alice.request({ type: 'send', to: 'sq-bob', data: i }));
    for (const r of await Promise.all(acks)) assert.equal(r.type, 'ack');
    const got = [];
    for (let i = 0; i < N; i++) got.push(await bob.next('direct', 5000));
    assert.deepEqual(got.map((f) => f.data), Array.from({ length: N }, (_, i) => i));
    const s0 = got[0].seq;
    assert.ok(Number.isInteger(s0));
    assert.deepEqual(got.map((f) => f.seq), Array.from({ length: N }, (_, i) => s0 + i), 'no gap');
    await alice.close();
    await bob.close();
  });
});

const metricsOf = (node) => node.metrics();
const DROPPED = 'rtm_resume_direct_total{event="dropped"}';
const dropped = async (nodes) => { let n = 0; for (const x of nodes) n += (await metricsOf(x))[DROPPED] || 0; return n; };

// Kills c's socket (no close frame) and waits until node holds its place.
async function dropHeld(node, c) {
  const before = (await metricsOf(node)).rtm_held_places || 0;
  await c.terminate();
  await until(async () => ((await metricsOf(node)).rtm_held_places || 0) > before, 10000, 'the place to be held');
}

const directsOf = (c) => c.all.filter((f) => f.type === 'direct');

describe('resume through another node', () => {
  test('the held place moves: the gap\'s directs from either node arrive there once, in order, seq continuous; later ones too', async () => {
    const d0 = await dropped([a, b]);
    const alice = await member(a, 'rs-alice', ['rs-room']);
    const carol = await member(b, 'rs-carol', ['rs-room']);
    const bob = await member(a, 'rs-bob', ['rs-room'], { extra: '&ext=1' });
    const sid = bob.welcome.sessionId;
    assert.equal((await alice.request({ type: 'send', to: 'rs-bob', data: 'a0' })).type, 'ack');
    assert.equal((await bob.next('direct', 5000)).seq, 1);
    await dropHeld(a, bob);
    // The gap: directs to the place held on node a, from a sender there and one on node b.
    for (const [c, data] of [[alice, 'a1'], [carol, 'c1'], [alice, 'a2'], [carol, 'c2'], [alice, 'a3']])
      assert.equal((await c.request({ type: 'send', to: 'rs-bob', data })).type, 'ack');
    const { token } = await a.mint({ peerId: 'rs-bob' });
    const bob2 = await b.connect(token, `&ext=1&resume=${encodeURIComponent(sid)}`);
    assert.equal(bob2.welcome.resumed, true, 'node b resumed the place held on node a');
    assert.equal(bob2.welcome.sessionId, sid, 'the place keeps its id');
    assert.equal(bob2.welcome.presenceReset, true, 'member lists come as snapshots on the new node');
    const gap = [];
    for (let i = 0; i < 5; i++) gap.push(await bob2.next('direct', 5000));
    assert.deepEqual(gap.map((f) => [f.from, f.data, f.seq]),
      [['rs-alice', 'a1', 2], ['rs-carol', 'c1', 1], ['rs-alice', 'a2', 3], ['rs-carol', 'c2', 2], ['rs-alice', 'a3', 4]],
      'in gap order, seq continuing the old connection\'s');
    const snap = await bob2.next('presence', 5000);
    assert.equal(snap.channel, 'rs-room', 'still subscribed, with a fresh snapshot');
    assert.deepEqual(bob2.all.slice(0, 6).map((f) => f.type), ['welcome', 'direct', 'direct', 'direct', 'direct', 'direct'],
      'the gap first');
    // Live on node b now: directs from both nodes find it, numbering goes on.
    assert.equal((await alice.request({ type: 'send', to: 'rs-bob', data: 'a4' })).type, 'ack');
    assert.equal((await carol.request({ type: 'send', to: 'rs-bob', data: 'c3' })).type, 'ack');
    const later = [await bob2.next('direct', 5000), await bob2.next('direct', 5000)].sort((x, y) => (x.from < y.from ? -1 : 1));
    assert.deepEqual(later.map((f) => [f.from, f.data, f.seq]), [['rs-alice', 'a4', 5], ['rs-carol', 'c3', 3]]);
    // Node a let the old place go (after node b said it resumed): nothing held, nothing dropped.
    await until(async () => !(await metricsOf(a)).rtm_held_places, 5000, 'node a to let the moved place go');
    assert.equal(await dropped([a, b]) - d0, 0, 'no direct dropped');
    assert.ok(await bob2.none('direct', 300), 'each once');
    for (const c of [alice, carol, bob2]) await c.close();
  });

  test('directs sent from both nodes while the place moves: every one arrives once, each sender\'s in order with gap-free seq', async () => {
    const d0 = await dropped([a, b]);
    const alice = await member(a, 'mv-alice', ['mv-room']);
    const carol = await member(b, 'mv-carol', ['mv-room']);
    const bob = await member(a, 'mv-bob', ['mv-room'], { extra: '&ext=1' });
    const sid = bob.welcome.sessionId;
    await dropHeld(a, bob);
    const { token } = await a.mint({ peerId: 'mv-bob' });
    const N = 150;
    const acks = [];
    let bob2;
    for (let i = 0; i < N; i++) {
      acks.push(alice.request({ type: 'send', to: 'mv-bob', data: i }, 10000));
      acks.push(carol.request({ type: 'send', to: 'mv-bob', data: i }, 10000));
      if (i === 20) bob2 = b.connect(token, `&ext=1&resume=${encodeURIComponent(sid)}`); // the move runs among the sends
      if (i % 5 === 4) await sleep(1);
    }
    for (const r of await Promise.all(acks)) assert.equal(r.type, 'ack');
    bob2 = await bob2;
    assert.equal(bob2.welcome.resumed, true);
    await until(async () => directsOf(bob2).length >= 2 * N, 10000, `all ${2 * N} directs (got ${directsOf(bob2).length})`);
    assert.ok(await bob2.none('__nothing__', 300));
    for (const from of ['mv-alice', 'mv-carol']) {
      const got = directsOf(bob2).filter((f) => f.from === from);
      assert.deepEqual(got.map((f) => f.data), Array.from({ length: N }, (_, i) => i), `${from}: each once, in order`);
      assert.deepEqual(got.map((f) => f.seq), Array.from({ length: N }, (_, i) => i + 1), `${from}: gap-free seq`);
    }
    assert.equal(await dropped([a, b]) - d0, 0, 'no direct dropped');
    for (const c of [alice, carol, bob2]) await c.close();
  });

  test('a place whose old socket is still open on its node: taken over (the old one closes with 4009) and moved', async () => {
    const alice = await member(a, 'lv-alice', ['lv-room']);
    const bob = await member(a, 'lv-bob', ['lv-room'], { extra: '&ext=1' });
    assert.equal((await alice.request({ type: 'send', to: 'lv-bob', data: 'x0' })).type, 'ack');
    assert.equal((await bob.next('direct', 5000)).seq, 1);
    const { token } = await a.mint({ peerId: 'lv-bob' });
    const bob2 = await b.connect(token, `&ext=1&resume=${encodeURIComponent(bob.welcome.sessionId)}`);
    assert.equal(bob2.welcome.resumed, true, 'the drop node a had not noticed does not stop the move');
    assert.equal((await bob.closed).code, 4009, 'the old socket is told it was resumed elsewhere');
    assert.equal((await alice.request({ type: 'send', to: 'lv-bob', data: 'x1' })).type, 'ack');
    const f = await bob2.next('direct', 5000);
    assert.deepEqual([f.data, f.seq], ['x1', 2]);
    assert.ok(await bob2.none('direct', 300), 'once');
    for (const c of [alice, bob2]) await c.close();
  });

  test('a holder that does not answer in time (stopped): resumed: false and a fresh session; the gap\'s directs are counted dropped, not delivered', async () => {
    const d0 = await dropped([a, b]);
    const alice = await member(b, 'sl-alice', ['sl-room']);
    const bob = await member(a, 'sl-bob', ['sl-room'], { extra: '&ext=1' });
    const sid = bob.welcome.sessionId;
    await dropHeld(a, bob);
    const QUEUED = 'rtm_resume_direct_total{event="queued"}';
    const q0 = (await a.metrics())[QUEUED] || 0;
    for (const data of ['g1', 'g2']) assert.equal((await alice.request({ type: 'send', to: 'sl-bob', data })).type, 'ack');
    await until(async () => ((await a.metrics())[QUEUED] || 0) - q0 === 2, 5000, 'the gap\'s directs to reach the held place');
    const { token } = await a.mint({ peerId: 'sl-bob' });
    process.kill(a.pid, 'SIGSTOP');
    let bob2;
    try {
      const t0 = Date.now();
      bob2 = await b.connect(token, `&ext=1&resume=${encodeURIComponent(sid)}`);
      assert.equal(bob2.welcome.resumed, false, 'node a is silent: the client is told it lost the gap');
      assert.ok(Date.now() - t0 < 2500, `bounded by the deadline (${Date.now() - t0} ms)`);
    } finally {
      process.kill(a.pid, 'SIGCONT');
    }
    // Whatever node a does with its place now (move it to a node that no longer
    // waits for it, or keep it until its window ends), its directs are counted.
    await until(async () => (await dropped([a, b])) - d0 >= 2, 20000, 'the gap\'s 2 directs to be counted dropped');
    assert.equal((await bob2.request({ type: 'subscribe', channel: 'sl-room' })).type, 'ack');
    await until(async () => (await alice.request({ type: 'send', to: 'sl-bob', data: 'after' })).type === 'ack', 5000,
      'the new session to be reachable');
    await bob2.next((f) => f.type === 'direct' && f.data === 'after', 5000);
    assert.deepEqual(directsOf(bob2).map((f) => f.data).filter((x) => x !== 'after'), [], 'the gap is not delivered to the fresh session');
    for (const c of [alice, bob2]) await c.close();
  });

  test('presence does not flicker for the moved peer: watchers on either node see no leave and no join, then one leave', async () => {
    const pres = (x, from) => x.all.slice(from).filter((f) => f.type === 'presence' && f.channel === 'pf-room');
    const w1 = await member(a, 'pf-w1', ['pf-room']);
    const w2 = await member(b, 'pf-w2', ['pf-room']);
    const bob = await member(a, 'pf-bob', ['pf-room'], { extra: '&ext=1' });
    for (const w of [w1, w2])
      await until(async () => pres(w, 0).some((f) => f.joined.some((m) => m.peerId === 'pf-bob')), 5000, 'bob to join');
    const marks = [w1.all.length, w2.all.length];
    await dropHeld(a, bob);
    const { token } = await a.mint({ peerId: 'pf-bob' });
    const bob2 = await b.connect(token, `&ext=1&resume=${encodeURIComponent(bob.welcome.sessionId)}`);
    assert.equal(bob2.welcome.resumed, true);
    const snap = await bob2.next((f) => f.type === 'presence' && f.channel === 'pf-room', 5000);
    assert.deepEqual(snap.joined.map((m) => m.peerId).sort(), ['pf-w1', 'pf-w2'], 'the member list, fresh (presenceReset)');
    await until(async () => !(await metricsOf(a)).rtm_held_places, 5000, 'node a to let the moved place go');
    await sleep(500);
    assert.deepEqual(pres(w1, marks[0]), [], 'node a\'s watcher: no flicker');
    assert.deepEqual(pres(w2, marks[1]), [], 'node b\'s watcher: no flicker');
    await bob2.close(1000);
    for (const w of [w1, w2]) {
      const f = await w.next((x) => x.type === 'presence' && x.left.length > 0, 5000);
      assert.deepEqual(f.left.map((m) => m.peerId), ['pf-bob'], 'one leave when the peer really goes');
    }
    for (const w of [w1, w2]) await w.close();
  });

  test('a place nobody holds (an unknown id) gives resumed: false and a fresh session at once', async () => {
    const alice = await member(a, 'un-alice', ['un-room']);
    const { token } = await a.mint({ peerId: 'un-bob' });
    const t0 = Date.now();
    const bob = await b.connect(token, '&ext=1&resume=rs_00000000000000000000000000000000000000');
    assert.equal(bob.welcome.resumed, false);
    assert.ok(Date.now() - t0 < 5000);
    assert.equal((await bob.request({ type: 'subscribe', channel: 'un-room' })).type, 'ack');
    assert.equal((await alice.request({ type: 'send', to: 'un-bob', data: 1 })).type, 'ack');
    assert.equal((await bob.next('direct', 5000)).data, 1);
    for (const c of [alice, bob]) await c.close();
  });
});

describe('node death', () => {
  test('after kill -9 of a node, its peers\' records are reaped: a send to them answers peer_not_found, not silence', async () => {
    const c = await startRtmd({ config: { cluster: redis.url, 'cluster-timeout-ms': 500, 'cluster-node-dead-ms': 3000 },
      dir: a.dir, key: a.key, keepDir: true });
    try {
      const alice = await member(a, 'nd-alice', ['nd-room']);
      const bob = await member(c, 'nd-bob', ['nd-room']);
      await until(async () => (await alice.request({ type: 'send', to: 'nd-bob', data: 1 })).type === 'ack', 5000,
        'bob to be reachable'); // a node under valgrind writes its peer record a little later
      assert.equal((await bob.next('direct', 5000)).data, 1);
      assert.equal((await redis.lines('ZCARD', 'rtm:nodes'))[0], '3');
      await c.stop('SIGKILL');
      const t0 = Date.now();
      await until(async () => (await alice.request({ type: 'send', to: 'nd-bob', data: 2 })).code === 'peer_not_found',
        10000, 'the dead node\'s peer to be reaped');
      const took = Date.now() - t0;
      assert.ok(took >= 2000, `not before the node is dead (${took} ms)`);
      assert.equal((await redis.lines('ZCARD', 'rtm:nodes'))[0], '2', 'the dead node is gone from the registry');
      assert.deepEqual(await redis.lines('KEYS', 'rtm:ni:*nd*'), []);
      await alice.close();
    } finally {
      await c.cleanup();
    }
  });
});

describe('resume through another node, the holder dead', () => {
  test('after kill -9 of the node holding the place: resumed: false and a fresh welcome, not a wait or a silent resume', async () => {
    const c = await startRtmd({ config: { cluster: redis.url, 'cluster-timeout-ms': 500, 'cluster-node-dead-ms': 3000 },
      dir: a.dir, key: a.key, keepDir: true });
    try {
      const alice = await member(a, 'dd-alice', ['dd-room']);
      const bob = await member(c, 'dd-bob', ['dd-room'], { extra: '&ext=1' });
      const sid = bob.welcome.sessionId;
      await until(async () => (await alice.request({ type: 'send', to: 'dd-bob', data: 1 })).type === 'ack', 5000,
        'bob to be reachable');
      await dropHeld(c, bob);
      await c.stop('SIGKILL');
      const { token } = await a.mint({ peerId: 'dd-bob' });
      const t0 = Date.now();
      const bob2 = await b.connect(token, `&ext=1&resume=${encodeURIComponent(sid)}`);
      assert.equal(bob2.welcome.resumed, false, 'the place died with its node: the client is told');
      assert.notEqual(bob2.welcome.sessionId, sid);
      assert.ok(Date.now() - t0 < 3000, 'a dead node is waited for at most the question\'s deadline (500 ms)');
      assert.equal((await bob2.request({ type: 'subscribe', channel: 'dd-room' })).type, 'ack');
      await until(async () => (await alice.request({ type: 'send', to: 'dd-bob', data: 'after' })).type === 'ack', 5000,
        'the new session to be reachable');
      assert.equal((await bob2.next((f) => f.type === 'direct' && f.data === 'after', 5000)).from, 'dd-alice');
      for (const x of [alice, bob2]) await x.close();
      // The dead node is reaped before the next test watches for reaping.
      await until(async () => (await redis.lines('ZCARD', 'rtm:nodes'))[0] === '2', 10000, 'the dead node to be reaped');
    } finally {
      await c.cleanup();
    }
  });
});

describe('Redis stall', () => {
  test('a stall longer than cluster-node-dead-ms reaps no one: every node comes back before anyone may reap', async () => {
    const alice = await member(a, 'st-alice', ['st-room']);
    const bob = await member(b, 'st-bob', ['st-room']);
    assert.equal((await alice.request({ type: 'send', to: 'st-bob', data: 1 })).type, 'ack');
    assert.equal((await bob.next('direct', 5000)).data, 1);
    const logFrom = [a.log.length, b.log.length]; // the node-death test reaped before
    await redis.cli('DEBUG', 'SLEEP', '3.5'); // longer than dead-after (3 s)
    // Watch for 5 s after the stall (past the first moment anyone may reap):
    // bob stays reachable (once the link is back) and both nodes stay registered.
    const end = Date.now() + 5000;
    let acks = 0;
    while (Date.now() < end) {
      const r = await alice.request({ type: 'send', to: 'st-bob', data: 2 }, 5000);
      if (r.type === 'ack') acks++;
      else assert.equal(r.code, 'cluster_unavailable', 'never peer_not_found');
      await sleep(200);
    }
    assert.ok(acks > 5, 'sends went through again');
    assert.equal((await redis.lines('ZCARD', 'rtm:nodes'))[0], '2');
    for (const [i, n] of [a, b].entries())
      assert.ok(!/records of dead nodes/.test(n.log.slice(logFrom[i])), 'no node reaped another, even briefly');
    await alice.close();
    await bob.close();
  });
});

describe('Redis down', () => {
  test('a recipient on another node: cluster_unavailable; on the same node: delivered', async () => {
    const alice = await member(a, 'rd-alice', ['rd-room']);
    const bob = await member(b, 'rd-bob', ['rd-room']);
    const dave = await member(a, 'rd-dave', ['rd-room']);
    assert.equal((await alice.request({ type: 'send', to: 'rd-bob', data: 0 })).type, 'ack');
    assert.equal((await bob.next('direct', 5000)).data, 0);
    await redis.kill9();
    const r1 = await alice.request({ type: 'send', to: 'rd-bob', data: 1 });
    assert.deepEqual([r1.type, r1.code], ['error', 'cluster_unavailable']);
    const r2 = await alice.request({ type: 'send', to: 'rd-dave', data: 2 });
    assert.equal(r2.type, 'ack', 'nothing had to cross nodes');
    assert.equal((await dave.next('direct', 5000)).data, 2);
    assert.ok(await bob.none('direct', 100));
    await redis.start(); // empty: the nodes write their peers' records again
    await until(async () => (await alice.request({ type: 'send', to: 'rd-bob', data: 3 })).type === 'ack', 10000,
      'sends to cross again');
    assert.equal((await bob.next((f) => f.type === 'direct' && f.data === 3, 5000)).from, 'rd-alice');
    for (const c of [alice, bob, dave]) await c.close();
  });

  test('after every peer left, no peer record remains in Redis (only the nodes\' heartbeats)', async () => {
    await until(async () => (await redis.lines('KEYS', 'rtm:p:*')).length === 0, 15000, 'peer records to go (a held place lasts its resume window)');
    // the per-app counts go with the next heartbeat
    await until(async () => (await redis.lines('KEYS', '*')).length === 2, 3000, 'the app counts to go');
    assert.deepEqual((await redis.lines('KEYS', '*')).sort(), ['rtm:nodes', 'rtm:nodes:run']);
  });
});
