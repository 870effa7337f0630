// protocol_corners.test.mjs: issue 10's small corners against a real rtmd:
// the Origin rule (a browser control), reserved channels refused by the
// mint API and server publish, Cache-Control: no-store on every mint API
// reply, the requestId on every error a request causes (dropped and
// partly-read frames included), "\u0000" and control characters in valid
// JSON, and every frame checked against schema/frames.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRtmd, rtmJson } from '../lib/rtmd.mjs';
import { frameChecker } from '../lib/schema.mjs';
import { expectClose, signToken } from './broker_util.mjs';

const NOIP = { 'rate-connects-per-ip-per-minute': 0 };
const frames = frameChecker();
after(() => { frames.assertValid(); });

describe('protocol corners', () => {
  let d;
  before(async () => { d = frames.track(await startRtmd({ config: NOIP })); });
  after(async () => { await d.cleanup(); });
  const connect = async (peerId, extra = {}) => d.connect((await d.mint({ peerId, ...extra })).token);

  test('Origin allowlist: a secret-key token without Origin is served, a listed one too, an unlisted one gets 4003; pk_ needs a listed Origin', async () => {
    const sk = rtmJson(['key', 'create', '--db', d.db, '--app', d.app, '--origins', 'https://app.example.com']);
    const t = signToken(sk, { sub: 'node-bot' });
    const bot = await d.open(`?token=${t}`); // ws sends no Origin unless told
    assert.equal((await bot.next('welcome')).peerId, 'node-bot');
    await bot.close();
    const web = await d.open(`?token=${t}`, { headers: { origin: 'https://app.example.com' } });
    assert.equal((await web.next('welcome')).peerId, 'node-bot');
    await web.close();
    const r = await expectClose(d, `?token=${t}`, { headers: { origin: 'https://evil.example.com' } });
    assert.deepEqual([r.code, r.reason, r.frames.length], [4003, 'origin not allowed', 0]);
    const pk = rtmJson(['key', 'create', '--db', d.db, '--app', d.app, '--publishable', '--origins', 'https://app.example.com']);
    const p = await expectClose(d, `?key=${pk.id}`);
    assert.deepEqual([p.code, p.reason, p.frames.length], [4003, 'origin not allowed', 0]);
    const pw = await d.open(`?key=${pk.id}`, { headers: { origin: 'https://app.example.com' } });
    assert.ok((await pw.next('welcome')).peerId);
    await pw.close();
  });

  test('reserved channels: 400 channel_reserved from POST /v1/tokens and POST /v1/publish', async () => {
    for (const ch of ['_rtm/x', '_internal/a/b', '_system/**']) {
      const r = await d.api('POST', '/v1/tokens', { peerId: 'res', channels: ['ok', ch] });
      assert.equal(r.status, 400, ch);
      assert.equal(r.json.error, 'channel_reserved', ch);
      const p = await d.api('POST', '/v1/publish', { channel: ch.replace('**', 'x'), data: 1 });
      assert.equal(p.status, 400, ch);
      assert.equal(p.json.error, 'channel_reserved', ch);
    }
    // the broker still says the same on the socket
    const c = await connect('res-sock', { channels: ['**'] });
    const e = await c.request({ type: 'subscribe', channel: '_rtm/x' });
    assert.deepEqual([e.code, e.requestId], ['channel_reserved', 'r1']);
    await c.close();
  });

  test('every mint API reply carries Cache-Control: no-store, errors included', async () => {
    const replies = [
      await d.api('POST', '/v1/tokens', { peerId: 'cc' }),
      await d.api('POST', '/v1/tokens', { peerId: '' }),
      await d.api('POST', '/v1/tokens', { peerId: 'cc' }, { auth: 'sk_wrong' }),
      await d.api('GET', '/v1/nothing-here'),
      await d.api('DELETE', '/v1/tokens'),
      await d.api('GET', '/healthz', undefined, { auth: null }),
      await d.api('GET', '/metrics', undefined, { auth: null }),
      await d.api('GET', '/.well-known/jwks.json', undefined, { auth: null }),
      await d.api('POST', '/v1/turn-credentials', { peerId: 'cc' }),
      await d.api('GET', '/v1/sessions?limit=0'),
    ];
    assert.deepEqual(replies.map((r) => r.status), [200, 400, 401, 404, 405, 200, 200, 200, 200, 400]);
    for (const r of replies) assert.equal(r.headers.get('cache-control'), 'no-store', `${r.status} ${r.text.slice(0, 80)}`);
  });

  test('"\\u0000" is valid JSON: a channel or peerId with a control character gets its own code and the requestId', async () => {
    const a = await connect('nul-a', { channels: ['**'] });
    const b = await connect('nul-b', { channels: ['**'] });
    a.send('{"type":"subscribe","channel":"room\\u0000x","requestId":"z1"}');
    let e = await a.next('error');
    assert.deepEqual([e.code, e.requestId], ['invalid_channel', 'z1']);
    a.send('{"type":"publish","channel":"tab\\there","data":1,"requestId":"z2"}');
    e = await a.next('error');
    assert.deepEqual([e.code, e.requestId], ['invalid_channel', 'z2']);
    a.send('{"type":"send","to":"nul-b\\u0000","data":1,"requestId":"z3"}');
    e = await a.next('error');
    assert.deepEqual([e.code, e.requestId], ['invalid_peer_id', 'z3']);
    a.send('{"type":"send","to":"nul\\u001fb","data":1,"requestId":"z4"}');
    e = await a.next('error');
    assert.deepEqual([e.code, e.requestId], ['invalid_peer_id', 'z4']);
    // data holding "\u0000" is delivered as sent
    assert.equal((await b.request({ type: 'subscribe', channel: 'nul-room' })).type, 'ack');
    assert.equal((await a.request({ type: 'subscribe', channel: 'nul-room' })).type, 'ack');
    a.send('{"type":"publish","channel":"nul-room","data":{"s":"a\\u0000b"},"requestId":"z5"}');
    assert.equal((await a.next((f) => f.requestId === 'z5')).type, 'ack');
    const m = await b.next('message');
    assert.equal(m.data.s, 'a\u0000b');
    await a.close();
    await b.close();
  });

  test('a frame read only partly still gets its requestId: malformed JSON after the requestId', async () => {
    const a = await connect('part-a');
    a.send('{"requestId":"p1","type":"publish","channel":"x","data":{');
    let e = await a.next('error');
    assert.deepEqual([e.code, e.requestId], ['malformed_message', 'p1']);
    a.send('{"type":"publish", "requestId" : "p2" , "data": [1,2,,]}');
    e = await a.next('error');
    assert.deepEqual([e.code, e.requestId], ['malformed_message', 'p2']);
    a.send('not json at all');
    e = await a.next('error');
    assert.deepEqual([e.code, e.requestId], ['malformed_message', undefined]);
    // the session is fine after all that
    assert.equal((await a.request({ type: 'ping' })).type, 'ack');
    await a.close();
  });
});

