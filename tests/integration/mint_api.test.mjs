// mint_api.test.mjs: the backend REST API (issue 2) against a real rtmd over
// real HTTP: every endpoint, every documented error, and hostile clients
// (a 10 MB body, garbage bytes, stalled requests) that must leave it healthy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, createPublicKey } from 'node:crypto';
import { connect } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startRtmd, rtmJson, sleep } from '../lib/rtmd.mjs';

let d;
before(async () => { d = await startRtmd(); });
after(async () => { if (d) await d.cleanup(); });

const b64urlJson = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
function decodeJwt(token) {
  const [h, p, s] = token.split('.');
  return { header: b64urlJson(h), claims: b64urlJson(p), signingInput: `${h}.${p}`, sig: s };
}
const hs256 = (secret, input) => createHmac('sha256', secret).update(input).digest('base64url');
const turnCred = (secret, username) => createHmac('sha1', secret).update(username).digest('base64');
const nowS = () => Math.floor(Date.now() / 1000);

async function expectError(res, status, code) {
  assert.equal(res.status, status, `want ${status}, got ${res.status}: ${res.text}`);
  assert.equal(res.json?.error, code, res.text);
  assert.equal(typeof res.json.message, 'string');
  assert.ok(res.json.message.length > 0);
}

// One raw HTTP/1.1 exchange on a fresh socket: writes chunks, collects every
// byte until the server closes or timeoutMs passes.
function raw(port, chunks, { timeoutMs = 3000, keepOpen = false } = {}) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0), closed = false;
    const done = () => { clearTimeout(t); s.destroy(); resolve({ text: buf.toString('latin1'), closed }); };
    const t = setTimeout(done, timeoutMs);
    s.on('data', (b) => { buf = Buffer.concat([buf, b]); });
    s.on('error', () => {});
    s.on('close', () => { closed = true; if (!keepOpen) done(); });
    s.on('connect', () => { for (const c of chunks) s.write(c); });
  });
}

// Reads successive HTTP responses (with Content-Length) from one socket.
function httpConn(port) {
  const s = connect(port, '127.0.0.1');
  let buf = Buffer.alloc(0), waiter = null, closed = false;
  s.on('error', () => {});
  s.on('close', () => { closed = true; if (waiter) waiter(); });
  s.on('data', (b) => { buf = Buffer.concat([buf, b]); if (waiter) waiter(); });
  const tryParse = () => {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const head = buf.subarray(0, end).toString('latin1');
    const m = /content-length:\s*(\d+)/i.exec(head);
    const len = m ? Number(m[1]) : 0;
    if (buf.length < end + 4 + len) return null;
    const body = buf.subarray(end + 4, end + 4 + len).toString('utf8');
    buf = buf.subarray(end + 4 + len);
    return { status: Number(head.split(' ')[1]), head, body };
  };
  return {
    socket: s,
    ready: new Promise((r) => s.on('connect', r)),
    send: (t) => s.write(t),
    get closed() { return closed; },
    next: (timeoutMs = 3000) => new Promise((resolve, reject) => {
      const t = setTimeout(() => { waiter = null; reject(new Error('timeout waiting for a response')); }, timeoutMs);
      const check = () => {
        const r = tryParse();
        if (r) { clearTimeout(t); waiter = null; resolve(r); } else if (closed) { clearTimeout(t); waiter = null; reject(new Error('closed')); }
      };
      waiter = check;
      check();
    }),
    close: () => s.destroy(),
  };
}

function post(path, body, secret) {
  const b = typeof body === 'string' ? body : JSON.stringify(body);
  return `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`;
}

async function assertHealthy() {
  const h = await d.api('GET', '/healthz', undefined, { auth: null });
  assert.equal(h.status, 200);
  assert.equal(h.json.status, 'ok');
  const m = await d.api('POST', '/v1/tokens', { peerId: 'after-check' });
  assert.equal(m.status, 200, m.text);
}

// ---- POST /v1/tokens ----

