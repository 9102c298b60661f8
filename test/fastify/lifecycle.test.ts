import { connect } from 'node:net';
import Fastify from 'fastify';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CancelledError, Loop, MessageProtocol, Runner, getRunningLoop, run, sleep, type Task, type WebSocketTransport } from '../../src/index.ts';
import { protoloopFastify, serveFastify, type FastifyServer } from '../../src/fastify/index.ts';
import { agent, captureExceptions, pollUntil } from './helpers.ts';

const opts = { handleSigint: false };

/** Echoes each message back, upper-cased. */
class Shout extends MessageProtocol {
  transport: WebSocketTransport | null = null;
  override connectionMade(t: WebSocketTransport): void {
    this.transport = t;
  }
  override messageReceived(data: Buffer | string): void {
    this.transport!.send(String(data).toUpperCase());
  }
}

function openWs(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve) => ws.once('message', (d) => resolve(String(d))));
}

function closeCode(ws: WebSocket): Promise<number> {
  return new Promise((resolve) => ws.once('close', (code) => resolve(code)));
}

describe('Fastify adapter lifecycle', () => {
  it('serves WebSocket routes on the app’s own port and closes them with 1001 when the app closes', async () => {
    await run(async () => {
      const app = Fastify();
      await app.register(protoloopFastify);
      app.get('/hello', async () => 'hello over http');
      const wss = await app.protoloop.websocket('/shout', () => new Shout());
      await expect(app.protoloop.websocket('/shout', () => new Shout())).rejects.toThrow(/already serves/);
      await expect(app.protoloop.websocket('no-slash', () => new Shout())).rejects.toThrow(/path/);
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const dispatcher = agent();
      try {
        const wsUrl = server.url!.replace('http:', 'ws:');
        const ws = await openWs(`${wsUrl}/shout`);
        const reply = nextMessage(ws);
        ws.send('hi there');
        expect(await reply).toBe('HI THERE');
        const r = await request(`${server.url}/hello`, { dispatcher });
        expect(await r.body.text()).toBe('hello over http');
        await expect(openWs(`${wsUrl}/elsewhere`)).rejects.toThrow(/404/);
        expect(wss.clients).toHaveLength(1);
        const code = closeCode(ws);
        await server.close();
        await server.waitClosed();
        expect(await code).toBe(1001);
        expect(wss.state).toBe('closed');
      } finally {
        await dispatcher.close();
      }
    }, opts);
  });

  it('closes promptly with a keep-alive client whose request was in flight', async () => {
    await run(async () => {
      const app = Fastify();
      await app.register(protoloopFastify);
      app.get('/slow', async () => {
        await sleep(100);
        return 'slow answer';
      });
      app.get('/fast', async () => 'fast');
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const dispatcher = agent();
      try {
        const warm = await request(`${server.url}/fast`, { dispatcher });
        await warm.body.text();
        const slow = request(`${server.url}/slow`, { dispatcher });
        await sleep(30);
        const t0 = Date.now();
        await server.close();
        const r = await slow;
        expect(await r.body.text()).toBe('slow answer');
        expect(r.headers.connection).toBe('close');
        await server.waitClosed();
        // Fastify's keepAliveTimeout is 72 s: the adapter must not wait for it.
        expect(Date.now() - t0).toBeLessThan(3000);
      } finally {
        await dispatcher.close();
      }
    }, opts);
  });

  it('closes at once with a client connected that never sent a byte', async () => {
    // Node 22 counts such a connection as a request on its way (closeIdleConnections()
    // leaves it), and undici opens one right after an aborted request: the close then
    // waited for the client to let go (undici: 4 s; a silent client: headersTimeout).
    await run(async () => {
      const app = Fastify();
      await app.register(protoloopFastify);
      app.get('/', async () => 'hi');
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const accepted = new Promise((r) => app.server.once('connection', r));
      const socket = connect(server.address()!.port, '127.0.0.1');
      socket.on('error', () => {});
      const closed = new Promise<void>((r) => socket.once('close', () => r()));
      await accepted;
      await server.close();
      await server.waitClosed();
      await closed;
      expect(socket.bytesRead).toBe(0);
    }, opts);
  });

  it('closes the app when run() ends: in-flight handlers get closeTimeout, then are cancelled (503), the server stops', async () => {
    let server: FastifyServer | null = null;
    let task: Task<unknown> | null = null;
    const dispatcher = agent();
    let answer: Promise<number | Error> | null = null;
    await run(async () => {
      const app = Fastify();
      // A small closeTimeout: the handler never finishes by itself, the test waits it out.
      await app.register(protoloopFastify, { closeTimeout: 100 });
      app.get('/long', async (req) => {
        task = req.task;
        await sleep(60_000);
      });
      server = await serveFastify(app, { host: '127.0.0.1' });
      answer = request(`${server.url}/long`, { dispatcher }).then(
        (r) => r.statusCode,
        (e: Error) => e,
      );
      expect(await pollUntil(() => task !== null)).toBe(true);
    }, opts);
    expect(task!.cancelled()).toBe(true);
    expect(await answer!).toBe(503);
    expect(server!.app.server.listening).toBe(false);
    expect(server!.app.protoloop.state).toBe('closed');
    await dispatcher.close();
  });

  it('closes the app when its loop is closed by hand', async () => {
    const runner = new Runner(opts);
    const loop = runner.getLoop();
    const app = Fastify();
    await runner.run(async () => {
      await app.register(protoloopFastify);
      app.get('/x', async () => 'x');
      await serveFastify(app, { host: '127.0.0.1' });
    });
    expect(app.server.listening).toBe(true);
    const seen = captureExceptions(loop);
    loop.close();
    expect(await pollUntil(() => !app.server.listening)).toBe(true);
    // The server was left open: reported as unclosed, then closed.
    expect(seen.map((c) => c.message)).toEqual([expect.stringMatching(/^unclosed Fastify server/)]);
    await runner.close();
  });

  it('holds a request that arrives while the loop is not running until the loop runs again', async () => {
    const runner = new Runner(opts);
    const app = Fastify();
    let server: FastifyServer | null = null;
    await runner.run(async () => {
      await app.register(protoloopFastify);
      app.get('/when', async (req) => ({ task: req.task?.getName() }));
      server = await serveFastify(app, { host: '127.0.0.1' });
    });
    const dispatcher = agent();
    let answer: unknown = null;
    const pending = request(`${server!.url}/when`, { dispatcher }).then(async (r) => (answer = await r.body.json()));
    await new Promise((r) => setTimeout(r, 100));
    expect(answer).toBeNull();
    await runner.run(async () => {
      await pending;
    });
    expect(answer).toEqual({ task: 'GET /when' });
    await dispatcher.close();
    await runner.close();
    expect(app.server.listening).toBe(false);
  });

  it('serveForever() waits for the close; cancelling it closes the app', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const app = Fastify();
      const server = await serveFastify(app, { host: '127.0.0.1', plugin: { closeTimeout: 100 } });
      expect(app.protoloop.closeTimeout).toBe(100);
      expect(server.isServing()).toBe(true);
      const forever = loop.createTask(() => server.serveForever(), { name: 'serve' });
      await sleep(10);
      forever.cancel();
      await expect(forever).rejects.toBeInstanceOf(CancelledError);
      expect(app.protoloop.state).toBe('closed');
      expect(app.server.listening).toBe(false);
      expect(String(server)).toMatch(/<FastifyServer 127\.0\.0\.1:\d+ closed/);
    }, opts);
  });

  it('runs handlers on a loop given explicitly and reports their tasks', async () => {
    const runner = new Runner(opts);
    const loop: Loop = runner.getLoop();
    await runner.run(async () => {
      const app = Fastify();
      await app.register(protoloopFastify, { loop });
      let inside: string[] = [];
      app.get('/tasks', async (req) => {
        inside = app.protoloop.tasks().map((t) => t.getName());
        return { same: req.task?.getLoop() === loop };
      });
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const dispatcher = agent();
      try {
        const r = await request(`${server.url}/tasks`, { dispatcher });
        expect(await r.body.json()).toEqual({ same: true });
        expect(inside).toEqual(['GET /tasks']);
      } finally {
        await dispatcher.close();
        await server[Symbol.asyncDispose]();
      }
    });
    await runner.close();
  });
});
