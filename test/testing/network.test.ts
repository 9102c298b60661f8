// The memory network: transport semantics as real sockets have them (water marks,
// pause/resume reading, half-close, close/abort, connectionLost once, addresses,
// refused connects) and the faults (latency, bandwidth, partition, reset, stall),
// all on virtual time.
import { describe, expect, it } from 'vitest';
import {
  BufferedProtocol,
  ConnectionRefusedError,
  ConnectionResetError,
  Protocol,
  TransportClosedError,
  getRunningLoop,
  openConnection,
  run,
  sleep,
  startServer,
  type Transport,
} from '../../src/index.ts';
import { MemoryNetwork, MemoryServer, VirtualClock, createMemoryConnection } from '../../src/testing/index.ts';

/** Records every protocol call, in order. */
class Recorder extends Protocol {
  calls: string[] = [];
  data: Buffer[] = [];
  transport: Transport | null = null;
  lost: Error | undefined | null = null;
  keepOpen = false;
  lostCount = 0;
  onData: ((d: Buffer) => void) | null = null;
  override connectionMade(t: Transport): void {
    this.transport = t;
    this.calls.push('made');
  }
  override dataReceived(d: Buffer): void {
    this.data.push(d);
    this.calls.push('data');
    this.onData?.(d);
  }
  override eofReceived(): boolean {
    this.calls.push('eof');
    return this.keepOpen;
  }
  override connectionLost(exc: Error | undefined): void {
    this.lost = exc;
    this.lostCount++;
    this.calls.push('lost');
  }
  override pauseWriting(): void {
    this.calls.push('pause');
  }
  override resumeWriting(): void {
    this.calls.push('resume');
  }
  text(): string {
    return Buffer.concat(this.data).toString();
  }
}

const clock = (): VirtualClock => new VirtualClock({ autojump: 0 });

