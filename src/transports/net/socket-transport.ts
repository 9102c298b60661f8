/**
 * The stream transport over a Node socket: TCP, Unix and TLS.
 *
 * ```
 * open --close()--> closing --(write buffer flushed)--> closed   connectionLost(undefined)
 * open --abort()------------------------------------> closed   connectionLost(undefined)
 * open --(peer reset, socket error)-----------------> closed   connectionLost(typed error)
 * open --(peer EOF, eofReceived() falsy)--> close()
 * ```
 * Every path ends in `#forceClose`, which is a no-op the second time; it schedules
 * `connectionLost` with `callSoon` (after any data already read and queued), so the
 * protocol sees it exactly once and never from inside `write()` or `close()`.
 *
 * Protocol callbacks run only while the loop runs: a read that arrives while it does
 * not (or before `connectionMade` ran) is queued, reading stops, and the queue is fed
 * to the protocol by a loop callback. An exception from a protocol method goes to the
 * loop's exception handler and aborts the connection. In debug mode protocol
 * callbacks are timed like loop callbacks.
 *
 * Reading: plain sockets are read through Node's `onread` option. Node asks for the
 * next read's buffer right after each read: a `BufferedProtocol` is asked then
 * (`getBuffer(-1)`) and the read lands in its buffer. When the bytes arrive it is asked
 * once more, as asyncio asks before each read; if it now answers with another region,
 * the bytes are copied there (the region it gave before only ever receives bytes it
 * offered room for). A `Protocol` gets one owned copy out of a module-wide 256 KiB
 * scratch buffer (one read per large message). TLS sockets and sockets Node created
 * without `onread` are read through `'data'` events.
 *
 * Writing: `write(view)` never lets a pending write see the caller's bytes change. On a
 * plain socket with nothing queued the bytes go to `write(2)` at once (`fs.writeSync`
 * on the socket's fd, non-blocking) and only the tail the kernel did not take is
 * copied and queued on the socket, so nothing keeps a reference to the caller's buffer
 * and the common case costs one system call and no allocation. Otherwise (TLS, a
 * queue, no fd, `PROTOLOOP_NO_DIRECT_WRITE=1`) the bytes are copied and queued, except
 * a view of the buffer the transport reads into (a BufferedProtocol echoing its own
 * buffer), which is queued as is while reading is held until it is flushed.
 * @module
 */
import { writeSync, writevSync } from 'node:fs';
import type net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { inspect } from 'node:util';
import { InvalidArgumentError, TransportClosedError } from '../../errors.ts';
import { kDescribe } from '../../loop/symbols.ts';
import type { Future } from '../../loop/future.ts';
import type { Loop } from '../../loop/loop.ts';
import { trackResource, type ResourceToken } from '../../loop/resources.ts';
import type { BaseProtocol, BufferedProtocol, Protocol } from '../../protocols/protocols.ts';
import { DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER, FlowControl } from '../flow-control.ts';
import { mapSocketError } from '../map-error.ts';
import type { Transport } from '../transports.ts';

/** The lifecycle of a {@link SocketTransport}. */
export type SocketTransportState = 'open' | 'closing' | 'closed';

/** @internal Who keeps a set of live transports (a server). */
export interface TransportOwner {
  attach(t: SocketTransport): void;
  detach(t: SocketTransport): void;
}

/** A protocol a stream transport can drive. */
export type StreamProtocol = Protocol | BufferedProtocol;

/** @internal Options of the SocketTransport constructor. */
export interface SocketTransportOptions {
  /** Whether the socket was constructed with {@link ONREAD} (else it is read through 'data'). */
  onread?: boolean;
  /** Resolved once `connectionMade` ran (rejected if it threw). */
  waiter?: Future<void>;
  /** Extra info entries known up front. */
  extra?: Record<string, unknown>;
  /** The server the connection belongs to: told when it starts and once it is gone. */
  owner?: TransportOwner;
  /** Whether `connectionMade` was already called on this protocol (startTls). */
  skipConnectionMade?: boolean;
  /** The resource kind for unclosed reports. Default 'transport'. */
  kind?: string;
}

const kTransport = Symbol('protoloop.socketTransport');
const kOnRead = Symbol('protoloop.onRead');
const kNextBuffer = Symbol('protoloop.nextBuffer');
const kOnData = Symbol('protoloop.onData');
const kOnEnd = Symbol('protoloop.onEnd');
const kOnError = Symbol('protoloop.onError');
const kOnClose = Symbol('protoloop.onClose');
const kOnFinish = Symbol('protoloop.onFinish');
const kMake = Symbol('protoloop.make');
const kFlush = Symbol('protoloop.flush');
const kCallProtocol = Symbol('protoloop.callProtocol');

type OwnedSocket = net.Socket & { [kTransport]?: SocketTransport; _handle?: { fd?: unknown } | null };

