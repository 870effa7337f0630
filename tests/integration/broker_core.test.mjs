// broker_core.test.mjs: the broker's wire protocol against a real rtmd:
// welcome, acks, every error code, ping, fan-out, direct send, permissions,
// binary and invalid UTF-8 closes. Every frame received is checked against
// schema/frames at the end.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startRtmd, sleep } from '../lib/rtmd.mjs';
import { frameChecker } from '../lib/schema.mjs';
import { claimsOf } from './broker_util.mjs';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../lib/rtmd.mjs';

const ALL = ['publish', 'subscribe', 'presence', 'send'];
let d;
const frames = frameChecker();

before(async () => { d = frames.track(await startRtmd({ config: { 'rate-connects-per-ip-per-minute': 0 } })); });
after(async () => {
  try { assert.ok(frames.assertValid() > 0); } finally { await d.cleanup(); }
});

const mint = (peerId, extra = {}) => d.mint({ peerId, ...extra });
async function peer(peerId, extra = {}) {
  const { token } = await mint(peerId, extra);
  const c = await d.connect(token);
  return c;
}

describe('welcome', () => {
  test('carries peerId, expiresAt, serverTime, maxMessageSize and the minted metadata with iceServers as minted', async () => {
    const t0 = Date.now();
    const m = await mint('wel-1', { metadata: { room: 'r1' } });
    const c = await d.connect(m.token);
    const w = c.welcome;
    const claims = claimsOf(m.token);
    assert.equal(w.peerId, 'wel-1');
    assert.equal(w.expiresAt, m.expiresAt);
    assert.equal(w.expiresAt, claims.exp);
    assert.ok(w.serverTime >= t0 - 1000 && w.serverTime <= Date.now() + 1000, 'serverTime is unix ms now');
    assert.equal(w.maxMessageSize, 65536);
    assert.deepEqual(w.metadata, claims.metadata);
    assert.equal(w.metadata.room, 'r1');
    assert.ok(Array.isArray(w.metadata.iceServers) && w.metadata.iceServers.length >= 1);
    const turn = w.metadata.iceServers.find((s) => s.username);
    assert.ok(turn && turn.credential, 'a TURN entry with username and credential');
    assert.match(turn.username, /^\d+:wel-1$/);
    assert.equal(c.all[0].type, 'welcome', 'welcome is the first frame');
    assert.ok(await c.none('welcome', 200), 'welcome is sent once');
    await c.close();
  });

  test('a credential in the subprotocol list reaches the broker, which answers rtm.v1', async () => {
    // lws 4.1.6 copies the whole Sec-WebSocket-Protocol list into a 128-byte
    // buffer before any callback runs, so only a short entry gets this far;
    // a short non-JWT proves the broker reads the list (and refuses it).
    const c = await d.open('', { protocols: ['token.abc', 'rtm.v1'] });
    assert.equal(c.ws.protocol, 'rtm.v1');
    const info = await c.closed;
    assert.deepEqual([info.code, info.reason], [4001, 'malformed token']);
    assert.equal(c.all.length, 0, 'no welcome');
  });

  test('a real token in the subprotocol list', { todo: 'lws 4.1.6 drops Sec-WebSocket-Protocol lists over 127 bytes ("protocol list too long") before the broker sees the request' }, async () => {
    const { token } = await mint('wel-sub');
    const c = await d.open('', { protocols: [`token.${token}`, 'rtm.v1'] });
    assert.equal(c.ws.protocol, 'rtm.v1');
    const w = await c.next('welcome');
    assert.equal(w.peerId, 'wel-sub');
    await c.close();
  });

  test('a connection offering no subprotocol is served', async () => {
    const { token } = await mint('wel-nosub');
    const c = await d.connect(token);
    assert.equal(c.ws.protocol, '');
    assert.equal(c.welcome.peerId, 'wel-nosub');
    await c.close();
  });

  test('a 16 KB token fits in the query string and in an Authorization header', async () => {
    const { token } = await mint('wel-big', {
      metadata: { blob: 'm'.repeat(7700) },
      peerMetadata: { blob: 'p'.repeat(4070) },
    });
    assert.ok(token.length >= 16384, `token is ${token.length} bytes`);
    const a = await d.connect(token);
    assert.equal(a.welcome.metadata.blob.length, 7700);
    assert.equal(a.welcome.peerId, 'wel-big');
    const b = await d.open('', { headers: { authorization: `Bearer ${token}` } });
    assert.equal((await b.next('welcome')).peerId, 'wel-big');
    await a.close();
    await b.close();
  });
});

