// Server lifecycle: host lists, startServing: false, serveForever and cancellation,
// closeClients/abortClients, graceful shutdown with a deadline, asyncDispose,
// connectAcceptedSocket, sendfile.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BaseServer, CancelledError, ConnectionError, InvalidStateError, SendfileNotAvailableError, Server } from '../../src/index.ts';
import { afterIterations, eventually } from '../helpers.ts';
import { EchoProtocol, Recorder, payload, portOf, runLoop, within } from './helpers.ts';

describe('Server', () => {
  it('listens on a list of hosts, IPv4 and IPv6', async () => {
    await runLoop(async (loop) => {
      await using server = await loop.createServer(() => new EchoProtocol(), { host: ['127.0.0.1', '::1'], port: 0 });
      expect(server).toBeInstanceOf(Server);
      expect(server).toBeInstanceOf(BaseServer);
      const addrs = server.sockets as net.AddressInfo[];
      expect(addrs.map((a) => a.family).sort()).toEqual(['IPv4', 'IPv6']);
      for (const a of addrs) {
        const [t, p] = await loop.createConnection(() => new Recorder(), { host: a.address, port: a.port });
        t.write('hi');
        await within(5000, p.waitBytes(2));
        t.close();
        await p.lost;
      }
    });
  });

  it('a port in use rejects with ConnectionError EADDRINUSE', async () => {
    await runLoop(async (loop) => {
      await using server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0 });
      const err = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: portOf(server) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectionError);
      expect(err).toMatchObject({ code: 'EADDRINUSE', errno: -os.constants.errno.EADDRINUSE, syscall: 'listen' });
    });
  });

  it('startServing: false binds, holds connections, and serves them once started', async () => {
    await runLoop(async (loop) => {
      let made = 0;
      await using server = await loop.createServer(
        () => {
          made++;
          return new EchoProtocol();
        },
        { host: '127.0.0.1', port: 0, startServing: false },
      );
      expect(server.isServing()).toBe(false);
      const sockets = (): number => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
      const before = sockets();
      const [t, p] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      t.write('early');
      // The server side accepted the connection (its socket handle exists) and holds it: no protocol yet.
      await eventually(() => sockets() >= before + 2, 5000, 'the server to accept the connection');
      expect(made).toBe(0);
      await server.startServing();
      await server.startServing();
      expect(server.isServing()).toBe(true);
      await within(5000, p.waitBytes(5));
      expect(p.data.toString()).toBe('early');
      t.close();
      await p.lost;
    });
  });

  it('serveForever() returns when closed; cancelling it closes the server and its clients', async () => {
    await runLoop(async (loop) => {
      const server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0 });
      const serving = loop.createTask(() => server.serveForever());
      const [, p] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      await expect(server.serveForever()).rejects.toThrow(InvalidStateError);
      serving.cancel();
      await expect(serving).rejects.toThrow(CancelledError);
      expect(server.isServing()).toBe(false);
      expect(server.sockets).toEqual([]);
      await within(5000, p.lost);
      await expect(server.startServing()).rejects.toThrow(InvalidStateError);

      const s2 = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0 });
      let started = false;
      const serving2 = loop.createTask(() => {
        const forever = s2.serveForever();
        started = true;
        return forever;
      });
      // Once started, the task's next microtasks park serveForever() on its future before the next iteration.
      await afterIterations(() => started, 'serveForever() to start');
      s2.close();
      await within(5000, serving2);
    });
  });

  it('serveForever() returns when close() comes while it is still starting (bound or not)', async () => {
    await runLoop(async (loop) => {
      for (const startServing of [true, false]) {
        const server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0, startServing });
        const forever = server.serveForever(); // still inside startServing()
        await expect(server.serveForever()).rejects.toThrow(InvalidStateError);
        server.close();
        await within(5000, forever);
        expect(server.isServing()).toBe(false);
        await within(5000, server.waitClosed());
      }
    });
  });

  it('closeClients() flushes and closes, abortClients() drops, close() is idempotent', async () => {
    await runLoop(async (loop) => {
      const server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0 });
      const conns = await Promise.all([1, 2, 3].map(() => loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) })));
      await eventually(() => server.clientCount >= 3, 5000, 'three clients');
      server.close();
      server.close();
      // A closed server accepts nothing new; existing clients go on.
      const err = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf({ sockets: [{ port: (conns[0]![0].getExtraInfo('peername') as net.AddressInfo).port }] }) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectionError);
      server.closeClients();
      for (const [, p] of conns) expect(await within(5000, p.lost)).toBeUndefined();
      await within(5000, server.waitClosed());
      expect(server.clientCount).toBe(0);
    });
  });

  it('shutdown() waits for clients to finish, then aborts the rest after the deadline', async () => {
    await runLoop(async (loop) => {
      const server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0 });
      const [quickT, quick] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      const [, slow] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      await eventually(() => server.clientCount >= 2, 5000, 'two clients');
      const t0 = loop.time();
      const shutdown = loop.createTask(() => server.shutdown({ timeout: 200 }));
      await afterIterations(() => !server.isServing(), 'shutdown() to begin');
      quickT.close(); // finishes on its own before the deadline
      await quick.lost;
      const { aborted } = await within(5000, shutdown);
      expect(aborted).toBe(1);
      expect(loop.time() - t0).toBeGreaterThanOrEqual(190);
      await within(5000, slow.lost);
      expect(server.clientCount).toBe(0);
    });
  });

  it('Symbol.asyncDispose closes the server and its clients', async () => {
    await runLoop(async (loop) => {
      let p!: Recorder;
      {
        await using server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0 });
        [, p] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
        await eventually(() => server.clientCount >= 1, 5000, 'the client');
      }
      await within(5000, p.lost);
      expect(loop.stats().openResources).toEqual({});
    });
  });

  it('connectAcceptedSocket() adopts a socket accepted by a plain net.Server', async () => {
    await runLoop(async (loop) => {
      const accepted = loop.createFuture<net.Socket>();
      const raw = net.createServer((s) => accepted.setResult(s));
      await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
      try {
        const port = (raw.address() as net.AddressInfo).port;
        const [ct, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port });
        const [st] = await loop.connectAcceptedSocket(() => new EchoProtocol(), await accepted);
        ct.write('adopted');
        await within(5000, client.waitBytes(7));
        expect(client.data.toString()).toBe('adopted');
        ct.close();
        await client.lost;
        st.close();
      } finally {
        await new Promise<void>((r) => raw.close(() => r()));
      }
    });
  });

  it('sendfile() sends a file range honouring flow control; fallback: false is refused', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoloop-sf-'));
    const file = path.join(dir, 'data.bin');
    const data = payload(3 * 1024 * 1024 + 17);
    fs.writeFileSync(file, data);
    try {
      await runLoop(async (loop) => {
        let sink!: Recorder;
        await using server = await loop.createServer(() => (sink = new Recorder(loop)), { host: '127.0.0.1', port: 0 });
        const [t] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
        await expect(loop.sendfile(t, file, { fallback: false })).rejects.toThrow(SendfileNotAvailableError);
        const sent = await within(10_000, loop.sendfile(t, file, { offset: 5, count: data.length - 10 }));
        expect(sent).toBe(data.length - 10);
        t.close();
        await within(10_000, sink.lost);
        expect(sink.data.equals(data.subarray(5, data.length - 5))).toBe(true);
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
