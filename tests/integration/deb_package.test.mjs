// The Debian package (make deb -> scripts/mkdeb.sh): built from this build,
// unpacked with dpkg-deb -x into a temporary root (nothing is installed on
// the machine), its contents, control fields, man pages and systemd unit
// checked (systemd-analyze verify where available), lintian's findings
// matched against the explained list in docs/PACKAGING.md, and the packaged
// rtmd started from that root with the packaged config on loopback ports:
// a key made with the packaged rtm, a token minted, a session welcomed, the
// packaged web files served, and SIGTERM draining.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, cpSync, mkdirSync, copyFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BUILD, ROOT, RTMD, freePort, openClient, sleep } from '../lib/rtmd.mjs';

const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
let deb, dir, root, MA;
const version = execFileSync(RTMD, ['--version'], { encoding: 'utf8' }).trim().split(' ')[1];

before(() => {
  const out = execFileSync(join(ROOT, 'scripts', 'mkdeb.sh'), [BUILD], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n');
  deb = resolve(ROOT, out.at(-1));
  assert.match(deb, new RegExp(`rtm_${version.replace(/\./g, '\\.')}_amd64\\.deb$`));
  dir = mkdtempSync(join(tmpdir(), 'rtm-deb-'));
  root = join(dir, 'root');
  execFileSync('dpkg-deb', ['-x', deb, root]);
  MA = execFileSync('sh', ['-c', 'dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch'], { encoding: 'utf8' }).trim();
});
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

test('control fields, maintainer scripts and the file list', () => {
  const field = (f) => execFileSync('dpkg-deb', ['-f', deb, f], { encoding: 'utf8' }).trim();
  assert.equal(field('Package'), 'rtm');
  assert.equal(field('Version'), version);
  assert.equal(field('Architecture'), 'amd64');
  const depends = field('Depends');
  for (const d of ['libwebsockets17', 'libwebsockets-evlib-ev', 'libev4', 'libjwt0', 'libjansson4', 'libssl3', 'libsqlite3-0', 'adduser']) assert.match(depends, new RegExp(`\\b${d}\\b`), `Depends: ${d}`);
  const ctl = join(dir, 'ctl');
  execFileSync('dpkg-deb', ['-e', deb, ctl]);
  assert.equal(readFileSync(join(ctl, 'conffiles'), 'utf8').trim(), '/etc/rtm/rtm.json');
  assert.match(readFileSync(join(ctl, 'shlibs'), 'utf8'), /^librtm 1 rtm \(>= /);
  assert.match(readFileSync(join(ctl, 'triggers'), 'utf8'), /activate-noawait ldconfig/);
  for (const s of ['postinst', 'prerm', 'postrm']) {
    assert.ok(statSync(join(ctl, s)).mode & 0o100, `${s} is executable`);
    assert.equal(spawnSync('sh', ['-n', join(ctl, s)]).status, 0, `${s} parses`);
  }
  const postinst = readFileSync(join(ctl, 'postinst'), 'utf8');
  assert.match(postinst, /RTM_CREATE_KEY/, 'the first key only when asked');
  assert.match(postinst, /adduser --system/);

  const files = {
    'usr/sbin/rtmd': 0o755, 'usr/bin/rtm': 0o755, [`usr/lib/${MA}/librtm.so.1`]: 0o644, [`usr/lib/${MA}/librtm.a`]: 0o644,
    'usr/include/rtm.h': 0o644, [`usr/lib/${MA}/pkgconfig/rtm.pc`]: 0o644, 'etc/rtm/rtm.json': 0o644,
    'lib/systemd/system/rtmd.service': 0o644, 'usr/share/man/man8/rtmd.8.gz': 0o644, 'usr/share/man/man1/rtm.1.gz': 0o644,
    'usr/share/rtm/web/index.html': 0o644, 'usr/share/rtm/web/sdk/rtm.js': 0o644, 'usr/share/doc/rtm/copyright': 0o644,
    'usr/share/doc/rtm/changelog.gz': 0o644,
  };
  for (const [f, mode] of Object.entries(files)) {
    assert.ok(existsSync(join(root, f)), `${f} in the package`);
    assert.equal(statSync(join(root, f)).mode & 0o777, mode, `${f} mode`);
  }
  assert.equal(readlinkSync(join(root, `usr/lib/${MA}/librtm.so`)), 'librtm.so.1');
  assert.ok(lstatSync(join(root, `usr/lib/${MA}/librtm.so`)).isSymbolicLink());
  const pc = readFileSync(join(root, `usr/lib/${MA}/pkgconfig/rtm.pc`), 'utf8');
  assert.match(pc, /^prefix=\/usr$/m);
  assert.match(pc, new RegExp(`^libdir=\\$\\{prefix\\}/lib/${MA}$`, 'm'));
  // the library's soname and that the binaries are stripped
  assert.match(execFileSync('objdump', ['-p', join(root, `usr/lib/${MA}/librtm.so.1`)], { encoding: 'utf8' }), /SONAME\s+librtm\.so\.1/);
  assert.doesNotMatch(execFileSync('file', [join(root, 'usr/sbin/rtmd')], { encoding: 'utf8' }), /not stripped/);
});

test('man pages are generated from --help', () => {
  const man8 = gunzipSync(readFileSync(join(root, 'usr/share/man/man8/rtmd.8.gz'))).toString();
  assert.match(man8, /^\.TH RTMD "8"/m);
  const help = execFileSync(RTMD, ['--help'], { encoding: 'utf8' });
  for (const opt of help.matchAll(/^ {2}--([a-z][a-z0-9-]+)/gm))
    assert.ok(man8.includes(opt[1].replace(/-/g, '\\-')), `rtmd(8) documents --${opt[1]}`);
  const man1 = gunzipSync(readFileSync(join(root, 'usr/share/man/man1/rtm.1.gz'))).toString();
  assert.match(man1, /^\.TH RTM "1"/m);
  for (const cmd of ['key', 'token', 'sub', 'pub', 'peers', 'bench']) assert.match(man1, new RegExp(`\\b${cmd}\\b`), `rtm(1) lists ${cmd}`);
});

test('the systemd unit: its own user, the packaged paths, hardening, drain on stop, reload on SIGHUP', () => {
  const unit = readFileSync(join(root, 'lib/systemd/system/rtmd.service'), 'utf8');
  const has = (line) => assert.match(unit, new RegExp(`^${line.replace(/[$()]/g, '\\$&')}$`, 'm'), line);
  has('User=rtm');
  has('ExecStart=/usr/sbin/rtmd --config /etc/rtm/rtm.json');
  has('ExecReload=/bin/kill -HUP $MAINPID');
  has('KillSignal=SIGTERM');
  has('StateDirectory=rtm');
  has('ProtectSystem=strict');
  has('ReadWritePaths=/var/lib/rtm');
  has('NoNewPrivileges=yes');
  has('ProtectHome=yes');
  has('PrivateTmp=yes');
  has('CapabilityBoundingSet=CAP_NET_BIND_SERVICE');
  // the packaged settings point at the unit's directories
  const cfg = JSON.parse(readFileSync(join(root, 'etc/rtm/rtm.json'), 'utf8'));
  assert.equal(cfg.db, '/var/lib/rtm/rtm.db');
  assert.equal(cfg['web-root'], '/usr/share/rtm/web');
  assert.equal(cfg['demo-token'], false);
  assert.ok(!('turn-secrets' in cfg), 'no secret in the packaged config');

  if (!have('systemd-analyze')) {
    process.stderr.write('# systemd-analyze not installed: unit verification skipped\n');
    return;
  }
  // A root with the unit, what it executes and the host's standard units.
  const v = join(dir, 'verify');
  mkdirSync(join(v, 'lib/systemd'), { recursive: true });
  mkdirSync(join(v, 'bin'), { recursive: true });
  mkdirSync(join(v, 'usr/sbin'), { recursive: true });
  cpSync('/lib/systemd/system', join(v, 'lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
  copyFileSync(join(root, 'lib/systemd/system/rtmd.service'), join(v, 'lib/systemd/system/rtmd.service'));
  copyFileSync('/bin/kill', join(v, 'bin/kill'));
  copyFileSync(join(root, 'usr/sbin/rtmd'), join(v, 'usr/sbin/rtmd'));
  const r = spawnSync('systemd-analyze', ['verify', `--root=${v}`, '--man=no', '/lib/systemd/system/rtmd.service'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal((r.stdout + r.stderr).trim(), '', 'systemd-analyze verify says nothing');
});

test('lintian finds no error, and only the warnings docs/PACKAGING.md explains', (t) => {
  if (!have('lintian')) { t.skip('lintian not installed'); return; }
  const r = spawnSync('lintian', [deb], { encoding: 'utf8' });
  const tags = (r.stdout + r.stderr).split('\n').filter((l) => /^[EWIXP]: /.test(l));
  assert.deepEqual(tags.filter((l) => l.startsWith('E: ')), [], 'no lintian error');
  const explained = readFileSync(join(ROOT, 'docs', 'PACKAGING.md'), 'utf8');
  for (const w of tags.filter((l) => l.startsWith('W: '))) {
    const tag = w.split(' ')[2];
    assert.ok(explained.includes('`' + tag + '`'), `lintian warning ${tag} is explained in docs/PACKAGING.md`);
  }
});

test('the packaged rtmd runs from the unpacked root with the packaged config', async () => {
  const state = join(dir, 'state');
  mkdirSync(state);
  const db = join(state, 'rtm.db');
  const key = JSON.parse(execFileSync(join(root, 'usr/bin/rtm'), ['key', 'create', '--db', db, '--app', 'pkg'], { encoding: 'utf8' }));
  const pub = await freePort(), back = await freePort();
  const proc = spawn(join(root, 'usr/sbin/rtmd'), ['--config', join(root, 'etc/rtm/rtm.json'),
    '--public', `127.0.0.1:${pub}`, '--backend', `127.0.0.1:${back}`, '--db', db,
    '--web-root', join(root, 'usr/share/rtm/web')], {
    env: { ...process.env, RTM_TURN_SECRETS: 'pkg-test-turn-secret' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stdout.on('data', (b) => { log += b; });
  proc.stderr.on('data', (b) => { log += b; });
  const exited = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));
  try {
    for (let i = 0; i < 200 && (log.match(/listener ready/g) || []).length < 2; i++) await sleep(25);
    assert.equal((log.match(/listener ready/g) || []).length, 2, log);
    const res = await fetch(`http://127.0.0.1:${back}/v1/tokens`, {
      method: 'POST', headers: { authorization: `Bearer ${key.secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ peerId: 'packaged' }),
    });
    assert.equal(res.status, 200);
    const { token } = await res.json();
    const c = await openClient(`ws://127.0.0.1:${pub}/v1?token=${encodeURIComponent(token)}`);
    const w = await c.next('welcome');
    assert.equal(w.peerId, 'packaged');
    const js = await fetch(`http://127.0.0.1:${pub}/sdk/rtm.js`);
    assert.equal(js.status, 200, 'the packaged web files are served');
    await js.text();
    // stop as systemd does: SIGTERM drains (going_away, then 1001)
    proc.kill('SIGTERM');
    const ga = await c.next('going_away');
    assert.ok(ga);
    const closed = await c.closed;
    assert.equal(closed.code, 1001);
    const r = await exited;
    assert.equal(r.code, 0);
    assert.match(log, /SIGTERM received, draining sessions/);
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  }
});
