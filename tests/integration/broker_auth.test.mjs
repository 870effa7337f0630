// broker_auth.test.mjs: connecting with bad credentials against a real rtmd:
// every kind of bad token closes with 4001 and a reason naming the cause,
// after the upgrade, with no welcome; a token expiring closes with 4002 about
// 250 ms before exp; tokens never appear in the daemon's log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRtmd, rtmJson } from '../lib/rtmd.mjs';
import { frameChecker } from '../lib/schema.mjs';
import { signToken, expectClose } from './broker_util.mjs';

let d;
const frames = frameChecker();
const used = [];
before(async () => { d = frames.track(await startRtmd({ config: { 'rate-connects-per-ip-per-minute': 0 } })); });
after(async () => {
  try {
    frames.assertValid();
    for (const t of used) {
      const sig = t.split('.')[2] || t;
      if (sig.length >= 8) assert.ok(!d.log.includes(sig), 'a token appears in the log');
      assert.ok(!d.log.includes(t), 'a token appears in the log');
    }
  } finally { await d.cleanup(); }
});

async function refused(token, reason) {
  used.push(token);
  const r = await expectClose(d, `?token=${encodeURIComponent(token)}`);
  assert.equal(r.code, 4001, `${reason}: got ${r.code} ${r.reason}`);
  assert.equal(r.reason, reason);
  assert.deepEqual(r.frames, [], 'nothing sent before the close');
}

test('no token at all: 4001 missing token', async () => {
  const r = await expectClose(d, '');
  assert.deepEqual([r.code, r.reason, r.frames.length], [4001, 'missing token', 0]);
  const r2 = await expectClose(d, '?token=');
  assert.deepEqual([r2.code, r2.reason], [4001, 'missing token']);
});

test('garbage: 4001 malformed token', async () => {
  await refused('not-a-jwt', 'malformed token');
  await refused('a.b.c', 'malformed token');
});

test('no kid in the header: 4001 missing kid', async () => {
  await refused(signToken(d.key, { sub: 'nokid' }, { header: { kid: undefined } }), 'missing kid');
});

test('unknown kid: 4001 unknown key', async () => {
  await refused(signToken({ id: 'sk_id_00000000000000000000000000000000', secret: 'x' }, { sub: 'u' }), 'unknown key');
});

test('wrong signature: 4001 bad signature', async () => {
  await refused(signToken(d.key, { sub: 'forger' }, { secret: 'sk_secret_not-the-right-one' }), 'bad signature');
  const good = signToken(d.key, { sub: 'tamper' });
  const [h, , s] = good.split('.');
  const body = Buffer.from(JSON.stringify({ sub: 'tamper', iat: 1, exp: 9999999999, jti: 'j' })).toString('base64url');
  await refused(`${h}.${body}.${s}`, 'bad signature');
});

test('expired: 4001 token expired', async () => {
  const now = Math.floor(Date.now() / 1000);
  await refused(signToken(d.key, { sub: 'old', iat: now - 100, exp: now - 10 }), 'token expired');
});

test('alg none and other algorithms: 4001 algorithm not allowed', async () => {
  await refused(signToken(d.key, { sub: 'none' }, { header: { alg: 'none' }, sign: false }), 'algorithm not allowed');
  await refused(signToken(d.key, { sub: 'hs384' }, { header: { alg: 'HS384' } }), 'algorithm not allowed');
  await refused(signToken(d.key, { sub: 'rs256' }, { header: { alg: 'RS256' } }), 'algorithm not allowed');
});

test('ill-typed claims: 4001 invalid claims', async () => {
  await refused(signToken(d.key, { sub: 'bad perms', permissions: 'all' }), 'invalid claims: sub');
  await refused(signToken(d.key, { sub: 'p', permissions: 'all' }), 'invalid claims: permissions');
  await refused(signToken(d.key, { sub: 'e', exp: 'tomorrow' }), 'invalid claims: exp');
  await refused(signToken(d.key, { sub: 'c', channels: 'room' }), 'invalid claims: channels');
  await refused(signToken(d.key, { sub: 'm', metadata: [1] }), 'invalid claims: metadata');
});

test('scope wider than the key: 4001 channels/permissions outside key scope', async () => {
  const narrow = rtmJson(['key', 'create', '--db', d.db, '--app', d.app, '--channels', 'room-*', '--actions', 'subscribe,presence']);
  await refused(signToken(narrow, { sub: 'wide', channels: ['**'], permissions: ['subscribe'] }), 'channels outside key scope');
  await refused(signToken(narrow, { sub: 'wide', channels: ['room-1'], permissions: ['publish'] }), 'permissions outside key scope');
  // inside the scope it connects
  const ok = signToken(narrow, { sub: 'narrow-ok', channels: ['room-1'], permissions: ['subscribe'] });
  used.push(ok);
  const c = await d.connect(ok);
  assert.equal(c.welcome.peerId, 'narrow-ok');
  await c.close();
});

test('revoked key: live sessions close with 4012 within a second, new ones get 4001; a publishable key id as kid: 4001', async () => {
  const k = rtmJson(['key', 'create', '--db', d.db, '--app', d.app]);
  const t = signToken(k, { sub: 'before-revoke' });
  used.push(t);
  const c = await d.connect(t);
  // `rtm key revoke` is another process: the broker sees it through its
  // in-memory view (store-poll-ms), and closes the sessions on that key.
  const t0 = Date.now();
  rtmJson(['key', 'revoke', '--db', d.db, k.id]);
  const info = await c.closed;
  assert.deepEqual(info, { code: 4012, reason: 'key revoked' });
  assert.ok(Date.now() - t0 < 1000, `closed after ${Date.now() - t0} ms`);
  await refused(signToken(k, { sub: 'after-revoke' }), 'key revoked');
  const pk = rtmJson(['key', 'create', '--db', d.db, '--app', d.app, '--publishable']);
  await refused(signToken({ id: pk.id, secret: 'guess' }, { sub: 'pk-as-kid' }), 'unknown key');
});

test('a revoked token (by jti): 4001 token revoked', async () => {
  const { token } = await d.mint({ peerId: 'rev-jti' });
  const jti = JSON.parse(Buffer.from(token.split('.')[1], 'base64url')).jti;
  const r = await d.api('POST', '/v1/revocations', { jti, expiresAt: Math.floor(Date.now() / 1000) + 600 });
  assert.ok(r.status === 201 || r.status === 200, r.text);
  await refused(token, 'token revoked');
});

test('the daemon keeps serving good tokens through all of it', async () => {
  const { token } = await d.mint({ peerId: 'still-ok' });
  used.push(token);
  const c = await d.connect(token);
  c.send({ type: 'ping' });
  await c.next('pong');
  await c.close();
});

test('expiry: closed with 4002 about 250 ms before exp, after working normally', async () => {
  const m = await d.mint({ peerId: 'short-lived', expiresInSec: 2 });
  used.push(m.token);
  const c = await d.connect(m.token);
  assert.equal(c.welcome.expiresAt, m.expiresAt);
  c.send({ type: 'ping' });
  await c.next('pong');
  const info = await c.closed;
  const at = Date.now();
  assert.deepEqual([info.code, info.reason], [4002, 'token expired']);
  const exp = m.expiresAt * 1000;
  assert.ok(at < exp, `closed ${exp - at} ms before exp`);
  assert.ok(at > exp - 1000, `closed ${exp - at} ms before exp (want about 250)`);
});
