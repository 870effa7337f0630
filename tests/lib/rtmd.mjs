// rtmd.mjs: start a real rtmd on ephemeral loopback ports with its own
// temporary database, and talk to it over real sockets.
//
//   const d = await startRtmd({ config: { 'max-message-size': 1024 } });
//   const { token } = await d.mint({ peerId: 'alice' });
//   const c = await d.connect(token);          // waits for welcome
//   await d.stop();
//
// RTM_BUILD picks the build directory (default build/); RTM_VALGRIND=1 (or
// the option valgrind: true, for a test whose defect only valgrind can see)
// runs the daemon under valgrind and fails stop() on any error it reports.
// RTM_TEST_DB=postgres (or the option postgres: true) gives each daemon a
// fresh database on a Postgres server this process starts (postgres.mjs)
// instead of a sqlite file: d.db is then its URL (no password in it; the
// password reaches rtmd and the rtm tool through RTM_DB_PASSWORD_FILE), and
// d.sqlJson(sql) reads rows from whichever store it is.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { checkResponse } from './openapi.mjs';
import { startPostgres } from './postgres.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUILD = join(ROOT, process.env.RTM_BUILD || 'build');
export const RTMD = join(BUILD, 'rtmd');
export const RTM = join(BUILD, 'rtm');

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// Runs the rtm tool and parses its JSON output.
export function rtmJson(args, opts = {}) {
  const out = execFileSync(RTM, args, { encoding: 'utf8', ...opts });
  return JSON.parse(out);
}

export const ON_POSTGRES = process.env.RTM_TEST_DB === 'postgres';

// The store of a daemon directory: the sqlite file in dir, or on Postgres
// one database per dir (created on first use), so daemons started with the
// same dir share a store on either backend, as processes on one file do.
const pgDbOfDir = new Map();
export function freshDb(dir, { postgres = ON_POSTGRES } = {}) {
  if (!postgres) return join(dir, 'rtm.db');
  const pg = startPostgres();
  // the rtm tool and rtmd inherit it; only a file name, never the password
  process.env.RTM_DB_PASSWORD_FILE = pg.passwordFile;
  if (!pgDbOfDir.has(dir)) pgDbOfDir.set(dir, pg.createDb());
  return pgDbOfDir.get(dir);
}

export async function startRtmd(opts = {}) {
  const dir = opts.dir || mkdtempSync(join(tmpdir(), 'rtmd-test-'));
  const db = opts.db || freshDb(dir, { postgres: opts.postgres ?? ON_POSTGRES });
  const app = opts.app || 'test';
  const turnSecret = opts.turnSecret || 'turn-secret-' + Math.random().toString(36).slice(2);
  const keyArgs = ['key', 'create', '--db', db, '--app', app, ...(opts.keyArgs || [])];
  const key = opts.key || rtmJson(keyArgs);
  const d = {
    dir, db, app, key, turnSecret,
    turnSecrets: opts.turnSecrets || [turnSecret],
    turnUrls: opts.turnUrls || ['stun:127.0.0.1:3478', 'turn:127.0.0.1:3478?transport=udp', 'turn:127.0.0.1:3478?transport=tcp'],
    config: opts.config || {},
    valgrind: !!(opts.valgrind || process.env.RTM_VALGRIND),
    proc: null, log: '',
  };
  d.start = async () => {
    d.publicPort = await freePort();
    d.backendPort = await freePort();
    d.publicUrl = `http://127.0.0.1:${d.publicPort}`;
    d.wsUrl = `ws://127.0.0.1:${d.publicPort}`;
    d.backendUrl = `http://127.0.0.1:${d.backendPort}`;
    const cfg = {
      public: `127.0.0.1:${d.publicPort}`,
      backend: `127.0.0.1:${d.backendPort}`,
      db,
      'web-root': join(ROOT, 'web'),
      // Every test connects from 127.0.0.1: the per-IP accept limit would make
      // unrelated suites flaky. Tests of the limit set it explicitly.
      'rate-connects-per-ip-per-minute': 0,
      // Likewise the public handshake budget per address (bursts of connects
      // from 127.0.0.1); listener_budget.test.mjs sets its own.
      'max-handshakes-per-ip': 1000,
      ...d.config,
    };
    const cfgFile = join(dir, 'rtm.json');
    writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
    const env = { ...process.env, RTM_TURN_SECRETS: d.turnSecrets.join(','), RTM_TURN_URLS: d.turnUrls.join(',') };
    let cmd = RTMD, args = ['--config', cfgFile, ...(opts.args || [])];
    if (d.valgrind) {
      args = ['-q', '--error-exitcode=99', '--leak-check=full', '--show-leak-kinds=definite,indirect',
        '--errors-for-leak-kinds=definite,indirect', cmd, ...args];
      cmd = 'valgrind';
    }
    d.log = '';
    const proc = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    d.proc = proc;
    d.pid = proc.pid;
    d.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    const onData = (b) => { d.log += b.toString(); if (process.env.RTM_TEST_VERBOSE) process.stderr.write(b); };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    // a test that must act before the daemon is ready (its ports are known now)
    if (opts.onSpawn) opts.onSpawn(d);
    const want = (opts.args || []).includes('broker') ? 1 : (opts.args || []).includes('mint') ? 1 : 2;
    const deadline = Date.now() + (d.valgrind ? 60000 : 10000);
    while ((d.log.match(/listener ready/g) || []).length < want) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error('rtmd exited at start:\n' + d.log);
      if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error('rtmd did not become ready:\n' + d.log); }
      await sleep(20);
    }
    return d;
  };
  // Stops with SIGTERM (or the given signal), waits, and reports valgrind errors.
  d.stop = async (signal = 'SIGTERM') => {
    if (!d.proc || d.proc.exitCode !== null || d.proc.signalCode !== null) return d.exited ? d.exited : null;
    d.proc.kill(signal);
    const t = setTimeout(() => d.proc.kill('SIGKILL'), 15000);
    const r = await d.exited;
    clearTimeout(t);
    if (d.valgrind && r.code === 99) throw new Error('valgrind reported errors:\n' + d.log);
    return r;
  };
  d.cleanup = async () => { await d.stop(); if (!opts.keepDir) rmSync(dir, { recursive: true, force: true }); };
  d.restart = async () => { await d.stop(); return d.start(); };
  // Rows of a query on the daemon's store, as JSON objects.
  d.sqlJson = (sql) => (db.startsWith('postgresql://')
    ? startPostgres().psqlJson(db, sql)
    : JSON.parse(execFileSync('sqlite3', ['-json', db, sql], { encoding: 'utf8' }) || '[]'));

  // Backend API helpers.
  d.api = async (method, path, body, { auth = d.key.secret, headers = {} } = {}) => {
    const h = { ...headers };
    if (auth) h.authorization = `Bearer ${auth}`;
    if (body !== undefined && typeof body !== 'string') { h['content-type'] = 'application/json'; body = JSON.stringify(body); }
    const res = await fetch(d.backendUrl + path, { method, headers: h, body });
    const text = await res.text();
    // Every reply must be the one schema/openapi.yaml documents (throws otherwise).
    checkResponse(method, path, res.status, res.headers.get('content-type'), text);
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, headers: res.headers, text, json };
  };
  // GET /metrics as { 'name{labels}': value }.
  d.metrics = async () => {
    const m = {};
    for (const l of (await d.api('GET', '/metrics')).text.split('\n')) {
      if (!l || l.startsWith('#')) continue;
      const i = l.lastIndexOf(' ');
      m[l.slice(0, i)] = Number(l.slice(i + 1));
    }
    return m;
  };
  d.mint = async (claims) => {
    const r = await d.api('POST', '/v1/tokens', claims);
    if (r.status !== 200) throw new Error(`mint failed ${r.status}: ${r.text}`);
    return r.json;
  };
  // Opens a WebSocket; resolves once open (not waiting for welcome).
  d.open = (query, { protocols, headers } = {}) => openClient(`${d.wsUrl}/v1${query}`, { protocols, headers });
  // Connects with a token and waits for the welcome.
  d.connect = async (token, extra = '') => {
    const c = await d.open(`?token=${encodeURIComponent(token)}${extra}`);
    c.welcome = await c.next('welcome');
    return c;
  };
  await d.start();
  return d;
}

