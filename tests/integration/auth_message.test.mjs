// auth_message.test.mjs: tokens kept out of URLs (docs/EXTENSIONS.md,
// "Token in the first frame") against a real rtmd: GET /v1?auth=message
// upgrades without a token and the first frame must be
// {"type":"auth","token":...} within auth-timeout-ms, else 4001 "auth
// timeout"; nothing else is read before it; sockets waiting for it are
// capped overall and per address (4010); GET /.well-known/rtm says the broker
// takes it, and the browser SDK (web/sdk/rtm.js, run in node on the ws
// library) then uses it by default.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startRtmd, openClient, sleep } from '../lib/rtmd.mjs';
import { frameChecker } from '../lib/schema.mjs';
import { signToken } from './broker_util.mjs';
import { RtmClient } from '../../web/sdk/rtm.js';

const SLOW = process.env.RTM_VALGRIND ? 4 : 1;
const frames = frameChecker();
after(() => { frames.assertValid(); });

// Opens ?auth=message and resolves once upgraded (no frame sent yet).
const openAuth = (d, extra = '') => d.open(`?auth=message${extra}`);
const closed = async (c, ms = 3000 * SLOW) => {
  const t = setTimeout(() => c.terminate(), ms);
  const info = await c.closed;
  clearTimeout(t);
  return { ...info, frames: c.all };
};

