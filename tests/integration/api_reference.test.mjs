// The backend API reference (schema/openapi.yaml, docs/api.md) against the
// daemon: the routes rtmd serves are read from mint-api/http.c's route table,
// the error codes from the sources, and real replies from a real rtmd are
// validated (tests/lib/openapi.mjs, which also checks every reply any other
// integration test receives).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { startRtmd, rtmJson, ROOT } from '../lib/rtmd.mjs';
import { doc, checkResponse, observed, templateOf, resolveRef } from '../lib/openapi.mjs';

// { path, prefix, methods[], auth } from `static const struct route routes[]`.
function servedRoutes() {
  const src = readFileSync(join(ROOT, 'mint-api', 'http.c'), 'utf8');
  const table = /static const struct route routes\[\] = \{([\s\S]*?)\n\};/.exec(src);
  assert.ok(table, 'the route table in mint-api/http.c');
  const rows = [...table[1].matchAll(/\{\s*"([^"]+)",\s*(\d),\s*([M_A-Z| ]+),\s*(\d),\s*\w+\s*\}/g)];
  assert.ok(rows.length >= 5, 'route rows parsed');
  return rows.map(([, path, prefix, methods, auth]) => ({
    path, prefix: prefix === '1', auth: auth === '1',
    methods: methods.split('|').map((m) => m.trim().replace(/^M_/, '').toLowerCase()),
  }));
}

// The OpenAPI path of a route: a prefix route takes one path parameter.
function docPathOf(route) {
  if (!route.prefix) return route.path;
  const t = Object.keys(doc.paths).find((p) => p.startsWith(route.path) && /^\{[^}/]+\}$/.test(p.slice(route.path.length)));
  return t || null;
}

test('every route in mint-api/http.c is documented with its methods and auth, and nothing else is', () => {
  const routes = servedRoutes();
  const served = new Set();
  for (const r of routes) {
    const p = docPathOf(r);
    assert.ok(p && doc.paths[p], `route ${r.path}${r.prefix ? '{arg}' : ''} is in schema/openapi.yaml`);
    for (const m of r.methods) {
      const op = doc.paths[p][m];
      assert.ok(op, `${m.toUpperCase()} ${p} is documented`);
      served.add(`${m} ${p}`);
      const security = op.security ?? doc.security;
      const needsAuth = security.length > 0 && Object.keys(security[0]).length > 0;
      assert.equal(needsAuth, r.auth, `${m.toUpperCase()} ${p}: auth in the document matches the route table`);
      if (r.auth) assert.ok(op.responses['401'], `${m.toUpperCase()} ${p} documents 401`);
    }
  }
  for (const [p, item] of Object.entries(doc.paths))
    for (const m of Object.keys(item).filter((k) => ['get', 'post', 'put', 'delete', 'patch'].includes(k)))
      assert.ok(served.has(`${m} ${p}`), `${m.toUpperCase()} ${p} in the document is served by rtmd`);
  // the prose reference names every path too
  const md = readFileSync(join(ROOT, 'docs', 'api.md'), 'utf8');
  for (const p of Object.keys(doc.paths)) assert.ok(md.includes(p), `docs/api.md covers ${p}`);
});

