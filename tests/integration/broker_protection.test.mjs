// broker_protection.test.mjs: the broker's control and protection paths
// against a real rtmd: publishable keys and Origins, kicks, revocations (live
// and after a restart), server publish, /v1/peers, liveness, SIGTERM drain,
// kill -9 recovery, 1009, over_message_quota and 4011, the per-IP connect
// limit, 4010, and a stalled consumer closed with 1013.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { startRtmd, rtmJson, sleep } from '../lib/rtmd.mjs';
import { frameChecker } from '../lib/schema.mjs';
import { expectClose, until, signToken } from './broker_util.mjs';

const NOIP = { 'rate-connects-per-ip-per-minute': 0 };
const SLOW = process.env.RTM_VALGRIND ? 4 : 1; // valgrind stretches every step
// Under ASan, freed memory sits in a quarantine (256 MB by default) and would
// count as resident; keep it small so RSS measures what the broker holds.
process.env.ASAN_OPTIONS = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=4'].filter(Boolean).join(':');
const frames = frameChecker();
after(() => { frames.assertValid(); });

async function withRtmd(config, fn) {
  const d = frames.track(await startRtmd({ config: { ...NOIP, ...config } }));
  try { return await fn(d); } finally { await d.cleanup(); }
}
const tokenFor = async (d, peerId, extra = {}, auth) => {
  const r = await d.api('POST', '/v1/tokens', { peerId, ...extra }, auth ? { auth } : undefined);
  assert.equal(r.status, 200, r.text);
  return r.json.token;
};
const peer = async (d, peerId, extra, auth) => d.connect(await tokenFor(d, peerId, extra, auth));
const ids = (l) => l.map((m) => m.peerId).sort();

