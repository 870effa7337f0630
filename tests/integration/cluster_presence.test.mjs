// cluster_presence.test.mjs: presence across rtmd nodes through a real
// redis-server (docs/CLUSTER.md, "Presence per peerId, cluster-wide"): a peer
// with connections on two nodes joins once and leaves once; hundreds of random
// joins and leaves over three nodes while newcomers subscribe leave every
// client's member list equal to the truth, with no member twice; a node killed
// with -9 makes its peers leave everywhere within the bound, except those that
// already reconnected elsewhere (no flicker), and one stopped with SIGTERM
// makes them leave during its drain; a Redis restart is rebuilt with
// only the real changes of the outage, local joins showing meanwhile; a stall
// changes nothing; a delta that skips a version is not applied; the keys go
// back to the baseline after everyone left.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startRtmd, sleep } from '../lib/rtmd.mjs';
import { startCluster, until } from '../lib/cluster.mjs';
import { frameChecker } from '../lib/schema.mjs';

const DEAD_MS = 3000;
let cl, redis, a, b, c;
const frames = frameChecker();
const tokens = new Map();

before(async () => {
  cl = await startCluster({ nodes: 3,
    config: { 'cluster-timeout-ms': 500, 'cluster-node-dead-ms': DEAD_MS, 'rate-connects-per-ip-per-minute': 0 },
    track: (d) => frames.track(d) });
  ({ redis, nodes: [a, b, c] } = cl);
});
after(async () => {
  if (cl) await cl.stop();
  assert.ok(frames.assertValid() > 0);
});

async function token(peerId, meta) {
  const k = `${peerId}/${JSON.stringify(meta || null)}`;
  if (!tokens.has(k)) tokens.set(k, (await a.mint({ peerId, ...(meta ? { peerMetadata: meta } : {}) })).token);
  return tokens.get(k);
}
async function member(node, peerId, channel, meta) {
  const x = await node.connect(await token(peerId, meta));
  if (channel) assert.equal((await x.request({ type: 'subscribe', channel })).type, 'ack');
  return x;
}
const ids = (list) => list.map((m) => m.peerId).sort();

// What a client saw of a channel: its snapshot, then every delta applied in
// order; a join of a member already listed or a leave of one not listed is an
// error (a doubled or lost delta).
function seen(x, channel) {
  const members = new Map();
  const errors = [];
  const changes = [];
  let snap = false;
  for (const f of x.all) {
    if (f.type !== 'presence' || f.channel !== channel) continue;
    if (!snap) {
      snap = true;
      for (const m of f.joined) {
        if (members.has(m.peerId)) errors.push(`snapshot lists ${m.peerId} twice`);
        members.set(m.peerId, m.metadata);
      }
      continue;
    }
    for (const m of f.left) {
      if (!members.delete(m.peerId)) errors.push(`left ${m.peerId} not listed`);
      changes.push(`-${m.peerId}`);
    }
    for (const m of f.joined) {
      if (members.has(m.peerId)) errors.push(`joined ${m.peerId} already listed`);
      members.set(m.peerId, m.metadata);
      changes.push(`+${m.peerId}`);
    }
  }
  return { snap, members, errors, changes, ids: [...members.keys()].sort() };
}

