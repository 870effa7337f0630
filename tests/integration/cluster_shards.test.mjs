// cluster_shards.test.mjs: two rtmd nodes over two standalone Redis shards
// (docs/CLUSTER.md, "Sharding"): every node puts a channel on the same shard
// by a stable hash, the channels spread over both, publishes cross nodes on
// either shard, and one shard's crash stops only its own channels (their
// publishers get cluster_unavailable) until it is back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, until } from '../lib/cluster.mjs';
import { frameChecker } from '../lib/schema.mjs';
import { RTMD } from '../lib/rtmd.mjs';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let cl, a, b;
const frames = frameChecker();
before(async () => {
  cl = await startCluster({ nodes: 2, shards: 2, config: { 'cluster-timeout-ms': 500 }, track: (d) => frames.track(d) });
  [a, b] = cl.nodes;
});
after(async () => {
  if (cl) await cl.stop();
  assert.ok(frames.assertValid() > 0);
});

const CHANNELS = Array.from({ length: 12 }, (_, i) => `shard-${i}`);
const redisName = (ch) => `rtm:c:${a.app.length}:${a.app}:${ch}`;
async function numsub(r, ch) { return Number((await r.lines('PUBSUB', 'NUMSUB', redisName(ch)))[1]); }

test('channels spread over both shards, each on one shard for every node; a shard crash stops only its channels', async () => {
  const { token: ta } = await a.mint({ peerId: 'sh-a' });
  const { token: tb } = await a.mint({ peerId: 'sh-b' });
  const pa = await a.connect(ta);
  const sb = await b.connect(tb);
  for (const ch of CHANNELS) assert.equal((await sb.request({ type: 'subscribe', channel: ch })).type, 'ack');
  for (const ch of CHANNELS) assert.equal((await pa.request({ type: 'subscribe', channel: ch })).type, 'ack');
  const home = {};
  for (const ch of CHANNELS) {
    const n = await Promise.all(cl.shards.map((r) => numsub(r, ch)));
    assert.ok((n[0] === 2 && n[1] === 0) || (n[0] === 0 && n[1] === 2), `${ch} lives on one shard, for both nodes: ${n}`);
    home[ch] = n[0] === 2 ? 0 : 1;
  }
  const on = (s) => CHANNELS.filter((ch) => home[ch] === s);
  assert.ok(on(0).length > 0 && on(1).length > 0, 'both shards carry channels');
  for (const ch of CHANNELS) {
    assert.equal((await pa.request({ type: 'publish', channel: ch, data: ch })).type, 'ack');
    assert.equal((await sb.next((f) => f.type === 'message' && f.channel === ch, 5000)).data, ch);
  }

  await cl.shards[1].kill9();
  for (const ch of on(1)) {
    const r = await pa.request({ type: 'publish', channel: ch, data: 'x' }, 5000);
    assert.deepEqual([r.type, r.code], ['error', 'cluster_unavailable'], ch);
  }
  for (const ch of on(0)) {
    assert.equal((await pa.request({ type: 'publish', channel: ch, data: 'still' })).type, 'ack', ch);
    assert.equal((await sb.next((f) => f.type === 'message' && f.channel === ch, 5000)).data, 'still');
  }
  const h = await b.api('GET', '/healthz', undefined, { auth: null });
  assert.deepEqual([h.json.status, h.json.cluster], ['degraded', { state: 'degraded', shards: 2, shardsUp: 1 }]);

  await cl.shards[1].start();
  await until(async () => (await Promise.all(on(1).map((ch) => numsub(cl.shards[1], ch)))).every((n) => n === 2),
    10000, 'the restarted shard to get its subscriptions back');
  for (const ch of on(1)) {
    let r;
    await until(async () => (r = await pa.request({ type: 'publish', channel: ch, data: 'back' })).type === 'ack', 5000, ch);
    assert.equal((await sb.next((f) => f.type === 'message' && f.channel === ch && f.data === 'back', 5000)).from, 'sh-a');
  }
  await pa.close();
  await sb.close();
});

test('a Redis URL with a password is refused at start without echoing it (AUTH is not supported: docs/KNOWN-GAPS.md)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rtm-clu-url-'));
  try {
    for (const url of ['redis://:pw-not-to-echo@127.0.0.1:6390', 'redis://default:pw-not-to-echo@127.0.0.1:6390']) {
      const r = spawnSync(RTMD, ['--cluster', url, '--db', join(dir, 'rtm.db')],
        { encoding: 'utf8', env: { ...process.env, RTM_TURN_SECRETS: 'turn-secret-1' }, timeout: 10000 });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /Redis URL 1 has a user or password .*AUTH is not supported/);
      assert.ok(!r.stderr.includes('pw-not-to-echo') && !r.stdout.includes('pw-not-to-echo'), 'the password is not logged');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
