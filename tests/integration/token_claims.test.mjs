// token_claims.test.mjs: issue 11 defects 1 and 3 and issue 10's registered
// claims, against a real rtmd:
// - a token with an empty signature segment and the kid of an RS256 or ES256
//   key is refused with 4001 before libjwt sees it (libjwt 1.10.2 wrote one
//   byte past a zero-size buffer: this daemon runs under valgrind, which is
//   what sees that write, and stop() fails on any valgrind error);
// - nbf or iat beyond clock-leeway-seconds: 4001 "token not yet valid";
// - max-token-lifetime refuses exp - iat above it, whoever signed the token;
// - exp around 9.2e15 (once a welcome and an immediate 4002, and a UBSan
//   abort) is "invalid claims: exp" and the daemon serves on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign as cryptoSign, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startRtmd, rtmJson, BUILD } from '../lib/rtmd.mjs';
import { signToken, expectClose, b64u } from './broker_util.mjs';

// ASan builds cannot run under valgrind (and ASan does not see writes made
// inside the uninstrumented libb64): there the test still checks the answer.
const underValgrind = !/asan/.test(BUILD);
let d, strict;
const now = () => Math.floor(Date.now() / 1000);

before(async () => {
  d = await startRtmd({ valgrind: underValgrind, config: { 'clock-leeway-seconds': 30 } });
  strict = await startRtmd({ config: { 'max-token-lifetime': 600 } });
});
after(async () => {
  try { await d.stop(); } finally { await d.cleanup(); await strict.cleanup(); }
});

function asymToken(alg, kid, privateKey, claims, { emptySig = false } = {}) {
  const h = { alg, typ: 'JWT', kid };
  const c = { sub: 'asym-' + randomBytes(3).toString('hex'), iat: now(), exp: now() + 600, jti: randomBytes(8).toString('hex'), ...claims };
  const body = `${b64u(JSON.stringify(h))}.${b64u(JSON.stringify(c))}`;
  if (emptySig) return `${body}.`;
  const sig = cryptoSign('sha256', Buffer.from(body), alg === 'ES256' ? { key: privateKey, dsaEncoding: 'ieee-p1363' } : privateKey);
  return `${body}.${b64u(sig)}`;
}

// d runs under valgrind: a welcome can take longer than the harness's 3 s on a loaded machine.
async function connectSlow(dd, token) {
  const c = await dd.open(`?token=${encodeURIComponent(token)}`);
  c.welcome = await c.next('welcome', 20000);
  return c;
}

async function refused(dd, token, reason) {
  const r = await expectClose(dd, `?token=${encodeURIComponent(token)}`, {}, 15000);
  assert.deepEqual([r.code, r.reason, r.frames.length], [4001, reason, 0], `${reason}: got ${r.code} ${r.reason}`);
}

for (const [alg, gen] of [['RS256', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
  ['ES256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' })]]) {
  test(`${alg}: an empty signature segment is refused before libjwt (4001 bad signature, valgrind clean)`, async () => {
    const kp = gen();
    const kid = `${alg.toLowerCase()}-empty-sig`;
    const file = join(d.dir, `${kid}.pem`);
    writeFileSync(file, kp.publicKey.export({ type: 'spki', format: 'pem' }));
    rtmJson(['key', 'create', '--db', d.db, '--app', d.app, '--alg', alg, '--kid', kid, '--public-key', file]);
    // the kid is public: anyone reads it from the JWKS endpoint
    const jwks = await d.api('GET', '/.well-known/jwks.json', undefined, { auth: null });
    assert.ok(jwks.json.keys.some((k) => k.kid === kid));
    const t = asymToken(alg, kid, kp.privateKey, {}, { emptySig: true });
    assert.ok(t.endsWith('.'));
    for (let i = 0; i < 3; i++) await refused(d, t, 'bad signature');
    // the same key still verifies real signatures
    const ok = asymToken(alg, kid, kp.privateKey, { sub: `${alg}-ok` });
    const c = await connectSlow(d, ok);
    assert.equal(c.welcome.peerId, `${alg}-ok`);
    await c.close();
  });
}