describe('one peer on two nodes', () => {
  test('joins once (with its metadata) and leaves once, after its last connection anywhere', async () => {
    const ch = 'two-room';
    const obs = await member(a, 'two-obs', ch);
    assert.deepEqual(await obs.next('presence', 5000), { type: 'presence', channel: ch, joined: [], left: [] });
    const pa = await member(a, 'two-p', ch, { n: 'P' });
    assert.deepEqual(await obs.next('presence', 5000),
      { type: 'presence', channel: ch, joined: [{ peerId: 'two-p', metadata: { n: 'P' } }], left: [] });
    assert.deepEqual(ids((await pa.next('presence', 5000)).joined), ['two-obs'], 'its snapshot, without itself');
    const pb = await member(b, 'two-p', ch, { n: 'P' });
    assert.deepEqual(ids((await pb.next('presence', 5000)).joined), ['two-obs']);
    // a newcomer on the third node lists both, once each
    const late = await member(c, 'two-late', ch);
    const byId = (x, y) => (x.peerId < y.peerId ? -1 : 1);
    assert.deepEqual((await late.next('presence', 5000)).joined.sort(byId),
      [{ peerId: 'two-obs' }, { peerId: 'two-p', metadata: { n: 'P' } }]);
    assert.deepEqual(ids((await obs.next('presence', 5000)).joined), ['two-late']);
    assert.ok(await obs.none('presence', 500), 'the second node of two-p is not a join');
    // the peer leaves one node: still present through the other
    await pa.close();
    assert.ok(await obs.none('presence', 700), 'two-p is still on the other node');
    assert.ok(await late.none('presence', 10));
    await pb.request({ type: 'unsubscribe', channel: ch });
    for (const x of [obs, late])
      assert.deepEqual(await x.next('presence', 5000), { type: 'presence', channel: ch, joined: [], left: [{ peerId: 'two-p' }] });
    assert.ok(await obs.none('presence', 500), 'left once');
    assert.ok(!pb.all.some((f) => f.type === 'presence' && [...f.joined, ...f.left].some((m) => m.peerId === 'two-p')),
      'a peer never hears about itself');
    for (const x of [obs, pb, late]) await x.close();
  });
});

describe('churn', () => {
  test('random joins and leaves on three nodes while newcomers subscribe: every list ends equal to the truth', async (t) => {
    const ch = 'churn-room';
    const nodes = [a, b, c];
    const POOL = 24, OPS = 600;
    const live = []; // { peerId, x }
    const observers = [];
    let seed = 0x2545f491; // a fixed seed (mulberry32): the same run every time
    const rnd = (n) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return (((t ^ (t >>> 14)) >>> 0) % n);
    };
    for (let i = 0; i < POOL; i++) await token(`ch-${i}`, { i }); // minted before the clock starts
    const t0 = Date.now();
    for (let op = 0; op < OPS; op += 6) {
      const batch = [];
      for (let k = 0; k < 6; k++) {
        const r = rnd(10);
        if (r < 5 || live.length === 0) {
          const peerId = `ch-${rnd(POOL)}`;
          batch.push(member(nodes[rnd(3)], peerId, ch, { i: Number(peerId.slice(3)) }).then((x) => live.push({ peerId, x })));
        } else if (r < 9) {
          const [gone] = live.splice(rnd(live.length), 1);
          batch.push(rnd(2) ? gone.x.close() : gone.x.request({ type: 'unsubscribe', channel: ch }).then(() => gone.x.close()));
        } else {
          const o = observers.length;
          batch.push(member(nodes[rnd(3)], `ch-obs-${o}`, ch).then((x) => observers.push({ peerId: `ch-obs-${o}`, x })));
        }
      }
      await Promise.all(batch);
    }
    const churnMs = Date.now() - t0;
    assert.ok(observers.length >= 5, `newcomers subscribed during the churn (${observers.length})`);
    const truth = [...new Set([...live.map((l) => l.peerId), ...observers.map((o) => o.peerId)])].sort();
    const everyone = [...live, ...observers];
    await until(async () => everyone.every(({ peerId, x }) => {
      const v = seen(x, ch);
      return v.snap && v.ids.join() === truth.filter((p) => p !== peerId).join();
    }), 10000, 'every member list to reach the truth');
    for (const { peerId, x } of everyone) {
      const v = seen(x, ch);
      assert.deepEqual(v.errors, [], `${peerId}: no member twice, no leave of a stranger`);
      assert.deepEqual(v.ids, truth.filter((p) => p !== peerId), peerId);
    }
    for (const { x } of everyone) await x.close();
    assert.ok(churnMs < 60000, `the churn took ${churnMs} ms`);
    t.diagnostic(`${OPS} operations in ${churnMs} ms; ${observers.length} newcomers, ${live.length} connections at the end`);
  });
});

