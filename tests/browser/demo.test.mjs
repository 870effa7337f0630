// demo.test.mjs: the group-call demo served by rtmd at /, driven like a
// person would: three Chromium pages join one room through GET /demo/token,
// see each other's names and videos, chat, and one leaves; a token whose TURN
// credential has expired is refused by coturn with 401 and the page says so;
// the broker restarts in the middle of a call and the call carries on without
// a duplicate tile.
import { enterNetns, launchBrowser, attachLog, waitInPage, startRtmdFixed, turnCredential, jwtPayload } from '../lib/browser.mjs';
import { rtmJson } from '../lib/rtmd.mjs';
import { startCoturn } from '../lib/coturn.mjs';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

await enterNetns(import.meta.url);

let coturn, d, browser, turnSecret;
const contexts = [];

before(async () => {
  turnSecret = 'turn-' + Math.random().toString(36).slice(2);
  coturn = await startCoturn({ secrets: [turnSecret] });
  // The development key, as `make run` writes it (var/dev-key.json).
  const dir = mkdtempSync(join(tmpdir(), 'rtm-demo-'));
  const key = rtmJson(['key', 'create', '--db', join(dir, 'rtm.db'), '--app', 'demo']);
  const keyFile = join(dir, 'dev-key.json');
  writeFileSync(keyFile, JSON.stringify(key), { mode: 0o600 });
  d = await startRtmdFixed({
    dir, key, app: 'demo', turnSecrets: [turnSecret], turnUrls: coturn.urls,
    config: { 'demo-token': true, 'demo-key-file': keyFile },
  });
  browser = await launchBrowser();
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await d?.cleanup();
  await coturn?.stop();
  // After the daemon stopped: an ASan/UBSan build (RTM_BUILD=build-asan-...) reports here.
  if (d) assert.doesNotMatch(d.log, /ERROR: (Address|Leak)Sanitizer|runtime error:/, `rtmd reported:\n${d.log.slice(-3000)}`);
  if (d) assert.doesNotMatch(d.log, /eyJ[\w-]+\.[\w-]+\.[\w-]+/, 'a token in rtmd\'s log');
});

async function openDemo(name, room, { tokenBody } = {}) {
  const ctx = await browser.newContext();
  contexts.push(ctx);
  const page = attachLog(await ctx.newPage());
  if (tokenBody) {
    await page.route(`${d.publicUrl}/demo/token?*`, (r) => r.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(tokenBody) }));
  }
  await page.goto(`${d.publicUrl}/?room=${room}`);
  await page.fill('#name', name);
  await page.fill('#room', room);
  await page.click('#joinBtn');
  await waitInPage(page, () => !document.getElementById('room-view').hidden, null, { what: `${name} in the room` });
  page.who = name;
  return page;
}

// In the page: the remote tiles' names (sorted) when every one plays video.
function remoteTilesPlaying(names) {
  const tiles = [...document.querySelectorAll('.tile:not(.self)')];
  const got = tiles.map((t) => t.querySelector('.name').textContent).sort();
  return JSON.stringify(got) === JSON.stringify(names) &&
    tiles.every((t) => { const v = t.querySelector('video'); return v.videoWidth > 0 && !v.paused; });
}

function memberNames() {
  return [...document.querySelectorAll('#members li:not(.me)')].map((li) => li.textContent).sort();
}

