// coturn.mjs: a real coturn (Debian's turnserver) on loopback for tests, and
// turnutils_uclient against it.
//
//   const t = await startCoturn({ secrets: ['new', 'old'] });
//   const r = await uclient({ port: t.port, username, credential });
//   // r.code === 0 when the allocation worked and every message echoed back
//   t.allocated(username)      // coturn logged an ALLOCATE success for username
//   t.unauthorized(username)   // coturn logged "error 401" for username
//   await t.stop();
//
// Design: each coturn gets its own temp dir (config, userdb, pidfile), free
// ports, and `use-auth-secret` with one `static-auth-secret` line per secret,
// so any listed secret validates (how rotation works). Secrets go in a 0600
// config file, never on argv. Readiness is a real STUN Binding round trip,
// not a sleep. stop() signals only the PID this module spawned.
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const TURNSERVER = process.env.RTM_TURNSERVER || 'turnserver';
const UCLIENT = 'turnutils_uclient';
const PEER = 'turnutils_peer';

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

function tcpFree(port) {
  return new Promise((resolve) => {
    const s = createServer();
    s.unref();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function udpFree(port) {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', () => { s.close(); resolve(false); });
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

// A port free for both UDP and TCP on 127.0.0.1 (TURN listens on both).
// Random picks in the ephemeral range, at most 50 tries.
export async function freeUdpTcpPort() {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 30000);
    if (await udpFree(port) && await tcpFree(port)) return port;
  }
  throw new Error('no free UDP+TCP port after 50 tries');
}

async function freeUdpPort() {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 30000);
    if (await udpFree(port)) return port;
  }
  throw new Error('no free UDP port after 50 tries');
}

// One STUN Binding request (RFC 5389); resolves true when a Binding success
// response with our transaction id comes back within timeoutMs.
function stunPing(port, timeoutMs = 200) {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const tid = randomBytes(12);
    const req = Buffer.alloc(20);
    req.writeUInt16BE(0x0001, 0);
    req.writeUInt16BE(0, 2);
    req.writeUInt32BE(0x2112a442, 4);
    tid.copy(req, 8);
    let done = false;
    const finish = (ok) => { if (done) return; done = true; clearTimeout(t); s.close(); resolve(ok); };
    const t = setTimeout(() => finish(false), timeoutMs);
    s.on('error', () => finish(false));
    s.on('message', (m) => finish(m.length >= 20 && m.readUInt16BE(0) === 0x0101 && m.subarray(8, 20).equals(tid)));
    s.send(req, port, '127.0.0.1', (err) => { if (err) finish(false); });
  });
}

