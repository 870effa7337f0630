// cluster_rest.test.mjs: the backend API's results are the cluster's
// (docs/CLUSTER.md "Kick, revocation, server publish, /v1/peers on every
// node"): three nodes named by their node-id setting, one Redis, one store.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, until } from '../lib/cluster.mjs';
import { frameChecker } from '../lib/schema.mjs';
import { spawnSync } from 'node:child_process';
import { rtmJson, sleep, RTM } from '../lib/rtmd.mjs';
import { signToken } from './broker_util.mjs';

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
async function subscribed(node, peerId, channel) {
  const c = await peer(node, peerId);
  assert.equal((await c.request({ type: 'subscribe', channel })).type, 'ack');
  return c;
}
async function closedWithin(c, ms) {
  const t0 = Date.now();
  const info = await Promise.race([c.closed, new Promise((r) => setTimeout(() => r(null), ms))]);
  return info && { ...info, ms: Date.now() - t0 };
}
const byId = (peers) => Object.fromEntries(peers.map((p) => [p.peerId, p]));

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

test('a kick through one node counts the sessions it closed on every node, each closed with 4020 within a second', async () => {
  const sessions = [await peer(a, 'kc-bob'), await peer(b, 'kc-bob'), await peer(b, 'kc-bob'), await peer(c, 'kc-bob')];
  const other = await peer(b, 'kc-carol');
  const t0 = Date.now();
  const r = await c.api('DELETE', '/v1/peers/kc-bob');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { peerId: 'kc-bob', closed: 4 }, 'every node answered: the exact count, no partial flag');
  assert.ok(Date.now() - t0 < 1000, `answered after ${Date.now() - t0} ms`);
  for (const s of sessions) {
    const info = await closedWithin(s, 1000);
    assert.ok(info, 'closed within a second');
    assert.equal(info.code, 4020);
  }
  assert.equal(other.closeInfo, null, 'another peer stays');
  // nobody left: 0 from every node, still exact
  assert.deepEqual((await a.api('DELETE', '/v1/peers?peerId=kc-bob')).json, { peerId: 'kc-bob', closed: 0 });
  await other.close();
});

test('a revocation through one node counts the sessions it closed on every node, each closed with 4001 within a second', async () => {
  const sessions = [await peer(a, 'rc-dan'), await peer(b, 'rc-dan'), await peer(c, 'rc-dan'), await peer(c, 'rc-dan')];
  const bystander = await peer(c, 'rc-eve');
  const r = await b.api('POST', '/v1/revocations', { peerId: 'rc-dan' });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.closed, 4, r.text);
  assert.equal(r.json.partial, undefined);
  for (const s of sessions) {
    const info = await closedWithin(s, 1000);
    assert.ok(info, 'closed within a second');
    assert.equal(info.code, 4001);
  }
  // one token on two nodes, revoked by its jti through a third
  const { token } = await a.mint({ peerId: 'rc-fay' });
  const both = [await a.connect(token), await b.connect(token)];
  const jti = JSON.parse(Buffer.from(token.split('.')[1], 'base64url')).jti;
  const rj = await c.api('POST', '/v1/revocations', { jti });
  assert.equal(rj.status, 201, rj.text);
  assert.equal(rj.json.closed, 2, rj.text);
  for (const s of both) assert.equal((await closedWithin(s, 1000))?.code, 4001);
  // nothing left to close: 0, from every node
  assert.equal((await a.api('POST', '/v1/revocations', { peerId: 'rc-dan' })).json.closed, 0);
  assert.equal(bystander.closeInfo, null);
  await bystander.close();
});

test('a revocation the other nodes\' store views applied before its question came is still counted, once', async () => {
  const sessions = [await peer(a, 'rp-gus'), await peer(b, 'rp-gus')];
  // Redis stalls 400 ms: the question waits behind it while every node's view
  // (store-poll-ms 100) reads the new row from the shared store and closes its sessions
  const stall = cl.redis.cli('DEBUG', 'SLEEP', '0.4');
  await sleep(50);
  const r = await c.api('POST', '/v1/revocations', { peerId: 'rp-gus' });
  await stall;
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.closed, 2, r.text);
  assert.equal(r.json.partial, undefined);
  for (const s of sessions) assert.equal((await closedWithin(s, 1000))?.code, 4001);
  // the same revocation again (the same second): nothing more to count
  const again = await c.api('POST', '/v1/revocations', { peerId: 'rp-gus' });
  assert.equal(again.json.closed, 0, again.text);
});

