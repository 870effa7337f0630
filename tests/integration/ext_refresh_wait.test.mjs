// ext_refresh_wait.test.mjs: a refresh whose token names a key the broker's
// in-memory view of the store does not know yet (created a moment ago by
// another process) waits for one fresh poll of the store, as a connect does
// (docs/EXTENSIONS.md "In-band refresh"). The daemon polls the store only
// every 5 s here, so without the wait the refresh would lose the race every
// time and be answered "unknown key".
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startRtmd, rtmJson } from '../lib/rtmd.mjs';
import { frameChecker } from '../lib/schema.mjs';
import { signToken, claimsOf, endCheckedDaemon } from './broker_util.mjs';

const SLOW = process.env.RTM_VALGRIND ? 4 : 1;
let d;
const frames = frameChecker();
const used = [];

before(async () => {
  d = frames.track(await startRtmd({ config: { 'store-poll-ms': 5000 } }));
});
after(() => endCheckedDaemon(d, frames, used));

const ext = async (peerId) => {
  const r = await d.mint({ peerId, expiresInSec: 600 });
  used.push(r.token);
  return d.connect(r.token, '&ext=1');
};
// A key of the daemon's app, made by `rtm key create` in another process.
const newKey = () => rtmJson(['key', 'create', '--db', d.db, '--app', d.app]);
const sign = (key, sub) => {
  const t = signToken(key, { sub, exp: Math.floor(Date.now() / 1000) + 900 });
  used.push(t);
  return t;
};
// Several frames in one TCP write: the broker reads them in the same loop
// turn, before the view (another thread) can have answered.
function sendTogether(c, list) {
  c.ws._socket.cork();
  for (const f of list) c.send(f);
  c.ws._socket.uncork();
}
const answerTo = (c, requestId) =>
  c.next((f) => (f.type === 'ack' || f.type === 'error') && f.requestId === requestId, 5000 * SLOW);

async function metric(name) {
  const r = await d.api('GET', '/metrics');
  const line = r.text.split('\n').find((l) => l.split(' ')[0] === name);
  return line ? Number(line.split(' ').pop()) : 0;
}

test('a refresh with a key created a moment ago in another process is acked: it waits for the view, as a connect does', async () => {
  const ok0 = await metric('rtm_refresh_total{result="ok"}');
  const c = await ext('fresh-key-peer');
  const tok = sign(newKey(), 'fresh-key-peer');
  const ack = await c.request({ type: 'refresh', token: tok }, 5000 * SLOW);
  assert.deepEqual([ack.type, ack.requestId], ['ack', 'r1'], JSON.stringify(ack));
  assert.equal(ack.expiresAt, claimsOf(tok).exp);
  assert.equal(await metric('rtm_refresh_total{result="ok"}'), ok0 + 1);
  // The session lives on the new token.
  assert.equal((await c.request({ type: 'ping' })).type, 'ack');
  assert.equal(c.closeInfo, null);
  await c.close();
});

test('a refresh whose key never appears gets "unknown key" with its requestId after the view answers; the session is untouched', async () => {
  const refused0 = await metric('rtm_refresh_total{result="refused"}');
  const c = await ext('never-key-peer');
  assert.equal((await c.request({ type: 'subscribe', channel: 'stay' })).type, 'ack');
  const ghost = { id: 'sk_' + randomBytes(12).toString('hex'), secret: 'sk_' + randomBytes(24).toString('hex') };
  const r = await c.request({ type: 'refresh', token: sign(ghost, 'never-key-peer') }, 5000 * SLOW);
  assert.deepEqual([r.type, r.code, r.message, r.requestId], ['error', 'invalid_token', 'unknown key', 'r2'],
    JSON.stringify(r));
  assert.equal(await metric('rtm_refresh_total{result="refused"}'), refused0 + 1);
  // Same subscription, same session.
  const o = await ext('never-key-other');
  assert.equal((await o.request({ type: 'publish', channel: 'stay', data: 'still subscribed' })).type, 'ack');
  assert.equal((await c.next('message')).data, 'still subscribed');
  assert.equal(c.closeInfo, null);
  await c.close();
  await o.close();
});

test('one refresh waits per session: a second one sent with it is answered at once as before, and other frames do not wait', async () => {
  const c = await ext('two-refresh-peer');
  const k1 = newKey(), k2 = newKey();
  const t1 = sign(k1, 'two-refresh-peer'), t2 = sign(k2, 'two-refresh-peer');
  sendTogether(c, [
    { type: 'refresh', token: t1, requestId: 'first' },
    { type: 'refresh', token: t2, requestId: 'second' },
    { type: 'ping', requestId: 'meanwhile' },
  ]);
  const first = await answerTo(c, 'first');
  const second = await answerTo(c, 'second');
  const ping = await answerTo(c, 'meanwhile');
  assert.equal(first.type, 'ack', JSON.stringify(first));
  assert.equal(first.expiresAt, claimsOf(t1).exp);
  assert.deepEqual([second.type, second.code, second.message], ['error', 'invalid_token', 'unknown key'],
    JSON.stringify(second));
  assert.equal(ping.type, 'ack');
  // The waiting refresh was answered last: the frames after it did not wait.
  const order = c.all.filter((f) => f.requestId).map((f) => f.requestId);
  assert.deepEqual(order.slice(-3), ['second', 'meanwhile', 'first']);
  // The view has polled since: the second key is known now.
  const again = await c.request({ type: 'refresh', token: t2 });
  assert.equal(again.type, 'ack', JSON.stringify(again));
  assert.equal(again.expiresAt, claimsOf(t2).exp);
  await c.close();
});

test('a session that closes while its refresh waits frees it; the daemon and other sessions go on', async () => {
  const ghost = { id: 'sk_' + randomBytes(12).toString('hex'), secret: 'sk_' + randomBytes(24).toString('hex') };
  for (let i = 0; i < 5; i++) {
    const c = await ext('leaving-peer-' + i);
    c.send({ type: 'refresh', token: sign(i % 2 ? ghost : newKey(), 'leaving-peer-' + i), requestId: 'gone' });
    if (i % 2) await c.terminate(); // no close frame: an extension session is held for its resume window
    else await c.close();
  }
  const o = await ext('stays-peer');
  const r = await o.request({ type: 'refresh', token: sign(newKey(), 'stays-peer') }, 5000 * SLOW);
  assert.equal(r.type, 'ack', JSON.stringify(r));
  await o.close();
});