/**
 * One scratch buffer shared by every `onread` socket that has no protocol buffer to
 * read into: a read fills it and its callback consumes it synchronously, so sockets
 * never see each other's bytes. Large, so that a big message arrives in one read
 * (one callback, one copy) rather than in 64 KiB pieces.
 */
const SCRATCH = Buffer.allocUnsafeSlow(256 * 1024);

let directWrites = process.env.PROTOLOOP_NO_DIRECT_WRITE === undefined || process.env.PROTOLOOP_NO_DIRECT_WRITE === '' || process.env.PROTOLOOP_NO_DIRECT_WRITE === '0';

/**
 * @internal Turns direct writes on or off (tests run both paths). Returns the previous
 * setting. Off: every write goes through `net.Socket.write` with a copy.
 */
export function setDirectWrites(on: boolean): boolean {
  const was = directWrites;
  directWrites = on;
  return was;
}

/** An owned copy of `src[start, end)` (small ones from Node's buffer pool). */
function copyOut(src: Uint8Array, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start);
  out.set(start === 0 && end === src.byteLength ? src : src.subarray(start, end));
  return out;
}

/** Bytes `write(2)` took (0 when the socket buffer is full), or -1 on an error the socket should report itself. */
function tryWrite(fd: number, data: Uint8Array): number {
  try {
    return writeSync(fd, data);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'EAGAIN' || code === 'EWOULDBLOCK' ? 0 : -1;
  }
}

/** As {@link tryWrite}, for several chunks in one `writev(2)`. */
function tryWritev(fd: number, chunks: Uint8Array[]): number {
  try {
    return writevSync(fd, chunks);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'EAGAIN' || code === 'EWOULDBLOCK' ? 0 : -1;
  }
}
const EOF = Symbol('eof');
type Pending = Buffer | typeof EOF;
/** Writes after the connection was lost are dropped; warn from this many on (asyncio's threshold). */
const LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5;

// ------------------------------------------------------------ module-level listeners
// Named functions bound through the socket's back-reference, no closure per connection.

/**
 * Node asks `onread.buffer()` for the next read buffer right after each read callback,
 * but calls it without a `this`: the callback leaves its socket here for it.
 */
let lastReader: OwnedSocket | undefined;
function socketNextBuffer(): Uint8Array {
  const t = lastReader?.[kTransport];
  lastReader = undefined;
  return t === undefined ? SCRATCH : t[kNextBuffer]();
}
function socketOnRead(this: OwnedSocket, nread: number, buf: Uint8Array): boolean {
  this[kTransport]?.[kOnRead](nread, buf);
  lastReader = this;
  return true;
}
function socketOnData(this: OwnedSocket, chunk: Buffer): void {
  this[kTransport]?.[kOnData](chunk);
}
function socketOnEnd(this: OwnedSocket): void {
  this[kTransport]?.[kOnEnd]();
}
function socketOnError(this: OwnedSocket, err: Error): void {
  this[kTransport]?.[kOnError](err);
}
function socketOnClose(this: OwnedSocket): void {
  this[kTransport]?.[kOnClose]();
}
function socketOnFinish(this: OwnedSocket): void {
  this[kTransport]?.[kOnFinish]();
}
function transportMakeConnection(t: SocketTransport): void {
  t[kMake]();
}
function transportFlush(t: SocketTransport): void {
  t[kFlush]();
}
function transportCallProtocol(t: SocketTransport, method: 'pauseWriting' | 'resumeWriting'): void {
  t[kCallProtocol](method);
}

/**
 * @internal The `onread` option for sockets a SocketTransport will own: pass it to the
 * `net.Socket` constructor, then create the transport in the same tick.
 */
export const ONREAD = { buffer: socketNextBuffer, callback: socketOnRead };

/** Whether `p` is a BufferedProtocol (duck-typed, as it supplies its own buffer). */
function isBuffered(p: BaseProtocol): p is BufferedProtocol {
  return typeof (p as BufferedProtocol).getBuffer === 'function' && typeof (p as BufferedProtocol).bufferUpdated === 'function';
}

function addressOf(address: string | undefined, port: number | undefined, family: string | undefined): { address: string; port: number; family: string } | undefined {
  return address === undefined ? undefined : { address, port: port ?? 0, family: family ?? '' };
}

// Bits of SocketTransport's one flags field (a field per boolean costs 8 bytes a connection).
const F_BUFFERED = 1 << 0;
const F_MADE = 1 << 1;
const F_LOST_DELIVERED = 1 << 2;
const F_FLUSH_SCHEDULED = 1 << 3;
const F_READING = 1 << 4;
const F_SOCKET_READING = 1 << 5;
const F_READ_HOLD = 1 << 6;
const F_EOF_RECEIVED = 1 << 7;
const F_EOF_WRITTEN = 1 << 8;
const F_CLOSED_BY_USER = 1 << 9;
const F_TLS = 1 << 10;
const F_DIRECT = 1 << 11;

