// key_tool.test.mjs: the real `rtm key` and `rtm app` commands against real
// sqlite files: JSON outputs, secrets only at creation, revoke, --db defaults,
// and every refusal with its exit code (1 refused, 2 usage) and message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RTM } from '../lib/rtmd.mjs';

const dir = mkdtempSync(join(tmpdir(), 'rtm-key-tool-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

// Runs rtm (under valgrind when RTM_VALGRIND is set); returns { code, stdout, stderr, json }.
const VG = ['-q', '--error-exitcode=99', '--leak-check=full', '--show-leak-kinds=definite,indirect',
  '--errors-for-leak-kinds=definite,indirect'];
function rtm(args, { env = {}, cwd } = {}) {
  const [cmd, argv] = process.env.RTM_VALGRIND ? ['valgrind', [...VG, RTM, ...args]] : [RTM, args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', env: { ...process.env, RTM_DB: '', ...env }, cwd, timeout: 60000 });
  assert.notEqual(r.status, 99, `valgrind errors in rtm ${args.join(' ')}:\n${r.stderr}`);
  let json = null;
  try { json = JSON.parse(r.stdout); } catch { /* not JSON */ }
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json };
}
function ok(args, opts) {
  const r = rtm(args, opts);
  assert.equal(r.code, 0, `rtm ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.ok(r.json !== null, `not JSON: ${r.stdout}`);
  assert.equal(r.stdout.trim().split('\n').length, 1, 'one JSON document on one line');
  return r.json;
}
function fails(args, code, stderrPattern, opts) {
  const r = rtm(args, opts);
  assert.equal(r.code, code, `rtm ${args.join(' ')}: want exit ${code}, got ${r.code} (${r.stderr})`);
  assert.equal(r.stdout, '', 'nothing on stdout when refused');
  assert.match(r.stderr, stderrPattern);
  assert.ok(!r.stderr.includes('sk_secret_'), 'no secret in error output');
  return r;
}

const db = join(dir, 'keys.db');

test('create prints a secret key once, as one JSON object', () => {
  const k = ok(['key', 'create', '--db', db, '--app', 'demo']);
  assert.deepEqual(Object.keys(k), ['id', 'secret']);
  assert.match(k.id, /^sk_id_[0-9a-f]{32}$/);
  assert.match(k.secret, /^sk_secret_[0-9a-f]{64}$/);
  const k2 = ok(['key', 'create', '--db', db, '--app=demo']);
  assert.notEqual(k2.id, k.id);
  assert.notEqual(k2.secret, k.secret);
});

test('list shows scope and defaults, never a secret', () => {
  const k = ok(['key', 'create', '--db', db, '--app', 'listed']);
  const p = ok(['key', 'create', '--db', db, '--app', 'listed', '--publishable',
    '--channels', 'room-*,lobby/**', '--actions', 'subscribe,presence', '--origins', 'https://a.example,http://localhost:3000']);
  assert.deepEqual(Object.keys(p), ['id']);
  assert.match(p.id, /^pk_[0-9a-f]{32}$/);

  const r = rtm(['key', 'list', '--db', db]);
  assert.equal(r.code, 0);
  assert.ok(!r.stdout.includes('sk_secret_'), 'no secret in the listing');
  assert.ok(!r.stdout.includes(k.secret));
  const list = r.json;
  assert.ok(Array.isArray(list));
  for (const e of list) assert.equal(e.secret, undefined);
  const sk = list.find((e) => e.id === k.id);
  assert.deepEqual({ ...sk, created: 0 }, {
    id: k.id, app: 'listed', kind: 'secret', alg: 'HS256', channels: ['**'],
    actions: ['publish', 'subscribe', 'presence', 'send'], origins: [], created: 0, revoked: 0,
  });
  assert.ok(Math.abs(sk.created - Date.now() / 1000) < 120);
  const pk = list.find((e) => e.id === p.id);
  assert.equal(pk.kind, 'publishable');
  assert.equal(pk.alg, null);
  assert.deepEqual(pk.channels, ['room-*', 'lobby/**']);
  assert.deepEqual(pk.actions, ['subscribe', 'presence']);
  assert.deepEqual(pk.origins, ['https://a.example', 'http://localhost:3000']);
});

test('revoke stamps the key once; unknown ids are refused', () => {
  const k = ok(['key', 'create', '--db', db, '--app', 'demo']);
  const r = ok(['key', 'revoke', '--db', db, k.id]);
  assert.equal(r.id, k.id);
  assert.equal(typeof r.revoked, 'number');
  assert.ok(Math.abs(r.revoked - Date.now() / 1000) < 120);
  const again = ok(['key', 'revoke', k.id, '--db', db]);
  assert.equal(again.revoked, r.revoked, 'revoking twice keeps the first time');
  const listed = ok(['key', 'list', '--db', db]).find((e) => e.id === k.id);
  assert.equal(listed.revoked, r.revoked);
  fails(['key', 'revoke', '--db', db, 'sk_id_00000000000000000000000000000000'], 1, /no key with id 'sk_id_0+'/);
  fails(['key', 'revoke', '--db', db], 2, /which key/);
});

test('RS256 and ES256 keys register a public key under a kid', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ecFile = join(dir, 'ec.pub'), rsaFile = join(dir, 'rsa.pub');
  const ecPem = ec.publicKey.export({ type: 'spki', format: 'pem' });
  writeFileSync(ecFile, ecPem);
  writeFileSync(rsaFile, rsa.publicKey.export({ type: 'spki', format: 'pem' }));
  assert.deepEqual(ok(['key', 'create', '--db', db, '--app', 'demo', '--alg', 'ES256', '--kid', 'ec-1', '--public-key', ecFile]), { id: 'ec-1' });
  assert.deepEqual(ok(['key', 'create', '--db', db, '--app', 'demo', '--alg', 'RS256', '--kid', 'rsa-1', '--public-key', rsaFile]), { id: 'rsa-1' });
  const list = ok(['key', 'list', '--db', db]);
  assert.equal(list.find((e) => e.id === 'ec-1').alg, 'ES256');
  assert.equal(list.find((e) => e.id === 'rsa-1').alg, 'RS256');
  assert.ok(!JSON.stringify(list).includes('BEGIN PUBLIC KEY'), 'list shows no key material');

  fails(['key', 'create', '--db', db, '--app', 'demo', '--alg', 'ES256', '--kid', 'ec-1', '--public-key', ecFile], 1, /already exists/);
  fails(['key', 'create', '--db', db, '--app', 'demo', '--alg', 'RS256', '--kid', 'rsa-2', '--public-key', ecFile], 1, /not a PEM public key of that algorithm/);
  fails(['key', 'create', '--db', db, '--app', 'demo', '--alg', 'ES256', '--public-key', ecFile], 1, /needs --kid and --public-key/);
  fails(['key', 'create', '--db', db, '--app', 'demo', '--alg', 'ES256', '--kid', 'x', '--public-key', join(dir, 'absent.pem')], 1, /cannot read .*absent\.pem/);
  fails(['key', 'create', '--db', db, '--app', 'demo', '--alg', 'HS512'], 1, /unknown --alg 'HS512'/);
  fails(['key', 'create', '--db', db, '--app', 'demo', '--publishable', '--alg', 'ES256'], 1, /publishable keys take no --alg/);
});

test('bad input: exit 1 with a message, nothing created', () => {
  const before = ok(['key', 'list', '--db', db]).length;
  fails(['key', 'create', '--db', db, '--app', 'demo', '--actions', 'publish,fly'], 1, /unknown action 'fly'/);
  fails(['key', 'create', '--db', db, '--app', ''], 1, /--app must not be empty/);
  fails(['key', 'create', '--db', db, '--app', 'has space'], 1, /--app must be 1 to 64 printable ASCII characters/);
  fails(['key', 'create', '--db', db, '--app', 'a'.repeat(65)], 1, /--app must be 1 to 64/);
  fails(['key', 'create', '--db', db, '--app', 'demo', '--channels', 'a,,b'], 1, /empty item in --channels/);
  fails(['key', 'create', '--db', db, '--app', 'demo', '--channels', 'x'.repeat(257)], 1, /invalid channel pattern/);
  fails(['key', 'create', '--db', db, '--app', 'demo', '--origins', ''], 1, /empty item in --origins/);
  assert.equal(ok(['key', 'list', '--db', db]).length, before);
});

test('usage errors: exit 2; --help: exit 0 on stdout', () => {
  fails(['key', 'create', '--db', db], 2, /--app is required/);
  fails(['key', 'create', '--db', db, '--app', 'demo', '--colour', 'blue'], 2, /unknown option '--colour'/);
  fails(['key', 'create', '--db', db, '--app'], 2, /--app needs a value/);
  fails(['key', 'create', '--db', db, '--app', 'demo', '--publishable=yes'], 2, /takes no value/);
  fails(['key', 'list', '--db', db, 'extra'], 2, /unexpected argument 'extra'/);
  fails(['key', 'frobnicate'], 2, /unknown action 'frobnicate'/);
  fails(['key'], 2, /usage: rtm key/);
  for (const args of [['key', '--help'], ['key', 'create', '--help'], ['key', 'list', '--help'], ['key', 'revoke', '--help'], ['app', '--help']]) {
    const r = rtm(args);
    assert.equal(r.code, 0, args.join(' '));
    assert.match(r.stdout, /^usage: rtm (key|app)/);
  }
  assert.match(rtm(['key', 'create', '--help']).stdout, /--publishable/);
});

test('--db defaults to $RTM_DB, then var/rtm.db', () => {
  const envDb = join(dir, 'from-env.db');
  const k = ok(['key', 'create', '--app', 'demo'], { env: { RTM_DB: envDb } });
  assert.ok(existsSync(envDb));
  assert.ok(ok(['key', 'list'], { env: { RTM_DB: envDb } }).some((e) => e.id === k.id));

  const cwd = join(dir, 'work');
  mkdirSync(cwd);
  fails(['key', 'list'], 1, /directory var does not exist/, { cwd });
  mkdirSync(join(cwd, 'var'));
  const k2 = ok(['key', 'create', '--app', 'demo'], { cwd });
  assert.ok(existsSync(join(cwd, 'var', 'rtm.db')));
  assert.ok(ok(['key', 'list', '--db', join(cwd, 'var', 'rtm.db')]).some((e) => e.id === k2.id));
});

test('unusable databases are named and never overwritten', () => {
  fails(['key', 'list', '--db', join(dir, 'nope', 'rtm.db')], 1, /cannot create .*nope\/rtm\.db: directory .*nope does not exist/);
  const junk = join(dir, 'junk.db');
  const bytes = Buffer.alloc(4096, 0x5a);
  writeFileSync(junk, bytes);
  fails(['key', 'create', '--db', junk, '--app', 'demo'], 1, /junk\.db is not a usable database.*move it aside/);
  assert.deepEqual(readFileSync(junk), bytes);
  fails(['key', 'list', '--db', dir], 1, /is a directory/);
});

test('app get/set: settings as JSON, bad values refused', () => {
  const a = ok(['app', 'set', '--db', db, 'demo', 'duplicatePeer', 'replace']);
  assert.deepEqual(a, { name: 'demo', duplicatePeer: 'replace', resumeWindowMs: -1, maxConnections: 0 });
  assert.equal(ok(['app', 'set', '--db', db, 'demo', 'maxConnections', '5']).maxConnections, 5);
  assert.deepEqual(ok(['app', 'get', '--db', db, 'demo']), { name: 'demo', duplicatePeer: 'replace', resumeWindowMs: -1, maxConnections: 5 });
  assert.equal(ok(['app', 'set', '--db', db, 'fresh', 'duplicatePeer', 'allow']).name, 'fresh');
  fails(['app', 'set', '--db', db, 'demo', 'duplicatePeer', 'sometimes'], 1, /invalid setting 'duplicatePeer' = 'sometimes'/);
  fails(['app', 'set', '--db', db, 'demo', 'colour', 'blue'], 1, /invalid setting 'colour'/);
  fails(['app', 'get', '--db', db, 'nosuchapp'], 1, /no app named 'nosuchapp'/);
  fails(['app', 'set', '--db', db, 'demo', 'duplicatePeer'], 2, /usage: rtm app/);
  fails(['app', 'get', '--db', db, ''], 1, /must not be empty/);
  assert.equal(ok(['app', 'get', '--db', db, 'demo']).duplicatePeer, 'replace');
});
