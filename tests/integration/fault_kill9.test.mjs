// fault_kill9.test.mjs: rtmd killed with SIGKILL under load (200 sessions
// publishing, revocations being made): after the restart every revocation
// that was acknowledged (201) is in force, tokens nobody revoked still
// connect, and the sqlite file passes PRAGMA integrity_check.
// Bounded: about 15 s of work, 120 s at most.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startRtmd, sleep } from '../lib/rtmd.mjs';
import { claimsOf } from './broker_util.mjs';

const SESSIONS = 200;
const CHANNELS = 50;      // 4 subscribers per channel
const REVOKED = 150;      // sessions 0..149 get revoked (even: by jti, odd: by peerId)
const PUBLISH_MS = 200;   // each session publishes every 200 ms: 1,000 publishes/s in all

async function inBatches(items, n, fn) {
  const out = [];
  for (let i = 0; i < items.length; i += n) out.push(...(await Promise.all(items.slice(i, i + n).map(fn))));
  return out;
}

test('kill -9 under load: acknowledged revocations survive, integrity_check ok', { timeout: 120000 }, async (t) => {
  const d = await startRtmd({ config: { 'rate-frames-per-second': 1000, 'rate-frames-burst': 1000 } });
  const clients = [];
  let publishing = null;
  try {
    const peers = Array.from({ length: SESSIONS }, (_, i) => `p${i}`);
    const tokens = await inBatches(peers, 20, async (p) => (await d.mint({ peerId: p })).token);
    const cs = await inBatches(tokens, 25, (t) => d.connect(t));
    clients.push(...cs);
    await inBatches(cs, 25, (c, i) => c.request({ type: 'subscribe', channel: `room-${clients.indexOf(c) % CHANNELS}` }));
    let sent = 0;
    publishing = setInterval(() => {
      for (let i = 0; i < cs.length; i++) {
        if (cs[i].closeInfo) continue;
        cs[i].send({ type: 'publish', channel: `room-${i % CHANNELS}`, data: { n: sent++, pad: 'x'.repeat(64) } });
      }
    }, PUBLISH_MS);
    // Load established: 1,500 publishes out before the first revocation.
    for (const t0 = Date.now(); sent < 1500 && Date.now() - t0 < 20000;) await sleep(20);

    // Revocations, four at a time, until the kill cuts them off.
    const acked = [];
    let next = 0, killed = false;
    const revoker = async () => {
      while (!killed && next < REVOKED) {
        const i = next++;
        const body = i % 2 === 0 ? { jti: claimsOf(tokens[i]).jti } : { peerId: peers[i] };
        try {
          const r = await d.api('POST', '/v1/revocations', body);
          if (r.status === 201) acked.push(i); // even one read after the kill was written before it
        } catch { /* the connection died with the daemon: not acknowledged */ }
      }
    };
    const revokers = [revoker(), revoker(), revoker(), revoker()];
    const t0 = Date.now();
    while (acked.length < REVOKED / 2 && Date.now() - t0 < 20000) await sleep(5);
    d.proc.kill('SIGKILL');
    const exit = await d.exited;
    killed = true;
    await Promise.all(revokers);
    clearInterval(publishing);
    publishing = null;
    assert.equal(exit.signal, 'SIGKILL');
    assert.ok(sent >= 1500, `load before the kill: ${sent} publishes`);
    assert.ok(acked.length >= 20, `acknowledged revocations before the kill: ${acked.length}`);
    await Promise.all(clients.map((c) => c.terminate()));
    t.diagnostic(`${sent} publishes, ${acked.length} revocations acknowledged before the kill`);

    if (!d.db.startsWith('postgres')) {
      assert.deepEqual(d.sqlJson('PRAGMA integrity_check'), [{ integrity_check: 'ok' }]);
    }

    await d.start();
    const refused = await inBatches(acked, 25, async (i) => {
      const c = await d.open(`?token=${encodeURIComponent(tokens[i])}`);
      const info = await Promise.race([c.closed, sleep(5000).then(() => ({ code: 'timeout' }))]);
      c.terminate();
      return { i, ...info, welcomed: c.all.some((f) => f.type === 'welcome') };
    });
    for (const r of refused) {
      assert.equal(r.welcomed, false, `revocation of session ${r.i} acknowledged before the kill, not in force`);
      assert.equal(r.code, 4001, `session ${r.i}: ${r.code} ${r.reason}`);
    }
    // Never revoked: still welcome (the restart did not refuse everything).
    for (const i of [REVOKED, SESSIONS - 1]) {
      const c = await d.connect(tokens[i]);
      assert.equal(c.welcome.peerId, peers[i]);
      await c.close();
    }
  } finally {
    if (publishing) clearInterval(publishing);
    await Promise.all(clients.map((c) => c.terminate()));
    await d.cleanup();
  }
});