describe('requests', () => {
  test('ack only when the request carries a requestId; ping answers pong', async () => {
    const c = await peer('req-1');
    c.send({ type: 'subscribe', channel: 'req-room' });
    c.send({ type: 'ping' });
    await c.next('pong');
    assert.ok(await c.none('ack', 200), 'no ack without requestId');
    const a = await c.request({ type: 'subscribe', channel: 'req-room' });
    assert.equal(a.type, 'ack');
    c.send({ type: 'ping', requestId: 'p1' });
    await c.next('pong');
    assert.equal((await c.next((f) => f.type === 'ack' && f.requestId === 'p1')).requestId, 'p1');
    await c.close();
  });

  test('every error code, each leaving the connection open', async () => {
    const { token } = await mint('err-1', { channels: ['room-*', 'open/**'] });
    const c = await d.connect(token);
    const err = async (obj, code) => {
      const r = await c.request(obj);
      assert.equal(r.type, 'error', `${JSON.stringify(obj)} -> ${JSON.stringify(r)}`);
      assert.equal(r.code, code, JSON.stringify(r));
      assert.equal(typeof r.message, 'string');
    };
    // malformed_message: not JSON, not an object, bad requestId, bad type
    for (const raw of ['{nope', '[1,2]', '"str"', '42', 'null']) {
      c.send(raw);
      const e = await c.next('error');
      assert.equal(e.code, 'malformed_message', raw);
      assert.equal(e.requestId, undefined);
    }
    c.send({ type: 'ping', requestId: 'x'.repeat(129) });
    assert.equal((await c.next('error')).code, 'malformed_message');
    c.send({ type: 'ping', requestId: 7 });
    assert.equal((await c.next('error')).code, 'malformed_message');
    c.send({ requestId: 'nt' });
    const nt = await c.next('error');
    assert.deepEqual([nt.code, nt.requestId], ['malformed_message', 'nt']);
    // a requestId of exactly 128 characters is fine
    const ok128 = 'y'.repeat(128);
    c.send({ type: 'ping', requestId: ok128 });
    assert.equal((await c.next((f) => f.type === 'ack')).requestId, ok128);

    await err({ type: 'dance' }, 'unknown_type');
    await err({ type: 'subscribe' }, 'invalid_channel');
    await err({ type: 'subscribe', channel: '' }, 'invalid_channel');
    await err({ type: 'subscribe', channel: 'room-' + 'x'.repeat(252) }, 'invalid_channel'); // 257 bytes
    await err({ type: 'subscribe', channel: 42 }, 'invalid_channel');
    await err({ type: 'publish', channel: 'room-a\u0001', data: 1 }, 'invalid_channel');
    assert.equal((await c.request({ type: 'subscribe', channel: 'room-' + 'x'.repeat(251) })).type, 'ack'); // 256 bytes
    await err({ type: 'subscribe', channel: 'elsewhere' }, 'channel_not_authorized');
    await err({ type: 'publish', channel: 'room-a/b', data: 1 }, 'channel_not_authorized');
    for (const ch of ['_rtm/x', '_internal/x', '_system/x']) await err({ type: 'subscribe', channel: ch }, 'channel_reserved');
    await err({ type: 'publish', channel: '_rtm/x', data: 1 }, 'channel_reserved');
    await err({ type: 'publish', channel: 'room-a' }, 'missing_data');
    await err({ type: 'send', to: 'err-2' }, 'missing_data');
    await err({ type: 'send', to: '', data: 1 }, 'invalid_peer_id');
    await err({ type: 'send', to: 'a b', data: 1 }, 'invalid_peer_id');
    await err({ type: 'send', to: 'p'.repeat(129), data: 1 }, 'invalid_peer_id');
    await err({ type: 'send', data: 1 }, 'invalid_peer_id');
    await err({ type: 'send', to: 'nobody-here', data: 1 }, 'peer_not_found');
    // still open and answering
    c.send({ type: 'ping' });
    await c.next('pong');
    await c.close();
  });

  test('channel_limit_exceeded at the 101st channel; re-subscribing stays idempotent', async () => {
    const c = await peer('lim-1', { permissions: ['subscribe'] });
    for (let i = 0; i < 100; i++) c.send({ type: 'subscribe', channel: `lim-${i}`, requestId: `s${i}` });
    for (let i = 0; i < 100; i++) assert.equal((await c.next((f) => f.requestId === `s${i}`)).type, 'ack');
    const r = await c.request({ type: 'subscribe', channel: 'lim-100' });
    assert.deepEqual([r.type, r.code], ['error', 'channel_limit_exceeded']);
    assert.equal((await c.request({ type: 'subscribe', channel: 'lim-5' })).type, 'ack');
    assert.equal((await c.request({ type: 'unsubscribe', channel: 'lim-5' })).type, 'ack');
    assert.equal((await c.request({ type: 'subscribe', channel: 'lim-100' })).type, 'ack');
    await c.close();
  });
});

