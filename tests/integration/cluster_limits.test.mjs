// cluster_limits.test.mjs: max-connections-per-app counts the sessions of
// every node (as of the last heartbeat: a soft limit, docs/CLUSTER.md), and a
// node's count leaves Redis with its last session.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, until } from '../lib/cluster.mjs';
import { sleep } from '../lib/rtmd.mjs';

let cl, a, b;
before(async () => {
  cl = await startCluster({ nodes: 2, config: { 'cluster-timeout-ms': 500, 'max-connections-per-app': 3 } });
  [a, b] = cl.nodes;
});
after(async () => { if (cl) await cl.stop(); });

async function connect(node, peerId) { return node.connect((await a.mint({ peerId })).token); }

test('the per-app limit counts the other nodes\' sessions; the count leaves Redis with the last session', async () => {
  const x1 = await connect(a, 'lim-1');
  const x2 = await connect(a, 'lim-2');
  await sleep(1600); // a heartbeat on each node carries the counts
  const y1 = await connect(b, 'lim-3'); // the third of 3; node b asks Redis about the app now
  await sleep(300); // one Redis round trip, with room for a busy machine (the limit is soft)
  const over = await b.open(`?token=${encodeURIComponent((await a.mint({ peerId: 'lim-4' })).token)}`);
  const info = await Promise.race([over.closed, sleep(5000).then(() => ({ code: 'still open after 5 s' }))]);
  over.terminate();
  assert.equal(info.code, 4010, 'node b refuses a fourth session of the app although it holds only one');
  await x1.close();
  await sleep(1600);
  const y2 = await connect(b, 'lim-5'); // room again
  assert.equal(y2.closeInfo, null);
  const key = `rtm:ac:${a.app.length}:${a.app}`;
  for (const c of [x2, y1, y2]) await c.close();
  await until(async () => (await cl.redis.lines('EXISTS', key))[0] === '0', 5000, 'the app counts to go');
});
