// The server examples as real child processes: each prints where it listens, serves
// real TCP clients, and exits 0 on SIGTERM/SIGINT.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { within } from '../helpers.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const children = new Set<ChildProcess>();

afterEach(() => {
  for (const c of children) c.kill('SIGKILL');
  children.clear();
});

interface Started {
  child: ChildProcess;
  port: number;
  exited: Promise<number | null>;
  stderr: () => string;
}

/** Starts `examples/servers/<name>` and waits for its `listening on HOST:PORT` line. */
function startExample(name: string, args: string[] = []): Promise<Started> {
  const child = spawn(process.execPath, [`examples/servers/${name}`, '--port', '0', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${name} printed no address in 20 s: ${err}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^listening on 127\.0\.0\.1:(\d+)$/m.exec(out);
      if (m === null) return;
      clearTimeout(timer);
      resolve({ child, port: Number(m[1]), exited, stderr: () => err });
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before listening: ${err}`));
    });
  });
}

/** Sends `data` on a fresh connection, half-closes, and returns everything the server sent back. */
function exchange(port: number, data: Buffer | string, halfClose = true): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('no answer in 10 s'));
    }, 10_000);
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    sock.write(data);
    if (halfClose) sock.end();
  });
}

async function stop(s: Started, signal: NodeJS.Signals): Promise<number | null> {
  s.child.kill(signal);
  const code = await within(10_000, s.exited, `exit after ${signal}`).catch((e: unknown) => {
    throw new Error(`${(e as Error).message}: ${s.stderr()}`);
  });
  children.delete(s.child);
  return code;
}

describe.each(['echo.ts', 'echo-buffered.ts', 'echo-streams.ts'])('examples/servers/%s', (name) => {
  it('echoes every byte back, to several clients at once, and exits 0 on SIGTERM', async () => {
    const s = await startExample(name);
    const big = Buffer.alloc(300 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    const [a, b, c] = await Promise.all([exchange(s.port, 'hello'), exchange(s.port, big), exchange(s.port, Buffer.alloc(1))]);
    expect(a.toString()).toBe('hello');
    expect(b.equals(big)).toBe(true);
    expect(c.length).toBe(1);
    expect(await stop(s, 'SIGTERM')).toBe(0);
  });

  it('exits 0 on SIGINT with a client still connected', async () => {
    const s = await startExample(name);
    const sock = net.connect({ host: '127.0.0.1', port: s.port });
    const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
    sock.on('error', () => {});
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    sock.write('ping');
    await new Promise<void>((resolve) => sock.once('data', () => resolve()));
    expect(await stop(s, 'SIGINT')).toBe(0);
    await closed;
  });
});

describe('examples/servers/kv.ts and kv-client.ts', () => {
  function kvClient(port: number, ...args: string[]): Promise<{ code: number; out: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, ['examples/servers/kv-client.ts', '--port', String(port), ...args], { cwd: root, timeout: 20_000 }, (err, stdout) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, out: stdout.trim() });
      });
    });
  }

  it('serves GET/SET/DEL to the client tool and to pipelined raw commands', async () => {
    const s = await startExample('kv.ts');
    const [set, missing] = await Promise.all([kvClient(s.port, 'set', 'greeting', 'hello', 'world'), kvClient(s.port, 'get', 'missing')]);
    expect(set).toEqual({ code: 0, out: '' });
    expect(missing.code).toBe(1);
    expect(await kvClient(s.port, 'get', 'greeting')).toEqual({ code: 0, out: 'hello world' });
    expect(await kvClient(s.port, 'del', 'greeting')).toEqual({ code: 0, out: '' });
    const replies = await exchange(s.port, 'SET a 1\r\nSET b two words\nGET a\nGET b\nDEL a\nDEL a\nGET a\nFROB x\nGET\nQUIT\nGET b\n');
    expect(replies.toString().split('\n')).toEqual([
      'OK', 'OK', 'VALUE 1', 'VALUE two words', 'DELETED', 'NOT_FOUND', 'NOT_FOUND',
      'ERROR unknown command "FROB"', 'ERROR usage: GET <key>', 'BYE', '',
    ]);
    expect(await stop(s, 'SIGTERM')).toBe(0);
  });

  it('closes a connection whose line is longer than --max-line, and refuses clients beyond --max-connections', async () => {
    const s = await startExample('kv.ts', ['--max-line', '64', '--max-connections', '2']);
    const long = await exchange(s.port, `SET k ${'x'.repeat(200)}\nGET k\n`, false);
    expect(long.toString()).toBe('ERROR line too long (limit 64 bytes)\n');
    // Two idle clients hold both slots; a third one is turned away.
    const holders = [net.connect({ host: '127.0.0.1', port: s.port }), net.connect({ host: '127.0.0.1', port: s.port })];
    try {
      for (const h of holders) {
        h.on('error', () => {});
        h.write('GET nothing\n');
        await new Promise<void>((resolve) => h.once('data', () => resolve()));
      }
      expect((await exchange(s.port, 'GET k\n', false)).toString()).toBe('ERROR too many connections\n');
    } finally {
      for (const h of holders) h.destroy();
    }
    expect(await stop(s, 'SIGTERM')).toBe(0);
  });
});
