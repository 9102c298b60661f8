/**
 * The transports of a child's pipes: {@link ReadPipeTransport} for stdout/stderr and
 * {@link WritePipeTransport} for stdin. They wrap the Node streams execa hands out and
 * report to the subprocess transport that owns them, which calls the protocol.
 *
 * ```
 * open --close()/abort()--> closing --(stream closed)--> closed     owner told once
 * open --(EOF, child exit, EPIPE)-------------------->  closed     owner told once
 * ```
 * Backpressure is the pipe's own: a paused read pipe stops reading (Node's
 * `readStop` once its small buffer is full), the pipe fills, and the child blocks
 * in `write()`. On stdin, asyncio's water marks (64 KiB / 16 KiB) drive the
 * protocol's `pauseWriting()`/`resumeWriting()`.
 * @module
 * @internal
 */
import { inspect } from 'node:util';
import type { Readable, Writable } from 'node:stream';
import { BrokenPipeError, InvalidArgumentError, TransportClosedError } from '../errors.ts';
import type { BaseProtocol } from '../protocols/protocols.ts';
import { FlowControl } from '../transports/flow-control.ts';
import { mapSocketError } from '../transports/map-error.ts';
import type { ReadTransport, WriteTransport } from '../transports/transports.ts';
import { kHold, kOwner, kPipeClosed, kPipeData, kPipeFlow } from '../loop/symbols.ts';

/** What a pipe needs from the subprocess transport that owns it. */
export interface PipeOwner {
  [kPipeData](fd: number, data: Buffer): void;
  [kPipeClosed](fd: number, exc: Error | undefined): void;
  [kPipeFlow](method: 'pauseWriting' | 'resumeWriting'): void;
  getProtocol(): BaseProtocol;
  setProtocol(protocol: BaseProtocol): void;
}

type PipeState = 'open' | 'closing' | 'closed';

type Owned<S, P> = S & { [kOwner]?: P };

/** Maps an error of a child's pipe onto protoloop's typed errors. */
export function mapPipeError(err: unknown, fd: number): Error {
  const code = (err as { code?: unknown } | null)?.code;
  if (fd === 0 && (code === 'EPIPE' || code === 'ECONNRESET')) {
    return new BrokenPipeError(`the child closed its stdin while we were writing (${code})`, { cause: err });
  }
  return mapSocketError(err, `the child's ${fd === 0 ? 'stdin' : fd === 1 ? 'stdout' : 'stderr'} pipe`);
}

/** What both pipe transports share: the subprocess transport that owns them holds the protocol. */
abstract class PipeTransport {
  /** @internal */
  protected readonly owner: PipeOwner;

  constructor(owner: PipeOwner) {
    this.owner = owner;
  }

  /** The subprocess protocol. */
  getProtocol(): BaseProtocol {
    return this.owner.getProtocol();
  }

  /** Replaces the subprocess protocol (the pipes have no protocol of their own). */
  setProtocol(protocol: BaseProtocol): void {
    this.owner.setProtocol(protocol);
  }
}

/**
 * A read pipe (stdout, stderr). With `stderr: STDOUT` one transport reads both of the
 * child's output pipes and reports everything as fd 1; it closes after both did.
 */
export class ReadPipeTransport extends PipeTransport implements ReadTransport {
  #state: PipeState = 'open';
  readonly #fd: number;
  readonly #streams: Readable[];
  #openStreams: number;
  #error: Error | undefined = undefined;
  /** Paused by the protocol (pauseReading). */
  #paused = false;
  /** Held by the owner while undelivered data waits for the loop to run. */
  #held = false;

