/**
 * The transports of a child's pipes: {@link ReadPipeTransport} for stdout/stderr and
 * {@link WritePipeTransport} for stdin. They wrap the Node streams execa hands out and
 * report to the subprocess transport that owns them, which calls the protocol.
 *
 * ```
 * open --close()/abort()--> closing --(stream closed)--> closed     owner told once
 * open --(EOF, child exit, EPIPE)-------------------->  closed     owner told once
 * ```
 * Both derive from the transport base (src/transports/base.ts): the owner is told
 * through its exit path, once, with `callSoon`.
 * Backpressure is the pipe's own: a paused read pipe stops reading (Node's
 * `readStop` once its small buffer is full), the pipe fills, and the child blocks
 * in `write()`. On stdin, asyncio's water marks (64 KiB / 16 KiB) drive the
 * protocol's `pauseWriting()`/`resumeWriting()`.
 * @module
 */
import { inspect } from 'node:util';
import type { Readable, Writable } from 'node:stream';
import { BrokenPipeError, InvalidArgumentError, TransportClosedError } from '../errors.ts';
import type { BaseProtocol } from '../protocols/protocols.ts';
import type { Loop } from '../loop/loop.ts';
import { TransportBase } from '../transports/base.ts';
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

type Owned<S, P> = S & { [kOwner]?: P };

/** Maps an error of a child's pipe onto protoloop's typed errors. */
export function mapPipeError(err: unknown, fd: number): Error {
  const code = (err as { code?: unknown } | null)?.code;
  if (fd === 0 && (code === 'EPIPE' || code === 'ECONNRESET')) {
    return new BrokenPipeError(`the child closed its stdin while we were writing (${code})`, { cause: err });
  }
  return mapSocketError(err, `the child's ${fd === 0 ? 'stdin' : fd === 1 ? 'stdout' : 'stderr'} pipe`);
}

/**
 * What both pipe transports share: the transport base (lifecycle, exit path, flow
 * control); the subprocess transport that owns them holds the protocol, so the end of
 * a pipe is told to it (once, through the loop) rather than to a protocol.
 */
abstract class PipeTransport extends TransportBase<BaseProtocol> {
  /** @internal */
  protected readonly owner: PipeOwner;
  /** @internal */
  protected readonly fd: number;

  constructor(loop: Loop, owner: PipeOwner, fd: number) {
    super(loop, owner.getProtocol());
    this.owner = owner;
    this.fd = fd;
    this.made = true;
  }

  /** The subprocess protocol. */
  override getProtocol(): BaseProtocol {
    return this.owner.getProtocol();
  }

  /** Replaces the subprocess protocol (the pipes have no protocol of their own). */
  override setProtocol(protocol: BaseProtocol): void {
    this.owner.setProtocol(protocol);
  }

  /** The stream is already closed when the exit path runs. */
  protected override release(): void {}

  /** The owner calls the protocol's `pipeConnectionLost(fd, exc)`. */
  protected override deliverLost(exc: Error | undefined): void {
    this.owner[kPipeClosed](this.fd, exc);
  }

  /** The owner calls the protocol's `pauseWriting`/`resumeWriting`. */
  override flowChanged(method: 'pauseWriting' | 'resumeWriting'): void {
    this.owner[kPipeFlow](method);
  }
}

/**
 * A read pipe (stdout, stderr). With `stderr: STDOUT` one transport reads both of the
 * child's output pipes and reports everything as fd 1; it closes after both did.
 */
export class ReadPipeTransport extends PipeTransport implements ReadTransport {
  readonly #streams: Readable[];
  #openStreams: number;
  #error: Error | undefined = undefined;
  /** Paused by the protocol (pauseReading). */
  #paused = false;
  /** Held by the owner while undelivered data waits for the loop to run. */
  #held = false;

  /** @internal */
  constructor(loop: Loop, owner: PipeOwner, fd: number, streams: Readable[]) {
    super(loop, owner, fd);
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
    if (pipe.lifecycle === 'open') pipe.owner[kPipeData](pipe.fd, chunk);
  }

