// store_pg.test.mjs: the Postgres store end to end, on a real server this
// file starts (tests/lib/postgres.mjs): `rtm key` and `rtm app` against a
// postgres:// URL, a password never taken from argv and never printed,
// rtmd on Postgres with a password in its config file, and rtmd outliving
// the server: live sessions keep working while it is stopped, and the store
// is written again once it is back (what /healthz says meanwhile is the
// store-fault tests' business).
// Then issue 12's store fault on Postgres: the server stopped under a live
// rtmd (sessions go on, cached keys admit new tokens, /healthz degraded,
// rows written and revocations intact after).
// (The common mint/broker suites and split roles also run on Postgres:
// tests/run.sh, group pg.)
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RTM, RTMD, ROOT, startRtmd } from '../lib/rtmd.mjs';
import { startPostgres } from '../lib/postgres.mjs';
import { until, claimsOf, expectClose } from './broker_util.mjs';

const PG_MIGRATIONS = readdirSync(join(ROOT, 'schema', 'pg')).filter((f) => /^\d+_.*\.sql$/.test(f)).length;

const pg = startPostgres();
const dir = mkdtempSync(join(tmpdir(), 'rtm-store-pg-'));
after(() => { rmSync(dir, { recursive: true, force: true }); pg.stop(); });

const VG = ['-q', '--error-exitcode=99', '--leak-check=full', '--show-leak-kinds=definite,indirect',
  '--errors-for-leak-kinds=definite,indirect'];
