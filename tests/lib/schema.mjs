// schema.mjs: validates frames against the JSON Schemas in schema/frames/.
//
//   const frames = frameChecker();
//   frames.track(d);            // every client d.open()/d.connect() makes is recorded
//   ... test ...
//   frames.assertValid();       // every frame the broker sent matched its schema
//
// A server frame's schema is schema/frames/server.<type>.json; a frame whose
// type has no schema fails, so a new frame type needs its schema first.
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './rtmd.mjs';

const DIR = join(ROOT, 'schema', 'frames');
let compiled = null;

function load() {
  if (compiled) return compiled;
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  addFormats(ajv);
  compiled = { server: {}, client: {} };
  for (const f of readdirSync(DIR).filter((n) => n.endsWith('.json'))) {
    const m = /^(server|client)\.(.+)\.json$/.exec(f);
    if (!m) continue;
    compiled[m[1]][m[2]] = ajv.compile(JSON.parse(readFileSync(join(DIR, f), 'utf8')));
  }
  return compiled;
}

// Returns null when valid, else a one-line description of what is wrong.
export function checkFrame(frame, side = 'server') {
  const s = load()[side];
  if (!frame || typeof frame !== 'object' || Array.isArray(frame)) return `not an object: ${JSON.stringify(frame)}`;
  if (frame.type === '__unparsable__') return `not JSON: ${String(frame.raw).slice(0, 200)}`;
  const v = s[frame.type];
  if (!v) return `no schema for ${side} frame type ${JSON.stringify(frame.type)}`;
  if (v(frame)) return null;
  return `${frame.type}: ${v.errors.map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ')} in ${JSON.stringify(frame).slice(0, 300)}`;
}

export function frameChecker() {
  const clients = [];
  return {
    clients,
    track(d) {
      const open = d.open;
      d.open = async (...args) => {
        const c = await open(...args);
        clients.push(c);
        return c;
      };
      return d;
    },
    add(c) { clients.push(c); return c; },
    // Throws listing every invalid frame; returns how many frames were checked.
    assertValid() {
      const bad = [];
      let n = 0;
      for (const c of clients) {
        for (const f of c.all) {
          n++;
          const e = checkFrame(f);
          if (e) bad.push(e);
        }
      }
      if (bad.length) throw new Error(`${bad.length} frame(s) do not match schema/frames:\n` + bad.join('\n'));
      return n;
    },
  };
}
