// The browser SDK over TLS: rtmd serves the page over https:// with a
// certificate from a throwaway CA (tests/lib/tls.mjs) and Chromium, told to
// accept it (--ignore-certificate-errors), loads /sdk/rtm.js from there and
// connects with wss:// (the SDK derives it from the https origin), subscribes,
// publishes and receives its message; a node client on wss:// sees it too.
import { enterNetns, launchBrowser, attachLog, waitInPage } from '../lib/browser.mjs';
import { startRtmd, openClient } from '../lib/rtmd.mjs';
import { makeCa, makeLeaf } from '../lib/tls.mjs';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

await enterNetns(import.meta.url);

let dir, ca, d, browser;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rtm-tls-browser-'));
  ca = makeCa(dir);
  const leaf = makeLeaf(dir, 'rtmd', ca);
  d = await startRtmd({ config: { 'tls-cert': leaf.cert, 'tls-key': leaf.key } });
  browser = await launchBrowser(['--ignore-certificate-errors']);
});

after(async () => {
  await browser?.close();
  await d?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (d) assert.doesNotMatch(d.log, /ERROR: (Address|Leak)Sanitizer|runtime error:/, `rtmd reported:\n${d.log.slice(-3000)}`);
  if (d) assert.doesNotMatch(d.log, /eyJ[\w-]+\.[\w-]+\.[\w-]+/, 'a token in rtmd\'s log');
});

test('the browser SDK connects over wss:// and a message goes both ways', async () => {
  const origin = `https://127.0.0.1:${d.publicPort}`;
  const { token } = await d.mint({ peerId: 'browser-tls', channels: ['secure-room'] });
  const { token: nodeTok } = await d.mint({ peerId: 'node-tls', channels: ['secure-room'] });
  const watcher = await openClient(`wss://127.0.0.1:${d.publicPort}/v1?token=${encodeURIComponent(nodeTok)}`,
    { tls: { ca: readFileSync(ca.cert) } });
  await watcher.next('welcome');
  assert.equal((await watcher.request({ type: 'subscribe', channel: 'secure-room' })).type, 'ack');

  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = attachLog(await ctx.newPage());
  await page.goto(origin + '/');
  assert.equal(await page.evaluate(() => location.protocol), 'https:');
  await page.evaluate(async (tok) => {
    const { RtmClient } = await import('/sdk/rtm.js');
    const rtm = new RtmClient({ url: location.origin, token: () => tok });
    window.tlsTest = { rtm, got: [], url: rtm.url };
    rtm.on('message', (m) => window.tlsTest.got.push(m));
    await rtm.connect();
    await rtm.subscribe('secure-room');
    await rtm.publish('secure-room', { from: 'the browser' });
  }, token);
  assert.match(await page.evaluate(() => window.tlsTest.url), /^wss:\/\/127\.0\.0\.1:\d+/);
  const m = await watcher.next('message');
  assert.deepEqual(m.data, { from: 'the browser' });
  assert.equal(m.from, 'browser-tls');
  watcher.send({ type: 'publish', channel: 'secure-room', data: { from: 'node' }, requestId: 'p1' });
  await waitInPage(page, () => window.tlsTest.got.some((x) => x.data && x.data.from === 'node'), undefined,
    { what: 'the node client\'s message in the page' });
  await page.evaluate(() => window.tlsTest.rtm.close());
  await ctx.close();
  await watcher.close();
});
