// Faults, each one ending in a typed error: refused, reset, DNS, a peer that never
// reads (memory bounded by the water marks), half-close, and 5,000 connections with no
// leaked handles.
import { constants } from 'node:os';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { ConnectionRefusedError, ConnectionResetError, DnsError, Protocol, type Loop, type Transport } from '../../src/index.ts';
import { eventually, pollOrThrow, pollUntil } from '../helpers.ts';
import { EchoProtocol, Recorder, portOf, runLoop, within } from './helpers.ts';

/** A raw Node server for the misbehaving peers. */
async function rawServer(onConnection: (s: net.Socket) => void): Promise<{ port: number; close: () => Promise<void>; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConnection(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    port,
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Writes `total` bytes in 64 KiB chunks, honouring pauseWriting/resumeWriting. */
class Firehose extends Protocol {
  transport!: Transport;
  sent = 0;
  paused = false;
  pauses = 0;
  maxBuffered = 0;
  readonly chunk = Buffer.alloc(64 * 1024, 0x61);
  readonly total: number;
  readonly loop: Loop;
  readonly done;
  readonly lost;
  constructor(loop: Loop, total: number) {
    super();
    this.loop = loop;
    this.total = total;
    this.done = loop.createFuture<void>();
    this.lost = loop.createFuture<Error | undefined>();
  }
  override connectionMade(t: Transport): void {
    this.transport = t;
    this.pump();
  }
  pump(): void {
    while (!this.paused && this.sent < this.total && !this.transport.isClosing()) {
      this.transport.write(this.chunk);
      this.sent += this.chunk.length;
      this.maxBuffered = Math.max(this.maxBuffered, this.transport.getWriteBufferSize());
    }
    if (this.sent >= this.total && !this.done.done()) this.done.setResult(undefined);
  }
  override pauseWriting(): void {
    this.paused = true;
    this.pauses++;
  }
  override resumeWriting(): void {
    this.paused = false;
    // Continue from a fresh loop callback, as a real producer would.
    this.loop.callSoon(() => this.pump());
  }
  override connectionLost(exc: Error | undefined): void {
    this.lost.setResult(exc);
  }
}

describe('faults', () => {
  it('connection refused rejects with ConnectionRefusedError', async () => {
    const port = await freePort();
    await runLoop(async (loop) => {
      const err = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectionRefusedError);
      expect(err).toMatchObject({ code: 'ECONNREFUSED', errno: -constants.errno.ECONNREFUSED, syscall: 'connect' });
      expect((err as Error).cause).toBeInstanceOf(Error);
    });
  });

  it('DNS failure rejects with DnsError', async () => {
    await runLoop(async (loop) => {
      const err = await within(20_000, loop.createConnection(() => new Recorder(), { host: 'no-such-host.invalid', port: 80 }).catch((e: unknown) => e));
      expect(err).toBeInstanceOf(DnsError);
      expect(err).toMatchObject({ code: expect.stringMatching(/^(ENOTFOUND|EAI_AGAIN)$/) as unknown, syscall: 'getaddrinfo' });
      expect((err as Error).message).toContain('no-such-host.invalid');
    });
  });

  it('a reset by the peer mid-stream ends in connectionLost(ConnectionResetError), after the data that arrived', async () => {
    let peerSocket!: (s: net.Socket) => void;
    const accepted = new Promise<net.Socket>((r) => (peerSocket = r));
    const peer = await rawServer((s) => {
      s.write('partial');
      peerSocket(s);
    });
    try {
      await runLoop(async (loop) => {
        const [t, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: peer.port });
        // The peer resets once the data reached the protocol (not after a fixed delay).
        await within(5000, client.waitBytes(7), 'the partial data');
        (await within(5000, accepted, 'the accept')).resetAndDestroy();
        const exc = await within(5000, client.lost);
        expect(exc).toBeInstanceOf(ConnectionResetError);
        expect(exc).toMatchObject({ code: 'ECONNRESET', errno: -constants.errno.ECONNRESET });
        expect(client.data.toString()).toBe('partial');
        expect(client.calls).toEqual(['made', 'data', 'lost']);
        // Writes after the peer broke the connection are dropped, not thrown.
        expect(() => t.write('late')).not.toThrow();
      });
    } finally {
      await peer.close();
    }
  });

  it('a peer that half-closes: data, eofReceived, then a clean close', async () => {
    const peer = await rawServer((s) => {
      s.end('bye');
    });
    try {
      await runLoop(async (loop) => {
        const [, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: peer.port });
        expect(await within(5000, client.lost)).toBeUndefined();
        expect(client.calls).toEqual(['made', 'data', 'eof', 'lost']);
        expect(client.data.toString()).toBe('bye');
      });
    } finally {
      await peer.close();
    }
  });

  it('a peer that never reads: the protocol is paused and the buffer stays near the high-water mark', async () => {
    const peer = await rawServer((s) => s.pause());
    try {
      await runLoop(async (loop) => {
        const [t, hose] = await loop.createConnection(() => new Firehose(loop, 1024 ** 3), { host: '127.0.0.1', port: peer.port });
        const [low, high] = t.getWriteBufferLimits();
        expect([low, high]).toEqual([16 * 1024, 64 * 1024]);
        // The kernel buffers fill (the peer reads nothing); the protocol must end up paused.
        await eventually(() => hose.paused, 5000, 'pauseWriting()');
        expect(hose.paused).toBe(true);
        expect(hose.pauses).toBeGreaterThanOrEqual(1);
        expect(hose.sent).toBeLessThan(64 * 1024 ** 2); // kernel buffers, not a GiB
        expect(hose.maxBuffered).toBeLessThanOrEqual(high + hose.chunk.length);
        expect(t.getWriteBufferSize()).toBeLessThanOrEqual(high + hose.chunk.length);
        t.abort();
        expect(await hose.lost).toBeUndefined();
      });
    } finally {
      await peer.close();
    }
  });

  it('writing 1 GiB while honouring pauseWriting keeps memory bounded', async () => {
    let received = 0;
    const peer = await rawServer((s) => s.on('data', (d: Buffer) => (received += d.length)));
    try {
      await runLoop(async (loop) => {
        const total = 1024 ** 3;
        const rss0 = process.memoryUsage().rss;
        let rssMax = rss0;
        const sampler = setInterval(() => (rssMax = Math.max(rssMax, process.memoryUsage().rss)), 20);
        try {
          const [t, hose] = await loop.createConnection(() => new Firehose(loop, total), { host: '127.0.0.1', port: peer.port });
          await within(25_000, hose.done, '1 GiB transfer');
          t.close();
          await within(10_000, hose.lost);
          expect(hose.pauses).toBeGreaterThan(0);
          expect(hose.maxBuffered).toBeLessThanOrEqual(64 * 1024 + hose.chunk.length);
        } finally {
          clearInterval(sampler);
        }
        // 1 GiB went through; the process grew by far less (garbage not yet collected included).
        expect(rssMax - rss0).toBeLessThan(256 * 1024 ** 2);
      });
      await pollOrThrow(() => received >= 1024 ** 3, 10_000, 'the peer to receive 1 GiB');
    } finally {
      await peer.close();
    }
  }, 45_000);

  it('5,000 concurrent connections open and close with no leaked handles', async () => {
    const tcpHandles = (): number => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPWRAP' || r === 'TCPServerWrap').length;
    const before = tcpHandles();
    await runLoop(async (loop, errors) => {
      const server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0, backlog: 5000 });
      const port = portOf(server);
      const clients: [Transport, Recorder][] = [];
      for (let batch = 0; batch < 10; batch++) {
        const opened = await Promise.all(Array.from({ length: 500 }, () => loop.createConnection(() => new Recorder(loop), { host: '127.0.0.1', port })));
        clients.push(...opened);
      }
      expect(clients).toHaveLength(5000);
      expect(tcpHandles()).toBeGreaterThanOrEqual(before + 5000);
      // All 5,000 are open at once; each echoes one message.
      for (const [t] of clients) t.write('ping');
      await within(20_000, Promise.all(clients.map(([, p]) => p.waitBytes(4))), 'echo on 5,000 connections');
      for (const [t] of clients) t.close();
      await within(20_000, Promise.all(clients.map(([, p]) => p.lost)), 'closing 5,000 connections');
      server.close();
      await within(10_000, server.waitClosed());
      expect(server.clientCount).toBe(0);
      expect(loop.stats().openResources).toEqual({});
      expect(errors).toEqual([]);
    });
    // Node closes handles asynchronously: wait for them, bounded.
    await pollUntil(() => tcpHandles() <= before, 5000);
    expect(tcpHandles()).toBeLessThanOrEqual(before);
  }, 60_000);
});
