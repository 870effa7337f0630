// store_faults.test.mjs: a store that stops answering costs the broker only
// fresh rows (issue 12 item 2, docs/ARCHITECTURE.md). Another process holds
// sqlite's write lock (python3's sqlite3, BEGIN IMMEDIATE) for several
// seconds: live sessions keep working, a new token (from a cached key)
// still connects, /healthz says the store is degraded and why, and once the
// lock is released the session rows that waited are written and /healthz
// is ok again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startRtmd } from '../lib/rtmd.mjs';
import { until } from './broker_util.mjs';

let d;
before(async () => { d = await startRtmd({ config: { 'node-id': 'faults' } }); });
after(async () => { await d?.cleanup(); });

// Holds the write lock until killed; resolves once it holds it.
function holdWriteLock(db) {
  const py = spawn('python3', ['-c', `
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
c.execute('BEGIN IMMEDIATE')
print('locked', flush=True)
time.sleep(60)
`, db], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    py.stdout.once('data', () => resolve(py));
    py.once('exit', (code) => reject(new Error(`lock holder exited ${code}`)));
  });
}

test('a locked store: sessions keep working, new tokens connect, /healthz degraded, rows written after', async () => {
  const a = await d.connect((await d.mint({ peerId: 'fault-a' })).token);
  const holder = await holdWriteLock(d.db);
  let released = false;
  try {
    // Minting reads keys (the view; the store's change counter is a read WAL allows).
    const { token } = await d.mint({ peerId: 'fault-b' });
    const b = await d.connect(token);
    assert.equal(b.welcome.peerId, 'fault-b');
    assert.equal((await a.request({ type: 'subscribe', channel: 'faults' })).type, 'ack');
    assert.equal((await b.request({ type: 'publish', channel: 'faults', data: { n: 1 } })).type, 'ack');
    assert.deepEqual((await a.next('message')).data, { n: 1 });
    // The writer's next batch waits out the busy timeout (2 s) and fails.
    const h = await until(async () => {
      const r = await d.api('GET', '/healthz', undefined, { auth: null });
      return r.json.status === 'degraded' ? r : null;
    }, { timeoutMs: 8000, stepMs: 100 });
    assert.ok(h, '/healthz turned degraded');
    assert.equal(h.status, 200);
    assert.equal(h.json.store, 'degraded');
    assert.match(h.json.storeError, /cannot write to the store/);
    b.send({ type: 'ping' });
    await b.next('pong'); // still served meanwhile
    holder.kill('SIGKILL');
    released = true;
    const ok = await until(async () => (await d.api('GET', '/healthz', undefined, { auth: null })).json.status === 'ok',
      { timeoutMs: 8000, stepMs: 100 });
    assert.ok(ok, '/healthz ok again once the lock is gone');
    const rows = await until(async () => {
      const s = (await d.api('GET', '/v1/sessions?peerId=fault-b')).json.sessions;
      return s.length === 1 ? s : null;
    });
    assert.ok(rows, 'the row that waited in memory was written');
    await b.close();
    await a.close();
  } finally {
    if (!released) holder.kill('SIGKILL');
  }
});
