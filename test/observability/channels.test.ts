// The diagnostics channels (docs/observability.md): each event with its message's
// fields, over real sockets on 127.0.0.1, a real child process, a real worker thread
// and a real Fastify app; and that nothing is published (nor built) without a subscriber.
import diagnosticsChannel from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CancelledError,
  DatagramProtocol,
  MessageProtocol,
  Protocol,
  Task,
  ThreadPoolExecutor,
  channelNames,
  createLogger,
  createSubprocessExec,
  currentTask,
  getRunningLoop,
  openConnection,
  openUnixConnection,
  run,
  sleep,
  startServer,
  startUnixServer,
  type ConnectionMessage,
  type ExecutorJobMessage,
  type FastifyHandlerMessage,
  type ServerMessage,
  type SlowCallbackMessage,
  type SubprocessMessage,
  type TaskCreatedMessage,
  type TaskDoneMessage,
} from '../../src/index.ts';
import { protoloopFastify, serveFastify } from '../../src/fastify/index.ts';
import { MemoryNetwork } from '../../src/testing/index.ts';
import { tasks } from '../executors/helpers.ts';
import { agent } from '../fastify/helpers.ts';
import { eventually } from '../helpers.ts';

const opts = { signals: [] };
const fixtures = new URL('../fixtures/streams/', import.meta.url);
const key = readFileSync(new URL('key.pem', fixtures));
const cert = readFileSync(new URL('cert.pem', fixtures));

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** Subscribes to `name` for the rest of the test; returns the messages it gets. */
function record<M>(name: string): M[] {
  const seen: M[] = [];
  const listener = (m: unknown): void => {
    seen.push(m as M);
  };
  diagnosticsChannel.subscribe(name, listener);
  cleanups.push(() => diagnosticsChannel.unsubscribe(name, listener));
  return seen;
}

/** Subscribes to the events of a TracingChannel; returns `[event, context]` pairs in order. */
function recordTracing<M>(name: string, extra: Partial<Record<'start' | 'end' | 'asyncStart' | 'asyncEnd' | 'error', (m: M) => void>> = {}): Array<[string, M]> {
  const seen: Array<[string, M]> = [];
  const on = (event: 'start' | 'end' | 'asyncStart' | 'asyncEnd' | 'error') => (m: unknown): void => {
    seen.push([event, m as M]);
    extra[event]?.(m as M);
  };
  const handlers = { start: on('start'), end: on('end'), asyncStart: on('asyncStart'), asyncEnd: on('asyncEnd'), error: on('error') };
  const tc = diagnosticsChannel.tracingChannel(name);
  tc.subscribe(handlers);
  cleanups.push(() => tc.unsubscribe(handlers));
  return seen;
}

class Echo extends Protocol {
  #t: { write(d: Uint8Array): void } | null = null;
  override connectionMade(t: never): void {
    this.#t = t;
  }
  override dataReceived(d: Buffer): void {
    this.#t!.write(d);
  }
}

