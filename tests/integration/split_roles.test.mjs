// split_roles.test.mjs: `rtmd --role broker` and `rtmd --role mint` as two
// processes on one sqlite file act together (issue 12 item 3,
// docs/ARCHITECTURE.md): tokens minted by one are accepted by the other;
// revocation by jti and by peer (4001) and of a key (`rtm key revoke` from a
// third process, 4012) close the matching live sessions within a second;
// kicks (4020) and server publishes reach the broker through the outbox;
// /v1/peers comes from the broker's presence snapshots; a broker started
// after a revocation refuses the token; a restart closes only its own
// session rows; /healthz says which node answers. On sqlite, and on
// Postgres with RTM_TEST_DB=postgres (tests/run.sh's pg group).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRtmd, rtmJson, sleep } from '../lib/rtmd.mjs';
import { expectClose, until, claimsOf } from './broker_util.mjs';

let broker, mint;
const WITHIN = 1000; // the bound for every cross-process effect

before(async () => {
  broker = await startRtmd({ args: ['--role', 'broker'], config: { 'node-id': 'broker-1' } });
  // the same store (the sqlite file, or with RTM_TEST_DB=postgres the same database)
  mint = await startRtmd({ dir: broker.dir, db: broker.db, key: broker.key, keepDir: true, args: ['--role', 'mint'], config: { 'node-id': 'mint-1' } });
});
after(async () => {
  await mint?.cleanup();
  await broker?.cleanup();
});

const connect = async (peerId, extra = {}) => {
  const { token } = await mint.mint({ peerId, ...extra });
  const c = await broker.connect(token);
  return { c, token };
};
// Resolves with the close and how long after t0 it came.
const closedWithin = async (c, t0) => {
  const info = await c.closed;
  return { ...info, ms: Date.now() - t0 };
};

test('a token from the mint process opens a session on the broker process', async () => {
  const { c } = await connect('split-hello');
  assert.equal(c.welcome.peerId, 'split-hello');
  c.send({ type: 'ping' });
  await c.next('pong');
  await c.close();
});

test('revocation by jti through the mint API closes the live session with 4001 within a second', async () => {
  const { c, token } = await connect('split-jti');
  const keep = await connect('split-keep');
  const t0 = Date.now();
  const r = await mint.api('POST', '/v1/revocations', { jti: claimsOf(token).jti });
  assert.equal(r.status, 201, r.text);
  const info = await closedWithin(c, t0);
  assert.deepEqual([info.code, info.reason], [4001, 'token revoked']);
  assert.ok(info.ms < WITHIN, `closed after ${info.ms} ms`);
  const again = await expectClose(broker, `?token=${token}`);
  assert.deepEqual([again.code, again.reason], [4001, 'token revoked']);
  keep.c.send({ type: 'ping' });
  await keep.c.next('pong'); // others untouched
  await keep.c.close();
});

test('revocation by peer through the mint API closes every session of that peer with 4001 within a second', async () => {
  const a = await connect('split-peer');
  const b = await connect('split-peer');
  await sleep(1100); // tokens issued in an earlier second than the revocation's `before`
  const t0 = Date.now();
  const r = await mint.api('POST', '/v1/revocations', { peerId: 'split-peer' });
  assert.equal(r.status, 201, r.text);
  for (const x of [a, b]) {
    const info = await closedWithin(x.c, t0);
    assert.deepEqual([info.code, info.reason], [4001, 'token revoked']);
    assert.ok(info.ms < WITHIN, `closed after ${info.ms} ms`);
  }
});

test('a key revoked by `rtm key revoke` in another process closes its sessions with 4012 within a second; new ones get 4001', async () => {
  const k = rtmJson(['key', 'create', '--db', broker.db, '--app', broker.app]);
  // The new key mints through the mint process as soon as it exists.
  const m = await mint.api('POST', '/v1/tokens', { peerId: 'split-key' }, { auth: k.secret });
  assert.equal(m.status, 200, m.text);
  const c = await broker.connect(m.json.token); // the broker's view may learn the key now: the connect waits for it
  const other = await connect('split-other-key');
  const t0 = Date.now();
  rtmJson(['key', 'revoke', '--db', broker.db, k.id]);
  const info = await closedWithin(c, t0);
  assert.deepEqual([info.code, info.reason], [4012, 'key revoked']);
  assert.ok(info.ms < WITHIN, `closed after ${info.ms} ms`);
  const again = await expectClose(broker, `?token=${m.json.token}`);
  assert.deepEqual([again.code, again.reason], [4001, 'key revoked']);
  // the mint process refuses the revoked key's secret too
  const refused = await until(async () => (await mint.api('POST', '/v1/tokens', { peerId: 'x' }, { auth: k.secret })).status === 401);
  assert.ok(refused, 'revoked key refused by the mint API');
  other.c.send({ type: 'ping' });
  await other.c.next('pong'); // a session on another key stays
  await other.c.close();
});

