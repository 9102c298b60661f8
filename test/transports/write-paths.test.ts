// The socket transport's two write paths (a direct write to the socket, and the
// copy-and-queue path Node's stream takes) and the BufferedProtocol read path, checked
// for integrity with a peer that reads slowly, so that writes really do queue while the
// protocol reuses or replaces its buffer.
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BufferedProtocol, Protocol, type Loop, type Server, type Transport } from '../../src/index.ts';
import { setDirectWrites } from '../../src/transports/net/node-internals.ts';
import { runLoop } from './helpers.ts';

const TOTAL = 6 * 1024 * 1024;

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Echoes with a Protocol: the transport owns `data`. */
class EchoProtocol extends Protocol {
  #t: Transport | null = null;
  override connectionMade(t: Transport): void {
    this.#t = t;
  }
  override dataReceived(data: Buffer): void {
    this.#t!.write(data);
  }
}

/** Echoes from one reused buffer: write() gets a view the protocol overwrites at the next read. */
class ReusingEcho extends BufferedProtocol {
  #t: Transport | null = null;
  readonly #buf = Buffer.allocUnsafe(4096);
  override connectionMade(t: Transport): void {
    this.#t = t;
  }
  override getBuffer(): Uint8Array {
    return this.#buf;
  }
  override bufferUpdated(n: number): void {
    this.#t!.write(this.#buf.subarray(0, n));
  }
}

/** A fresh buffer for every read; the filled ones are echoed later, from a timer. */
class FreshBufferEcho extends BufferedProtocol {
  #t: Transport | null = null;
  #buf: Buffer | null = null;
  readonly #filled: Buffer[] = [];
  #loop: Loop;
  constructor(loop: Loop) {
    super();
    this.#loop = loop;
  }
  override connectionMade(t: Transport): void {
    this.#t = t;
  }
  override getBuffer(sizeHint: number): Uint8Array {
    this.#buf = Buffer.allocUnsafe(Math.max(1024, Math.min(sizeHint > 0 ? sizeHint : 1024, 65536)));
    return this.#buf;
  }
  override bufferUpdated(n: number): void {
    this.#filled.push(this.#buf!.subarray(0, n));
    if (this.#filled.length === 1) {
      this.#loop.callLater(1, () => {
        for (const b of this.#filled.splice(0)) this.#t?.write(b);
      });
    }
  }
}

/** Sends `data` to the server in pieces while reading the echo slowly (paused now and then). */
async function slowEchoRoundTrip(port: number, data: Buffer): Promise<Buffer> {
  const sock: Socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  const received: Buffer[] = [];
  let got = 0;
  const done = new Promise<void>((resolve, reject) => {
    sock.on('data', (d: Buffer) => {
      received.push(d);
      got += d.length;
      if (got >= data.length) resolve();
      // Stall now and then so that the server's writes queue up behind a full socket.
      if (received.length % 16 === 0) {
        sock.pause();
        setTimeout(() => sock.resume(), 5);
      }
    });
    sock.on('error', reject);
  });
  for (let off = 0; off < data.length; off += 65536) {
    if (!sock.write(data.subarray(off, off + 65536))) await new Promise((r) => sock.once('drain', r));
  }
  await done;
  sock.destroy();
  return Buffer.concat(received);
}

afterEach(() => {
  setDirectWrites(true);
});

describe.each([
  ['direct writes', true],
  ['queued writes (copy)', false],
])('write path: %s', (_name, direct) => {
  it.each([
    ['Protocol', (_loop: Loop) => new EchoProtocol()],
    ['BufferedProtocol reusing one buffer', (_loop: Loop) => new ReusingEcho()],
    ['BufferedProtocol with a fresh buffer per read, echoed later', (loop: Loop) => new FreshBufferEcho(loop)],
  ] as const)('%s echoes 6 MiB intact to a slow reader', async (_kind, factory) => {
    setDirectWrites(direct);
    const data = pattern(TOTAL, direct ? 7 : 11);
    const echoed = await runLoop(async (loop, errors) => {
      const server: Server = await loop.createServer(() => factory(loop), { host: '127.0.0.1', port: 0 });
      try {
        const port = (server.sockets[0] as { port: number }).port;
        const out = await slowEchoRoundTrip(port, data);
        expect(errors).toEqual([]);
        return out;
      } finally {
        server.close();
        await server.waitClosed();
      }
    });
    expect(echoed.length).toBe(data.length);
    expect(sha(echoed)).toBe(sha(data));
  });
});
