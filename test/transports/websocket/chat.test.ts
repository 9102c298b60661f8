// The chat example end to end: the server runs as a child process, real clients talk
// to it (stream clients in this process, the terminal client as another child, a raw
// TCP client that never reads), and it shuts down cleanly on SIGTERM.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { currentTask, getRunningLoop, openWebSocket, run } from '../../../src/index.ts';
import type { WebSocketStream } from '../../../src/index.ts';
import { RawClient, eventually } from './helpers.ts';

const SERVER = fileURLToPath(new URL('../../../examples/servers/chat.ts', import.meta.url));
const CLIENT = fileURLToPath(new URL('../../../examples/servers/chat-client.ts', import.meta.url));

const children: ChildProcessWithoutNullStreams[] = [];

/** The run of the test in progress, so that a test that times out is torn down before the next. */
let running: Promise<unknown> | null = null;

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  // A timed-out test's run() is still going: its main task was cancelled by the test's
  // signal; wait until run() has cancelled the rest and closed its loop.
  await running;
  running = null;
});

/**
 * `run(body)`, with the main task cancelled when vitest aborts the test (it timed out),
 * so that the loop is always torn down and cannot fail the tests after it.
 */
function runTest(ctx: TestContext, body: () => Promise<void>): Promise<void> {
  const done = run(async () => {
    const task = currentTask()!;
    const cancel = (): void => void task.cancel('the test timed out');
    ctx.signal.addEventListener('abort', cancel, { once: true });
    try {
      await body();
    } finally {
      ctx.signal.removeEventListener('abort', cancel);
    }
  });
  running = done.catch(() => undefined);
  return done;
}

/** A child whose output is collected line by line. */
function start(file: string, args: string[]): { child: ChildProcessWithoutNullStreams; out: string[]; err: string[]; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [file, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  const out: string[] = [];
  const err: string[] = [];
  const collect = (into: string[]) => {
    let rest = '';
    return (chunk: Buffer): void => {
      const parts = (rest + chunk.toString()).split('\n');
      rest = parts.pop()!;
      into.push(...parts);
    };
  };
  child.stdout.on('data', collect(out));
  child.stderr.on('data', collect(err));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out, err, exited };
}

async function startServer(slowMs = 5000): Promise<{ child: ChildProcessWithoutNullStreams; url: string; err: string[]; exited: Promise<number | null> }> {
  const s = start(SERVER, ['--host', '127.0.0.1', '--port', '0', '--slow-ms', String(slowMs)]);
  await eventually(() => s.out.some((l) => l.startsWith('listening on ')) || s.child.exitCode !== null, 20_000, 'chat server to listen');
  const line = s.out.find((l) => l.startsWith('listening on '));
  expect(line).toMatch(/^listening on ws:\/\/127\.0\.0\.1:\d+$/);
  return { child: s.child, url: line!.slice('listening on '.length), err: s.err, exited: s.exited };
}

/** A chat participant: collects every line it receives. */
class Person {
  lines: string[] = [];
  readonly ws: WebSocketStream;
  readonly done: PromiseLike<void>;
  constructor(ws: WebSocketStream) {
    this.ws = ws;
    this.done = getRunningLoop().createTask(async () => {
      for await (const m of ws) this.lines.push(String(m));
    });
  }
  static async join(url: string, nick?: string): Promise<Person> {
    const p = new Person(await openWebSocket(url));
    await eventually(() => p.lines.some((l) => l.includes('joined #lobby')), 5000, 'welcome');
    if (nick !== undefined) {
      await p.ws.send(`/nick ${nick}`);
      await p.sees(`is now ${nick}`);
    }
    return p;
  }
  async sees(text: string, ms = 5000): Promise<void> {
    await eventually(() => this.lines.some((l) => l.includes(text)), ms, `a line with '${text}'`);
  }
}

