// The command-runner example end to end: the server runs as a child process (and once
// in-process through serve()), real `ws` clients talk to it, and every child it
// starts is checked in /proc to be gone when it should be.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { run } from '../../src/index.ts';
import { serve } from '../../examples/servers/runner.ts';
import { pollUntil, isDead, procState } from './helpers.ts';
import { pollOrThrow } from '../helpers.ts';

const SERVER = fileURLToPath(new URL('../../examples/servers/runner.ts', import.meta.url));

interface Msg {
  id?: string | number;
  started?: { pid: number };
  stream?: 'stdout' | 'stderr';
  data?: string;
  exit?: { returncode: number; signal: string | null; timedOut: boolean };
  error?: string;
  limit?: number;
}

interface ServerProcess {
  child: ChildProcessWithoutNullStreams;
  url: string;
  err: string[];
  exited: Promise<number | null>;
}

const children: ChildProcessWithoutNullStreams[] = [];
const clients: WebSocket[] = [];
const pids: number[] = [];

afterEach(() => {
  for (const ws of clients.splice(0)) ws.terminate();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  // A run the test did not finish must not outlive it (the server is gone by now).
  for (const pid of pids.splice(0)) {
    if (!isDead(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});


/** Starts the example as `node runner.ts --port 0 ...flags` and waits for its `listening on` line. */
async function startServer(...flags: string[]): Promise<ServerProcess> {
  const child = spawn(process.execPath, [SERVER, '--host', '127.0.0.1', '--port', '0', ...flags], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  const out: string[] = [];
  const err: string[] = [];
  const lines = (into: string[]) => {
    let rest = '';
    return (chunk: Buffer): void => {
      const parts = (rest + chunk.toString()).split('\n');
      rest = parts.pop()!;
      into.push(...parts);
    };
  };
  child.stdout.on('data', lines(out));
  child.stderr.on('data', lines(err));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await pollOrThrow(() => out.length > 0 || child.exitCode !== null, 20_000, 'the runner to listen');
  const m = /^listening on (127\.0\.0\.1):(\d+)$/.exec(out[0] ?? '');
  if (m === null) throw new Error(`unexpected first line ${JSON.stringify(out[0])}; stderr: ${err.join('\n')}`);
  return { child, url: `ws://${m[1]}:${m[2]}/`, err, exited };
}

/** A `ws` client that collects every message, parsed. */
class Client {
  readonly ws: WebSocket;
  readonly messages: Msg[] = [];
  closeCode: number | null = null;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data) => this.messages.push(JSON.parse(String(data)) as Msg));
    ws.on('close', (code) => (this.closeCode = code));
  }

  static async open(url: string): Promise<Client> {
    const ws = new WebSocket(url);
    clients.push(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new Client(ws);
  }

  send(request: object | string): void {
    this.ws.send(typeof request === 'string' ? request : JSON.stringify(request));
  }

  of(id: string | number): Msg[] {
    return this.messages.filter((m) => m.id === id);
  }

  /** Waits for a message about `id` that `pred` accepts. */
  async next(id: string | number, pred: (m: Msg) => boolean, ms = 10_000, what = 'a message'): Promise<Msg> {
    let found: Msg | undefined;
    await pollOrThrow(() => (found = this.of(id).find(pred)) !== undefined, ms, `${what} for run ${JSON.stringify(id)}`);
    return found!;
  }

  /** The pid the run reported, remembered for cleanup. */
  async pid(id: string | number): Promise<number> {
    const pid = (await this.next(id, (m) => m.started !== undefined, 10_000, 'started')).started!.pid;
    pids.push(pid);
    return pid;
  }

  async exit(id: string | number, ms = 10_000): Promise<NonNullable<Msg['exit']>> {
    return (await this.next(id, (m) => m.exit !== undefined, ms, 'exit')).exit!;
  }

  /** What the run wrote to `stream`, message by message. */
  chunks(id: string | number, stream = 'stdout'): string[] {
    return this.of(id).flatMap((m) => (m.stream === stream ? [m.data!] : []));
  }
}

describe('runner example (child process)', () => {
  it('streams the output of seq 1 5, then exit 0', async () => {
    const server = await startServer();
    const c = await Client.open(server.url);
    c.send({ id: 1, cmd: 'seq', args: ['1', '5'] });
    const pid = await c.pid(1);
    expect(pid).toBeGreaterThan(0);
    expect(await c.exit(1)).toEqual({ returncode: 0, signal: null, timedOut: false });
    expect(c.chunks(1).join('').split('\n')).toEqual(['1', '2', '3', '4', '5', '']);
    // Order: started, the output, then exit, and nothing else for this id.
    const kinds = c.of(1).map((m) => (m.started ? 'started' : m.stream ? 'data' : m.exit ? 'exit' : 'other'));
    expect(kinds[0]).toBe('started');
    expect(kinds.slice(1, -1).every((k) => k === 'data')).toBe(true);
    expect(kinds.at(-1)).toBe('exit');
    expect(isDead(pid)).toBe(true);

    // stderr has its own stream; strings id work too.
    c.send({ id: 'ls', cmd: 'ls', args: ['/nonexistent-runner-test'] });
    const exit = await c.exit('ls');
    expect(exit.returncode).toBe(2);
    expect(c.chunks('ls', 'stderr').join('')).toContain('/nonexistent-runner-test');
    expect(c.chunks('ls', 'stdout')).toEqual([]);
  });

  it('rejects bad requests with an error and keeps the connection usable', async () => {
    const server = await startServer();
    const c = await Client.open(server.url);
    c.send({ id: 1, cmd: 'rm', args: ['-rf', '/'] });
    expect((await c.next(1, (m) => m.error !== undefined)).error).toMatch(/^unknown command "rm"/);
    c.send('{not json');
    await pollOrThrow(() => c.messages.some((m) => m.id === undefined && m.error?.startsWith('bad JSON') === true), 5000, 'bad JSON reply');
    c.send({ id: 2, cmd: 'echo', args: ['ok', 3] });
    expect((await c.next(2, (m) => m.error !== undefined)).error).toMatch(/must be a string/);
    c.send({ id: 3, cmd: 'echo', args: Array.from({ length: 65 }, () => 'x') });
    expect((await c.next(3, (m) => m.error !== undefined)).error).toMatch(/at most 64/);
    c.send({ id: 4, cmd: 'date', args: ['-s', '2000-01-01'] });
    expect((await c.next(4, (m) => m.error !== undefined)).error).toMatch(/^date takes only/);
    c.send({ cmd: 'echo' });
    await pollOrThrow(() => c.messages.some((m) => m.id === undefined && m.error?.includes('"id"') === true), 5000, 'missing id reply');
    // None of them started anything.
    expect(c.messages.filter((m) => m.started !== undefined)).toEqual([]);

    c.send({ id: 5, cmd: 'echo', args: ['still here', '; rm -rf /'] });
    expect(await c.exit(5)).toMatchObject({ returncode: 0 });
    // No shell: the "; rm -rf /" is one argument of echo.
    expect(c.chunks(5).join('')).toBe('still here ; rm -rf /\n');
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('ends a run past the time limit and reports the signal', async () => {
    const server = await startServer('--time-limit', '300');
    const c = await Client.open(server.url);
    const t0 = Date.now();
    c.send({ id: 'nap', cmd: 'sleep', args: ['30'] });
    const pid = await c.pid('nap');
    const exit = await c.exit('nap', 10_000);
    expect(exit).toEqual({ returncode: -15, signal: 'SIGTERM', timedOut: true });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(isDead(pid)).toBe(true);
  });

  it('kills a run past the output limit and says so', async () => {
    const server = await startServer('--output-limit', '10000');
    const c = await Client.open(server.url);
    c.send({ id: 1, cmd: 'seq', args: ['1', '1000000'] });
    const pid = await c.pid(1);
    const exit = await c.exit(1);
    expect(exit).toEqual({ returncode: -9, signal: 'SIGKILL', timedOut: false });
    const error = c.of(1).find((m) => m.error !== undefined);
    expect(error).toEqual({ id: 1, error: 'output limit', limit: 10000 });
    // Exactly the first 10 000 bytes went out, before the error, and nothing after it.
    const out = c.chunks(1).join('');
    expect(Buffer.byteLength(out)).toBe(10000);
    const all = Array.from({ length: 3000 }, (_, i) => `${i + 1}\n`).join('');
    expect(out).toBe(all.slice(0, 10000));
    const order = c.of(1).map((m) => (m.error ? 'error' : m.exit ? 'exit' : m.started ? 'started' : 'data'));
    expect(order.slice(-2)).toEqual(['error', 'exit']);
    expect(isDead(pid)).toBe(true);
  });

  it('stops the children of a client that goes away', async () => {
    const server = await startServer('--output-limit', String(2 ** 40));
    const c = await Client.open(server.url);
    c.send({ id: 1, cmd: 'sleep', args: ['30'] });
    c.send({ id: 2, cmd: 'seq', args: ['1', '1000000000'] }); // output held back: the client stops reading
    const sleeper = await c.pid(1);
    const writer = await c.pid(2);
    c.ws.pause();
    // The writer fills every buffer between it and the client, then blocks in write() (asleep).
    expect(await pollUntil(() => procState(writer) === 'S', 15_000)).toBe(true);
    expect(isDead(sleeper)).toBe(false);
    c.ws.terminate();
    // Both stopped and reaped by the server (a zombie would still answer kill(pid, 0)).
    expect(await pollUntil(() => procState(sleeper) === null && procState(writer) === null, 15_000)).toBe(true);
    expect(() => process.kill(sleeper, 0)).toThrow();
    expect(() => process.kill(writer, 0)).toThrow();
    // The server is fine and serves the next client.
    const d = await Client.open(server.url);
    d.send({ id: 1, cmd: 'echo', args: ['next'] });
    expect(await d.exit(1)).toMatchObject({ returncode: 0 });
    expect(server.child.exitCode).toBe(null);
  });

  it('holds a child back while its client does not read, without losing output', async () => {
    const n = 6_000_000;
    let expected = n - 1 + 1; // separators and the final newline
    for (let digits = 1, lo = 1; lo <= n; digits++, lo *= 10) expected += (Math.min(n, lo * 10 - 1) - lo + 1) * digits;
    const server = await startServer('--output-limit', String(expected));
    const c = await Client.open(server.url);
    c.send({ id: 'big', cmd: 'seq', args: ['-s', ' ', '1', String(n)] });
    const pid = await c.pid('big');
    c.ws.pause();
    const received = (): number => c.chunks('big').reduce((sum, s) => sum + s.length, 0);
    // Unthrottled, seq writes its ~47 MB in well under a second. Held back, it blocks in
    // write(): asleep, and its count of bytes written stops moving.
    const written = (): number => Number(/^wchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))![1]);
    let last = -1;
    let stalled = false;
    for (const end = Date.now() + 15_000; !stalled && Date.now() < end; ) {
      await new Promise((r) => setTimeout(r, 300));
      const now = written();
      stalled = now === last && procState(pid) === 'S';
      last = now;
    }
    expect(stalled).toBe(true);
    expect(isDead(pid)).toBe(false);
    // Only the buffers between seq and the client hold its output: far from all of it.
    expect(last).toBeLessThan(expected / 2);
    expect(received()).toBeLessThan(expected);
    c.ws.resume();
    expect(await c.exit('big', 20_000)).toEqual({ returncode: 0, signal: null, timedOut: false });
    expect(received()).toBe(expected);
    expect(c.chunks('big').join('').endsWith(` ${n}\n`)).toBe(true);
  });

  it.each(['SIGTERM', 'SIGINT'] as const)('on %s stops its children, tells the clients and exits 0', async (signal) => {
    const server = await startServer();
    const c = await Client.open(server.url);
    c.send({ id: 1, cmd: 'sleep', args: ['30'] });
    const pid = await c.pid(1);
    expect(isDead(pid)).toBe(false);
    server.child.kill(signal);
    expect(await Promise.race([server.exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))])).toBe(0);
    expect(isDead(pid)).toBe(true);
    expect(() => process.kill(pid, 0)).toThrow();
    // The client heard how its run ended, then was closed with 1001 (going away).
    expect(c.of(1).find((m) => m.error !== undefined)?.error).toMatch(/^cancelled: .*shutting down/);
    expect(c.of(1).find((m) => m.exit !== undefined)?.exit).toMatchObject({ returncode: -15, signal: 'SIGTERM' });
    await pollOrThrow(() => c.closeCode !== null, 5000, 'the close frame');
    expect(c.closeCode).toBe(1001);
    expect(server.err.join('\n')).toContain(`${signal}: shutting down`);
  });
});

