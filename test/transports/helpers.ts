// Test helpers for the transport suites: recording protocols and a run() wrapper.
import { BufferedProtocol, Protocol, getRunningLoop, run, type ExceptionContext, type Future, type Loop, type Transport } from '../../src/index.ts';

/** Runs `main` on a fresh loop, collecting what reaches the exception handler. */
export async function runLoop<T>(main: (loop: Loop, errors: ExceptionContext[]) => Promise<T>): Promise<T> {
  const errors: ExceptionContext[] = [];
  return run(async () => {
    const loop = getRunningLoop();
    loop.setExceptionHandler((_l, ctx) => {
      errors.push(ctx);
    });
    return main(loop, errors);
  });
}

/** A protocol that records every call, with futures for the interesting moments. */
export class Recorder extends Protocol {
  readonly calls: string[] = [];
  readonly chunks: Buffer[] = [];
  transport!: Transport;
  readonly made: Future<void>;
  readonly lost: Future<Error | undefined>;
  readonly eof: Future<void>;
  keepOpenOnEof = false;
  /** Resolved once at least `wanted` bytes arrived. */
  #want: { n: number; fut: Future<void> } | null = null;

  constructor(loop: Loop = getRunningLoop()) {
    super();
    this.made = loop.createFuture();
    this.lost = loop.createFuture();
    this.eof = loop.createFuture();
  }
  override connectionMade(t: Transport): void {
    this.calls.push('made');
    this.transport = t;
    this.made.setResult(undefined);
  }
  override dataReceived(data: Buffer): void {
    if (this.calls.at(-1) !== 'data') this.calls.push('data');
    this.chunks.push(data);
    if (this.#want !== null && this.received >= this.#want.n) {
      this.#want.fut.setResult(undefined);
      this.#want = null;
    }
  }
  override eofReceived(): boolean {
    this.calls.push('eof');
    this.eof.setResult(undefined);
    return this.keepOpenOnEof;
  }
  override connectionLost(exc: Error | undefined): void {
    this.calls.push('lost');
    this.lost.setResult(exc);
  }
  override pauseWriting(): void {
    this.calls.push('pause');
  }
  override resumeWriting(): void {
    this.calls.push('resume');
  }
  get received(): number {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }
  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }
  /** Resolves once `n` bytes in total arrived. */
  async waitBytes(n: number): Promise<void> {
    if (this.received >= n) return;
    const fut = getRunningLoop().createFuture<void>();
    this.#want = { n, fut };
    await fut;
  }
}

/** Echoes through `dataReceived` (owned buffers). */
export class EchoProtocol extends Protocol {
  transport!: Transport;
  override connectionMade(t: Transport): void {
    this.transport = t;
  }
  override dataReceived(data: Buffer): void {
    this.transport.write(data);
  }
}

/** Echoes a view of its own reused buffer: the contract test for write() copying. */
export class BufferedEcho extends BufferedProtocol {
  transport!: Transport;
  readonly buf: Buffer;
  constructor(size = 256 * 1024) {
    super();
    this.buf = Buffer.allocUnsafe(size);
  }
  override connectionMade(t: Transport): void {
    this.transport = t;
  }
  override getBuffer(): Uint8Array {
    return this.buf;
  }
  override bufferUpdated(n: number): void {
    this.transport.write(this.buf.subarray(0, n));
  }
}

/** A deterministic payload of `n` bytes. */
export function payload(n: number, seed = 7): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * seed + (i >> 8)) & 0xff;
  return b;
}

/** The TCP port of a server's first listening socket. */
export function portOf(server: { sockets: Array<{ port: number } | string> }): number {
  const s = server.sockets[0];
  if (s === undefined || typeof s === 'string') throw new Error('no TCP socket');
  return s.port;
}


export { within } from '../helpers.ts';
