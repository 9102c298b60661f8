// WebSocket server limits (issue 16): maxConnections (503), handshakeTimeout, idleTimeout;
// peer drops (1006) and malformed frames are counted, not logged as errors.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { IdleTimeoutError, WebSocketHandshakeError, getRunningLoop, openWebSocket, run, startWebSocketServer } from '../../../src/index.ts';
import type { WebSocketServer } from '../../../src/index.ts';
import { Echo, RawClient, Recorder, frame, recordExceptions } from './helpers.ts';
import { eventually } from '../../helpers.ts';

function portOf(server: WebSocketServer): number {
  return Number(new URL(server.url!).port);
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
    });
  });

  it('malformed frames are counted as such, not logged as errors', async () => {
    await run(async () => {
      const errors = recordExceptions();
      await using server = await startWebSocketServer(
        async (ws) => {
          for await (const m of ws) await ws.send(m);
        },
        { host: '127.0.0.1', port: 0 },
      );
      const raw = await RawClient.connect(portOf(server));
      raw.write(frame(0x3, Buffer.from('x'))); // a reserved opcode: 1002
      await eventually(() => raw.closed, 5000, 'the server to close the connection');
      await eventually(() => server.stats().malformed === 1, 5000, 'the bad frame to be counted');
      expect(raw.closeCode()).toBe(1002);
      expect(errors).toEqual([]);
    });
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
