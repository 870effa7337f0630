// protocol_frames.test.mjs: RFC 6455 corners against a real rtmd, over raw
// sockets where a WebSocket library would not send the bytes: a frame whose
// header announces more than max-message-size is refused with 1009 as soon
// as lws hands over its first 1 KB (not after buffering up to the bound), and the client reads the 1009 (a
// lingering close, not a reset) even while it is still sending megabytes;
// malformed frames that lws 4.1.6 parses get 1002. What lws 4.1.6 does not
// let rtm see (an unmasked client frame, a 64-bit length with the top bit
// set) is listed in docs/PROTOCOL.md.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { startRtmd, sleep } from '../lib/rtmd.mjs';

function header(len, { fin = true, opcode = 1, rsv = 0 } = {}) {
  const b = [(fin ? 0x80 : 0) | rsv | opcode];
  if (len < 126) b.push(0x80 | len);
  else if (len < 65536) b.push(0x80 | 126, len >> 8, len & 255);
  else {
    const big = Buffer.alloc(8);
    big.writeBigUInt64BE(BigInt(len));
    b.push(0x80 | 127, ...big);
  }
  return Buffer.concat([Buffer.from(b), Buffer.alloc(4)]); // a zero mask key: the payload goes as is
}

// A raw WebSocket client: upgrade, then bytes in and frames out.
async function rawClient(d, token) {
  const s = net.connect(d.publicPort, '127.0.0.1');
  s.write(`GET /v1?token=${encodeURIComponent(token)} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  const c = { s, buf: Buffer.alloc(0), ended: false, reset: false, closeAt: 0 };
  s.on('data', (x) => { c.buf = Buffer.concat([c.buf, x]); });
  s.on('error', (e) => { if (e.code === 'ECONNRESET') c.reset = true; });
  s.on('end', () => { c.ended = true; });
  c.frames = () => {
    const i = c.buf.indexOf('\r\n\r\n');
    let p = i < 0 ? Buffer.alloc(0) : c.buf.subarray(i + 4);
    const out = [];
    while (p.length >= 2) {
      let len = p[1] & 127, off = 2;
      if (len === 126) { len = p.readUInt16BE(2); off = 4; } else if (len === 127) { len = Number(p.readBigUInt64BE(2)); off = 10; }
      if (p.length < off + len) break;
      const pl = p.subarray(off, off + len);
      out.push((p[0] & 15) === 8 ? { close: pl.readUInt16BE(0), reason: pl.subarray(2).toString() } : JSON.parse(pl.toString()));
      p = p.subarray(off + len);
    }
    return out;
  };
  c.closeFrame = () => c.frames().find((f) => f.close);
  const end = Date.now() + 3000;
  while (!c.frames().some((f) => f.type === 'welcome')) {
    if (Date.now() > end) throw new Error('no welcome');
    await sleep(10);
  }
  return c;
}

async function waitFor(fn, ms = 3000) {
  const end = Date.now() + ms;
  while (Date.now() < end) { const v = fn(); if (v) return v; await sleep(10); }
  return fn();
}

describe('frames', () => {
  let d;
  before(async () => { d = await startRtmd({ config: { 'rate-connects-per-ip-per-minute': 0, 'max-message-size': 65536 } }); });
  after(async () => { await d.cleanup(); });
  const token = async (peerId) => (await d.mint({ peerId })).token;

  // lws 4.1.6 calls back with the first RX_CHUNK (1 KB) of a payload, not at
  // the header itself: that is the earliest the broker can refuse.
  test('a frame announcing more than max-message-size gets 1009 with the first 1 KB of its payload', async () => {
    const c = await rawClient(d, await token('big-header'));
    c.s.write(header(10 << 20));
    c.s.write(Buffer.alloc(2048, 0x61)); // 2 KB of the announced 10 MB, then nothing
    const f = await waitFor(() => c.closeFrame(), 2000);
    assert.deepEqual(f, { close: 1009, reason: 'message too big' });
    // a fragment counts what came before it: 60 KB then a fragment announcing 10 KB
    const g = await rawClient(d, await token('big-fragment'));
    g.s.write(Buffer.concat([header(60000, { fin: false }), Buffer.alloc(60000, 0x20)]));
    g.s.write(Buffer.concat([header(10000, { fin: true, opcode: 0 }), Buffer.alloc(2048, 0x20)]));
    assert.deepEqual(await waitFor(() => g.closeFrame(), 2000), { close: 1009, reason: 'message too big' });
    c.s.destroy();
    g.s.destroy();
  });

  test('lingering close: a client still sending megabytes reads 1009, not a reset', async () => {
    for (const mb of [2, 8, 32, 8, 32]) {
      const c = await rawClient(d, await token(`linger-${mb}`));
      const chunk = Buffer.alloc(256 << 10, 0x61);
      c.s.write(header(mb << 20));
      let sent = 0;
      // keep writing as a client would that does not read while it sends
      while (sent < (mb << 20) && !c.s.destroyed && !c.ended) {
        if (!c.s.write(chunk)) await new Promise((r) => { c.s.once('drain', r); setTimeout(r, 200); });
        sent += chunk.length;
      }
      const f = await waitFor(() => c.closeFrame() || c.reset, 3000);
      assert.deepEqual(f, { close: 1009, reason: 'message too big' }, `${mb} MB: ${c.reset ? 'reset' : 'no close frame'}`);
      assert.equal(c.reset, false, `${mb} MB`);
      c.s.destroy();
    }
    // the broker lets a lingering socket go within its bound and serves the others
    const ok = await d.connect(await token('after-linger'));
    assert.equal((await ok.request({ type: 'ping' })).type, 'ack');
    await ok.close();
    assert.match(d.log, /code=1009/);
  });

  test('the ws library sending 8 MB and 32 MB messages reads 1009 every time', async () => {
    for (const mb of [8, 32, 8]) {
      const c = await d.connect(await token(`ws-${mb}`));
      c.ws.on('error', () => {});
      c.send({ type: 'publish', channel: 'x', data: 'y'.repeat(mb << 20) });
      const t = setTimeout(() => c.terminate(), 5000);
      assert.deepEqual(await c.closed, { code: 1009, reason: 'message too big' }, `${mb} MB`);
      clearTimeout(t);
    }
  });

  test('RFC 6455 violations lws 4.1.6 parses get 1002: reserved bits, unknown opcodes, a fragmented control frame', async () => {
    const p = Buffer.from('{"type":"ping"}');
    const cases = [
      [Buffer.concat([header(p.length, { rsv: 0x40 }), p]), 'rsv'],
      [Buffer.concat([header(p.length, { opcode: 3 }), p]), 'opcode'],
      [Buffer.concat([header(4, { opcode: 9, fin: false }), Buffer.alloc(4)]), 'fragmented ping'],
    ];
    for (const [bytes, what] of cases) {
      const c = await rawClient(d, await token('rfc-' + what.replace(/ /g, '-')));
      c.s.write(bytes);
      const f = await waitFor(() => c.closeFrame(), 2000);
      assert.equal(f && f.close, 1002, what);
      c.s.destroy();
    }
  });
});
