// ext_refresh.test.mjs: the in-band refresh and token_expiring extensions
// (issue 7, docs/EXTENSIONS.md) against a real rtmd over real sockets, with
// a real coturn for the refreshed TURN credentials. Core clients (no &ext=1)
// must never see any of it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRtmd, rtmJson, sleep } from '../lib/rtmd.mjs';
import { startCoturn, uclient } from '../lib/coturn.mjs';
import { frameChecker } from '../lib/schema.mjs';
import { signToken, claimsOf, until, endCheckedDaemon } from './broker_util.mjs';

const SLOW = process.env.RTM_VALGRIND ? 4 : 1; // valgrind stretches every step
let d;
const frames = frameChecker();
const used = [];

before(async () => {
  d = frames.track(await startRtmd({
    config: { 'rate-connects-per-ip-per-minute': 0, 'token-expiring-notice-sec': 2 },
  }));
});
after(() => endCheckedDaemon(d, frames, used));

async function mint(claims) {
  const r = await d.mint(claims);
  used.push(r.token);
  return r.token;
}
const ext = (token) => d.connect(token, '&ext=1');

async function metric(name) {
  const r = await d.api('GET', '/metrics');
  const line = r.text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{') && l.split(' ')[0] === name);
  return line ? Number(line.split(' ').pop()) : 0;
}

test('a refresh extends the session past the first token expiry, with no close; the ack carries expiresAt and the new metadata', async () => {
  const ok0 = await metric('rtm_refresh_total{result="ok"}');
  const t1 = await mint({ peerId: 'long-call', expiresInSec: 3, channels: ['room'] });
  const c = await ext(t1);
  assert.equal(c.welcome.expiresAt, claimsOf(t1).exp);
  assert.equal(typeof c.welcome.sessionId, 'string');
  assert.equal((await c.request({ type: 'subscribe', channel: 'room' })).type, 'ack');
  const t2 = await mint({ peerId: 'long-call', expiresInSec: 600, channels: ['room'] });
  const ack = await c.request({ type: 'refresh', token: t2 });
  assert.equal(ack.type, 'ack', JSON.stringify(ack));
  assert.equal(ack.expiresAt, claimsOf(t2).exp);
  assert.deepEqual(ack.metadata, claimsOf(t2).metadata);
  // Well past the first token's exp (and its 4002 margin): still open and served.
  await sleep((claimsOf(t1).exp * 1000 - Date.now()) + 800);
  assert.equal(c.closeInfo, null, 'the session was not closed');
  assert.equal((await c.request({ type: 'ping' })).type, 'ack');
  // The subscription survived: a publish reaches it.
  const o = await ext(await mint({ peerId: 'long-call-other', channels: ['room'] }));
  assert.equal((await o.request({ type: 'publish', channel: 'room', data: 'still here' })).type, 'ack');
  assert.equal((await c.next('message')).data, 'still here');
  assert.equal(await metric('rtm_refresh_total{result="ok"}'), ok0 + 1);
  await c.close();
  await o.close();
});

test('the refresh ack brings iceServers that differ from the welcome and allocate on a real coturn', async () => {
  const turn = await startCoturn({ secrets: [d.turnSecret] });
  try {
    const t1 = await mint({ peerId: 'ice-peer', expiresInSec: 60 });
    const c = await ext(t1);
    await sleep(1100); // a later exp: TURN usernames carry their expiry
    const t2 = await mint({ peerId: 'ice-peer', expiresInSec: 900 });
    const ack = await c.request({ type: 'refresh', token: t2 });
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    const before = c.welcome.metadata.iceServers, after = ack.metadata.iceServers;
    assert.ok(Array.isArray(after) && after.length > 0, 'iceServers in the ack');
    const turnOf = (list) => list.find((s) => s.username && s.credential);
    assert.notDeepEqual(turnOf(after), turnOf(before), 'fresh credentials');
    const { username, credential } = turnOf(after);
    const r = await uclient({ port: turn.port, username, credential });
    assert.equal(r.code, 0, `allocation with the refreshed credentials failed: ${r.output || ''}`);
    assert.ok(await until(() => turn.allocated(username)), 'coturn logged the allocation');
    await c.close();
  } finally { await turn.stop(); }
});

test('a refused refresh (another peer, expired, revoked, bad signature, other app, publishable) answers invalid_token and changes nothing', async () => {
  const refused0 = await metric('rtm_refresh_total{result="refused"}');
  const t1 = await mint({ peerId: 'victim', expiresInSec: 4, channels: ['r-*'] });
  const exp1 = claimsOf(t1).exp;
  const c = await ext(t1);
  assert.equal((await c.request({ type: 'subscribe', channel: 'r-1' })).type, 'ack');
  const other = await ext(await mint({ peerId: 'bystander', channels: ['r-*'] }));
  assert.equal((await other.request({ type: 'subscribe', channel: 'r-1' })).type, 'ack');
  await other.next('presence');

  const revoked = await mint({ peerId: 'victim', expiresInSec: 600, channels: ['r-*'] });
  const rv = await d.api('POST', '/v1/revocations', { jti: claimsOf(revoked).jti });
  assert.equal(rv.status, 201, rv.text);
  const otherApp = rtmJson(['key', 'create', '--db', d.db, '--app', 'elsewhere']);
  const now = Math.floor(Date.now() / 1000);
  const cases = [
    [await mint({ peerId: 'mallory', expiresInSec: 600 }), 'peer mismatch'],
    [signToken(d.key, { sub: 'victim', iat: now - 100, exp: now - 10 }), 'token expired'],
    [revoked, 'token revoked'],
    [signToken(d.key, { sub: 'victim' }, { secret: 'sk_not_the_secret' }), 'bad signature'],
    [signToken(otherApp, { sub: 'victim' }), 'app mismatch'],
    ['garbage', 'malformed token'],
  ];
  for (const [tok, reason] of cases) {
    used.push(tok);
    const r = await c.request({ type: 'refresh', token: tok });
    assert.deepEqual([r.type, r.code, r.message], ['error', 'invalid_token', reason], JSON.stringify(r));
  }
  const bad = await c.request({ type: 'refresh', token: 42 });
  assert.equal(bad.code, 'malformed_message');
  assert.equal(await metric('rtm_refresh_total{result="refused"}'), refused0 + cases.length);

  // Nothing changed: same subscription (a publish still arrives), no presence
  // change for the bystander, and the first token's expiry still closes it.
  assert.equal((await other.request({ type: 'publish', channel: 'r-1', data: 'after refusals' })).type, 'ack');
  assert.equal((await c.next('message')).data, 'after refusals');
  assert.ok(await other.none('presence', 200));
  const notice = await c.next('token_expiring', 5000 * SLOW);
  assert.equal(notice.expiresAt, exp1);
  const closed = await c.closed;
  assert.equal(closed.code, 4002);
  assert.ok(Date.now() < exp1 * 1000 + 1000 * SLOW, 'closed at the first token expiry');
  await other.close();

  // A publishable-key session has nothing to refresh.
  const pk = rtmJson(['key', 'create', '--db', d.db, '--app', d.app, '--publishable', '--channels', 'pub-*']);
  const p = await d.open(`?key=${pk.id}&ext=1`);
  await p.next('welcome');
  const pr = await p.request({ type: 'refresh', token: t1 });
  assert.deepEqual([pr.type, pr.code], ['error', 'invalid_token']);
  await p.close();
});

test('a refresh with a narrower token drops the subscriptions it no longer allows; others see the peer leave them', async () => {
  const t1 = await mint({ peerId: 'narrow', channels: ['zone-*'] });
  const c = await ext(t1);
  for (const ch of ['zone-a', 'zone-b']) assert.equal((await c.request({ type: 'subscribe', channel: ch })).type, 'ack');
  const w = await ext(await mint({ peerId: 'watcher', channels: ['zone-*'] }));
  for (const ch of ['zone-a', 'zone-b']) {
    assert.equal((await w.request({ type: 'subscribe', channel: ch })).type, 'ack');
    const snap = await w.next((f) => f.type === 'presence' && f.channel === ch);
    assert.deepEqual(snap.joined.map((j) => j.peerId), ['narrow']);
  }
  const t2 = await mint({ peerId: 'narrow', channels: ['zone-a'] });
  assert.equal((await c.request({ type: 'refresh', token: t2 })).type, 'ack');
  const left = await w.next('presence');
  assert.deepEqual([left.channel, left.joined, left.left], ['zone-b', [], [{ peerId: 'narrow' }]]);
  assert.ok(await w.none('presence', 300), 'zone-a unchanged');
  // zone-a still delivers, zone-b no longer does, and a new subscribe to zone-b is refused.
  await w.request({ type: 'publish', channel: 'zone-b', data: 'b' });
  await w.request({ type: 'publish', channel: 'zone-a', data: 'a' });
  const m = await c.next('message');
  assert.deepEqual([m.channel, m.data], ['zone-a', 'a']);
  assert.ok(await c.none('message', 200));
  assert.equal((await c.request({ type: 'subscribe', channel: 'zone-b' })).code, 'channel_not_authorized');
  // Permissions follow the new token too: without publish, publishing is refused.
  const t3 = await mint({ peerId: 'narrow', channels: ['zone-a'], permissions: ['subscribe', 'presence'] });
  assert.equal((await c.request({ type: 'refresh', token: t3 })).type, 'ack');
  assert.equal((await c.request({ type: 'publish', channel: 'zone-a', data: 1 })).code, 'action_not_permitted');
  await c.close();
  await w.close();
});

test('token_expiring arrives token-expiring-notice-sec before exp (at once when less is left); a refresh re-arms it; core clients get only 4002', async () => {
  const t1 = await mint({ peerId: 'ticking', expiresInSec: 5 });
  const exp1 = claimsOf(t1).exp;
  const c = await ext(t1);
  const core = await d.connect(t1);
  const n1 = await c.next('token_expiring', 6000 * SLOW);
  const at = Date.now();
  assert.equal(n1.expiresAt, exp1);
  assert.ok(at >= (exp1 - 2) * 1000 - 50, `not before exp - 2 s (${exp1 * 1000 - at} ms early)`);
  assert.ok(at <= (exp1 - 2) * 1000 + 700 * SLOW, `about exp - 2 s (${exp1 * 1000 - at} ms before exp)`);
  // Refresh with another short token: a new notice for the new exp, and no 4002 at the old one.
  const t2 = await mint({ peerId: 'ticking', expiresInSec: 4 });
  const exp2 = claimsOf(t2).exp;
  assert.ok(exp2 > exp1);
  assert.equal((await c.request({ type: 'refresh', token: t2 })).type, 'ack');
  const n2 = await c.next('token_expiring', 6000 * SLOW);
  assert.equal(n2.expiresAt, exp2);
  assert.ok(Date.now() >= (exp2 - 2) * 1000 - 50);
  // The core client saw none of it and was closed at its exp.
  const cc = await core.closed;
  assert.equal(cc.code, 4002);
  assert.ok(core.all.every((f) => f.type !== 'token_expiring'), 'core client got no notice');
  assert.equal((await c.closed).code, 4002);
  assert.ok(Date.now() >= exp2 * 1000 - 1000, 'closed at the refreshed exp, not the first');

  // Less left than the notice: at once, right after the welcome.
  const t3 = await mint({ peerId: 'short', expiresInSec: 2 });
  const s = await ext(t3);
  const n3 = await s.next('token_expiring', 1000 * SLOW);
  assert.equal(n3.expiresAt, claimsOf(t3).exp);
  assert.deepEqual(s.all.map((f) => f.type).slice(0, 2), ['welcome', 'token_expiring']);
  await s.close();
});

test('a core client never sees an extension frame or field', async () => {
  const t = await mint({ peerId: 'core-only', channels: ['mix'], expiresInSec: 3 });
  const core = await d.connect(t);
  for (const k of ['sessionId', 'resumeWindowMs', 'resumed']) assert.ok(!(k in core.welcome), `welcome has ${k}`);
  // refresh is not a frame type for it.
  const r = await core.request({ type: 'refresh', token: await mint({ peerId: 'core-only' }) });
  assert.deepEqual([r.type, r.code], ['error', 'unknown_type']);
  assert.equal((await core.request({ type: 'subscribe', channel: 'mix' })).type, 'ack');
  const e = await ext(await mint({ peerId: 'ext-sender', channels: ['mix'] }));
  assert.equal((await e.request({ type: 'subscribe', channel: 'mix' })).type, 'ack');
  for (let i = 0; i < 3; i++) assert.equal((await e.request({ type: 'send', to: 'core-only', data: i })).type, 'ack');
  for (let i = 0; i < 3; i++) {
    const f = await core.next('direct');
    assert.deepEqual([f.data, 'seq' in f], [i, false]);
  }
  // An extension receiver of the same sends gets seq.
  assert.equal((await core.request({ type: 'send', to: 'ext-sender', data: 'x' })).type, 'ack');
  assert.equal((await e.next('direct')).seq, 1);
  const closed = await core.closed;
  assert.equal(closed.code, 4002);
  const allowed = { welcome: 1, ack: 1, error: 1, presence: 1, message: 1, direct: 1, pong: 1, going_away: 1 };
  for (const f of core.all) {
    assert.ok(allowed[f.type], `core client got ${f.type}`);
    if (f.type === 'ack') assert.deepEqual(Object.keys(f).sort(), ['requestId', 'type']);
    if (f.type === 'error') assert.notEqual(f.code, 'invalid_token');
  }
  await e.close();
});
