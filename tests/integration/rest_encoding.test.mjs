// rest_encoding.test.mjs: issue 11 defect 6, against a real rtmd. Every REST
// path that takes an id, given percent-encoded ids: DELETE /v1/peers/{peerId}
// (a "/" sent as %2F is part of the id: evil/peer can be kicked), the exact
// query form DELETE /v1/peers?peerId= (ids lws would normalize in a path),
// GET /v1/sessions?peerId=, GET /v1/peers?channel=, POST /v1/revocations.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRtmd } from '../lib/rtmd.mjs';
import { until } from './broker_util.mjs';

let d;
before(async () => { d = await startRtmd(); });
after(async () => { await d.cleanup(); });

// Awkward but valid peerIds (printable ASCII): reserved URI characters,
// "%" itself, and sequences a path normalizer rewrites.
const IDS = ['evil/peer', 'a/b/c', 'x%41y', 'p+q', 'q?r=s', 'h#frag', 'amp&er;semi', 'sl/./dot', 'dbl//slash',
  '../up', 'trail/', 'e=mc2', "qu'ote\"s", '[br]{ac}', 'caf%C3%A9'];
// Ids whose path form lws normalizes (documented): these use the query form.
const pathSafe = (id) => !/\/\/|(^|\/)\.\.?(\/|$)|\/$/.test(id) && !id.startsWith('/');

async function connected(peerId, channel) {
  const { token } = await d.mint({ peerId });
  const c = await d.connect(token);
  assert.equal(c.welcome.peerId, peerId);
  if (channel) assert.equal((await c.request({ type: 'subscribe', channel })).type, 'ack');
  return c;
}

test('DELETE /v1/peers/{peerId} with a percent-encoded id kicks exactly that peer (4020)', async () => {
  for (const id of IDS.filter(pathSafe)) {
    const c = await connected(id);
    const bystander = await connected(id + 'X');
    const r = await d.api('DELETE', `/v1/peers/${encodeURIComponent(id)}`);
    assert.equal(r.status, 200, `${id}: ${r.text}`);
    assert.deepEqual(r.json, { peerId: id, closed: 1 }, id);
    assert.equal((await c.closed).code, 4020, id);
    assert.equal(bystander.closeInfo, null, `${id}: another peer was kicked`);
    await bystander.close();
  }
});

test('DELETE /v1/peers?peerId= is exact for every id, those a path would lose included', async () => {
  for (const id of IDS) {
    const c = await connected(id);
    const r = await d.api('DELETE', `/v1/peers?peerId=${encodeURIComponent(id)}`);
    assert.equal(r.status, 200, `${id}: ${r.text}`);
    assert.deepEqual(r.json, { peerId: id, closed: 1 }, id);
    assert.equal((await c.closed).code, 4020, id);
  }
  const none = await d.api('DELETE', '/v1/peers');
  assert.equal(none.status, 400, none.text);
  assert.equal(none.json.error, 'invalid_request');
  const wrong = await d.api('POST', '/v1/peers');
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get('allow'), 'GET, DELETE');
});

test('GET /v1/sessions?peerId= with percent-encoded ids finds exactly that peer\'s rows', async () => {
  for (const id of IDS) {
    const c = await connected(id);
    await c.close();
    const rows = await until(async () => {
      const r = await d.api('GET', `/v1/sessions?peerId=${encodeURIComponent(id)}`);
      assert.equal(r.status, 200, `${id}: ${r.text}`);
      return r.json.sessions.length ? r.json.sessions : null;
    });
    assert.ok(rows && rows.length >= 1, id);
    for (const s of rows) assert.equal(s.peerId, id);
  }
});

test('GET /v1/peers?channel= with percent-encoded channel names', async () => {
  for (const ch of ['room/1', 'a&b=c', 'q?x', 'sp ace', 'pl+us', '100%', 'h#1']) {
    const c = await connected('chan-' + ch.length + '-' + Buffer.from(ch).toString('hex'), ch);
    const r = await d.api('GET', `/v1/peers?channel=${encodeURIComponent(ch)}`);
    assert.equal(r.status, 200, `${ch}: ${r.text}`);
    assert.deepEqual(r.json.peers.map((p) => p.peerId), [c.welcome.peerId], ch);
    await c.close();
  }
});

test('POST /v1/revocations and POST /v1/tokens take such ids in the body unchanged', async () => {
  for (const id of ['evil/peer', 'x%41y', 'p+q']) {
    const c = await connected(id);
    const r = await d.api('POST', '/v1/revocations', { peerId: id });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.peerId, id);
    const info = await c.closed;
    assert.deepEqual([info.code, info.reason], [4001, 'token revoked'], id);
  }
});

test('rtm kick takes any peerId (the query form), dot segments and double slashes included', async () => {
  const { execFileSync } = await import('node:child_process');
  const { RTM } = await import('../lib/rtmd.mjs');
  for (const id of ['tool//slash', 'tool/./dot', 'tool/peer']) {
    const c = await connected(id);
    const lossy = id.replace(/\/+/g, '/').replace('/./', '/'); // what a normalized path would name
    const other = lossy !== id ? await connected(lossy) : null;
    const out = execFileSync(RTM, ['kick', id, '--backend', d.backendUrl], {
      encoding: 'utf8', env: { ...process.env, RTM_KEY: d.key.secret },
    });
    assert.deepEqual(JSON.parse(out), { peerId: id, closed: 1 }, id);
    assert.equal((await c.closed).code, 4020);
    if (other) {
      assert.equal(other.closeInfo, null, `${id}: kicked ${lossy} too`);
      await other.close();
    }
  }
});
