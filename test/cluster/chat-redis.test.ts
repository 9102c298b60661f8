// The chat example across processes through a real redis-server: two chat servers
// (two hosts, as far as the chat knows), Redis killed and brought back under them.
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PRIMARY, killChildren, start, type Child } from './helpers.ts';
import { removeTempDirs, servicesMissing, startRedis, subscribed } from './services.ts';

const CHAT = fileURLToPath(new URL('../../examples/servers/chat.ts', import.meta.url));
const missing = servicesMissing();

const sockets: WebSocket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.terminate();
  killChildren();
});
afterAll(removeTempDirs);

/** A chat participant over a plain ws client: collects every line. */
class Person {
  readonly lines: string[] = [];
  readonly #waiters: Array<() => void> = [];
  readonly ws: WebSocket;
  constructor(url: string) {
    this.ws = new WebSocket(url);
    sockets.push(this.ws);
    this.ws.on('message', (m) => {
      this.lines.push(String(m));
      for (const w of this.#waiters.splice(0)) w();
    });
  }
  static async join(url: string, nick: string, first?: Person): Promise<Person> {
    const p = first ?? new Person(url);
    await p.sees('joined #lobby');
    p.ws.send(`/nick ${nick}`);
    await p.sees(`is now ${nick}`);
    return p;
  }
  sees(text: string, ms = 10_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no line with '${text}' within ${ms} ms: ${this.lines.join(' | ')}`)), ms);
      const check = (): void => {
        const line = this.lines.find((l) => l.includes(text));
        if (line !== undefined) {
          clearTimeout(timer);
          resolve(line);
        } else this.#waiters.push(check);
      };
      check();
    });
  }
}

async function chatServer(redisPort: number): Promise<{ p: Child; url: string }> {
  const p = start(CHAT, ['--port', '0', '--redis', `redis://127.0.0.1:${redisPort}`]);
  const m = await p.line(/^listening on (ws:\/\/\S+)$/);
  return { p, url: m[1]! };
}

describe.skipIf(missing !== null)('chat across processes through Redis', () => {
  it('rooms span two servers; without Redis each goes on alone, says so once, and joins up again', async () => {
    const redis = await startRedis();
    const a = await chatServer(redis.port);
    const b = await chatServer(redis.port);
    const alice = await Person.join(a.url, 'alice');
    const carol = await Person.join(a.url, 'carol');
    const bob = await Person.join(b.url, 'bob');
    await subscribed(redis.port, 'chat:lobby', 2);
    alice.ws.send('hello from a');
    await bob.sees('<alice> hello from a');
    await carol.sees('<alice> hello from a');
    bob.ws.send('/join dev');
    await alice.sees('* bob left #lobby');
    await subscribed(redis.port, 'chat:dev', 1);
    alice.ws.send('/join dev');
    await bob.sees('* alice joined #dev');
    await subscribed(redis.port, 'chat:dev', 2);
    // Each line arrives once, not echoed back through Redis.
    bob.ws.send('once');
    await alice.sees('<bob> once');
    await bob.sees('<bob> once');
    alice.ws.send('/join lobby');
    await alice.sees('* alice joined #lobby');

    // Redis goes away: chat goes on within each process.
    redis.proc.child.kill('SIGKILL');
    await a.p.line(/^redis: connection lost/, 10_000, 'err');
    await b.p.line(/^redis: connection lost/, 10_000, 'err');
    alice.ws.send('still here');
    await carol.sees('<alice> still here');

    // Back on the same port: both reconnect, say so once, and rooms span again.
    const again = await startRedis(redis.port);
    await a.p.line(/^redis: reconnected/, 20_000, 'err');
    await b.p.line(/^redis: reconnected/, 20_000, 'err');
    for (const s of [a, b]) {
      expect(s.p.err.filter((l) => l.startsWith('redis: connection lost'))).toHaveLength(1);
      expect(s.p.err.filter((l) => l.startsWith('redis: reconnected'))).toHaveLength(1);
    }
    await subscribed(again.port, 'chat:lobby', 1);
    bob.ws.send('/join lobby');
    await alice.sees('* bob joined #lobby');
    bob.ws.send('back together');
    await alice.sees('<bob> back together');
    for (const s of [a, b]) {
      s.p.child.kill('SIGTERM');
      expect((await s.p.exited).code).toBe(0);
    }
    await again.stop();
  });

  it('rooms span the 2 workers of serveWorkers()', async () => {
    const redis = await startRedis();
    const pool = start(PRIMARY, [JSON.stringify({ app: '../../../examples/servers/chat.ts', workers: 2, serveOptions: { redisUrl: `redis://127.0.0.1:${redis.port}` } })]);
    const m = await pool.line(/^(ready (\d+) \S+ [\d,]+|error .*)$/);
    expect(m[1]).toMatch(/^ready/);
    const url = `ws://127.0.0.1:${m[2]}`;
    // Each worker names its own first guest guest-1: two guest-1s are in two processes.
    const first = new Person(url);
    await first.sees('welcome, guest-1');
    let other: Person | undefined;
    for (let i = 0; i < 8 && other === undefined; i++) {
      const p = new Person(url);
      const line = await p.sees('welcome, guest-');
      if (line.includes('welcome, guest-1.')) other = p;
    }
    expect(other, 'no connection reached the second worker').toBeDefined();
    const alice = await Person.join(url, 'alice', first);
    const bob = await Person.join(url, 'bob', other);
    await subscribed(redis.port, 'chat:lobby', 2);
    alice.ws.send('/who');
    expect(await alice.sees('* in #lobby:')).not.toContain('bob');
    alice.ws.send('hello from worker a');
    await bob.sees('<alice> hello from worker a');
    bob.ws.send('and from b');
    await alice.sees('<bob> and from b');
    pool.child.kill('SIGTERM');
    expect((await pool.exited).code).toBe(0);
    await redis.stop();
  });

  it('a Redis URL nobody answers fails the start with a clear error', async () => {
    const p = start(CHAT, ['--port', '0', '--redis', 'redis://127.0.0.1:1']);
    expect((await p.exited).code).not.toBe(0);
    expect(p.err.join('\n')).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
  });
});