test('over_message_quota carries the dropped frame\'s requestId', async () => {
  const d = frames.track(await startRtmd({ config: { ...NOIP, 'rate-frames-per-second': 5, 'rate-frames-burst': 5 } }));
  try {
    const c = await d.connect((await d.mint({ peerId: 'quota' })).token);
    for (let i = 0; i < 20; i++) c.send({ type: 'ping', requestId: `q${i}` });
    const e = await c.next((f) => f.type === 'error' && f.code === 'over_message_quota');
    assert.match(e.requestId, /^q\d+$/);
    // the id is the dropped frame's: that request got no ack
    await c.next((f) => f.type === 'ack' && f.requestId === 'q0');
    assert.ok(!c.all.some((f) => f.type === 'ack' && f.requestId === e.requestId));
    await c.close();
  } finally { await d.cleanup(); }
});

describe('bad tokens get 4001 with a reason', () => {
  let d;
  before(async () => { d = frames.track(await startRtmd({ config: NOIP })); });
  after(async () => { await d.cleanup(); });
  // a signed token padded to about `bytes` with a claim nobody reads
  const padded = (bytes) => signToken(d.key, { sub: 'big', pad: 'x'.repeat(Math.floor(bytes * 3 / 4)) });

  test('a 20 KB token fits (query and Authorization); one over 24 KB is refused "token too large", whatever else it is', async () => {
    const ok = padded(20 * 1024);
    assert.ok(ok.length > 20000 && ok.length < 24576, String(ok.length));
    const q = await d.open(`?token=${ok}`);
    assert.equal((await q.next('welcome')).peerId, 'big');
    await q.close();
    const h = await d.open('', { headers: { authorization: `Bearer ${ok}` } });
    assert.equal((await h.next('welcome')).peerId, 'big');
    await h.close();
    for (const big of [padded(30 * 1024), 'not.a.token' + 'x'.repeat(30 * 1024)]) {
      let r = await expectClose(d, `?token=${big}`);
      assert.deepEqual([r.code, r.reason, r.frames.length], [4001, 'token too large', 0]);
      r = await expectClose(d, '', { headers: { authorization: `Bearer ${big}` } });
      assert.deepEqual([r.code, r.reason, r.frames.length], [4001, 'token too large', 0]);
    }
  });

  test('garbage of every kind in ?token= gets 4001 with a reason', async () => {
    for (const t of ['x', 'a.b', 'a.b.c', '...', 'eyJhbGciOiJub25lIn0.e30.', encodeURIComponent('ü.ö.ä'), '%2e%2e%2e']) {
      const r = await expectClose(d, `?token=${t}`);
      assert.equal(r.code, 4001, t);
      assert.ok(r.reason.length > 0, t);
    }
  });

  test('bad percent-encoding in the query gets 4001', { todo: 'lws 4.1.6 refuses a malformed %-escape in the request line with HTTP 403 (and %00 with no answer) while parsing the head, before any callback: see docs/PROTOCOL.md' }, async () => {
    const r = await expectClose(d, '?token=%zz');
    assert.equal(r.code, 4001);
  });
});
