// postgres.mjs: a throwaway Postgres server for node tests (tests/lib/pg.sh
// does the work: initdb into a temporary folder, loopback port, stopped by PID).
//
//   const pg = startPostgres();            // one per test process, started on first call
//   const url = pg.createDb('t1');         // postgresql://rtm@127.0.0.1:PORT/t1 (no password)
//   pg.passwordFile                        // first line: the password
//   pg.halt(); pg.resume();                // stop the server and start it again (same port, same data)
//   pg.psqlJson(url, 'SELECT ...')         // rows as parsed JSON
//
// The server is stopped when the process exits (synchronously, by its PID).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const PG_SH = join(dirname(fileURLToPath(import.meta.url)), 'pg.sh');
let server = null;
let dbSeq = 0;

export function startPostgres() {
  if (server) return server;
  const dir = join(tmpdir(), `rtm-pg-${process.pid}-${Date.now()}`);
  const out = execFileSync(PG_SH, ['start', dir], { encoding: 'utf8' });
  const vars = Object.fromEntries(out.trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
  const s = {
    dir,
    url: vars.RTM_PG_URL,
    passwordFile: vars.RTM_PG_PASSWORD_FILE,
    pid: Number(vars.RTM_PG_PID),
    password: () => readFileSync(vars.RTM_PG_PASSWORD_FILE, 'utf8').split('\n')[0],
    // A fresh database (unique in this process) and its URL.
    createDb(name = `t${++dbSeq}`) {
      return execFileSync(PG_SH, ['createdb', dir, name], { encoding: 'utf8' }).trim();
    },
    halt() { execFileSync(PG_SH, ['halt', dir]); },
    resume() { execFileSync(PG_SH, ['resume', dir]); },
    // Runs a query over TCP with the password from the environment and
    // returns its rows as JSON.
    psqlJson(url, sql) {
      const q = `SELECT coalesce(json_agg(t), '[]'::json) FROM (${sql}) t`;
      const text = execFileSync('psql', ['-X', '-At', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', q],
        { encoding: 'utf8', env: { ...process.env, PGPASSWORD: s.password() } });
      return JSON.parse(text);
    },
    stop() {
      if (!server) return;
      server = null;
      try { execFileSync(PG_SH, ['stop', dir]); } catch { /* reported by pg.sh on stderr */ }
    },
  };
  server = s;
  process.on('exit', () => s.stop());
  return s;
}
