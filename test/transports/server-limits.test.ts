// Server limits (issue 16): maxConnections, idleTimeout, handshakeTimeout; peer drops
// that are not application errors; errors thrown to the caller that are not also logged.
// Each limit ends only the connection that hit it, with a typed error.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConnectionError,
  ConnectionRefusedError,
  ConnectionResetError,
  IdleTimeoutError,
  InvalidArgumentError,
  Loop,
  MessageProtocol,
  getRunningLoop,
  run,
  sleep,
  startServer,
  startUnixServer,
  startWebSocketServer,
  type ExceptionContext,
  type Server,
} from '../../src/index.ts';
import { ServerCounters, dropKind, DROP_WARN_RATE } from '../../src/transports/server-limits.ts';
import { EchoProtocol, Recorder, portOf, runLoop, within } from './helpers.ts';

/** A logger that keeps warnings (and nothing else). */
function warnLogger(): { warnings: string[]; logger: never } {
  const warnings: string[] = [];
  const noop = (): void => {};
  const logger = { debug: noop, info: noop, error: noop, trace: noop, fatal: noop, warn: (o: unknown, msg?: string) => warnings.push(String(msg ?? o)), child: () => logger };
  return { warnings, logger: logger as never };
}

/** Connects a raw client and resolves once the server closed it (EOF or reset). */
function closedByServer(port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.on('close', () => resolve());
    s.resume();
  });
}

async function echoes(loop: Loop, port: number, text: string): Promise<void> {
  const [t, p] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port });
  t.write(text);
  await within(5000, p.waitBytes(text.length), 'echo');
  expect(p.data.toString()).toBe(text);
  t.close();
  await p.lost;
}

describe('maxConnections', () => {
  it('closes new connections at once beyond the limit, counts them, warns once; the others keep working', async () => {
    const { warnings, logger } = warnLogger();
    await run(
      async () => {
        const loop = getRunningLoop();
        const errors: ExceptionContext[] = [];
        loop.setExceptionHandler((_l, ctx) => errors.push(ctx));
        await using server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0, maxConnections: 2 });
        const port = portOf(server);
        const kept = await Promise.all([0, 1].map(() => loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port })));
        await within(5000, (async () => {
          while (server.clientCount < 2) await new Promise<void>((r) => loop.callSoon(r));
        })());
        await within(5000, closedByServer(port), 'rejected connection closed');
        await within(5000, closedByServer(port), 'second rejected connection closed');
        expect(server.stats()).toMatchObject({ connections: 2, accepted: 2, rejected: 2 });
        expect(warnings.filter((w) => w.includes('maxConnections (2) reached'))).toHaveLength(1);
        // Nothing is lost on the connections that were within the limit.
        for (const [t, p] of kept) {
          t.write('still here');
          await within(5000, p.waitBytes(10));
          expect(p.data.toString()).toBe('still here');
          t.close();
          await p.lost;
        }
        expect(errors).toEqual([]);
      },
      { logger },
    );
  });

  it('rejects a bad limit with InvalidArgumentError', async () => {
    await runLoop(async (loop) => {
      await expect(loop.createServer(() => new EchoProtocol(), { maxConnections: 0 })).rejects.toThrow(InvalidArgumentError);
      await expect(loop.createServer(() => new EchoProtocol(), { idleTimeout: -1 })).rejects.toThrow(InvalidArgumentError);
    });
  });
});

describe('idleTimeout', () => {
  it('closes a silent connection with IdleTimeoutError; a trickling one stays open', async () => {
    await runLoop(async (loop, errors) => {
      await using server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0, idleTimeout: 200 });
      const port = portOf(server);
      const [, silent] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port });
      const [busyT, busy] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port });
      // The busy client sends a byte every 50 ms (activity, not synchronisation) until the silent one is cut.
      let sent = 0;
      const trickle = loop.createTask(async () => {
        for (;;) {
          busyT.write('.');
          sent++;
          await sleep(50);
        }
      });
      // The silent client sees the server close (EOF, then its own close).
      expect(await within(5000, silent.lost)).toBeUndefined();
      trickle.cancel();
      await Promise.resolve(trickle).catch(() => {});
      await within(5000, busy.waitBytes(sent));
      expect(busyT.isClosing()).toBe(false);
      expect(server.stats()).toMatchObject({ idleClosed: 1, connections: 1 });
      busyT.close();
      await busy.lost;
      expect(errors).toEqual([]);
    });
  });

  it("gives the server protocol's connectionLost an IdleTimeoutError", async () => {
    await runLoop(async (loop) => {
      let serverSide: Recorder | undefined;
      await using server = await loop.createServer(() => (serverSide = new Recorder(loop)), { host: '127.0.0.1', port: 0, idleTimeout: 100 });
      const [, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      const exc = await within(5000, serverSide!.lost);
      expect(exc).toBeInstanceOf(IdleTimeoutError);
      expect(exc).toMatchObject({ code: 'ERR_PROTOLOOP_IDLE_TIMEOUT' });
      await within(5000, client.lost);
    });
  });

  it("streams: the reader of a silent client gets IdleTimeoutError, and it is not logged as an error", async () => {
    await runLoop(async (loop, errors) => {
      let readError: unknown;
      const done = loop.createFuture<void>();
      await using server = await startServer(
        async (reader, writer) => {
          try {
            await reader.read(100);
          } catch (e) {
            readError = e;
            done.setResult(undefined);
            throw e; // escapes the client callback: a limit, not an application error
          } finally {
            writer.close();
          }
        },
        { host: '127.0.0.1', port: 0, idleTimeout: 100 },
      );
      const [, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      await within(5000, done);
      expect(readError).toBeInstanceOf(IdleTimeoutError);
      await within(5000, client.lost);
      await new Promise<void>((r) => loop.callSoon(r));
      expect(errors).toEqual([]);
      expect(server.stats().idleClosed).toBe(1);
    });
  });
});