test('nbf beyond the clock leeway: 4001 token not yet valid; inside it: welcome', async () => {
  await refused(d, signToken(d.key, { sub: 'nbf-later', nbf: now() + 300 }), 'token not yet valid');
  await refused(d, signToken(d.key, { sub: 'nbf-later2', nbf: now() + 45 }), 'token not yet valid');
  const c = await connectSlow(d, signToken(d.key, { sub: 'nbf-skewed', nbf: now() + 10 })); // leeway 30 s here
  assert.equal(c.welcome.peerId, 'nbf-skewed');
  await c.close();
  await refused(d, signToken(d.key, { sub: 'nbf-string', nbf: String(now()) }), 'invalid claims: nbf');
});

test('iat far in the future: 4001 token not yet valid', async () => {
  await refused(d, signToken(d.key, { sub: 'iat-later', iat: now() + 3600, exp: now() + 7200 }), 'token not yet valid');
});

test('the default clock leeway is a few seconds', async () => {
  await refused(strict, signToken(strict.key, { sub: 'nbf-10', nbf: now() + 10 }), 'token not yet valid');
  const c = await strict.connect(signToken(strict.key, { sub: 'nbf-1', nbf: now() + 1 }));
  await c.close();
});

test('max-token-lifetime: exp - iat above it is refused, whoever signed the token', async () => {
  // signed with the key directly (as a backend's own minting library would)
  await refused(strict, signToken(strict.key, { sub: 'long', iat: now(), exp: now() + 3600 }), 'token lifetime too long');
  // rtm's own mint API keeps inside it: a longer expiresInSec is refused,
  // and the default lifetime (token-default-ttl 3600) is capped to it
  const r = await strict.api('POST', '/v1/tokens', { peerId: 'long-minted', expiresInSec: 3600 });
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.message, /between 1 and 600/);
  const m = await strict.mint({ peerId: 'default-minted' });
  assert.ok(m.expiresAt <= now() + 600, `minted for ${m.expiresAt - now()} s`);
  const cm = await strict.connect(m.token);
  await cm.close();
  const c = await strict.connect(signToken(strict.key, { sub: 'short', iat: now(), exp: now() + 600 }));
  assert.equal(c.welcome.peerId, 'short');
  await c.close();
  // off by default
  const c2 = await connectSlow(d, signToken(d.key, { sub: 'long-ok', iat: now(), exp: now() + 30 * 86400 }));
  await c2.close();
});

test('exp around 9.2e15 is refused as a claim, no welcome, and the daemon serves on', async () => {
  await refused(d, signToken(d.key, { sub: 'huge-exp', exp: 9.2e15 }), 'invalid claims: exp');
  await refused(d, signToken(d.key, { sub: 'huge-exp2', exp: 253402300800 }), 'invalid claims: exp');
  await refused(d, signToken(d.key, { sub: 'huge-iat', iat: 9.2e15, exp: 9.3e15 }), 'invalid claims: iat');
  const far = signToken(d.key, { sub: 'year-9999', exp: 253402300799 });
  const c = await connectSlow(d, far);
  assert.equal(c.welcome.expiresAt, 253402300799);
  c.send({ type: 'ping' });
  await c.next('pong', 20000);
  assert.equal(await c.none(() => true, 500), true, 'no 4002 right after the welcome');
  await c.close();
});

test('an in-band refresh goes through the same checks (nbf, lifetime)', async () => {
  const c = await strict.connect(signToken(strict.key, { sub: 'refresher', iat: now(), exp: now() + 300 }), '&ext=1');
  let r = await c.request({ type: 'refresh', token: signToken(strict.key, { sub: 'refresher', nbf: now() + 60, exp: now() + 300 }) });
  assert.deepEqual([r.type, r.code, r.message], ['error', 'invalid_token', 'token not yet valid']);
  r = await c.request({ type: 'refresh', token: signToken(strict.key, { sub: 'refresher', iat: now(), exp: now() + 3600 }) });
  assert.deepEqual([r.type, r.code, r.message], ['error', 'invalid_token', 'token lifetime too long']);
  r = await c.request({ type: 'refresh', token: signToken(strict.key, { sub: 'refresher', iat: now(), exp: now() + 500 }) });
  assert.equal(r.type, 'ack');
  await c.close();
});

test('the daemon that saw all of it exits cleanly (under valgrind: no invalid write)', async () => {
  const r = await d.stop(); // throws with valgrind's report on any error
  assert.equal(r.code, 0, d.log.slice(-2000));
});
