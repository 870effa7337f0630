// broker_util.mjs: helpers shared by the broker_*.test.mjs files: signing
// tokens locally (to build bad ones the mint API would refuse), reading a
// token's claims, expecting a close without a welcome, and the end of a
// daemon whose frames and tokens a file checked.
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { sleep } from '../lib/rtmd.mjs';

export const b64u = (buf) => Buffer.from(buf).toString('base64url');

// Signs claims with HS256 (or whatever header.alg says, with an HMAC anyway:
// that is what a forger does). key = {id, secret}.
export function signToken(key, claims, { header = {}, secret = key.secret, sign = true } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const h = { alg: 'HS256', typ: 'JWT', kid: key.id, ...header };
  const c = {
    sub: 'peer-' + randomBytes(4).toString('hex'), iat: now, exp: now + 600,
    jti: randomBytes(16).toString('hex'), ...claims,
  };
  for (const k of Object.keys(c)) if (c[k] === undefined) delete c[k];
  const body = `${b64u(JSON.stringify(h))}.${b64u(JSON.stringify(c))}`;
  if (!sign) return `${body}.`;
  return `${body}.${b64u(createHmac('sha256', secret).update(body).digest())}`;
}

export function claimsOf(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

// Opens /v1<query> and resolves with the close {code, reason} and the frames
// received before it (a refused connection must receive none).
export async function expectClose(d, query, opts = {}, timeoutMs = 3000) {
  const c = await d.open(query, opts);
  const t = setTimeout(() => c.terminate(), timeoutMs);
  const info = await c.closed;
  clearTimeout(t);
  return { ...info, frames: c.all };
}

// Polls fn until it returns a truthy value (bounded), returns that value or the last one.
export async function until(fn, { timeoutMs = 3000, stepMs = 50 } = {}) {
  const end = Date.now() + timeoutMs;
  let v;
  while (Date.now() < end) {
    v = await fn();
    if (v) return v;
    await sleep(stepMs);
  }
  return v;
}

// Stops d after its file: every frame it sent matched its schema (frames, a
// frameChecker), no token of used has its signature in d's log, and no
// sanitizer complained.
export async function endCheckedDaemon(d, frames, used) {
  try {
    frames.assertValid();
    for (const t of used) assert.ok(!d.log.includes(t.split('.')[2]), 'a token signature appears in the log');
  } finally { await d.cleanup(); }
  assert.doesNotMatch(d.log, /ERROR: (Address|Leak)Sanitizer|runtime error:/);
}
