// librtm_abi.test.mjs: librtm.so exports exactly what rtm.h declares (every
// function there carries RTM_EXPORT; the rest of the library, libcommon
// included, is built with -fvisibility=hidden), and rtm.h's version macros
// match the soname and rtm.pc. Checked on the built library with nm, readelf
// and a program compiled against the header.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, BUILD } from '../lib/rtmd.mjs';

const header = readFileSync(join(ROOT, 'sdk-c', 'include', 'rtm.h'), 'utf8');
const soname = readdirSync(BUILD).find((f) => /^librtm\.so\.\d+$/.test(f));
const macro = (name) => {
  const m = new RegExp(`^#define ${name} (.+)$`, 'm').exec(header);
  assert.ok(m, `${name} is defined in rtm.h`);
  return m[1].trim();
};

test('librtm.so exports exactly the functions rtm.h declares', () => {
  assert.ok(soname, 'librtm.so.N is built');
  const declared = new Set();
  for (const m of header.matchAll(/^RTM_EXPORT [^(]*?\b(rtm_[a-z0-9_]+)\(/gm)) declared.add(m[1]);
  // a function declared without RTM_EXPORT would silently be hidden
  const bare = [...header.matchAll(/^(?!RTM_EXPORT )(?:const )?[a-z_]+ \**(rtm_[a-z0-9_]+)\(/gm)].map((m) => m[1]);
  assert.deepEqual(bare, [], 'every function in rtm.h carries RTM_EXPORT');
  assert.ok(declared.size >= 30, `functions found in rtm.h (${declared.size})`);
  const nm = execFileSync('nm', ['-D', '--defined-only', join(BUILD, soname)], { encoding: 'utf8' });
  const exported = new Set(nm.split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/).pop()));
  assert.deepEqual([...exported].filter((s) => !declared.has(s)).sort(), [], 'exported but not in rtm.h');
  assert.deepEqual([...declared].filter((s) => !exported.has(s)).sort(), [], 'in rtm.h but not exported');
});

test('rtm.h version macros match the soname and rtm.pc', () => {
  const [maj, min, pat] = ['RTM_VERSION_MAJOR', 'RTM_VERSION_MINOR', 'RTM_VERSION_PATCH'].map((n) => Number(macro(n)));
  const str = JSON.parse(macro('RTM_VERSION_STRING'));
  assert.equal(str, `${maj}.${min}.${pat}`);
  const dyn = execFileSync('readelf', ['-d', join(BUILD, soname)], { encoding: 'utf8' });
  assert.match(dyn, new RegExp(`\\(SONAME\\)\\s+Library soname: \\[librtm\\.so\\.${maj}\\]`));
  assert.equal(soname, `librtm.so.${maj}`);
  const pc = readFileSync(join(BUILD, 'rtm.pc'), 'utf8');
  assert.match(pc, new RegExp(`^Version: ${str.replace(/\./g, '\\.')}$`, 'm'));
  // the client's own loop is libev (sdk-c/src/loop.c), which has no .pc file:
  // rtm.pc must name it for a static link
  assert.match(dyn, /\(NEEDED\)\s+Shared library: \[libev\.so\.4\]/);
  assert.match(pc, /^Libs\.private: .*-lev\b/m);
});

test('a program built against rtm.h and librtm.so links the API, sees the version, and cannot reach an internal', () => {
  const dir = mkdtempSync(join(tmpdir(), 'librtm-abi-'));
  try {
    const ok = join(dir, 'ok.c');
    writeFileSync(ok, `#include <rtm.h>
#include <stdio.h>
int main(void) {
#if RTM_VERSION_NUMBER != ((RTM_VERSION_MAJOR << 16) | (RTM_VERSION_MINOR << 8) | RTM_VERSION_PATCH)
#error version number
#endif
  printf("%s %s\\n", RTM_VERSION_STRING, rtm_status_str(RTM_STATUS_OK));
  return 0;
}
`);
    // a sanitizer build of librtm (make asan) needs its runtime linked first
    const san = /libasan/.test(spawnSync('ldd', [join(BUILD, soname)], { encoding: 'utf8' }).stdout || '')
      ? ['-fsanitize=address,undefined'] : [];
    const cc = (src, out) => spawnSync('cc', [...san, '-I', join(ROOT, 'sdk-c', 'include'), src, '-o', out, '-L', BUILD, '-l:' + soname], { encoding: 'utf8' });
    let r = cc(ok, join(dir, 'ok'));
    assert.equal(r.status, 0, r.stderr);
    r = spawnSync(join(dir, 'ok'), [], { encoding: 'utf8', env: { ...process.env, LD_LIBRARY_PATH: BUILD } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim().split(' ')[0], JSON.parse(macro('RTM_VERSION_STRING')));
    // an internal of the library (libcommon's minting) is not there to link
    const bad = join(dir, 'bad.c');
    writeFileSync(bad, 'int rtm_mint(void); int main(void) { return rtm_mint(); }\n');
    r = cc(bad, join(dir, 'bad'));
    assert.notEqual(r.status, 0, 'rtm_mint must not link from librtm.so');
    assert.match(r.stderr, /undefined reference to `rtm_mint'/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
