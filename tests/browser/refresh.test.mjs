// refresh.test.mjs: issue 7's extensions through the browser SDK, in Chromium.
//
// The long call: two pages call each other through a real coturn (relay
// only). Their first tokens live 30 s and carry a TURN credential the test
// computed to expire at 35 s; later tokens come from the mint API as usual.
// The broker's token_expiring makes the SDK refresh in-band, the call helper
// hands the refreshed iceServers to each RTCPeerConnection, and an ICE restart
// at 60 s, which can only allocate with the refreshed credential (the first
// one is refused by coturn by then, checked), selects a relay pair again. The
// call is still up at 90 s on the same session, with no close at all.
//
// Also: a refused refresh falls back to the 4002 close and a reconnect; the
// SDK's own timer refreshes when the broker's notice is not due yet; a
// dropped connection (a TCP proxy between page and broker cut without a close
// frame) is resumed with no presence change for two other peers, the direct
// messages and the presence change of the gap delivered in order with
// continuous seq, and a seq jump (the resume queue's bound) reported as a gap.
import { enterNetns, launchBrowser, newPage, waitInPage, jwtPayload, turnCredential } from '../lib/browser.mjs';
import { startRtmd, sleep } from '../lib/rtmd.mjs';
import { startCoturn, uclient } from '../lib/coturn.mjs';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect } from 'node:net';

await enterNetns(import.meta.url);

const NOTICE_SEC = 20;       // token_expiring this long before exp
const FIRST_TOKEN_SEC = 30;
const FIRST_TURN_SEC = 35;   // the first TURN credential's expiry, from minting
const RESUME_QUEUE = 3;      // direct messages held for a dropped peer
const CHANNEL = 'room-long';

let coturn, d, browser, turnSecret;