describe('publish', () => {
  test('fans out to the other subscribers, never echoed; the publisher need not be subscribed', async () => {
    const a = await peer('pub-a', { peerMetadata: { name: 'Ann' } });
    const b = await peer('pub-b');
    const c = await peer('pub-c');
    const e = await peer('pub-e');
    for (const x of [a, b, c]) assert.equal((await x.request({ type: 'subscribe', channel: 'pub-room' })).type, 'ack');
    const data = { sdp: 'v=0\r\n', n: [1, 2.5, -3e-7], t: true, s: 'é😀', nested: { x: null } };
    assert.equal((await a.request({ type: 'publish', channel: 'pub-room', data })).type, 'ack');
    for (const x of [b, c]) {
      const m = await x.next('message');
      assert.deepEqual(m, { type: 'message', channel: 'pub-room', from: 'pub-a', data });
    }
    assert.ok(await a.none('message', 300), 'no echo to the sender');
    // a non-subscriber publishes; all three subscribers receive it
    assert.equal((await e.request({ type: 'publish', channel: 'pub-room', data: 'hello' })).type, 'ack');
    for (const x of [a, b, c]) assert.equal((await x.next('message')).data, 'hello');
    assert.ok(await e.none('message', 200), 'a non-subscriber receives nothing');
    // data may be any JSON value, null included
    for (const v of [null, 0, 'x', [], {}]) {
      await a.request({ type: 'publish', channel: 'pub-room', data: v });
      assert.deepEqual((await b.next('message')).data, v);
      assert.deepEqual((await c.next('message')).data, v);
    }
    for (const x of [a, b, c, e]) await x.close();
  });

  test('fromMetadata only for subscribers that asked includeSenderMetadata', async () => {
    const a = await peer('meta-a', { peerMetadata: { name: 'Ann', avatar: 3 } });
    const b = await peer('meta-b');
    const c = await peer('meta-c');
    await b.request({ type: 'subscribe', channel: 'meta-room', includeSenderMetadata: true });
    await c.request({ type: 'subscribe', channel: 'meta-room' });
    await a.request({ type: 'publish', channel: 'meta-room', data: { k: 1 } });
    const mb = await b.next('message');
    const mc = await c.next('message');
    assert.deepEqual(mb.fromMetadata, { name: 'Ann', avatar: 3 });
    assert.equal('fromMetadata' in mc, false);
    // a sender without peerMetadata: no fromMetadata even when asked
    await c.request({ type: 'publish', channel: 'meta-room', data: 2 });
    assert.equal('fromMetadata' in (await b.next('message')), false);
    for (const x of [a, b, c]) await x.close();
  });

  test('many queued frames reach a subscriber complete and in order', async () => {
    const a = await peer('ord-a');
    const b = await peer('ord-b');
    await b.request({ type: 'subscribe', channel: 'ord' });
    const N = 150; // under the default burst of 200
    for (let i = 0; i < N; i++) a.send({ type: 'publish', channel: 'ord', data: { i, pad: 'z'.repeat(i * 37 % 900) } });
    for (let i = 0; i < N; i++) assert.equal((await b.next('message')).data.i, i);
    // one large frame (beyond 64 KiB of frame header space: a 16-bit length)
    const big = 'q'.repeat(60000);
    a.send({ type: 'publish', channel: 'ord', data: big });
    assert.equal((await b.next('message')).data, big);
    await a.close();
    await b.close();
  });
});

