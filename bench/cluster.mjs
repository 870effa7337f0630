// cluster.mjs: what cluster mode costs a publish (make bench; figures only).
// One channel, SUBS subscribers, one publisher at RATE messages/s for SECS s;
// one-way latency from the publish to each delivery (one clock: every client
// lives in this process) and deliveries/s, for:
//   single   one rtmd, no --cluster
//   1node    one rtmd with --cluster (every delivery goes through Redis)
//   2nodes   publisher and half the subscribers on node a, half on node b
// Then a direct ping-pong (send -> direct -> send back), ROUNDS round trips
// one at a time: single node, and the two peers on two nodes.
// The load generator is Node's ws in one process: it, not rtmd, may be the
// limit at high rates, so read the ratios between rows.
import { startRtmd, sleep } from '../tests/lib/rtmd.mjs';
import { startCluster } from '../tests/lib/cluster.mjs';
import { loadavg } from 'node:os';

const SUBS = Number(process.env.SUBS || 100);
const RATE = Number(process.env.RATE || 500);
const SECS = Number(process.env.SECS || 3);
const ROUNDS = Number(process.env.ROUNDS || 500);

function pct(a, p) { return a.length ? a[Math.min(a.length - 1, Math.floor(a.length * p))] : NaN; }

async function run(name, pubNode, subNodes, mint) {
  const pub = await pubNode.connect((await mint('pub')).token);
  const subs = [];
  for (let i = 0; i < SUBS; i++) {
    const node = subNodes[i % subNodes.length];
    const c = await node.connect((await mint(`s${i}`)).token);
    c.node = subNodes.indexOf(node);
    subs.push(c);
  }
  await Promise.all(subs.map((c) => c.request({ type: 'subscribe', channel: 'bench' }, 10000)));
  const lat = subNodes.map(() => []);
  let delivered = 0;
  for (const c of subs) {
    c.ws.on('message', (d) => {
      const f = JSON.parse(d);
      if (f.type !== 'message') return;
      lat[c.node].push(performance.now() - f.data.t);
      delivered++;
    });
  }
  const total = RATE * SECS;
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    pub.send({ type: 'publish', channel: 'bench', data: { t: performance.now(), i } });
  }
  const end = Date.now() + 10000;
  while (delivered < total * SUBS && Date.now() < end) await sleep(20);
  const secs = (performance.now() - t0) / 1000;
  for (const [i, l] of lat.entries()) {
    l.sort((x, y) => x - y);
    console.log(`${name.padEnd(7)} node ${i}: ${SUBS / subNodes.length} subs, ${l.length} deliveries, ` +
      `one-way p50 ${pct(l, 0.5).toFixed(2)} ms p99 ${pct(l, 0.99).toFixed(2)} ms`);
  }
  console.log(`${name.padEnd(7)} total: ${delivered}/${total * SUBS} delivered, ${(delivered / secs).toFixed(0)} deliveries/s`);
  for (const c of [pub, ...subs]) c.terminate();
  await sleep(200);
}

async function pingpong(name, nodeA, nodeB, mint) {
  const x = await nodeA.connect((await mint('pp-x')).token);
  const y = await nodeB.connect((await mint('pp-y')).token);
  for (const c of [x, y]) await c.request({ type: 'subscribe', channel: 'pp' }, 10000);
  y.ws.on('message', (d) => {
    const f = JSON.parse(d);
    if (f.type === 'direct') y.send({ type: 'send', to: 'pp-x', data: f.data });
  });
  const rtt = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t = performance.now();
    x.send({ type: 'send', to: 'pp-y', data: i });
    await x.next((f) => f.type === 'direct' && f.data === i, 5000);
    rtt.push(performance.now() - t);
  }
  rtt.sort((p, q) => p - q);
  console.log(`${name.padEnd(7)} direct round trip (x -> y -> x), ${ROUNDS} rounds: p50 ${pct(rtt, 0.5).toFixed(3)} ms p99 ${pct(rtt, 0.99).toFixed(3)} ms`);
  x.terminate();
  y.terminate();
  await sleep(200);
}

const cfg = { 'rate-frames-per-second': 0, 'max-connections': 0 };
console.log(`cluster bench: ${SUBS} subscribers, ${RATE} publishes/s for ${SECS} s; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
const single = await startRtmd({ config: cfg });
try {
  await run('single', single, [single], (p) => single.mint({ peerId: p }));
  await pingpong('single', single, single, (p) => single.mint({ peerId: p }));
} finally { await single.cleanup(); }
const cl = await startCluster({ nodes: 2, config: cfg });
const [a, b] = cl.nodes;
try {
  await run('1node', a, [a], (p) => a.mint({ peerId: p }));
  await run('2nodes', a, [a, b], (p) => a.mint({ peerId: p }));
  await pingpong('1node', a, a, (p) => a.mint({ peerId: p }));
  await pingpong('2nodes', a, b, (p) => a.mint({ peerId: p }));
} finally {
  await cl.stop();
}
