// event_loop.test.mjs: what an event-loop change breaks silently, against a
// real rtmd (../shared/PLATFORM-NOTES.md, "Event loops"). lws's own timers
// (handshake and keep-alive timeouts) must keep firing on an idle
// server: on lws's libev plugin they fire late or never unless the loop
// wakes lws (rtmd/loop.c). The other two silent failures are covered where
// the behaviour lives: close codes read by ws (broker_auth: 4001 with its
// reason; broker_protection: SIGTERM drain 1001) and by Chromium
// (browser/call: 4001; browser/demo: 1001 on restart), and the broker's own
// timers on an idle server (broker_auth: 4002 at expiry; liveness).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startRtmd } from '../lib/rtmd.mjs';

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
