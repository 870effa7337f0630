// call.test.mjs: two Chromium pages join one room through the browser SDK and
// call each other through a real coturn, relay only, with the iceServers that
// came in their welcome frames. Also: the SDK's request/error paths and
// terminal close handling against the real broker, and no token in any log.
import { enterNetns, launchBrowser, newPage, waitInPage, jwtPayload } from '../lib/browser.mjs';
import { startRtmd, rtmJson } from '../lib/rtmd.mjs';
import { startCoturn } from '../lib/coturn.mjs';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

await enterNetns(import.meta.url);

const CHANNEL = 'room-e2e';
let coturn, d, browser;

before(async () => {
  const secret = 'turn-' + Math.random().toString(36).slice(2);
  coturn = await startCoturn({ secrets: [secret] });
  d = await startRtmd({ turnSecrets: [secret], turnUrls: coturn.urls });
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

// Runs in the page: connect with the SDK, fake media, join the mesh call with
// relay-only ICE and a negotiated data channel. State goes to window.T.
async function joinCall({ token, channel }) {
  const { RtmClient } = await import('/sdk/rtm.js');
  const { CallMesh } = await import('/sdk/call.js');
  const T = { welcome: null, got: [], errors: [], closes: [] };
  window.T = T;
  const client = new RtmClient({ url: location.origin, token: () => token });
  T.client = client;
  client.on('connected', (w) => { T.welcome = w; });
  client.on('close', (c) => T.closes.push(c));
  await client.connect();
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const call = new CallMesh(client, { channel, localStream: stream, rtcConfig: { iceTransportPolicy: 'relay' }, dataChannel: 'e2e' });
  T.call = call;
  call.on('datachannel', ({ channel: dc }) => { dc.onmessage = (e) => T.got.push(e.data); });
  call.on('stream', ({ peerId, stream: s }) => {
    const v = document.createElement('video');
    v.autoplay = true; v.muted = true; v.playsInline = true; v.srcObject = s; v.dataset.peer = peerId;
    document.body.append(v);
  });
  call.on('icecandidateerror', (e) => T.errors.push({ errorCode: e.errorCode, errorText: e.errorText }));
  // A trace for failure reports (tests/lib/browser.mjs prints window.__rtmTrace).
  const trace = window.__rtmTrace = [];
  for (const ev of ['signal', 'peerjoined', 'peerleft', 'peerreset', 'connectionstatechange', 'icerestart', 'error', 'icecandidateerror']) {
    call.on(ev, (e) => trace.push(`${ev} ${e && (e.message || JSON.stringify({ ...e, channel: undefined, stream: undefined }))}`));
  }
  client.on('presence', (p) => trace.push(`presence ${JSON.stringify(p)}`));
  await call.join();
  return client.peerId;
}

// Runs in the page: what the one remote connection is really doing.
async function callStats() {
  const p = window.T.call.list()[0];
  const stats = await p.pc.getStats();
  const by = new Map();
  stats.forEach((s) => by.set(s.id, s));
  let pair = null;
  for (const s of by.values()) if (s.type === 'transport' && s.selectedCandidatePairId) pair = by.get(s.selectedCandidatePairId);
  const local = pair && by.get(pair.localCandidateId);
  const remote = pair && by.get(pair.remoteCandidateId);
  const inbound = (kind) => [...by.values()].find((s) => s.type === 'inbound-rtp' && s.kind === kind) || {};
  const v = document.querySelector('video');
  return {
    pairState: pair && pair.state,
    localType: local && local.candidateType,
    remoteType: remote && remote.candidateType,
    localUrl: local && local.url,
    framesDecoded: inbound('video').framesDecoded || 0,
    audioSamples: inbound('audio').totalSamplesReceived || 0,
    audioPackets: inbound('audio').packetsReceived || 0,
    audioConcealed: inbound('audio').concealedSamples || 0,
    videoWidth: v ? v.videoWidth : 0,
    pcIceServers: p.pc.getConfiguration().iceServers,
    welcomeIceServers: window.T.welcome.iceServers,
    bundlePolicy: p.pc.getConfiguration().bundlePolicy,
    transportPolicy: p.pc.getConfiguration().iceTransportPolicy,
  };
}

const norm = (servers) => servers.map((s) => ({
  urls: [].concat(s.urls).sort(), username: s.username || null, credential: s.credential || null,
}));

test('two pages call through coturn, relay only, with the welcome\'s iceServers', async () => {
  const alice = await d.mint({ peerId: 'alice', channels: [CHANNEL], peerMetadata: { name: 'Alice' } });
  const bob = await d.mint({ peerId: 'bob', channels: [CHANNEL], peerMetadata: { name: 'Bob' } });
  const pa = await newPage(browser, d.publicUrl);
  const pb = await newPage(browser, d.publicUrl);
  assert.equal(await pa.evaluate(joinCall, { token: alice.token, channel: CHANNEL }), 'alice');
  assert.equal(await pb.evaluate(joinCall, { token: bob.token, channel: CHANNEL }), 'bob');

  const ready = () => {
    const l = window.T.call.list();
    return l.length === 1 && l[0].connectionState === 'connected' && l[0].dataChannel && l[0].dataChannel.readyState === 'open';
  };
  await waitInPage(pa, ready, null, { what: 'alice connected to bob' });
  await waitInPage(pb, ready, null, { what: 'bob connected to alice' });

  // A data-channel message each way.
  await pa.evaluate(() => window.T.call.list()[0].dataChannel.send('hello from alice'));
  await pb.evaluate(() => window.T.call.list()[0].dataChannel.send('hello from bob'));
  await waitInPage(pb, () => window.T.got.includes('hello from alice'), null, { what: 'bob receives alice\'s message' });
  await waitInPage(pa, () => window.T.got.includes('hello from bob'), null, { what: 'alice receives bob\'s message' });

  // Fake audio and video decoded on both sides.
  for (const [page, who] of [[pa, 'alice'], [pb, 'bob']]) {
    await waitInPage(page, () => {
      const v = document.querySelector('video');
      return v && v.videoWidth > 0 && v.currentTime > 0;
    }, null, { what: `${who} plays the remote video` });
    let st = null;
    for (let i = 0; i < 50; i++) { // bounded: 10 s
      st = await page.evaluate(callStats);
      // the selected pair's state is a stats snapshot: a consent check in flight reads
      // 'in-progress' for a moment even while media flows over it
      if (st.framesDecoded > 0 && st.audioSamples > st.audioConcealed && st.audioPackets > 0 &&
          st.pairState === 'succeeded') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(st.framesDecoded > 0, `${who}: video frames decoded (${st.framesDecoded})`);
    // Samples the decoder produced from real packets, not only concealment of missing ones.
    assert.ok(st.audioPackets > 0 && st.audioSamples > st.audioConcealed,
      `${who}: audio decoded (packets ${st.audioPackets}, samples ${st.audioSamples}, concealed ${st.audioConcealed})`);
    assert.ok(st.videoWidth > 0, `${who}: video element has a width`);
    assert.equal(st.pairState, 'succeeded', `${who}: selected pair succeeded`);
    assert.equal(st.localType, 'relay', `${who}: local candidate of the selected pair is relay`);
    assert.equal(st.remoteType, 'relay', `${who}: remote candidate of the selected pair is relay`);
    assert.equal(st.transportPolicy, 'relay');
    assert.equal(st.bundlePolicy, 'max-bundle');
    // The iceServers in use are exactly the welcome's, which are exactly the minted token's.
    const minted = jwtPayload(who === 'alice' ? alice.token : bob.token).metadata.iceServers;
    assert.deepEqual(norm(st.welcomeIceServers), norm(minted), `${who}: welcome carries the minted iceServers`);
    assert.deepEqual(norm(st.pcIceServers), norm(st.welcomeIceServers), `${who}: RTCPeerConnection uses the welcome's iceServers`);
    assert.ok(minted.some((s) => [].concat(s.urls).some((u) => u.includes(`:${coturn.port}`))), 'minted servers point at the test coturn');
    assert.ok(st.localUrl && minted.some((s) => [].concat(s.urls).includes(st.localUrl)), `${who}: relay allocated via a welcome url (${st.localUrl})`);
  }
  for (const p of [pa, pb]) {
    assert.deepEqual(await p.evaluate(() => window.T.errors), [], 'no ICE candidate errors with fresh credentials');
    const leaked = p.rtmLog.filter((l) => l.includes(alice.token) || l.includes(bob.token));
    assert.deepEqual(leaked, [], 'no token in the page console');
  }

  // Bob hangs up: alice's helper drops the peer.
  await pb.evaluate(() => window.T.call.leave());
  await waitInPage(pa, () => window.T.call.list().length === 0, null, { what: 'alice sees bob leave' });
  await pa.context().close();
  await pb.context().close();
});

test('SDK requests settle on ack or error; a bad token is terminal and never echoed', async () => {
  const tok = await d.mint({ peerId: 'carol', channels: ['room-a'], permissions: ['subscribe', 'publish', 'presence'] });
  const page = await newPage(browser, d.publicUrl);
  const r = await page.evaluate(async ({ token }) => {
    const { RtmClient } = await import('/sdk/rtm.js');
    const out = {};
    const c = new RtmClient({ url: location.origin, token: async () => token });
    const w = await c.connect();
    out.peerId = w.peerId;
    out.ack = (await c.subscribe('room-a')).type;
    out.pub = (await c.publish('room-a', { x: 1 })).type;
    const err = async (p) => p.then(() => 'resolved', (e) => ({ code: e.code, message: e.message, name: e.name }));
    out.notAuthorized = await err(c.subscribe('room-b'));
    out.notPermitted = await err(c.send('nobody', { x: 1 }));
    out.reserved = await err(c.publish('_rtm/x', 1));
    c.close();
    out.afterClose = await err(c.publish('room-a', 1));

    // A token the broker refuses: 4001 is terminal, the SDK does not retry.
    let calls = 0;
    const bad = new RtmClient({ url: location.origin, token: () => { calls++; return token.slice(0, -4) + 'AAAA'; }, backoffInitialMs: 50 });
    const closes = [];
    bad.on('close', (e) => closes.push(e));
    out.badConnect = await err(bad.connect());
    await new Promise((res) => setTimeout(res, 600));
    out.badCloses = closes;
    out.providerCalls = calls;
    out.badState = bad.state;
    return out;
  }, { token: tok.token });

  assert.equal(r.peerId, 'carol');
  assert.equal(r.ack, 'ack');
  assert.equal(r.pub, 'ack');
  assert.equal(r.notAuthorized.code, 'channel_not_authorized');
  assert.equal(r.notAuthorized.name, 'RtmError');
  assert.equal(r.notPermitted.code, 'action_not_permitted');
  assert.ok(['channel_reserved', 'channel_not_authorized'].includes(r.reserved.code), r.reserved.code);
  assert.equal(r.afterClose.code, 'closed');
  assert.equal(r.badConnect.code, 'closed');
  assert.match(r.badConnect.message, /4001/);
  assert.equal(r.badCloses.length, 1, 'exactly one close event');
  assert.equal(r.badCloses[0].code, 4001);
  assert.equal(r.badCloses[0].terminal, true);
  assert.equal(r.providerCalls, 1, 'no reconnect after 4001');
  assert.equal(r.badState, 'closed');
  const all = JSON.stringify(r) + page.rtmLog.join('\n');
  assert.ok(!all.includes(tok.token.split('.')[2].slice(0, 20)), 'no token material in errors or console');
  assert.ok(!all.includes(tok.token.split('.')[1].slice(0, 40)), 'no token payload in errors or console');
  await page.context().close();
});

test('a key revoked by `rtm key revoke` closes the page\'s session with 4012, terminal: no reconnect', async () => {
  // A key of its own, revoked from another process while the page is connected.
  const k = rtmJson(['key', 'create', '--db', d.db, '--app', d.app]);
  const r0 = await d.api('POST', '/v1/tokens', { peerId: 'dave' }, { auth: k.secret });
  assert.equal(r0.status, 200, r0.text);
  const page = await newPage(browser, d.publicUrl);
  await page.evaluate(async ({ token }) => {
    const { RtmClient } = await import('/sdk/rtm.js');
    const T = window.T = { closes: [], calls: 0 };
    const c = new RtmClient({ url: location.origin, token: () => { T.calls++; return token; }, backoffInitialMs: 50 });
    c.on('close', (e) => T.closes.push({ code: e.code, reason: e.reason, terminal: e.terminal }));
    T.client = c;
    await c.connect();
  }, { token: r0.json.token });
  rtmJson(['key', 'revoke', '--db', d.db, k.id]);
  await waitInPage(page, () => window.T.closes.length > 0, null, { what: 'the 4012 close', timeout: 3000 });
  await new Promise((res) => setTimeout(res, 600)); // a reconnect would have started by now
  const r = await page.evaluate(() => ({ closes: window.T.closes, calls: window.T.calls, state: window.T.client.state }));
  assert.deepEqual(r.closes, [{ code: 4012, reason: 'key revoked', terminal: true }]);
  assert.equal(r.calls, 1, 'no reconnect after 4012');
  assert.equal(r.state, 'closed');
  await page.context().close();
});

test('the demo token endpoint is off unless the config turns it on', async () => {
  const r = await fetch(`${d.publicUrl}/demo/token?room=a&name=b`);
  assert.equal(r.status, 404);
  assert.ok(!(await r.text()).includes('token"'));
});

// The core protocol's expiry path. (With the extensions, on by default, the
// SDK refreshes in-band instead: tests/browser/refresh.test.mjs.)
test('4002 (extensions off): the token provider is asked again at once, the subscription comes back, no false presence', async () => {
  const page = await newPage(browser, d.publicUrl);
  let minted = 0;
  // The page's token provider calls back into the test, which mints through the real API:
  // the first token lives 2 s, the next one an hour.
  await page.exposeFunction('mintToken', async () => {
    minted++;
    return (await d.mint({ peerId: 'dave', channels: ['room-x'], expiresInSec: minted === 1 ? 2 : 3600 })).token;
  });
  const erin = await d.connect((await d.mint({ peerId: 'erin', channels: ['room-x'] })).token);
  assert.equal((await erin.request({ type: 'subscribe', channel: 'room-x' })).type, 'ack');

  await page.evaluate(async () => {
    const { RtmClient } = await import('/sdk/rtm.js');
    const ev = window.__ev = [];
    const c = window.__c = new RtmClient({ url: location.origin, token: () => window.mintToken(), extensions: false });
    c.on('close', (e) => ev.push({ t: 'close', code: e.code, retryInMs: e.retryInMs, at: performance.now() }));
    c.on('connected', (w) => ev.push({ t: 'connected', reconnect: w.reconnect, at: performance.now() }));
    c.on('presence', (p) => ev.push({ t: 'presence', joined: p.joined.map((j) => j.peerId), left: p.left.map((l) => l.peerId) }));
    c.on('message', (m) => ev.push({ t: 'message', from: m.from, data: m.data }));
    await c.connect();
    await c.subscribe('room-x');
  });
  await waitInPage(page, () => window.__ev.some((e) => e.t === 'connected' && e.reconnect), null,
    { what: 'reconnect after 4002', timeout: 10000 });
  // The resubscribe is acknowledged before erin's publish can reach dave.
  await waitInPage(page, () => window.__c.members('room-x').length === 1 && window.__c.state === 'open', null, { what: 'members back' });
  await new Promise((r) => setTimeout(r, 600)); // past the snapshot window
  erin.send({ type: 'publish', channel: 'room-x', data: { after: 'reconnect' } });
  await waitInPage(page, () => window.__ev.some((e) => e.t === 'message'), null, { what: 'message after the reconnect' });

  const ev = await page.evaluate(() => window.__ev);
  const close = ev.find((e) => e.t === 'close');
  const again = ev.find((e) => e.t === 'connected' && e.reconnect);
  assert.equal(close.code, 4002);
  assert.equal(close.retryInMs, 0, 'no backoff after 4002');
  assert.ok(again.at - close.at < 2000, `reconnected ${Math.round(again.at - close.at)} ms after 4002`);
  assert.equal(minted, 2, 'the provider was asked once per connect');
  assert.deepEqual(ev.filter((e) => e.t === 'presence'), [{ t: 'presence', joined: ['erin'], left: [] }],
    'erin joined once (the first snapshot); the reconnect was reconciled away');
  assert.deepEqual(ev.find((e) => e.t === 'message'), { t: 'message', from: 'erin', data: { after: 'reconnect' } });
  assert.deepEqual(await page.evaluate(() => window.__c.members('room-x').map((m) => m.peerId)), ['erin']);
  await page.evaluate(() => window.__c.close());
  await erin.close();
  await page.context().close();
});

test('liveness: pings keep a quiet connection open; silence beyond the timeout closes with 4000 and reconnects', async () => {
  const tok = await d.mint({ peerId: 'frank', channels: ['room-x'] });
  const page = await newPage(browser, d.publicUrl);
  const r = await page.evaluate(async ({ token }) => {
    const { RtmClient } = await import('/sdk/rtm.js');
    const run = async (opts, ms) => {
      const ev = [];
      const c = new RtmClient({ url: location.origin, token, ...opts });
      c.on('close', (e) => ev.push(e.code));
      c.on('connected', (w) => ev.push(w.reconnect ? 'reconnected' : 'connected'));
      await c.connect();
      await new Promise((res) => setTimeout(res, ms));
      c.close();
      return ev;
    };
    return {
      // A ping every 150 ms is answered by pong, so 600 ms of inactivity never happens.
      pinged: await run({ pingIntervalMs: 150, inactivityTimeoutMs: 600 }, 1500),
      // No ping in time and nothing else to read: the SDK gives up on the socket and reconnects.
      silent: await run({ pingIntervalMs: 60000, inactivityTimeoutMs: 400, backoffInitialMs: 50 }, 900),
    };
  }, { token: tok.token });
  assert.deepEqual(r.pinged, ['connected', 1000], 'no drop while pings are answered (1000: our own close)');
  assert.equal(r.silent[0], 'connected');
  assert.equal(r.silent[1], 4000, `closed for inactivity: ${r.silent}`);
  assert.equal(r.silent[2], 'reconnected', `then reconnected: ${r.silent}`);
  await page.context().close();
});