describe('direct send', () => {
  test('reaches every connection of a peer sharing a channel, with fromMetadata', async () => {
    const a = await peer('dm-a', { peerMetadata: { role: 'host' } });
    const b1 = await peer('dm-b');
    const b2 = await peer('dm-b');
    const z = await peer('dm-z');
    await a.request({ type: 'subscribe', channel: 'dm-room' });
    await b1.request({ type: 'subscribe', channel: 'dm-room' });
    assert.equal((await a.request({ type: 'send', to: 'dm-b', data: { offer: 1 } })).type, 'ack');
    for (const x of [b1, b2]) {
      assert.deepEqual(await x.next('direct'), { type: 'direct', from: 'dm-a', data: { offer: 1 }, fromMetadata: { role: 'host' } });
    }
    // outside a shared channel: peer_not_found, same as an unknown peer
    const r = await z.request({ type: 'send', to: 'dm-b', data: 1 });
    assert.deepEqual([r.type, r.code], ['error', 'peer_not_found']);
    const r2 = await a.request({ type: 'send', to: 'dm-z', data: 1 });
    assert.deepEqual([r2.type, r2.code], ['error', 'peer_not_found']);
    // b answers a: no fromMetadata without peerMetadata
    await b2.request({ type: 'subscribe', channel: 'dm-room' });
    await b2.request({ type: 'send', to: 'dm-a', data: 'answer' });
    assert.deepEqual(await a.next('direct'), { type: 'direct', from: 'dm-b', data: 'answer' });
    assert.ok(await z.none('direct', 200));
    // after the recipient leaves the shared channel
    await b1.request({ type: 'unsubscribe', channel: 'dm-room' });
    await b2.request({ type: 'unsubscribe', channel: 'dm-room' });
    const r3 = await a.request({ type: 'send', to: 'dm-b', data: 1 });
    assert.equal(r3.code, 'peer_not_found');
    for (const x of [a, b1, b2, z]) await x.close();
  });
});

describe('permissions', () => {
  for (const p of ALL) {
    test(`a token without ${p} is refused exactly the ${p} action`, async () => {
      const perms = ALL.filter((x) => x !== p);
      const c = await peer(`perm-${p}`, { permissions: perms });
      const other = await peer(`perm-${p}-other`);
      await other.request({ type: 'subscribe', channel: `perm-${p}` });
      const tries = {
        subscribe: { type: 'subscribe', channel: `perm-${p}` },
        publish: { type: 'publish', channel: `perm-${p}`, data: 1 },
        send: { type: 'send', to: `perm-${p}-other`, data: 1 },
      };
      for (const [action, req] of Object.entries(tries)) {
        const r = await c.request(req);
        if (action === p) assert.deepEqual([r.type, r.code], ['error', 'action_not_permitted'], action);
        else if (action === 'send' && p === 'subscribe') assert.equal(r.code, 'peer_not_found'); // shares no channel
        else assert.equal(r.type, 'ack', `${action}: ${JSON.stringify(r)}`);
      }
      if (p === 'presence') {
        // subscribed without presence: no presence frames, yet visible to others
        assert.ok(await c.none('presence', 300));
        const j = await other.next((f) => f.type === 'presence' && f.joined.some((m) => m.peerId === 'perm-presence'));
        assert.ok(j);
      } else if (p !== 'subscribe') {
        assert.ok(await c.next('presence'));
      }
      await c.close();
      await other.close();
    });
  }
});

