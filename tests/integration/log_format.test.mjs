// log-format json: every line rtmd writes is one JSON object with ts, level
// and msg, the fields of the text line (sid, peer, app, code) as fields, and
// no token anywhere, a refused one included (tests/unit/test_log.c checks the
// redaction of anything JWT-shaped that reaches a line).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startRtmd, sleep, RTMD } from '../lib/rtmd.mjs';

function jsonLines(log) {
  const lines = log.split('\n').filter((l) => l.length);
  assert.ok(lines.length > 3, 'rtmd wrote lines');
  return lines.map((l) => {
    let o;
    assert.doesNotThrow(() => { o = JSON.parse(l); }, `a JSON line: ${l}`);
    assert.equal(typeof o, 'object');
    assert.match(o.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(['error', 'warn', 'info', 'debug'].includes(o.level), o.level);
    assert.equal(typeof o.msg, 'string');
    return o;
  });
}

test('log-format json: one object per line with sid, peer, app and code; never a token', async () => {
  const d = await startRtmd({ config: { 'log-format': 'json' } });
  let tokens = [];
  try {
    const { token } = await d.mint({ peerId: 'log-peer' });
    tokens.push(token);
    const c = await d.connect(token);
    await c.close(1000);
    // a token refused (bad signature): the refusal is logged, the token is not
    const forged = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    tokens.push(forged);
    const bad = await d.open(`?token=${encodeURIComponent(forged)}`);
    const closed = await bad.closed;
    assert.equal(closed.code, 4001);
    await sleep(300);
  } finally {
    await d.stop();
  }
  const lines = jsonLines(d.log);
  const open = lines.find((o) => /^ws: open /.test(o.msg));
  assert.ok(open, 'the open line');
  assert.match(open.sid, /^ses_/);
  assert.equal(open.peer, 'log-peer');
  assert.equal(open.app, d.app);
  const closed = lines.find((o) => /^ws: closed /.test(o.msg) && o.sid === open.sid);
  assert.ok(closed, 'the close line of the same session');
  assert.equal(closed.code, 1000, 'code is a number');
  assert.equal(closed.peer, 'log-peer');
  assert.equal(closed.app, d.app);
  const refused = lines.find((o) => /^ws: refused /.test(o.msg));
  assert.ok(refused && refused.code === 4001 && typeof refused.reason === 'string', 'the refusal with its code and reason');
  for (const t of tokens) {
    assert.ok(!d.log.includes(t), 'no token in the log');
    assert.ok(!d.log.includes(t.split('.')[1]), 'not even its payload');
  }
  assert.ok(lines.some((o) => /listener ready/.test(o.msg)));
  await d.cleanup();
});

test('log-format text stays the default; an unknown format is refused at start', () => {
  const r = spawnSync(RTMD, ['--log-format', 'xml'], { encoding: 'utf8', env: { ...process.env, RTM_TURN_SECRETS: 's' } });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /log-format must be text or json/);
});