  /** @internal */
  constructor(owner: PipeOwner, fd: number, streams: Readable[]) {
    super(owner);
    this.#fd = fd;
    this.#streams = streams;
    this.#openStreams = streams.length;
    for (const s of streams) {
      (s as Owned<Readable, ReadPipeTransport>)[kOwner] = this;
      s.on('data', ReadPipeTransport.#onData);
      s.on('error', ReadPipeTransport.#onError);
      s.on('close', ReadPipeTransport.#onClose);
    }
  }

  // Named listeners bound to the stream; the pipe is found through kOwner.
  static #onData(this: Owned<Readable, ReadPipeTransport>, chunk: Buffer): void {
    const pipe = this[kOwner]!;
    if (pipe.#state === 'open') pipe.owner[kPipeData](pipe.#fd, chunk);
  }

  static #onError(this: Owned<Readable, ReadPipeTransport>, err: Error): void {
    const pipe = this[kOwner]!;
    pipe.#error ??= mapPipeError(err, pipe.#fd);
  }

  static #onClose(this: Owned<Readable, ReadPipeTransport>): void {
    const pipe = this[kOwner]!;
    this.removeListener('data', ReadPipeTransport.#onData);
    if (--pipe.#openStreams > 0 || pipe.#state === 'closed') return;
    pipe.#state = 'closed';
    // A pipe we closed ourselves is not an error, whatever Node said while destroying it.
    pipe.owner[kPipeClosed](pipe.#fd, pipe.#error);
  }

  /** Whether data is being delivered (not paused by the protocol, not closed). */
  isReading(): boolean {
    return this.#state === 'open' && !this.#paused;
  }

  /** Stops reading: the pipe fills up and the child blocks in `write()`. Idempotent. */
  pauseReading(): void {
    if (this.#state !== 'open' || this.#paused) return;
    this.#paused = true;
    this.#apply();
  }

  /** Resumes reading. Idempotent. */
  resumeReading(): void {
    if (this.#state !== 'open' || !this.#paused) return;
    this.#paused = false;
    this.#apply();
  }

  /** @internal Held by the owner while undelivered data piles up (the loop is not running). */
  [kHold](held: boolean): void {
    if (this.#held === held) return;
    this.#held = held;
    this.#apply();
  }

  #apply(): void {
    const stop = this.#paused || this.#held;
    for (const s of this.#streams) {
      if (stop) s.pause();
      else s.resume();
    }
  }

  /** Whether the pipe is closing or closed. */
  isClosing(): boolean {
    return this.#state !== 'open';
  }

  /** Closes the pipe at once (unread data is dropped; the child gets EPIPE if it writes again). Idempotent. */
  close(): void {
    if (this.#state !== 'open') return;
    this.#state = 'closing';
    for (const s of this.#streams) s.destroy();
  }

  /** `'pipe'` (the Node stream) and `'fd'` (1 or 2). */
  getExtraInfo<T = unknown>(name: string, defaultValue?: T): T | undefined {
    if (name === 'pipe') return this.#streams[0] as T;
    if (name === 'fd') return this.#fd as T;
    return defaultValue;
  }

  override toString(): string {
    return `<ReadPipeTransport fd=${this.#fd} ${this.#state}${this.#paused ? ' paused' : ''}${this.#held ? ' held' : ''}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

// write() copies what it is given (the caller may reuse its buffer at once). Copies of
// large chunks are recycled once written: with the write-then-drain() pattern one or
// two buffers are reused for the whole stream, instead of a fresh allocation (and the
// garbage collections that follow) per write.
const POOL_MIN_CHUNK = 16 * 1024;
const POOL_MAX_CHUNK = 4 * 1024 * 1024;
const POOL_MAX_BUFFERS = 4;

/** The child's stdin: a write transport with asyncio's flow control. */
export class WritePipeTransport extends PipeTransport implements WriteTransport {
  #state: PipeState = 'open';
  readonly #stream: Owned<Writable, WritePipeTransport>;
  readonly #flow: FlowControl;
  /** Set when we closed (or aborted) it: later writes are TransportClosedError, not BrokenPipeError. */
  #closedByUs = false;
  #error: Error | undefined = undefined;
  /** The recyclable copy behind each write in flight (null when not recyclable), in write order. */
  #inflight: (Buffer | null)[] = [];
  #pool: Buffer[] = [];

  /** @internal */
  constructor(owner: PipeOwner, stream: Writable) {
    super(owner);
    this.#stream = stream;
    this.#flow = new FlowControl((method) => owner[kPipeFlow](method));
    this.#stream[kOwner] = this;
    stream.on('error', WritePipeTransport.#onError);
    stream.on('close', WritePipeTransport.#onClose);
  }

  static #onError(this: Owned<Writable, WritePipeTransport>, err: Error): void {
    const pipe = this[kOwner]!;
    pipe.#error ??= mapPipeError(err, 0);
  }

  static #onClose(this: Owned<Writable, WritePipeTransport>): void {
    const pipe = this[kOwner]!;
    if (pipe.#state === 'closed') return;
    pipe.#state = 'closed';
    pipe.owner[kPipeClosed](0, pipe.#error);
  }

  // One function for every write's callback (Node calls them in write order): no closure per write.
  #onWritten = (err?: Error | null): void => {
    const copy = this.#inflight.shift();
    if (this.#state === 'closed' || err) return;
    if (copy != null && this.#pool.length < POOL_MAX_BUFFERS) this.#pool.push(copy);
    this.#flow.afterDrain(this.#stream.writableLength);
  };

  /** A copy of `data` that the stream may keep until its write callback. */
  #copy(data: Uint8Array): Buffer {
    const n = data.byteLength;
    if (n < POOL_MIN_CHUNK || n > POOL_MAX_CHUNK) {
      this.#inflight.push(null);
      const small = Buffer.allocUnsafe(n);
      small.set(data);
      return small;
    }
    const pool = this.#pool;
    let backing: Buffer | undefined;
    for (let i = 0; i < pool.length; i++) {
      const b = pool[i]!;
      // Reuse a buffer that fits without wasting more than half of it.
      if (b.length >= n && b.length <= 2 * n) {
        backing = b;
        pool[i] = pool[pool.length - 1]!;
        pool.pop();
        break;
      }
    }
    backing ??= Buffer.allocUnsafeSlow(n);
    this.#inflight.push(backing);
    backing.set(data);
    return backing.subarray(0, n);
  }

  #writeError(): Error {
    if (this.#closedByUs) return new TransportClosedError("the child's stdin pipe is closed: it was closed with close(), abort() or writeEof()");
    return this.#error ?? new BrokenPipeError("the child's stdin pipe is closed (the child exited or closed it)");
  }

  /**
   * Writes bytes to the child's stdin (a string is UTF-8 encoded). Never blocks; the
   * bytes are copied, so the caller may reuse its buffer at once. Past the high-water
   * mark the protocol is told `pauseWriting()`.
   * @throws TransportClosedError after `close()`/`abort()`/`writeEof()`;
   * BrokenPipeError when the child closed its stdin or exited; InvalidArgumentError for non-bytes.
   */
  write(data: Uint8Array | string): void {
    const isString = typeof data === 'string';
    if (!isString && !(data instanceof Uint8Array)) throw new InvalidArgumentError(`write() needs a Buffer, Uint8Array or string, got ${inspect(data, { depth: 0 })}`);
    if (this.#state !== 'open') throw this.#writeError();
    if (data.length === 0) return;
    let buf: Buffer;
    if (isString) {
      buf = Buffer.from(data);
      this.#inflight.push(null);
    } else {
      buf = this.#copy(data);
    }
    this.#stream.write(buf, this.#onWritten);
    this.#flow.afterWrite(this.#stream.writableLength);
  }

  /** Writes each chunk of `list` in order. */
  writeLines(list: Iterable<Uint8Array | string>): void {
    for (const chunk of list) this.write(chunk);
  }

  /** Closes the child's stdin once what is buffered is written (the child reads EOF). Idempotent. */
  writeEof(): void {
    if (this.#state !== 'open') return;
    this.#state = 'closing';
    this.#closedByUs = true;
    this.#stream.end();
  }

  /** @internal Whether close(), abort() or writeEof() closed it (rather than the child). */
  get closedByUs(): boolean {
    return this.#closedByUs;
  }

  /** Always true: a pipe can be half-closed. */
  canWriteEof(): boolean {
    return true;
  }

  /** Same as {@link writeEof}: flushes, then closes. Idempotent. */
  close(): void {
    this.writeEof();
  }

  /** Closes at once, dropping what is buffered. Idempotent. */
  abort(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closing';
    this.#closedByUs = true;
    this.#stream.destroy();
  }

  /** Whether the pipe is closing or closed. */
  isClosing(): boolean {
    return this.#state !== 'open';
  }

  /** Bytes accepted by `write()` and not yet in the pipe. */
  getWriteBufferSize(): number {
    return this.#state === 'closed' ? 0 : this.#stream.writableLength;
  }

  /** Sets the water marks, bytes (defaults 64 KiB / 16 KiB). @throws InvalidArgumentError for bad marks. */
  setWriteBufferLimits(high?: number, low?: number): void {
    this.#flow.setLimits(this.getWriteBufferSize(), high, low);
  }

  /** The water marks, `[low, high]`. */
  getWriteBufferLimits(): [low: number, high: number] {
    return [this.#flow.low, this.#flow.high];
  }

  /** `'pipe'` (the Node stream) and `'fd'` (0). */
  getExtraInfo<T = unknown>(name: string, defaultValue?: T): T | undefined {
    if (name === 'pipe') return this.#stream as T;
    if (name === 'fd') return 0 as T;
    return defaultValue;
  }

  override toString(): string {
    const size = this.getWriteBufferSize();
    return `<WritePipeTransport fd=0 ${this.#state}${size > 0 ? ` bufsize=${size}` : ''}${this.#flow.paused ? ' paused' : ''}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}
