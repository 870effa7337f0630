// redis.mjs: a real redis-server for a test, on a free loopback port, with no
// persistence (nothing written to disk), stopped by its PID.
//
//   const r = await startRedis();          // r.url = 'redis://127.0.0.1:PORT'
//   await r.cli('PUBSUB', 'CHANNELS');     // redis-cli against it, stdout as text
//   await r.kill9(); await r.start();      // crash and restart on the same port
//   await r.stop();
//
// `--enable-debug-command local` lets a test stall the server (DEBUG SLEEP).
import { spawn, execFile } from 'node:child_process';
import { freePort, sleep } from './rtmd.mjs';

export async function startRedis(opts = {}) {
  const r = { port: opts.port || await freePort(), proc: null, log: '' };
  r.url = `redis://127.0.0.1:${r.port}`;
  r.start = async () => {
    r.log = '';
    const args = ['--port', String(r.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--enable-debug-command', 'local', '--protected-mode', 'no', '--loglevel', 'warning'];
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    r.proc = proc;
    r.pid = proc.pid;
    r.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    const onData = (b) => { r.log += b.toString(); };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    const deadline = Date.now() + 10000;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error('redis-server exited at start:\n' + r.log);
      try {
        if ((await r.cli('PING')).trim() === 'PONG') break;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error('redis-server did not answer:\n' + r.log); }
      await sleep(25);
    }
    return r;
  };
  // Runs one command with redis-cli (raw output, one reply element per line).
  r.cli = (...args) => new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(r.port), '--raw', ...args], { timeout: 10000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
  r.lines = async (...args) => (await r.cli(...args)).split('\n').filter((l) => l.length > 0);
  r.stop = async (signal = 'SIGTERM') => {
    if (!r.proc || r.proc.exitCode !== null || r.proc.signalCode !== null) return r.exited;
    r.proc.kill(signal);
    const t = setTimeout(() => r.proc.kill('SIGKILL'), 5000);
    const res = await r.exited;
    clearTimeout(t);
    return res;
  };
  r.kill9 = () => r.stop('SIGKILL');
  await r.start();
  return r;
}
