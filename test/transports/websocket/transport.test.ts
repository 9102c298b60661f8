// The WebSocket transport/protocol pair over real WebSockets on 127.0.0.1: message
// delivery, extra info, the close paths and the error each gives connectionLost,
// reading and writing flow control, protocol errors, handshake refusals and
// cancellation, and the server lifecycle.
import http from 'node:http';
import net from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { WebSocketServer as RawWsServer } from 'ws';
import {
  CancelledError,
  Loop,
  createLogger,
  ConnectionRefusedError,
  InvalidArgumentError,
  TimeoutError,
  TransportClosedError,
  WebSocketError,
  WebSocketHandshakeError,
  getRunningLoop,
  run,
} from '../../../src/index.ts';
import type { WebSocketServer } from '../../../src/index.ts';
import { afterIterations, pollOrThrow } from '../../helpers.ts';
import { Echo, RawClient, Recorder, recordExceptions, eventually } from './helpers.ts';
import type { WebSocketTransport } from '../../../src/index.ts';

/** Lets `n` loop iterations run (a count, not a time). */
async function iterations(n: number): Promise<void> {
  let i = 0;
  await afterIterations(() => i++ >= n, `${n} iterations`, n + 1);
}

/**
 * Ordering proof that the server side `st` (reading paused) got nothing more of what the
 * client `t` sent, without a fixed wait: once the client's bytes are in the kernel they
 * sit in the server's receive queue (loopback); a marker the server sends after that
 * comes back to the client `p` through a later (or the same) poll of the one event loop.
 * Had `st` been reading, the messages would have been delivered by the time the marker
 * and a few iterations passed.
 */
async function markerRoundTrip(t: WebSocketTransport, st: WebSocketTransport, p: Recorder): Promise<void> {
  await eventually(() => t.getWriteBufferSize() === 0, 5000, 'the messages handed to the kernel');
  const before = p.messages.length;
  st.send('marker');
  await eventually(() => p.messages.length > before, 5000, 'the marker');
  expect(p.messages.at(-1)).toBe('marker');
  await iterations(5);
}

async function echoServer(options = {}): Promise<{ server: WebSocketServer; url: string; protocols: Echo[] }> {
  const protocols: Echo[] = [];
  const server = await getRunningLoop().createWebSocketServer(
    () => {
      const p = new Echo();
      protocols.push(p);
      return p;
    },
    { host: '127.0.0.1', port: 0, ...options },
  );
  return { server, url: server.url!, protocols };
}

