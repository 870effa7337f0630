// turn_coturn.test.mjs: TURN credentials minted by a real rtmd, checked by a
// real coturn (Debian's turnserver) with turnutils_uclient relaying through a
// turnutils_peer, all on loopback.
//
// What must hold (issue 2): credentials from a minted token's
// metadata.iceServers allocate; an expired credential and one signed with a
// secret coturn does not know are refused with 401; during a rotation
// (coturn lists both secrets) credentials signed with either allocate.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { startRtmd, sleep } from '../lib/rtmd.mjs';
import { startCoturn, uclient } from '../lib/coturn.mjs';

const started = [];
async function rtmd(opts) {
  const d = await startRtmd(opts);
  started.push(d);
  return d;
}
after(async () => {
  for (const d of started.splice(0)) {
    await d.cleanup();
    // Under ASan/UBSan builds (RTM_BUILD=build-asan-*) a report lands in the log.
    assert.doesNotMatch(d.log, /Sanitizer|runtime error:/, `rtmd reported:\n${d.log.slice(-3000)}`);
  }
});

function jwtPayload(token) {
  const parts = token.split('.');
  assert.equal(parts.length, 3, 'a compact JWS has three segments');
  return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
}

// The coturn REST scheme, computed here independently of rtm's C code.
function hmacCredential(secret, username) {
  return createHmac('sha1', secret).update(username).digest('base64');
}

function nowS() { return Math.floor(Date.now() / 1000); }

async function expectAllocates(t, username, credential, opts = {}) {
  const r = await uclient({ port: t.port, username, credential, ...opts });
  assert.equal(r.code, 0, `uclient should allocate and echo (exit ${r.code}):\n${r.output.slice(-1500)}`);
  assert.match(r.output, /Total lost packets 0 /, 'every message comes back through the relay');
  assert.ok(t.allocated(username), `coturn logs an ALLOCATE success for ${username}`);
}

async function expectRefused(t, username, credential) {
  const r = await uclient({ port: t.port, username, credential, messages: 2 });
  assert.equal(r.code, 255, `uclient should fail to allocate (exit ${r.code}):\n${r.output.slice(-1500)}`);
  assert.match(r.output, /Cannot complete Allocation/);
  assert.ok(t.unauthorized(username), `coturn logs error 401 for ${username}`);
  assert.ok(!t.allocated(username), 'and never an allocation');
}

// ---- the harness itself, with credentials computed in the test ----

let coturn;
before(async () => { coturn = await startCoturn({ secrets: ['harness-secret'] }); });
after(async () => { if (coturn) await coturn.stop(); });

test('harness: a credential signed with the configured secret allocates, another secret is refused', async () => {
  const user = `${nowS() + 600}:harness-ok`;
  await expectAllocates(coturn, user, hmacCredential('harness-secret', user));
  const bad = `${nowS() + 600}:harness-bad`;
  await expectRefused(coturn, bad, hmacCredential('not-the-secret', bad));
});

// ---- credentials from rtmd ----

test('a minted token carries iceServers whose TURN credential allocates (udp and tcp)', async () => {
  const secret = 'turn-secret-mint-' + Math.random().toString(36).slice(2);
  const t = await startCoturn({ secrets: [secret] });
  try {
    const d = await rtmd({ turnSecrets: [secret], turnUrls: t.urls });
    const { token, expiresAt } = await d.mint({ peerId: 'alice' });
    const p = jwtPayload(token);
    const ice = p.metadata && p.metadata.iceServers;
    assert.ok(Array.isArray(ice) && ice.length === 2, `iceServers is [stun, turn]: ${JSON.stringify(ice)}`);
    assert.deepEqual(ice[0], { urls: [t.urls[0]] });
    assert.deepEqual(ice[1].urls, [t.urls[1], t.urls[2]]);
    const { username, credential } = ice[1];
    const m = /^(\d+):alice$/.exec(username);
    assert.ok(m, `username is <expiry>:<peerId>, got ${username}`);
    // Default TTL: the token's lifetime plus one hour.
    assert.ok(Math.abs(Number(m[1]) - (p.exp + 3600)) <= 5, `expiry ${m[1]} ~ exp ${p.exp} + 3600`);
    assert.equal(p.exp, expiresAt);
    assert.equal(credential, hmacCredential(secret, username), 'base64 HMAC-SHA1 of the username');
    await expectAllocates(t, username, credential);
    // The same credential over TCP to coturn.
    const r = await uclient({ port: t.port, username, credential, tcp: true, messages: 5 });
    assert.equal(r.code, 0, `tcp allocation (exit ${r.code}):\n${r.output.slice(-1500)}`);
  } finally {
    await t.stop();
  }
});