// Starts turnserver. opts: secrets (required, non-empty strings), realm
// (default rtm.test), startTimeoutMs (default 10000).
// Returns { port, urls, dir, pid, log(), allocated(user), unauthorized(user), stop() }.
export async function startCoturn(opts = {}) {
  const secrets = opts.secrets || [];
  if (!secrets.length || secrets.some((s) => typeof s !== 'string' || !s || /[\r\n]/.test(s)))
    throw new Error('startCoturn: secrets must be a non-empty list of one-line strings');
  const realm = opts.realm || 'rtm.test';
  const dir = mkdtempSync(join(tmpdir(), 'coturn-test-'));
  const port = await freeUdpTcpPort();
  // A random 100-port relay range, so parallel coturns rarely compete; coturn
  // skips relay ports it cannot bind.
  const minPort = 50000 + 100 * Math.floor(Math.random() * 150);
  const conf = [
    'listening-ip=127.0.0.1',
    `listening-port=${port}`,
    'relay-ip=127.0.0.1',
    `min-port=${minPort}`,
    `max-port=${minPort + 99}`,
    `realm=${realm}`,
    'use-auth-secret',
    ...secrets.map((s) => `static-auth-secret=${s}`),
    'fingerprint',
    'no-tls',
    'no-dtls',
    'no-cli',
    'allow-loopback-peers',
    'log-file=stdout',
    'simple-log',
    'verbose', // per-session lines ("user <u>: ... error 401") that tests assert on
    // One relay thread: an allocation's "Local relay addr" line and its "session ...:
    // new, ... username=" line are then written back to back. With one thread per
    // core, two peers allocating at once (the ICE restart in browser/refresh)
    // interleave them and a relay address was read as the other peer's.
    'relay-threads=1',
    `userdb=${join(dir, 'userdb.sqlite')}`,
    `pidfile=${join(dir, 'turnserver.pid')}`,
    '',
  ].join('\n');
  const confFile = join(dir, 'turnserver.conf');
  writeFileSync(confFile, conf, { mode: 0o600 });

  let log = '';
  const proc = spawn(TURNSERVER, ['-c', confFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  proc.on('error', (e) => { log += `spawn error: ${e.message}\n`; });
  const onData = (b) => { log += b.toString(); if (process.env.RTM_TEST_VERBOSE) process.stderr.write(b); };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);

  const t = {
    port, realm, dir, pid: proc.pid, proc,
    urls: [`stun:127.0.0.1:${port}`, `turn:127.0.0.1:${port}?transport=udp`, `turn:127.0.0.1:${port}?transport=tcp`],
    log: () => log,
    // Session lines carry "user <name>"; the first, unauthenticated request
    // of every allocation draws a 401 with "user <>", so match the name.
    allocated: (user) => log.includes(`user <${user}>: incoming packet ALLOCATE processed, success`),
    unauthorized: (user) => new RegExp(`user <${escapeRe(user)}>: [^\\n]*error 401`).test(log),
  };
  t.stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const k = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(k);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (opts.startTimeoutMs || 10000);
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`turnserver exited at start:\n${log}`);
    }
    if (await stunPing(port)) break;
    if (Date.now() > deadline) {
      await t.stop();
      throw new Error(`turnserver did not answer STUN on ${port}:\n${log}`);
    }
    await sleep(50);
  }
  return t;
}

function escapeRe(s) { return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); }

// Runs turnutils_uclient against 127.0.0.1:port with a turnutils_peer of its
// own as the far end, sending `messages` 100-byte messages through the relay.
// Returns { code, signal, output }: code 0 when it allocated and the messages
// came back, 255 when coturn refused the credential. The credential is on
// uclient's argv because the tool has no other way in; it is a short-lived
// test credential on loopback, never a long-term secret.
export async function uclient({ port, username, credential, tcp = false, messages = 10, timeoutMs = 20000 }) {
  const peerPort = await freeUdpPort();
  const peer = spawn(PEER, ['-L', '127.0.0.1', '-p', String(peerPort)], { stdio: 'ignore' });
  const peerExit = new Promise((resolve) => peer.on('exit', resolve));
  peer.on('error', () => { /* missing binary: uclient then fails with its own output */ });
  try {
    // turnutils_peer binds at once; give it a moment before the first relayed packet.
    await sleep(100);
    const args = ['-u', username, '-w', credential, '-e', '127.0.0.1', '-r', String(peerPort),
      '-n', String(messages), '-m', '1', '-l', '100', '-p', String(port)];
    if (tcp) args.push('-t');
    args.push('127.0.0.1');
    let output = '';
    const c = spawn(UCLIENT, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    c.on('error', (e) => { output += `spawn error: ${e.message}\n`; });
    c.stdout.on('data', (b) => { output += b.toString(); });
    c.stderr.on('data', (b) => { output += b.toString(); });
    const kill = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    const { code, signal } = await new Promise((resolve) => c.on('exit', (cd, sg) => resolve({ code: cd, signal: sg })));
    clearTimeout(kill);
    return { code: code === null ? -1 : code, signal, output };
  } finally {
    if (peer.exitCode === null && peer.signalCode === null) peer.kill('SIGTERM');
    await peerExit;
  }
}
