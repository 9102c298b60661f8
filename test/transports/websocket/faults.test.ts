// Bad input and faults over real WebSockets on 127.0.0.1: oversized messages, bad
// frames and bad UTF-8 sent by a raw TCP client, unmasked client frames, peers that
// vanish or never read, and a thousand connections at once. Each one must close only
// the connection at fault, with the right close code and a typed error.
import { describe, expect, it } from 'vitest';
import { HeartbeatTimeoutError, WebSocketError, getRunningLoop, run, sleep } from '../../../src/index.ts';
import type { WebSocketServer, WebSocketServerOptions } from '../../../src/index.ts';
import { Echo, RawClient, Recorder, frame, recordExceptions, eventually } from './helpers.ts';

async function server(protocols: Recorder[], options: WebSocketServerOptions = {}, make: () => Recorder = () => new Echo()): Promise<WebSocketServer> {
  return await getRunningLoop().createWebSocketServer(
    () => {
      const p = make();
      protocols.push(p);
      return p;
    },
    { host: '127.0.0.1', port: 0, ...options },
  );
}

async function expectClosedWith(raw: RawClient, protocol: Recorder, code: number): Promise<void> {
  await eventually(() => raw.closed && protocol.lost !== 'not yet', 5000, `close with ${code}`);
  expect(raw.closeCode()).toBe(code);
  const err = protocol.lost as WebSocketError;
  expect(err).toBeInstanceOf(WebSocketError);
  expect(err.closeCode).toBe(code);
  expect(protocol.lostCount).toBe(1);
}