describe('diagnostics channels', () => {
  it('names every channel in channelNames', () => {
    expect(Object.values(channelNames).sort()).toEqual([
      'protoloop:callback:slow',
      'protoloop:connection:lost',
      'protoloop:connection:made',
      'protoloop:executor:job',
      'protoloop:fastify:handler',
      'protoloop:server:close',
      'protoloop:server:listen',
      'protoloop:subprocess:exit',
      'protoloop:subprocess:spawn',
      'protoloop:task:created',
      'protoloop:task:done',
    ]);
  });

  it('task:created and task:done carry the task, its id, name, parent id and how it ended', async () => {
    const created = record<TaskCreatedMessage>(channelNames.taskCreated);
    const done = record<TaskDoneMessage>(channelNames.taskDone);
    const boom = new Error('boom');
    let ids: number[] = [];
    let mainId = 0;
    await run(async () => {
      const loop = getRunningLoop();
      mainId = currentTask()!.id;
      const ok = loop.createTask(async () => 42, { name: 'ok' });
      const bad = loop.createTask(async () => {
        throw boom;
      }, { name: 'bad' });
      const stuck = loop.createTask(() => sleep(60_000), { name: 'stuck' });
      ids = [ok.id, bad.id, stuck.id];
      await ok;
      await bad.then(undefined, () => undefined);
      await sleep(0);
      stuck.cancel();
      await stuck.then(undefined, () => undefined);
      expect(created.find((m) => m.id === ok.id)).toMatchObject({ task: ok, id: ok.id, name: 'ok', parentId: mainId, loop });
    }, opts);
    const main = created.find((m) => m.id === mainId)!;
    expect(main).toMatchObject({ name: 'main', parentId: null });
    expect(main.task).toBeInstanceOf(Task);
    const [ok, bad, stuck] = ids.map((id) => done.find((m) => m.id === id)!);
    expect(ok).toMatchObject({ name: 'ok', parentId: mainId, state: 'result' });
    expect(ok!.exception).toBeUndefined();
    expect(bad).toMatchObject({ name: 'bad', state: 'exception', exception: boom });
    expect(stuck).toMatchObject({ name: 'stuck', state: 'cancelled' });
    expect(stuck!.durationMs).toBeGreaterThanOrEqual(0);
    expect(done.find((m) => m.id === mainId)).toMatchObject({ state: 'result' });
  });

  it('callback:slow reports a blocking callback to a subscriber outside debug mode, and logs nothing', async () => {
    const slow = record<SlowCallbackMessage>(channelNames.callbackSlow);
    let logged = '';
    const logger = createLogger({ level: 'debug', stream: { write: (s: string) => (logged += s) } });
    await run(async () => {
      const loop = getRunningLoop();
      expect(loop.getDebug()).toBe(false);
      const ran = loop.createFuture<void>();
      loop.callSoon(function blockTheLoop() {
        const until = performance.now() + 30;
        while (performance.now() < until) {
          // blocking on purpose: this is the slow callback
        }
        ran.setResult();
      });
      await ran;
      await eventually(() => slow.length > 0, 5000, 'a slow-callback message');
      expect(slow[0]).toMatchObject({ loop });
      expect(slow[0]!.what).toContain('blockTheLoop');
      expect(slow[0]!.durationMs).toBeGreaterThanOrEqual(20);
      expect(slow[0]!.handle).toBeDefined();
      expect(loop.stats().slowCallbacks).toBeGreaterThanOrEqual(1);
    }, { ...opts, logger, slowCallbackDuration: 20 });
    expect(logged).not.toContain('took');
  });

  it('server:listen/close and connection:made/lost for TCP, from both ends, with addresses', async () => {
    const listen = record<ServerMessage>(channelNames.serverListen);
    const closed = record<ServerMessage>(channelNames.serverClose);
    const made = record<ConnectionMessage>(channelNames.connectionMade);
    const lost = record<ConnectionMessage>(channelNames.connectionLost);
    await run(async () => {
      const server = await startServer(async (r, w) => {
        w.write(await r.readLine());
        await w.drain();
        w.close();
      }, { host: '127.0.0.1', port: 0 });
      const port = (server.sockets[0] as { port: number }).port;
      expect(listen).toHaveLength(1);
      expect(listen[0]).toMatchObject({ server, kind: 'tcp' });
      expect(listen[0]!.address).toContain(String(port));
      const [reader, writer] = await openConnection('127.0.0.1', port);
      writer.write('hello\n');
      expect(String(await reader.readLine())).toBe('hello\n');
      await eventually(() => made.length === 2, 5000, 'both ends made');
      const client = made.find((m) => (m.peer as { port: number }).port === port)!;
      const accepted = made.find((m) => (m.local as { port: number }).port === port)!;
      expect(client).toMatchObject({ kind: 'tcp', local: { address: '127.0.0.1' }, peer: { address: '127.0.0.1', port } });
      expect(accepted).toMatchObject({ kind: 'tcp', local: { address: '127.0.0.1', port } });
      expect((accepted.peer as { port: number }).port).toBe((client.local as { port: number }).port);
      writer.close();
      await writer.waitClosed();
      await eventually(() => lost.length === 2, 5000, 'both ends lost');
      for (const m of lost) expect(m).toMatchObject({ kind: 'tcp', error: undefined });
      expect(lost.map((m) => m.transport).sort()).toEqual(made.map((m) => m.transport).sort());
      server.close();
      await server.waitClosed();
      expect(closed).toEqual([{ server, kind: 'tcp', address: listen[0]!.address }]);
    }, opts);
  });

  it('connection:lost carries the error the connection was lost with', async () => {
    const lost = record<ConnectionMessage>(channelNames.connectionLost);
    const boom = new Error('protocol failed');
    await run(async () => {
      const loop = getRunningLoop();
      loop.setExceptionHandler(() => {}); // the fatal-error report is expected
      const server = await loop.createServer(() => new (class extends Protocol {
        override dataReceived(): void {
          throw boom;
        }
      })(), { host: '127.0.0.1', port: 0 });
      const port = (server.sockets[0] as { port: number }).port;
      const [, writer] = await openConnection('127.0.0.1', port);
      writer.write('x');
      await eventually(() => lost.length >= 1, 5000, 'the server side lost');
      expect(lost[0]).toMatchObject({ kind: 'tcp', error: boom, local: { port } });
      writer.transport.abort();
      server.close();
      await server.waitClosed();
    }, opts);
  });

  it('kind tls', async () => {
    const made = record<ConnectionMessage>(channelNames.connectionMade);
    await run(async () => {
      const tls = await startServer(async (r, w) => {
        w.write(await r.readLine());
        await w.drain();
        w.close();
      }, { host: '127.0.0.1', port: 0, tls: { key, cert } });
      const port = (tls.sockets[0] as { port: number }).port;
      const [tr, tw] = await openConnection('127.0.0.1', port, { tls: { ca: cert, servername: 'localhost' } });
      tw.write('x\n');
      await tr.readLine();
      await eventually(() => made.filter((m) => m.kind === 'tls').length === 2, 5000, 'two TLS ends');
      expect(made.find((m) => (m.peer as { port?: number } | undefined)?.port === port)).toMatchObject({ kind: 'tls', peer: { address: '127.0.0.1' } });
      tw.close();
      await tw.waitClosed();
      tls.close();
      await tls.waitClosed();
    }, opts);
  });

  it('kind unix, with the socket path', async () => {
    const made = record<ConnectionMessage>(channelNames.connectionMade);
    const dir = mkdtempSync(path.join(tmpdir(), 'protoloop-obs-'));
    try {
      await run(async () => {
        const sock = path.join(dir, 's.sock');
        const unix = await startUnixServer(async (r, w) => {
          w.write(await r.readLine());
          await w.drain();
          w.close();
        }, sock);
        const [ur, uw] = await openUnixConnection(sock);
        uw.write('y\n');
        await ur.readLine();
        await eventually(() => made.filter((m) => m.kind === 'unix').length === 2, 5000, 'two unix ends');
        expect(made.some((m) => m.peer === sock || m.local === sock)).toBe(true);
        uw.close();
        await uw.waitClosed();
        unix.close();
        await unix.waitClosed();
      }, opts);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('kind udp', async () => {
    const made = record<ConnectionMessage>(channelNames.connectionMade);
    const lost = record<ConnectionMessage>(channelNames.connectionLost);
    await run(async () => {
      const loop = getRunningLoop();
      const [udp] = await loop.createDatagramEndpoint(() => new DatagramProtocol(), { localAddr: { address: '127.0.0.1', port: 0 } });
      await eventually(() => made.length === 1, 5000, 'udp made');
      expect(made[0]).toMatchObject({ kind: 'udp', transport: udp, local: { address: '127.0.0.1' } });
      udp.close();
      await eventually(() => lost.length === 1, 5000, 'udp lost');
      expect(lost[0]).toMatchObject({ kind: 'udp', transport: udp, error: undefined });
    }, opts);
  });

  it('kind websocket, and the WebSocket server', async () => {
    const made = record<ConnectionMessage>(channelNames.connectionMade);
    const listen = record<ServerMessage>(channelNames.serverListen);
    await run(async () => {
      const loop = getRunningLoop();
      const wss = await loop.createWebSocketServer(() => new MessageProtocol(), { host: '127.0.0.1', port: 0 });
      const [ws] = await loop.createWebSocketConnection(() => new MessageProtocol(), wss.url!);
      await eventually(() => made.length === 2, 5000, 'two websocket ends');
      expect(made.find((m) => m.transport === ws)).toMatchObject({ kind: 'websocket', peer: { address: '127.0.0.1' } });
      expect(made.every((m) => m.kind === 'websocket')).toBe(true);
      expect(listen.find((m) => m.server === wss)).toMatchObject({ kind: 'websocket' });
      ws.close();
      await wss[Symbol.asyncDispose]();
    }, opts);
  });

  it('kind memory (protoloop/testing), and the memory server', async () => {
    const made = record<ConnectionMessage>(channelNames.connectionMade);
    const listen = record<ServerMessage>(channelNames.serverListen);
    await run(async () => {
      const loop = getRunningLoop();
      const network = new MemoryNetwork();
      const mem = await loop.createServer(() => new Echo(), { network, host: 'mem', port: 1 });
      const [mt] = await loop.createConnection(() => new Protocol(), { network, host: 'mem', port: 1 });
      await eventually(() => made.length === 2, 5000, 'two memory ends');
      expect(made.every((m) => m.kind === 'memory')).toBe(true);
      expect(listen.find((m) => m.server === mem)).toMatchObject({ kind: 'memory' });
      mt.close();
      mem.close();
      await mem.waitClosed();
    }, opts);
  });

  it('subprocess:spawn and subprocess:exit carry the file, args, pid and return code', async () => {
    const spawned = record<SubprocessMessage>(channelNames.subprocessSpawn);
    const exited = record<SubprocessMessage>(channelNames.subprocessExit);
    await run(async () => {
      const proc = await createSubprocessExec(process.execPath, ['-e', 'process.exit(3)']);
      expect(await proc.wait()).toBe(3);
      expect(spawned).toEqual([{ file: process.execPath, args: ['-e', 'process.exit(3)'], pid: proc.pid, transport: expect.anything() }]);
      expect(exited).toHaveLength(1);
      expect(exited[0]).toMatchObject({ file: process.execPath, pid: proc.pid, returncode: 3, signal: null });
    }, opts);
  });

  it('executor:job is a TracingChannel: start, end, then asyncStart and asyncEnd (error first for a failed job)', async () => {
    const events = recordTracing<ExecutorJobMessage>(channelNames.executorJob);
    await run(async () => {
      const loop = getRunningLoop();
      await using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
      expect(await loop.runInExecutor(pool, tasks.add, 2, 3)).toBe(5);
      await eventually(() => events.length === 4, 5000, 'the four events of a job');
      expect(events.map(([e]) => e)).toEqual(['start', 'end', 'asyncStart', 'asyncEnd']);
      const ctx = events[0]![1];
      for (const [, c] of events) expect(c).toBe(ctx);
      expect(ctx).toMatchObject({ executor: 'ThreadPoolExecutor', export: 'add', result: 5 });
      expect(ctx.module).toMatch(/^file:.*fixtures\/executors\/tasks\.ts$/);
      expect(ctx.future).toBeDefined();
      events.length = 0;
      await expect(loop.runInExecutor(pool, tasks.throwType, 'nope')).rejects.toThrow();
      await eventually(() => events.length === 5, 5000, 'the five events of a failed job');
      expect(events.map(([e]) => e)).toEqual(['start', 'end', 'error', 'asyncStart', 'asyncEnd']);
      expect(events[2]![1].error).toBeInstanceOf(Error);
      events.length = 0;
      const fut = loop.runInExecutor(pool, tasks.sleepMs, 300);
      fut.cancel();
      await eventually(() => events.length === 5, 5000, 'the five events of a cancelled job');
      expect(events[2]![1].error).toBeInstanceOf(CancelledError);
    }, opts);
  });

  it('fastify:handler is a TracingChannel around each route handler, its start inside the handler task', async () => {
    const listen = record<ServerMessage>(channelNames.serverListen);
    let taskInStart: unknown = null;
    const events = recordTracing<FastifyHandlerMessage>(channelNames.fastifyHandler, {
      start: () => {
        taskInStart = currentTask();
      },
    });
    await run(async () => {
      const app = Fastify();
      await app.register(protoloopFastify);
      app.get('/users/:id', async (req) => {
        await sleep(1);
        return { id: (req.params as { id: string }).id };
      });
      app.get('/fail', async () => {
        await sleep(1);
        throw new Error('handler failed');
      });
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const dispatcher = agent();
      try {
        const r = await request(`${server.url}/users/7`, { dispatcher });
        expect(await r.body.json()).toEqual({ id: '7' });
        await eventually(() => events.length === 4, 5000, 'the four handler events');
        expect(events.map(([e]) => e)).toEqual(['start', 'end', 'asyncStart', 'asyncEnd']);
        const ctx = events[0]![1];
        expect(ctx).toMatchObject({ route: '/users/:id', method: 'GET', url: '/users/7', result: { id: '7' } });
        expect(ctx.task).toBeInstanceOf(Task);
        expect(taskInStart).toBe(ctx.task);
        expect(listen.find((m) => m.kind === 'fastify')).toMatchObject({ server });
        events.length = 0;
        const f = await request(`${server.url}/fail`, { dispatcher });
        expect(f.statusCode).toBe(500);
        await f.body.text();
        await eventually(() => events.length === 5, 5000, 'the five events of a failing handler');
        expect(events.map(([e]) => e)).toEqual(['start', 'end', 'error', 'asyncStart', 'asyncEnd']);
        expect((events[2]![1].error as Error).message).toBe('handler failed');
      } finally {
        await dispatcher.close();
        await server.close();
      }
    }, opts);
  });

  it('publishes nothing and checks only hasSubscribers when no one listens', async () => {
    for (const name of Object.values(channelNames)) {
      if (name === channelNames.executorJob || name === channelNames.fastifyHandler) expect(diagnosticsChannel.tracingChannel(name).hasSubscribers).toBe(false);
      else expect(diagnosticsChannel.hasSubscribers(name)).toBe(false);
    }
    // A subscriber that comes and goes leaves the channel without subscribers again.
    const seen = record<TaskCreatedMessage>(channelNames.taskCreated);
    await run(async () => {
      await getRunningLoop().createTask(async () => 1);
    }, opts);
    expect(seen.length).toBe(2);
    cleanups.splice(0).forEach((c) => c());
    expect(diagnosticsChannel.hasSubscribers(channelNames.taskCreated)).toBe(false);
  });
});