describe('one daemon: keys, origins, kicks, revocations, server publish', () => {
  let d;
  // A fixed node id: a restart listens on new ephemeral ports, and the
  // default id (hostname:public-port) would make it another node.
  before(async () => { d = frames.track(await startRtmd({ config: { ...NOIP, 'node-id': 'protection-node' } })); });
  after(async () => { await d.cleanup(); });

  test('publishable key: random peerId, scope from the key, TURN minted by the broker, expiresAt null', async () => {
    const pk = rtmJson(['key', 'create', '--db', d.db, '--app', d.app, '--publishable', '--channels', 'lobby/*', '--actions', 'subscribe,publish,presence']);
    const c = await d.open(`?key=${pk.id}`);
    const w = await c.next('welcome');
    assert.match(w.peerId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(w.expiresAt, null);
    const turn = w.metadata.iceServers.find((s) => s.username);
    assert.ok(turn && turn.credential);
    assert.equal(turn.username.split(':')[1], w.peerId);
    assert.ok(Number(turn.username.split(':')[0]) > Date.now() / 1000);
    assert.equal((await c.request({ type: 'subscribe', channel: 'lobby/a' })).type, 'ack');
    assert.equal((await c.request({ type: 'subscribe', channel: 'elsewhere' })).code, 'channel_not_authorized');
    assert.equal((await c.request({ type: 'send', to: 'x', data: 1 })).code, 'action_not_permitted');
    const c2 = await d.open(`?key=${pk.id}`);
    assert.notEqual((await c2.next('welcome')).peerId, w.peerId, 'each connection its own peerId');
    await c.close();
    await c2.close();
    let r = await expectClose(d, '?key=pk_0123456789abcdef0123456789abcdef');
    assert.deepEqual([r.code, r.reason], [4001, 'unknown key']);
    // Revoked from another process: the live session on it ends with 4012
    // within a second (the broker's view polls), then the key is refused.
    const live = await d.open(`?key=${pk.id}`);
    await live.next('welcome');
    const t0 = Date.now();
    rtmJson(['key', 'revoke', '--db', d.db, pk.id]);
    assert.deepEqual(await live.closed, { code: 4012, reason: 'key revoked' });
    assert.ok(Date.now() - t0 < 1000, `closed after ${Date.now() - t0} ms`);
    r = await expectClose(d, `?key=${pk.id}`);
    assert.deepEqual([r.code, r.reason], [4001, 'key revoked']);
    r = await expectClose(d, `?key=${d.key.id}`); // a secret key's id is not a publishable key
    assert.equal(r.code, 4001);
  });

  test('Origins: exact scheme, host and port; look-alikes and null refused with 4003', async () => {
    const pk = rtmJson(['key', 'create', '--db', d.db, '--app', d.app, '--publishable', '--origins', 'https://app.example.com,http://localhost:3000']);
    for (const origin of ['https://app.example.com', 'http://localhost:3000']) {
      const c = await d.open(`?key=${pk.id}`, { headers: { origin } });
      assert.ok((await c.next('welcome')).peerId, origin);
      await c.close();
    }
    for (const origin of ['https://app.example.com.evil.net', 'http://app.example.com', 'https://app.example.com:443x',
      'https://evilapp.example.com', 'http://localhost:30001', 'http://localhost', 'null', undefined]) {
      const headers = origin === undefined ? {} : { origin };
      const r = await expectClose(d, `?key=${pk.id}`, { headers });
      assert.deepEqual([r.code, r.reason, r.frames.length], [4003, 'origin not allowed', 0], String(origin));
    }
    // a secret key with Origins checks them for its tokens too
    const sk = rtmJson(['key', 'create', '--db', d.db, '--app', d.app, '--origins', 'https://app.example.com']);
    const t = signToken(sk, { sub: 'orig-sk' });
    const ok = await d.open(`?token=${t}`, { headers: { origin: 'https://app.example.com' } });
    assert.equal((await ok.next('welcome')).peerId, 'orig-sk');
    await ok.close();
    const r = await expectClose(d, `?token=${t}`, { headers: { origin: 'https://app.example.co' } });
    assert.equal(r.code, 4003);
  });

  test('GET /v1/peers lists who is online; DELETE /v1/peers/{id} closes every connection with 4020 within a second', async () => {
    const w = await peer(d, 'kick-watch');
    const k1 = await peer(d, 'kick-me', { peerMetadata: { n: 1 } });
    const k2 = await peer(d, 'kick-me', { peerMetadata: { n: 1 } });
    await w.request({ type: 'subscribe', channel: 'kick-room' });
    await w.next('presence');
    await k1.request({ type: 'subscribe', channel: 'kick-room' });
    await k2.request({ type: 'subscribe', channel: 'kick-other' });
    await w.next('presence');
    let r = await d.api('GET', '/v1/peers?channel=kick-room');
    assert.equal(r.status, 200, r.text);
    const byId = Object.fromEntries(r.json.peers.map((p) => [p.peerId, p]));
    assert.deepEqual(Object.keys(byId).sort(), ['kick-me', 'kick-watch']);
    assert.equal(byId['kick-me'].connections, 2);
    assert.deepEqual(byId['kick-me'].channels.sort(), ['kick-other', 'kick-room']);
    assert.deepEqual(byId['kick-me'].peerMetadata, { n: 1 });
    const t0 = Date.now();
    r = await d.api('DELETE', '/v1/peers/kick-me');
    assert.equal(r.status, 200, r.text);
    const [c1, c2] = await Promise.all([k1.closed, k2.closed]);
    assert.ok(Date.now() - t0 < 1000);
    assert.deepEqual([c1.code, c2.code], [4020, 4020]);
    assert.deepEqual((await w.next('presence')).left, [{ peerId: 'kick-me' }]);
    r = await d.api('GET', '/v1/peers');
    assert.ok(!r.json.peers.some((p) => p.peerId === 'kick-me'));
    await w.close();
  });

  test('POST /v1/publish reaches the channel from _server', async () => {
    const a = await peer(d, 'srv-a');
    const b = await peer(d, 'srv-b');
    await a.request({ type: 'subscribe', channel: 'news', includeSenderMetadata: true });
    await b.request({ type: 'subscribe', channel: 'news' });
    const r = await d.api('POST', '/v1/publish', { channel: 'news', data: { headline: 'hi', n: [1, 2] } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.recipients, 2);
    for (const c of [a, b]) assert.deepEqual(await c.next('message'), { type: 'message', channel: 'news', from: '_server', data: { headline: 'hi', n: [1, 2] } });
    await a.close();
    await b.close();
  });

  test('revocation by peerId closes live sessions with 4001 within a second; by jti too; both survive a restart', async () => {
    const tokA = await tokenFor(d, 'rev-peer');
    const a = await d.connect(tokA);
    const tokB = await tokenFor(d, 'rev-jti');
    const b = await d.connect(tokB);
    const keep = await peer(d, 'rev-keep');
    await sleep(1100); // tokens issued before the revocation's second
    let t0 = Date.now();
    let r = await d.api('POST', '/v1/revocations', { peerId: 'rev-peer' });
    assert.equal(r.status, 201, r.text);
    let info = await a.closed;
    assert.ok(Date.now() - t0 < 1000);
    assert.deepEqual([info.code, info.reason], [4001, 'token revoked']);
    const jti = JSON.parse(Buffer.from(tokB.split('.')[1], 'base64url')).jti;
    t0 = Date.now();
    r = await d.api('POST', '/v1/revocations', { jti });
    assert.equal(r.status, 201, r.text);
    info = await b.closed;
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(info.code, 4001);
    keep.send({ type: 'ping' });
    await keep.next('pong');
    await keep.close();
    await d.restart();
    for (const t of [tokA, tokB]) {
      const x = await expectClose(d, `?token=${t}`);
      assert.deepEqual([x.code, x.reason], [4001, 'token revoked']);
    }
    // a new token for the revoked peer, issued after the revocation, works
    await sleep(1100);
    const fresh = await peer(d, 'rev-peer');
    assert.equal(fresh.welcome.peerId, 'rev-peer');
    await fresh.close();
  });

  test('kill -9: the next start closes the rows left open with "server restart"', async () => {
    const c = await peer(d, 'crash-1');
    await until(async () => (await d.api('GET', '/v1/sessions?peerId=crash-1')).json.sessions.length === 1);
    await d.stop('SIGKILL');
    await c.closed;
    await d.start();
    const rows = (await d.api('GET', '/v1/sessions?peerId=crash-1')).json.sessions;
    assert.equal(rows.length, 1);
    assert.equal(rows[0].closeReason, 'server restart');
    assert.ok(rows[0].closedAt >= rows[0].connectedAt);
  });

  test('SIGTERM: going_away to every session, then 1001, exit 0, rows flushed', async () => {
    const a = await peer(d, 'term-a');
    const b = await peer(d, 'term-b');
    await a.request({ type: 'subscribe', channel: 'term' });
    const r = await d.stop('SIGTERM');
    assert.deepEqual(r, { code: 0, signal: null });
    for (const c of [a, b]) {
      const g = c.all.find((f) => f.type === 'going_away');
      assert.ok(g && Number.isInteger(g.retryAfterMs) && g.retryAfterMs > 0, JSON.stringify(c.all));
      assert.equal((await c.closed).code, 1001);
    }
    const out = readFileSync(d.db).length; // file exists and was written
    assert.ok(out > 0);
    await d.start();
    const rows = (await d.api('GET', '/v1/sessions?peerId=term-a')).json.sessions;
    assert.equal(rows[0].closeCode, 1001);
    assert.equal(rows[0].closeReason, 'server shutting down');
  });
});

test('liveness: a peer that stops answering pings is dropped and leaves presence', async () => {
  // Under valgrind a turn of the broker's loop can take longer than a 300 ms
  // pong deadline (timers run before reads in the same turn), which would drop
  // the watcher too: the intervals, and every wait measured in them, scale.
  const interval = 300 * SLOW, timeout = 300 * SLOW;
  await withRtmd({ 'ping-interval-ms': interval, 'ping-timeout-ms': timeout }, async (d) => {
    // the daemon's first connect runs its connect path for the first time
    // (slow under valgrind): not timed
    const w = await d.open(`?token=${await tokenFor(d, 'live-watch')}`);
    w.welcome = await w.next('welcome', 3000 * SLOW);
    await w.request({ type: 'subscribe', channel: 'live' }, 3000 * SLOW);
    await w.next('presence');
    const token = await tokenFor(d, 'live-silent');
    const ws = new WebSocket(`${d.wsUrl}/v1?token=${token}`, { autoPong: false });
    const closed = new Promise((res) => ws.on('close', (code) => res(code)));
    let pinged = 0;
    ws.on('ping', () => { pinged++; });
    await new Promise((res) => ws.on('message', res)); // welcome
    ws.send(JSON.stringify({ type: 'subscribe', channel: 'live' }));
    assert.deepEqual(ids((await w.next('presence')).joined), ['live-silent']);
    // dropped within ten intervals (one of silence, one waiting for the pong)
    const left = await w.next('presence', 10 * interval);
    assert.deepEqual(left.left, [{ peerId: 'live-silent' }]);
    assert.ok(pinged >= 1, 'the silent peer was asked for a pong first');
    ws.terminate();
    await closed;
    // the watcher answers pings (ws does by default) and is still here after several intervals
    await sleep(4 * interval);
    w.send({ type: 'ping' });
    await w.next('pong');
    await w.close();
  });
});

test('limits: 1009 over max-message-size, over_message_quota then 4011, 4010 at max-connections', async () => {
  await withRtmd({ 'max-message-size': 1024, 'rate-frames-per-second': 10, 'rate-frames-burst': 10, 'max-connections': 3 }, async (d) => {
    const a = await peer(d, 'lim-a');
    a.send({ type: 'publish', channel: 'x', data: 'y'.repeat(2000) });
    assert.equal((await a.closed).code, 1009);

    const b = await peer(d, 'lim-b');
    for (let i = 0; i < 30; i++) b.send({ type: 'ping', requestId: `p${i}` });
    const q = await b.next((f) => f.type === 'error' && f.code === 'over_message_quota');
    assert.equal(q.code, 'over_message_quota');
    const pongs = () => b.all.filter((f) => f.type === 'pong').length;
    await sleep(300);
    assert.ok(pongs() >= 10 && pongs() < 30, `${pongs()} pongs for 30 pings at burst 10`);
    // keep sending at far more than twice the rate: closed with 4011 after about 5 s
    const t0 = Date.now();
    let closed = null;
    b.closed.then((i) => { closed = i; });
    while (!closed && Date.now() - t0 < 12000) {
      for (let i = 0; i < 10; i++) b.send({ type: 'ping' });
      await sleep(50);
    }
    assert.ok(closed, 'closed within 12 s');
    assert.equal(closed.code, 4011);
    assert.ok(Date.now() - t0 >= 4000, `closed after ${Date.now() - t0} ms`);

    const c1 = await peer(d, 'cap-1');
    const c2 = await peer(d, 'cap-2');
    const c3 = await peer(d, 'cap-3');
    const r = await expectClose(d, `?token=${await tokenFor(d, 'cap-4')}`);
    assert.deepEqual([r.code, r.reason], [4010, 'server at capacity']);
    await c3.close();
    const c4 = await until(async () => { try { return await peer(d, 'cap-4'); } catch { return null; } });
    assert.equal(c4.welcome.peerId, 'cap-4');
    for (const c of [c1, c2, c4]) await c.close();
  });
});

test('rate-connects-per-ip-per-minute: over it, refused at TCP accept with no HTTP answer', async () => {
  await withRtmd({ 'rate-connects-per-ip-per-minute': 5 }, async (d) => {
    const token = await tokenFor(d, 'ip-1');
    const cs = [];
    for (let i = 0; i < 5; i++) cs.push(await d.connect(token));
    await assert.rejects(d.open(`?token=${token}`), (e) => /socket hang up|ECONNRESET|closed|EPIPE/.test(e.message) && !/HTTP \d/.test(e.message));
    const res = await fetch(`${d.publicUrl}/`).then(() => 'answered', (e) => 'refused: ' + e.message);
    assert.match(res, /^refused/);
    // sessions already open are untouched
    cs[0].send({ type: 'ping' });
    await cs[0].next('pong');
    for (const c of cs) await c.close();
  });
});

test('a stalled consumer is closed with 1013 while a healthy one receives everything, memory bounded', async () => {
  await withRtmd({ 'queue-bytes': 262144, 'rate-frames-per-second': 0 }, async (d) => {
    const pub = await peer(d, 'flood-pub');
    const healthy = await peer(d, 'flood-ok');
    const stalled = await peer(d, 'flood-stuck');
    await healthy.request({ type: 'subscribe', channel: 'flood' });
    await healthy.next('presence'); // snapshot
    await stalled.request({ type: 'subscribe', channel: 'flood' });
    await healthy.next('presence'); // the stalled one joined
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d.pid}/status`, 'utf8'))[1]);
    const before = rss();
    stalled.ws._socket.pause();
    const N = 800, blob = 'f'.repeat(32 * 1024);
    let got = 0;
    const all = new Promise((res) => {
      healthy.ws.on('message', (m) => { if (JSON.parse(m).type === 'message' && ++got === N) res(); });
    });
    for (let i = 0; i < N; i++) {
      pub.send({ type: 'publish', channel: 'flood', data: { i, blob } });
      if (i % 50 === 49) await sleep(5);
    }
    await all;
    const ordered = healthy.all.filter((f) => f.type === 'message').map((f) => f.data.i);
    assert.deepEqual(ordered, Array.from({ length: N }, (_, i) => i), 'every message, in order');
    const grown = rss() - before;
    assert.ok(grown < 64 * 1024, `RSS grew ${grown} kB`);
    stalled.ws._socket.resume();
    const info = await stalled.closed;
    assert.equal(info.code, 1013);
    const seen = stalled.all.filter((f) => f.type === 'message').length;
    assert.ok(seen < N, `the stalled consumer got ${seen} of ${N} before its close`);
    pub.send({ type: 'ping' });
    await pub.next('pong');
    await pub.close();
    await healthy.close();
  });
});

test('max-connections-per-app: 4010 for that app only', async () => {
  await withRtmd({ 'max-connections-per-app': 2 }, async (d) => {
    const other = rtmJson(['key', 'create', '--db', d.db, '--app', 'other-app']);
    const a1 = await peer(d, 'pa-1');
    const a2 = await peer(d, 'pa-2');
    const r = await expectClose(d, `?token=${await tokenFor(d, 'pa-3')}`);
    assert.deepEqual([r.code, r.reason], [4010, 'server at capacity']);
    const o1 = await peer(d, 'po-1', {}, other.secret);
    assert.equal(o1.welcome.peerId, 'po-1');
    await a1.close();
    const a3 = await until(async () => { try { return await peer(d, 'pa-3'); } catch { return null; } });
    assert.equal(a3.welcome.peerId, 'pa-3');
    for (const c of [a2, a3, o1]) await c.close();
  });
});