describe('bad frames close the connection, others untouched', () => {
  test('binary frame: 1003', async () => {
    const bystander = await peer('bin-by');
    const c = await peer('bin-1');
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    const info = await c.closed;
    assert.equal(info.code, 1003);
    bystander.send({ type: 'ping' });
    await bystander.next('pong');
    await bystander.close();
  });

  test('text that is not UTF-8: 1007', async () => {
    const bystander = await peer('utf-by');
    const c = await peer('utf-1');
    c.ws.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false });
    const info = await c.closed;
    assert.equal(info.code, 1007);
    // overlong encoding and a lone surrogate are not UTF-8 either
    for (const bytes of [[0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
      const x = await peer('utf-2');
      x.ws.send(Buffer.from(bytes), { binary: false });
      assert.equal((await x.closed).code, 1007);
    }
    bystander.send({ type: 'ping' });
    await bystander.next('pong');
    await bystander.close();
  });

  test('a fragmented text message is reassembled', async () => {
    const a = await peer('frag-a');
    const b = await peer('frag-b');
    await b.request({ type: 'subscribe', channel: 'frag' });
    const text = JSON.stringify({ type: 'publish', channel: 'frag', data: 'x'.repeat(20000), requestId: 'f1' });
    const mid = 10001;
    a.ws.send(text.slice(0, mid), { fin: false });
    a.ws.send(text.slice(mid), { fin: true });
    assert.equal((await a.next('ack')).requestId, 'f1');
    assert.equal((await b.next('message')).data.length, 20000);
    await a.close();
    await b.close();
  });
});

describe('the public listener\'s HTTP', () => {
  test('serves web_root at / (index.html) and /sdk/rtm.js; 404 for unknown paths and /demo/token when off', async () => {
    let r = await fetch(`${d.publicUrl}/`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /text\/html/);
    assert.equal(await r.text(), readFileSync(join(ROOT, 'web', 'index.html'), 'utf8'));
    r = await fetch(`${d.publicUrl}/sdk/rtm.js`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /javascript/);
    assert.equal(await r.text(), readFileSync(join(ROOT, 'web', 'sdk', 'rtm.js'), 'utf8'));
    for (const p of ['/no-such-file.html', '/demo/token?room=a&name=b']) {
      r = await fetch(`${d.publicUrl}${p}`);
      await r.text();
      assert.equal(r.status, 404, p);
    }
  });

  test('GET /demo/token answers JSON with no-store when demo-token is on', async () => {
    const keyFile = join(d.dir, 'dev-key.json');
    writeFileSync(keyFile, JSON.stringify(d.key));
    const e = await startRtmd({ key: d.key, dir: d.dir, keepDir: true, config: { db: d.db, 'demo-token': true, 'demo-key-file': keyFile, 'rate-connects-per-ip-per-minute': 0 } });
    try {
      const r = await fetch(`${e.publicUrl}/demo/token?room=lobby&name=Ann`);
      assert.equal(r.status, 200, await r.clone().text());
      assert.equal(r.headers.get('cache-control'), 'no-store');
      const j = await r.json();
      assert.equal(typeof j.token, 'string');
      const c = await e.connect(j.token);
      assert.equal(c.welcome.peerId, j.peerId);
      await c.close();
      const bad = await fetch(`${e.publicUrl}/demo/token?room=${encodeURIComponent('a b')}&name=x`);
      assert.ok(bad.status >= 400 && bad.status < 500, String(bad.status));
      assert.match(bad.headers.get('content-type'), /json/);
      await bad.text();
      // A page asks again for its own peerId (refresh, reconnect): same peer, fresh token.
      const again = await (await fetch(`${e.publicUrl}/demo/token?room=lobby&name=Ann&peer=${j.peerId}`)).json();
      assert.equal(again.peerId, j.peerId);
      assert.notEqual(again.token, j.token);
      const fresh = await (await fetch(`${e.publicUrl}/demo/token?room=lobby&name=Ann`)).json();
      assert.notEqual(fresh.peerId, j.peerId);
      // Only ids of the shape the endpoint issues can be asked for.
      for (const p of ['alice', 'demo-zz', `${j.peerId}0`]) {
        const r2 = await fetch(`${e.publicUrl}/demo/token?room=lobby&name=Ann&peer=${encodeURIComponent(p)}`);
        assert.equal(r2.status, 400, p);
        await r2.text();
      }
    } finally { await e.stop(); }
  });
});

test('the daemon is still up after all of it', async () => {
  const c = await peer('last');
  c.send({ type: 'ping' });
  await c.next('pong');
  await c.close();
  await sleep(10);
});