test('GET /demo/token: a room-scoped token with a fresh peerId, the name and TURN; bad input is 400', async () => {
  const get = async (q) => {
    const r = await fetch(`${d.publicUrl}/demo/token${q}`);
    return { status: r.status, cache: r.headers.get('cache-control'), body: await r.json().catch(() => null) };
  };
  const a = await get('?room=blue-42&name=Zo%C3%AB');
  const b = await get('?room=blue-42&name=Zo%C3%AB');
  assert.equal(a.status, 200);
  assert.equal(a.cache, 'no-store');
  assert.equal(a.body.channel, 'room-blue-42');
  assert.notEqual(a.body.peerId, b.body.peerId, 'a fresh peerId per call');
  const c = jwtPayload(a.body.token);
  assert.equal(c.sub, a.body.peerId);
  assert.deepEqual(c.channels, ['room-blue-42']);
  assert.deepEqual(c.peerMetadata, { name: 'Zoë' });
  assert.equal(c.exp, a.body.expiresAt);
  const turn = c.metadata.iceServers.find((s) => s.username);
  assert.ok(turn && turn.credential && [].concat(turn.urls).some((u) => u.includes(`:${coturn.port}`)), 'TURN credential minted for the test coturn');
  for (const q of ['?room=a*b&name=x', '?room=a%2Fb&name=x', '?room=&name=x', '?name=x', '?room=ok', '?room=ok&name=',
    `?room=${'r'.repeat(65)}&name=x`, `?room=ok&name=${'n'.repeat(65)}`, '?room=ok&name=a%01b']) {
    const r = await get(q);
    assert.equal(r.status, 400, `${q} -> ${r.status}`);
    assert.equal(r.body.error, 'invalid_request');
  }
});

test('three pages in the demo see each other, chat, and see one leave', async () => {
  const names = ['Ada', 'Grace', 'Linus'];
  const pages = [];
  for (const n of names) pages.push(await openDemo(n, 'trio'));
  for (const p of pages) {
    const others = names.filter((n) => n !== p.who).sort();
    await waitInPage(p, remoteTilesPlaying, others, { what: `${p.who} shows ${others} with playing video`, timeout: 30000 });
    assert.deepEqual(await p.evaluate(memberNames), others, `${p.who}: member list from presence`);
    assert.equal(await p.locator('.tile.self .name').textContent(), `${p.who} (you)`);
  }
  const [ada, grace, linus] = pages;
  if (process.env.RTM_SCREENSHOT) await ada.screenshot({ path: process.env.RTM_SCREENSHOT });

  // A chat line over publish reaches the other two, with the sender's name.
  await ada.fill('#chatInput', 'hello from Ada');
  await ada.click('#chatForm button');
  for (const p of [grace, linus]) {
    await waitInPage(p, () => [...document.querySelectorAll('#chatLog li')].some((li) => li.textContent === 'Adahello from Ada'),
      null, { what: `${p.who} receives Ada's chat line` });
  }

  // Mute: the local track stops, the others see the badge.
  await grace.click('#micBtn');
  assert.equal(await grace.evaluate(() => window.rtmDemo.stream.getAudioTracks().every((t) => !t.enabled)), true);
  await waitInPage(ada, () => [...document.querySelectorAll('.tile')].some((t) => t.querySelector('.name').textContent === 'Grace' &&
    t.querySelector('.badges').textContent.includes('muted')), null, { what: 'Ada sees Grace muted' });

  // Linus leaves: the other two see his tile and his name go.
  await linus.click('#leaveBtn');
  await waitInPage(linus, () => !document.getElementById('lobby').hidden, null, { what: 'Linus back in the lobby' });
  for (const p of [ada, grace]) {
    const others = ['Ada', 'Grace'].filter((n) => n !== p.who);
    await waitInPage(p, remoteTilesPlaying, others, { what: `${p.who} no longer shows Linus` });
    await waitInPage(p, (o) => JSON.stringify([...document.querySelectorAll('#members li:not(.me)')].map((li) => li.textContent).sort()) === JSON.stringify(o),
      others, { what: `${p.who}'s member list without Linus` });
  }
  for (const p of pages) await p.context().close();
});

