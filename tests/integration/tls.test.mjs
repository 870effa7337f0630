// TLS on the public listener (tls-cert, tls-key): https:// and wss:// with a
// certificate from a throwaway CA (openssl CLI), sdk-c's `rtm pub` over wss://
// trusting that CA, no plaintext on the TLS port, SIGHUP reloading a new pair
// while sessions stay up, a bad pair refused on reload (the old one stays), and
// backend-tls. The browser SDK over wss:// is tests/browser/tls.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { startRtmd, openClient, sleep, RTM } from '../lib/rtmd.mjs';
import { makeCa, makeLeaf } from '../lib/tls.mjs';

let dir, ca, one, two, d;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rtm-tls-'));
  ca = makeCa(dir);
  one = makeLeaf(dir, 'one', ca);
  two = makeLeaf(dir, 'two', ca);
  // rtmd reads these two paths; the test swaps their contents
  copyFileSync(one.cert, join(dir, 'live.pem'));
  copyFileSync(one.key, join(dir, 'live.key'));
  d = await startRtmd({ config: { 'tls-cert': join(dir, 'live.pem'), 'tls-key': join(dir, 'live.key') } });
});
after(async () => {
  await d?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const caPem = () => readFileSync(ca.cert);

// The serial of the certificate a fresh TLS handshake gets.
function servedSerial(port) {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: caPem(), servername: 'localhost' }, () => {
      const serial = s.getPeerCertificate().serialNumber.toUpperCase();
      s.end();
      resolve(serial);
    });
    s.on('error', reject);
  });
}

function httpsGet(url) {
  return new Promise((resolve, reject) => {
    get(url, { ca: caPem() }, (res) => {
      let body = '';
      res.on('data', (b) => { body += b; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', reject);
  });
}

function run(cmd, args, env) {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: 20000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }));
  });
}

test('https:// serves the web files and wss:// a session, verified against the CA', async () => {
  assert.match(d.log, /public listener ready on https:\/\//);
  const r = await httpsGet(`https://127.0.0.1:${d.publicPort}/sdk/rtm.js`);
  assert.equal(r.status, 200);
  assert.match(r.body, /RtmClient/);
  const { token } = await d.mint({ peerId: 'tls-a' });
  const c = await openClient(`wss://127.0.0.1:${d.publicPort}/v1?token=${encodeURIComponent(token)}`, { tls: { ca: caPem() } });
  const w = await c.next('welcome');
  assert.equal(w.peerId, 'tls-a');
  await c.close();
  assert.equal(await servedSerial(d.publicPort), one.serial);
});

test('no plaintext on the TLS port', async () => {
  await assert.rejects(fetch(`http://127.0.0.1:${d.publicPort}/sdk/rtm.js`, { signal: AbortSignal.timeout(5000) }));
});

test('sdk-c (rtm pub) publishes over wss:// trusting the test CA', async () => {
  const { token: subTok } = await d.mint({ peerId: 'tls-sub' });
  const sub = await openClient(`wss://127.0.0.1:${d.publicPort}/v1?token=${encodeURIComponent(subTok)}`, { tls: { ca: caPem() } });
  await sub.next('welcome');
  assert.equal((await sub.request({ type: 'subscribe', channel: 'tls-room' })).type, 'ack');
  const { token } = await d.mint({ peerId: 'tls-pub' });
  // OpenSSL's default trust store, as lws's client uses it, taken from SSL_CERT_FILE
  const r = await run(RTM, ['pub', 'tls-room', '{"over":"wss"}', '--url', `wss://127.0.0.1:${d.publicPort}`],
    { RTM_TOKEN: token, SSL_CERT_FILE: ca.cert });
  assert.equal(r.code, 0, r.stderr);
  const m = await sub.next('message');
  assert.deepEqual(m.data, { over: 'wss' });
  assert.equal(m.from, 'tls-pub');
  // and without trusting the CA it cannot connect (exit 3)
  const bad = await run(RTM, ['pub', 'tls-room', '1', '--url', `wss://127.0.0.1:${d.publicPort}`, '--timeout', '5'],
    { RTM_TOKEN: token, SSL_CERT_FILE: '/nonexistent' });
  assert.equal(bad.code, 3, bad.stderr);
  await sub.close();
});

test('SIGHUP reloads the certificate; open sessions stay; a bad pair leaves the current one', async () => {
  const { token } = await d.mint({ peerId: 'tls-long' });
  const c = await openClient(`wss://127.0.0.1:${d.publicPort}/v1?token=${encodeURIComponent(token)}`, { tls: { ca: caPem() } });
  await c.next('welcome');
  copyFileSync(two.cert, join(dir, 'live.pem'));
  copyFileSync(two.key, join(dir, 'live.key'));
  process.kill(d.pid, 'SIGHUP');
  let served;
  for (let i = 0; i < 200; i++) { // bounded: about 10 s
    served = await servedSerial(d.publicPort);
    if (served === two.serial) break;
    await sleep(50);
  }
  assert.equal(served, two.serial, 'new handshakes get the new certificate');
  // the log line comes through rtmd's stderr pipe, which may lag the handshake
  for (let i = 0; i < 100 && !/TLS certificate reloaded/.test(d.log); i++) await sleep(50);
  assert.match(d.log, /TLS certificate reloaded from .*live\.pem: subject="\/CN=two"/);
  assert.equal((await c.request({ type: 'ping' })).type, 'ack', 'the open session still works');

  // a key that is not the certificate's: refused, the current pair stays
  writeFileSync(join(dir, 'live.key'), readFileSync(one.key));
  process.kill(d.pid, 'SIGHUP');
  for (let i = 0; i < 200 && !/TLS reload: cannot use the key/.test(d.log); i++) await sleep(50);
  assert.match(d.log, /TLS reload: cannot use the key .*live\.key.*the current certificate stays/);
  assert.equal(await servedSerial(d.publicPort), two.serial);
  const r = await httpsGet(`https://127.0.0.1:${d.publicPort}/sdk/rtm.js`);
  assert.equal(r.status, 200);
  assert.ok(!d.log.includes('BEGIN'), 'no key or certificate material in the log');
  await c.close();
  assert.equal(d.proc.exitCode, null, 'rtmd is still running');
});

test('backend-tls serves the backend API over https; the config refuses a cert without a key', async () => {
  const b = await startRtmd({ config: { 'tls-cert': one.cert, 'tls-key': one.key, 'backend-tls': true } });
  try {
    assert.match(b.log, /backend listener ready on https:\/\//);
    const h = await httpsGet(`https://127.0.0.1:${b.backendPort}/healthz`);
    assert.equal(h.status, 200);
    assert.equal(JSON.parse(h.body).status, 'ok');
  } finally {
    await b.cleanup();
  }
  const r = await run(join(RTM, '..', 'rtmd'), ['--tls-cert', one.cert], { RTM_TURN_SECRETS: 's' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /tls-cert and tls-key go together/);
});

test('SIGHUP without TLS: rtmd says so and keeps running (never the default action)', async () => {
  const p = await startRtmd();
  try {
    process.kill(p.pid, 'SIGHUP');
    for (let i = 0; i < 200 && !/SIGHUP: no TLS certificate to reload/.test(p.log); i++) await sleep(50);
    assert.match(p.log, /SIGHUP: no TLS certificate to reload/);
    assert.equal(p.proc.exitCode, null);
    assert.equal((await p.api('GET', '/healthz', undefined, { auth: null })).status, 200);
  } finally {
    await p.cleanup();
  }
});