before(async () => {
  turnSecret = 'turn-' + Math.random().toString(36).slice(2);
  coturn = await startCoturn({ secrets: [turnSecret] });
  d = await startRtmd({
    turnSecrets: [turnSecret], turnUrls: coturn.urls,
    config: { 'token-expiring-notice-sec': NOTICE_SEC, 'resume-queue-messages': RESUME_QUEUE },
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await d?.cleanup();
  await coturn?.stop();
  // After the daemon stopped: an ASan/UBSan build (RTM_BUILD=build-asan-...) reports here.
  if (d) assert.doesNotMatch(d.log, /ERROR: (Address|Leak)Sanitizer|runtime error:/, `rtmd reported:\n${d.log.slice(-3000)}`);
  if (d) assert.doesNotMatch(d.log, /eyJ[\w-]+\.[\w-]+\.[\w-]+/, 'a token in rtmd\'s log');
});

// iceServers shaped as rtmd mints them, with a TURN credential of our expiry.
function iceServersExpiring(user, expiry) {
  return [
    { urls: coturn.urls.filter((u) => u.startsWith('stun:')) },
    { urls: coturn.urls.filter((u) => u.startsWith('turn:')), ...turnCredential(turnSecret, expiry, user) },
  ];
}

const turnUser = (servers) => servers.find((s) => s.username).username;

// The username coturn allocated a relay address for; its verbose log says
//   IPv4. Local relay addr: 127.0.0.1:52198
//   session 001000000000000004: new, realm=<rtm.test>, username=<1795465483:bob>, lifetime=600
function relayUser(addr) {
  const lines = coturn.log().split('\n');
  const i = lines.findLastIndex((l) => l.endsWith(`Local relay addr: ${addr}`));
  if (i < 0) return null;
  for (const l of lines.slice(i + 1, i + 6)) {
    const m = l.match(/: new, realm=<[^>]*>, username=<([^>]*)>/);
    if (m) return m[1];
  }
  return null;
}
const norm = (servers) => servers.map((s) => ({
  urls: [].concat(s.urls).sort(), username: s.username || null, credential: s.credential || null,
}));

// In the page: the SDK with the test's token provider, the call helper with
// relay-only ICE and a data channel. Everything observable goes to window.T.
async function joinCall({ channel }) {
  const { RtmClient } = await import('/sdk/rtm.js');
  const { CallMesh } = await import('/sdk/call.js');
  const at = () => Math.round(performance.now());
  const T = window.T = { ev: [], got: [], iceErrors: [] };
  const trace = window.__rtmTrace = [];
  // The SDK's own fallback (5 s before expiry) comes after the broker's
  // token_expiring (20 s before), so the broker's notice is what starts the refresh.
  const client = new RtmClient({ url: location.origin, token: () => window.mintToken(), refreshBeforeExpiryMs: 5000 });
  T.client = client;
  client.on('connected', (w) => T.ev.push({ t: 'connected', reconnect: w.reconnect, resumed: w.resumed, sessionId: w.sessionId, expiresAt: w.expiresAt, iceServers: w.iceServers, at: at() }));
  client.on('close', (c) => T.ev.push({ t: 'close', code: c.code, at: at() }));
  client.on('expiring', (e) => T.ev.push({ t: 'expiring', expiresAt: e.expiresAt, at: at() }));
  client.on('refreshed', (e) => T.ev.push({ t: 'refreshed', expiresAt: e.expiresAt, at: at() }));
  client.on('iceServers', (e) => T.ev.push({ t: 'iceServers', iceServers: e.iceServers, at: at() }));
  client.on('error', (e) => T.ev.push({ t: 'error', code: e.code, message: e.message, at: at() }));
  await client.connect();
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const call = new CallMesh(client, { channel, localStream: stream, rtcConfig: { iceTransportPolicy: 'relay' }, dataChannel: 'long' });
  T.call = call;
  call.on('datachannel', ({ channel: dc }) => { dc.onmessage = (e) => T.got.push(e.data); });
  call.on('icecandidateerror', (e) => T.iceErrors.push({ errorCode: e.errorCode, url: e.url, at: at() }));
  call.on('iceservers', (e) => T.ev.push({ t: 'pcIceServers', peers: e.peers, at: at() }));
  for (const ev of ['signal', 'peerjoined', 'peerleft', 'peerreset', 'connectionstatechange', 'icerestart', 'error']) {
    call.on(ev, (e) => trace.push(`${at()} ${ev} ${e && (e.message || JSON.stringify({ ...e, channel: undefined, stream: undefined }))}`));
  }
  await call.join();
  return client.peerId;
}

// In the page: the one remote connection's selected pair and media counters.
async function pairInfo() {
  const p = window.T.call.list()[0];
  const stats = await p.pc.getStats();
  const by = new Map();
  stats.forEach((s) => by.set(s.id, s));
  let pair = null;
  for (const s of by.values()) if (s.type === 'transport' && s.selectedCandidatePairId) pair = by.get(s.selectedCandidatePairId);
  const local = pair && by.get(pair.localCandidateId);
  const remote = pair && by.get(pair.remoteCandidateId);
  let frames = 0;
  by.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0; });
  return {
    state: p.connectionState,
    pairState: pair && pair.state,
    localType: local && local.candidateType,
    remoteType: remote && remote.candidateType,
    localAddr: local && `${local.address}:${local.port}`,
    localUfrag: local && local.usernameFragment,
    signaling: p.pc.signalingState,
    remoteAddr: remote && `${remote.address}:${remote.port}`,
    frames,
    ufrag: (p.pc.localDescription.sdp.match(/a=ice-ufrag:(\S+)/) || [])[1],
    pcIceServers: p.pc.getConfiguration().iceServers,
  };
}

function callUp() {
  const l = window.T.call.list();
  return l.length === 1 && l[0].connectionState === 'connected' && l[0].dataChannel && l[0].dataChannel.readyState === 'open';
}

