// Issue 11 defect 2: the backend listener stays available whatever the public
// side receives. Half-sent request heads on the public port, from several
// loopback addresses (127.0.0.2...), must not make GET /healthz on the
// backend wait, must not stop public requests from another address, and are
// dropped after the request-head deadline. "Promptly" is asserted without a
// stopwatch: the answers must come while every held head is still open, that
// is before the deadline could have freed any header space.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startRtmd, sleep } from '../lib/rtmd.mjs';

const opened = [];
after(() => { for (const s of opened) s.destroy(); });

// Opens a TCP connection from localAddress and sends the start of a request
// head that never ends. Resolves with the socket once connected; s.closedAt
// is set when the server closes it.
function halfHead(port, localAddress) {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, localAddress });
    opened.push(s);
    s.closedAt = null;
    s.on('close', () => { s.closedAt = Date.now(); });
    s.on('error', () => {});
    s.once('connect', () => {
      s.write('GET /v1?token=x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
      resolve(s);
    });
    s.once('error', reject);
  });
}

test('half-sent heads on the public port: the backend answers promptly, public requests are served, heads time out', async () => {
  const d = await startRtmd({
    config: { 'handshake-timeout-sec': 10, 'max-handshakes': 48, 'max-handshakes-per-ip': 8 },
  });
  try {
    assert.equal((await d.api('GET', '/healthz', undefined, { auth: null })).status, 200);

    // 10 addresses x 10 half-sent heads = 100 attempts: more than the header
    // pool (64), the public budget (48) and each address's cap (8).
    const socks = [];
    for (let a = 2; a < 12; a++)
      for (let i = 0; i < 10; i++) socks.push(await halfHead(d.publicPort, `127.0.0.${a}`));
    // refused sockets are closed by rtmd as it accepts them (slowly under valgrind)
    const open = () => socks.filter((s) => s.closedAt === null).length;
    for (let i = 0; i < 200 && open() > 48; i++) await sleep(50);
    await sleep(300);
    const held = open();
    assert.ok(held <= 48, `at most the public budget is held (${held})`);
    for (let a = 2; a < 12; a++) {
      const mine = socks.slice((a - 2) * 10, (a - 1) * 10).filter((s) => s.closedAt === null).length;
      assert.ok(mine <= 8, `127.0.0.${a} holds at most 8 unfinished heads (${mine})`);
    }

    // The backend answers, several times over, while the heads are all held.
    for (let i = 0; i < 5; i++) {
      const h = await d.api('GET', '/healthz', undefined, { auth: null });
      assert.equal(h.status, 200);
    }
    assert.equal(socks.filter((s) => s.closedAt === null).length, held,
      'answered while every held head was still open (no header space was freed)');
    const m = await d.api('GET', '/metrics', undefined, { auth: null });
    const refused = [...m.text.matchAll(/^rtm_handshakes_refused_total\{reason="(per_ip|total)"\} (\d+)$/gm)]
      .reduce((n, x) => n + Number(x[2]), 0);
    assert.equal(refused, socks.length - held, 'every refusal counted');
    assert.equal(Number(/^rtm_public_handshakes (\d+)$/m.exec(m.text)[1]), held);

    // The request-head deadline drops them all; then the public side serves again.
    const deadline = Date.now() + 20000;
    while (socks.some((s) => s.closedAt === null) && Date.now() < deadline) await sleep(100);
    assert.ok(socks.every((s) => s.closedAt !== null), 'every unfinished head is closed by the deadline');
    const { token } = await d.mint({ peerId: 'after-flood' });
    const c = await d.connect(token);
    assert.equal(c.welcome.peerId, 'after-flood');
    await c.close();
    const m2 = await d.api('GET', '/metrics', undefined, { auth: null });
    assert.equal(Number(/^rtm_public_handshakes (\d+)$/m.exec(m2.text)[1]), 0, 'nothing left counted');
  } finally {
    await d.cleanup();
  }
});

test('a handful of flooding addresses leave the public listener open to everyone else', async () => {
  const d = await startRtmd({ config: { 'handshake-timeout-sec': 10, 'max-handshakes': 48, 'max-handshakes-per-ip': 8 } });
  try {
    const socks = [];
    for (let a = 2; a < 6; a++)
      for (let i = 0; i < 16; i++) socks.push(await halfHead(d.publicPort, `127.0.0.${a}`));
    const open = () => socks.filter((s) => s.closedAt === null).length;
    for (let i = 0; i < 200 && open() > 32; i++) await sleep(50);
    await sleep(300);
    assert.equal(open(), 32, '4 addresses x 8 held, the rest refused');
    // another address: a WebSocket session and a file, at once
    const { token } = await d.mint({ peerId: 'bystander' });
    const c = await d.connect(token);
    assert.equal(c.welcome.peerId, 'bystander');
    const f = await fetch(`${d.publicUrl}/sdk/rtm.js`);
    assert.equal(f.status, 200);
    await f.text();
    await c.close();
    const h = await d.api('GET', '/healthz', undefined, { auth: null });
    assert.equal(h.status, 200);
    assert.equal(socks.filter((s) => s.closedAt === null).length, 32, 'served while the flood still held its heads');
  } finally {
    for (const s of opened) s.destroy();
    await d.cleanup();
  }
});