test('every error code the backend sources reply with is documented with its HTTP status', () => {
  // Error codes and their HTTP statuses live in one table (common/protocol.c:
  // [RTM_WIRE_X] = {"code", status, ...}); the sources name the entries.
  const table = new Map();
  const protoSrc = readFileSync(join(ROOT, 'common', 'protocol.c'), 'utf8');
  for (const m of protoSrc.matchAll(/\[(RTM_WIRE_[A-Z_]+)\]\s*=\s*\{\s*"([a-z_]+)",\s*(\d+),/g)) table.set(m[1], { code: m[2], status: Number(m[3]) || 500 });
  assert.ok(table.size >= 20, `error table entries found in common/protocol.c (${table.size})`);
  const files = readdirSync(join(ROOT, 'mint-api')).filter((f) => f.endsWith('.c'));
  const pairs = new Set();
  const use = (id) => { const e = table.get(id); assert.ok(e, `${id} is in the error table`); pairs.add(`${e.status} ${e.code}`); };
  for (const f of files) {
    const src = readFileSync(join(ROOT, 'mint-api', f), 'utf8');
    for (const m of src.matchAll(/(?:mint_reply_error|conn_error)\(\s*\w+,\s*(RTM_WIRE_[A-Z_]+)/g)) use(m[1]);
  }
  assert.ok(pairs.size >= 8, `error replies found in mint-api/ (${pairs.size})`);
  // The shared minting rules (common/mint.c) fail with table entries too; tokens.c replies with them.
  const mintSrc = readFileSync(join(ROOT, 'common', 'mint.c'), 'utf8');
  for (const m of mintSrc.matchAll(/FAIL\((RTM_WIRE_[A-Z_]+)/g)) use(m[1]);
  const documented = new Set();
  const codesOf = (schema) => {
    const out = [];
    const walk = (s) => {
      if (!s || typeof s !== 'object') return;
      if (s.$ref) walk(resolveRef(s.$ref));
      for (const k of ['allOf', 'oneOf', 'anyOf']) (s[k] || []).forEach(walk);
      const e = s.properties && s.properties.error;
      if (e && e.const) out.push(e.const);
      if (e && e.enum && !s.allOf) out.push(...e.enum);
    };
    walk(schema);
    // a narrowed schema lists its own codes; the base Error alone lists them all
    return out;
  };
  const addResponse = (status, r) => {
    r = r.$ref ? resolveRef(r.$ref) : r;
    const schema = r.content && r.content['application/json'] && r.content['application/json'].schema;
    const codes = schema ? narrowest(schema) : [];
    for (const c of codes) documented.add(`${status} ${c}`);
  };
  const narrowest = (schema) => {
    const s = schema.$ref ? resolveRef(schema.$ref) : schema;
    const own = s.properties && s.properties.error;
    if (own && own.const) return [own.const];
    if (own && own.enum) return own.enum;
    return codesOf(s);
  };
  for (const item of Object.values(doc.paths))
    for (const op of Object.values(item))
      for (const [status, r] of Object.entries(op.responses || {})) addResponse(status, r);
  addResponse('404', doc.components.responses.NotFound);
  addResponse('405', doc.components.responses.MethodNotAllowed);
  const enumAll = new Set(doc.components.schemas.Error.properties.error.enum);
  for (const p of pairs) {
    assert.ok(documented.has(p), `error "${p}" (status code) is documented in schema/openapi.yaml`);
    assert.ok(enumAll.has(p.split(' ')[1]), `${p} is in the Error code list`);
  }
  const md = readFileSync(join(ROOT, 'docs', 'api.md'), 'utf8');
  for (const c of enumAll) assert.ok(md.includes('`' + c + '`'), `docs/api.md explains ${c}`);
});

test('the checker refuses an undocumented field, status, code and path', () => {
  assert.throws(() => checkResponse('POST', '/v1/tokens', 200, 'application/json', '{"token":"a.b.c","expiresAt":1,"extra":1}'), /does not match/);
  assert.throws(() => checkResponse('POST', '/v1/tokens', 202, 'application/json', '{}'), /does not list/);
  assert.throws(() => checkResponse('POST', '/v1/tokens', 400, 'application/json', '{"error":"unauthorized","message":"x"}'), /does not match/);
  assert.throws(() => checkResponse('GET', '/v2/nothing', 200, 'application/json', '{}'), /not in schema/);
  assert.throws(() => checkResponse('GET', '/healthz', 200, 'text/html', 'ok'), /not documented/);
  checkResponse('POST', '/v1/tokens', 400, 'application/json', '{"error":"invalid_request","message":"x"}');
});

// ---- real replies from a real rtmd cover every documented status we can cause ----

let d, mintOnly;
before(async () => {
  d = await startRtmd();
  mintOnly = await startRtmd({ args: ['--role', 'mint'] });
});
after(async () => {
  await d?.cleanup();
  await mintOnly?.cleanup();
});

// A raw request (node's fetch cannot send a chunked or lying Content-Length body).
function raw(port, method, path, headers, body) {
  return new Promise((resolve, reject) => {
    const rq = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.on('data', (b) => { text += b; });
      res.on('end', () => resolve({ status: res.statusCode, text, type: res.headers['content-type'] }));
    });
    rq.on('error', reject);
    if (body !== undefined) rq.write(body);
    rq.end();
  });
}

test('every documented operation and status that a test can cause is seen, and validates', async () => {
  const auth = { authorization: `Bearer ${d.key.secret}` };
  const narrow = rtmJson(['key', 'create', '--db', d.db, '--app', d.app, '--channels', 'lobby', '--actions', 'subscribe']);
  const as = { auth: narrow.secret };
  // tokens
  const { token } = await d.mint({ peerId: 'ref-a', channels: ['lobby'] });
  await d.api('POST', '/v1/tokens', { peerId: '' });
  await d.api('POST', '/v1/tokens', { peerId: 'a' }, { auth: null });
  await d.api('POST', '/v1/tokens', { peerId: 'a', channels: ['other'] }, as);
  await d.api('POST', '/v1/tokens', { peerId: 'a', permissions: ['send'] }, as);
  // turn-credentials
  await d.api('POST', '/v1/turn-credentials', {});
  await d.api('POST', '/v1/turn-credentials', { ttl: 0 });
  await d.api('POST', '/v1/turn-credentials', {}, { auth: null });
  // revocations
  await d.api('POST', '/v1/revocations', { jti: 'ref-jti' });
  await d.api('POST', '/v1/revocations', { peerId: 'ref-gone' });
  await d.api('POST', '/v1/revocations', {});
  await d.api('POST', '/v1/revocations', { jti: 'x' }, { auth: null });
  // live state
  const c = await d.connect(token);
  await c.request({ type: 'subscribe', channel: 'lobby' });
  await d.api('GET', '/v1/peers');
  await d.api('GET', '/v1/peers?channel=lobby');
  await d.api('GET', '/v1/peers?channel=' + 'x'.repeat(300));
  await d.api('GET', '/v1/peers', undefined, { auth: null });
  await d.api('POST', '/v1/publish', { channel: 'lobby', data: { hi: 1 } });
  await d.api('POST', '/v1/publish', { channel: 'lobby' });
  await d.api('POST', '/v1/publish', { channel: 'lobby', data: 1 }, { auth: null });
  await d.api('POST', '/v1/publish', { channel: 'lobby', data: 1 }, as);
  await d.api('DELETE', '/v1/peers/ref-a');
  await d.api('DELETE', '/v1/peers/' + encodeURIComponent('bad peer'));
  await d.api('DELETE', '/v1/peers/x', undefined, { auth: null });
  await d.api('DELETE', '/v1/peers?peerId=' + encodeURIComponent('ref/b'));
  await d.api('DELETE', '/v1/peers');
  await d.api('DELETE', '/v1/peers?peerId=x', undefined, { auth: null });
  await c.closed;
  await d.api('GET', '/v1/sessions');
  await d.api('GET', '/v1/sessions?peerId=ref-a&limit=5');
  await d.api('GET', '/v1/sessions?limit=0');
  await d.api('GET', '/v1/sessions', undefined, { auth: null });
  // discovery and operations
  await d.api('GET', '/.well-known/jwks.json', undefined, { auth: null });
  await d.api('GET', '/healthz', undefined, { auth: null });
  await d.api('GET', '/metrics', undefined, { auth: null });
  // without a broker in the process
  await mintOnly.api('GET', '/v1/peers');
  await mintOnly.api('DELETE', '/v1/peers/x');
  await mintOnly.api('DELETE', '/v1/peers?peerId=x');
  await mintOnly.api('POST', '/v1/publish', { channel: 'c', data: 1 });
  // routing
  await d.api('GET', '/v1/nothing-here');
  await d.api('GET', '/v1/tokens');
  // bodies refused on their headers: over 32 KB declared, and chunked
  for (const p of ['/v1/tokens', '/v1/turn-credentials', '/v1/revocations', '/v1/publish']) {
    let r = await raw(d.backendPort, 'POST', p, { ...auth, 'content-type': 'application/json', 'content-length': String(40000) }, '');
    checkResponse('POST', p, r.status, r.type, r.text);
    r = await raw(d.backendPort, 'POST', p, { ...auth, 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, '{}');
    checkResponse('POST', p, r.status, r.type, r.text);
  }

  // Statuses no test can cause on a healthy daemon: a failing store, signer or
  // allocator (500, 503 on /healthz), a daemon without a TURN secret, which
  // rtmd refuses to start (503 turn_unavailable), a full or locked store
  // (503 on /v1/revocations: tests/integration/fault_store.test.mjs), a store
  // so slow that 4,096 kicks and publishes wait for it (503 store_busy), or
  // Redis down in cluster mode (503 cluster_unavailable). Fault injection owns those.
  const busy = (p) => p === '/v1/publish' || p === '/v1/peers/{peerId}' || p === '/v1/peers';
  const unreachable = (m, p, s) => s === '500' || (p === '/healthz' && s === '503') ||
    (p === '/v1/turn-credentials' && s === '503') || (p === '/v1/revocations' && s === '503') || (busy(p) && s === '503');
  const missing = [];
  for (const [p, item] of Object.entries(doc.paths))
    for (const [m, op] of Object.entries(item))
      for (const s of Object.keys(op.responses))
        if (!unreachable(m, p, s) && !observed.has(`${m.toUpperCase()} ${p} ${s}`)) missing.push(`${m.toUpperCase()} ${p} ${s}`);
  assert.deepEqual(missing, [], 'documented replies never seen');
  assert.ok(observed.has('GET * 404') && observed.has('GET /v1/tokens 405'), 'routing errors seen');
  assert.equal(templateOf('/v1/peers/a%2Fb'), '/v1/peers/{peerId}');
});