// Evaluates fn in the page every 200 ms until check(result) holds; bounded by time.
async function pollPage(page, fn, check, { timeout, what }) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    last = await page.evaluate(fn);
    if (check(last)) return last;
    if (Date.now() > end) {
      const trace = await page.evaluate(() => (window.__rtmTrace || []).slice(-30)).catch(() => []);
      throw new Error(`timeout waiting for ${what}; last: ${JSON.stringify(last)}\n${trace.join('\n')}`);
    }
    await sleep(200);
  }
}

// Waits (in node) until the wall clock reaches `when` (ms since the epoch).
async function until(when) { const ms = when - Date.now(); if (ms > 0) await sleep(ms); }

test('a call whose first token lives 30 s survives 90 s; the ICE restart at 60 s allocates with refreshed TURN credentials', { timeout: 150000 }, async () => {
  const who = ['alice', 'bob']; // bob is the impolite side (larger peerId): he restarts ICE
  const minted = { alice: [], bob: [] };
  const firstIce = {};
  const pages = {};
  for (const peerId of who) {
    const page = await newPage(browser, d.publicUrl);
    await page.exposeFunction('mintToken', async () => {
      let r;
      if (minted[peerId].length === 0) {
        firstIce[peerId] = iceServersExpiring(peerId, Math.floor(Date.now() / 1000) + FIRST_TURN_SEC);
        r = await d.mint({ peerId, channels: [CHANNEL], expiresInSec: FIRST_TOKEN_SEC, metadata: { iceServers: firstIce[peerId] } });
      } else {
        r = await d.mint({ peerId, channels: [CHANNEL] }); // the mint API's own TURN credential
      }
      minted[peerId].push(r.token);
      return r.token;
    });
    pages[peerId] = page;
  }
  const t0 = Date.now();
  for (const peerId of who) assert.equal(await pages[peerId].evaluate(joinCall, { channel: CHANNEL }), peerId);
  for (const peerId of who) await waitInPage(pages[peerId], callUp, null, { what: `${peerId}'s call up`, timeout: 20000 });

  const before = {};
  for (const peerId of who) {
    // The call is up when ICE connects; the selected pair's own state can still read
    // 'in-progress' for a moment (a consent check in flight): polled, 10 s at most.
    const st = await pollPage(pages[peerId], pairInfo, (x) => x.pairState === 'succeeded',
      { what: `${peerId}: selected pair succeeded`, timeout: 10000 });
    assert.deepEqual([st.localType, st.remoteType], ['relay', 'relay'], `${peerId}: relay pair at the start`);
    assert.deepEqual(norm(st.pcIceServers), norm(firstIce[peerId]), `${peerId}: the connection starts with the first token's servers`);
    assert.equal(relayUser(st.localAddr), turnUser(firstIce[peerId]), `${peerId}: the relay in use (${st.localAddr}) was allocated with the first credential`);
    before[peerId] = st;
  }

  // token_expiring at exp - 20 s, then the refresh: new expiry, new iceServers, in every RTCPeerConnection.
  const fresh = {};
  for (const peerId of who) {
    const page = pages[peerId];
    await waitInPage(page, () => window.T.ev.some((e) => e.t === 'pcIceServers'), null, { what: `${peerId} refreshed`, timeout: 30000 });
    const ev = await page.evaluate(() => window.T.ev);
    const first = jwtPayload(minted[peerId][0]);
    assert.equal(minted[peerId].length, 2, `${peerId}: the provider was asked once more, for the refresh`);
    const second = jwtPayload(minted[peerId][1]);
    const kinds = ev.map((e) => e.t);
    assert.deepEqual(kinds, ['connected', 'expiring', 'refreshed', 'iceServers', 'pcIceServers'], `${peerId}: events ${kinds}`);
    const [connected, expiring, refreshed, ice] = ev;
    assert.equal(connected.expiresAt, first.exp);
    assert.equal(expiring.expiresAt, first.exp, 'token_expiring names the first token\'s expiry');
    // The welcome came right after minting (iat); the notice is due at exp - NOTICE_SEC (whole seconds).
    const dueMs = (first.exp - NOTICE_SEC - first.iat) * 1000;
    assert.ok(Math.abs(expiring.at - connected.at - dueMs) < 2500,
      `${peerId}: token_expiring ${expiring.at - connected.at} ms after the welcome, due ${dueMs}`);
    assert.equal(refreshed.expiresAt, second.exp, 'the ack carries the new token\'s expiry');
    assert.ok(second.exp > first.exp + 60);
    assert.deepEqual(norm(ice.iceServers), norm(second.metadata.iceServers), 'the iceServers event carries the new token\'s servers');
    assert.notEqual(turnUser(ice.iceServers), turnUser(firstIce[peerId]), 'with a different TURN credential');
    const st = await page.evaluate(pairInfo);
    assert.deepEqual(norm(st.pcIceServers), norm(ice.iceServers), `${peerId}: setConfiguration applied the refreshed servers`);
    assert.equal(await page.evaluate(() => window.T.client.expiresAt), second.exp);
    fresh[peerId] = ice.iceServers;
  }
  for (const peerId of who) {
    // Nothing has allocated with the refreshed credential yet: the connection runs on its first allocation.
    assert.ok(!coturn.allocated(turnUser(fresh[peerId])), `${peerId}: no allocation with the refreshed credential before the restart`);
  }

  // Past 35 s the first credential is dead: coturn refuses it, so only the refreshed one can allocate now.
  await until(t0 + (FIRST_TURN_SEC + 2) * 1000);
  const stale = firstIce.alice.find((s) => s.username);
  const r = await uclient({ port: coturn.port, username: stale.username, credential: stale.credential, messages: 2, timeoutMs: 10000 });
  assert.notEqual(r.code, 0, `coturn refuses the first credential after its expiry: ${r.output.slice(-300)}`);
  assert.ok(coturn.unauthorized(stale.username), 'coturn logged the 401 for the expired first credential');
  for (const peerId of who) assert.ok(await pages[peerId].evaluate(callUp), `${peerId}: call still up at ${Math.round((Date.now() - t0) / 1000)} s`);

  // The ICE restart at 60 s, from the impolite side as the call helper does it.
  await until(t0 + 60000);
  await pages.bob.evaluate(() => window.T.call.list()[0].pc.restartIce());
  for (const peerId of who) {
    // Polled from here: the selected pair belongs to the new ICE generation (its local ufrag is the new one).
    const old = before[peerId].ufrag;
    await pollPage(pages[peerId], pairInfo, (st) => st.state === 'connected' && st.signaling === 'stable' && st.ufrag !== old &&
      st.localUfrag === st.ufrag && st.pairState === 'succeeded', { what: `${peerId}: ICE restarted onto a new pair`, timeout: 20000 });
  }
  for (const peerId of who) {
    const st = await pages[peerId].evaluate(pairInfo);
    assert.deepEqual([st.localType, st.remoteType], ['relay', 'relay'], `${peerId}: relay pair after the restart`);
    assert.notEqual(st.ufrag, before[peerId].ufrag, `${peerId}: new ICE credentials`);
    assert.notEqual(st.localAddr, before[peerId].localAddr, `${peerId}: a new relay allocation (${before[peerId].localAddr} -> ${st.localAddr})`);
    assert.equal(relayUser(st.localAddr), turnUser(fresh[peerId]), `${peerId}: the relay in use (${st.localAddr}) was allocated with the refreshed credential`);
  }

  // Hold the call to 90 s, then: data and media still flow, and the session never closed.
  await until(t0 + 90000);
  await pages.alice.evaluate(() => window.T.call.list()[0].dataChannel.send('alice at 90 s'));
  await pages.bob.evaluate(() => window.T.call.list()[0].dataChannel.send('bob at 90 s'));
  await waitInPage(pages.bob, () => window.T.got.includes('alice at 90 s'), null, { what: 'bob receives alice at 90 s' });
  await waitInPage(pages.alice, () => window.T.got.includes('bob at 90 s'), null, { what: 'alice receives bob at 90 s' });
  for (const peerId of who) {
    const page = pages[peerId];
    const f1 = (await page.evaluate(pairInfo)).frames;
    await sleep(1500);
    const st = await page.evaluate(pairInfo);
    assert.ok(st.frames > f1, `${peerId}: video frames still decoded at 90 s (${f1} -> ${st.frames})`);
    const ev = await page.evaluate(() => window.T.ev);
    assert.deepEqual(ev.filter((e) => e.t === 'close'), [], `${peerId}: no close in ${Math.round((Date.now() - t0) / 1000)} s`);
    assert.equal(ev.filter((e) => e.t === 'connected').length, 1, `${peerId}: one welcome, no reconnect`);
    assert.deepEqual(ev.filter((e) => e.t === 'error'), [], `${peerId}: no error`);
    const s = await page.evaluate(() => ({ state: window.T.client.state, sessionId: window.T.client.sessionId }));
    assert.equal(s.state, 'open');
    assert.equal(s.sessionId, ev[0].sessionId, `${peerId}: same session`);
    assert.ok(typeof s.sessionId === 'string' && s.sessionId.length > 0, 'an extension session');
    assert.ok(Date.now() / 1000 > jwtPayload(minted[peerId][0]).exp + 55, 'well past the first token\'s expiry');
    assert.equal(minted[peerId].length, 2, `${peerId}: no further token asked for`);
    const leaked = page.rtmLog.filter((l) => minted[peerId].some((t) => l.includes(t.split('.')[2])));
    assert.deepEqual(leaked, [], `${peerId}: no token in the console`);
  }
  if (process.env.RTM_TEST_VERBOSE) {
    for (const peerId of who) process.stderr.write(`${peerId} ice errors: ${JSON.stringify(await pages[peerId].evaluate(() => window.T.iceErrors))}\n`);
  }
  for (const peerId of who) await pages[peerId].context().close();
});

