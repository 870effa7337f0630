// cluster_publish.test.mjs: cluster mode (docs/CLUSTER.md) with a real
// redis-server and two real rtmd nodes sharing one store: publishes cross
// nodes in one order per channel and are never echoed, server publish and
// includeSenderMetadata work across nodes, a node holds a channel's Redis
// subscription only while it has subscribers, and a Redis crash gives
// cluster_unavailable errors (never a silent loss) until Redis is back, after
// which every node has re-subscribed by itself.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startRtmd, sleep } from '../lib/rtmd.mjs';
import { startCluster, until } from '../lib/cluster.mjs';
import { frameChecker } from '../lib/schema.mjs';

let cl, redis, a, b;
const frames = frameChecker();

before(async () => {
  cl = await startCluster({ nodes: 2, config: { 'cluster-timeout-ms': 500 }, track: (d) => frames.track(d) });
  ({ redis, nodes: [a, b] } = cl);
});
after(async () => {
  if (cl) await cl.stop();
  assert.ok(frames.assertValid() > 0);
});

async function peer(node, peerId, extra = {}) {
  const { token } = await a.mint({ peerId, ...extra });
  return node.connect(token);
}

const redisChannel = (app, ch) => `rtm:c:${app.length}:${app}:${ch}`;
async function numsub(name) {
  const l = await redis.lines('PUBSUB', 'NUMSUB', name);
  return Number(l[1]);
}
// The value of one sample in a /metrics reply (labels included in the name).
function metric(reply, name) {
  const line = reply.text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ')[1]) : NaN;
}

describe('publish across nodes', () => {
  test('every subscriber on either node gets both publishers\' messages in one order, never its own', async () => {
    const pa = await peer(a, 'ord-pa');
    const pb = await peer(b, 'ord-pb');
    const sa = await peer(a, 'ord-sa');
    const sb = await peer(b, 'ord-sb');
    for (const c of [pa, pb, sa, sb]) assert.equal((await c.request({ type: 'subscribe', channel: 'order' })).type, 'ack');
    const N = 40;
    const acks = [];
    for (let i = 0; i < N; i++) {
      acks.push(pa.request({ type: 'publish', channel: 'order', data: { from: 'a', i } }));
      acks.push(pb.request({ type: 'publish', channel: 'order', data: { from: 'b', i } }));
    }
    for (const r of await Promise.all(acks)) assert.equal(r.type, 'ack');
    const take = async (c, n) => {
      const out = [];
      for (let k = 0; k < n; k++) {
        const f = await c.next('message', 5000);
        assert.equal(f.channel, 'order');
        out.push(`${f.data.from}${f.data.i}`);
        assert.equal(f.from, f.data.from === 'a' ? 'ord-pa' : 'ord-pb');
      }
      return out;
    };
    const [ga, gb, gpa, gpb] = await Promise.all([take(sa, 2 * N), take(sb, 2 * N), take(pa, N), take(pb, N)]);
    assert.deepEqual(gb, ga, 'one order per channel on both nodes');
    for (const who of ['a', 'b']) {
      const mine = ga.filter((x) => x[0] === who);
      assert.deepEqual(mine, Array.from({ length: N }, (_, i) => `${who}${i}`), 'each publisher in its own order');
    }
    assert.deepEqual(gpa, ga.filter((x) => x[0] === 'b'), 'a publisher sees the others in the same order');
    assert.deepEqual(gpb, ga.filter((x) => x[0] === 'a'));
    assert.ok(await pa.none('message', 300), 'never echoed');
    assert.ok(await pb.none('message', 10));
    for (const c of [pa, pb, sa, sb]) await c.close();
  });

  test('server publish on one node reaches subscribers on both; includeSenderMetadata crosses nodes', async () => {
    const sa = await peer(a, 'srv-sa');
    const sb = await peer(b, 'srv-sb', { peerMetadata: { name: 'Bea' } });
    const sb2 = await peer(b, 'srv-sb2');
    assert.equal((await sa.request({ type: 'subscribe', channel: 'srv', includeSenderMetadata: true })).type, 'ack');
    assert.equal((await sb.request({ type: 'subscribe', channel: 'srv' })).type, 'ack');
    assert.equal((await sb2.request({ type: 'subscribe', channel: 'srv', includeSenderMetadata: true })).type, 'ack');
    const r = await b.api('POST', '/v1/publish', { channel: 'srv', data: { hello: 1 } });
    assert.equal(r.status, 200, r.text);
    for (const c of [sa, sb, sb2]) {
      const f = await c.next('message', 5000);
      assert.deepEqual([f.from, f.data], ['_server', { hello: 1 }]);
    }
    assert.equal((await sb.request({ type: 'publish', channel: 'srv', data: 'hi' })).type, 'ack');
    const fa = await sa.next('message', 5000);
    assert.deepEqual([fa.from, fa.data, fa.fromMetadata], ['srv-sb', 'hi', { name: 'Bea' }], 'metadata to a on the other node');
    const fb2 = await sb2.next('message', 5000);
    assert.deepEqual(fb2.fromMetadata, { name: 'Bea' });
    for (const c of [sa, sb, sb2]) await c.close();
  });

  test('a node holds a channel\'s Redis subscription only while it has subscribers there', async () => {
    const name = redisChannel(a.app, 'hold');
    assert.equal(await numsub(name), 0);
    const x = await peer(a, 'hold-x');
    const y = await peer(b, 'hold-y');
    await x.request({ type: 'subscribe', channel: 'hold' });
    assert.equal(await numsub(name), 1, 'subscribed once the ack arrived');
    await y.request({ type: 'subscribe', channel: 'hold' });
    assert.equal(await numsub(name), 2);
    const x2 = await peer(a, 'hold-x2');
    await x2.request({ type: 'subscribe', channel: 'hold' });
    assert.equal(await numsub(name), 2, 'one Redis subscription per node, not per client');
    await x.request({ type: 'unsubscribe', channel: 'hold' });
    await sleep(200);
    assert.equal(await numsub(name), 2, 'node a still has x2');
    await x2.close();
    await until(async () => (await numsub(name)) === 1, 3000, 'node a to unsubscribe');
    await y.close();
    await until(async () => (await numsub(name)) === 0, 3000, 'node b to unsubscribe');
    // A publisher alone (no subscriber on its node) still reaches the others.
    const z = await peer(b, 'hold-z');
    await z.request({ type: 'subscribe', channel: 'hold' });
    assert.equal((await x.request({ type: 'publish', channel: 'hold', data: 1 })).type, 'ack');
    assert.equal((await z.next('message', 5000)).data, 1);
    await x.close();
    await z.close();
  });
});

