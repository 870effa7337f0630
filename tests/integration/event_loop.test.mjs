// event_loop.test.mjs: what an event-loop change breaks silently, against a
// real rtmd (../shared/PLATFORM-NOTES.md, "Event loops"). lws's own timers
// (handshake and keep-alive timeouts) must keep firing on an idle
// server: on lws's libev plugin they fire late or never unless the loop
// wakes lws (rtmd/loop.c). The other two silent failures are covered where
// the behaviour lives: close codes read by ws (broker_auth: 4001 with its
// reason; broker_protection: SIGTERM drain 1001) and by Chromium
// (browser/call: 4001; browser/demo: 1001 on restart), and the broker's own
// timers on an idle server (broker_auth: 4002 at expiry; liveness).
// And lws's start-up: on the libev plugin lws runs its protocol init (where
// the broker learns its loop) from one of its timers, so clients connecting
// as the loop starts must still be served by a broker that has its loop.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import WebSocket from 'ws';
import { startRtmd, sleep } from '../lib/rtmd.mjs';
import { signToken } from './broker_util.mjs';

const SLOW = process.env.RTM_VALGRIND ? 4 : 1; // valgrind stretches every step

let d;
before(async () => { d = await startRtmd({ config: { 'rate-connects-per-ip-per-minute': 0, 'handshake-timeout-sec': 2 } }); });
after(async () => { await d.cleanup(); });

// A TCP client that sends half a request line and then nothing: only lws's
// own timeout ends it (its ah-idle timeout: handshake-timeout-sec, 2 s here).
function stalledClient() {
  return new Promise((resolve, reject) => {
    const s = connect(d.publicPort, '127.0.0.1');
    const t0 = Date.now();
    let got = 0;
    s.on('connect', () => s.write('GET /v1?token=x HTTP/1.1\r\nHost: 127.0.0.1\r\n'));
    s.on('data', (c) => { got += c.length; });
    s.on('error', reject);
    s.on('close', () => resolve({ ms: Date.now() - t0, got }));
  });
}

test("lws's own timeout fires on an idle server: a request stalled mid-headers is dropped after handshake-timeout-sec", async () => {
  const r = await stalledClient();
  assert.ok(r.ms >= 1500, `dropped after ${r.ms} ms: too early for a 2 s timeout`);
  // A lost lws timer (the libev plugin's bug without rtmd's wake-up) leaves the socket open for good.
  assert.ok(r.ms < 15000, `dropped after ${r.ms} ms (handshake-timeout-sec is 2)`);
});

// Clients already dialing when rtmd's loop starts: each connects as soon as
// the public port listens and subscribes the moment its upgrade is answered,
// so the broker's first turns are busy with them and lws's idle watcher
// (which runs lws's timers, its start-up among them) waits for a quiet turn.
// Before rtmd/loop.c ran lws's start-up ahead of the listeners, the broker
// served them without its loop: subscribes were acked but the channel's
// presence flush was never scheduled, so no snapshot came, ever. Under
// valgrind (RTM_VALGRIND=1), where those first turns are slow, that failed
// every time (0 of 20 snapshots; also broker_protection liveness and
// growth_bounds snapshots); on a normal build the client side is slower than
// the broker and a quiet turn comes first, so there it rarely can.
test('clients connecting while rtmd starts get their presence snapshots', async () => {
  const N = 20;
  const clients = [];
  let stop = false;
  const dial = (e, i) => {
    const token = signToken(e.key, { sub: `early-${i}` });
    const ws = new WebSocket(`${e.wsUrl}/v1?token=${token}`);
    const c = { ws, frames: [] };
    ws.on('error', () => { if (!stop && !c.opened) setTimeout(() => dial(e, i), 1); });
    ws.on('open', () => { c.opened = true; clients[i] = c; ws.send(JSON.stringify({ type: 'subscribe', channel: 'early', requestId: 'r1' })); });
    ws.on('message', (m) => c.frames.push(JSON.parse(m.toString())));
  };
  const e = await startRtmd({ onSpawn: (x) => { for (let i = 0; i < N; i++) dial(x, i); } });
  try {
    const snapped = () => clients.filter((c) => c && c.frames.some((f) => f.type === 'presence' && f.channel === 'early')).length;
    const end = Date.now() + 5000 * SLOW;
    while (snapped() < N && Date.now() < end) await sleep(10);
    const acked = clients.filter((c) => c && c.frames.some((f) => f.type === 'ack')).length;
    assert.equal(acked, N, 'every subscribe acked');
    assert.equal(snapped(), N, `presence snapshots for ${snapped()} of ${N} subscribers`);
  } finally {
    stop = true;
    for (const c of clients) if (c) c.ws.terminate();
    await e.cleanup();
  }
});
