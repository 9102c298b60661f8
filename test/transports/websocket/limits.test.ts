// WebSocket server limits (issue 16): maxConnections (503), handshakeTimeout, idleTimeout;
// peer drops (1006) and malformed frames are counted, not logged as errors.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { IdleTimeoutError, WebSocketHandshakeError, getRunningLoop, openWebSocket, run, startWebSocketServer } from '../../../src/index.ts';
import type { WebSocketServer, WebSocketStream } from '../../../src/index.ts';
import { Echo, RawClient, Recorder, frame, recordExceptions } from './helpers.ts';
import { eventually } from '../../helpers.ts';

function portOf(server: WebSocketServer): number {
  return Number(new URL(server.url!).port);
}

/** A logger for the loop that keeps every line, whatever its level. */
function captureLog(): { lines: string[]; logger: never } {
  const lines: string[] = [];
  const keep = (level: string) => (o: unknown, msg?: string) => lines.push(`${level} ${String(msg ?? o)}`);
  const logger = { level: 'info', trace: keep('trace'), debug: keep('debug'), info: keep('info'), warn: keep('warn'), error: keep('error'), fatal: keep('fatal'), child: () => logger };
  return { lines, logger: logger as never };
}

/** The README's handler. */
async function echo(ws: WebSocketStream): Promise<void> {
  for await (const m of ws) await ws.send(m);
}