test('GET /v1/peers lists the peers of every node, each once (a peer on two nodes: channels joined, connections summed)', async () => {
  const two1 = await subscribed(a, 'pl-two', 'pl-room');
  const two2 = await peer(c, 'pl-two');
  assert.equal((await two2.request({ type: 'subscribe', channel: 'pl-side' })).type, 'ack');
  const one = await subscribed(b, 'pl-one', 'pl-room');
  const lone = await peer(c, 'pl-lone');
  for (const node of [a, b, c]) {
    const r = await node.api('GET', '/v1/peers');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.partial, undefined);
    const ids = r.json.peers.map((p) => p.peerId).filter((id) => id.startsWith('pl-')).sort();
    assert.deepEqual(ids, ['pl-lone', 'pl-one', 'pl-two'], 'each peer once, from any node');
    const p = byId(r.json.peers);
    assert.equal(p['pl-two'].connections, 2);
    assert.deepEqual([...p['pl-two'].channels].sort(), ['pl-room', 'pl-side']);
    assert.equal(p['pl-one'].connections, 1);
    assert.deepEqual(p['pl-lone'].channels, []);
  }
  const room = await b.api('GET', '/v1/peers?channel=pl-room');
  assert.deepEqual(room.json.peers.map((p) => p.peerId).sort(), ['pl-one', 'pl-two']);
  const side = await b.api('GET', '/v1/peers?channel=pl-side');
  assert.deepEqual(side.json.peers.map((p) => p.peerId), ['pl-two']);
  for (const x of [two1, two2, one, lone]) await x.close();
});