describe('Redis crash and restart', () => {
  test('publishes fail with cluster_unavailable and their requestId while Redis is down; all recovers after', async () => {
    const pa = await peer(a, 'crash-pa');
    const sb = await peer(b, 'crash-sb');
    const sa = await peer(a, 'crash-sa');
    for (const c of [pa, sb, sa]) assert.equal((await c.request({ type: 'subscribe', channel: 'crash' })).type, 'ack');
    assert.equal((await pa.request({ type: 'publish', channel: 'crash', data: 0 })).type, 'ack');
    assert.equal((await sb.next('message', 5000)).data, 0);
    assert.equal((await sa.next('message', 5000)).data, 0);
    const h0 = await a.api('GET', '/healthz', undefined, { auth: null });
    assert.equal(h0.status, 200);
    assert.deepEqual([h0.json.status, h0.json.cluster], ['ok', { state: 'up', shards: 1, shardsUp: 1 }]);
    const before = metric(await a.api('GET', '/metrics', undefined, { auth: null }), 'rtm_cluster_redis_reconnects_total');

    await redis.kill9();
    // Every publish while it is down gets an error with its requestId, on either node.
    for (const [c, i] of [[pa, 1], [sb, 2], [pa, 3]]) {
      const requestId = `down-${i}`;
      c.send({ type: 'publish', channel: 'crash', data: i, requestId });
      const f = await c.next((x) => x.requestId === requestId, 5000);
      assert.deepEqual([f.type, f.code], ['error', 'cluster_unavailable']);
    }
    const srv = await a.api('POST', '/v1/publish', { channel: 'crash', data: 'x' });
    assert.equal(srv.status, 503);
    assert.equal(srv.json.error, 'cluster_unavailable');
    assert.equal(pa.closeInfo, null, 'client connections stay open');
    assert.equal(sb.closeInfo, null);
    assert.ok(await sb.none('message', 100), 'nothing half-delivered');
    const h1 = await b.api('GET', '/healthz', undefined, { auth: null });
    assert.equal(h1.status, 200, 'a node without Redis still serves its own clients');
    assert.deepEqual([h1.json.status, h1.json.cluster.state, h1.json.cluster.shardsUp], ['degraded', 'down', 0]);

    await redis.start(); // same port, empty: no subscription survives
    const name = redisChannel(a.app, 'crash');
    await until(async () => (await numsub(name)) === 2, 10000, 'both nodes to re-subscribe');
    // Publishes flow again, across nodes, without any client reconnecting.
    let r;
    await until(async () => { r = await pa.request({ type: 'publish', channel: 'crash', data: 9 }); return r.type === 'ack'; },
      10000, 'a publish to be taken');
    assert.equal((await sb.next((f) => f.type === 'message' && f.data === 9, 5000)).from, 'crash-pa');
    assert.equal((await sa.next((f) => f.type === 'message' && f.data === 9, 5000)).from, 'crash-pa');
    assert.equal((await sb.request({ type: 'publish', channel: 'crash', data: 10 })).type, 'ack');
    assert.equal((await pa.next((f) => f.type === 'message' && f.data === 10, 5000)).from, 'crash-sb');
    const h2 = await b.api('GET', '/healthz', undefined, { auth: null });
    assert.deepEqual([h2.json.status, h2.json.cluster.state], ['ok', 'up']);
    const m = await a.api('GET', '/metrics', undefined, { auth: null });
    assert.ok(metric(m, 'rtm_cluster_redis_reconnects_total') > before, 'the reconnect is counted');
    assert.equal(metric(m, 'rtm_cluster_shards_up'), 1);
    assert.ok(metric(m, 'rtm_cluster_unavailable_total') >= 2, 'the refused publishes are counted');
    assert.ok(metric(m, 'rtm_cluster_redis_round_trip_seconds_count') > 0);
    for (const c of [pa, sb, sa]) await c.close();
  });
});