describe('chat example', () => {
  it('rooms, nicknames and broadcast between real clients', async (ctx) => {
    await runTest(ctx, async () => {
      const server = await startServer();
      const alice = await Person.join(server.url, 'alice');
      const bob = await Person.join(server.url, 'bob');
      await alice.sees('is now bob');
      await alice.ws.send('hi bob');
      await bob.sees('<alice> hi bob');
      await alice.sees('<alice> hi bob');
      await bob.ws.send('/nick alice');
      await bob.sees('! alice is taken');
      await bob.ws.send('/nick not a name!');
      await bob.sees('! usage: /nick');
      await bob.ws.send('/join dev');
      await alice.sees('* bob left #lobby');
      await bob.ws.send('only dev hears this');
      await bob.sees('<bob> only dev hears this');
      await bob.ws.send('/rooms');
      await bob.sees('* rooms: #lobby (1), #dev (1)');
      await bob.ws.send('/who');
      await bob.sees('* in #dev: bob');
      await bob.ws.send(Buffer.from([1, 2]));
      await bob.sees('! text messages only');
      // Ordering proof, not a wait: the server handles bob's messages in order and writes to
      // alice's one connection in order, so once alice sees bob come back to #lobby, a
      // broadcast of his #dev line to her would already have arrived.
      await bob.ws.send('/join lobby');
      await alice.sees('* bob joined #lobby');
      expect(alice.lines.some((l) => l.includes('only dev hears this'))).toBe(false);
      await bob.ws.send('/quit');
      await bob.done;
      expect(bob.ws.closeError).toBeUndefined();
      await alice.ws.close();
      await alice.done;
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    });
  });

  it('the terminal client sends what is typed and prints what arrives', async (ctx) => {
    await runTest(ctx, async () => {
      const server = await startServer();
      const alice = await Person.join(server.url, 'alice');
      const carol = start(CLIENT, [server.url, '--nick', 'carol']);
      await alice.sees('is now carol', 20_000);
      carol.child.stdin.write('hello from the terminal\n');
      await alice.sees('<carol> hello from the terminal');
      await alice.ws.send('hello carol');
      await eventually(() => carol.out.includes('<alice> hello carol'), 5000, 'terminal client output');
      carol.child.stdin.end();
      expect(await carol.exited).toBe(0);
      await alice.sees('* carol quit #lobby');
      await alice.ws.close();
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    });
  });

  it('a client that stops reading is disconnected; every client that reads gets every line, in order', async (ctx) => {
    await runTest(ctx, async () => {
      const server = await startServer(300);
      const talker = await Person.join(server.url, 'talker');
      const bob = await Person.join(server.url, 'bob');
      const port = Number(new URL(server.url).port);
      const slow = await RawClient.connect(port);
      expect(slow.status).toBe(101);
      slow.socket.pause(); // never reads again
      await talker.sees('joined #lobby');
      const line = 'x'.repeat(1900);
      const N = 4000;
      for (let i = 0; i < N; i++) await talker.ws.send(`${i} ${line}`);
      // Everyone who reads sees every line, in order, however loaded the machine is: the
      // server holds the talker back while a reader is behind, it never drops a line.
      await talker.sees(`<talker> ${N - 1} `, 30_000);
      await bob.sees(`<talker> ${N - 1} `, 30_000);
      for (const p of [talker, bob]) {
        const said = p.lines.filter((l) => l.startsWith('<talker> ')).map((l) => Number(l.split(' ')[1]));
        expect(said).toEqual(Array.from({ length: N }, (_, i) => i));
      }
      // The slow one made no progress for --slow-ms: it left the room at once (releasing
      // the talker) and is closed (the close frame cannot get through, so the server
      // aborts after its closeTimeout).
      await talker.sees('quit #lobby', 10_000);
      await talker.ws.send('/who');
      await talker.sees('* in #lobby: talker, bob');
      await talker.ws.close();
      await bob.ws.close();
      slow.destroy();
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    });
  });

  it('SIGTERM closes every client with 1001 (a normal end) and exits 0', async (ctx) => {
    await runTest(ctx, async () => {
      const server = await startServer();
      const alice = await Person.join(server.url, 'alice');
      server.child.kill('SIGTERM');
      await alice.done; // iteration ends normally: 1001 is not an error
      expect(alice.ws.closeError).toBeUndefined();
      expect(await server.exited).toBe(0);
      expect(server.err.join('\n')).toContain('SIGTERM: shutting down');
    });
  });
});