describe('?auth=message', () => {
  let d;
  before(async () => {
    d = frames.track(await startRtmd({ config: { 'rate-connects-per-ip-per-minute': 0, 'auth-timeout-ms': 600 } }));
  });
  after(async () => { await d.cleanup(); });

  test('the token in the first frame: welcome, then the session works; the token is in no URL and no log line', async () => {
    const { token } = await d.mint({ peerId: 'msg-a', channels: ['**'] });
    const a = await openAuth(d, '&ext=1');
    a.send({ type: 'auth', token });
    const w = await a.next('welcome');
    assert.equal(w.peerId, 'msg-a');
    assert.ok(w.sessionId, 'the extensions asked for in the URL apply');
    assert.equal((await a.request({ type: 'subscribe', channel: 'm' })).type, 'ack');
    const b = await d.connect((await d.mint({ peerId: 'msg-b' })).token);
    assert.equal((await b.request({ type: 'publish', channel: 'm', data: 7 })).type, 'ack');
    assert.equal((await a.next('message')).data, 7);
    // a second auth frame is just an unknown type now
    assert.equal((await a.request({ type: 'auth', token })).code, 'unknown_type');
    await a.close();
    await b.close();
    assert.ok(!d.log.includes(token.split('.')[2]), 'no token in the log');
  });

  test('no auth frame within auth-timeout-ms: 4001 "auth timeout"', async () => {
    const c = await openAuth(d);
    const t0 = Date.now();
    const r = await closed(c);
    assert.deepEqual([r.code, r.reason, r.frames.length], [4001, 'auth timeout', 0]);
    assert.ok(Date.now() - t0 >= 500, `closed after ${Date.now() - t0} ms`);
  });

  test('anything else first is refused with 4001 and a reason, and never answered', async () => {
    const { token } = await d.mint({ peerId: 'msg-c' });
    const firsts = [
      JSON.stringify({ type: 'ping', requestId: 'p' }),
      'not json',
      JSON.stringify({ type: 'auth' }),
      JSON.stringify({ type: 'auth', token: '' }),
      JSON.stringify({ type: 'auth', token: 42 }),
      Buffer.from(JSON.stringify({ type: 'auth', token })), // binary
    ];
    for (const f of firsts) {
      const c = await openAuth(d);
      c.ws.send(f);
      const r = await closed(c);
      assert.equal(r.code, 4001, String(f));
      assert.match(r.reason, /first frame must be/, String(f));
      assert.equal(r.frames.length, 0, String(f));
    }
    // a bad token in the auth frame gets the usual 4001 reasons
    for (const [t, reason] of [['x.y.z', 'malformed token'], [signToken(d.key, { sub: 'p' }, { secret: 'wrong' }), 'bad signature'],
      ['a'.repeat(30000), 'token too large']]) {
      const c = await openAuth(d);
      c.send({ type: 'auth', token: t });
      const r = await closed(c);
      assert.deepEqual([r.code, r.reason], [4001, reason]);
    }
  });

  test('GET /.well-known/rtm lists the message transport, readable from any page', async () => {
    const r = await fetch(`${d.publicUrl}/.well-known/rtm`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const j = await r.json();
    assert.ok(j.tokenTransports.includes('message'));
  });
});

test('unauthenticated sockets are capped per address and overall: 4010 at once beyond', async () => {
  const d = frames.track(await startRtmd({ config: {
    'rate-connects-per-ip-per-minute': 0, 'auth-timeout-ms': 5000, 'max-unauthenticated': 3, 'max-unauthenticated-per-ip': 2,
  } }));
  try {
    const waiting = [await openAuth(d), await openAuth(d)];
    let r = await closed(await openAuth(d));
    assert.deepEqual([r.code, r.reason], [4010, 'too many connections waiting to authenticate']);
    // one authenticates: its place is free again
    waiting[0].send({ type: 'auth', token: (await d.mint({ peerId: 'cap-a' })).token });
    await waiting[0].next('welcome');
    waiting.push(await openAuth(d));
    await sleep(100);
    assert.equal(waiting[2].closeInfo, null, 'accepted again');
    // one closes: its place is free too
    await waiting[1].close();
    await sleep(100);
    waiting.push(await openAuth(d));
    await sleep(100);
    assert.equal(waiting[3].closeInfo, null);
    r = await closed(await openAuth(d));
    assert.equal(r.code, 4010);
    // connections with a token in the request are not affected
    const ok = await d.connect((await d.mint({ peerId: 'cap-b' })).token);
    await ok.close();
    for (const c of waiting) await c.close();
  } finally { await d.cleanup(); }
});

test('the overall cap holds across addresses too (4010 beyond max-unauthenticated)', async () => {
  const d = frames.track(await startRtmd({ config: {
    'rate-connects-per-ip-per-minute': 0, 'max-unauthenticated': 2, 'max-unauthenticated-per-ip': 100,
  } }));
  try {
    const waiting = [await openAuth(d), await openAuth(d)];
    const r = await closed(await openAuth(d));
    assert.deepEqual([r.code, r.reason], [4010, 'too many connections waiting to authenticate']);
    for (const c of waiting) await c.close();
  } finally { await d.cleanup(); }
});

test('browser SDK: tokenTransport auto picks message when the broker lists it; query still works; a reconnect authenticates again', async () => {
  const d = frames.track(await startRtmd({ config: { 'rate-connects-per-ip-per-minute': 0 } }));
  const seen = [];
  class SpyWS extends WebSocket {
    constructor(url, protocols) { super(url, protocols); seen.push(url); }
  }
  const clients = [];
  try {
    const token = async () => (await d.mint({ peerId: 'sdk-msg', channels: ['**'] })).token;
    const c = new RtmClient({ url: d.wsUrl, token, WebSocket: SpyWS, backoffInitialMs: 50 });
    clients.push(c);
    c.on('error', () => {});
    const w = await c.connect();
    assert.equal(w.peerId, 'sdk-msg');
    assert.equal(c.tokenTransport, 'message');
    assert.match(seen[0], /[?&]auth=message/);
    assert.ok(!/token=/.test(seen[0]), seen[0]);
    await c.subscribe('x');
    // a drop: the SDK reconnects and authenticates in the first frame again
    const again = new Promise((r) => c.on('connected', r));
    c._ws._socket.destroy();
    const w2 = await again;
    assert.equal(w2.reconnect, true);
    assert.equal(seen.length, 2);
    assert.match(seen[1], /[?&]auth=message/);
    const q = new RtmClient({ url: d.wsUrl, token, WebSocket: SpyWS, tokenTransport: 'query' });
    clients.push(q);
    q.on('error', () => {});
    await q.connect();
    assert.equal(q.tokenTransport, 'query');
    assert.match(seen[2], /[?&]token=/);
  } finally {
    for (const c of clients) c.close();
    await d.cleanup();
  }
});

test('browser SDK: a broker without /.well-known/rtm gets the token in the query', async () => {
  // a stand-in that answers 404 to the capabilities request, as an older rtmd does
  const d = frames.track(await startRtmd({ config: { 'rate-connects-per-ip-per-minute': 0 } }));
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (u, o) => (String(u).endsWith('/.well-known/rtm') ? new Response('no', { status: 404 }) : realFetch(u, o));
  const c = new RtmClient({ url: d.wsUrl, token: async () => (await d.mint({ peerId: 'old' })).token, WebSocket });
  c.on('error', () => {});
  try {
    await c.connect();
    assert.equal(c.tokenTransport, 'query');
  } finally {
    globalThis.fetch = realFetch;
    c.close();
    await d.cleanup();
  }
});