describe('WebSocket bad input and faults', () => {
  it('an oversized message closes that connection with 1009; the others are unaffected', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const seen = recordExceptions();
      const protocols: Recorder[] = [];
      const s = await server(protocols, { maxPayload: 1000 });
      const [big, pBig] = await loop.createWebSocketConnection(() => new Recorder(), s.url!);
      const [ok, pOk] = await loop.createWebSocketConnection(() => new Recorder(), s.url!);
      ok.send('before');
      await eventually(() => pOk.messages.length === 1);
      big.send(Buffer.alloc(1000, 1)); // exactly the limit: fine
      await eventually(() => pBig.messages.length === 1);
      big.send(Buffer.alloc(1001, 1));
      await eventually(() => pBig.lost !== 'not yet');
      expect((pBig.lost as WebSocketError).closeCode).toBe(1009);
      await eventually(() => protocols[0]!.lost !== 'not yet');
      const serverSide = protocols[0]!.lost as WebSocketError;
      expect(serverSide.closeCode).toBe(1009);
      expect(serverSide.message).toMatch(/1009/);
      ok.send('after');
      await eventually(() => pOk.messages.length === 2);
      expect(pOk.messages).toEqual(['before', 'after']);
      expect(pOk.lost).toBe('not yet');
      // A message over the limit in fragments is refused the same way.
      const raw = await RawClient.connect(s.address()!.port);
      await eventually(() => protocols.length === 3);
      raw.write(frame(0x2, Buffer.alloc(600), { fin: false }));
      raw.write(frame(0x0, Buffer.alloc(600)));
      await expectClosedWith(raw, protocols[2]!, 1009);
      expect(seen).toEqual([]);
      ok.close();
      await s[Symbol.asyncDispose]();
    });
  });

  it('a port in use rejects with EADDRINUSE and reports nothing to the exception handler', async () => {
    await run(async () => {
      const seen = recordExceptions();
      const first = await server([]);
      const err = await server([], { port: first.address()!.port }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'EADDRINUSE', syscall: 'listen' });
      // A report would be scheduled through the loop: let it run a few iterations.
      for (let i = 0; i < 5; i++) await sleep(0);
      expect(seen).toEqual([]);
      first.close();
      await first.waitClosed();
    });
  });

  it('a malformed frame (unknown opcode, reserved bits) closes with 1002', async () => {
    await run(async () => {
      const protocols: Recorder[] = [];
      const s = await server(protocols);
      const port = s.address()!.port;
      const a = await RawClient.connect(port);
      a.write(frame(0x3, Buffer.from('x')));
      await eventually(() => protocols.length === 1);
      await expectClosedWith(a, protocols[0]!, 1002);
      const b = await RawClient.connect(port);
      b.write(frame(0x1, Buffer.from('x'), { rsv: 2 }));
      await eventually(() => protocols.length === 2);
      await expectClosedWith(b, protocols[1]!, 1002);
      const c = await RawClient.connect(port);
      c.write(frame(0x9, Buffer.alloc(200))); // control frame longer than 125 bytes
      await eventually(() => protocols.length === 3);
      await expectClosedWith(c, protocols[2]!, 1002);
      await s[Symbol.asyncDispose]();
    });
  });

  it('invalid UTF-8 in a text frame closes with 1007; a valid one split byte by byte arrives whole', async () => {
    await run(async () => {
      const protocols: Recorder[] = [];
      const s = await server(protocols, {}, () => new Recorder());
      const port = s.address()!.port;
      const good = await RawClient.connect(port);
      const bytes = frame(0x1, Buffer.from('žluťoučký kůň'));
      for (const byte of bytes) {
        good.write(Buffer.from([byte]));
        await sleep(0);
      }
      await eventually(() => protocols[0]?.messages.length === 1);
      expect(protocols[0]!.messages).toEqual(['žluťoučký kůň']);
      const bad = await RawClient.connect(port);
      bad.write(frame(0x1, Buffer.from([0x68, 0x69, 0xff, 0xfe])));
      await eventually(() => protocols.length === 2);
      await expectClosedWith(bad, protocols[1]!, 1007);
      expect(protocols[1]!.messages).toEqual([]);
      good.destroy();
      await s[Symbol.asyncDispose]();
    });
  });

  it('an unmasked client frame closes with 1002', async () => {
    await run(async () => {
      const protocols: Recorder[] = [];
      const s = await server(protocols);
      const raw = await RawClient.connect(s.address()!.port);
      raw.write(frame(0x1, Buffer.from('hello'), { mask: false }));
      await eventually(() => protocols.length === 1);
      await expectClosedWith(raw, protocols[0]!, 1002);
      expect(protocols[0]!.messages).toEqual([]);
      await s[Symbol.asyncDispose]();
    });
  });

  it('a peer that vanishes without a close frame is caught by the heartbeat (HeartbeatTimeoutError); live peers stay', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const protocols: Recorder[] = [];
      // A pong has 500 ms (not 100): a loaded machine must not time out the live peer.
      const s = await server(protocols, { heartbeat: { interval: 100, timeout: 500 } });
      // Before the connection exists: its heartbeat cannot time out sooner than interval + timeout after this.
      const t0 = loop.time();
      const raw = await RawClient.connect(s.address()!.port); // completes the handshake, never answers pings
      const [live, pLive] = await loop.createWebSocketConnection(() => new Recorder(), s.url!, { heartbeat: false });
      await eventually(() => protocols.length === 2);
      await eventually(() => protocols[0]!.lost !== 'not yet', 5000, 'heartbeat timeout');
      expect(protocols[0]!.lost).toBeInstanceOf(HeartbeatTimeoutError);
      expect((protocols[0]!.lost as HeartbeatTimeoutError).code).toBe('ERR_PROTOLOOP_HEARTBEAT_TIMEOUT');
      expect(loop.time() - t0).toBeGreaterThanOrEqual(550);
      expect(raw.frames.some((f) => f.opcode === 0x9)).toBe(true);
      await eventually(() => raw.closed);
      // The ws client answers pings by itself: it survives several rounds. Count the rounds
      // (pings it received), not time: the server pinging a third time means the two
      // before were answered in time.
      let pings = 0;
      (live.getExtraInfo('websocket') as import('ws').WebSocket).on('ping', () => pings++);
      await eventually(() => pings >= 3, 5000, 'three heartbeat rounds');
      expect(protocols[1]!.lost).toBe('not yet');
      live.send('alive');
      await eventually(() => pLive.messages.length === 1);
      // A client's heartbeat catches a server that stopped reading.
      const [watch, pWatch] = await loop.createWebSocketConnection(() => new Recorder(), s.url!, { heartbeat: { interval: 50, timeout: 100 } });
      await eventually(() => protocols.length === 3);
      protocols[2]!.transport.pauseReading();
      await eventually(() => pWatch.lost !== 'not yet', 5000, 'client heartbeat timeout');
      expect(pWatch.lost).toBeInstanceOf(HeartbeatTimeoutError);
      expect(watch.isClosing()).toBe(true);
      live.close();
      s.close();
      s.abortClients();
      await s.waitClosed();
    });
  });

  it('a peer that never reads: the protocol is paused and the buffer stays bounded', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const chunk = Buffer.alloc(16 * 1024, 7);
      let sent = 0;
      class Firehose extends Recorder {
        paused = false;
        override connectionMade(t: never): void {
          super.connectionMade(t);
          this.pump();
        }
        pump(): void {
          while (!this.paused && this.transport.state === 'open') {
            this.transport.send(chunk);
            sent += chunk.length;
          }
        }
        override pauseWriting(): void {
          super.pauseWriting();
          this.paused = true;
        }
        override resumeWriting(): void {
          super.resumeWriting();
          this.paused = false;
          loop.callSoon(() => this.pump());
        }
      }
      const protocols: Recorder[] = [];
      const s = await server(protocols, { heartbeat: false }, () => new Firehose());
      const raw = await RawClient.connect(s.address()!.port);
      raw.socket.pause();
      await eventually(() => protocols.length === 1 && protocols[0]!.events.includes('pause'));
      const p = protocols[0] as Firehose;
      // The kernel's socket buffers absorb a few MB first; then the producer stays paused.
      // The end state, by I/O rounds rather than time: paused with the buffer past the
      // high-water mark, and still so with nothing more produced after three turns of
      // Node's event loop (each one polls the socket: had the kernel room, a write would
      // drain the buffer and resume the producer).
      const [, high0] = p.transport.getWriteBufferLimits();
      let before = -1;
      for (let attempt = 0; attempt < 1000; attempt++) {
        await eventually(() => p.paused && p.transport.getWriteBufferSize() > high0, 10_000, 'the producer paused');
        before = sent;
        for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
        if (p.paused && sent === before) break;
      }
      expect(p.paused).toBe(true);
      expect(sent).toBe(before); // nothing more was produced while paused
      expect(sent).toBeLessThan(64 * 1024 * 1024);
      const [, high] = p.transport.getWriteBufferLimits();
      expect(p.transport.getWriteBufferSize()).toBeLessThanOrEqual(high + chunk.length);
      expect(p.transport.getWriteBufferSize()).toBeGreaterThan(high);
      // Reading again drains the buffer and the producer resumes.
      raw.socket.resume();
      await eventually(() => p.events.includes('resume'), 5000, 'resumeWriting');
      await eventually(() => sent > before);
      p.transport.abort();
      await eventually(() => p.lost !== 'not yet');
      expect(p.lost).toBeUndefined();
      await s[Symbol.asyncDispose]();
    });
  });

  it('serves 1,000 concurrent connections and leaks nothing', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const seen = recordExceptions();
      const protocols: Recorder[] = [];
      const s = await server(protocols);
      const N = 1000;
      const clients = await Promise.all(Array.from({ length: N }, () => loop.createWebSocketConnection(() => new Recorder(), s.url!)));
      await eventually(() => s.clientCount === N, 20_000, 'all accepted');
      for (const [t] of clients) t.send('ping');
      await eventually(() => clients.every(([, p]) => p.messages.length === 1), 20_000, 'all echoes');
      expect(loop.stats().openResources['WebSocket transport']).toBe(2 * N);
      for (const [t] of clients) t.close();
      await eventually(() => clients.every(([, p]) => p.lost !== 'not yet'), 20_000, 'all closed');
      await eventually(() => s.clientCount === 0, 20_000, 'server clients gone');
      expect(clients.every(([, p]) => p.lost === undefined && p.lostCount === 1)).toBe(true);
      expect(protocols.every((p) => p.lost === undefined && p.lostCount === 1)).toBe(true);
      expect(loop.stats().openResources['WebSocket transport'] ?? 0).toBe(0);
      await s[Symbol.asyncDispose]();
      expect(loop.stats().openResources['WebSocket server'] ?? 0).toBe(0);
      // No heartbeat timers left behind.
      expect(loop.stats().timersScheduled).toBe(0);
      expect(seen).toEqual([]);
    });
  });
});
