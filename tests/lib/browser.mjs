// browser.mjs: real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core, no browser download) for the end-to-end tests.
//
//   await enterNetns(import.meta.url);   // first line of a browser test file
//   const browser = await launchBrowser();
//   const page = await newPage(browser, d.publicUrl);  // a blank page on rtmd's origin
//
// Network namespace: enterNetns() re-executes the test file inside
// `unshare -n` with only `lo` up, so rtmd, coturn and Chromium (all children
// of the test process) share a private loopback and no packet leaves the
// process tree. node --test sees the same output because the inner process
// inherits stdout and execArgv. Where unshare is not permitted (not root, a
// restricted container) the tests run on the host's loopback and say so on
// stderr; RTM_NO_NETNS=1 forces that.
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createHmac } from 'node:crypto';
import { chromium } from 'playwright-core';
import { startRtmd, freePort, sleep } from './rtmd.mjs';

export const CHROMIUM = process.env.RTM_CHROMIUM || '/usr/bin/chromium';

// Flags measured to work here (see ../shared/PLATFORM-NOTES.md): loopback
// candidates allowed, fake camera and microphone, nothing phoning home.
export const CHROMIUM_ARGS = [
  '--allow-loopback-in-peer-connection', '--no-sandbox', '--disable-gpu',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run', '--disable-quic',
  // Background tabs must keep decoding and running timers like the front one.
  '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows', '--autoplay-policy=no-user-gesture-required',
];

function netnsUsable() {
  if (process.env.RTM_NO_NETNS) return false;
  const r = spawnSync('unshare', ['-n', 'ip', 'link', 'set', 'lo', 'up'], { stdio: 'ignore' });
  return r.status === 0;
}

// Re-runs the calling test file inside a private network namespace and exits
// with its status; returns at once when already inside (or not possible).
export async function enterNetns(fileUrl) {
  if (process.env.RTM_IN_NETNS) return;
  if (!netnsUsable()) {
    process.stderr.write('# browser tests: no private network namespace (unshare -n unavailable or RTM_NO_NETNS set), running on the host loopback\n');
    process.env.RTM_IN_NETNS = 'host';
    return;
  }
  const file = fileURLToPath(fileUrl);
  const child = spawn('unshare', ['-n', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh',
    process.execPath, ...process.execArgv, file], {
    stdio: 'inherit', env: { ...process.env, RTM_IN_NETNS: '1' },
  });
  // The inner node replaces unshare and sh (exec), so this pid is the test process itself.
  const forward = (sig) => { try { child.kill(sig); } catch { /* gone */ } };
  process.on('SIGTERM', () => forward('SIGTERM'));
  process.on('SIGINT', () => forward('SIGINT'));
  const code = await new Promise((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
  process.exit(code);
}

// extraArgs: more Chromium flags (the TLS test adds --ignore-certificate-errors).
export async function launchBrowser(extraArgs = []) {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs], timeout: 30000 });
}

// A page on rtmd's origin, loaded from rtmd itself (the demo's index, idle
// until someone presses Join), so /sdk/rtm.js is same-origin and 127.0.0.1 is
// a secure context. (A document fulfilled by Playwright instead counts as
// "public" for Chromium's local-network-access checks, which then block the
// WebSocket to 127.0.0.1 with ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS.)
export async function newPage(browser, origin) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  attachLog(page);
  await page.goto(origin + '/');
  return page;
}

// Collects the page's console and errors (shown when a test fails, and
// checked for leaked tokens).
export function attachLog(page) {
  page.rtmLog = [];
  page.on('console', (m) => page.rtmLog.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => page.rtmLog.push(`[pageerror] ${e.message}`));
  return page;
}

// rtmd on fixed ports, so that a restart comes back where the browsers
// reconnect to. (startRtmd picks fresh ports on every start; the config's
// public/backend override them and the URLs are corrected after each start.)
export async function startRtmdFixed(opts = {}) {
  const pub = await freePort();
  const back = await freePort();
  const config = { ...(opts.config || {}), public: `127.0.0.1:${pub}`, backend: `127.0.0.1:${back}` };
  const d = await startRtmd({ ...opts, config });
  const fix = () => {
    d.publicPort = pub; d.backendPort = back;
    d.publicUrl = `http://127.0.0.1:${pub}`; d.wsUrl = `ws://127.0.0.1:${pub}`; d.backendUrl = `http://127.0.0.1:${back}`;
  };
  fix();
  const start = d.start;
  d.start = async () => { await start(); fix(); return d; };
  return d;
}

// TURN REST credential as coturn checks it (any expiry, e.g. in the past).
export function turnCredential(secret, expiry, user) {
  const username = `${expiry}:${user}`;
  return { username, credential: createHmac('sha1', secret).update(username).digest('base64') };
}

// The JWT's payload, decoded without verifying (the test minted it).
export function jwtPayload(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

// Polls fn() in the page until it returns a truthy value; bounded by time.
export async function waitInPage(page, fn, arg, { timeout = 20000, what = 'condition' } = {}) {
  try {
    return await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    const trace = await page.evaluate(() => (window.__rtmTrace || []).slice(-40)).catch(() => []);
    throw new Error(`timeout waiting for ${what}: ${e.message.split('\n')[0]}\n--- page log:\n` +
      `${(page.rtmLog || []).slice(-30).join('\n')}\n--- page trace:\n${trace.join('\n')}`);
  }
}

export { sleep };
