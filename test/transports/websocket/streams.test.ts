// The stream-style WebSocket API: openWebSocket/startWebSocketServer, receive() and
// async iteration, send() that waits for the write buffer to drain, reading
// backpressure through maxQueue, handler errors, and the end of a connection.
import { describe, expect, it } from 'vitest';
import {
  CancelledError,
  InvalidArgumentError,
  ResourceBusyError,
  TransportClosedError,
  WebSocketError,
  getRunningLoop,
  openWebSocket,
  run,
  startWebSocketServer,
} from '../../../src/index.ts';
import type { WebSocketStream } from '../../../src/index.ts';
import { afterIterations } from '../../helpers.ts';
import { recordExceptions, eventually } from './helpers.ts';

describe('WebSocket streams', () => {
  it('echoes through an async iterator; the handler returning closes the connection normally', async () => {
    await run(async () => {
      const server = await startWebSocketServer(
        async (ws) => {
          for await (const message of ws) {
            if (message === 'quit') return;
            await ws.send(typeof message === 'string' ? message.toUpperCase() : message);
          }
        },
        { host: '127.0.0.1', port: 0 },
      );
      await using ws = await openWebSocket(server.url!);
      await ws.send('hello');
      await ws.send(Buffer.from([9, 8]));
      expect(await ws.receive()).toBe('HELLO');
      expect(await ws.receive()).toEqual(Buffer.from([9, 8]));
      await ws.send('quit');
      expect(await ws.receive()).toBeNull();
      expect(await ws.receive()).toBeNull();
      expect(ws.closeError).toBeUndefined();
      await expect(ws.send('late')).rejects.toBeInstanceOf(TransportClosedError);
      server.close();
      await server.waitClosed();
    });
  });

  it('delivers every message that arrived before the end, then ends the iteration', async () => {
    await run(async () => {
      let closing = false;
      const server = await startWebSocketServer(
        async (ws) => {
          for (let i = 0; i < 100; i++) await ws.send(`m${i}`);
          closing = true;
          await ws.close();
        },
        { host: '127.0.0.1', port: 0 },
      );
      const ws = await openWebSocket(server.url!, { maxQueue: 4 });
      // Messages pile up against maxQueue: the server sent all 100 and began closing before we read one.
      await eventually(() => closing, 5000, 'the server to send everything and close');
      const got: unknown[] = [];
      for await (const m of ws) got.push(m);
      expect(got).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}`));
      await server[Symbol.asyncDispose]();
    });
  });

  it('send() waits while the write buffer is above the high-water mark', async () => {
    await run(async () => {
      let serverSide: WebSocketStream | null = null;
      const release = getRunningLoop().createFuture<void>();
      const server = await startWebSocketServer(
        async (ws) => {
          serverSide = ws;
          await release; // a slow reader: maxQueue 1 stops reading the socket at once
          let n = 0;
          for (let i = 0; i < 64; i++) n += ((await ws.receive()) as Buffer).length;
          await ws.send(String(n));
        },
        { host: '127.0.0.1', port: 0, maxQueue: 1 },
      );
      const ws = await openWebSocket(server.url!);
      ws.transport.setWriteBufferLimits(64 * 1024);
      const chunk = Buffer.alloc(256 * 1024);
      let sent = 0;
      const writer = getRunningLoop().createTask(async () => {
        for (let i = 0; i < 64; i++) {
          await ws.send(chunk);
          sent++;
        }
      });
      await eventually(() => serverSide !== null);
      // The kernel buffers fill (the server reads nothing); the buffer then climbs past the
      // high-water mark and the writer's send() waits for it to drain. A send() that did not
      // wait would have let the writer queue all 64 chunks by now.
      await eventually(() => ws.transport.getWriteBufferSize() > 64 * 1024, 10_000, 'the write buffer above the high-water mark');
      expect(sent).toBeLessThan(64); // blocked in send(), not buffering everything
      expect(ws.transport.getWriteBufferSize()).toBeLessThanOrEqual(64 * 1024 + chunk.length);
      release.setResult();
      await writer;
      expect(sent).toBe(64);
      expect(await ws.receive()).toBe(String(64 * chunk.length));
      await ws.close();
      await server[Symbol.asyncDispose]();
    });
  });

  it('a handler that throws is reported and its connection closed with 1011; receive() then throws', async () => {
    await run(async () => {
      const seen = recordExceptions();
      const server = await startWebSocketServer(
        async (ws) => {
          await ws.receive();
          throw new Error('handler bug');
        },
        { host: '127.0.0.1', port: 0 },
      );
      const ws = await openWebSocket(server.url!);
      await ws.send('go');
      const err = await ws.receive().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WebSocketError);
      expect((err as WebSocketError).closeCode).toBe(1011);
      expect(ws.closeError).toBe(err);
      await expect(ws.send('x')).rejects.toBe(err);
      await eventually(() => seen.length === 1);
      expect(seen[0]!.message).toBe('Unhandled exception in a WebSocket handler');
      expect((seen[0]!.exception as Error).message).toBe('handler bug');
      await server[Symbol.asyncDispose]();
    });
  });

  it('receive() is cancellable, refuses two readers, and options are validated', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const server = await startWebSocketServer(async (ws) => void (await ws.waitClosed()), { host: '127.0.0.1', port: 0 });
      const ws = await openWebSocket(server.url!);
      let reading = false;
      const reader = loop.createTask(() => {
        const r = ws.receive();
        reading = true;
        return r;
      });
      await afterIterations(() => reading, 'the reader to wait');
      await expect(ws.receive()).rejects.toBeInstanceOf(ResourceBusyError);
      reader.cancel();
      await expect(reader).rejects.toBeInstanceOf(CancelledError);
      // The stream still works after a cancelled read.
      reading = false;
      const second = loop.createTask(() => {
        const r = ws.receive();
        reading = true;
        return r;
      });
      await afterIterations(() => reading, 'the second reader to wait');
      await ws.close();
      expect(await second).toBeNull();
      await expect(openWebSocket(server.url!, { maxQueue: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(startWebSocketServer('nope' as never)).rejects.toBeInstanceOf(InvalidArgumentError);
      await server[Symbol.asyncDispose]();
    });
  });
});
