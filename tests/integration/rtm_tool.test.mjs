// rtm_tool.test.mjs: the `rtm` command-line tool end to end against a real
// rtmd: token, sub/pub across two processes, send, listen, the backend
// commands (peers, kick, sessions, revoke) and the exit codes scripts rely on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { startRtmd, RTM } from '../lib/rtmd.mjs';

let d;
let env;

before(async () => {
  d = await startRtmd({ config: { 'rate-connects-per-ip-per-minute': 0 } });
  // secrets through the environment, as the tool's help recommends
  env = { ...process.env, RTM_URL: d.wsUrl, RTM_MINT: d.backendUrl, RTM_KEY: d.key.secret };
});
after(async () => { await d.cleanup(); });

function run(args, extraEnv = {}) {
  const r = spawnSync(RTM, args, { env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: 20000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// Starts a long-running subcommand; resolves helpers to read its lines.
function start(args) {
  const p = spawn(RTM, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const s = { p, out: '', err: '' };
  p.stdout.on('data', (b) => { s.out += b; });
  p.stderr.on('data', (b) => { s.err += b; });
  s.exited = new Promise((res) => p.on('exit', (code) => res(code)));
  s.waitErr = async (re, ms = 5000) => {
    const end = Date.now() + ms;
    while (!re.test(s.err)) {
      if (Date.now() > end) throw new Error(`timeout waiting for ${re} in stderr: ${s.err}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  s.lines = () => s.out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  return s;
}

test('rtm token mints through the API and prints token + expiresAt', () => {
  const r = run(['token', '--peer', 'tok', '--ttl', '120']);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.match(j.token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  const now = Math.floor(Date.now() / 1000);
  assert.ok(j.expiresAt > now + 100 && j.expiresAt <= now + 121);
});

test('rtm token signs locally with --key-id and the same key', async () => {
  const r = run(['token', '--peer', 'local', '--key-id', d.key.id], { RTM_MINT: '' });
  assert.equal(r.code, 0, r.err);
  const { token } = JSON.parse(r.out);
  const c = await d.connect(token);
  assert.equal(c.welcome.peerId, 'local');
  await c.close();
});

test('sub in one process receives what pub sends from another', async () => {
  const sub = start(['sub', 'room', '--peer', 'bob', '--count', '1']);
  await sub.waitErr(/subscribed room/);
  const r = run(['pub', 'room', '{"hello":"world"}', '--peer', 'alice']);
  assert.equal(r.code, 0, r.err);
  assert.equal(await sub.exited, 0);
  const [line] = sub.lines();
  assert.deepEqual(line, { type: 'message', channel: 'room', from: 'alice', data: { hello: 'world' } });
});

test('presence lines and direct send between two tool processes', async () => {
  const sub = start(['sub', 'pair', '--peer', 'carol', '--count', '2']);
  await sub.waitErr(/subscribed pair/);
  const r = run(['send', 'carol', 'plain text', '--channel', 'pair', '--peer', 'dave']);
  assert.equal(r.code, 0, r.err);
  assert.equal(await sub.exited, 0);
  const lines = sub.lines();
  assert.deepEqual(lines[0], { type: 'presence', channel: 'pair', joined: [{ peerId: 'dave' }], left: [] });
  assert.deepEqual(lines[1], { type: 'direct', from: 'dave', data: 'plain text' });
});

test('listen prints every frame, starting with the welcome', async () => {
  const l = start(['listen', '--peer', 'erin', '--count', '1']);
  assert.equal(await l.exited, 0);
  const [w] = l.lines();
  assert.equal(w.type, 'welcome');
  assert.equal(w.peerId, 'erin');
  assert.ok(Array.isArray(w.metadata.iceServers));
});

test('peers, kick (4020 ends the sub with exit 1) and sessions', async () => {
  const sub = start(['sub', 'lobby', '--peer', 'frank']);
  await sub.waitErr(/subscribed lobby/);
  const peers = run(['peers']);
  assert.equal(peers.code, 0, peers.err);
  assert.ok(JSON.stringify(JSON.parse(peers.out)).includes('frank'));
  const k = run(['kick', 'frank']);
  assert.equal(k.code, 0, k.err);
  assert.equal(await sub.exited, 1);
  assert.match(sub.err, /closed for good \(4020/);
  assert.equal(run(['kick', 'nobody-here']).code, 1);
  // session rows are batched: give the writer a moment
  await new Promise((r) => setTimeout(r, 600));
  const s = run(['sessions', '--peer', 'frank']);
  assert.equal(s.code, 0, s.err);
  assert.ok(s.out.includes('frank'));
});

test('revoke --peer closes live sessions with 4001 and refuses reconnection', async () => {
  const sub = start(['sub', 'lobby', '--peer', 'gina']);
  await sub.waitErr(/subscribed lobby/);
  const r = run(['revoke', '--peer', 'gina']);
  assert.equal(r.code, 0, r.err);
  assert.equal(await sub.exited, 1);
  assert.match(sub.err, /closed for good \(4001/);
});

test('exit codes: usage 2, refused token 3, broker error 1, --help 0', () => {
  assert.equal(run(['pub']).code, 2);
  assert.equal(run(['sub']).code, 2);
  assert.equal(run(['nonsense']).code, 2);
  assert.equal(run(['pub', 'room', '1', '--bogus']).code, 2);
  for (const c of ['token', 'sub', 'pub', 'send', 'listen', 'peers', 'kick', 'revoke', 'sessions', 'bench']) {
    const h = run([c, '--help']);
    assert.equal(h.code, 0, `${c} --help`);
    assert.match(h.out, /usage: rtm/);
  }
  assert.equal(run(['pub', 'room', '1'], { RTM_TOKEN: 'a.b.c' }).code, 3);
  assert.equal(run(['pub', 'room', '1'], { RTM_KEY: 'sk_secret_wrong' }).code, 3);
  const bad = run(['pub', '_rtm/reserved', '1', '--peer', 'hank']);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /channel_reserved/);
  assert.equal(run(['peers'], { RTM_KEY: 'sk_secret_wrong' }).code, 3);
});

test('rtm bench runs each mode end to end and accounts for every message (no speed checked)', () => {
  const benchEnv = { RTM_KEY_ID: d.key.id, RTM_MINT: '' };
  const last = (r) => JSON.parse(r.out.trim().split('\n').pop());
  const f = run(['bench', 'fanout', '--subs', '5', '--pubs', '2', '--msgs', '40', '--size', '100', '--pid', String(d.pid)], benchEnv);
  assert.equal(f.code, 0, f.err);
  const fj = last(f);
  assert.equal(fj.bench, 'fanout');
  assert.equal(fj.published, 40);
  assert.equal(fj.delivered, 200);
  assert.equal(fj.lost, 0);
  assert.ok(fj.p50_ms <= fj.p99_ms && fj.p99_ms <= fj.max_ms);
  assert.ok(fj.broker_rss_kb > 0);
  assert.match(f.out, /fanout results/);
  const p = run(['bench', 'pairs', '--pairs', '3', '--msgs', '10'], benchEnv);
  assert.equal(p.code, 0, p.err);
  const pj = last(p);
  assert.equal(pj.exchanges, 30);
  assert.equal(pj.lost, 0);
  const c = run(['bench', 'connect', '--conns', '20', '--pid', String(d.pid)], benchEnv);
  assert.equal(c.code, 0, c.err);
  const cj = last(c);
  assert.equal(cj.connected, 20);
  assert.equal(cj.failures, 0);
  assert.ok('broker_bytes_per_conn' in cj);
  assert.equal(run(['bench', 'nonsense'], benchEnv).code, 2);
});

// The raw relay of make bench (bench/rawws.c) and rtm bench's raw wire: the
// baseline must account for every message too, or its figures mean nothing.
test('rtm bench --server raw against rtm-bench-raw accounts for every message (no speed checked)', async () => {
  const rawBin = RTM.replace(/rtm$/, 'rtm-bench-raw');
  const raw = spawn(rawBin, ['--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let out = '';
    raw.stdout.on('data', (b) => { out += b; });
    const end = Date.now() + 5000;
    while (!/listening on [0-9.]+:\d+/.test(out) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    const url = `ws://${out.match(/listening on ([0-9.]+:\d+)/)[1]}`;
    const rawEnv = { RTM_URL: url };
    const last = (r) => JSON.parse(r.out.trim().split('\n').pop());
    const f = run(['bench', 'fanout', '--server', 'raw', '--subs', '50', '--pubs', '2', '--msgs', '40', '--threads', '3', '--pid', String(raw.pid)], rawEnv);
    assert.equal(f.code, 0, f.err);
    const fj = last(f);
    assert.equal(fj.server, 'raw');
    assert.equal(fj.threads, 3);
    assert.equal(fj.published, 40);
    assert.equal(fj.delivered, 2000);
    assert.equal(fj.lost, 0);
    assert.ok(fj.p50_ms <= fj.p99_ms && fj.p99_ms <= fj.max_ms);
    const p = run(['bench', 'pairs', '--server', 'raw', '--pairs', '7', '--msgs', '10', '--threads', '2', '--idle', '30'], rawEnv);
    assert.equal(p.code, 0, p.err);
    const pj = last(p);
    assert.equal(pj.exchanges, 70);
    assert.equal(pj.lost, 0);
    assert.equal(pj.idle_sessions, 30);
    const c = run(['bench', 'connect', '--server', 'raw', '--conns', '40', '--threads', '2'], rawEnv);
    assert.equal(c.code, 0, c.err);
    assert.equal(last(c).connected, 40);
    assert.equal(run(['bench', 'pairs', '--server', 'nats'], rawEnv).code, 2);
  } finally {
    raw.kill('SIGTERM');
  }
});

// A partial frame of the largest size kept between reads, then a read that
// fills the whole read size behind it: the relay's read buffer had no room
// for the frame's header and mask beyond MAX_FRAME, so that read wrote 13
// bytes past it (over the relay's lists: SIGSEGV, every run). The relay is
// stopped while the second part is written so one read takes all of it.
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

// rtm-bench-raw on an ephemeral port and one raw socket upgraded to it as
// recipient 1; conn.got holds every byte the relay sent (the 101 head first).
async function rawRelayAndSocket() {
  const net = await import('node:net');
  const raw = spawn(RTM.replace(/rtm$/, 'rtm-bench-raw'), ['--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((res) => raw.on('exit', (code, sig) => res(sig || code)));
  let out = '';
  raw.stdout.on('data', (b) => { out += b; });
  const end = Date.now() + 5000;
  while (!/listening on [0-9.]+:\d+/.test(out) && Date.now() < end) await pause(20);
  const conn = { raw, exited, got: Buffer.alloc(0) };
  const port = Number(out.match(/listening on [0-9.]+:(\d+)/)[1]);
  const sock = net.connect(port, '127.0.0.1');
  conn.sock = sock;
  conn.ended = new Promise((r) => sock.on('close', r));
  sock.on('data', (b) => { conn.got = Buffer.concat([conn.got, b]); });
  sock.on('error', () => {});
  await new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); });
  sock.write('GET /?id=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  return conn;
}

test('rtm-bench-raw keeps a partial 128 KB frame and a full read behind it (no overflow)', async () => {
  const conn = await rawRelayAndSocket();
  const { raw, exited, sock } = conn;
  try {
    // a masked binary frame with a 64-bit length and a zero mask; 'x' payloads are ignored
    const frame = (len) => {
      const h = Buffer.alloc(14);
      h[0] = 0x82;
      h[1] = 0x80 | 127;
      h.writeBigUInt64BE(BigInt(len), 2);
      return Buffer.concat([h, Buffer.alloc(len, 0x78)]);
    };
    // ignored frames first, so the socket's receive buffer grows past the read size
    const warm = frame(100000);
    for (let i = 0; i < 200; i++) if (!sock.write(warm)) await new Promise((r) => sock.once('drain', r));
    await pause(300);
    const big = frame(128 * 1024); // MAX_FRAME
    sock.write(big.subarray(0, big.length - 1));
    await pause(300);
    raw.kill('SIGSTOP');
    sock.write(Buffer.concat([big.subarray(big.length - 1), ...Array.from({ length: 40 }, () => frame(10000))]));
    await pause(300);
    raw.kill('SIGCONT');
    await pause(300);
    const d = Buffer.from('d1 still relayed');
    sock.write(Buffer.concat([Buffer.from([0x81, 0x80 | d.length, 0, 0, 0, 0]), d]));
    const until = Date.now() + 3000;
    while (!conn.got.includes(d) && Date.now() < until) await pause(20);
    const died = await Promise.race([exited, pause(100).then(() => null)]);
    assert.equal(died, null, 'the relay died');
    assert.ok(conn.got.includes(d), 'the direct after the big frame came back');
  } finally {
    sock.destroy();
    raw.kill('SIGCONT');
    raw.kill('SIGTERM');
  }
});

// bench/rawws.c's header says a close is echoed; the echo was queued for the
// batch's end and the connection closed before it (nothing came back).
test('rtm-bench-raw echoes a close frame before it closes', async () => {
  const conn = await rawRelayAndSocket();
  try {
    const until = Date.now() + 3000;
    while (!conn.got.includes('\r\n\r\n') && Date.now() < until) await pause(20);
    conn.sock.write(Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8])); // close 1000, zero mask
    await Promise.race([conn.ended, pause(3000)]);
    const after = conn.got.subarray(conn.got.indexOf('\r\n\r\n') + 4);
    assert.equal(after.toString('hex'), '880203e8');
  } finally {
    conn.sock.destroy();
    conn.raw.kill('SIGTERM');
  }
});

test('rtm bench --threads spreads pairs and subscribers over threads against rtmd (every message accounted for)', () => {
  const benchEnv = { RTM_KEY_ID: d.key.id, RTM_MINT: '' };
  const last = (r) => JSON.parse(r.out.trim().split('\n').pop());
  const f = run(['bench', 'fanout', '--subs', '20', '--msgs', '30', '--threads', '4'], benchEnv);
  assert.equal(f.code, 0, f.err);
  assert.equal(last(f).delivered, 600);
  const p = run(['bench', 'pairs', '--pairs', '5', '--rate', '200', '--seconds', '1', '--threads', '2', '--idle', '20'], benchEnv);
  assert.equal(p.code, 0, p.err);
  const pj = last(p);
  assert.equal(pj.bench, 'pairs-paced');
  assert.equal(pj.exchanges, 200);
  assert.equal(pj.lost, 0);
  assert.equal(pj.idle_sessions, 20);
});