test('a refused refresh leaves the session alone; the 4002 close and a reconnect with a fresh token follow', async () => {
  const page = await newPage(browser, d.publicUrl);
  const minted = [];
  // 1st: a 4 s token (token_expiring comes at once); 2nd, for the refresh:
  // another peer's token, refused; 3rd, for the reconnect after 4002: a good one.
  await page.exposeFunction('mintToken', async () => {
    const n = minted.length;
    const r = await d.mint({ peerId: n === 1 ? 'mallory' : 'kim', channels: ['room-k'], expiresInSec: n === 0 ? 4 : 3600 });
    minted.push(r.token);
    return r.token;
  });
  await page.evaluate(async () => {
    const { RtmClient } = await import('/sdk/rtm.js');
    const ev = window.__ev = [];
    const c = window.__c = new RtmClient({ url: location.origin, token: () => window.mintToken() });
    for (const t of ['expiring', 'refreshed', 'iceServers']) c.on(t, () => ev.push({ t }));
    c.on('error', (e) => ev.push({ t: 'error', code: e.code, message: e.message }));
    c.on('close', (e) => ev.push({ t: 'close', code: e.code, retryInMs: e.retryInMs }));
    c.on('connected', (w) => ev.push({ t: 'connected', reconnect: w.reconnect, expiresAt: w.expiresAt, resumed: w.resumed }));
    await c.connect();
  });
  await waitInPage(page, () => window.__ev.some((e) => e.t === 'connected' && e.reconnect), null, { what: 'reconnect after 4002', timeout: 15000 });
  const ev = await page.evaluate(() => window.__ev);
  assert.deepEqual(ev.map((e) => e.t), ['connected', 'expiring', 'error', 'close', 'connected'], JSON.stringify(ev));
  assert.equal(ev[2].code, 'invalid_token');
  assert.match(ev[2].message, /^refresh refused: .*peer/);
  assert.equal(ev[3].code, 4002, 'the first token ran out: the usual close');
  assert.equal(ev[3].retryInMs, 0);
  assert.equal(ev[4].expiresAt, jwtPayload(minted[2]).exp, 'the reconnect used the provider\'s next token');
  assert.equal(ev[4].resumed, false, 'an expired session is not resumed');
  assert.equal(minted.length, 3);
  assert.equal(await page.evaluate(() => window.__c.peerId), 'kim');
  await page.evaluate(() => window.__c.close());
  await page.context().close();
});

