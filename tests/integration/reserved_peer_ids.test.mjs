// reserved_peer_ids.test.mjs: issue 11 defect 5, against a real rtmd.
// peerIds beginning with "_" belong to the system ("_server" is the sender of
// POST /v1/publish): the mint API refuses them (400 peer_id_reserved), the
// broker refuses tokens for them signed elsewhere (4001 reserved peerId),
// the REST calls that name a peer answer 400 peer_id_reserved, a direct
// send to one is invalid_peer_id, and publishable-key sessions get random
// ids that never begin with "_". So no client can pose as the backend.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRtmd, rtmJson } from '../lib/rtmd.mjs';
import { signToken, expectClose } from './broker_util.mjs';

let d;
before(async () => { d = await startRtmd(); });
after(async () => { await d.cleanup(); });

test('the mint API refuses _-prefixed peerIds with 400 peer_id_reserved', async () => {
  for (const peerId of ['_server', '_', '_rtm', '__x']) {
    const r = await d.api('POST', '/v1/tokens', { peerId });
    assert.equal(r.status, 400, `${peerId}: ${r.text}`);
    assert.equal(r.json.error, 'peer_id_reserved');
  }
  // an underscore elsewhere is an ordinary id
  const ok = await d.api('POST', '/v1/tokens', { peerId: 'a_server' });
  assert.equal(ok.status, 200, ok.text);
});

test('the broker refuses a token for _server signed outside rtm (4001 reserved peerId)', async () => {
  for (const sub of ['_server', '_x']) {
    const r = await expectClose(d, `?token=${encodeURIComponent(signToken(d.key, { sub }))}`);
    assert.deepEqual([r.code, r.reason, r.frames.length], [4001, 'reserved peerId', 0]);
  }
});

test('a subscriber only ever sees _server as the sender of a real server publish', async () => {
  const { token } = await d.mint({ peerId: 'watcher' });
  const w = await d.connect(token);
  assert.equal((await w.request({ type: 'subscribe', channel: 'news' })).type, 'ack');
  const r = await d.api('POST', '/v1/publish', { channel: 'news', data: { n: 1 } });
  assert.equal(r.status, 200, r.text);
  const m = await w.next('message');
  assert.equal(m.from, '_server');
  await w.close();
});

test('REST calls naming a _-prefixed peer answer 400 peer_id_reserved', async () => {
  const calls = [
    ['DELETE', '/v1/peers/_server'],
    ['DELETE', '/v1/peers/%5Fserver'],
    ['GET', '/v1/sessions?peerId=_server'],
    ['POST', '/v1/revocations', { peerId: '_server' }],
  ];
  for (const [m, p, body] of calls) {
    const r = await d.api(m, p, body);
    assert.equal(r.status, 400, `${m} ${p}: ${r.text}`);
    assert.equal(r.json.error, 'peer_id_reserved', `${m} ${p}`);
  }
});

test('a direct send to _server is invalid_peer_id', async () => {
  const { token } = await d.mint({ peerId: 'sender' });
  const c = await d.connect(token);
  const r = await c.request({ type: 'send', to: '_server', data: 1 });
  assert.deepEqual([r.type, r.code], ['error', 'invalid_peer_id']);
  await c.close();
});

test('publishable-key sessions get random ids that never begin with _', async () => {
  const pk = rtmJson(['key', 'create', '--db', d.db, '--app', d.app, '--publishable']);
  for (let i = 0; i < 20; i++) {
    const c = await d.open(`?key=${pk.id}`);
    const w = await c.next('welcome');
    assert.match(w.peerId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    await c.close();
  }
});
