// cluster_rest.test.mjs: the backend API's results are the cluster's
// (docs/CLUSTER.md "Kick, revocation, server publish, /v1/peers on every
// node"): three nodes named by their node-id setting, one Redis, one store.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, until } from '../lib/cluster.mjs';
import { frameChecker } from '../lib/schema.mjs';

let cl, a, b, c;
const frames = frameChecker();
before(async () => {
  cl = await startCluster({
    nodes: 3, config: { 'cluster-timeout-ms': 500 }, nodeConfig: (i) => ({ 'node-id': `rest-n${i}` }),
    track: (d) => frames.track(d),
  });
  [a, b, c] = cl.nodes;
});
after(async () => {
  if (cl) await cl.stop();
  assert.ok(frames.assertValid() > 0);
});

async function peer(node, peerId, claims = {}) { return node.connect((await a.mint({ peerId, ...claims })).token); }

test('each node goes by its node-id setting in the registry and on /healthz', async () => {
  await until(async () => (await cl.redis.lines('ZRANGE', 'rtm:nodes', '0', '-1')).length === 3, 5000, 'three nodes');
  assert.deepEqual((await cl.redis.lines('ZRANGE', 'rtm:nodes', '0', '-1')).sort(), ['rest-n0', 'rest-n1', 'rest-n2']);
  const subs = await cl.redis.lines('PUBSUB', 'CHANNELS', 'rtm:n:*');
  assert.deepEqual(subs.sort(), ['rtm:n:rest-n0', 'rtm:n:rest-n1', 'rtm:n:rest-n2']);
  const h = await b.api('GET', '/healthz');
  assert.equal(h.json.node, 'rest-n1');
  // a client still works (frames checked against the schemas)
  const p = await peer(b, 'hello');
  p.send({ type: 'ping' });
  await p.next('pong');
  await p.close();
});
