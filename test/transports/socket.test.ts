// Stream transports over real loopback sockets: echo through both read paths, the
// write-copy contract, half-close, reading flow control, errors of use, extra info.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError, Protocol, SocketTransport, TransportClosedError, type Loop, type Transport } from '../../src/index.ts';
import { setRewrapAccepted } from '../../src/transports/net/node-internals.ts';
import { afterIterations, eventually, pollOrThrow } from '../helpers.ts';
import { BufferedEcho, EchoProtocol, Recorder, payload, portOf, runLoop, within } from './helpers.ts';

/** Lets `n` loop iterations run (a count, not a time). */
async function iterations(n: number): Promise<void> {
  let i = 0;
  await afterIterations(() => i++ >= n, `${n} iterations`, n + 1);
}

async function echoRoundTrip(loop: Loop, factory: () => Protocol | BufferedEcho, size: number): Promise<void> {
  await using server = await loop.createServer(factory, { host: '127.0.0.1', port: 0 });
  const [t, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
  const data = payload(size);
  t.write(data);
  await within(10_000, client.waitBytes(size), 'echo');
  expect(client.data.equals(data)).toBe(true);
  t.close();
  expect(await client.lost).toBeUndefined();
  const calls = client.calls.filter((c, i, all) => c !== 'pause' && c !== 'resume' && !(c === 'data' && all.slice(0, i).includes('data')));
  expect(calls).toEqual(['made', 'data', 'lost']);
}

describe.each([
  ['onread (direct accept)', true],
  ['plain accepted sockets', false],
])('server sockets read through %s', (_name, rewrap) => {
  let previous = true;
  afterEach(() => {
    setRewrapAccepted(previous);
  });

  it('echoes with a Protocol', async () => {
    previous = setRewrapAccepted(rewrap);
    await runLoop(async (loop, errors) => {
      await echoRoundTrip(loop, () => new EchoProtocol(), 1_000_000);
      expect(errors).toEqual([]);
    });
  });

  it('echoes with a BufferedProtocol that writes views of its reused buffer (no byte changes under a pending write)', async () => {
    previous = setRewrapAccepted(rewrap);
    await runLoop(async (loop, errors) => {
      // A small buffer makes many reads overwrite it while earlier writes are pending.
      await echoRoundTrip(loop, () => new BufferedEcho(4096), 4_000_000);
      await echoRoundTrip(loop, () => new BufferedEcho(), 4_000_000);
      expect(errors).toEqual([]);
    });
  });
});

describe('SocketTransport', () => {
  it('copies what it cannot write at once: the caller may reuse its buffer', async () => {
    await runLoop(async (loop) => {
      const sink = new Recorder(loop);
      await using server = await loop.createServer(() => sink, { host: '127.0.0.1', port: 0 });
      const [t] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      const scratch = Buffer.alloc(64 * 1024);
      const expected: Buffer[] = [];
      for (let i = 0; i < 64; i++) {
        scratch.fill(i);
        t.write(scratch);
        expected.push(Buffer.alloc(scratch.length, i));
      }
      t.close();
      await within(10_000, sink.lost);
      expect(sink.data.equals(Buffer.concat(expected))).toBe(true);
    });
  });

  it('works over Unix sockets', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoloop-'));
    const sockPath = path.join(dir, 's.sock');
    try {
      await runLoop(async (loop) => {
        const server = await loop.createUnixServer(() => new EchoProtocol(), sockPath);
        expect(server.sockets).toEqual([sockPath]);
        const [t, client] = await loop.createUnixConnection(() => new Recorder(), sockPath);
        expect(t.getExtraInfo('path')).toBe(sockPath);
        t.write('hello unix');
        await within(5000, client.waitBytes(10));
        expect(client.data.toString()).toBe('hello unix');
        t.close();
        await client.lost;
        server.close();
        await server.waitClosed();
      });
      expect(fs.existsSync(sockPath)).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('half-closes: writeEof() keeps reading, eofReceived() returning true keeps writing', async () => {
    await runLoop(async (loop) => {
      let serverSide!: Recorder;
      await using server = await loop.createServer(
        () => {
          serverSide = new Recorder(loop);
          serverSide.keepOpenOnEof = true;
          return serverSide;
        },
        { host: '127.0.0.1', port: 0 },
      );
      const [t, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      expect(t.canWriteEof()).toBe(true);
      t.write('request');
      t.writeEof();
      expect(() => t.write('more')).toThrow(TransportClosedError);
      await within(5000, serverSide.eof);
      expect(serverSide.data.toString()).toBe('request');
      // The server still writes after the client's EOF.
      serverSide.transport.write('response');
      serverSide.transport.close();
      await within(5000, client.lost);
      expect(client.data.toString()).toBe('response');
      expect(client.calls).toEqual(['made', 'data', 'eof', 'lost']);
      expect(await serverSide.lost).toBeUndefined();
      expect(serverSide.calls).toEqual(['made', 'data', 'eof', 'lost']);
    });
  });

  it('closes itself when eofReceived() is falsy', async () => {
    await runLoop(async (loop) => {
      let serverSide!: Recorder;
      await using server = await loop.createServer(() => (serverSide = new Recorder(loop)), { host: '127.0.0.1', port: 0 });
      const [t, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      client.keepOpenOnEof = true;
      t.writeEof();
      await within(5000, serverSide.lost);
      await within(5000, client.eof);
      t.close();
      await client.lost;
      expect(serverSide.calls).toEqual(['made', 'eof', 'lost']);
    });
  });

  it('pauseReading() stops delivery and resumeReading() delivers what waited', async () => {
    await runLoop(async (loop) => {
      let serverSide!: Recorder;
      await using server = await loop.createServer(() => (serverSide = new Recorder(loop)), { host: '127.0.0.1', port: 0 });
      const [t, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      t.write('a');
      await within(5000, serverSide.made);
      await within(5000, serverSide.waitBytes(1));
      serverSide.transport.pauseReading();
      serverSide.transport.pauseReading();
      expect(serverSide.transport.isReading()).toBe(false);
      t.write('b');
      // Ordering proof, no fixed wait: once the client handed 'b' to the kernel, it sits in
      // the server's receive queue (loopback); a marker the server sends after that comes
      // back through a later (or the same) poll of the one event loop. Had reading gone on,
      // 'b' would have been delivered by the time the marker and a few iterations passed.
      await eventually(() => t.getWriteBufferSize() === 0, 5000, "'b' handed to the kernel");
      serverSide.transport.write('m');
      await within(5000, client.waitBytes(1), 'the marker');
      await iterations(5);
      expect(serverSide.data.toString()).toBe('a');
      serverSide.transport.resumeReading();
      await within(5000, serverSide.waitBytes(2));
      expect(serverSide.data.toString()).toBe('ab');
      t.abort();
      await serverSide.lost;
    });
  });

  it('rejects writes after close() and abort(), and closing twice is harmless', async () => {
    await runLoop(async (loop) => {
      await using server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0 });
      const [t, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      t.close();
      t.close();
      t.abort();
      expect(t.isClosing()).toBe(true);
      expect(() => t.write('x')).toThrow(TransportClosedError);
      expect(() => t.write('x')).toThrow(expect.objectContaining({ code: 'ERR_PROTOLOOP_TRANSPORT_CLOSED' }));
      expect(() => t.writeLines(['x'])).toThrow(TransportClosedError);
      await client.lost;
      t.close();
      t.abort();
      // A second connectionLost would come through a loop callback: let several iterations run.
      await iterations(10);
      expect(client.calls.filter((c) => c === 'lost')).toHaveLength(1);
    });
  });

  it('rejects bad input with typed errors', async () => {
    await runLoop(async (loop) => {
      await using server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0 });
      const [t, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      expect(() => t.write(42 as unknown as string)).toThrow(InvalidArgumentError);
      expect(() => t.setWriteBufferLimits(10, 20)).toThrow(InvalidArgumentError);
      await expect(loop.createConnection(() => new Recorder(), { port: 70000 })).rejects.toThrow(InvalidArgumentError);
      await expect(loop.createServer(() => new Recorder(), { backlog: -1 })).rejects.toThrow(InvalidArgumentError);
      t.abort();
      await client.lost;
    });
  });

  it('writeLines() writes every chunk in order', async () => {
    await runLoop(async (loop) => {
      await using server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0 });
      const [t, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      t.writeLines(['one\n', Buffer.from('two\n'), new Uint8Array([0x33, 0x0a])]);
      await within(5000, client.waitBytes(10));
      expect(client.data.toString()).toBe('one\ntwo\n3\n');
      t.close();
      await client.lost;
    });
  });

  it('reports extra info and its state', async () => {
    await runLoop(async (loop) => {
      await using server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0 });
      const [t, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      expect(t).toBeInstanceOf(SocketTransport);
      expect(t.getExtraInfo('peername')).toEqual({ address: '127.0.0.1', port: portOf(server), family: 'IPv4' });
      expect(t.getExtraInfo<{ address: string }>('sockname')?.address).toBe('127.0.0.1');
      expect(t.getExtraInfo('socket')).toBeDefined();
      expect(t.getExtraInfo('peercert', 'none')).toBe('none');
      expect(t.getWriteBufferLimits()).toEqual([16 * 1024, 64 * 1024]);
      t.setWriteBufferLimits(1000);
      expect(t.getWriteBufferLimits()).toEqual([250, 1000]);
      expect(inspect(t)).toMatch(/<SocketTransport TCP open peer=127\.0\.0\.1:\d+/);
      expect(String(server)).toMatch(/<Server 127\.0\.0\.1:\d+ serving clients=1>/);
      expect(loop.stats().openResources.transport).toBe(2);
      t.close();
      await client.lost;
      expect(inspect(t)).toContain('closed');
    });
  });

  it('routes a protocol exception to the exception handler and aborts the connection', async () => {
    await runLoop(async (loop, errors) => {
      class Boom extends Protocol {
        override dataReceived(): void {
          throw new Error('boom');
        }
      }
      await using server = await loop.createServer(() => new Boom(), { host: '127.0.0.1', port: 0 });
      const [t, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      t.write('x');
      await within(5000, client.lost);
      expect(errors).toHaveLength(1);
      expect(errors[0]!.message).toMatch(/dataReceived\(\) call failed/);
      expect((errors[0]!.exception as Error).message).toBe('boom');
      expect(errors[0]!.protocol).toBeInstanceOf(Boom);
      expect(errors[0]!.transport).toBeInstanceOf(SocketTransport);
    });
  });

  it('runs no protocol callback while the loop is stopped, and delivers everything once it runs again', async () => {
    const { Loop } = await import('../../src/index.ts');
    // A plain Node echo peer: it answers while our loop is stopped (a protoloop server could not).
    const raw = net.createServer((s) => s.on('data', (d: Buffer) => s.write(d)));
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    const loop = new Loop();
    try {
      const port = (raw.address() as net.AddressInfo).port;
      const [t, client] = await loop.runUntilComplete(() => loop.createConnection(() => new Recorder(loop), { host: '127.0.0.1', port }));
      t.write('while stopped');
      // The loop is not running: the echo is read off the socket but must not reach the protocol.
      const socket = t.getExtraInfo('socket') as net.Socket;
      await pollOrThrow(() => socket.bytesRead >= 13, 5000, 'the echo to be read off the socket');
      expect(client.received).toBe(0);
      expect(client.calls).toEqual(['made']);
      await loop.runUntilComplete(() => within(5000, client.waitBytes(13)));
      expect(client.data.toString()).toBe('while stopped');
      t.close();
      await loop.runUntilComplete(() => client.lost);
    } finally {
      loop.close();
      await new Promise<void>((r) => raw.close(() => r()));
    }
  });

  it('times protocol callbacks in debug mode and reports slow ones', async () => {
    const warnings: string[] = [];
    const noop = (): void => {};
    const logger = { debug: noop, info: noop, error: noop, warn: (_o: unknown, msg?: string) => warnings.push(String(msg ?? _o)) };
    const { run, getRunningLoop } = await import('../../src/index.ts');
    await run(
      async () => {
        const loop = getRunningLoop();
        loop.slowCallbackDuration = 20;
        class Slow extends Protocol {
          override dataReceived(): void {
            const end = performance.now() + 40;
            while (performance.now() < end);
          }
        }
        await using server = await loop.createServer(() => new Slow(), { host: '127.0.0.1', port: 0 });
        const [t, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
        t.write('x');
        await eventually(() => warnings.some((w) => w.includes('Slow.dataReceived()')), 5000, 'the slow-callback warning');
        t.close();
        await client.lost;
      },
      { debug: true, logger },
    );
    expect(warnings.find((w) => w.includes('Slow.dataReceived()'))).toMatch(/Executing Slow\.dataReceived\(\) on <SocketTransport TCP open .*> took \d+\.\d{3} seconds/);
  });

  it('connects by host name (Happy Eyeballs on and off), and honours an aborted signal', async () => {
    await runLoop(async (loop) => {
      await using server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0 });
      for (const happyEyeballs of [true, false]) {
        const [t, p] = await loop.createConnection(() => new Recorder(), { host: 'localhost', port: portOf(server), happyEyeballs, happyEyeballsDelay: 50 });
        expect(t.getExtraInfo('peername')).toMatchObject({ address: '127.0.0.1', family: 'IPv4' });
        t.close();
        await p.lost;
      }
      const ac = new AbortController();
      ac.abort(new Error('changed my mind'));
      await expect(loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server), signal: ac.signal })).rejects.toThrow('changed my mind');
    });
  });

  it('setProtocol() switches the protocol for the next reads', async () => {
    await runLoop(async (loop) => {
      let serverSide!: Recorder;
      await using server = await loop.createServer(() => (serverSide = new Recorder(loop)), { host: '127.0.0.1', port: 0 });
      const [t, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      await within(5000, serverSide.made);
      const second = new Recorder(loop);
      const st: Transport = serverSide.transport;
      st.setProtocol(second);
      expect(st.getProtocol()).toBe(second);
      t.write('to second');
      await within(5000, second.waitBytes(9));
      expect(serverSide.received).toBe(0);
      t.abort();
      await client.lost;
      await within(5000, second.lost);
    });
  });
});