describe('node death', () => {
  test('kill -9: its peers leave everywhere within the bound; peers already reconnected elsewhere never flicker', async () => {
    const ch = 'nd-room';
    const d = await startRtmd({ config: { cluster: redis.url, 'cluster-timeout-ms': 500, 'cluster-node-dead-ms': DEAD_MS },
      dir: a.dir, key: a.key, keepDir: true });
    try {
      const obs = await member(a, 'nd-obs', ch);
      const gone = await member(d, 'nd-gone', ch);
      const both = await member(d, 'nd-both', ch); // also on node b all along
      const bothB = await member(b, 'nd-both', ch);
      const moved = await member(d, 'nd-moved', ch); // reconnects to node b right after the kill
      await until(async () => seen(obs, ch).ids.join() === 'nd-both,nd-gone,nd-moved', 5000, 'everyone to be listed');
      const from = obs.all.length;
      await d.stop('SIGKILL');
      const t0 = Date.now();
      const moved2 = await member(b, 'nd-moved', ch);
      await until(async () => !seen(obs, ch).members.has('nd-gone'), DEAD_MS + 5000, 'the dead node\'s peer to leave');
      const took = Date.now() - t0;
      assert.ok(took >= DEAD_MS - 1000 && took <= DEAD_MS + 4000, `left after ${took} ms (dead after ${DEAD_MS} ms)`);
      await sleep(1500); // the rest of the reaping
      const after = obs.all.slice(from).filter((f) => f.type === 'presence');
      assert.deepEqual(after, [{ type: 'presence', channel: ch, joined: [], left: [{ peerId: 'nd-gone' }] }],
        'one leave, nothing of the peers that are elsewhere');
      assert.deepEqual(seen(obs, ch).errors, []);
      const late = await member(c, 'nd-late', ch);
      assert.deepEqual(ids((await late.next('presence', 5000)).joined), ['nd-both', 'nd-moved', 'nd-obs']);
      for (const x of [obs, bothB, moved2, late]) await x.close();
      void gone; void both; void moved;
    } finally {
      await d.cleanup();
    }
  });
});

describe('node stop', () => {
  test('SIGTERM: its peers leave everywhere during the drain, not after cluster-node-dead-ms', async (t) => {
    const ch = 'ns-room';
    const d = await startRtmd({ config: { cluster: redis.url, 'cluster-timeout-ms': 500, 'cluster-node-dead-ms': DEAD_MS },
      dir: a.dir, key: a.key, keepDir: true });
    try {
      const obs = await member(a, 'ns-obs', ch);
      const plain = await member(d, 'ns-plain', ch);
      const ext = await d.connect(await token('ns-ext'), '&ext=1'); // resumable: held, then ended by the stop
      assert.equal((await ext.request({ type: 'subscribe', channel: ch })).type, 'ack');
      await until(async () => seen(obs, ch).ids.join() === 'ns-ext,ns-plain', 5000, 'both listed');
      const t0 = Date.now();
      const stopped = d.stop();
      await until(async () => seen(obs, ch).ids.length === 0, DEAD_MS - 1000, 'both to leave before the reaping could');
      t.diagnostic(`left ${Date.now() - t0} ms after SIGTERM`);
      await stopped;
      assert.deepEqual(seen(obs, ch).errors, []);
      await obs.close();
      void plain;
    } finally {
      await d.cleanup();
    }
  });
});

// The value of one sample in a /metrics reply (labels included in the name).
async function metric(node, name) {
  const r = await node.api('GET', '/metrics', undefined, { auth: null });
  const line = r.text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ')[1]) : NaN;
}

