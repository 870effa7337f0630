// durability.test.mjs: issue 11 defect 4 against the real daemon. An
// acknowledged revocation must be on disk before the 201: strace attached to
// rtmd sees the store's WAL fsynced between the request and the reply. Session
// rows stay relaxed: connections opening and closing (their rows batched and
// written) cause no fsync per commit. (tests/unit/test_store_durability.c proves the same
// for key creation and key revocation through a counting sqlite VFS.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { startRtmd, sleep, ON_POSTGRES } from '../lib/rtmd.mjs';

let d, tracer, traceFile;
const canTrace = !ON_POSTGRES && spawnSync('strace', ['-V']).status === 0;

before(async () => {
  if (!canTrace) return;
  d = await startRtmd({ valgrind: false });
  traceFile = join(d.dir, 'strace.out');
  // -y names each fd's file; -f follows every thread
  tracer = spawn('strace', ['-f', '-y', '-e', 'trace=fsync,fdatasync', '-o', traceFile, '-p', String(d.pid)],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  tracer.stderr.on('data', (b) => { err += b; });
  for (let i = 0; i < 100 && !/attached/.test(err); i++) await sleep(50);
  assert.match(err, /attached/, `strace could not attach: ${err}`);
});
after(async () => {
  if (tracer) { tracer.kill('SIGINT'); await new Promise((r) => tracer.on('exit', r)); }
  if (d) await d.cleanup();
});

const syncs = () => (existsSync(traceFile) ? readFileSync(traceFile, 'utf8') : '')
  .split('\n').filter((l) => /f(data)?sync\(\d+<[^>]*rtm\.db-wal>/.test(l));

test('POST /v1/revocations fsyncs the WAL before the 201; session rows do not', { skip: !canTrace && 'needs strace and sqlite' }, async () => {
  await sleep(1500); // past the first retention run (an autocommit of its own, relaxed)
  const { token } = await d.mint({ peerId: 'dur-a' });
  // session rows: five batched writes (session-flush-ms 200) of a connect and a close.
  // sqlite syncs the WAL header once when the log restarts (the first write
  // after start): at most one fsync, not one per commit.
  for (let i = 0; i < 5; i++) { const c = await d.connect(token); await c.close(); await sleep(350); }
  const quiet = syncs().length;
  assert.ok(quiet <= 1, `session rows caused ${quiet} WAL fsyncs:\n${syncs().join('\n')}`);

  const jti = JSON.parse(Buffer.from(token.split('.')[1], 'base64url')).jti;
  let r = await d.api('POST', '/v1/revocations', { jti, expiresAt: Math.floor(Date.now() / 1000) + 600 });
  assert.equal(r.status, 201, r.text);
  await sleep(200); // strace writes its log asynchronously to us
  assert.ok(syncs().length > quiet, 'the revocation by jti was fsynced');

  const before = syncs().length;
  r = await d.api('POST', '/v1/revocations', { peerId: 'dur-b' });
  assert.equal(r.status, 201, r.text);
  await sleep(200);
  assert.ok(syncs().length > before, 'the revocation by peer was fsynced');
});