describe('runner example (serve() in-process)', () => {
  it('starts on the running loop, serves a request and closes', async () => {
    const log: string[] = [];
    await run(async () => {
      const served = await serve({ host: '127.0.0.1', port: 0, log: (line) => log.push(line) });
      expect(served.name).toBe('websocket command runner');
      expect(served.host).toBe('127.0.0.1');
      expect(served.url).toBe(`ws://127.0.0.1:${served.port}/`);
      const c = await Client.open(served.url);
      c.send({ id: 'hi', cmd: 'echo', args: ['hello', 'world'] });
      expect(await c.exit('hi')).toEqual({ returncode: 0, signal: null, timedOut: false });
      expect(c.chunks('hi').join('')).toBe('hello world\n');
      await Promise.all([served.close(), served.close()]);
      await pollOrThrow(() => c.closeCode !== null, 5000, 'the close frame');
      expect(c.closeCode).toBe(1001);
    });
    expect(log.some((l) => l.includes('echo hello world'))).toBe(true);
  });

  it('rejects bad limits', async () => {
    await run(async () => {
      await expect(serve({ port: 0, timeLimit: 0 })).rejects.toMatchObject({ code: 'ERR_PROTOLOOP_INVALID_ARGUMENT' });
      await expect(serve({ port: 0, outputLimit: 1.5 })).rejects.toMatchObject({ code: 'ERR_PROTOLOOP_INVALID_ARGUMENT' });
    });
  });
});