test('without token_expiring in time, the SDK refreshes on its own refreshBeforeExpiryMs before expiry', async () => {
  const page = await newPage(browser, d.publicUrl);
  const minted = [];
  await page.exposeFunction('mintToken', async () => {
    const r = await d.mint({ peerId: 'lee', channels: ['room-l'], expiresInSec: minted.length === 0 ? FIRST_TOKEN_SEC : 3600 });
    minted.push(r.token);
    return r.token;
  });
  // 26 s before a 30 s token's expiry is 4 s after the welcome, well before
  // the broker's notice (20 s before expiry, 10 s after the welcome).
  const t0 = Date.now();
  await page.evaluate(async () => {
    const { RtmClient } = await import('/sdk/rtm.js');
    const ev = window.__ev = [];
    const at = () => Math.round(performance.now());
    const c = window.__c = new RtmClient({ url: location.origin, token: () => window.mintToken(), refreshBeforeExpiryMs: 26000 });
    for (const t of ['expiring', 'iceServers', 'close', 'error']) c.on(t, (e) => ev.push({ t, code: e && e.code, at: at() }));
    c.on('refreshed', (e) => ev.push({ t: 'refreshed', expiresAt: e.expiresAt, at: at() }));
    c.on('connected', () => ev.push({ t: 'connected', at: at() }));
    await c.connect();
  });
  await waitInPage(page, () => window.__ev.some((e) => e.t === 'refreshed'), null, { what: 'the fallback refresh', timeout: 10000 });
  // Past the time the broker would have sent token_expiring for the first token.
  await until(t0 + (FIRST_TOKEN_SEC - NOTICE_SEC + 2) * 1000);
  const ev = await page.evaluate(() => window.__ev);
  assert.deepEqual(ev.map((e) => e.t), ['connected', 'refreshed', 'iceServers'], JSON.stringify(ev));
  const after = ev[1].at - ev[0].at;
  const due = (jwtPayload(minted[0]).exp - jwtPayload(minted[0]).iat - 26) * 1000;
  assert.ok(Math.abs(after - due) < 2500, `refreshed ${after} ms after the welcome, due ${due}`);
  assert.equal(ev[1].expiresAt, jwtPayload(minted[1]).exp);
  assert.equal(minted.length, 2);
  assert.equal(await page.evaluate(() => window.__c.state), 'open');
  await page.evaluate(() => window.__c.close());
  await page.context().close();
});