describe('versions', () => {
  // A delta as the presence scripts write it (docs/CLUSTER.md, "Messages between nodes").
  const delta = (node, prev, ver, channel, peer, kind) => {
    const f = [node, `${prev} ${ver}`, 'test', channel, peer, '', kind];
    return `rtm1 e ${f.map((x) => Buffer.byteLength(x)).join(' ')}\n${f.join('')}`;
  };
  test('a delta that skips a version is not applied: the table is fetched again, clients see no ghost', async () => {
    const ch = 'gap-room';
    const obs = await member(a, 'gap-obs', ch);
    const m = await member(b, 'gap-m', ch);
    await until(async () => seen(obs, ch).ids.join() === 'gap-m', 5000, 'gap-m listed');
    const from = obs.all.length;
    const refetched = await metric(a, 'rtm_cluster_presence_repair_total{work="refetched"}');
    const v = Number((await redis.lines('HGET', `rtm:pr:4:test:${ch}`, '#v'))[0]);
    assert.ok(v > 1e15, `versions start at Redis's clock in us (${v})`);
    await redis.cli('PUBLISH', `rtm:c:4:test:${ch}`, delta('nowhere', v + 5, v + 6, ch, 'gap-ghost', 'j'));
    await until(async () => await metric(a, 'rtm_cluster_presence_repair_total{work="refetched"}') > refetched, 3000,
      'the gap to be noticed');
    // an old delta (at or below the table's version) is dropped without a fetch
    await redis.cli('PUBLISH', `rtm:c:4:test:${ch}`, delta('nowhere', v - 2, v - 1, ch, 'gap-old', 'j'));
    await sleep(300);
    assert.equal(await metric(a, 'rtm_cluster_presence_repair_total{work="refetched"}'), refetched + 1);
    assert.deepEqual(obs.all.slice(from).filter((f) => f.type === 'presence'), [], 'no ghost, no old peer');
    await m.close(); // real changes still flow, chained on the version
    await until(async () => seen(obs, ch).ids.length === 0, 5000, 'gap-m to leave');
    assert.deepEqual(obs.all.slice(from).filter((f) => f.type === 'presence'),
      [{ type: 'presence', channel: ch, joined: [], left: [{ peerId: 'gap-m' }] }]);
    await obs.close();
  });
});

describe('Redis restart and stall', () => {
  test('kill -9 and restart of Redis: presence is rebuilt, clients see only the outage\'s real changes', async () => {
    const ch = 'rr-room';
    const obsA = await member(a, 'rr-obs-a', ch);
    const obsB = await member(b, 'rr-obs-b', ch);
    const stay = [await member(a, 'rr-stay1', ch), await member(b, 'rr-stay2', ch), await member(c, 'rr-stay3', ch),
      await member(a, 'rr-two', ch), await member(c, 'rr-two', ch)];
    const leaver = await member(b, 'rr-leaver', ch);
    const all = ['rr-leaver', 'rr-obs-a', 'rr-obs-b', 'rr-stay1', 'rr-stay2', 'rr-stay3', 'rr-two'];
    await until(async () => seen(obsA, ch).ids.join() === all.filter((p) => p !== 'rr-obs-a').join() &&
      seen(obsB, ch).ids.join() === all.filter((p) => p !== 'rr-obs-b').join(), 5000, 'everyone listed');
    const rewritten = await metric(a, 'rtm_cluster_presence_repair_total{work="rewritten"}');
    const from = [obsA.all.length, obsB.all.length];
    await redis.kill9();
    await leaver.close(); // real changes during the outage: one leaves, one comes
    const comer = await member(c, 'rr-comer', ch);
    await sleep(300);
    await redis.start(); // empty
    const want = [...all.filter((p) => p !== 'rr-leaver'), 'rr-comer'].sort();
    for (const [x, self] of [[obsA, 'rr-obs-a'], [obsB, 'rr-obs-b']])
      await until(async () => seen(x, ch).ids.join() === want.filter((p) => p !== self).join(), 15000,
        `${self} to see the outage's changes`);
    await sleep(1500); // anything spurious would come by now
    for (const [i, x] of [obsA, obsB].entries()) {
      const changes = x.all.slice(from[i]).filter((f) => f.type === 'presence')
        .flatMap((f) => [...f.left.map((m) => `-${m.peerId}`), ...f.joined.map((m) => `+${m.peerId}`)]);
      assert.deepEqual(changes.sort(), ['+rr-comer', '-rr-leaver'], 'only the real changes');
      assert.deepEqual(seen(x, ch).errors, []);
    }
    assert.ok(await metric(a, 'rtm_cluster_presence_repair_total{work="rewritten"}') > rewritten,
      'the node wrote its entries again');
    assert.ok(await metric(a, 'rtm_cluster_presence_repair_total{work="refetched"}') > 0);
    const late = await member(b, 'rr-late', ch);
    assert.deepEqual(ids((await late.next('presence', 5000)).joined), want, 'a newcomer\'s snapshot after the rebuild');
    for (const x of [obsA, obsB, ...stay, comer, late]) await x.close();
  });

  test('a DEBUG SLEEP stall past the deadline and dead-after changes nobody\'s presence', async () => {
    const ch = 'st-room';
    const obs = await member(a, 'st-obs', ch);
    const others = [await member(b, 'st-1', ch), await member(c, 'st-2', ch), await member(b, 'st-3', ch)];
    await until(async () => seen(obs, ch).ids.join() === 'st-1,st-2,st-3', 5000, 'everyone listed');
    const from = obs.all.length;
    await redis.cli('DEBUG', 'SLEEP', String((DEAD_MS + 500) / 1000));
    await sleep(6000); // the links come back, the grace passes, a reaping would have run
    assert.deepEqual(obs.all.slice(from).filter((f) => f.type === 'presence'), [], 'no presence change at all');
    const late = await member(c, 'st-late', ch);
    assert.deepEqual(ids((await late.next('presence', 5000)).joined), ['st-1', 'st-2', 'st-3', 'st-obs']);
    for (const x of [obs, ...others, late]) await x.close();
  });
});

