// cluster_control.test.mjs: a kick and a revocation made through one node's
// REST API act on every node within a second (docs/CLUSTER.md, control
// channel rtm:ctl; revocations are read from the store the nodes share).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster } from '../lib/cluster.mjs';
import { frameChecker } from '../lib/schema.mjs';

let cl, a, b;
const frames = frameChecker();
before(async () => {
  cl = await startCluster({ nodes: 2, config: { 'cluster-timeout-ms': 500 }, track: (d) => frames.track(d) });
  [a, b] = cl.nodes;
});
after(async () => {
  if (cl) await cl.stop();
  assert.ok(frames.assertValid() > 0);
});

async function peer(node, peerId) { return node.connect((await a.mint({ peerId })).token); }
async function closedWithin(c, ms) {
  const t0 = Date.now();
  const info = await Promise.race([c.closed, new Promise((r) => setTimeout(() => r(null), ms))]);
  return info && { ...info, ms: Date.now() - t0 };
}

test('a kick through node a closes the peer\'s sessions on both nodes with 4020 within a second', async () => {
  const onA = await peer(a, 'k-bob');
  const onB = await peer(b, 'k-bob');
  const other = await peer(b, 'k-carol');
  const r = await a.api('DELETE', '/v1/peers/k-bob');
  assert.equal(r.status, 200, r.text);
  for (const c of [onA, onB]) {
    const info = await closedWithin(c, 1000);
    assert.ok(info, 'closed within a second');
    assert.equal(info.code, 4020);
  }
  assert.equal(other.closeInfo, null, 'another peer on the same node stays');
  await other.close();
});

test('a revocation through node b closes the matching session on node a with 4001 within a second', async () => {
  const victim = await peer(a, 'rv-dan');
  const bystander = await peer(a, 'rv-eve');
  const r = await b.api('POST', '/v1/revocations', { peerId: 'rv-dan' });
  assert.ok(r.status === 200 || r.status === 201, r.text);
  const info = await closedWithin(victim, 1000);
  assert.ok(info, 'closed within a second');
  assert.equal(info.code, 4001);
  assert.equal(bystander.closeInfo, null);
  await bystander.close();
});