test('tokens: defaults, HS256 signature, claims and a fresh TURN credential', async () => {
  const t0 = nowS();
  const r = await d.api('POST', '/v1/tokens', { peerId: 'alice' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.deepEqual(Object.keys(r.json).sort(), ['expiresAt', 'token']);
  const { header, claims, signingInput, sig } = decodeJwt(r.json.token);
  assert.equal(header.alg, 'HS256');
  assert.equal(header.kid, d.key.id);
  assert.equal(sig, hs256(d.key.secret, signingInput), 'signed with the key secret');
  assert.equal(claims.sub, 'alice');
  assert.ok(claims.iat >= t0 && claims.iat <= nowS());
  assert.equal(claims.exp, claims.iat + 3600);
  assert.equal(r.json.expiresAt, claims.exp);
  assert.match(claims.jti, /^[0-9a-f]{32}$/);
  assert.deepEqual(claims.channels, ['**']);
  assert.deepEqual([...claims.permissions].sort(), ['presence', 'publish', 'send', 'subscribe']);
  assert.equal(claims.peerMetadata, undefined);
  const ice = claims.metadata.iceServers;
  assert.equal(ice.length, 2);
  assert.deepEqual(ice[0], { urls: d.turnUrls.filter((u) => u.startsWith('stun:')) });
  assert.deepEqual(ice[1].urls, d.turnUrls.filter((u) => /^turns?:/.test(u)));
  // TURN lifetime: the token's plus one hour.
  assert.equal(ice[1].username, `${claims.exp + 3600}:alice`);
  assert.equal(ice[1].credential, turnCred(d.turnSecret, ice[1].username));
});

test('tokens: jti is unique', async () => {
  const seen = new Set();
  for (let i = 0; i < 20; i++) seen.add(decodeJwt((await d.mint({ peerId: 'alice' })).token).claims.jti);
  assert.equal(seen.size, 20);
});

test('tokens: requested channels, permissions, lifetime and metadata', async () => {
  const r = await d.mint({
    peerId: 'bob', channels: ['room-1/**', 'lobby'], permissions: ['subscribe', 'presence'],
    expiresInSec: 120, metadata: { role: 'host' }, peerMetadata: { name: 'Bob' },
  });
  const { claims } = decodeJwt(r.token);
  assert.deepEqual(claims.channels, ['room-1/**', 'lobby']);
  assert.deepEqual([...claims.permissions].sort(), ['presence', 'subscribe']);
  assert.equal(claims.exp - claims.iat, 120);
  assert.equal(claims.metadata.role, 'host');
  assert.equal(claims.metadata.iceServers[1].username, `${claims.exp + 3600}:bob`);
  assert.deepEqual(claims.peerMetadata, { name: 'Bob' });
  // null means absent
  const n = await d.mint({ peerId: 'bob', channels: null, metadata: null });
  assert.deepEqual(decodeJwt(n.token).claims.channels, ['**']);
  // the maximum lifetime is accepted
  const m = await d.mint({ peerId: 'bob', expiresInSec: 86400 });
  assert.equal(m.expiresAt - decodeJwt(m.token).claims.iat, 86400);
});

test('tokens: caller-supplied iceServers are kept as given', async () => {
  const mine = [{ urls: ['stun:stun.example.org:3478'] }];
  const r = await d.mint({ peerId: 'carol', metadata: { iceServers: mine } });
  assert.deepEqual(decodeJwt(r.token).claims.metadata.iceServers, mine);
});

test('tokens: scope beyond a restricted key is 403, its own scope is the default', async () => {
  const k = rtmJson(['key', 'create', '--db', d.db, '--app', d.app, '--channels', 'room-*/**,lobby',
    '--actions', 'subscribe,publish']);
  const as = { auth: k.secret };
  const def = await d.api('POST', '/v1/tokens', { peerId: 'dave' }, as);
  assert.equal(def.status, 200, def.text);
  const { header, claims } = decodeJwt(def.json.token);
  assert.equal(header.kid, k.id);
  assert.deepEqual(claims.channels, ['room-*/**', 'lobby']);
  assert.deepEqual([...claims.permissions].sort(), ['publish', 'subscribe']);
  const ok = await d.api('POST', '/v1/tokens', { peerId: 'dave', channels: ['room-7/chat'], permissions: ['subscribe'] }, as);
  assert.equal(ok.status, 200, ok.text);
  await expectError(await d.api('POST', '/v1/tokens', { peerId: 'dave', channels: ['other'] }, as), 403, 'channel_not_authorized');
  await expectError(await d.api('POST', '/v1/tokens', { peerId: 'dave', channels: ['**'] }, as), 403, 'channel_not_authorized');
  await expectError(await d.api('POST', '/v1/tokens', { peerId: 'dave', permissions: ['send'] }, as), 403, 'action_not_permitted');
  await expectError(await d.api('POST', '/v1/tokens', { peerId: 'dave', permissions: ['presence', 'subscribe'] }, as), 403, 'action_not_permitted');
});

test('tokens: every malformed request is 400 invalid_request', async () => {
  const bad = [
    '{"peerId": "x"', 'not json', '[1,2]', '"alice"', '', '{"peerId":"a","peerId":"b"}',
    {}, { peerId: 42 }, { peerId: '' }, { peerId: 'x'.repeat(129) }, { peerId: 'has space' },
    { peerId: 'tab\there' }, { peerId: 'é' },
    { peerId: 'a', channels: 'lobby' }, { peerId: 'a', channels: [1] }, { peerId: 'a', channels: [''] },
    { peerId: 'a', channels: Array.from({ length: 101 }, (_, i) => `c${i}`) },
    { peerId: 'a', channels: ['x'.repeat(257)] },
    { peerId: 'a', permissions: 'publish' }, { peerId: 'a', permissions: ['fly'] }, { peerId: 'a', permissions: [1] },
    { peerId: 'a', expiresInSec: '60' }, { peerId: 'a', expiresInSec: 0 }, { peerId: 'a', expiresInSec: -1 },
    { peerId: 'a', expiresInSec: 86401 }, { peerId: 'a', expiresInSec: 1.5 },
    { peerId: 'a', metadata: [] }, { peerId: 'a', metadata: 'x' }, { peerId: 'a', peerMetadata: 3 },
    { peerId: 'a', metadata: { blob: 'm'.repeat(8200) } },
    { peerId: 'a', peerMetadata: { blob: 'p'.repeat(4100) } },
  ];
  for (const body of bad) {
    const r = await d.api('POST', '/v1/tokens', body);
    await expectError(r, 400, 'invalid_request');
  }
  // the limits themselves are fine
  assert.equal((await d.api('POST', '/v1/tokens', { peerId: 'x'.repeat(128) })).status, 200);
  assert.equal((await d.api('POST', '/v1/tokens', { peerId: 'a', channels: Array.from({ length: 100 }, (_, i) => `c${i}`) })).status, 200);
  assert.equal((await d.api('POST', '/v1/tokens', { peerId: 'a', channels: ['x'.repeat(256)] })).status, 200);
  assert.equal((await d.api('POST', '/v1/tokens', { peerId: 'a', peerMetadata: { blob: 'p'.repeat(4000) } })).status, 200);
});

test('auth: missing, unknown, malformed and revoked keys all get the same 401', async () => {
  const k = rtmJson(['key', 'create', '--db', d.db, '--app', d.app]);
  assert.equal((await d.api('POST', '/v1/tokens', { peerId: 'a' }, { auth: k.secret })).status, 200);
  rtmJson(['key', 'revoke', '--db', d.db, k.id]);
  const answers = [
    await d.api('POST', '/v1/tokens', { peerId: 'a' }, { auth: null }),
    await d.api('POST', '/v1/tokens', { peerId: 'a' }, { auth: 'sk_secret_' + '0'.repeat(64) }),
    await d.api('POST', '/v1/tokens', { peerId: 'a' }, { auth: null, headers: { authorization: `Basic ${d.key.secret}` } }),
    await d.api('POST', '/v1/tokens', { peerId: 'a' }, { auth: null, headers: { authorization: 'Bearer' } }),
    await d.api('POST', '/v1/tokens', { peerId: 'a' }, { auth: d.key.id }),
    // revoked right before: no stale cache may let it through
    await d.api('POST', '/v1/tokens', { peerId: 'a' }, { auth: k.secret }),
    await d.api('POST', '/v1/turn-credentials', {}, { auth: k.secret }),
    await d.api('GET', '/v1/sessions', undefined, { auth: null }),
  ];
  for (const r of answers) await expectError(r, 401, 'unauthorized');
  assert.equal(new Set(answers.map((r) => r.text)).size, 1, 'one answer for every cause');
  // a publishable key is no Bearer secret
  const pk = rtmJson(['key', 'create', '--db', d.db, '--app', d.app, '--publishable']);
  await expectError(await d.api('POST', '/v1/tokens', { peerId: 'a' }, { auth: pk.id }), 401, 'unauthorized');
});

// ---- POST /v1/turn-credentials ----

test('turn-credentials: defaults and an explicit user and ttl', async () => {
  const t0 = nowS();
  const r = await d.api('POST', '/v1/turn-credentials', {});
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  const [exp, user] = [Number(r.json.username.split(':')[0]), r.json.username.slice(r.json.username.indexOf(':') + 1)];
  assert.ok(user.length > 0);
  assert.equal(r.json.ttl, 3600 + 3600);
  assert.ok(exp >= t0 + r.json.ttl && exp <= nowS() + r.json.ttl);
  assert.equal(r.json.credential, turnCred(d.turnSecret, r.json.username));
  assert.deepEqual(r.json.urls, d.turnUrls);

  const e = await d.api('POST', '/v1/turn-credentials', { userId: 'erin', ttl: 600 });
  assert.equal(e.status, 200, e.text);
  assert.equal(e.json.ttl, 600);
  assert.match(e.json.username, /^\d+:erin$/);
  const eexp = Number(e.json.username.split(':')[0]);
  assert.ok(eexp >= t0 + 600 && eexp <= nowS() + 600);
  assert.equal(e.json.credential, turnCred(d.turnSecret, e.json.username));
  // no body at all is the same as {}
  assert.equal((await d.api('POST', '/v1/turn-credentials')).status, 200);

  for (const body of [{ ttl: 0 }, { ttl: '60' }, { ttl: 10 ** 9 }, { userId: '' }, { userId: 7 }, { userId: 'a b' }, '[]', '{'])
    await expectError(await d.api('POST', '/v1/turn-credentials', body), 400, 'invalid_request');
});

// ---- POST /v1/revocations ----

test('revocations: by jti and by peerId are 201; anything else 400', async () => {
  const { token } = await d.mint({ peerId: 'frank' });
  const jti = decodeJwt(token).claims.jti;
  const a = await d.api('POST', '/v1/revocations', { jti });
  assert.equal(a.status, 201, a.text);
  assert.equal(a.json.jti, jti);
  const b = await d.api('POST', '/v1/revocations', { peerId: 'frank' });
  assert.equal(b.status, 201, b.text);
  assert.equal(b.json.peerId, 'frank');
  assert.ok(b.json.before > decodeJwt(token).claims.iat, 'covers tokens minted this very second');
  for (const body of [{}, { jti, peerId: 'frank' }, { jti: 5 }, { jti: '' }, { peerId: 'a b' }, { peerId: '' }, 'nope'])
    await expectError(await d.api('POST', '/v1/revocations', body), 400, 'invalid_request');
  await expectError(await d.api('POST', '/v1/revocations', { jti }, { auth: null }), 401, 'unauthorized');
});

// ---- GET /.well-known/jwks.json ----

test('jwks: public RS256/ES256 keys by kid, no auth, no secrets', async () => {
  const empty = await d.api('GET', '/.well-known/jwks.json', undefined, { auth: null });
  assert.equal(empty.status, 200, empty.text);
  assert.ok(Array.isArray(empty.json.keys));
  const before = empty.json.keys.length;

  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ecFile = join(d.dir, 'ec.pem'), rsaFile = join(d.dir, 'rsa.pem');
  writeFileSync(ecFile, ec.publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(rsaFile, rsa.publicKey.export({ type: 'spki', format: 'pem' }));
  rtmJson(['key', 'create', '--db', d.db, '--app', d.app, '--alg', 'ES256', '--kid', 'ec-1', '--public-key', ecFile]);
  rtmJson(['key', 'create', '--db', d.db, '--app', d.app, '--alg', 'RS256', '--kid', 'rsa-1', '--public-key', rsaFile]);

  const r = await d.api('GET', '/.well-known/jwks.json', undefined, { auth: null });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.keys.length, before + 2);
  const byKid = Object.fromEntries(r.json.keys.map((k) => [k.kid, k]));
  const ecJwk = ec.publicKey.export({ format: 'jwk' }), rsaJwk = rsa.publicKey.export({ format: 'jwk' });
  assert.equal(byKid['ec-1'].kty, 'EC');
  assert.equal(byKid['ec-1'].alg, 'ES256');
  assert.equal(byKid['ec-1'].crv, 'P-256');
  assert.equal(byKid['ec-1'].x, ecJwk.x);
  assert.equal(byKid['ec-1'].y, ecJwk.y);
  assert.equal(byKid['rsa-1'].kty, 'RSA');
  assert.equal(byKid['rsa-1'].n, rsaJwk.n);
  assert.equal(byKid['rsa-1'].e, rsaJwk.e);
  // node accepts them as keys
  createPublicKey({ key: byKid['ec-1'], format: 'jwk' });
  createPublicKey({ key: byKid['rsa-1'], format: 'jwk' });
  assert.ok(!r.text.includes('sk_secret_'), 'no secret key material');
  assert.ok(!r.text.includes(d.key.id), 'HS256 keys are not published');
});

// ---- health and metrics ----

test('healthz and metrics need no auth; metrics count tokens, statuses and latency', async () => {
  const h = await d.api('GET', '/healthz', undefined, { auth: null });
  assert.equal(h.status, 200);
  assert.equal(h.json.status, 'ok');
  const read = async () => {
    const m = await d.api('GET', '/metrics', undefined, { auth: null });
    assert.equal(m.status, 200);
    assert.match(m.headers.get('content-type'), /^text\/plain/);
    const v = (re) => { const x = re.exec(m.text); assert.ok(x, `${re} in metrics`); return Number(x[1]); };
    return {
      minted: v(/^rtm_tokens_minted_total (\d+)$/m),
      ok: v(/^rtm_http_requests_total\{status="2xx"\} (\d+)$/m),
      client: v(/^rtm_http_requests_total\{status="4xx"\} (\d+)$/m),
      count: v(/^rtm_http_request_duration_seconds_count (\d+)$/m),
      inf: v(/^rtm_http_request_duration_seconds_bucket\{le="\+Inf"\} (\d+)$/m),
      text: m.text,
    };
  };
  const a = await read();
  assert.match(a.text, /# TYPE rtm_http_request_duration_seconds histogram/);
  await d.mint({ peerId: 'gina' });
  await d.mint({ peerId: 'gina' });
  await d.api('POST', '/v1/tokens', { peerId: '' });
  const b = await read();
  assert.equal(b.minted - a.minted, 2);
  assert.ok(b.ok - a.ok >= 3, 'two mints and the first /metrics');
  assert.equal(b.client - a.client, 1);
  assert.ok(b.count > a.count && b.inf === b.count);
});

// ---- sessions, peers, publish ----

test('sessions: listed for the key, filtered by peerId, arguments checked', async () => {
  const r = await d.api('GET', '/v1/sessions');
  assert.equal(r.status, 200, r.text);
  assert.ok(Array.isArray(r.json.sessions));
  const f = await d.api('GET', '/v1/sessions?peerId=nobody-here');
  assert.equal(f.status, 200, f.text);
  assert.deepEqual(f.json.sessions, []);
  await expectError(await d.api('GET', '/v1/sessions?peerId=a%20b'), 400, 'invalid_request');
  await expectError(await d.api('GET', '/v1/sessions?limit=0'), 400, 'invalid_request');
  await expectError(await d.api('GET', `/v1/sessions?peerId=${'x'.repeat(600)}`), 400, 'invalid_request');
  await expectError(await d.api('GET', '/v1/sessions', undefined, { auth: null }), 401, 'unauthorized');
});

test('sessions: a closed connection is listed for its app only', async () => {
  const { token } = await d.mint({ peerId: 'sess-peer' });
  const decoded = decodeJwt(token).claims;
  const c = await d.connect(token);
  await c.close();
  let rows = [];
  for (let i = 0; i < 30 && !rows.some((r) => r.closedAt); i++) { // the broker batches its writes
    await sleep(100);
    rows = (await d.api('GET', '/v1/sessions?peerId=sess-peer')).json.sessions;
  }
  assert.equal(rows.length, 1, JSON.stringify(rows));
  assert.equal(rows[0].peerId, 'sess-peer');
  assert.equal(rows[0].jti, decoded.jti);
  assert.equal(rows[0].app, d.app);
  assert.ok(rows[0].closedAt >= rows[0].connectedAt);
  const other = rtmJson(['key', 'create', '--db', d.db, '--app', 'another-app']);
  const o = await d.api('GET', '/v1/sessions?peerId=sess-peer', undefined, { auth: other.secret });
  assert.equal(o.status, 200, o.text);
  assert.deepEqual(o.json.sessions, [], 'another app sees none of it');
  const lim = await d.api('GET', '/v1/sessions?limit=1');
  assert.equal(lim.status, 200);
  assert.ok(lim.json.sessions.length <= 1);
});

test('peers, kick and server publish answer with the broker in the process', async () => {
  const p = await d.api('GET', '/v1/peers');
  assert.equal(p.status, 200, p.text);
  assert.ok(Array.isArray(p.json.peers));
  const pc = await d.api('GET', '/v1/peers?channel=lobby');
  assert.equal(pc.status, 200, pc.text);
  const k = await d.api('DELETE', '/v1/peers/nobody');
  assert.equal(k.status, 200, k.text);
  assert.equal(k.json.closed, 0);
  const pub = await d.api('POST', '/v1/publish', { channel: 'lobby', data: { hello: 1 } });
  assert.equal(pub.status, 200, pub.text);
  assert.equal(pub.json.recipients, 0);
  await expectError(await d.api('POST', '/v1/publish', { channel: 'lobby' }), 400, 'invalid_request');
  await expectError(await d.api('POST', '/v1/publish', { data: 1 }), 400, 'invalid_request');
  await expectError(await d.api('POST', '/v1/publish', { channel: '', data: 1 }), 400, 'invalid_request');
  await expectError(await d.api('DELETE', '/v1/peers/nobody', undefined, { auth: null }), 401, 'unauthorized');
  await expectError(await d.api('GET', '/v1/peers', undefined, { auth: null }), 401, 'unauthorized');
});

test('peers, server publish and kick act on live sessions of the key\'s app', async () => {
  const { token } = await d.mint({ peerId: 'live-peer', peerMetadata: { name: 'Live' } });
  const c = await d.connect(token);
  assert.equal((await c.request({ type: 'subscribe', channel: 'lobby' })).type, 'ack');
  const p = await d.api('GET', '/v1/peers?channel=lobby');
  assert.equal(p.status, 200, p.text);
  const me = p.json.peers.find((x) => x.peerId === 'live-peer');
  assert.ok(me, p.text);
  assert.deepEqual(me.peerMetadata, { name: 'Live' });
  assert.deepEqual(me.channels, ['lobby']);
  assert.equal(me.connections, 1);
  const other = rtmJson(['key', 'create', '--db', d.db, '--app', 'elsewhere']);
  const o = await d.api('GET', '/v1/peers', undefined, { auth: other.secret });
  assert.equal(o.status, 200, o.text);
  assert.ok(!o.json.peers.some((x) => x.peerId === 'live-peer'), 'another app does not see it');
  assert.equal((await d.api('DELETE', '/v1/peers/live-peer', undefined, { auth: other.secret })).json.closed, 0);

  const pub = await d.api('POST', '/v1/publish', { channel: 'lobby', data: { hi: 1 } });
  assert.equal(pub.status, 200, pub.text);
  assert.equal(pub.json.recipients, 1);
  const m = await c.next('message');
  assert.equal(m.from, '_server');
  assert.deepEqual(m.data, { hi: 1 });

  const k = await d.api('DELETE', '/v1/peers/live-peer');
  assert.equal(k.status, 200, k.text);
  assert.equal(k.json.closed, 1);
  assert.equal((await c.closed).code, 4020);
});

test('with --role mint the broker views go through the store: kick and publish queued (202), peers from snapshots', async () => {
  const m = await startRtmd({ args: ['--role', 'mint'] });
  try {
    const p = await m.api('GET', '/v1/peers');
    assert.equal(p.status, 200, p.text);
    assert.deepEqual(p.json, { peers: [] }); // no broker writes snapshots to this store
    const k = await m.api('DELETE', '/v1/peers/x');
    assert.equal(k.status, 202, k.text);
    assert.deepEqual(k.json, { peerId: 'x', queued: true });
    const pub = await m.api('POST', '/v1/publish', { channel: 'c', data: 1 });
    assert.equal(pub.status, 202, pub.text);
    assert.deepEqual(pub.json, { channel: 'c', queued: true });
    assert.equal((await m.api('POST', '/v1/tokens', { peerId: 'a' })).status, 200);
    assert.equal((await m.api('POST', '/v1/revocations', { peerId: 'a' })).status, 201);
  } finally {
    await m.cleanup();
  }
});

// ---- HTTP itself ----

test('404 for unknown paths, 405 with Allow for a wrong method', async () => {
  await expectError(await d.api('GET', '/nope'), 404, 'not_found');
  await expectError(await d.api('GET', '/v1/tokens/extra'), 404, 'not_found');
  // A '/' after /v1/peers/ is part of the peerId (issue 11 defect 6: lws
  // decodes %2F before rtm sees the path), so this is the kick route: 405.
  const slash = await d.api('GET', '/v1/peers/a%2Fb');
  await expectError(slash, 405, 'method_not_allowed');
  assert.equal(slash.headers.get('allow'), 'DELETE');
  for (const [m, p, allow] of [['GET', '/v1/tokens', 'POST'], ['PUT', '/v1/tokens', 'POST'], ['DELETE', '/healthz', 'GET'],
    ['POST', '/.well-known/jwks.json', 'GET'], ['GET', '/v1/peers/alice', 'DELETE'], ['POST', '/metrics', 'GET']]) {
    const r = await d.api(m, p, m === 'GET' || m === 'DELETE' ? undefined : {});
    await expectError(r, 405, 'method_not_allowed');
    assert.equal(r.headers.get('allow'), allow);
  }
});

test('keep-alive: many requests, including early errors with bodies, on one connection', async () => {
  const c = httpConn(d.backendPort);
  await c.ready;
  const seq = [
    [post('/v1/tokens', { peerId: 'k1' }, d.key.secret), 200],
    [post('/v1/tokens', { peerId: 'k2' }, 'wrong'), 401],
    [post('/nowhere', { peerId: 'k3' }, d.key.secret), 404],
    [post('/healthz', { x: 1 }, d.key.secret), 405],
    [post('/v1/tokens', '{bad', d.key.secret), 400],
    ['GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 200],
    [post('/v1/tokens', { peerId: 'k4' }, d.key.secret), 200],
  ];
  for (const [req, status] of seq) {
    c.send(req);
    const r = await c.next();
    assert.equal(r.status, status, r.head + r.body);
  }
  assert.equal(c.closed, false);
  c.close();

  // Pipelined GETs are answered in order on one connection.
  const g = httpConn(d.backendPort);
  await g.ready;
  g.send('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.deepEqual([(await g.next()).status, (await g.next()).status, (await g.next()).status], [200, 404, 200]);
  g.close();

  // A request pipelined behind a POST body: the first is answered, then
  // either the rest or a close (lws 4.1.6 cannot resume after a body with
  // bytes pending); never a hang, and the daemon stays responsive.
  const p = httpConn(d.backendPort);
  await p.ready;
  p.send(post('/v1/tokens', { peerId: 'p1' }, d.key.secret) + post('/v1/tokens', { peerId: 'p2' }, d.key.secret));
  const first = await p.next();
  assert.equal(first.status, 200);
  assert.equal(decodeJwt(JSON.parse(first.body).token).claims.sub, 'p1');
  try {
    const second = await p.next(2000);
    assert.equal(decodeJwt(JSON.parse(second.body).token).claims.sub, 'p2');
  } catch (e) {
    assert.equal(e.message, 'closed');
  }
  p.close();
  await assertHealthy();
});

test('413 for a body over 32 KB; exactly 32 KB is read', async () => {
  const pad = (n) => { const s = JSON.stringify({ peerId: 'big' }); return s.slice(0, -1) + ' '.repeat(n - s.length) + '}'; };
  const exact = await d.api('POST', '/v1/tokens', pad(32768));
  assert.equal(exact.status, 200, exact.text);
  await expectError(await d.api('POST', '/v1/tokens', pad(32769)), 413, 'payload_too_large');
  await expectError(await d.api('POST', '/v1/tokens', pad(40000), { auth: null }), 413, 'payload_too_large');
  await assertHealthy();
});

test('a 10 MB body is refused with 413 without being read, and the connection closes', async () => {
  const total = 10 * 1024 * 1024;
  const s = connect(d.backendPort, '127.0.0.1');
  let got = '', closed = false;
  s.on('error', () => {});
  const done = new Promise((r) => s.on('close', () => { closed = true; r(); }));
  s.on('data', (b) => { got += b.toString('latin1'); });
  await new Promise((r) => s.on('connect', r));
  s.write(`POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${d.key.secret}\r\nContent-Type: application/json\r\nContent-Length: ${total}\r\n\r\n`);
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  let sent = 0;
  // Send like curl does: until the server's early answer arrives.
  while (sent < total && !closed && !got.includes('\r\n\r\n')) {
    if (!s.write(chunk)) await Promise.race([new Promise((r) => s.once('drain', r)), done, sleep(200)]);
    sent += chunk.length;
  }
  // The server stops reading, sends FIN and closes within its 2 s linger.
  await Promise.race([done, sleep(5000)]);
  s.destroy();
  assert.match(got, /^HTTP\/1\.1 413 /, got.slice(0, 200));
  assert.match(got, /"error":"payload_too_large"/);
  assert.ok(sent < total / 2, `answered early (after ${sent} bytes), not after reading the body`);
  assert.ok(closed, 'the server closed the connection');
  await assertHealthy();
});

test('a chunked body is refused with 411 (Content-Length required), small or large', async () => {
  const head = `POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${d.key.secret}\r\nTransfer-Encoding: chunked\r\n\r\n`;
  const small = '{"peerId":"chunky"}';
  const a = await raw(d.backendPort, [head, `${small.length.toString(16)}\r\n${small}\r\n0\r\n\r\n`], { timeoutMs: 5000 });
  assert.match(a.text, /^HTTP\/1\.1 411 /, a.text.slice(0, 200));
  assert.match(a.text, /"error":"length_required"/);
  assert.ok(a.closed, 'the server ended the connection');
  const chunk = 'x'.repeat(8000);
  const big = [head];
  for (let i = 0; i < 6; i++) big.push(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
  const b = await raw(d.backendPort, big);
  assert.match(b.text, /^HTTP\/1\.1 411 /, b.text.slice(0, 200));
  await assertHealthy();
});

test('garbage bytes on the socket leave the daemon healthy', async () => {
  const junk = [
    Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), // a TLS hello
    Buffer.from('\x00\x01\x02\x03\xff\xfe\r\n\r\n', 'latin1'),
    Buffer.from('GET /healthz HTTP/9.9\r\n\r\n'),
    Buffer.from('POST /v1/tokens HTTP/1.1\r\nContent-Length: -5\r\n\r\n'),
    Buffer.from('POST /v1/tokens HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n'),
    Buffer.from(`GET /${'a'.repeat(70000)} HTTP/1.1\r\n\r\n`),
    Buffer.from('GET /healthz HTTP/1.1\r\n' + 'X-Junk: y\r\n'.repeat(5000) + '\r\n'),
    Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) & 0xff)),
  ];
  const results = await Promise.all(junk.map((j) => raw(d.backendPort, [j], { timeoutMs: 2500 })));
  for (const r of results) {
    // Either a clean HTTP error or a closed connection; never a 2xx for garbage.
    assert.ok(!/^HTTP\/1\.1 2/.test(r.text), r.text.slice(0, 120));
  }
  await assertHealthy();
});

test('slow clients stalled mid-request do not block others', async () => {
  const stalled = [];
  for (let i = 0; i < 6; i++) {
    const s = connect(d.backendPort, '127.0.0.1');
    s.on('error', () => {});
    s.hung = true;
    s.on('close', () => { s.hung = false; });
    await new Promise((r) => s.on('connect', r));
    // half of them stop inside the headers, half inside the body
    s.write(i % 2 === 0
      ? 'POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthor'
      : `POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${d.key.secret}\r\nContent-Length: 100\r\n\r\n{"peerId":`);
    stalled.push(s);
  }
  try {
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => d.api('POST', '/v1/tokens', { peerId: `busy-${i}` })));
    for (const r of rs) assert.equal(r.status, 200, r.text);
    await assertHealthy();
    // Served while the slow ones still hang (the server drops them only at its timeout).
    assert.ok(stalled.every((s) => s.hung), 'the stalled connections are still open');
  } finally {
    for (const s of stalled) s.destroy();
  }
  await assertHealthy();
});

test('the daemon is still up and well after everything above', async () => {
  assert.equal(d.proc.exitCode, null);
  assert.equal(d.proc.signalCode, null);
  await assertHealthy();
  assert.ok(!/sk_secret_[0-9a-f]{8}/.test(d.log), 'no secret in the log');
});
