/**
 * StreamReader: a buffered byte stream fed by a protocol and read by tasks, with
 * asyncio's semantics (`read`, `readLine`, `readExactly`, `readUntil`, `atEof`, `limit`).
 *
 * ```
 * open --feedEof()--> eof --(buffer drained)--> atEof()
 * open --setException(e)--> failed (every later read throws e)
 * ```
 *
 * Backpressure: when more than `2 * limit` bytes wait unread, the reader pauses its
 * transport's reading; it resumes once the buffer is back at `limit` or below, or as
 * soon as a read has to wait for more data (so `readExactly(n)` with a large `n` never
 * deadlocks).
 *
 * Every read that has to wait awaits a loop Future, so `task.cancel()` interrupts it
 * at once with `CancelledError`; bytes are taken from the buffer only after the wait,
 * so a cancelled read loses nothing. Only one read may wait at a time: a second one
 * throws {@link ResourceBusyError}.
 * @module
 */
import { inspect } from 'node:util';
import { IncompleteReadError, InvalidArgumentError, LimitOverrunError, ResourceBusyError } from '../errors.ts';
import { Future } from '../loop/future.ts';
import { withFlag } from '../loop/internal.ts';
import { getRunningLoop, type Loop } from '../loop/loop.ts';
import type { ReadTransport } from '../transports/transports.ts';
import { kAwait, kMakeResult, kReplaceTransport, kSetResultLazy } from '../loop/symbols.ts';

/** The default `limit` of stream readers, bytes (64 KiB), as asyncio's. */
export const DEFAULT_LIMIT = 64 * 1024;

/** Options of `new StreamReader()`. */
export interface StreamReaderOptions {
  /**
   * Longest line or separator-terminated chunk `readLine()`/`readUntil()` accept, in
   * bytes; also the backpressure unit (reading pauses above `2 * limit` buffered bytes).
   * Default {@link DEFAULT_LIMIT} (64 KiB).
   */
  limit?: number;
  /** The loop whose futures reads wait on. Default: the running loop. */
  loop?: Loop;
}

type ReaderState = 'open' | 'eof' | 'failed';

const NEWLINE = Buffer.from('\n');
const OWNS_BUF = 1;
const PAUSED = 2;
const EMPTY = Buffer.alloc(0);

/** Validates a `limit` option; shared by the stream helpers. @internal */
export function checkLimit(limit: unknown): number {
  if (limit === undefined) return DEFAULT_LIMIT;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit <= 0) {
    throw new InvalidArgumentError(`limit must be a positive integer number of bytes, got ${inspect(limit)}`);
  }
  return limit;
}

function toBuffer(data: Uint8Array | string, what: string): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (typeof data === 'string') return Buffer.from(data);
  throw new InvalidArgumentError(`${what} needs a Buffer, Uint8Array or string, got ${inspect(data, { depth: 0 })}`);
}

/**
 * A buffered reader of a byte stream. Streams helpers (`openConnection`,
 * `startServer`, subprocess pipes) create them; a custom protocol may create one
 * and call {@link feedData}/{@link feedEof}/{@link setException}.
 */
