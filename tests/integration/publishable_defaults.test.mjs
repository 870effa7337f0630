// publishable_defaults.test.mjs: issue 11 defect 10, with the real `rtm key`
// tool and a real rtmd. A publishable key is public (it ships in page
// source): `rtm key create --publishable` grants no `send` unless --actions
// asks for it, and warns on stderr when no --origins list is given.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startRtmd, RTM } from '../lib/rtmd.mjs';

let d;
before(async () => { d = await startRtmd(); });
after(async () => { await d.cleanup(); });

function rtm(args) {
  const r = spawnSync(RTM, args, { encoding: 'utf8', env: { ...process.env, RTM_DB: '' }, timeout: 30000 });
  let json = null;
  try { json = JSON.parse(r.stdout); } catch { /* not JSON */ }
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json };
}
const listed = (id) => rtm(['key', 'list', '--db', d.db]).json.find((k) => k.id === id);

test('--publishable without --actions: no send; without --origins: a warning', async () => {
  const r = rtm(['key', 'create', '--db', d.db, '--app', d.app, '--publishable']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.json.id, /^pk_/);
  assert.match(r.stderr, /warning: publishable key pk_[0-9a-f]+ has no --origins list/);
  assert.deepEqual(listed(r.json.id).actions, ['publish', 'subscribe', 'presence']);
  // and the broker enforces it: a session on this key cannot send
  const c = await d.open(`?key=${r.json.id}`);
  await c.next('welcome');
  const e = await c.request({ type: 'send', to: 'someone', data: 1 });
  assert.equal(e.type, 'error');
  assert.equal(e.code, 'action_not_permitted');
  await c.close();
});

test('send when asked for; no warning with an Origin list', () => {
  const r = rtm(['key', 'create', '--db', d.db, '--app', d.app, '--publishable', '--actions', 'subscribe,send',
    '--origins', 'https://app.example']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.deepEqual(listed(r.json.id).actions, ['subscribe', 'send']);
});

test('secret keys keep every action by default and get no warning', () => {
  const r = rtm(['key', 'create', '--db', d.db, '--app', d.app]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.deepEqual(listed(r.json.id).actions, ['publish', 'subscribe', 'presence', 'send']);
});