describe('WebSocket transport', () => {
  it('delivers text as strings and binary as Buffers, in order, and echoes them', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const { server, url, protocols } = await echoServer();
      const [t, p] = await loop.createWebSocketConnection(() => new Recorder(), url);
      expect(p.events).toEqual(['made']);
      t.send('héllo');
      t.send(Buffer.from([1, 2, 3]));
      t.send(new Uint8Array([4, 5]));
      t.sendMany(['a', 'b']);
      await eventually(() => p.messages.length === 5);
      expect(p.messages).toEqual(['héllo', Buffer.from([1, 2, 3]), Buffer.from([4, 5]), 'a', 'b']);
      expect(p.events.slice(1, 4)).toEqual(['msg:text', 'msg:bin', 'msg:bin']);
      expect(protocols[0]!.messages[1]).toBeInstanceOf(Buffer);
      expect(() => t.send(42 as never)).toThrow(InvalidArgumentError);
      t.close();
      await eventually(() => p.lost !== 'not yet' && protocols[0]!.lost !== 'not yet');
      expect(p.lost).toBeUndefined();
      expect(protocols[0]!.lost).toBeUndefined();
      expect(p.events.at(-1)).toBe('lost');
      // A second connectionLost would come through a loop callback: let several iterations run.
      await iterations(10);
      expect(p.lostCount).toBe(1);
      expect(protocols[0]!.lostCount).toBe(1);
      server.close();
      await server.waitClosed();
    });
  });

  it('gives url, addresses, headers, subprotocol and the raw objects as extra info', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const { server, url, protocols } = await echoServer({ path: '/chat', handleProtocols: (offered: Set<string>) => (offered.has('v2') ? 'v2' : false) });
      const [t] = await loop.createWebSocketConnection(() => new Recorder(), `${url}?room=1`, { protocols: ['v1', 'v2'], headers: { 'x-token': 'abc' } });
      await eventually(() => protocols.length === 1 && protocols[0]!.transport !== undefined);
      const st = protocols[0]!.transport;
      expect(t.getExtraInfo('protocol')).toBe('v2');
      expect(st.getExtraInfo('protocol')).toBe('v2');
      expect(t.getExtraInfo('url')).toBe(`${url}?room=1`);
      expect(st.getExtraInfo('url')).toBe('/chat?room=1');
      expect((st.getExtraInfo('headers') as Record<string, string>)['x-token']).toBe('abc');
      expect(st.getExtraInfo('request')).toBeInstanceOf(http.IncomingMessage);
      const peer = st.getExtraInfo<{ address: string; port: number }>('peername')!;
      const mine = t.getExtraInfo<{ address: string; port: number }>('sockname')!;
      expect(peer).toEqual(mine);
      expect(st.getExtraInfo('socket')).toBeInstanceOf(net.Socket);
      expect(st.getExtraInfo('extensions')).toBe('');
      expect(st.getExtraInfo('nope', 7)).toBe(7);
      expect(String(server)).toContain('/chat');
      t.abort();
      server.close();
      server.abortClients();
      await server.waitClosed();
    });
  });

  it('connectionLost gets a WebSocketError with the code and reason of an abnormal close by the peer', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const { server, url, protocols } = await echoServer();
      const [t, p] = await loop.createWebSocketConnection(() => new Recorder(), url);
      t.close(4001, 'bye now');
      await eventually(() => protocols[0]?.lost !== 'not yet' && p.lost !== 'not yet');
      const err = protocols[0]!.lost as WebSocketError;
      expect(err).toBeInstanceOf(WebSocketError);
      expect(err.code).toBe('ERR_PROTOLOOP_WEBSOCKET');
      expect(err.closeCode).toBe(4001);
      expect(err.reason).toBe('bye now');
      // The side that closed was closed by itself: no error.
      expect(p.lost).toBeUndefined();
      expect(() => t.close(1005)).not.toThrow(); // idempotent once closed
      await server[Symbol.asyncDispose]();
    });
  });

  it('abort() drops the connection: undefined here, 1006 on the other side; writes after it throw', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const { server, url, protocols } = await echoServer();
      const [t, p] = await loop.createWebSocketConnection(() => new Recorder(), url);
      await eventually(() => protocols.length === 1);
      t.abort();
      t.abort();
      expect(t.isClosing()).toBe(true);
      expect(() => t.send('x')).toThrow(TransportClosedError);
      await eventually(() => protocols[0]!.lost !== 'not yet' && p.lost !== 'not yet');
      expect(p.lost).toBeUndefined();
      const err = protocols[0]!.lost as WebSocketError;
      expect(err).toBeInstanceOf(WebSocketError);
      expect(err.closeCode).toBe(1006);
      expect(p.lostCount).toBe(1);
      await server[Symbol.asyncDispose]();
    });
  });

  it('close() sends what is queued first, validates the code, and stops delivering', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const protocols: Recorder[] = [];
      const server = await loop.createWebSocketServer(
        () => {
          const p = new (class extends Recorder {
            override connectionMade(t: never): void {
              super.connectionMade(t);
              for (let i = 0; i < 50; i++) this.transport.send(Buffer.alloc(10_000, i));
              expect(() => this.transport.close(1006)).toThrow(InvalidArgumentError);
              expect(() => this.transport.close(1000, 'x'.repeat(124))).toThrow(InvalidArgumentError);
              this.transport.close(1000, 'done');
              expect(this.transport.isClosing()).toBe(true);
              expect(() => this.transport.send('late')).toThrow(TransportClosedError);
            }
          })();
          protocols.push(p);
          return p;
        },
        { host: '127.0.0.1', port: 0 },
      );
      const [, p] = await loop.createWebSocketConnection(() => new Recorder(), server.url!);
      await eventually(() => p.lost !== 'not yet');
      expect(p.messages.length).toBe(50);
      expect((p.messages[49] as Buffer)[0]).toBe(49);
      expect(p.lost).toBeUndefined();
      await eventually(() => protocols[0]!.lost !== 'not yet');
      expect(protocols[0]!.lost).toBeUndefined();
      server.close();
      await server.waitClosed();
    });
  });

  it('close() gives up the handshake after closeTimeout and aborts', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const protocols: Recorder[] = [];
      const server = await loop.createWebSocketServer(
        () => {
          const p = new Recorder();
          protocols.push(p);
          return p;
        },
        { host: '127.0.0.1', port: 0, closeTimeout: 100 },
      );
      const raw = await RawClient.connect(server.address()!.port);
      await eventually(() => protocols.length === 1);
      const t0 = loop.time();
      protocols[0]!.transport.close();
      await eventually(() => protocols[0]!.lost !== 'not yet');
      expect(loop.time() - t0).toBeGreaterThanOrEqual(80);
      expect(protocols[0]!.lost).toBeUndefined();
      expect(raw.closeCode()).toBe(1000);
      await eventually(() => raw.closed);
      await server[Symbol.asyncDispose]();
    });
  });

  it('pauseReading() holds messages (in order) until resumeReading()', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const protocols: Recorder[] = [];
      const server = await loop.createWebSocketServer(
        () => {
          const p = new Recorder();
          protocols.push(p);
          return p;
        },
        { host: '127.0.0.1', port: 0 },
      );
      const [t, p] = await loop.createWebSocketConnection(() => new Recorder(), server.url!);
      await eventually(() => protocols.length === 1);
      const st = protocols[0]!.transport;
      st.pauseReading();
      st.pauseReading();
      expect(st.isReading()).toBe(false);
      for (let i = 0; i < 20; i++) t.send(`m${i}`);
      await markerRoundTrip(t, st, p);
      expect(protocols[0]!.messages).toEqual([]);
      st.resumeReading();
      expect(st.isReading()).toBe(true);
      await eventually(() => protocols[0]!.messages.length === 20);
      expect(protocols[0]!.messages).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
      // A protocol that pauses in the middle of a burst gets nothing more until it resumes.
      const burst = protocols[0]!;
      let count = 0;
      burst.messageReceived = function (data) {
        this.messages.push(data);
        if (++count === 3) st.pauseReading();
      };
      for (let i = 0; i < 10; i++) t.send(`n${i}`);
      await eventually(() => count >= 3);
      await markerRoundTrip(t, st, p);
      expect(count).toBe(3);
      st.resumeReading();
      await eventually(() => count === 10);
      expect(burst.messages.slice(20)).toEqual(Array.from({ length: 10 }, (_, i) => `n${i}`));
      t.close();
      await eventually(() => p.lost !== 'not yet');
      await server[Symbol.asyncDispose]();
    });
  });

  it('pauseWriting()/resumeWriting() follow the write buffer against the water marks', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const { server, url } = await echoServer();
      const [t, p] = await loop.createWebSocketConnection(() => new Recorder(), url);
      expect(t.getWriteBufferLimits()).toEqual([16 * 1024, 64 * 1024]);
      expect(() => t.setWriteBufferLimits(10, 20)).toThrow(InvalidArgumentError);
      t.setWriteBufferLimits(1000);
      expect(t.getWriteBufferLimits()).toEqual([250, 1000]);
      // Big enough that the kernel cannot take it all at once.
      for (let i = 0; i < 20; i++) t.send(Buffer.alloc(512 * 1024));
      expect(t.getWriteBufferSize()).toBeGreaterThan(1000);
      expect(p.events).toContain('pause');
      await eventually(() => p.events.includes('resume'), 10_000, 'resumeWriting');
      expect(p.events.filter((e) => e === 'pause').length).toBe(p.events.filter((e) => e === 'resume').length);
      await eventually(() => p.messages.length === 20, 10_000, 'echoes');
      t.close();
      await eventually(() => p.lost !== 'not yet');
      await server[Symbol.asyncDispose]();
    });
  });

  it('an exception in a protocol callback goes to the exception handler and aborts that connection only', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const seen = recordExceptions();
      const boom = new Error('boom');
      const protocols: Recorder[] = [];
      const server = await loop.createWebSocketServer(
        () => {
          const p = new (class extends Echo {
            override messageReceived(data: Buffer | string, isBinary: boolean): void {
              if (data === 'crash') throw boom;
              super.messageReceived(data, isBinary);
            }
          })();
          protocols.push(p);
          return p;
        },
        { host: '127.0.0.1', port: 0 },
      );
      const [a, pa] = await loop.createWebSocketConnection(() => new Recorder(), server.url!);
      const [b, pb] = await loop.createWebSocketConnection(() => new Recorder(), server.url!);
      a.send('crash');
      await eventually(() => pa.lost !== 'not yet');
      expect(pa.lost).toBeInstanceOf(WebSocketError);
      expect(seen).toHaveLength(1);
      expect(seen[0]!.message).toContain('messageReceived');
      expect(seen[0]!.exception).toBe(boom);
      expect(seen[0]!.protocol).toBe(protocols[0]);
      expect(seen[0]!.transport).toBe(protocols[0]!.transport);
      expect(protocols[0]!.lost).toBe(boom);
      b.send('still here');
      await eventually(() => pb.messages.length === 1);
      expect(pb.messages).toEqual(['still here']);
      b.close();
      await eventually(() => pb.lost !== 'not yet');
      await server[Symbol.asyncDispose]();
      expect(a.isClosing()).toBe(true);
    });
  });

  it('refuses a wrong path (404), a rejected origin (403), plain HTTP (426), and typed client errors', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const { server } = await echoServer({
        path: '/ws',
        verifyClient: (info: { origin?: string }, cb: (ok: boolean, status?: number) => void) => cb(info.origin === 'https://good.example', 403),
      });
      const port = server.address()!.port;
      const wrong = await loop.createWebSocketConnection(() => new Recorder(), `ws://127.0.0.1:${port}/nope`, { origin: 'https://good.example' }).catch((e: unknown) => e);
      expect(wrong).toBeInstanceOf(WebSocketHandshakeError);
      expect((wrong as WebSocketHandshakeError).status).toBe(404);
      expect((wrong as WebSocketHandshakeError).code).toBe('ERR_PROTOLOOP_WEBSOCKET_HANDSHAKE');
      const evil = await loop.createWebSocketConnection(() => new Recorder(), `ws://127.0.0.1:${port}/ws`, { origin: 'https://evil.example' }).catch((e: unknown) => e);
      expect(evil).toBeInstanceOf(WebSocketHandshakeError);
      expect((evil as WebSocketHandshakeError).status).toBe(403);
      const raw = await RawClient.connect(port, '/ws', { Origin: 'https://evil.example' });
      expect(raw.status).toBe(403);
      await eventually(() => raw.closed);
      const res = await fetch(`http://127.0.0.1:${port}/ws`);
      expect(res.status).toBe(426);
      await res.text();
      const [ok] = await loop.createWebSocketConnection(() => new Recorder(), `ws://127.0.0.1:${port}/ws`, { origin: 'https://good.example' });
      ok.close();
      await server[Symbol.asyncDispose]();
      const refused = await loop.createWebSocketConnection(() => new Recorder(), `ws://127.0.0.1:${port}/ws`).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(ConnectionRefusedError);
      await expect(loop.createWebSocketConnection(() => new Recorder(), 'http://x')).rejects.toThrow(InvalidArgumentError);
      await expect(loop.createWebSocketConnection(() => new Recorder(), 'ws://127.0.0.1:1/', { maxPayload: -1 })).rejects.toThrow(InvalidArgumentError);
      await expect(loop.createWebSocketServer(() => new Recorder(), { port: 70000 })).rejects.toThrow(InvalidArgumentError);
    });
  });

  it('a handshake that never completes times out; cancelling or aborting the connect stops it', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const sockets: net.Socket[] = [];
      const silent = net.createServer((s) => {
        sockets.push(s);
        s.on('error', () => {});
        s.resume();
      });
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
      const url = `ws://127.0.0.1:${(silent.address() as net.AddressInfo).port}/`;
      const timedOut = await loop.createWebSocketConnection(() => new Recorder(), url, { handshakeTimeout: 100 }).catch((e: unknown) => e);
      expect(timedOut).toBeInstanceOf(TimeoutError);
      const task = loop.createTask(() => loop.createWebSocketConnection(() => new Recorder(), url));
      // Cancel once the connect is in flight: the silent server accepted its socket.
      await eventually(() => sockets.length === 2, 5000, 'the second connection');
      task.cancel();
      await expect(task).rejects.toBeInstanceOf(CancelledError);
      const ac = new AbortController();
      const p = loop.createWebSocketConnection(() => new Recorder(), url, { signal: ac.signal });
      await eventually(() => sockets.length === 3, 5000, 'the third connection');
      ac.abort(new Error('user gave up'));
      const aborted = await p.catch((e: unknown) => e);
      expect(aborted).toBeInstanceOf(CancelledError);
      expect((aborted as Error).cause).toBeInstanceOf(Error);
      await expect(loop.createWebSocketConnection(() => new Recorder(), url, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(CancelledError);
      await eventually(() => sockets.length >= 3 && sockets.every((s) => s.destroyed), 5000, 'client sockets closed');
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    });
  });

  it('closeClients() closes with 1001 (a normal end), waitClosed() waits for the clients, await using disposes', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const clients: Recorder[] = [];
      let server: WebSocketServer;
      {
        await using s = (await echoServer()).server;
        server = s;
        for (let i = 0; i < 3; i++) clients.push((await loop.createWebSocketConnection(() => new Recorder(), s.url!))[1]);
        await eventually(() => s.clientCount === 3);
        expect(s.clients).toHaveLength(3);
        expect(s.isServing()).toBe(true);
        expect(s.sockets).toHaveLength(1);
      }
      expect(server.isServing()).toBe(false);
      expect(server.clientCount).toBe(0);
      for (const c of clients) {
        expect(c.lost).toBeUndefined();
        expect(c.lostCount).toBe(1);
      }
      const refused = await loop.createWebSocketConnection(() => new Recorder(), server.url!).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(ConnectionRefusedError);
    });
  });

  it('closing the server keeps live connections until closeClients()/abortClients()', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const { server, url } = await echoServer();
      const [t, p] = await loop.createWebSocketConnection(() => new Recorder(), url);
      server.close();
      let closed = false;
      const waiting = server.waitClosed().then(() => {
        closed = true;
      });
      t.send('still open');
      await eventually(() => p.messages.length === 1);
      expect(closed).toBe(false);
      server.abortClients();
      await waiting;
      await eventually(() => p.lost !== 'not yet');
      expect((p.lost as WebSocketError).closeCode).toBe(1006);
    });
  });

  it('startServing: false holds upgrades until startServing()', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const { server, url } = await echoServer({ startServing: false });
      expect(server.isServing()).toBe(false);
      const upgrade = vi.spyOn(server, 'upgrade');
      let settled = false;
      const connecting = loop.createWebSocketConnection(() => new Recorder(), url);
      void connecting.then(() => (settled = true), () => (settled = true));
      // The upgrade request reached the server, which holds it: no client, no answer.
      await eventually(() => upgrade.mock.calls.length === 1, 5000, 'the upgrade request');
      await iterations(5);
      expect(server.clientCount).toBe(0);
      expect(settled).toBe(false);
      await server.startServing();
      const [t, p] = await connecting;
      t.send('hi');
      await eventually(() => p.messages.length === 1);
      t.close();
      await server[Symbol.asyncDispose]();
    });
  });

  it('shares an HTTP server: one WebSocket server per path, other paths 404, HTTP requests untouched', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const httpServer = http.createServer((_req, res) => res.end('plain http'));
      await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
      const port = (httpServer.address() as net.AddressInfo).port;
      const a = await loop.createWebSocketServer(() => new Echo(), { server: httpServer, path: '/a' });
      const b = await loop.createWebSocketServer(
        () =>
          new (class extends Recorder {
            override messageReceived(data: Buffer | string): void {
              this.transport.send(`b:${String(data)}`);
            }
          })(),
        { server: httpServer, path: '/b' },
      );
      expect(a.url).toBe(`ws://127.0.0.1:${port}/a`);
      const [ta, pa] = await loop.createWebSocketConnection(() => new Recorder(), `ws://127.0.0.1:${port}/a`);
      const [tb, pb] = await loop.createWebSocketConnection(() => new Recorder(), `ws://127.0.0.1:${port}/b`);
      ta.send('x');
      tb.send('y');
      await eventually(() => pa.messages.length === 1 && pb.messages.length === 1);
      expect(pa.messages).toEqual(['x']);
      expect(pb.messages).toEqual(['b:y']);
      const none = await loop.createWebSocketConnection(() => new Recorder(), `ws://127.0.0.1:${port}/c`).catch((e: unknown) => e);
      expect((none as WebSocketHandshakeError).status).toBe(404);
      expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('plain http');
      ta.close();
      tb.close();
      await a[Symbol.asyncDispose]();
      await b[Symbol.asyncDispose]();
      expect(httpServer.listening).toBe(true);
      expect(httpServer.listenerCount('upgrade')).toBe(0);
      await new Promise<void>((r) => httpServer.close(() => r()));
    });
  });

  it('a protocol factory that throws is reported and the connection refused; others continue', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const seen = recordExceptions();
      let n = 0;
      const server = await loop.createWebSocketServer(
        () => {
          if (n++ === 0) throw new Error('factory failed');
          return new Echo();
        },
        { host: '127.0.0.1', port: 0 },
      );
      const [t1, p1] = await loop.createWebSocketConnection(() => new Recorder(), server.url!);
      await eventually(() => p1.lost !== 'not yet');
      expect(seen[0]!.message).toContain('protocol factory');
      const [t2, p2] = await loop.createWebSocketConnection(() => new Recorder(), server.url!);
      t2.send('ok');
      await eventually(() => p2.messages.length === 1);
      t1.abort();
      t2.close();
      await server[Symbol.asyncDispose]();
    });
  });

  it('debug mode reports a slow protocol callback with its protocol and transport', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', stream: { write: (chunk: string) => lines.push(chunk) } });
    await run(
      async () => {
        const loop = getRunningLoop();
        loop.slowCallbackDuration = 30;
        class Slow extends Recorder {
          override messageReceived(data: Buffer | string, isBinary: boolean): void {
            super.messageReceived(data, isBinary);
            const end = performance.now() + 60;
            while (performance.now() < end) {
              // blocking the loop on purpose
            }
          }
        }
        const server = await loop.createWebSocketServer(() => new Slow(), { host: '127.0.0.1', port: 0 });
        const [t] = await loop.createWebSocketConnection(() => new Recorder(), server.url!);
        t.send('block');
        await eventually(() => lines.some((l) => l.includes('Slow.messageReceived()')));
        t.close();
        await server[Symbol.asyncDispose]();
      },
      { debug: true, logger },
    );
    const line = lines.find((l) => l.includes('Slow.messageReceived()'))!;
    expect(line).toMatch(/Executing Slow\.messageReceived\(\) on <WebSocketTransport open /);
  });

  it('no protocol callback runs while the loop is not running: messages wait, in order', async () => {
    const raw = new RawWsServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => raw.once('listening', r));
    const peers: import('ws').WebSocket[] = [];
    raw.on('connection', (ws) => peers.push(ws));
    const loop = new Loop();
    try {
      const [t, p] = await loop.runUntilComplete(() => loop.createWebSocketConnection(() => new Recorder(), `ws://127.0.0.1:${(raw.address() as net.AddressInfo).port}/`, { heartbeat: false }));
      await pollOrThrow(() => peers.length === 1, 5000, 'the peer');
      const socket = t.getExtraInfo('socket') as net.Socket;
      const read0 = socket.bytesRead;
      for (const m of ['one', 'two', 'three']) peers[0]!.send(m);
      // The loop is stopped: the frames are read off the socket (the transport then holds
      // them and stops reading) but reach no protocol callback.
      await pollOrThrow(() => socket.bytesRead > read0, 5000, 'the frames to be read');
      expect(p.messages).toEqual([]);
      expect(p.events).toEqual(['made']);
      await loop.runUntilComplete(async () => {
        await eventually(() => p.messages.length === 3);
        t.close();
        await eventually(() => p.lost !== 'not yet');
      });
      expect(p.messages).toEqual(['one', 'two', 'three']);
      expect(p.events).toEqual(['made', 'msg:text', 'msg:text', 'msg:text', 'lost']);
    } finally {
      loop.close();
      for (const c of raw.clients) c.terminate();
      await new Promise((r) => raw.close(r));
    }
  });
});