/** A logger that keeps every line, whatever its level. */
function allLogger(): { lines: string[]; logger: never } {
  const lines: string[] = [];
  const keep = (level: string) => (o: unknown, msg?: string) => lines.push(`${level} ${String(msg ?? (o instanceof Error ? o.message : o))}`);
  const logger = { level: 'debug', trace: keep('trace'), debug: keep('debug'), info: keep('info'), warn: keep('warn'), error: keep('error'), fatal: keep('fatal'), child: () => logger };
  return { lines, logger: logger as never };
}

/** The error `attempt` rejects with (fails the test when it resolves). */
async function rejection(attempt: Promise<{ close(): unknown }>): Promise<Error & { code?: string }> {
  const r = await attempt.then(
    (server) => {
      server.close();
      return null;
    },
    (e: unknown) => e as Error & { code?: string },
  );
  expect(r, 'the call should have thrown').not.toBeNull();
  return r!;
}

describe('errors thrown to the caller are not also logged', () => {
  it('a port in use, an existing file at a Unix server path, a refused connection', async () => {
    await runLoop(async (loop, errors) => {
      await using server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0 });
      const inUse = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: portOf(server) }).catch((e: unknown) => e);
      expect(inUse).toBeInstanceOf(ConnectionError);
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'protoloop-')), 'taken');
      fs.writeFileSync(file, 'not a socket');
      const pathInUse = await loop.createUnixServer(() => new EchoProtocol(), file).catch((e: unknown) => e);
      expect(pathInUse).toBeInstanceOf(ConnectionError);
      expect(fs.readFileSync(file, 'utf8')).toBe('not a socket');
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
      const probe = net.createServer();
      await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
      const closedPort = (probe.address() as net.AddressInfo).port;
      await new Promise<void>((r) => probe.close(() => r()));
      const refused = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: closedPort }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(ConnectionRefusedError);
      await new Promise<void>((r) => loop.callSoon(r));
      expect(errors).toEqual([]);
      await echoes(loop, portOf(server), 'ok');
    });
  });

  it("every kind of server: thrown once with Node's code, and not one line in the loop's logger (even at debug level)", async () => {
    const { lines, logger } = allLogger();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoloop-'));
    try {
      await run(
        async () => {
          const loop = getRunningLoop();
          await using taken = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0 });
          const port = portOf(taken);
          const file = path.join(dir, 'taken');
          fs.writeFileSync(file, 'not a socket');
          const handler = async (): Promise<void> => {};
          const attempts: Array<[string, () => Promise<{ close(): unknown }>, string]> = [
            ['createServer', () => loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port }), 'EADDRINUSE'],
            ['startServer', () => startServer(handler, { host: '127.0.0.1', port }), 'EADDRINUSE'],
            ['createUnixServer', () => loop.createUnixServer(() => new EchoProtocol(), file), 'EADDRINUSE'],
            ['startUnixServer', () => startUnixServer(handler, file), 'EADDRINUSE'],
            ['createWebSocketServer', () => loop.createWebSocketServer(() => new MessageProtocol(), { host: '127.0.0.1', port }), 'EADDRINUSE'],
            ['startWebSocketServer', () => startWebSocketServer(handler, { host: '127.0.0.1', port }), 'EADDRINUSE'],
          ];
          const codes: Record<string, string | undefined> = {};
          for (const [name, attempt] of attempts) codes[name] = (await rejection(attempt())).code;
          expect(codes).toEqual(Object.fromEntries(attempts.map(([name, , code]) => [name, code])));
          expect(fs.readFileSync(file, 'utf8')).toBe('not a socket');
          // A late 'error' event would be logged by the next turn of Node's event loop.
          await new Promise<void>((r) => setImmediate(r));
          expect(lines).toEqual([]);
          await echoes(loop, port, 'still serving');
        },
        { logger },
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(lines).toEqual([]);
  });
});

describe('peer drops', () => {
  it('are classified apart from application errors', () => {
    expect(dropKind(new IdleTimeoutError())).toBe('idle');
    expect(dropKind(new ConnectionResetError())).toBe('peer');
    expect(dropKind(new ConnectionError(ConnectionError.GENERIC_CODE, 'x', { code: 'ETIMEDOUT' }))).toBe('peer');
    expect(dropKind(new ConnectionError(ConnectionError.GENERIC_CODE, 'x', { code: 'EADDRINUSE' }))).toBeNull();
    expect(dropKind(new Error('a bug'))).toBeNull();
    expect(dropKind(undefined)).toBeNull();
  });

  it('one warning line once they come faster than the threshold, per window (on the loop clock)', () => {
    let now = 0;
    const { warnings, logger } = warnLogger();
    const loop = new Loop({ logger, clock: () => now });
    try {
      const c = new ServerCounters(loop, () => '<test server>');
      const reset = new ConnectionResetError();
      for (let i = 0; i < DROP_WARN_RATE * 3; i++) c.ended(reset);
      expect(c.peerDrops).toBe(DROP_WARN_RATE * 3);
      expect(warnings).toHaveLength(1);
      now += 10_000;
      for (let i = 0; i < DROP_WARN_RATE; i++) c.ended(reset);
      expect(warnings).toHaveLength(1);
      c.ended(reset);
      expect(warnings).toHaveLength(2);
    } finally {
      loop.close();
    }
  });
});

export type { Server };
