// trusted-proxies: X-Forwarded-For names the client only when the TCP peer is
// a configured proxy. Then the session row and log carry the client's
// address and rate-connects-per-ip-per-minute counts per client (4011 after
// the request head); from anyone else the header is ignored, so a client
// cannot dodge the per-address limit by inventing addresses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startRtmd, sleep } from '../lib/rtmd.mjs';

async function connectVia(d, token, xff) {
  const c = await d.open(`?token=${encodeURIComponent(token)}`, { headers: xff ? { 'x-forwarded-for': xff } : {} });
  const first = await Promise.race([c.next('welcome').then((w) => ({ w })), c.closed.then((x) => ({ closed: x }))]);
  return { c, ...first };
}

async function sessionRows(d, peerId) {
  // bounded: about 30 s (rows are written in the background; valgrind under load is slow)
  for (let i = 0; i < 600; i++) {
    const r = await d.api('GET', `/v1/sessions?peerId=${peerId}`);
    if (r.json.sessions.length) return r.json.sessions;
    await sleep(50);
  }
  return [];
}

test('behind a trusted proxy: the client address from X-Forwarded-For, limited per client', async () => {
  const d = await startRtmd({ config: { 'trusted-proxies': ['127.0.0.1'], 'rate-connects-per-ip-per-minute': 2, 'session-flush-ms': 20 } });
  try {
    const { token } = await d.mint({ peerId: 'via-proxy' });
    const a = await connectVia(d, token, '198.51.100.1, 203.0.113.7');
    assert.ok(a.w, 'welcomed');
    await a.c.close();
    const rows = await sessionRows(d, 'via-proxy');
    assert.equal(rows[0].remoteAddr, '203.0.113.7', 'the rightmost hop the proxy appended');
    assert.match(d.log, /ws: open .*remote=203\.0\.113\.7/);
    // the second connect from that client is fine, the third is over the rate
    const b = await connectVia(d, token, '203.0.113.7');
    assert.ok(b.w);
    await b.c.close();
    const c = await connectVia(d, token, '203.0.113.7');
    assert.equal(c.closed && c.closed.code, 4011, 'over the per-client rate');
    // another client behind the same proxy is not affected
    const other = await connectVia(d, token, '203.0.113.8');
    assert.ok(other.w, 'another client through the same proxy');
    await other.c.close();
  } finally {
    await d.cleanup();
  }
});

test('from an untrusted peer X-Forwarded-For is ignored', async () => {
  const d = await startRtmd({ config: { 'trusted-proxies': ['10.0.0.0/8'], 'rate-connects-per-ip-per-minute': 2, 'session-flush-ms': 20 } });
  try {
    const { token } = await d.mint({ peerId: 'spoofer' });
    const a = await connectVia(d, token, '203.0.113.50');
    assert.ok(a.w);
    await a.c.close();
    const rows = await sessionRows(d, 'spoofer');
    assert.equal(rows[0].remoteAddr, '127.0.0.1', 'the TCP peer, not the header');
    const b = await connectVia(d, token, '203.0.113.51');
    assert.ok(b.w);
    await b.c.close();
    // a third connect from 127.0.0.1, whatever the header says, is refused at accept
    await assert.rejects(connectVia(d, token, '203.0.113.52'));
  } finally {
    await d.cleanup();
  }
});

test('trusted-proxies entries are checked at start', async () => {
  await assert.rejects(startRtmd({ config: { 'trusted-proxies': ['proxy.example'] } }), /not an IP address or CIDR block/);
});