test('POST /v1/turn-credentials allocates; with ttl 1 it is refused once expired', async () => {
  const secret = 'turn-secret-rest-' + Math.random().toString(36).slice(2);
  const t = await startCoturn({ secrets: [secret] });
  try {
    const d = await rtmd({ turnSecrets: [secret], turnUrls: t.urls });
    const r = await d.api('POST', '/v1/turn-credentials', { userId: 'bob', ttl: 600 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.equal(r.json.ttl, 600);
    assert.deepEqual(r.json.urls, t.urls);
    assert.match(r.json.username, /^\d+:bob$/);
    await expectAllocates(t, r.json.username, r.json.credential);

    const e = await d.api('POST', '/v1/turn-credentials', { userId: 'carol', ttl: 1 });
    assert.equal(e.status, 200, e.text);
    const expiry = Number(e.json.username.split(':')[0]);
    // Wait until the expiry is strictly in the past by coturn's clock (bounded: about 2 s).
    while (nowS() <= expiry + 1) await sleep(100);
    await expectRefused(t, e.json.username, e.json.credential);
  } finally {
    await t.stop();
  }
});

test('a credential signed with a secret coturn does not have is refused with 401', async () => {
  const t = await startCoturn({ secrets: ['the-coturn-secret'] });
  try {
    const d = await rtmd({ turnSecrets: ['some-other-secret'], turnUrls: t.urls });
    const { token } = await d.mint({ peerId: 'mallory' });
    const turn = jwtPayload(token).metadata.iceServers[1];
    assert.equal(turn.credential, hmacCredential('some-other-secret', turn.username));
    await expectRefused(t, turn.username, turn.credential);
  } finally {
    await t.stop();
  }
});

test('rotation: coturn with both secrets accepts credentials signed with the new and the old one', async () => {
  const t = await startCoturn({ secrets: ['rotation-new-secret', 'rotation-old-secret'] });
  try {
    // The rotated deployment signs with the first secret it lists.
    const now = await rtmd({ turnSecrets: ['rotation-new-secret', 'rotation-old-secret'], turnUrls: t.urls });
    const a = jwtPayload((await now.mint({ peerId: 'new-peer' })).token).metadata.iceServers[1];
    assert.equal(a.credential, hmacCredential('rotation-new-secret', a.username), 'signed with the first secret');
    await expectAllocates(t, a.username, a.credential);
    const ra = await now.api('POST', '/v1/turn-credentials', { userId: 'new-rest', ttl: 600 });
    assert.equal(ra.json.credential, hmacCredential('rotation-new-secret', ra.json.username));
    await expectAllocates(t, ra.json.username, ra.json.credential);

    // A credential minted before the rotation (old secret only) still allocates.
    const prev = await rtmd({ turnSecrets: ['rotation-old-secret'], turnUrls: t.urls });
    const b = jwtPayload((await prev.mint({ peerId: 'old-peer' })).token).metadata.iceServers[1];
    assert.equal(b.credential, hmacCredential('rotation-old-secret', b.username));
    await expectAllocates(t, b.username, b.credential);

    // After the overlap coturn drops the old secret: the old credential is refused.
    const t2 = await startCoturn({ secrets: ['rotation-new-secret'] });
    try {
      await expectRefused(t2, b.username, b.credential);
      await expectAllocates(t2, a.username, a.credential);
    } finally {
      await t2.stop();
    }
  } finally {
    await t.stop();
  }
});