test('a token whose TURN credential expired: coturn answers 401 and the page reports it', async () => {
  // A valid page first, as the control: the same check passes with fresh credentials.
  const good = await openDemo('Fresh', 'turn-check');
  await waitInPage(good, () => window.rtmDemo.relay === 'ok', null, { what: 'relay check passes with a fresh credential' });
  assert.match(await good.locator('#relay').textContent(), /allocation works/);

  const expired = turnCredential(turnSecret, Math.floor(Date.now() / 1000) - 3600, 'stale');
  const iceServers = [{ urls: coturn.urls.filter((u) => u.startsWith('turn:')), ...expired }];
  const minted = await d.mint({ peerId: 'stale', channels: ['room-turn-check'], peerMetadata: { name: 'Stale' }, metadata: { iceServers } });
  const page = await openDemo('Stale', 'turn-check', {
    tokenBody: { token: minted.token, expiresAt: minted.expiresAt, peerId: 'stale', room: 'turn-check', channel: 'room-turn-check' },
  });
  await waitInPage(page, () => window.rtmDemo.relay === 'unauthorized', null, { what: 'relay check refused' });
  const errs = await page.evaluate(() => window.rtmDemo.iceErrors);
  assert.ok(errs.some((e) => e.errorCode === 401), `icecandidateerror 401 seen: ${JSON.stringify(errs)}`);
  assert.ok(coturn.unauthorized(expired.username), 'coturn itself logged the 401 for the expired username');
  assert.match(await page.locator('#relay').textContent(), /401/);
  assert.match(await page.locator('#banner').textContent(), /401 Unauthorized/);
  assert.equal(await page.locator('#banner').isVisible(), true);
  await good.context().close();
  await page.context().close();
});