  static #onError(this: Owned<Readable, ReadPipeTransport>, err: Error): void {
    const pipe = this[kOwner]!;
    pipe.#error ??= mapPipeError(err, pipe.fd);
  }

  static #onClose(this: Owned<Readable, ReadPipeTransport>): void {
    const pipe = this[kOwner]!;
    this.removeListener('data', ReadPipeTransport.#onData);
    if (--pipe.#openStreams > 0) return;
    pipe.forceClose(pipe.#error);
  }

  /** Whether data is being delivered (not paused by the protocol, not closed). */
  isReading(): boolean {
    return this.lifecycle === 'open' && !this.#paused;
  }

  /** Stops reading: the pipe fills up and the child blocks in `write()`. Idempotent. */
  pauseReading(): void {
    if (this.lifecycle !== 'open' || this.#paused) return;
    this.#paused = true;
    this.#apply();
  }

  /** Resumes reading. Idempotent. */
  resumeReading(): void {
    if (this.lifecycle !== 'open' || !this.#paused) return;
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

  /** Closes the pipe at once (unread data is dropped; the child gets EPIPE if it writes again). Idempotent. */
  close(): void {
    if (this.lifecycle !== 'open') return;
    this.lifecycle = 'closing';
    this.closedByUser = true;
    for (const s of this.#streams) s.destroy();
  }

  /** `'pipe'` (the Node stream) and `'fd'` (1 or 2). */
  getExtraInfo<T = unknown>(name: string, defaultValue?: T): T | undefined {
    if (name === 'pipe') return this.#streams[0] as T;
    if (name === 'fd') return this.fd as T;
    return defaultValue;
  }

  override toString(): string {
    return `<ReadPipeTransport fd=${this.fd} ${this.lifecycle}${this.#paused ? ' paused' : ''}${this.#held ? ' held' : ''}>`;
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
  readonly #stream: Owned<Writable, WritePipeTransport>;
  #error: Error | undefined = undefined;
  /** The recyclable copy behind each write in flight (null when not recyclable), in write order. */
  #inflight: (Buffer | null)[] = [];
  #pool: Buffer[] = [];

  /** @internal */
  constructor(loop: Loop, owner: PipeOwner, stream: Writable) {
    super(loop, owner, 0);
    this.#stream = stream;
    this.flowControl();
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
    pipe.forceClose(pipe.#error);
  }

  // One function for every write's callback (Node calls them in write order): no closure per write.
  #onWritten = (err?: Error | null): void => {
    const copy = this.#inflight.shift();
    if (this.lifecycle === 'closed' || err) return;
    if (copy != null && this.#pool.length < POOL_MAX_BUFFERS) this.#pool.push(copy);
    this.afterDrain(this.#stream.writableLength);
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
    if (this.closedByUser) return new TransportClosedError("the child's stdin pipe is closed: it was closed with close(), abort() or writeEof()");
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
    if (this.lifecycle !== 'open') throw this.#writeError();
    if (data.length === 0) return;
    let buf: Buffer;
    if (isString) {
      buf = Buffer.from(data);
      this.#inflight.push(null);
    } else {
      buf = this.#copy(data);
    }
    this.#stream.write(buf, this.#onWritten);
    this.flow!.afterWrite(this.#stream.writableLength);
  }

  /** Writes each chunk of `list` in order. */
  writeLines(list: Iterable<Uint8Array | string>): void {
    for (const chunk of list) this.write(chunk);
  }

  /** Closes the child's stdin once what is buffered is written (the child reads EOF). Idempotent. */
  writeEof(): void {
    if (this.lifecycle !== 'open') return;
    this.lifecycle = 'closing';
    this.closedByUser = true;
    this.#stream.end();
  }

  /** @internal Whether close(), abort() or writeEof() closed it (rather than the child). */
  get closedByUs(): boolean {
    return this.closedByUser;
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
    if (this.lifecycle === 'closed') return;
    this.lifecycle = 'closing';
    this.closedByUser = true;
    this.#stream.destroy();
  }

  /** Bytes accepted by `write()` and not yet in the pipe. */
  override getWriteBufferSize(): number {
    return this.lifecycle === 'closed' ? 0 : this.#stream.writableLength;
  }

  /** `'pipe'` (the Node stream) and `'fd'` (0). */
  getExtraInfo<T = unknown>(name: string, defaultValue?: T): T | undefined {
    if (name === 'pipe') return this.#stream as T;
    if (name === 'fd') return 0 as T;
    return defaultValue;
  }

  override toString(): string {
    const size = this.getWriteBufferSize();
    return `<WritePipeTransport fd=0 ${this.lifecycle}${size > 0 ? ` bufsize=${size}` : ''}${this.flow!.paused ? ' paused' : ''}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}
