// cluster_direct.test.mjs: direct send across two rtmd nodes through a real
// redis-server (docs/CLUSTER.md, "Direct send"): a send reaches every
// connection of the recipient on either node, the scope rule (a shared
// channel, on any node) and peer_not_found hold cluster-wide, a sender's
// directs arrive in order with gap-free seq, a Redis outage answers
// cluster_unavailable for a recipient elsewhere while a recipient on the same
// node still gets it, and the records go when the peers do.
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

describe('resume through another node', () => {
  test('is refused openly (resumed: false, a fresh session), never a silent loss; directs then reach the new node', async () => {
    const alice = await member(a, 'rs-alice', ['rs-room']);
    const bob = await member(a, 'rs-bob', ['rs-room'], { extra: '&ext=1' });
    const sid = bob.welcome.sessionId;
    assert.ok(sid, 'an extension session has a place to resume');
    await bob.terminate();
    // A direct in the gap goes to bob's held place on node a.
    assert.equal((await alice.request({ type: 'send', to: 'rs-bob', data: 'gap' })).type, 'ack');
    const { token } = await a.mint({ peerId: 'rs-bob' });
    const bob2 = await b.connect(token, `&ext=1&resume=${encodeURIComponent(sid)}`);
    assert.equal(bob2.welcome.resumed, false, 'the place is on node a: the client is told it lost the gap');
    assert.notEqual(bob2.welcome.sessionId, sid);
    assert.equal((await bob2.request({ type: 'subscribe', channel: 'rs-room' })).type, 'ack');
    assert.equal((await alice.request({ type: 'send', to: 'rs-bob', data: 'after' })).type, 'ack');
    assert.equal((await bob2.next('direct', 5000)).data, 'after');
    await alice.close();
    await bob2.close();
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