// A WebSocket client that queues every frame so tests can await them in order.
// tls: extra TLS options for wss:// (ca, servername...).
export function openClient(url, { protocols, headers, tls } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers, maxPayload: 1 << 24, ...(tls || {}) });
    const c = { ws, frames: [], all: [], waiters: [], closeInfo: null };
    c.closed = new Promise((res) => ws.on('close', (code, reason) => {
      c.closeInfo = { code, reason: reason.toString() };
      res(c.closeInfo);
      for (const w of c.waiters.splice(0)) w.reject(new Error(`closed ${code} ${reason}`));
    }));
    ws.on('message', (data, isBinary) => {
      let f;
      try { f = JSON.parse(data.toString()); } catch { f = { type: '__unparsable__', raw: data.toString(), isBinary }; }
      c.all.push(f);
      for (let i = 0; i < c.waiters.length; i++) {
        if (c.waiters[i].match(f)) { const w = c.waiters.splice(i, 1)[0]; w.resolve(f); return; }
      }
      c.frames.push(f);
    });
    // Resolves with the next frame matching type (string) or predicate.
    c.next = (want, timeoutMs = 3000) => {
      const match = typeof want === 'function' ? want : want ? (f) => f.type === want : () => true;
      const i = c.frames.findIndex(match);
      if (i >= 0) return Promise.resolve(c.frames.splice(i, 1)[0]);
      if (c.closeInfo) return Promise.reject(new Error(`closed ${c.closeInfo.code} ${c.closeInfo.reason}`));
      return new Promise((res, rej) => {
        const w = { match, resolve: (f) => { clearTimeout(w.t); res(f); }, reject: (e) => { clearTimeout(w.t); rej(e); } };
        w.t = setTimeout(() => { c.waiters.splice(c.waiters.indexOf(w), 1); rej(new Error(`timeout waiting for ${want}`)); }, timeoutMs);
        c.waiters.push(w);
      });
    };
    // Resolves true if no matching frame arrives within ms.
    c.none = async (want, ms = 300) => {
      try { await c.next(want, ms); return false; } catch (e) { return /timeout/.test(e.message); }
    };
    c.send = (obj) => ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
    // Sends a request with a fresh requestId and resolves with its ack or error.
    let seq = 0;
    c.request = (obj, timeoutMs = 3000) => {
      const requestId = `r${++seq}`;
      c.send({ ...obj, requestId });
      return c.next((f) => (f.type === 'ack' || f.type === 'error') && f.requestId === requestId, timeoutMs);
    };
    c.close = (code = 1000, reason) => { try { ws.close(code, reason); } catch { /* already */ } return c.closed; };
    c.terminate = () => { ws.terminate(); return c.closed; };
    ws.once('open', () => resolve(c));
    ws.once('error', (e) => { if (ws.readyState !== WebSocket.OPEN) reject(e); });
    ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

export function readText(p) { return readFileSync(p, 'utf8'); }