test('a server publish reports the recipients of every node, each of which got it', async () => {
  const subs = [await subscribed(a, 'sp-1', 'sp-room'), await subscribed(b, 'sp-2', 'sp-room'),
    await subscribed(b, 'sp-3', 'sp-room')];
  // through a node that has no subscriber of its own
  const r = await c.api('POST', '/v1/publish', { channel: 'sp-room', data: { n: 1 } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { channel: 'sp-room', recipients: 3 });
  for (const s of subs) {
    const m = await s.next('message', 2000);
    assert.equal(m.from, '_server');
    assert.deepEqual(m.data, { n: 1 });
  }
  const r2 = await a.api('POST', '/v1/publish', { channel: 'sp-room', data: 2 });
  assert.deepEqual(r2.json, { channel: 'sp-room', recipients: 3 });
  for (const s of subs) assert.equal((await s.next('message', 2000)).data, 2);
  assert.deepEqual((await b.api('POST', '/v1/publish', { channel: 'sp-nobody', data: 0 })).json,
    { channel: 'sp-nobody', recipients: 0 });
  for (const s of subs) await s.close();
});

test('a revoked key closes its live sessions on every node with 4012 within a second', async () => {
  // `rtm key revoke` is another process writing the store the nodes share: each node's
  // view sees it (store-poll-ms) and closes that key's sessions itself.
  const k = rtmJson(['key', 'create', '--db', a.db, '--app', a.app]);
  const onKey = [];
  for (const node of [a, b, c]) onKey.push(await node.connect(signToken(k, { sub: `kr-${node.backendPort}` })));
  const bystander = await peer(b, 'kr-other');
  const t0 = Date.now();
  rtmJson(['key', 'revoke', '--db', a.db, k.id]);
  for (const s of onKey) {
    const info = await s.closed;
    assert.deepEqual(info, { code: 4012, reason: 'key revoked' });
  }
  assert.ok(Date.now() - t0 < 1000, `all closed after ${Date.now() - t0} ms`);
  assert.equal(bystander.closeInfo, null);
  await bystander.close();
});

test('a node that does not answer (stopped) gives a bounded, partial reply; it counts again once it runs', async () => {
  const onA = await peer(a, 'st-bob');
  const onC = await subscribed(c, 'st-bob', 'st-room');
  const subA = await subscribed(a, 'st-sub', 'st-room');
  process.kill(c.pid, 'SIGSTOP');
  let resumed = false;
  try {
    let t0 = Date.now();
    const list = await b.api('GET', '/v1/peers');
    let took = Date.now() - t0;
    assert.equal(list.status, 200, list.text);
    assert.equal(list.json.partial, true, 'the stopped node is reported missing');
    assert.ok(took >= 400 && took < 1500, `answered after ${took} ms (cluster-timeout-ms 500)`);
    const ids = list.json.peers.map((p) => p.peerId);
    assert.ok(ids.includes('st-bob') && ids.includes('st-sub'), 'the answering nodes\' peers are listed');
    assert.equal(byId(list.json.peers)['st-bob'].connections, 1, 'only the answering nodes\' connections');

    t0 = Date.now();
    const pub = await b.api('POST', '/v1/publish', { channel: 'st-room', data: 'x' });
    took = Date.now() - t0;
    assert.equal(pub.status, 200, pub.text);
    assert.deepEqual(pub.json, { channel: 'st-room', recipients: 1, partial: true });
    assert.ok(took < 1500, `answered after ${took} ms`);
    assert.equal((await subA.next('message', 2000)).data, 'x');

    t0 = Date.now();
    const kick = await a.api('DELETE', '/v1/peers/st-bob');
    took = Date.now() - t0;
    assert.deepEqual(kick.json, { peerId: 'st-bob', closed: 1, partial: true });
    assert.ok(took < 1500, `answered after ${took} ms`);
    assert.equal((await closedWithin(onA, 1000)).code, 4020);

    const onCrev = await subscribed(b, 'st-rev', 'st-x');
    t0 = Date.now();
    const rev = await a.api('POST', '/v1/revocations', { peerId: 'st-rev' });
    took = Date.now() - t0;
    assert.equal(rev.status, 201, rev.text);
    assert.equal(rev.json.closed, 1);
    assert.equal(rev.json.partial, true);
    assert.ok(took < 1500, `answered after ${took} ms`);
    assert.equal((await closedWithin(onCrev, 1000))?.code, 4001);

    // `rtm kick` of a peer nobody answered for: exit 1, saying the answer was partial
    const tool = spawnSync(RTM, ['kick', 'st-nobody', '--backend', a.backendUrl],
      { encoding: 'utf8', env: { ...process.env, RTM_KEY: a.key.secret } });
    assert.equal(tool.status, 1, tool.stderr);
    assert.deepEqual(JSON.parse(tool.stdout), { peerId: 'st-nobody', closed: 0, partial: true });
    assert.match(tool.stderr, /not online on the nodes that answered/);

    // every one of those came back incomplete, in the asking nodes' metrics
    const incomplete = async (node) => {
      const line = (await node.api('GET', '/metrics', undefined, { auth: null })).text.split('\n')
        .find((l) => l.startsWith('rtm_cluster_questions_total{result="incomplete"}'));
      return Number(line?.split(' ')[1]);
    };
    assert.equal(await incomplete(a), 3, 'the kicks and the revocation asked through node a');
    assert.equal(await incomplete(b), 2, 'the listing and the publish asked through node b');

    process.kill(c.pid, 'SIGCONT');
    resumed = true;
    // The stopped node may read the kick that waited for it in Redis, or restart its
    // link first (its probes are late) and never see it: the reply said partial.
    await until(async () => {
      const r = await a.api('GET', '/v1/peers');
      return r.json.partial === undefined;
    }, 10000, 'every node answering again');
    // (the late kick may land on node c while this one is on its way: 1 or 0)
    const kick2 = await a.api('DELETE', '/v1/peers/st-bob');
    assert.equal(kick2.status, 200, kick2.text);
    assert.equal(kick2.json.partial, undefined, 'whole again: no partial flag');
    assert.ok(kick2.json.closed === 0 || kick2.json.closed === 1, kick2.text);
    assert.equal((await closedWithin(onC, 1000))?.code, 4020);
    const again = await c.api('POST', '/v1/publish', { channel: 'st-room', data: 'y' });
    assert.deepEqual(again.json, { channel: 'st-room', recipients: 1 });
  } finally {
    if (!resumed) process.kill(c.pid, 'SIGCONT');
  }
  await subA.close();
});

test('a node killed with -9: replies within its last heartbeats say partial (bounded), then whole without waiting for it', async () => {
  const onA = await peer(a, 'kd-bob');
  await c.stop('SIGKILL');
  let t0 = Date.now();
  const r = await a.api('DELETE', '/v1/peers/kd-bob');
  assert.deepEqual(r.json, { peerId: 'kd-bob', closed: 1, partial: true }, 'its heartbeat is recent: reported missing');
  assert.ok(Date.now() - t0 < 1500, `answered after ${Date.now() - t0} ms`);
  assert.equal((await closedWithin(onA, 1000))?.code, 4020);
  await until(async () => (await b.api('GET', '/v1/peers')).json.partial === undefined, 8000,
    'whole again once its heartbeat is old');
  t0 = Date.now();
  const list = await b.api('GET', '/v1/peers');
  const took = Date.now() - t0;
  assert.equal(list.json.partial, undefined);
  assert.ok(took < 450, `not waiting for the dead node (cluster-timeout-ms 500): ${took} ms`);
});

test('on a Postgres store shared by two nodes, a revoked key closes its sessions on both with 4012 within a second', async () => {
  const pcl = await startCluster({ nodes: 2, postgres: true, config: { 'cluster-timeout-ms': 500 } });
  try {
    const [p, q] = pcl.nodes;
    assert.ok(p.db.startsWith('postgresql://') && q.db === p.db, 'one Postgres database');
    const k = rtmJson(['key', 'create', '--db', p.db, '--app', p.app]);
    const onKey = [await p.connect(signToken(k, { sub: 'pg-kr-1' })), await q.connect(signToken(k, { sub: 'pg-kr-2' }))];
    const t0 = Date.now();
    rtmJson(['key', 'revoke', '--db', p.db, k.id]);
    for (const s of onKey) assert.deepEqual(await s.closed, { code: 4012, reason: 'key revoked' });
    assert.ok(Date.now() - t0 < 1000, `both closed after ${Date.now() - t0} ms`);
  } finally {
    await pcl.stop();
  }
});

test('a node told to stop while its request waits on a stopped node exits cleanly; a client that gives up waiting costs nothing', async () => {
  const two = await startCluster({ nodes: 2, config: { 'cluster-timeout-ms': 2000 }, nodeConfig: (i) => ({ 'node-id': `stop-n${i}` }) });
  const [p, q] = two.nodes;
  let resumed = false;
  try {
    await until(async () => (await two.redis.lines('ZRANGE', 'rtm:nodes', '0', '-1')).length === 2, 5000, 'two nodes');
    process.kill(q.pid, 'SIGSTOP');
    // a client that gives up before the deadline: its reply is dropped when it comes
    const ac = new AbortController();
    const gaveUp = fetch(`${p.backendUrl}/v1/peers`, { headers: { authorization: `Bearer ${p.key.secret}` }, signal: ac.signal })
      .then(() => 'answered', (e) => e.name);
    setTimeout(() => ac.abort(), 200);
    assert.equal(await gaveUp, 'AbortError');
    // a request still waiting when the node is told to stop
    const waiting = fetch(`${p.backendUrl}/v1/peers`, { headers: { authorization: `Bearer ${p.key.secret}` } })
      .then(async (r) => ({ status: r.status, body: await r.json() }), (e) => ({ error: e.message }));
    await sleep(300);
    const t0 = Date.now();
    const exit = await p.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, p.log.slice(-2000));
    assert.ok(Date.now() - t0 < 5000);
    const w = await waiting;
    // answered partial at shutdown, or the connection closed under it: never a hang
    if (w.status) assert.deepEqual([w.status, w.body.partial], [200, true]);
    process.kill(q.pid, 'SIGCONT');
    resumed = true;
  } finally {
    if (!resumed) process.kill(q.pid, 'SIGCONT');
    await two.stop();
  }
});