test('broker restart during a call: signaling reconnects, media continues, no duplicate tile', async () => {
  const a = await openDemo('Ada', 'restart');
  const b = await openDemo('Grace', 'restart');
  await waitInPage(a, remoteTilesPlaying, ['Grace'], { what: 'Ada sees Grace' });
  await waitInPage(b, remoteTilesPlaying, ['Ada'], { what: 'Grace sees Ada' });
  const peerIds = {};
  for (const p of [a, b]) {
    peerIds[p.who] = await p.evaluate(() => window.rtmDemo.client.peerId);
    await p.evaluate(() => { window.rtmDemo.call.list()[0].pc.__before = true; });
  }
  const ufrag = () => (window.rtmDemo.call.list()[0].pc.localDescription.sdp.match(/a=ice-ufrag:(\S+)/) || [])[1];
  const ufragBefore = { Ada: await a.evaluate(ufrag), Grace: await b.evaluate(ufrag) };

  // Down for 4.5 s, longer than the going_away hint (retryAfterMs 3000 by
  // default), so the pages' first reconnect attempt meets a closed port.
  const t0 = Date.now();
  await d.stop();
  await new Promise((r) => setTimeout(r, 4500));
  await d.start();
  for (const p of [a, b]) {
    await waitInPage(p, () => window.rtmDemo.events.some((e) => e.type === 'connected' && e.reconnect), null,
      { what: `${p.who} reconnects`, timeout: 30000 });
    // The page said the connection dropped, then that it came back.
    const ev = await p.evaluate(() => window.rtmDemo.events.map((e) => `${e.type}${e.terminal ? '!' : ''}`));
    assert.ok(ev.indexOf('close') >= 0 && ev.indexOf('close') < ev.lastIndexOf('connected'), `${p.who} events: ${ev}`);
    assert.ok(!ev.includes('close!'), 'no terminal close');
    assert.equal(await p.evaluate(() => window.rtmDemo.client.peerId), peerIds[p.who], 'same peerId after reconnect');
    assert.ok(ev.filter((e) => e === 'close').length >= 2, `${p.who}: at least one attempt met the closed port: ${ev}`);
    // The going_away hint sets the first wait; failed attempts then back off from 1 s, doubling, within ±20 %.
    const waits = await p.evaluate(() => window.rtmDemo.events.filter((e) => e.type === 'close').map((e) => e.retryInMs));
    // The drain's close frame reaches Chromium: 1001, not a 1006 from a lost frame (event-loop regression).
    const codes = await p.evaluate(() => window.rtmDemo.events.filter((e) => e.type === 'close').map((e) => e.code));
    assert.equal(codes[0], 1001, `${p.who}: the broker's going-away code is what the page read: ${codes}`);
    assert.ok(waits[0] >= 3000 && waits[0] <= 3600, `first wait follows retryAfterMs 3000: ${waits}`);
    waits.slice(1).forEach((w, k) => {
      const base = 500 * 2 ** (k + 1);
      assert.ok(w >= base * 0.8 - 1 && w <= base * 1.2 + 1, `wait ${k + 1} is ${base} ms ± 20 %: ${waits}`);
    });
    const leaked = p.rtmLog.filter((l) => /token=|eyJ/.test(l));
    assert.deepEqual(leaked, [], `${p.who}: no token in the console while the broker was down`);
  }
  const reconnectMs = Date.now() - t0;

  // Media: one connected peer connection per page, frames still being decoded.
  for (const p of [a, b]) {
    const other = p === a ? 'Grace' : 'Ada';
    await waitInPage(p, () => {
      const l = window.rtmDemo.call.list();
      return l.length === 1 && l[0].connectionState === 'connected';
    }, null, { what: `${p.who}'s call connected after the restart`, timeout: 30000 });
    const frames = () => window.rtmDemo.call.list()[0].pc.getStats().then((s) => {
      let n = 0; s.forEach((x) => { if (x.type === 'inbound-rtp' && x.kind === 'video') n += x.framesDecoded || 0; }); return n;
    });
    const f1 = await p.evaluate(frames);
    await new Promise((r) => setTimeout(r, 1500));
    const f2 = await p.evaluate(frames);
    assert.ok(f2 > f1, `${p.who}: video frames keep arriving after the restart (${f1} -> ${f2})`);
    await waitInPage(p, remoteTilesPlaying, [other], { what: `${p.who} still shows exactly ${other}` });
    assert.equal(await p.locator('.tile').count(), 2, `${p.who}: self + one remote tile, no duplicate`);
    assert.deepEqual(await p.evaluate(memberNames), [other]);
    const survived = await p.evaluate(() => window.rtmDemo.call.list()[0].pc.__before === true);
    // ICE was restarted (or the connection rebuilt): new local ICE credentials either way,
    // and the connection uses the iceServers of the latest welcome.
    await waitInPage(p, (old) => {
      const pc = window.rtmDemo.call.list()[0].pc;
      return pc.signalingState === 'stable' && (pc.localDescription.sdp.match(/a=ice-ufrag:(\S+)/) || [])[1] !== old;
    }, ufragBefore[p.who], { what: `${p.who}: new ICE credentials after the reconnect` });
    assert.deepEqual(await p.evaluate(() => JSON.stringify(window.rtmDemo.call.list()[0].pc.getConfiguration().iceServers.map((s) => [[].concat(s.urls), s.username || null]))),
      await p.evaluate(() => JSON.stringify(window.rtmDemo.client.iceServers.map((s) => [[].concat(s.urls), s.username || null]))));
    process.stderr.write(`# ${p.who}: reconnected in ${reconnectMs} ms; peer connection ${survived ? 'survived (ICE restarted in place)' : 're-established'}\n`);
  }
  if (process.env.RTM_TEST_VERBOSE) for (const p of [a, b]) process.stderr.write(p.rtmLog.join('\n') + '\n');
  // Exactly one side (the impolite one, larger peerId) restarted ICE, so the restart offers never collided.
  const restarts = [];
  for (const p of [a, b]) restarts.push(await p.evaluate(() => window.rtmDemo.events.filter((e) => e.type === 'icerestart').length));
  const impolite = peerIds.Ada > peerIds.Grace ? 0 : 1;
  assert.ok(restarts[impolite] >= 1 && restarts[1 - impolite] === 0, `ICE restarts per page: ${restarts}`);
  for (const p of [a, b]) await p.context().close();
});