function run(bin, args, env = {}) {
  const [cmd, argv] = process.env.RTM_VALGRIND ? ['valgrind', [...VG, bin, ...args]] : [bin, args];
  const r = spawnSync(cmd, argv, {
    encoding: 'utf8', timeout: 60000,
    env: { ...process.env, RTM_DB: '', RTM_DB_PASSWORD_FILE: pg.passwordFile, PGPASSWORD: '', ...env },
  });
  assert.notEqual(r.status, 99, `valgrind errors in ${bin} ${args.join(' ')}:\n${r.stderr}`);
  let json = null;
  try { json = JSON.parse(r.stdout); } catch { /* not JSON */ }
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json };
}
function ok(args, env) {
  const r = run(RTM, args, env);
  assert.equal(r.code, 0, `rtm ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.json;
}
// The URL with the password in it (what an operator must not put on argv).
const withPassword = (url) => url.replace('postgresql://rtm@', `postgresql://rtm:${encodeURIComponent(pg.password())}@`);

test('rtm key and rtm app work against a postgres:// URL', () => {
  const db = pg.createDb('keys');
  const k = ok(['key', 'create', '--db', db, '--app', 'demo']);
  assert.match(k.id, /^sk_id_[0-9a-f]{32}$/);
  assert.match(k.secret, /^sk_secret_[0-9a-f]{64}$/);
  const p = ok(['key', 'create', '--db', db, '--app', 'demo', '--publishable', '--channels', 'room-*', '--actions', 'subscribe']);
  const r = run(RTM, ['key', 'list', '--db', db]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.stdout.includes(k.secret), 'no secret in the listing');
  assert.deepEqual(r.json.map((e) => e.id), [k.id, p.id], 'oldest first');
  assert.deepEqual(r.json[1].channels, ['room-*']);
  assert.deepEqual(r.json[1].actions, ['subscribe']);
  const rev = ok(['key', 'revoke', '--db', db, k.id]);
  assert.equal(rev.id, k.id);
  assert.ok(Math.abs(rev.revoked - Date.now() / 1000) < 120, JSON.stringify(rev));
  assert.ok(ok(['key', 'list', '--db', db]).find((e) => e.id === k.id).revoked > 0);

  assert.deepEqual(ok(['app', 'set', '--db', db, 'demo', 'duplicatePeer', 'replace']),
    { name: 'demo', duplicatePeer: 'replace', resumeWindowMs: -1, maxConnections: 0 });
  assert.equal(ok(['app', 'get', '--db', db, 'demo']).duplicatePeer, 'replace');
  const bad = run(RTM, ['app', 'set', '--db', db, 'demo', 'maxConnections', 'many']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /invalid setting 'maxConnections'/);
  // the rows are in Postgres itself
  assert.deepEqual(pg.psqlJson(db, 'SELECT app, kind FROM keys ORDER BY seq'),
    [{ app: 'demo', kind: 'secret' }, { app: 'demo', kind: 'publishable' }]);
  // PGPASSWORD works as well as the password file; $RTM_DB names the store
  const viaEnv = run(RTM, ['key', 'list'], { RTM_DB: db, RTM_DB_PASSWORD_FILE: '', PGPASSWORD: pg.password() });
  assert.equal(viaEnv.code, 0, viaEnv.stderr);
  assert.equal(viaEnv.json.length, 2);
});

test('a password is never taken from argv, never printed', () => {
  const db = pg.createDb('secrets');
  const pw = pg.password();
  const onArgv = run(RTM, ['key', 'list', '--db', withPassword(db)]);
  assert.equal(onArgv.code, 2);
  assert.match(onArgv.stderr, /password in the URL is not accepted on the command line/);
  assert.ok(!onArgv.stderr.includes(pw));

  const daemon = run(RTMD, ['--db', withPassword(db)], { RTM_TURN_SECRETS: 'turn-secret-1' });
  assert.notEqual(daemon.code, 0);
  assert.match(daemon.stderr, /--db: a password in the URL is not accepted on the command line/);
  assert.ok(!daemon.stderr.includes(pw));

  // a wrong password, from the file or inside a URL from the environment
  const wrong = join(dir, 'wrong-password');
  writeFileSync(wrong, 'not-the-password-4242\n', { mode: 0o600 });
  const r1 = run(RTM, ['key', 'list', '--db', db], { RTM_DB_PASSWORD_FILE: wrong });
  assert.equal(r1.code, 1);
  assert.match(r1.stderr, /cannot connect to postgresql:\/\/rtm@127\.0\.0\.1:\d+\/secrets .*password authentication failed/);
  assert.ok(!r1.stderr.includes('not-the-password-4242'));
  const r2 = run(RTM, ['key', 'list'], { RTM_DB: db.replace('rtm@', 'rtm:hunter2-secret@'), RTM_DB_PASSWORD_FILE: '' });
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /postgresql:\/\/rtm:\*\*\*@127\.0\.0\.1/);
  assert.ok(!r2.stderr.includes('hunter2-secret'));
  // a password file others can read works, with a warning
  const loose = join(dir, 'loose-password');
  writeFileSync(loose, pw + '\n', { mode: 0o644 });
  const r4 = run(RTM, ['key', 'list', '--db', db], { RTM_DB_PASSWORD_FILE: loose });
  assert.equal(r4.code, 0, r4.stderr);
  assert.match(r4.stderr, /db-password-file .*loose-password is readable by other users \(mode 644\): chmod 600 it/);
  assert.ok(!r4.stderr.includes(pw));
  // a missing password file is named
  const r3 = run(RTM, ['key', 'list', '--db', db], { RTM_DB_PASSWORD_FILE: join(dir, 'absent') });
  assert.equal(r3.code, 1);
  assert.match(r3.stderr, /db-password-file .*absent: No such file/);
});

test('rtmd on Postgres: a password in the config file stays out of the log', async () => {
  const db = pg.createDb('daemon');
  const key = ok(['key', 'create', '--db', db, '--app', 'test']);
  process.env.RTM_DB_PASSWORD_FILE = ''; // the config file's URL carries the password this time
  let d;
  try {
    d = await startRtmd({ db: withPassword(db), key, config: { 'log-level': 'debug' } });
    const h = await d.api('GET', '/healthz', undefined, { auth: null });
    assert.equal(h.status, 200, h.text);
    assert.equal(h.json.schemaVersion, PG_MIGRATIONS); // every schema/pg migration applied
    const { token } = await d.mint({ peerId: 'pg-alice' });
    const c = await d.connect(token);
    assert.equal(c.welcome.peerId, 'pg-alice');
    await c.close();
    await until(() => pg.psqlJson(db, "SELECT close_code FROM sessions WHERE peer_id = 'pg-alice'")[0]?.close_code === 1000,
      { timeoutMs: 4000 });
  } finally {
    process.env.RTM_DB_PASSWORD_FILE = pg.passwordFile;
    if (d) await d.cleanup();
  }
  assert.ok(!d.log.includes(pg.password()), 'the password is not in the log');
});

test('rtmd outlives a stopped Postgres: sessions go on, new tokens from cached keys connect, /healthz says degraded, the store is written again once it is back', async () => {
  const d = await startRtmd({ postgres: true });
  try {
    const { token: ta } = await d.mint({ peerId: 'pg-a' });
    const { token: tb } = await d.mint({ peerId: 'pg-b' });
    const a = await d.connect(ta), b = await d.connect(tb);
    assert.equal((await b.request({ type: 'subscribe', channel: 'room-1' })).type, 'ack');

    pg.halt();
    // The store's view notices at its next poll; rtmd keeps serving from memory (issue 12 item 2).
    const down = await until(async () => {
      const r = await d.api('GET', '/healthz', undefined, { auth: null });
      return r.json?.status === 'degraded' ? r : null;
    }, { timeoutMs: 10000, stepMs: 200 });
    assert.ok(down, '/healthz says degraded while Postgres is down');
    assert.equal(down.status, 200, down.text);
    assert.equal(down.json.store, 'degraded');
    assert.match(down.json.storeError, /cannot (read|write)/);
    // the live sessions do not need the store
    assert.equal((await a.request({ type: 'publish', channel: 'room-1', data: { n: 1 } })).type, 'ack');
    assert.deepEqual((await b.next('message')).data, { n: 1 });
    await until(() => /connection lost/.test(d.log), { timeoutMs: 4000 });
    // a new token, minted and checked with the cached key, still connects
    const { token: td } = await d.mint({ peerId: 'pg-d' });
    const e = await d.connect(td);
    assert.equal(e.welcome.peerId, 'pg-d');
    assert.equal(d.proc.exitCode, null, 'rtmd stayed up');

    pg.resume();
    const back = await until(async () => (await d.api('GET', '/healthz', undefined, { auth: null })).json?.status === 'ok',
      { timeoutMs: 8000, stepMs: 200 });
    assert.ok(back, '/healthz is ok again once Postgres is back');
    // a session that starts after the server is back gets its row in Postgres
    const c = await until(async () => {
      const r = await d.api('POST', '/v1/tokens', { peerId: 'pg-c' });
      return r.status === 200 ? d.connect(r.json.token) : null;
    }, { timeoutMs: 8000, stepMs: 250 });
    assert.ok(c, 'a token is minted and connects once Postgres is back');
    await c.close();
    const row = await until(() => pg.psqlJson(d.db, "SELECT close_code FROM sessions WHERE peer_id = 'pg-c'")[0],
      { timeoutMs: 8000, stepMs: 200 });
    assert.equal(row?.close_code, 1000);
    // and the row made while it was down waited in memory and is written too
    const waited = await until(() => pg.psqlJson(d.db, "SELECT id FROM sessions WHERE peer_id = 'pg-d'")[0],
      { timeoutMs: 8000, stepMs: 200 });
    assert.ok(waited, 'the row made while Postgres was down is written after');
    assert.match(d.log, /connection back/);
    assert.ok(!d.log.includes(pg.password()));
    await Promise.all([a.close(), b.close(), e.close()]);
  } finally {
    await d.cleanup();
  }
});

test('Postgres stopped under a live rtmd: sessions go on, cached keys admit new tokens, /healthz degraded, nothing lost', async () => {
  const d = await startRtmd({ postgres: true, config: { 'node-id': 'pg-faults' } });
  try {
    const { token: revoked } = await d.mint({ peerId: 'pg-revoked' });
    assert.equal((await d.api('POST', '/v1/revocations', { jti: claimsOf(revoked).jti })).status, 201);
    const a = await d.connect((await d.mint({ peerId: 'pg-a' })).token);
    assert.equal((await a.request({ type: 'subscribe', channel: 'room-1' })).type, 'ack');

    pg.halt();
    const degraded = await until(async () => {
      const h = await d.api('GET', '/healthz', undefined, { auth: null });
      return h.status === 200 && h.json.status === 'degraded' ? h.json : null;
    }, { timeoutMs: 8000, stepMs: 200 });
    assert.ok(degraded, '/healthz says degraded while Postgres is down');
    // a token from the key held in memory connects; the live session goes on
    const b = await d.connect((await d.mint({ peerId: 'pg-b' })).token);
    assert.equal((await b.request({ type: 'subscribe', channel: 'room-1' })).type, 'ack');
    assert.equal((await a.request({ type: 'publish', channel: 'room-1', data: { n: 2 } })).type, 'ack');
    assert.deepEqual((await b.next('message')).data, { n: 2 });
    // the revocation made while the store was up is still in force
    assert.equal((await expectClose(d, `?token=${encodeURIComponent(revoked)}`)).code, 4001);
    await b.close();

    pg.resume();
    const ok = await until(async () => (await d.api('GET', '/healthz', undefined, { auth: null })).json?.status === 'ok',
      { timeoutMs: 10000, stepMs: 200 });
    assert.ok(ok, '/healthz ok again once Postgres is back');
    // the row of the session that lived and closed while the store was down is written
    const row = await until(() => pg.psqlJson(d.db, "SELECT close_code, node_id FROM sessions WHERE peer_id = 'pg-b'")[0],
      { timeoutMs: 10000, stepMs: 200 });
    assert.deepEqual(row, { close_code: 1000, node_id: 'pg-faults' });
    await a.close();
    await d.restart();
    assert.equal((await expectClose(d, `?token=${encodeURIComponent(revoked)}`)).code, 4001, 'and after a restart');
  } finally {
    await d.cleanup();
  }
});
