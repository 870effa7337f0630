// broker_sessions.test.mjs: one store row per connection, written in
// batches off the message path, readable through GET /v1/sessions and in the
// database itself (also run on Postgres: RTM_TEST_DB=postgres, tests/run.sh).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRtmd } from '../lib/rtmd.mjs';
import { frameChecker } from '../lib/schema.mjs';
import { claimsOf, until } from './broker_util.mjs';

let d;
const frames = frameChecker();
before(async () => { d = frames.track(await startRtmd({ config: { 'rate-connects-per-ip-per-minute': 0 } })); });
after(async () => {
  try { frames.assertValid(); } finally { await d.cleanup(); }
});

async function rowsFor(peerId, want) {
  return until(async () => {
    const r = await d.api('GET', `/v1/sessions?peerId=${encodeURIComponent(peerId)}`);
    assert.equal(r.status, 200, r.text);
    const rows = r.json.sessions;
    return want(rows) ? rows : null;
  }, { timeoutMs: 4000 });
}

test('a clean close leaves a complete row', async () => {
  const t0 = Date.now();
  const { token } = await d.mint({ peerId: 'sess-a' });
  const c = await d.open(`?token=${encodeURIComponent(token)}`, {
    headers: { origin: 'http://app.example:8080', 'user-agent': 'rtm-test/1.0 (sessions)' },
  });
  await c.next('welcome');
  await c.request({ type: 'subscribe', channel: 'sess-room' });
  await c.request({ type: 'ping' });
  // an open row exists before the close
  const open = await rowsFor('sess-a', (rows) => rows.length === 1);
  assert.ok(open, 'the row is written while the session is open');
  assert.ok(!open[0].closedAt && !open[0].closeCode, `open row: ${JSON.stringify(open[0])}`);
  await c.close(1000);
  const rows = await rowsFor('sess-a', (r) => r.length === 1 && r[0].closeCode);
  assert.ok(rows, 'closed row written within the flush interval');
  const s = rows[0];
  assert.match(s.id, /^ses_[0-9a-f]{24}$/);
  assert.equal(s.app, d.app);
  assert.equal(s.peerId, 'sess-a');
  assert.equal(s.jti, claimsOf(token).jti);
  assert.equal(s.remoteAddr, '127.0.0.1');
  assert.equal(s.origin, 'http://app.example:8080');
  assert.equal(s.userAgent, 'rtm-test/1.0 (sessions)');
  assert.ok(s.connectedAt >= t0 - 1000 && s.connectedAt <= Date.now());
  assert.ok(s.closedAt >= s.connectedAt && s.closedAt <= Date.now());
  assert.equal(s.closeCode, 1000);
  assert.equal(typeof s.closeReason, 'string');
  assert.equal(s.framesIn, 2, 'subscribe and ping');
  assert.equal(s.framesOut, c.all.length, 'every frame the client received');
  assert.ok(s.bytesIn > 0 && s.bytesOut > 0);
  const received = c.all.reduce((n, f) => n + Buffer.byteLength(JSON.stringify(f)), 0);
  assert.ok(Math.abs(s.bytesOut - received) <= c.all.length * 2, `bytesOut ${s.bytesOut} vs ${received}`);
});

test('one row per connection, with the close code the broker sent', async () => {
  const { token } = await d.mint({ peerId: 'sess-b' });
  const c1 = await d.connect(token);
  const c2 = await d.connect(token);
  c1.ws.send(Buffer.from([1]), { binary: true }); // closed by the broker with 1003
  assert.equal((await c1.closed).code, 1003);
  // the client's own reason is kept for its row, cut at a close frame's 123 bytes
  await c2.close(4999, 'gone home: ' + 'é'.repeat(56));
  const rows = await rowsFor('sess-b', (r) => r.length === 2 && r.every((x) => x.closeCode));
  assert.ok(rows);
  assert.deepEqual(rows.map((r) => r.closeCode).sort(), [1003, 4999]);
  assert.notEqual(rows[0].id, rows[1].id);
  const b = rows.find((r) => r.closeCode === 1003);
  assert.equal(b.closeReason, 'binary frames are not supported');
  assert.equal(rows.find((r) => r.closeCode === 4999).closeReason, 'gone home: ' + 'é'.repeat(56));
  // a refused connection keeps no row
  await d.open('?token=garbage').then((c) => c.closed);
});

test('rows are in the store itself (the sqlite file, or the Postgres database)', async () => {
  const { token } = await d.mint({ peerId: 'sess-c' });
  const c = await d.connect(token);
  await c.close();
  await rowsFor('sess-c', (r) => r.length === 1 && r[0].closeCode);
  const rows = d.sqlJson("SELECT * FROM sessions WHERE peer_id = 'sess-c'");
  assert.equal(rows.length, 1);
  assert.ok(Object.values(rows[0]).includes(1000), JSON.stringify(rows[0]));
});