describe('Redis stall', () => {
  test('a stalled Redis (DEBUG SLEEP) gives deadline errors, closes no client, and the nodes recover by themselves', async () => {
    const pa = await peer(a, 'stall-pa');
    const sb = await peer(b, 'stall-sb');
    for (const c of [pa, sb]) assert.equal((await c.request({ type: 'subscribe', channel: 'stall' })).type, 'ack');
    const sleeping = redis.cli('DEBUG', 'SLEEP', '2'); // the deadline is 500 ms
    await sleep(100);
    const t0 = Date.now();
    const r = await pa.request({ type: 'publish', channel: 'stall', data: 'during' }, 5000);
    // Either Redis took it before the stall began, or the sender is told.
    if (r.type === 'error') {
      assert.equal(r.code, 'cluster_unavailable');
      assert.ok(Date.now() - t0 < 1900, 'answered by the deadline, not when Redis woke up');
    }
    await sleeping;
    assert.equal(pa.closeInfo, null, 'no client closed');
    assert.equal(sb.closeInfo, null);
    // Both nodes subscribed again (a node's subscribers miss what is published
    // while their own node is still reconnecting: pub/sub keeps no history).
    await until(async () => (await numsub(redisChannel(a.app, 'stall'))) === 2, 10000, 'both subscriptions');
    let ok;
    await until(async () => { ok = await pa.request({ type: 'publish', channel: 'stall', data: 'after' }); return ok.type === 'ack'; },
      10000, 'publishes to be taken again');
    assert.equal((await sb.next((f) => f.type === 'message' && f.data === 'after', 5000)).from, 'stall-pa');
    for (const c of [pa, sb]) await c.close();
  });
});

describe('baseline', () => {
  test('after every client left, only the nodes\' own channels and heartbeats remain in Redis', async () => {
    await until(async () => {
      const chans = await redis.lines('PUBSUB', 'CHANNELS', '*');
      return chans.every((c) => c.startsWith('rtm:n:') || c === 'rtm:ctl');
    }, 5000, 'channel subscriptions to go');
    const chans = (await redis.lines('PUBSUB', 'CHANNELS', '*')).sort();
    assert.equal(chans.length, 3, 'one node channel per node, and the control channel');
    assert.equal((await redis.lines('PUBSUB', 'NUMSUB', 'rtm:ctl'))[1], '2', 'every node hears the control channel');
    await until(async () => (await redis.lines('KEYS', '*')).length === 2, 3000, 'peer records to go');
    assert.deepEqual((await redis.lines('KEYS', '*')).sort(), ['rtm:nodes', 'rtm:nodes:run']);
    assert.equal((await redis.lines('ZCARD', 'rtm:nodes'))[0], '2', 'one heartbeat per node');
  });
});

describe('configuration', () => {
  test('a malformed --cluster setting stops rtmd at start with a clear reason', async () => {
    await assert.rejects(startRtmd({ config: { cluster: 'http://127.0.0.1:1' } }), /not redis:\/\/HOST:PORT/);
  });
});