// A TCP proxy in front of rtmd's public listener: cut() resets every
// connection through it, with no WebSocket close, like a network drop.
async function startProxy(port) {
  const socks = new Set();
  const server = createServer((down) => {
    const up = connect(port, '127.0.0.1');
    for (const s of [down, up]) { socks.add(s); s.on('close', () => socks.delete(s)); s.on('error', () => {}); }
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut: () => { for (const s of [...socks]) s.resetAndDestroy(); },
    close: () => new Promise((res) => { for (const s of socks) s.destroy(); server.close(res); }),
  };
}

test('a dropped page resumes its session: no presence change for two others, the gap\'s directs and leave replayed in order, a seq jump reported', { timeout: 60000 }, async () => {
  const proxy = await startProxy(d.publicPort);
  const others = {};
  let page;
  try {
    for (const peerId of ['hank', 'ivy']) {
      others[peerId] = await d.connect((await d.mint({ peerId, channels: ['room-r'] })).token, '&ext=1');
      assert.equal((await others[peerId].request({ type: 'subscribe', channel: 'room-r' })).type, 'ack');
    }
    // The page itself comes through the proxy, so the broker is its own origin
    // (rtmd's pages allow connections to 'self' only).
    page = await newPage(browser, proxy.url);
    const tok = await d.mint({ peerId: 'gina', channels: ['room-r'] });
    await page.evaluate(async ({ token }) => {
      const { RtmClient } = await import('/sdk/rtm.js');
      const ev = window.__ev = [];
      // A long first backoff, so the gap is long enough to send into.
      const c = window.__c = new RtmClient({ url: location.origin, token: () => token, backoffInitialMs: 2500, backoffJitter: 0 });
      c.on('connected', (w) => ev.push({ t: 'connected', reconnect: w.reconnect, resumed: w.resumed, sessionId: w.sessionId }));
      c.on('close', (e) => ev.push({ t: 'close', code: e.code }));
      // (A snapshot lists members in the broker's table order: sorted here.)
    c.on('presence', (p) => ev.push({ t: 'presence', joined: p.joined.map((j) => j.peerId).sort(), left: p.left.map((l) => l.peerId).sort() }));
      c.on('direct', (m) => ev.push({ t: 'direct', from: m.from, data: m.data, seq: m.seq }));
      c.on('gap', (g) => ev.push({ t: 'gap', ...g }));
      await c.connect();
      await c.subscribe('room-r');
    }, { token: tok.token });
    await waitInPage(page, () => window.__c.members('room-r').length === 2, null, { what: 'gina sees hank and ivy' });
    for (const o of Object.values(others)) await o.next((f) => f.type === 'presence' && f.joined?.some((j) => j.peerId === 'gina'));
    const send = async (n) => {
      const a = await others.hank.request({ type: 'send', to: 'gina', data: { n } });
      assert.equal(a.type, 'ack', `send ${n}: ${JSON.stringify(a)}`);
    };
    await send(1);
    await waitInPage(page, (n) => (window.__ev.filter((e) => e.t === 'direct').length === n), 1, { what: 'direct 1' });

    // Drop 1: two directs and ivy leaving in the gap, as many frames as the queue holds.
    proxy.cut();
    await waitInPage(page, () => window.__ev.filter((e) => e.t === 'close').length === 1, null, { what: 'gina sees the drop' });
    await sleep(300); // the broker sees the reset and holds the place
    for (const n of [2, 3]) await send(n);
    assert.equal((await others.ivy.request({ type: 'unsubscribe', channel: 'room-r' })).type, 'ack');
    await waitInPage(page, () => window.__ev.filter((e) => e.t === 'connected').length === 2, null, { what: 'gina back', timeout: 10000 });
    await waitInPage(page, () => window.__ev.filter((e) => e.t === 'presence').length === 2, null, { what: 'ivy\'s leave from the gap' });

    // Drop 2: five directs in the gap; the queue keeps the newest three.
    proxy.cut();
    await waitInPage(page, () => window.__ev.filter((e) => e.t === 'close').length === 2, null, { what: 'gina sees the second drop' });
    await sleep(300);
    for (const n of [4, 5, 6, 7, 8]) await send(n);
    await waitInPage(page, () => window.__ev.filter((e) => e.t === 'connected').length === 3, null, { what: 'gina back again', timeout: 10000 });
    await waitInPage(page, (n) => (window.__ev.filter((e) => e.t === 'direct').length === n), 6, { what: 'directs 6-8' });
    await send(9); // after the resume: seq carries on
    await waitInPage(page, (n) => (window.__ev.filter((e) => e.t === 'direct').length === n), 7, { what: 'direct 9' });
    await sleep(500); // room for a stray presence frame to show up

    const ev = await page.evaluate(() => window.__ev);
    const connected = ev.filter((e) => e.t === 'connected');
    assert.deepEqual(connected.map((e) => [e.reconnect, e.resumed]), [[false, false], [true, true], [true, true]], JSON.stringify(connected));
    assert.ok(connected.every((e) => e.sessionId === connected[0].sessionId), 'the same session throughout');
    assert.deepEqual(ev.filter((e) => e.t === 'close').map((e) => e.code), [1006, 1006], 'two drops, no close frame');
    assert.deepEqual(ev.filter((e) => e.t === 'direct').map((e) => [e.data.n, e.seq]),
      [[1, 1], [2, 2], [3, 3], [6, 6], [7, 7], [8, 8], [9, 9]], 'in order, once, seq continuous across the resumes');
    assert.deepEqual(ev.filter((e) => e.t === 'gap'), [{ t: 'gap', from: 'hank', expected: 4, got: 6 }], 'the two dropped by the queue bound');
    // The gap event comes right before the message that revealed it.
    const gi = ev.findIndex((e) => e.t === 'gap');
    assert.deepEqual([ev[gi + 1].t, ev[gi + 1].seq], ['direct', 6]);
    // The first resume replays the gap as it happened: the directs, then ivy's leave.
    const c1 = ev.findIndex((e, i) => e.t === 'connected' && i > 0);
    assert.deepEqual(ev.slice(c1, c1 + 4).map((e) => (e.t === 'direct' ? e.data.n : e.t)), ['connected', 2, 3, 'presence']);
    assert.deepEqual(ev.filter((e) => e.t === 'presence'), [
      { t: 'presence', joined: ['hank', 'ivy'], left: [] },
      { t: 'presence', joined: [], left: ['ivy'] },
    ], 'gina: the first snapshot, then the leave that happened in the gap; no rejoin of anyone');
    assert.deepEqual(await page.evaluate(() => window.__c.members('room-r').map((m) => m.peerId)), ['hank']);
    for (const [peerId, o] of Object.entries(others)) {
      const seen = o.all.filter((f) => f.type === 'presence' && [...(f.joined || []), ...(f.left || [])].some((p) => p.peerId === 'gina'));
      assert.equal(seen.length, 1, `${peerId} saw gina join once and nothing after: ${JSON.stringify(seen)}`);
      assert.deepEqual(seen[0].joined.map((j) => j.peerId), ['gina']);
    }

    // The same broker to a client without the extensions: no session, no seq.
    const core = await page.evaluate(async ({ token }) => {
      const { RtmClient } = await import('/sdk/rtm.js');
      const c = window.__core = new RtmClient({ url: location.origin, token: () => token, extensions: false });
      window.__coreGot = [];
      c.on('direct', (m) => window.__coreGot.push(m));
      const w = await c.connect();
      await c.subscribe('room-r'); // directs go between peers that share a channel
      return { sessionId: w.sessionId, resumed: w.resumed, welcomeKeys: Object.keys(c.welcome).sort() };
    }, { token: (await d.mint({ peerId: 'jo', channels: ['room-r'] })).token });
    assert.equal(core.sessionId, null);
    assert.equal(core.resumed, false);
    assert.ok(!core.welcomeKeys.some((k) => ['sessionId', 'resumeWindowMs', 'resumed'].includes(k)), `core welcome: ${core.welcomeKeys}`);
    const a = await others.hank.request({ type: 'send', to: 'jo', data: { n: 1 } });
    assert.equal(a.type, 'ack', JSON.stringify(a));
    await waitInPage(page, () => window.__coreGot.length === 1, null, { what: 'jo gets a direct' });
    const got = await page.evaluate(() => window.__coreGot[0]);
    assert.equal(got.from, 'hank');
    assert.equal(got.seq, undefined, 'no seq for a core client');
  } finally {
    for (const o of Object.values(others)) await o.close();
    await page?.context().close();
    await proxy.close();
  }
});