test('kick through the mint API (202) closes the peer on the broker with 4020 within a second', async () => {
  const a = await connect('split-kick');
  const w = await connect('split-watch');
  const t0 = Date.now();
  const r = await mint.api('DELETE', '/v1/peers/split-kick');
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(r.json, { peerId: 'split-kick', queued: true });
  const info = await closedWithin(a.c, t0);
  assert.deepEqual([info.code, info.reason], [4020, 'kicked']);
  assert.ok(info.ms < WITHIN, `closed after ${info.ms} ms`);
  assert.ok(await w.c.none('message', 100)); // nobody else touched
  await w.c.close();
});

test('server publish through the mint API (202) reaches subscribers on the broker within a second', async () => {
  const a = await connect('split-sub');
  assert.equal((await a.c.request({ type: 'subscribe', channel: 'split-news' })).type, 'ack');
  const t0 = Date.now();
  const r = await mint.api('POST', '/v1/publish', { channel: 'split-news', data: { n: 1, s: 'hi' } });
  assert.equal(r.status, 202, r.text);
  const msg = await a.c.next('message', WITHIN);
  assert.deepEqual(msg, { type: 'message', channel: 'split-news', from: '_server', data: { n: 1, s: 'hi' } });
  assert.ok(Date.now() - t0 < WITHIN);
  await a.c.close();
});

test('/v1/peers on the mint process lists the broker\'s peers (and channel filter) within a second', async () => {
  const a = await connect('split-list-a', { peerMetadata: { role: 'host' } });
  const b = await connect('split-list-b');
  await a.c.request({ type: 'subscribe', channel: 'split-room' });
  const t0 = Date.now();
  const listed = await until(async () => {
    const r = await mint.api('GET', '/v1/peers?channel=split-room');
    return r.status === 200 && r.json.peers.some((p) => p.peerId === 'split-list-a') ? r.json.peers : null;
  }, { timeoutMs: WITHIN, stepMs: 25 });
  assert.ok(listed, 'listed within a second');
  assert.ok(Date.now() - t0 < WITHIN + 100);
  const pa = listed.find((p) => p.peerId === 'split-list-a');
  assert.deepEqual(pa.channels, ['split-room']);
  assert.deepEqual(pa.peerMetadata, { role: 'host' });
  assert.equal(pa.connections, 1);
  assert.ok(!listed.some((p) => p.peerId === 'split-list-b'), 'not in the channel');
  const all = (await mint.api('GET', '/v1/peers')).json.peers.map((p) => p.peerId);
  assert.ok(all.includes('split-list-b'));
  // and a peer that leaves is gone from the listing within a second
  await a.c.close();
  const gone = await until(async () => !(await mint.api('GET', '/v1/peers')).json.peers.some((p) => p.peerId === 'split-list-a'),
    { timeoutMs: WITHIN, stepMs: 25 });
  assert.ok(gone, 'gone within a second');
  await b.c.close();
});

test('a broker started after a revocation refuses the token; its restart closes only its own rows', async () => {
  const { c, token } = await connect('split-late');
  await c.close();
  const r = await mint.api('POST', '/v1/revocations', { jti: claimsOf(token).jti });
  assert.equal(r.status, 201);
  // a second broker on the same store, started after the revocation
  const b2 = await startRtmd({ dir: broker.dir, db: broker.db, key: broker.key, keepDir: true, args: ['--role', 'broker'], config: { 'node-id': 'broker-2' } });
  try {
    const x = await expectClose(b2, `?token=${token}`);
    assert.deepEqual([x.code, x.reason], [4001, 'token revoked']);
    // a session left open on broker-1 by a kill -9 ...
    const live = await connect('split-crash');
    await until(async () => (await mint.api('GET', '/v1/sessions?peerId=split-crash')).json.sessions.length === 1);
    // ... and one on broker-2, live
    const { token: t2 } = await mint.mint({ peerId: 'split-b2' });
    const on2 = await b2.connect(t2);
    await until(async () => (await mint.api('GET', '/v1/sessions?peerId=split-b2')).json.sessions.length === 1);
    await broker.stop('SIGKILL');
    await live.c.closed;
    await broker.start(); // same node id, new ports
    const rows = await until(async () => {
      const s = (await mint.api('GET', '/v1/sessions?peerId=split-crash')).json.sessions;
      return s[0]?.closeReason ? s : null;
    });
    assert.equal(rows[0].closeReason, 'server restart');
    const other = (await mint.api('GET', '/v1/sessions?peerId=split-b2')).json.sessions;
    assert.equal(other[0].closedAt, null, 'broker-2\'s live row is not closed by broker-1\'s restart');
    on2.send({ type: 'ping' });
    await on2.next('pong');
    await on2.close();
  } finally {
    await b2.stop();
  }
});

test('/healthz names the node and says the store is ok', async () => {
  const h = await mint.api('GET', '/healthz', undefined, { auth: null });
  assert.equal(h.status, 200);
  assert.equal(h.json.status, 'ok');
  assert.equal(h.json.store, 'ok');
  assert.equal(h.json.node, 'mint-1');
});