describe('WebSocket server limits', () => {
  it('maxConnections: a further upgrade is answered 503 and counted; the others keep talking', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const errors = recordExceptions();
      await using server = await loop.createWebSocketServer(() => new Echo(), { host: '127.0.0.1', port: 0, maxConnections: 1 });
      const [t, p] = await loop.createWebSocketConnection(() => new Recorder(), server.url!);
      await eventually(() => server.clientCount === 1);
      const refused = await loop.createWebSocketConnection(() => new Recorder(), server.url!).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(WebSocketHandshakeError);
      expect((refused as WebSocketHandshakeError).status).toBe(503);
      expect(server.stats()).toMatchObject({ rejected: 1, accepted: 1, connections: 1 });
      t.send('still here');
      await eventually(() => p.messages.length === 1);
      expect(p.messages[0]).toBe('still here');
      t.close();
      await eventually(() => p.lost !== 'not yet');
      expect(errors).toEqual([]);
    });
  });

  it('handshakeTimeout: a TCP client that never sends its upgrade is dropped and counted', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      await using server = await loop.createWebSocketServer(() => new Echo(), { host: '127.0.0.1', port: 0, handshakeTimeout: 100 });
      const socket = net.connect(portOf(server), '127.0.0.1');
      socket.on('error', () => {});
      let closed = false;
      socket.on('close', () => (closed = true));
      await eventually(() => closed, 5000, 'the silent client to be dropped');
      expect(server.stats().handshakeTimeouts).toBe(1);
    });
  });

  it('idleTimeout: a connection with no message either way gets IdleTimeoutError', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      let serverSide: Recorder | undefined;
      await using server = await loop.createWebSocketServer(() => (serverSide = new Recorder()), { host: '127.0.0.1', port: 0, idleTimeout: 100 });
      const [, p] = await loop.createWebSocketConnection(() => new Recorder(), server.url!);
      await eventually(() => serverSide !== undefined && serverSide.lost !== 'not yet', 5000, 'idle close');
      expect(serverSide!.lost).toBeInstanceOf(IdleTimeoutError);
      await eventually(() => p.lost !== 'not yet');
      expect(server.stats().idleClosed).toBe(1);
    });
  });

  it("the README's echo handler: a client that drops its TCP connection (1006) is counted, not logged as an error", async () => {
    const { lines, logger } = captureLog();
    await run(async () => {
      const errors = recordExceptions();
      await using server = await startWebSocketServer(
        async (ws) => {
          for await (const m of ws) await ws.send(m);
        },
        { host: '127.0.0.1', port: 0 },
      );
      const raw = await RawClient.connect(portOf(server));
      expect(raw.status).toBe(101);
      raw.destroy();
      await eventually(() => server.stats().peerDrops === 1, 5000, 'the drop to be counted');
      // A normal client is served as before.
      const ws = await openWebSocket(server.url!);
      await ws.send('hello');
      for await (const m of ws) {
        expect(m).toBe('hello');
        break;
      }
      await ws.close();
      await eventually(() => server.clientCount === 0);
      expect(errors).toEqual([]);
    }, { logger });
    expect(lines).toEqual([]);
  });

  it("the README's echo handler: a client that drops while the handler waits in send() (backpressure) is not logged either", async () => {
    const { lines, logger } = captureLog();
    await run(async () => {
      let serverWs: WebSocketStream | null = null;
      let handlerEnded = false;
      await using server = await startWebSocketServer(
        async (ws) => {
          serverWs = ws;
          try {
            await echo(ws);
          } finally {
            handlerEnded = true;
          }
        },
        { host: '127.0.0.1', port: 0, heartbeat: false },
      );
      const raw = await RawClient.connect(portOf(server));
      expect(raw.status).toBe(101);
      // The client sends and never reads: the echoes fill the kernel's buffers, then the
      // server's write buffer, and send() waits.
      raw.socket.pause();
      const message = frame(0x2, Buffer.alloc(64 * 1024, 1));
      const blocked = (): boolean => {
        const t = (serverWs as WebSocketStream | null)?.transport;
        return t !== undefined && t.getWriteBufferSize() > t.getWriteBufferLimits()[1];
      };
      for (let round = 0; round < 40 && !blocked(); round++) {
        for (let i = 0; i < 32; i++) raw.write(message);
        await eventually(() => blocked() || raw.socket.writableLength === 0, 5000, 'the server to take the messages');
      }
      expect(blocked()).toBe(true);
      expect(handlerEnded).toBe(false);
      raw.destroy();
      await eventually(() => handlerEnded && server.clientCount === 0, 5000, 'the handler to end');
      expect(server.stats().peerDrops).toBe(1);
    }, { logger });
    expect(lines).toEqual([]);
  });

  it('malformed frames are counted as such, not logged as errors', async () => {
    const { lines, logger } = captureLog();
    await run(async () => {
      const errors = recordExceptions();
      await using server = await startWebSocketServer(echo, { host: '127.0.0.1', port: 0 });
      const bad: Array<[string, Buffer, number]> = [
        ['a reserved opcode', frame(0x3, Buffer.from('x')), 1002],
        ['an unmasked client frame', frame(0x1, Buffer.from('x'), { mask: false }), 1002],
        ['reserved bits set', frame(0x1, Buffer.from('x'), { rsv: 4 }), 1002],
        ['invalid UTF-8 in a text frame', frame(0x1, Buffer.from([0xc3, 0x28])), 1007],
      ];
      for (const [i, [what, bytes, code]] of bad.entries()) {
        const raw = await RawClient.connect(portOf(server));
        // A good message first: the handler is inside its loop when the bad frame comes.
        raw.write(frame(0x1, Buffer.from('hi')));
        await eventually(() => raw.frames.length === 1, 5000, `the echo before ${what}`);
        raw.write(bytes);
        await eventually(() => raw.closed, 5000, `the server to close the connection after ${what}`);
        await eventually(() => server.stats().malformed === i + 1, 5000, `${what} to be counted`);
        expect([what, raw.closeCode()]).toEqual([what, code]);
      }
      await eventually(() => server.clientCount === 0);
      expect(errors).toEqual([]);
    }, { logger });
    expect(lines).toEqual([]);
  });
});

describe('WebSocket transport on the shared base', () => {
  it('a pauseWriting() that throws is reported and aborts that connection (not swallowed)', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const errors = recordExceptions();
      class Boom extends Recorder {
        override pauseWriting(): void {
          throw new Error('in pauseWriting');
        }
      }
      let serverSide: Boom | undefined;
      await using server = await loop.createWebSocketServer(() => (serverSide = new Boom()), { host: '127.0.0.1', port: 0, writeHighWaterMark: 1024 });
      const [clientT, client] = await loop.createWebSocketConnection(() => new Recorder(), server.url!);
      await eventually(() => serverSide?.transport !== undefined);
      clientT.pauseReading(); // the server's buffer grows past its high-water mark
      for (let i = 0; i < 64 && !serverSide!.transport.isClosing(); i++) serverSide!.transport.send(Buffer.alloc(1024 * 1024));
      await eventually(() => serverSide!.lost !== 'not yet', 5000, 'the connection to be aborted');
      expect((serverSide!.lost as Error).message).toBe('in pauseWriting');
      expect(errors.map((e) => e.message)).toEqual(['Fatal error on transport: protocol.pauseWriting() call failed']);
      clientT.resumeReading(); // the client then reads to the end and sees the drop
      await eventually(() => client.lost !== 'not yet', 5000, 'the client to see the drop');
    });
  });
});