export class StreamReader implements AsyncIterable<Buffer> {
  // The unread bytes are buf[start, end). Invariant: bytes of `buf` before `end` are
  // never written again, so the views handed out by reads stay valid (and unchanged)
  // for as long as the caller keeps them. New data is copied in after `end` only when
  // `buf` is a buffer we allocated ourselves; otherwise (or when full) a new buffer is
  // allocated. A chunk arriving while the buffer is empty is adopted without a copy.
  #buf: Buffer = EMPTY;
  #start = 0;
  #end = 0;
  // Two flags in one slot (read through the accessors below): whether `buf` is ours to
  // append to, and whether we paused the transport's reading.
  #flags = 0;
  get #ownsBuf(): boolean {
    return (this.#flags & OWNS_BUF) !== 0;
  }
  set #ownsBuf(on: boolean) {
    this.#flags = withFlag(this.#flags, OWNS_BUF, on);
  }
  get #paused(): boolean {
    return (this.#flags & PAUSED) !== 0;
  }
  set #paused(on: boolean) {
    this.#flags = withFlag(this.#flags, PAUSED, on);
  }
  #state: ReaderState = 'open';
  #exception: unknown = undefined;
  // What a read waiting for data awaits: a Future<void> for readExactly/readUntil, a
  // ReadFuture (whose result is the bytes, taken as the read resumes) for read(n).
  #waiter: Future<unknown> | null = null;
  #transport: ReadTransport | null = null;
  readonly #limit: number;
  readonly #loop: Loop;

  /**
   * @throws InvalidArgumentError when `limit` is not a positive integer.
   * @throws NoRunningLoopError when no `loop` is given and none is running.
   */
  constructor(options: StreamReaderOptions = {}) {
    this.#limit = checkLimit(options.limit);
    this.#loop = options.loop ?? getRunningLoop();
  }

  /** The reader's limit, bytes (see {@link StreamReaderOptions.limit}). */
  get limit(): number {
    return this.#limit;
  }

  /** `'open'`, `'eof'` (the end was fed; buffered bytes may remain) or `'failed'`. */
  get state(): ReaderState {
    return this.#state;
  }

  /** Bytes buffered and not yet read. */
  get bufferedSize(): number {
    return this.#end - this.#start;
  }

  /** The error set with {@link setException}, or undefined. */
  exception(): unknown {
    return this.#exception;
  }

  // ------------------------------------------------------------ protocol side

  /** Sets the transport whose reading the reader pauses and resumes (once). */
  setTransport(transport: ReadTransport): void {
    if (this.#transport !== null) throw new InvalidArgumentError('StreamReader.setTransport(): the transport is already set');
    this.#transport = transport;
  }

  /** @internal Swaps the transport after a TLS upgrade (StreamWriter.startTls). */
  [kReplaceTransport](transport: ReadTransport): void {
    this.#transport = transport;
  }

  /**
   * Appends bytes to the buffer and wakes a waiting read. The reader keeps a reference
   * to `data` (no copy): do not modify it afterwards. Empty data is ignored.
   * @throws InvalidArgumentError after {@link feedEof}, or when `data` is not bytes.
   */
  feedData(data: Uint8Array | string): void {
    const chunk = toBuffer(data, 'feedData()');
    if (this.#state === 'eof') throw new InvalidArgumentError('feedData() called after feedEof()');
    const n = chunk.length;
    if (n === 0) return;
    this.#append(chunk);
    this.#wakeWaiter();
    const transport = this.#transport;
    if (transport !== null && !this.#paused && this.#end - this.#start > 2 * this.#limit) {
      this.#paused = true;
      transport.pauseReading();
    }
  }

  /** Marks the end of the stream and wakes a waiting read. Idempotent. */
  feedEof(): void {
    if (this.#state === 'open') this.#state = 'eof';
    this.#wakeWaiter();
  }

  /** Fails the stream: a waiting read and every later read throw `exc`. */
  setException(exc: unknown): void {
    this.#exception = exc;
    this.#state = 'failed';
    const w = this.#waiter;
    if (w !== null && !w.done()) w.setException(exc);
  }

  /** Whether the end was fed and every buffered byte was read. */
  atEof(): boolean {
    return this.#state === 'eof' && this.#start === this.#end;
  }

  // ----------------------------------------------------------------- reading

  /**
   * Reads up to `n` bytes: as soon as at least one byte is buffered, returns what is
   * there (at most `n`). `n = 0` returns an empty Buffer at once. With `n < 0` (the
   * default) reads until the end of the stream and returns everything (not bounded by
   * `limit`). Returns an empty Buffer at the end of the stream. A read that has to wait
   * waits on a loop future, recorded in the calling task's cancel scope when `read()` is
   * called; `waitFor()`, `shield()`, `gather()` and `ensureFuture()` given the promise
   * in that task work on the read's future itself (a timeout cancels the read).
   * @throws ResourceBusyError when another read is waiting; the stream's error if it failed; CancelledError if the task is cancelled while waiting.
   */
  read(n = -1): Promise<Buffer> {
    // Not an async function: a read that has to wait returns the promise of its future's
    // await, which resumes the caller with the bytes (one suspended frame and one
    // promise hop less per read than awaiting inside: the memory of an idle connection).
    try {
      if (typeof n !== 'number' || Number.isNaN(n)) throw new InvalidArgumentError(`read() needs a number of bytes, got ${inspect(n)}`);
      if (this.#exception !== undefined) throw this.#exception;
      if (n === 0) return Promise.resolve(EMPTY);
      if (n < 0) return this.#readAll();
      // The await of the read's future, made here: the caller awaits a native promise,
      // which V8 follows without a promise and two functions of its own (a thenable
      // costs them, for as long as the read waits).
      if (this.#start === this.#end && this.#state === 'open') return this.#newWaiter('StreamReader.read()', n)[kAwait]() as Promise<Buffer>;
      return Promise.resolve(this.#take(Math.min(n, this.#end - this.#start)));
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  async #readAll(): Promise<Buffer> {
    const blocks: Buffer[] = [];
    for (;;) {
      const block = await this.read(this.#limit);
      if (block.length === 0) break;
      blocks.push(block);
    }
    return blocks.length === 1 ? blocks[0]! : Buffer.concat(blocks);
  }

  /**
   * A waiting `read(n)`: finished (lazily) when data or the end arrives; its result,
   * the bytes, is taken from the buffer only as the read resumes, so a read whose task
   * is cancelled in between leaves them buffered for the next one.
   */
  static #ReadFuture = class ReadFuture extends Future<Buffer> {
    readonly #reader: StreamReader;
    readonly #n: number;
    constructor(reader: StreamReader, n: number) {
      super(reader.#loop, 'StreamReader.read()');
      this.#reader = reader;
      this.#n = n;
    }

    protected override [kMakeResult](): Buffer {
      const r = this.#reader;
      if (r.#waiter === this) r.#waiter = null;
      return r.#take(Math.min(this.#n, r.#end - r.#start));
    }
  };

  /**
   * Reads one line, up to and including `\n`. At the end of the stream returns the
   * partial last line, then empty Buffers.
   * @throws LimitOverrunError when the line is longer than `limit`; the line (or, if no
   * newline was seen yet, the whole buffer) is discarded first, as asyncio does, so the
   * next read starts after it. Otherwise as {@link read}.
   */
  async readLine(): Promise<Buffer> {
    try {
      return await this.readUntil(NEWLINE);
    } catch (e) {
      if (e instanceof IncompleteReadError) return e.partial;
      if (e instanceof LimitOverrunError) {
        const at = this.#start + e.consumed;
        if (at < this.#end && this.#buf[at] === 0x0a) this.#start = at + 1;
        else this.#start = this.#end;
        this.#compact();
        this.#maybeResume();
      }
      throw e;
    }
  }

  /**
   * Reads exactly `n` bytes.
   * @throws IncompleteReadError (with `partial`, the bytes that did arrive, now consumed) when the stream ends first; InvalidArgumentError when `n < 0`. Otherwise as {@link read}.
   */
  async readExactly(n: number): Promise<Buffer> {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`readExactly() needs an integer number of bytes >= 0, got ${inspect(n)}`);
    if (this.#exception !== undefined) throw this.#exception;
    if (n === 0) return EMPTY;
    while (this.#end - this.#start < n) {
      if (this.#state !== 'open') {
        if (this.#exception !== undefined) throw this.#exception;
        throw new IncompleteReadError(this.#take(this.#end - this.#start), n);
      }
      const waiter = this.#newWaiter('StreamReader.readExactly()');
      try {
        await waiter.then(); // a native promise: no thenable job or promise of V8's own
      } finally {
        this.#waiter = null;
      }
    }
    return this.#take(n);
  }

  /**
   * Reads up to and including `separator` (default `\n`). `separator` may be a list:
   * the match that ends first wins (Python 3.13). The separator must be found within
   * `limit` bytes.
   * @throws LimitOverrunError when no separator is found within `limit` bytes, or the
   * chunk is longer than `limit`; the data stays in the buffer and `consumed` says how
   * far the search went. IncompleteReadError (with `partial`, now consumed; `expected`
   * null) when the stream ends first. InvalidArgumentError for an empty separator.
   * Otherwise as {@link read}.
   */
  async readUntil(separator: Uint8Array | string | ReadonlyArray<Uint8Array | string> = NEWLINE): Promise<Buffer> {
    const seps = (Array.isArray(separator) ? separator : [separator]).map((s) => toBuffer(s as Uint8Array | string, 'readUntil()'));
    if (seps.length === 0) throw new InvalidArgumentError('readUntil() needs at least one separator');
    seps.sort((a, b) => a.length - b.length);
    const minLen = seps[0]!.length;
    const maxLen = seps[seps.length - 1]!.length;
    if (minLen === 0) throw new InvalidArgumentError('readUntil() separators must be at least one byte long');
    if (this.#exception !== undefined) throw this.#exception;
    // `offset` is where the search resumes after more data arrives: bytes before it
    // cannot start a match, so a long line is scanned once, not once per chunk.
    let offset = 0;
    let matchStart = -1;
    let matchEnd = -1;
    for (;;) {
      const buflen = this.#end - this.#start;
      if (buflen - offset >= minLen) {
        const view = this.#buf.subarray(this.#start, this.#end);
        for (const sep of seps) {
          const at = view.indexOf(sep, offset);
          if (at !== -1 && (matchEnd === -1 || at + sep.length < matchEnd)) {
            matchStart = at;
            matchEnd = at + sep.length;
          }
        }
        if (matchEnd !== -1) break;
        offset = Math.max(0, buflen + 1 - maxLen);
        if (offset > this.#limit) throw new LimitOverrunError('Separator is not found, and chunk exceed the limit', offset);
      }
      if (this.#state !== 'open') {
        if (this.#exception !== undefined) throw this.#exception;
        throw new IncompleteReadError(this.#take(buflen), null);
      }
      const waiter = this.#newWaiter('StreamReader.readUntil()');
      try {
        await waiter.then(); // a native promise: no thenable job or promise of V8's own
      } finally {
        this.#waiter = null;
      }
    }
    if (matchStart > this.#limit) throw new LimitOverrunError('Separator is found, but chunk is longer than limit', matchStart);
    return this.#take(matchEnd);
  }

  /** Iterates over lines (as {@link readLine}) until the end of the stream. */
  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    for (;;) {
      const line = await this.readLine();
      if (line.length === 0) return;
      yield line;
    }
  }

  // ---------------------------------------------------------------- internals

  #append(chunk: Buffer): void {
    const live = this.#end - this.#start;
    const n = chunk.length;
    if (live === 0) {
      // Adopt: the common case (one message in flight) costs no copy at all.
      this.#buf = chunk;
      this.#start = 0;
      this.#end = n;
      this.#ownsBuf = false;
      return;
    }
    if (this.#ownsBuf && this.#buf.length - this.#end >= n) {
      chunk.copy(this.#buf, this.#end);
      this.#end += n;
      return;
    }
    // Grow geometrically so that many small chunks cost amortised O(1) per byte.
    const size = Math.max(live + n, 2 * live, 4096);
    const next = Buffer.allocUnsafe(size);
    this.#buf.copy(next, 0, this.#start, this.#end);
    chunk.copy(next, live);
    this.#buf = next;
    this.#start = 0;
    this.#end = live + n;
    this.#ownsBuf = true;
  }

  /** Removes and returns the first `n` bytes (a view, never rewritten; see #append). */
  #take(n: number): Buffer {
    const out = this.#buf.subarray(this.#start, this.#start + n);
    this.#start += n;
    this.#compact();
    this.#maybeResume();
    return out;
  }

  /** Drops the reference to a fully read buffer, so an idle stream holds no memory. */
  #compact(): void {
    if (this.#start === this.#end) {
      this.#buf = EMPTY;
      this.#start = 0;
      this.#end = 0;
      this.#ownsBuf = false;
    }
  }

  #maybeResume(): void {
    if (this.#paused && this.#end - this.#start <= this.#limit) {
      this.#paused = false;
      this.#transport?.resumeReading();
    }
  }

  /**
   * The future a read waits on until more data (or the end) arrives: a ReadFuture for
   * `read(n)` (pass `readN`), which clears `#waiter` as it makes its result; a plain
   * future otherwise, which the caller awaits and clears in a `finally`. A done waiter
   * (resumed or cancelled) no longer holds the reader.
   */
  #newWaiter(what: string, readN?: number): Future<unknown> {
    // A done waiter is no longer waited on: its read resumed, or was cancelled.
    if (this.#waiter !== null && !this.#waiter.done()) {
      throw new ResourceBusyError(`${what} called while another task is already waiting for incoming data on this StreamReader`);
    }
    // A waiting read must be able to get more data whatever the buffer holds.
    if (this.#paused) {
      this.#paused = false;
      this.#transport?.resumeReading();
    }
    const waiter = readN === undefined ? this.#loop.createFuture<void>(what) : new StreamReader.#ReadFuture(this, readN);
    this.#waiter = waiter;
    return waiter;
  }

  #wakeWaiter(): void {
    const w = this.#waiter;
    if (w === null || w.done()) return;
    if (w instanceof StreamReader.#ReadFuture) w[kSetResultLazy]();
    else w.setResult(undefined);
  }

  toString(): string {
    const parts = [`StreamReader ${this.#state}`, `limit=${this.#limit}`];
    if (this.#end > this.#start) parts.push(`${this.#end - this.#start} bytes`);
    if (this.#waiter !== null && !this.#waiter.done()) parts.push('waiting');
    if (this.#paused) parts.push('paused');
    if (this.#transport !== null) parts.push(`transport=${String(this.#transport)}`);
    return `<${parts.join(' ')}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}
