// token_bind.test.mjs: the mint API's optional bind {ip, userAgent}
// (docs/EXTENSIONS.md, "Binding a token to its client") against a real rtmd:
// the values go into the token as salted hashes, never in clear; the broker
// serves a bound token only to a client with that address and User-Agent,
// else 4001 "token bound to another client", at connect and at an in-band
// refresh; malformed bind objects get 400.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRtmd } from '../lib/rtmd.mjs';
import { frameChecker } from '../lib/schema.mjs';
import { claimsOf, expectClose } from './broker_util.mjs';

const frames = frameChecker();
let d;
before(async () => { d = frames.track(await startRtmd({ config: { 'rate-connects-per-ip-per-minute': 0 } })); });
after(async () => { try { frames.assertValid(); } finally { await d.cleanup(); } });

const UA = 'BindTest/1.0 (node)';
const mint = (bind, peerId = 'bound') => d.mint({ peerId, bind });
const open = (token, ua, extra = '') => d.open(`?token=${token}${extra}`, { headers: ua ? { 'user-agent': ua } : {} });

test('bind.ip: served from that address (IPv4 or its IPv4-mapped IPv6 spelling), 4001 from another; stored hashed', async () => {
  for (const ip of ['127.0.0.1', '::ffff:127.0.0.1']) {
    const { token } = await mint({ ip });
    const c = await open(token);
    assert.equal((await c.next('welcome')).peerId, 'bound', ip);
    await c.close();
    const claims = claimsOf(token);
    assert.match(claims.bind.ip, /^[A-Za-z0-9_-]{43}$/);
    // (metadata.iceServers name the TURN server, on 127.0.0.1 here: not the bound address)
    assert.ok(!JSON.stringify({ ...claims, metadata: undefined }).includes('127.0.0.1'), 'the address is not in the token');
  }
  const { token } = await mint({ ip: '203.0.113.7' });
  const r = await expectClose(d, `?token=${token}`);
  assert.deepEqual([r.code, r.reason, r.frames.length], [4001, 'token bound to another client', 0]);
  // the same address hashes differently in another token (the jti salts it)
  const [a, b] = [await mint({ ip: '127.0.0.1' }), await mint({ ip: '127.0.0.1' })];
  assert.notEqual(claimsOf(a.token).bind.ip, claimsOf(b.token).bind.ip);
});

test('bind.userAgent: served with that User-Agent only; both together must both match', async () => {
  const { token } = await mint({ userAgent: UA });
  assert.ok(!JSON.stringify(claimsOf(token)).includes('BindTest'));
  const ok = await open(token, UA);
  assert.equal((await ok.next('welcome')).peerId, 'bound');
  await ok.close();
  for (const ua of ['BindTest/1.1 (node)', undefined]) {
    const r = await expectClose(d, `?token=${token}`, { headers: ua ? { 'user-agent': ua } : {} });
    assert.deepEqual([r.code, r.reason], [4001, 'token bound to another client'], String(ua));
  }
  const both = (await mint({ ip: '127.0.0.1', userAgent: UA })).token;
  const c = await open(both, UA);
  assert.ok((await c.next('welcome')).peerId);
  await c.close();
  const wrongIp = (await mint({ ip: '10.1.2.3', userAgent: UA })).token;
  const r = await expectClose(d, `?token=${wrongIp}`, { headers: { 'user-agent': UA } });
  assert.equal(r.code, 4001);
});

test('an in-band refresh with a token bound to another client is refused and changes nothing', async () => {
  const c = await open((await mint(undefined, 'ref-bound')).token, UA, '&ext=1');
  await c.next('welcome');
  const other = (await mint({ userAgent: 'SomeoneElse/2' }, 'ref-bound')).token;
  const r = await c.request({ type: 'refresh', token: other });
  assert.deepEqual([r.type, r.code, r.message], ['error', 'invalid_token', 'token bound to another client']);
  const mine = (await mint({ userAgent: UA }, 'ref-bound')).token;
  assert.equal((await c.request({ type: 'refresh', token: mine })).type, 'ack');
  await c.close();
});

test('a malformed bind is 400 invalid_request', async () => {
  for (const bind of [{}, { ip: 'not-an-ip' }, { ip: 42 }, { userAgent: '' }, { userAgent: 'x'.repeat(513) }, { mac: 'aa' }, 'x']) {
    const r = await d.api('POST', '/v1/tokens', { peerId: 'bad-bind', bind });
    assert.equal(r.status, 400, JSON.stringify(bind));
    assert.equal(r.json.error, 'invalid_request', JSON.stringify(bind));
  }
});