/** Waits on the loop until `cond()` holds (virtual time: costs no wall time). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 100_000 && !cond(); i++) await sleep(1);
  expect(cond()).toBe(true);
}

describe('MemoryNetwork', () => {
  it('servers and clients through the normal API; addresses; refused connects', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const network = new MemoryNetwork();
      const s = new Recorder();
      const server = await loop.createServer(() => s, { network, host: 'db', port: 5432 });
      expect(server).toBeInstanceOf(MemoryServer);
      expect(server.sockets).toEqual([{ address: 'db', port: 5432, family: 'memory' }]);
      const [t, c] = await loop.createConnection(() => new Recorder(), { network, host: 'db', port: 5432 });
      expect(s.calls).toEqual(['made']);
      expect(c.calls).toEqual(['made']);
      expect(t.getExtraInfo('peername')).toEqual({ address: 'db', port: 5432, family: 'memory' });
      expect(s.transport!.getExtraInfo('peername')).toEqual(t.getExtraInfo('sockname'));
      expect(network.connections()).toHaveLength(1);
      await expect(loop.createConnection(() => new Recorder(), { network, host: 'db', port: 1 })).rejects.toBeInstanceOf(ConnectionRefusedError);
      await expect(loop.createConnection(() => new Recorder(), { network, host: 'nowhere', port: 5432 })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      await expect(loop.createServer(() => new Recorder(), { network, host: 'db', port: 5432 })).rejects.toMatchObject({ code: 'EADDRINUSE' });
      t.close();
      await until(() => s.lostCount === 1 && c.lostCount === 1);
      expect(s.calls).toEqual(['made', 'eof', 'lost']);
      expect(c.calls).toEqual(['made', 'lost']);
      expect(network.connections()).toHaveLength(0);
      server.close();
      await server.waitClosed();
      await expect(loop.createConnection(() => new Recorder(), { network, host: 'db', port: 5432 })).rejects.toBeInstanceOf(ConnectionRefusedError);
    }, { clock: clock(), strict: true });
  });

  it('streams: startServer/openConnection with a network option; half-close', async () => {
    await run(async () => {
      const network = new MemoryNetwork();
      const server = await startServer(async (r, w) => {
        const body = await r.read();
        w.write(`got ${body.length}`);
        w.close();
      }, { network, host: 'svc', port: 80 });
      const [r, w] = await openConnection('svc', 80, { network });
      w.write('abc');
      w.writeEof();
      expect(String(await r.read())).toBe('got 3');
      expect(r.atEof()).toBe(true);
      w.close();
      await w.waitClosed();
      server.close();
      await server.waitClosed();
    }, { clock: clock(), strict: true });
  });

  it('water marks: a peer that stops reading makes the writer pause; resume when it reads again', async () => {
    await run(async () => {
      const { server, client } = await createMemoryConnection(() => new Recorder(), () => new Recorder());
      server.transport.pauseReading();
      expect(server.transport.isReading()).toBe(false);
      const chunk = Buffer.alloc(16 * 1024);
      for (let i = 0; i < 64; i++) client.transport.write(chunk);
      await until(() => client.protocol.calls.includes('pause'));
      // The window (256 KiB) is full and nothing more arrives while the reader is paused.
      await sleep(1000);
      const received = server.protocol.data.length;
      expect(received).toBe(0);
      expect(client.transport.getWriteBufferSize()).toBe(64 * 16 * 1024 - 256 * 1024);
      expect(client.protocol.calls).not.toContain('resume');
      server.transport.resumeReading();
      await until(() => client.protocol.calls.includes('resume'));
      await until(() => Buffer.concat(server.protocol.data).length === 64 * 16 * 1024);
      expect(client.transport.getWriteBufferSize()).toBe(0);
      client.transport.close();
      server.transport.close();
    }, { clock: clock() });
  });

  it('write after close/writeEof throws TransportClosedError; connectionLost exactly once', async () => {
    await run(async () => {
      const { server, client } = await createMemoryConnection(() => new Recorder(), () => new Recorder());
      server.protocol.keepOpen = true;
      client.transport.writeEof();
      expect(() => client.transport.write('x')).toThrow(TransportClosedError);
      await until(() => server.protocol.calls.includes('eof'));
      // Half-closed: the server still writes, the client still reads.
      server.transport.write('late');
      await until(() => client.protocol.text() === 'late');
      server.transport.close();
      server.transport.close();
      server.transport.abort();
      await until(() => client.protocol.lostCount === 1 && server.protocol.lostCount === 1);
      await sleep(100);
      expect(client.protocol.lostCount).toBe(1);
      expect(server.protocol.lostCount).toBe(1);
      expect(() => server.transport.write('x')).toThrow(TransportClosedError);
    }, { clock: clock() });
  });

  it('abort drops what is buffered; the peer sees EOF', async () => {
    await run(async () => {
      const { server, client } = await createMemoryConnection(() => new Recorder(), () => new Recorder());
      server.transport.pauseReading();
      for (let i = 0; i < 40; i++) client.transport.write(Buffer.alloc(16 * 1024));
      await sleep(1);
      expect(client.transport.getWriteBufferSize()).toBeGreaterThan(0);
      client.transport.abort();
      expect(client.transport.isClosing()).toBe(true);
      server.transport.resumeReading();
      await until(() => server.protocol.lostCount === 1);
      expect(server.protocol.lost).toBeUndefined();
      expect(Buffer.concat(server.protocol.data).length).toBe(256 * 1024);
      expect(client.protocol.lost).toBeUndefined();
    }, { clock: clock() });
  });

  it('a BufferedProtocol gets the bytes in its own buffer', async () => {
    class Buf extends BufferedProtocol {
      buf = Buffer.alloc(7);
      got: Buffer[] = [];
      override getBuffer(): Uint8Array {
        return this.buf;
      }
      override bufferUpdated(n: number): void {
        this.got.push(Buffer.from(this.buf.subarray(0, n)));
      }
    }
    await run(async () => {
      const { server, client } = await createMemoryConnection(() => new Buf(), () => new Recorder());
      client.transport.write('hello, buffered world');
      await until(() => Buffer.concat(server.protocol.got).toString() === 'hello, buffered world');
      expect(server.protocol.got.map((b) => b.length)).toEqual([7, 7, 7]);
      client.transport.close();
      server.transport.close();
    }, { clock: clock() });
  });

  it('latency and bandwidth, on the loop clock', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const network = new MemoryNetwork();
      network.latency(40);
      const { server, client } = await createMemoryConnection(() => new Recorder(), () => new Recorder(), { network });
      const t0 = loop.time();
      let at = 0;
      server.protocol.onData = () => {
        at = loop.time();
      };
      client.transport.write('x');
      await until(() => at > 0);
      expect(at - t0).toBe(40);
      network.latency(0);
      network.bandwidth(1000); // 1000 bytes/s: 500 bytes take 500 ms
      const t1 = loop.time();
      client.transport.write(Buffer.alloc(500));
      await until(() => Buffer.concat(server.protocol.data).length === 501);
      expect(at - t1).toBe(500);
      client.transport.close();
      server.transport.close();
    }, { clock: clock() });
  });

  it('partition: no byte passes, connections stay open, heal delivers in order', async () => {
    await run(async () => {
      const network = new MemoryNetwork();
      const { server, client } = await createMemoryConnection(() => new Recorder(), () => new Recorder(), { network });
      network.partition();
      client.transport.write('one ');
      client.transport.write('two');
      await sleep(60_000);
      expect(server.protocol.data).toEqual([]);
      expect(client.transport.isClosing()).toBe(false);
      expect(server.transport.isClosing()).toBe(false);
      network.heal();
      await until(() => server.protocol.text() === 'one two');
      client.transport.close();
      server.transport.close();
    }, { clock: clock() });
  });

  it('a connect during a partition waits for heal', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const network = new MemoryNetwork();
      const server = await loop.createServer(() => new Recorder(), { network, host: 'h', port: 1 });
      network.partition();
      loop.callLater(5000, () => network.heal());
      const [t] = await loop.createConnection(() => new Recorder(), { network, host: 'h', port: 1 });
      expect(loop.time()).toBeGreaterThanOrEqual(5000);
      t.close();
      server.close();
      await server.waitClosed();
    }, { clock: clock(), strict: true });
  });

  it('reset: ConnectionResetError on both sides; stall holds one link only', async () => {
    await run(async () => {
      const network = new MemoryNetwork();
      const a = await createMemoryConnection(() => new Recorder(), () => new Recorder(), { network });
      const b = await createMemoryConnection(() => new Recorder(), () => new Recorder(), { network });
      expect(network.connections()).toHaveLength(2);
      a.link.stall();
      a.client.transport.write('held');
      b.client.transport.write('passes');
      await until(() => b.server.protocol.text() === 'passes');
      await sleep(1000);
      expect(a.server.protocol.data).toEqual([]);
      a.link.release();
      await until(() => a.server.protocol.text() === 'held');
      b.link.reset();
      await until(() => b.client.protocol.lostCount === 1 && b.server.protocol.lostCount === 1);
      expect(b.client.protocol.lost).toBeInstanceOf(ConnectionResetError);
      expect(b.server.protocol.lost).toBeInstanceOf(ConnectionResetError);
      expect(network.connections()).toEqual([a.link]);
      a.client.transport.close();
      a.server.transport.close();
    }, { clock: clock() });
  });

  it('closing with unread data resets the peer, as TCP does', async () => {
    await run(async () => {
      const { server, client } = await createMemoryConnection(() => new Recorder(), () => new Recorder());
      server.transport.pauseReading();
      client.transport.write('unread');
      await sleep(1);
      server.transport.close();
      await until(() => client.protocol.lostCount === 1);
      expect(client.protocol.lost).toBeInstanceOf(ConnectionResetError);
    }, { clock: clock() });
  });
});