function abortTransport(t: SocketTransport): void {
  t.abort();
}

/**
 * A TCP, Unix-socket or TLS transport. Created by `loop.createConnection()`,
 * `createServer()`, `createUnixConnection()`, `createUnixServer()`,
 * `connectAcceptedSocket()` and `startTls()`; never constructed by user code.
 */
export class SocketTransport implements Transport {
  #loop: Loop;
  #socket: OwnedSocket;
  #protocol: StreamProtocol;
  #state: SocketTransportState = 'open';
  #flags = F_READING;
  #lostExc: Error | undefined = undefined;
  /** Reads (and EOF) waiting for the loop; non-null while anything waits. */
  #pending: Pending[] | null = null;
  /** The buffer the next read goes into when it is the protocol's. */
  #readBuf: Uint8Array | null = null;
  #writesAfterLost = 0;
  /** Made on first need (custom water marks, or the buffer above the default high mark). */
  #flow: FlowControl | null = null;
  #onWritten: ((err?: Error | null) => void) | null = null;
  /** Extra info given up front (peername and sockname are read from the socket when asked). */
  readonly #extra: Record<string, unknown> | null;
  readonly #token: ResourceToken;
  #waiter: Future<void> | null;
  #owner: TransportOwner | null;

  #flag(bit: number, on: boolean): void {
    this.#flags = on ? this.#flags | bit : this.#flags & ~bit;
  }
  /** The protocol is a BufferedProtocol. */
  get #buffered(): boolean { return (this.#flags & F_BUFFERED) !== 0; }
  set #buffered(v: boolean) { this.#flag(F_BUFFERED, v); }
  /** connectionMade ran. */
  get #made(): boolean { return (this.#flags & F_MADE) !== 0; }
  set #made(v: boolean) { this.#flag(F_MADE, v); }
  /** connectionLost ran (or the transport was detached by startTls). */
  get #lostDelivered(): boolean { return (this.#flags & F_LOST_DELIVERED) !== 0; }
  set #lostDelivered(v: boolean) { this.#flag(F_LOST_DELIVERED, v); }
  get #flushScheduled(): boolean { return (this.#flags & F_FLUSH_SCHEDULED) !== 0; }
  set #flushScheduled(v: boolean) { this.#flag(F_FLUSH_SCHEDULED, v); }
  /** The protocol's wish (pauseReading/resumeReading). */
  get #reading(): boolean { return (this.#flags & F_READING) !== 0; }
  set #reading(v: boolean) { this.#flag(F_READING, v); }
  /** What the socket was last told. */
  get #socketReading(): boolean { return (this.#flags & F_SOCKET_READING) !== 0; }
  set #socketReading(v: boolean) { this.#flag(F_SOCKET_READING, v); }
  /** Reading held until a pending write of our read buffer is flushed. */
  get #readHold(): boolean { return (this.#flags & F_READ_HOLD) !== 0; }
  set #readHold(v: boolean) { this.#flag(F_READ_HOLD, v); }
  get #eofReceived(): boolean { return (this.#flags & F_EOF_RECEIVED) !== 0; }
  set #eofReceived(v: boolean) { this.#flag(F_EOF_RECEIVED, v); }
  get #eofWritten(): boolean { return (this.#flags & F_EOF_WRITTEN) !== 0; }
  set #eofWritten(v: boolean) { this.#flag(F_EOF_WRITTEN, v); }
  get #closedByUser(): boolean { return (this.#flags & F_CLOSED_BY_USER) !== 0; }
  set #closedByUser(v: boolean) { this.#flag(F_CLOSED_BY_USER, v); }
  get #isTls(): boolean { return (this.#flags & F_TLS) !== 0; }
  /** Writes may go straight to the fd (a plain socket: not TLS). */
  get #direct(): boolean { return (this.#flags & F_DIRECT) !== 0; }

  /** @internal Use the loop methods. */
  constructor(loop: Loop, socket: net.Socket, protocol: StreamProtocol, options: SocketTransportOptions = {}) {
    this.#loop = loop;
    this.#socket = socket as OwnedSocket;
    this.#protocol = protocol;
    this.#buffered = isBuffered(protocol);
    this.#waiter = options.waiter ?? null;
    this.#owner = options.owner ?? null;
    this.#flag(socket instanceof tls.TLSSocket ? F_TLS : F_DIRECT, true);
    this.#extra = options.extra ?? null;
    this.#token = trackResource(loop, options.kind ?? 'transport', this, abortTransport);
    const s = this.#socket;
    s[kTransport] = this;
    // TCP_NODELAY as asyncio does: a transport writes whole messages, Nagle only adds latency.
    // (A no-op on Unix sockets.)
    s.setNoDelay(true);
    if (options.onread !== true) s.on('data', socketOnData);
    // Node's own 'end' listener does nothing on a half-open socket (ours all are); with
    // ours beside it the event would need a listener array (memory per connection).
    if (s.allowHalfOpen) {
      const own = s.listeners('end');
      if (own.length === 1 && (own[0] as { name?: string }).name === 'onReadableStreamEnd') s.removeListener('end', own[0] as () => void);
    }
    s.on('end', socketOnEnd);
    s.on('error', socketOnError);
    s.on('close', socketOnClose);
    // 'finish' is listened to only once close() waits for it; write callbacks stand for 'drain'.
    if (options.skipConnectionMade === true) {
      this.#made = true;
    } else {
      this.#pending = [];
      loop.callSoon(transportMakeConnection, this);
    }
    this.#syncReading();
    this.#owner?.attach(this);
  }

  // -------------------------------------------------------------- reading side

  /**
   * @internal Node asks for the buffer of the next read, right after a read. A
   * BufferedProtocol that can take data now is asked for it (the read lands in place);
   * otherwise the read goes to the scratch buffer.
   */
  [kNextBuffer](): Uint8Array {
    if (this.#buffered && this.#deliverable()) {
      const buf = this.#getBuffer(-1);
      if (buf !== null) {
        this.#readBuf = buf;
        return buf;
      }
    }
    return SCRATCH;
  }

  /** @internal `nread` bytes were read into `buf` (onread path). */
  [kOnRead](nread: number, buf: Uint8Array): void {
    if (this.#state !== 'open') return;
    if (!this.#deliverable()) {
      this.#enqueue(copyOut(buf, 0, nread));
    } else if (!this.#buffered) {
      this.#call('dataReceived', copyOut(buf, 0, nread));
    } else if (buf === SCRATCH) {
      this.#feedBufferedRead(buf.subarray(0, nread), null, false);
    } else {
      // The bytes are in the buffer the protocol gave after the previous read. Ask it
      // again, as asyncio asks before each read: if it still wants them there (the usual
      // case), they are in place; if its buffer moved meanwhile, they are copied over.
      const now = this.#getBuffer(-1);
      if (now === null) return;
      if (now.buffer === buf.buffer && now.byteOffset === buf.byteOffset && now.byteLength >= nread) {
        this.#readBuf = now;
        this.#call('bufferUpdated', nread);
      } else {
        // Through the scratch buffer: the protocol's buffers may overlap the bytes.
        const tmp = nread <= SCRATCH.length ? SCRATCH : Buffer.allocUnsafe(nread);
        tmp.set(buf.subarray(0, nread));
        this.#feedBufferedRead(tmp.subarray(0, nread), now, false);
      }
    }
  }

  /** The protocol's buffer for the next `hint` bytes (-1: unknown), or null after a fatal error. */
  #getBuffer(hint: number): Uint8Array | null {
    let buf: Uint8Array;
    try {
      buf = (this.#protocol as BufferedProtocol).getBuffer(hint);
    } catch (exception) {
      this.#fatal(exception, 'protocol.getBuffer() call failed');
      return null;
    }
    if (!(buf instanceof Uint8Array) || buf.byteLength === 0) {
      this.#fatal(new InvalidArgumentError('BufferedProtocol.getBuffer() must return a non-empty Uint8Array'), 'protocol.getBuffer() returned no buffer');
      return null;
    }
    return buf;
  }

  /** @internal An owned chunk arrived ('data' path). */
  [kOnData](chunk: Buffer): void {
    if (this.#state !== 'open') return;
    if (!this.#deliverable()) this.#enqueue(chunk);
    else if (this.#buffered) this.#feedBufferedRead(chunk, null, true);
    else this.#call('dataReceived', chunk);
  }

  /** @internal The peer closed its writing side. */
  [kOnEnd](): void {
    if (this.#state !== 'open') return;
    if (this.#deliverable()) this.#deliverEof();
    else this.#enqueue(EOF);
  }

  #deliverable(): boolean {
    return this.#made && this.#pending === null && this.#reading && !this.#readHold && this.#state === 'open' && this.#loop.isRunning();
  }

  /**
   * Copies `data` into the protocol's buffers, as many as it takes; `first`: the buffer
   * already asked for. Stops early if the protocol pauses reading (or a write of its
   * buffer is pending) and returns how many bytes it delivered.
   */
  #feedBuffered(data: Uint8Array, first: Uint8Array | null): number {
    let off = 0;
    let buf = first;
    while (off < data.byteLength && this.#state === 'open') {
      buf ??= this.#getBuffer(data.byteLength - off);
      if (buf === null) break;
      const n = Math.min(buf.byteLength, data.byteLength - off);
      buf.set(n === data.byteLength ? data : data.subarray(off, off + n));
      this.#readBuf = buf;
      buf = null;
      off += n;
      this.#call('bufferUpdated', n);
      if (!this.#reading || this.#readHold) break;
    }
    return off;
  }

  /** Feeds a read to a BufferedProtocol; what it does not take now waits in the queue (as an owned copy). */
  #feedBufferedRead(data: Uint8Array, first: Uint8Array | null, owned: boolean): void {
    const used = this.#feedBuffered(data, first);
    if (used < data.byteLength && this.#state === 'open') this.#enqueue(owned ? data.subarray(used) as Buffer : copyOut(data, used, data.byteLength));
  }

  #deliverEof(): void {
    this.#eofReceived = true;
    const keepOpen = this.#call('eofReceived');
    if (this.#state === 'open' && !keepOpen) this.close();
  }

  #enqueue(item: Pending): void {
    (this.#pending ??= []).push(item);
    this.#syncReading();
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || !this.#made) return;
    this.#flushScheduled = true;
    try {
      this.#loop.callSoon(transportFlush, this);
    } catch {
      // The loop is closed: nobody is left to deliver to.
      this.#flushScheduled = false;
      this.#pending = null;
      this.#socket.destroy();
    }
  }

  /** @internal Runs on the loop: connectionMade, then whatever waited for it. */
  [kMake](): void {
    this.#made = true;
    this.#call('connectionMade', this);
    const waiter = this.#waiter;
    this.#waiter = null;
    if (waiter !== null && !waiter.done()) {
      if (this.#state === 'closed' && this.#lostExc !== undefined) waiter.setException(this.#lostExc);
      else waiter.setResult(undefined);
    }
    this[kFlush]();
  }

  /** @internal Runs on the loop: feeds queued reads, then connectionLost once closed. */
  [kFlush](): void {
    this.#flushScheduled = false;
    if (!this.#made) return;
    const q = this.#pending;
    if (q !== null) {
      let i = 0;
      while (i < q.length && this.#reading && !this.#readHold && this.#state !== 'closing' && this.#pending === q) {
        const item = q[i++]!;
        if (this.#state === 'closed' && this.#lostDelivered) break;
        if (item === EOF) {
          this.#deliverEof();
        } else if (this.#buffered) {
          const used = this.#feedBuffered(item, null);
          if (used < item.length && this.#pending === q) {
            // The protocol paused: the rest of this chunk is first in line.
            q[--i] = item.subarray(used);
            break;
          }
        } else {
          this.#call('dataReceived', item);
        }
      }
      if (this.#pending === q) {
        q.splice(0, i);
        if (q.length === 0 || this.#state !== 'open') this.#pending = null;
      }
    }
    if (this.#state === 'closed' && !this.#lostDelivered) {
      this.#pending = null;
      this.#deliverLost();
    } else {
      this.#syncReading();
    }
  }

  #deliverLost(): void {
    this.#lostDelivered = true;
    this.#call('connectionLost', this.#lostExc);
    const waiter = this.#waiter;
    if (waiter !== null && !waiter.done()) waiter.setException(this.#lostExc ?? new TransportClosedError('the connection closed before it was made'));
    this.#waiter = null;
    const owner = this.#owner;
    this.#owner = null;
    owner?.detach(this);
    this.#readBuf = null;
  }

  /** Starts or stops the socket's reading to match what the protocol and the queue allow. */
  #syncReading(): void {
    const want = this.#state === 'open' && this.#reading && this.#pending === null && !this.#readHold;
    if (want === this.#socketReading) return;
    this.#socketReading = want;
    if (want) this.#socket.resume();
    else this.#socket.pause();
  }

  /** Whether data is being delivered to the protocol. */
  isReading(): boolean {
    return this.#reading && this.#state === 'open';
  }

  /** Stops delivering data until {@link resumeReading}; the peer feels backpressure. Idempotent. */
  pauseReading(): void {
    if (this.#state !== 'open' || !this.#reading) return;
    this.#reading = false;
    this.#syncReading();
  }

  /** Resumes delivering data (first whatever arrived meanwhile). Idempotent. */
  resumeReading(): void {
    if (this.#state !== 'open' || this.#reading) return;
    this.#reading = true;
    if (this.#pending !== null) this.#scheduleFlush();
    this.#syncReading();
  }

  // -------------------------------------------------------------- writing side

  /**
   * Writes `data` (a string is UTF-8 encoded). Never blocks; bytes that cannot go out
   * at once are kept (copied), so the caller may reuse its buffer right away.
   * Throws {@link TransportClosedError} after `close()`, `abort()` or `writeEof()`;
   * after the peer broke the connection, writes are dropped (and logged from the fifth).
   * Throws {@link InvalidArgumentError} for anything but a string or Uint8Array.
   */
  write(data: Uint8Array | string): void {
    if (!this.#checkWritable(data)) return;
    this.#send(data);
    this.#afterWrite(this.#socket.writableLength);
  }

  /** Writes each chunk of `list` in order, in one system call where possible. */
  writeLines(list: Iterable<Uint8Array | string>): void {
    const chunks = [...list];
    for (const c of chunks) if (typeof c !== 'string' && !(c instanceof Uint8Array)) throw new InvalidArgumentError(`writeLines() takes strings and Uint8Arrays, got ${inspect(c, { depth: 0 })}`);
    const first = chunks.find((c) => c.length > 0);
    if (first === undefined || !this.#checkWritable(first)) return;
    const s = this.#socket;
    const fd = this.#directFd();
    if (fd >= 0) {
      const bufs: Uint8Array[] = [];
      // Strings are encoded into buffers of our own; the caller's bytes are copied if queued.
      const owned: boolean[] = [];
      for (const c of chunks) {
        if (c.length === 0) continue;
        bufs.push(typeof c === 'string' ? Buffer.from(c) : c);
        owned.push(typeof c === 'string');
      }
      let n = tryWritev(fd, bufs);
      if (n >= 0) {
        let i = 0;
        while (i < bufs.length && n >= bufs[i]!.byteLength) n -= bufs[i++]!.byteLength;
        if (i < bufs.length) {
          s.cork();
          try {
            for (; i < bufs.length; i++, n = 0) {
              const b = bufs[i]!;
              this.#queue(owned[i] === true ? b.subarray(n) : copyOut(b, n, b.byteLength), false);
            }
          } finally {
            s.uncork();
          }
        }
        this.#afterWrite(s.writableLength);
        return;
      }
    }
    s.cork();
    try {
      for (const c of chunks) if (c.length > 0) this.#send(c);
    } finally {
      s.uncork();
    }
    this.#afterWrite(s.writableLength);
  }

  /** Whether writing is allowed now; throws the right error when it is not. */
  #checkWritable(data: unknown): boolean {
    if (typeof data === 'string') {
      if (data.length === 0 && this.#state === 'open' && !this.#eofWritten) return false;
    } else if (data instanceof Uint8Array) {
      if (data.byteLength === 0 && this.#state === 'open' && !this.#eofWritten) return false;
    } else {
      throw new InvalidArgumentError(`write() takes a string or a Uint8Array, got ${inspect(data, { depth: 0 })}`);
    }
    if (this.#state === 'open' && !this.#eofWritten) return true;
    if (this.#state === 'closed' && !this.#closedByUser) {
      // The peer broke the connection; connectionLost is on its way. asyncio drops these writes.
      if (++this.#writesAfterLost === LOG_THRESHOLD_FOR_CONNLOST_WRITES) {
        this.#loop.logger.warn(`${this.toString()}: write() after the connection was lost; the data is dropped (wait for connectionLost)`);
      }
      return false;
    }
    throw new TransportClosedError(
      this.#eofWritten && this.#state === 'open'
        ? 'write() after writeEof(): the writing side is closed'
        : `write() on a ${this.#state} transport: it was closed with close() or abort()`,
    );
  }

  /**
   * The fd to write to directly, or -1: only for a plain socket with nothing queued,
   * corked, connecting or ending, so the bytes go out in order. The handle is looked
   * up each time: once the socket is destroyed it is gone (and its fd may be reused).
   */
  #directFd(): number {
    const s = this.#socket;
    if (!this.#direct || !directWrites || s.writableLength !== 0 || s.connecting || s.writableCorked !== 0 || s.writableEnded || s.destroyed) return -1;
    const fd = s._handle?.fd;
    return typeof fd === 'number' && fd >= 0 ? fd : -1;
  }

  #send(data: Uint8Array | string): void {
    const fd = this.#directFd();
    if (fd >= 0) {
      // write(2) at once: nothing keeps a reference to the caller's bytes, and only the
      // tail the kernel did not take is copied.
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      const n = tryWrite(fd, bytes);
      if (n === bytes.byteLength) return;
      if (n >= 0) {
        this.#queue(typeof data === 'string' ? bytes.subarray(n) : copyOut(bytes, n, bytes.byteLength), false);
        return;
      }
      // An error: the socket's own write meets it again and reports it ('error').
    }
    let chunk = data;
    let hold = false;
    if (typeof data !== 'string') {
      const rb = this.#readBuf;
      // A view inside our read buffer (not merely the same ArrayBuffer: a pool slab is shared).
      if (rb !== null && data.buffer === rb.buffer && data.byteOffset >= rb.byteOffset && data.byteOffset + data.byteLength <= rb.byteOffset + rb.byteLength) hold = true;
      else chunk = copyOut(data, 0, data.byteLength);
    }
    this.#queue(chunk, hold);
  }

  /** Hands `chunk` to the socket; `hold`: it is a view of our read buffer, so reading waits until it is flushed. */
  #queue(chunk: Uint8Array | string, hold: boolean): void {
    const s = this.#socket;
    const before = s.writableLength;
    // A completion callback only when someone waits for the buffer to shrink.
    const flow = this.#flow;
    const wantCallback = hold || this.#readHold || (flow !== null && flow.paused) || before + chunk.length > (flow?.low ?? DEFAULT_LOW_WATER);
    if (wantCallback) s.write(chunk, (this.#onWritten ??= this.#writeDone.bind(this)));
    else s.write(chunk);
    if (hold && s.writableLength > 0 && !this.#readHold) {
      // The write still references our read buffer: stop reading into it until flushed.
      this.#readHold = true;
      this.#syncReading();
    }
  }

  #writeDone(): void {
    const size = this.#socket.writableLength;
    if (this.#readHold && size === 0) {
      this.#readHold = false;
      if (this.#pending !== null) this.#scheduleFlush();
      this.#syncReading();
    }
    if (this.#state !== 'closed') this.#flow?.afterDrain(size);
  }

  /** The buffer grew to `size` bytes: pauseWriting() above the high-water mark. */
  #afterWrite(size: number): void {
    if (this.#flow !== null) this.#flow.afterWrite(size);
    else if (size > DEFAULT_HIGH_WATER) this.#flowControl().afterWrite(size);
  }

  #flowControl(): FlowControl {
    return (this.#flow ??= new FlowControl((method) => this.#flowNotify(method)));
  }

  #flowNotify(method: 'pauseWriting' | 'resumeWriting'): void {
    if (this.#loop.isRunning() && this.#made) this.#call(method);
    else this.#loop.callSoon(transportCallProtocol, this, method);
  }

  /** @internal */
  [kCallProtocol](method: 'pauseWriting' | 'resumeWriting'): void {
    if (this.#state !== 'closed') this.#call(method);
  }

  /** Closes the writing side once the buffer is flushed (half-close). The reading side stays open. Idempotent. */
  writeEof(): void {
    if (this.#state !== 'open' || this.#eofWritten) return;
    this.#eofWritten = true;
    this.#socket.end();
  }

  /** Whether {@link writeEof} is supported: true for TCP, Unix and TLS sockets. */
  canWriteEof(): boolean {
    return true;
  }

  /** See `WriteTransport.setWriteBufferLimits`. Throws {@link InvalidArgumentError} for bad marks. */
  setWriteBufferLimits(high?: number, low?: number): void {
    this.#flowControl().setLimits(this.getWriteBufferSize(), high, low);
  }

  /** The current water marks, `[low, high]` in bytes (asyncio's order). */
  getWriteBufferLimits(): [low: number, high: number] {
    const flow = this.#flow;
    return flow === null ? [DEFAULT_LOW_WATER, DEFAULT_HIGH_WATER] : [flow.low, flow.high];
  }

  /** Bytes accepted by `write()` and not yet handed to the OS. */
  getWriteBufferSize(): number {
    return this.#state === 'closed' ? 0 : this.#socket.writableLength;
  }

  // ---------------------------------------------------------------- closing

  /** Whether the transport is closing or closed. */
  isClosing(): boolean {
    return this.#state !== 'open';
  }

  /** Stops reading, flushes what is buffered, then closes; `connectionLost(undefined)` follows. Idempotent. */
  close(): void {
    if (this.#state !== 'open') return;
    this.#state = 'closing';
    this.#closedByUser = true;
    this.#pending = null;
    this.#syncReading();
    if (this.#socket.writableFinished) {
      this.#forceClose(undefined);
      return;
    }
    this.#socket.once('finish', socketOnFinish);
    if (!this.#eofWritten) this.#socket.end();
  }

  /** Closes at once, dropping buffered data; `connectionLost(undefined)` follows. Idempotent. */
  abort(): void {
    if (this.#state === 'closed') return;
    this.#closedByUser = true;
    this.#forceClose(undefined);
  }

  /** @internal */
  [kOnFinish](): void {
    if (this.#state === 'closing') this.#forceClose(undefined);
  }

  /** @internal */
  [kOnError](err: Error): void {
    this.#forceClose(mapSocketError(err));
  }

  /** @internal The socket closed (both sides ended, or destroyed). */
  [kOnClose](): void {
    this.#forceClose(undefined);
    this.#socket[kTransport] = undefined;
  }

  /** The one exit path. A no-op the second time. */
  #forceClose(exc: Error | undefined): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#lostExc = exc;
    this.#readHold = false;
    if (!this.#reading || this.#closedByUser) this.#pending = null;
    this.#token.untrack();
    this.#socket.destroy();
    if (this.#made) this.#scheduleFlush();
  }

  #fatal(exception: unknown, message: string): void {
    this.#loop.callExceptionHandler({ message: `Fatal error on transport: ${message}`, exception, protocol: this.#protocol, transport: this });
    if (this.#state !== 'closed') {
      this.#closedByUser = true;
      this.#forceClose(exception instanceof Error ? exception : new Error(String(exception)));
    }
  }

  /** Calls a protocol method; an exception goes to the exception handler and aborts. Timed in debug mode. */
  #call(method: string, arg?: unknown): unknown {
    const p = this.#protocol as unknown as Record<string, (a?: unknown) => unknown>;
    const debug = this.#loop.getDebug();
    const t0 = debug ? performance.now() : 0;
    let r: unknown;
    try {
      r = p[method]!(arg);
    } catch (exception) {
      if (method === 'connectionLost') {
        this.#loop.callExceptionHandler({ message: 'Exception in protocol.connectionLost()', exception, protocol: this.#protocol, transport: this });
      } else {
        this.#fatal(exception, `protocol.${method}() call failed`);
      }
    }
    if (debug) {
      const dt = performance.now() - t0;
      if (dt >= this.#loop.slowCallbackDuration) this.#loop.reportSlow(`${this.#protocol.constructor.name}.${method}()`, dt, { protocol: this.#protocol, transport: this });
    }
    return r;
  }

  // ---------------------------------------------------------------- the rest

  /**
   * Extra information: `peername` and `sockname` (`{ address, port, family }` for TCP),
   * `socket` (the Node socket), and for TLS `peercert`, `cipher`, `sslObject` (the
   * `tls.TLSSocket`), `alpnProtocol`, `tlsProtocol`. Returns `defaultValue` when unknown.
   */
  getExtraInfo<T = unknown>(name: string, defaultValue?: T): T | undefined {
    const given = this.#extra?.[name];
    if (given !== undefined) return given as T;
    const s = this.#socket;
    switch (name) {
      case 'socket': return s as unknown as T;
      case 'peername': return (s.remoteAddress === undefined ? defaultValue : addressOf(s.remoteAddress, s.remotePort, s.remoteFamily)) as T;
      case 'sockname': return (s.localAddress === undefined ? defaultValue : addressOf(s.localAddress, s.localPort, s.localFamily)) as T;
    }
    if (this.#isTls) {
      const s = this.#socket as unknown as tls.TLSSocket;
      try {
        switch (name) {
          case 'sslObject': return s as T;
          case 'peercert': return (s.getPeerCertificate() ?? defaultValue) as T;
          case 'cipher': return (s.getCipher() ?? defaultValue) as T;
          case 'alpnProtocol': return ((s.alpnProtocol || undefined) ?? defaultValue) as T;
          case 'tlsProtocol': return (s.getProtocol() ?? defaultValue) as T;
        }
      } catch {
        return defaultValue;
      }
    }
    return defaultValue;
  }

  /** Replaces the protocol; the next read goes to the new one. */
  setProtocol(protocol: BaseProtocol): void {
    this.#protocol = protocol as StreamProtocol;
    this.#buffered = isBuffered(protocol);
    this.#readBuf = null;
  }

  /** The current protocol. */
  getProtocol(): BaseProtocol {
    return this.#protocol;
  }

  /** The transport's state: `'open'`, `'closing'` or `'closed'`. */
  get state(): SocketTransportState {
    return this.#state;
  }

  /**
   * @internal Hands the socket over (startTls): stops reading, removes our listeners
   * and forgets the socket without closing it or calling connectionLost.
   */
  detachSocket(): net.Socket {
    if (this.#state !== 'open') throw new TransportClosedError('startTls() needs an open transport');
    const s = this.#socket;
    this.#reading = false;
    this.#syncReading();
    this.#state = 'closed';
    this.#lostDelivered = true;
    this.#closedByUser = true;
    this.#pending = null;
    this.#token.untrack();
    s.off('data', socketOnData).off('end', socketOnEnd).off('error', socketOnError).off('close', socketOnClose);
    s.off('finish', socketOnFinish);
    s[kTransport] = undefined;
    return s;
  }

  /** @internal Takes the owner away (startTls hands it to the new transport). */
  releaseOwner(): TransportOwner | null {
    const owner = this.#owner;
    this.#owner = null;
    return owner;
  }

  /** @internal Bytes read and queued for the protocol. */
  get pendingBytes(): number {
    let n = 0;
    for (const item of this.#pending ?? []) if (item !== EOF) n += item.length;
    return n;
  }

  /** @internal */
  [kDescribe](): string {
    // trackResource() asks while the constructor runs: keep that one cheap (no getpeername).
    return this.#token === undefined ? '<SocketTransport>' : this.toString();
  }

  toString(): string {
    const parts = [this.#isTls ? 'TLS' : this.#socket.remoteFamily === undefined ? 'unix' : 'TCP', this.#state];
    const peer = this.getExtraInfo<{ address: string; port: number }>('peername');
    const path = this.#extra?.path;
    if (peer !== undefined) parts.push(`peer=${peer.address}:${peer.port}`);
    else if (typeof path === 'string') parts.push(`path=${path}`);
    if (!this.#reading) parts.push('reading paused');
    if (this.#eofWritten) parts.push('eof written');
    if (this.#eofReceived) parts.push('eof received');
    if (this.#state !== 'closed') parts.push(`buffered=${this.#socket.writableLength}`);
    if (this.#flow?.paused === true) parts.push('writing paused');
    return `<SocketTransport ${parts.join(' ')}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}