describe('Redis down', () => {
  test('a channel first used meanwhile gives this node\'s members at once; local joins show at once, the rest once Redis is back', async () => {
    const ch = 'dn-room', old = 'dn-old';
    const obsOld = await member(a, 'dn-obs-old', old); // a channel fetched before the outage
    const farOld = await member(b, 'dn-far-old', old);
    await until(async () => seen(obsOld, old).ids.join() === 'dn-far-old', 5000, 'listed before the outage');
    const before = seen(obsOld, old).changes.length;
    await redis.kill9();
    await sleep(200);
    const l1 = await member(a, 'dn-l1', ch);
    assert.deepEqual(await l1.next('presence', 3000), { type: 'presence', channel: ch, joined: [], left: [] });
    const l2 = await member(a, 'dn-l2', ch);
    assert.deepEqual(ids((await l2.next('presence', 3000)).joined), ['dn-l1'], 'this node\'s member, without Redis');
    await until(async () => seen(l1, ch).ids.join() === 'dn-l2', 3000, 'a local join shown at once');
    const r1 = await member(b, 'dn-r1', ch);
    const joinOld = await member(a, 'dn-new-old', old);
    await until(async () => seen(obsOld, old).ids.join() === 'dn-far-old,dn-new-old', 3000,
      'a local join in a fetched channel shown at once');
    await redis.start();
    await until(async () => seen(l1, ch).ids.join() === 'dn-l2,dn-r1' && seen(r1, ch).ids.join() === 'dn-l1,dn-l2' &&
      seen(farOld, old).ids.join() === 'dn-new-old,dn-obs-old', 15000, 'the other node\'s members once Redis is back');
    await sleep(1000);
    for (const [x, c] of [[l1, ch], [l2, ch], [r1, ch], [obsOld, old], [farOld, old]])
      assert.deepEqual(seen(x, c).errors, []);
    assert.deepEqual(seen(obsOld, old).changes.slice(before), ['+dn-new-old'], 'no leave or join again of what it knew');
    for (const x of [obsOld, farOld, l1, l2, r1, joinOld]) await x.close();
  });
});

describe('baseline', () => {
  test('after every peer left, only the node registry remains in Redis', async () => {
    await until(async () => (await redis.lines('KEYS', 'rtm:p*')).length === 0, 15000,
      'peer and presence records to go').catch(async (e) => {
      throw new Error(`${e.message}: ${(await redis.lines('KEYS', 'rtm:p*')).join(' ')}`);
    });
    await until(async () => (await redis.lines('KEYS', '*')).length === 2, 5000, 'the app counts and indexes to go');
    assert.deepEqual((await redis.lines('KEYS', '*')).sort(), ['rtm:nodes', 'rtm:nodes:run']);
  });
});
