// cluster.mjs: redis-servers (one per shard) and N rtmd nodes in cluster mode
// sharing one store (so one key mints tokens every node accepts), each node on
// its own loopback ports. For tests and benches of docs/CLUSTER.md.
//
//   const cl = await startCluster({ nodes: 2, shards: 1, config: { 'cluster-timeout-ms': 500 } });
//   const [a, b] = cl.nodes;  cl.redis (shard 0), cl.shards[i]  ...  await cl.stop();
// nodeConfig(i) adds settings of node i (its node-id, say) to the shared config;
// postgres: true puts the shared store on Postgres (tests/lib/postgres.mjs) whatever RTM_TEST_DB says.
import { startRtmd, sleep } from './rtmd.mjs';
import { startRedis } from './redis.mjs';

export async function startCluster({ nodes = 2, shards = 1, config = {}, nodeConfig = () => ({}), postgres, track = (d) => d } = {}) {
  const cl = { shards: [], nodes: [] };
  cl.stop = async () => {
    try {
      for (const d of [...cl.nodes].reverse()) await d.cleanup(); // the first owns the shared directory
    } finally {
      for (const r of cl.shards) await r.stop();
    }
  };
  try {
    for (let i = 0; i < shards; i++) cl.shards.push(await startRedis());
    cl.redis = cl.shards[0];
    const cfg = { cluster: cl.shards.map((r) => r.url).join(','), ...config };
    const first = track(await startRtmd({ config: { ...cfg, ...nodeConfig(0) }, postgres }));
    cl.nodes.push(first);
    for (let i = 1; i < nodes; i++) {
      const config = { ...cfg, ...nodeConfig(i) };
      cl.nodes.push(track(await startRtmd({ config, dir: first.dir, db: first.db, key: first.key, keepDir: true })));
    }
  } catch (e) {
    await cl.stop();
    throw e;
  }
  return cl;
}

// Polls fn (async, truthy when done) every 50 ms for at most ms.
export async function until(fn, ms, what = 'condition') {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await sleep(50);
  }
}
