// growth_bounds.test.mjs: issue 11 defect 9, against a real rtmd.
// - Session rows are pruned in the background: closed rows of sessions that
//   connected more than session-retention-days ago go (in bounded batches),
//   recent rows and open sessions stay.
// - Presence snapshots are bounded per connection: a client re-subscribing
//   in a loop to a large channel gets its snapshots at the rate of
//   presence-snapshot-members-per-second (requests coalesce), the last one
//   complete, while another subscriber's snapshot is not delayed.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startRtmd, sleep } from '../lib/rtmd.mjs';
import { until } from './broker_util.mjs';

const SLOW = process.env.RTM_VALGRIND ? 4 : 1;
const daemons = [];
after(async () => {
  for (const d of daemons) await d.cleanup();
  for (const d of daemons) assert.doesNotMatch(d.log, /ERROR: (Address|Leak)Sanitizer|runtime error:/);
});

test('closed session rows older than session-retention-days are pruned in the background', async (t) => {
  const d = await startRtmd({ config: { 'session-retention-days': 7 } });
  daemons.push(d);
  if (d.db.startsWith('postgres')) { t.skip('fills the table with the sqlite3 shell'); return; }
  await d.stop();
  const day = 86400 * 1000, now = Date.now();
  const old = now - 8 * day, recent = now - 6 * day;
  // 3,000 old closed rows (twelve pruning batches), a few recent ones.
  const sql = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
    INSERT INTO sessions (id, app, peer_id, jti, remote_addr, connected_ms, closed_ms, close_code, close_reason,
      frames_in, frames_out, bytes_in, bytes_out)
    SELECT 'ses_old' || i, '${d.app}', 'old-peer', 'j', '127.0.0.1', ${old} + i, ${old} + i + 1000, 1000, 'bye', 0, 0, 0, 0 FROM n;
    INSERT INTO sessions (id, app, peer_id, jti, remote_addr, connected_ms, closed_ms, close_code, close_reason,
      frames_in, frames_out, bytes_in, bytes_out)
    VALUES ('ses_recent1', '${d.app}', 'recent-peer', 'j', '127.0.0.1', ${recent}, ${recent + 1000}, 1000, 'bye', 0, 0, 0, 0),
           ('ses_recent2', '${d.app}', 'recent-peer', 'j', '127.0.0.1', ${recent + 1}, ${recent + 2000}, 1000, 'bye', 0, 0, 0, 0);`;
  execFileSync('sqlite3', [d.db, sql]);
  const count = (where) => Number(execFileSync('sqlite3', [d.db, `SELECT count(*) FROM sessions WHERE ${where}`], { encoding: 'utf8' }));
  assert.equal(count("peer_id = 'old-peer'"), 3000);
  await d.start();
  const { token } = await d.mint({ peerId: 'live-now' });
  const live = await d.connect(token);
  const pruned = await until(() => count("peer_id = 'old-peer'") === 0, { timeoutMs: 10000 * SLOW, stepMs: 200 });
  assert.ok(pruned, `old rows left: ${count("peer_id = 'old-peer'")}`);
  assert.equal(count("peer_id = 'recent-peer'"), 2, 'rows inside the retention stay');
  const r = await d.api('GET', '/v1/sessions?peerId=live-now');
  assert.equal(r.json.sessions.length, 1, 'the open session keeps its row');
  assert.ok(await until(() => /pruned 3000 session rows older than 7 days/.test(d.log)), 'one log line for the backlog');
  await live.close();
});

test('presence snapshots one connection causes are bounded per second; others are not delayed', async () => {
  const d = await startRtmd({ config: { 'presence-snapshot-members-per-second': 100, 'rate-frames-per-second': 1000, 'rate-frames-burst': 1000 } });
  daemons.push(d);
  const members = [];
  // A daemon under valgrind runs each code path slowly the first time: the
  // welcome waits scale (they are not what this test measures).
  const connect = async (token) => {
    const c = await d.open(`?token=${encodeURIComponent(token)}`);
    c.welcome = await c.next('welcome', 3000 * SLOW);
    return c;
  };
  for (let i = 0; i < 30; i++) {
    const { token } = await d.mint({ peerId: `m${i}` });
    const c = await connect(token);
    assert.equal((await c.request({ type: 'subscribe', channel: 'big' }, 3000 * SLOW)).type, 'ack');
    members.push(c);
  }
  const { token } = await d.mint({ peerId: 'spinner' });
  const s = await connect(token);
  // snapshots list the 30 members; the bystander's later join is a one-entry delta
  const isSnap = (f) => f.type === 'presence' && f.channel === 'big' && f.joined.length >= 30;
  const snaps = () => s.all.filter(isSnap);
  const snapAt = []; // when each snapshot reached the spinner
  s.ws.on('message', (data) => { if (isSnap(JSON.parse(data.toString()))) snapAt.push(Date.now()); });
  // 20 subscribes (idempotent: each asks for a fresh 30-member snapshot)
  for (let i = 0; i < 20; i++) s.send({ type: 'subscribe', channel: 'big', requestId: `s${i}` });
  await until(() => s.all.filter((f) => f.type === 'ack').length === 20, { timeoutMs: 3000 * SLOW });
  // The window is the 300 ms after the first snapshot arrived, not after the
  // acks: a broker under valgrind may take longer than that to send the first.
  assert.ok(await until(() => snapAt.length > 0, { timeoutMs: 3000 * SLOW, stepMs: 10 }), 'a first snapshot');
  await sleep(300 - (Date.now() - snapAt[0]));
  const early = snapAt.filter((t) => t - snapAt[0] <= 300).length;
  // budget 100 entries/s, 30 per snapshot: 3 at once, then about 3 a second
  assert.ok(early >= 1 && early <= 5, `${early} snapshots in the first 300 ms (unbounded: 20)`);
  // another connection's snapshot is not held back by the spinner
  const { token: t2 } = await d.mint({ peerId: 'bystander' });
  const b = await connect(t2);
  const t0 = Date.now();
  assert.equal((await b.request({ type: 'subscribe', channel: 'big' })).type, 'ack');
  const bs = await b.next((f) => f.type === 'presence' && f.channel === 'big', 2000 * SLOW);
  assert.ok(Date.now() - t0 < 1000 * SLOW);
  assert.equal(bs.joined.length, 31);
  // the spinner's waiting requests coalesce into one complete snapshot
  await sleep(1500);
  const all = snaps();
  assert.ok(all.length <= early + 2, `${all.length} snapshots in total: the waiting ones coalesce`);
  const last = all[all.length - 1];
  const seen = new Set(last.joined.map((m) => m.peerId));
  for (const f of s.all.slice(s.all.indexOf(last) + 1)) if (f.type === 'presence') for (const m of f.joined) seen.add(m.peerId);
  assert.deepEqual([...seen].sort(), [...members.map((c) => c.welcome.peerId), 'bystander'].sort());
  for (const c of [...members, s, b]) await c.close();
});
