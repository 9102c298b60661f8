// serveFastify's request timeout: a client that stalls or trickles its request is
// answered 408 and cut; the other clients are served as usual.
import { connect, type Socket } from 'node:net';
import Fastify from 'fastify';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, run } from '../../src/index.ts';
import { protoloopFastify, serveFastify, type FastifyServer } from '../../src/fastify/index.ts';
import { agent } from './helpers.ts';

const opts = { signals: [] };

/** Opens a raw connection to `server` and resolves with everything it sent until it closed. */
function rawClient(server: FastifyServer, onConnect: (sock: Socket) => void): Promise<string> {
  const { port } = server.address()!;
  return new Promise((resolve, reject) => {
    let got = '';
    const sock = connect(port, '127.0.0.1', () => onConnect(sock));
    sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
    sock.on('close', () => resolve(got));
    sock.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? resolve(got) : reject(e)));
  });
}

const HEAD = 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n';

async function echoApp(options: Record<string, unknown> = {}): Promise<FastifyServer> {
  const app = Fastify(options);
  await app.register(protoloopFastify);
  app.post('/echo', async (req) => req.body);
  return await serveFastify(app, { host: '127.0.0.1', requestTimeout: 300, connectionsCheckingInterval: 50 });
}

describe('serveFastify request timeout', () => {
  it('answers 408 to a client that stalls after the headers, and cuts it', async () => {
    await run(async () => {
      const server = await echoApp();
      const got = await rawClient(server, (sock) => sock.write(HEAD));
      expect(got).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      await server.close();
      await server.waitClosed();
    }, opts);
  });

  it('answers 408 to a body trickling a byte at a time; a normal client meanwhile is served', async () => {
    await run(async () => {
      const server = await echoApp();
      const dispatcher = agent();
      let trickle: NodeJS.Timeout | undefined;
      try {
        const cut = rawClient(server, (sock) => {
          sock.write(HEAD);
          // The slow client's pace, not a synchronisation: the test waits for the 408.
          trickle = setInterval(() => sock.writable && sock.write(' '), 20);
        });
        const ok = await request(`${server.url}/echo`, { method: 'POST', dispatcher, headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
        expect(await ok.body.json()).toEqual({ a: 1 });
        expect(await cut).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      } finally {
        clearInterval(trickle);
        await dispatcher.close();
        await server.close();
        await server.waitClosed();
      }
    }, opts);
  });

  it('defaults to 60 s checked every 2 s, keeps the app’s own, and takes 0 to mean none', async () => {
    await run(async () => {
      const plain = Fastify();
      const a = await serveFastify(plain, { host: '127.0.0.1' });
      expect(a.httpServer.requestTimeout).toBe(60_000);
      expect((a.httpServer as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval).toBe(2_000);
      const own = Fastify({ requestTimeout: 12_345 });
      const b = await serveFastify(own, { host: '127.0.0.1' });
      expect(b.httpServer.requestTimeout).toBe(12_345);
      const none = Fastify();
      const c = await serveFastify(none, { host: '127.0.0.1', requestTimeout: 0 });
      expect(c.httpServer.requestTimeout).toBe(0);
      await expect(serveFastify(Fastify(), { requestTimeout: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(serveFastify(Fastify(), { connectionsCheckingInterval: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
      await Promise.all([a, b, c].map((s) => s.close()));
      await Promise.all([a, b, c].map((s) => s.waitClosed()));
    }, opts);
  });
});
