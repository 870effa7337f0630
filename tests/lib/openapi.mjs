// openapi.mjs: schema/openapi.yaml as a response checker. Every backend reply
// a test receives through startRtmd().api() goes through checkResponse(), so
// an integration test that sees an undocumented status, error code or field
// fails, and the reference cannot drift from the daemon.
//
//   checkResponse('POST', '/v1/tokens', 200, 'application/json', text) // throws on a mismatch
//   observed  // Set of "METHOD /template STATUS" seen by this process
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import Ajv2020 from 'ajv/dist/2020.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const OPENAPI_PATH = join(ROOT, 'schema', 'openapi.yaml');
export const doc = YAML.parse(readFileSync(OPENAPI_PATH, 'utf8'));

// OpenAPI keywords (description, example...) sit next to schema keywords:
// strict mode would refuse them, so only unknown formats stay strict.
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addSchema(doc, 'openapi');

const ptr = (s) => s.replace(/~/g, '~0').replace(/\//g, '~1');

// Each documented path as a matcher: "{name}" is one percent-encoded segment.
export const templates = Object.keys(doc.paths).map((t) => ({
  template: t,
  re: new RegExp('^' + t.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+') + '$'),
}));

export function templateOf(path) {
  const p = path.split('?')[0];
  const m = templates.find((t) => t.re.test(p));
  return m ? m.template : null;
}

const validators = new Map();
function validator(ref) {
  if (!validators.has(ref)) validators.set(ref, ajv.compile({ $ref: ref }));
  return validators.get(ref);
}

export const observed = new Set();

// Returns the JSON pointer (into the document) of the response that documents
// this reply, or throws saying what is undocumented.
function responsePointer(method, path, status) {
  const t = templateOf(path);
  if (!t) {
    if (status !== 404) throw new Error(`${method} ${path} answered ${status}: the path is not in schema/openapi.yaml`);
    return '#/components/responses/NotFound';
  }
  const op = doc.paths[t][method.toLowerCase()];
  if (!op) {
    if (status !== 405) throw new Error(`${method} ${t} answered ${status}: the method is not in schema/openapi.yaml`);
    return '#/components/responses/MethodNotAllowed';
  }
  const r = op.responses[String(status)];
  if (!r) throw new Error(`${method} ${t} answered ${status}, which schema/openapi.yaml does not list for it`);
  if (r.$ref) return r.$ref;
  return `#/paths/${ptr(t)}/${method.toLowerCase()}/responses/${status}`;
}

export function resolveRef(pointer) {
  let node = doc;
  for (const part of pointer.replace(/^#\//, '').split('/'))
    node = node[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  return node;
}

export function checkResponse(method, path, status, contentType, text) {
  const pointer = responsePointer(method, path, status);
  const t = templateOf(path);
  observed.add(`${method.toUpperCase()} ${t || '*'} ${status}`);
  const response = resolveRef(pointer);
  const media = (contentType || '').split(';')[0].trim();
  const content = response.content || {};
  if (!content[media])
    throw new Error(`${method} ${path} ${status}: content type "${media}" is not documented (${Object.keys(content).join(', ')})`);
  const schemaRef = `openapi${pointer}/content/${ptr(media)}/schema`;
  let value = text;
  if (media === 'application/json') {
    try { value = JSON.parse(text); } catch { throw new Error(`${method} ${path} ${status}: the body is not JSON: ${text.slice(0, 200)}`); }
  }
  const v = validator(schemaRef);
  if (!v(value))
    throw new Error(`${method} ${path} ${status} does not match schema/openapi.yaml: ${ajv.errorsText(v.errors)}\n${text.slice(0, 500)}`);
}
