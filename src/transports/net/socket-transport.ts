/**
 * The stream transport over a Node socket: TCP, Unix and TLS.
 *
 * ```
 * open --close()--> closing --(write buffer flushed)--> closed   connectionLost(undefined)
 * open --abort()------------------------------------> closed   connectionLost(undefined)
 * open --(peer reset, socket error)-----------------> closed   connectionLost(typed error)
 * open --(peer EOF, eofReceived() falsy)--> close()
 * ```
 * Orthogonal to that: `made` (connectionMade ran), `reading` (the protocol's wish),
 * `readHold` (a write of our read buffer is pending), `eofReceived`, `eofWritten`.
 * Every path ends in the base's `forceClose` (src/transports/base.ts), a no-op the
 * second time, which schedules `connectionLost` once with `callSoon`, after any data
 * already read and queued.
 *
 * Protocol callbacks run only while the loop runs: a read that arrives while it does
 * not (or before `connectionMade` ran) is queued and fed to the protocol by a loop
 * callback. Backpressure from the first byte: once more than one high-water mark
 * ({@link READ_BACKLOG_LIMIT}) waits in that queue, the socket stops reading, so a
 * stopped loop or a slow start never buffers a peer without bound.
 *
 * Reading: plain sockets are read through Node's `onread` option (see
 * node-internals.ts). Node asks for the next read's buffer right after each read: a
 * `BufferedProtocol` is asked then (`getBuffer(-1)`) and the read lands in its
 * buffer. When the bytes arrive it is asked once more, as asyncio asks before each
 * read; if it now answers with another region, the bytes are copied there. A
 * `Protocol` gets one owned copy out of a module-wide 256 KiB scratch buffer. TLS
 * sockets and sockets Node created without `onread` are read through `'data'` events.
 *
 * Writing: see socket-write.ts (direct non-blocking `write(2)` when nothing is queued,
 * a copy of only the tail the kernel did not take).
 * @module
 */
import type net from 'node:net';
import tls from 'node:tls';
import { inspect } from 'node:util';
import { IdleTimeoutError, InvalidArgumentError, TransportClosedError } from '../../errors.ts';
import { kDescribe } from '../../loop/symbols.ts';
import type { Future } from '../../loop/future.ts';
import type { Loop } from '../../loop/loop.ts';
import { trackResource, type ResourceToken } from '../../loop/resources.ts';
import type { BaseProtocol, BufferedProtocol, Protocol } from '../../protocols/protocols.ts';
import { TransportBase, type TransportState } from '../base.ts';
import { DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER } from '../flow-control.ts';
import { mapSocketError } from '../map-error.ts';
import type { Transport } from '../transports.ts';
import { dropNodeEndListener, makeOnread, type OnreadTarget } from './node-internals.ts';
import { kTransport } from '../../loop/symbols.ts';
import { copyOut, send, sendMany, type WriteHost } from './socket-write.ts';
import { IdleTimer, type IdleHost } from '../idle.ts';

/** The lifecycle of a {@link SocketTransport}. */
export type SocketTransportState = TransportState;

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
  /** Close the connection after this many ms without a byte read or written (0: never). */
  idleTimeout?: number;
}

/**
 * Bytes read and queued for a protocol that cannot take them yet (the loop is not
 * running, `connectionMade` has not run) before the socket stops reading: one
 * high-water mark, plus at most one read in flight.
 */
export const READ_BACKLOG_LIMIT = DEFAULT_HIGH_WATER;

type OwnedSocket = net.Socket & { [kTransport]?: SocketTransport };

/**
 * One scratch buffer shared by every `onread` socket that has no protocol buffer to
 * read into: a read fills it and its callback consumes it synchronously, so sockets
 * never see each other's bytes. Large, so that a big message arrives in one read
 * (one callback, one copy) rather than in 64 KiB pieces.
 */
const SCRATCH = Buffer.allocUnsafeSlow(256 * 1024);

const EOF = Symbol('eof');
type Pending = Buffer | typeof EOF;

// ------------------------------------------------------------ module-level listeners
// Named functions bound through the socket's back-reference, no closure per connection.

const onreadTarget: OnreadTarget = {
  nextBuffer(socket) {
    const t = (socket as OwnedSocket)[kTransport];
    return t === undefined ? SCRATCH : t.nextReadBuffer();
  },
  read(socket, nread, buf) {
    (socket as OwnedSocket)[kTransport]?.onRead(nread, buf);
  },
};

/**
 * @internal The `onread` option for sockets a SocketTransport will own: pass it to the
 * `net.Socket` constructor, then create the transport in the same tick.
 */
export const ONREAD = makeOnread(onreadTarget, SCRATCH);

function socketOnData(this: OwnedSocket, chunk: Buffer): void {
  this[kTransport]?.onData(chunk);
}
function socketOnEnd(this: OwnedSocket): void {
  this[kTransport]?.onEnd();
}
function socketOnError(this: OwnedSocket, err: Error): void {
  this[kTransport]?.onError(err);
}
function socketOnClose(this: OwnedSocket): void {
  this[kTransport]?.onClose();
}
function socketOnFinish(this: OwnedSocket): void {
  this[kTransport]?.onFinish();
}
function transportMakeConnection(t: SocketTransport): void {
  t.makeConnection();
}
function transportFlush(t: SocketTransport): void {
  t.flush();
}
function abortTransport(t: SocketTransport): void {
  t.abort();
}

/** Whether `p` is a BufferedProtocol (duck-typed, as it supplies its own buffer). */
function isBuffered(p: BaseProtocol): p is BufferedProtocol {
  return typeof (p as BufferedProtocol).getBuffer === 'function' && typeof (p as BufferedProtocol).bufferUpdated === 'function';
}

function addressOf(address: string | undefined, port: number | undefined, family: string | undefined): { address: string; port: number; family: string } | undefined {
  return address === undefined ? undefined : { address, port: port ?? 0, family: family ?? '' };
}

/**
 * A TCP, Unix-socket or TLS transport. Created by `loop.createConnection()`,
 * `createServer()`, `createUnixConnection()`, `createUnixServer()`,
 * `connectAcceptedSocket()` and `startTls()`; never constructed by user code.
 */
export class SocketTransport extends TransportBase<StreamProtocol> implements Transport, WriteHost, IdleHost {
  /** @internal The socket (read by the write path). */
  readonly socket: OwnedSocket;
  /** @internal A plain socket (not TLS): writes may go straight to the fd. */
  readonly direct: boolean;
  #onWritten: ((err?: Error | null) => void) | null = null;
  /** The protocol is a BufferedProtocol. */
  #buffered: boolean;
  #flushScheduled = false;
  /** The protocol's wish (pauseReading/resumeReading). */
  #reading = true;
  /** What the socket was last told; it reads when it is made. */
  #socketReading = true;
  /** Reading held until a pending write of our read buffer is flushed. */
  #readHold = false;
  #eofReceived = false;
  /** @internal writeEof() was called. */
  eofWritten = false;
  readonly #tls: boolean;
  /** Reads (and EOF) waiting for the loop; non-null while anything waits. */
  #pending: Pending[] | null = null;
  #pendingBytes = 0;
  /** The buffer the next read goes into when it is the protocol's. */
  #readBuf: Uint8Array | null = null;
  /** Extra info given up front (peername and sockname are read from the socket when asked). */
  readonly #extra: Record<string, unknown> | null;
  readonly #token: ResourceToken;
  #waiter: Future<void> | null;
  #owner: TransportOwner | null;
  #idle: IdleTimer | null = null;

  /** @internal Use the loop methods. */
  constructor(loop: Loop, socket: net.Socket, protocol: StreamProtocol, options: SocketTransportOptions = {}) {
    super(loop, protocol);
    this.socket = socket as OwnedSocket;
    this.#buffered = isBuffered(protocol);
    this.#waiter = options.waiter ?? null;
    this.#owner = options.owner ?? null;
    this.#tls = socket instanceof tls.TLSSocket;
    this.direct = !this.#tls;
    this.#extra = options.extra ?? null;
    this.#token = trackResource(loop, options.kind ?? 'transport', this, abortTransport);
    const s = this.socket;
    s[kTransport] = this;
    // TCP_NODELAY as asyncio does: a transport writes whole messages, Nagle only adds latency.
    // (A no-op on Unix sockets.)
    s.setNoDelay(true);
    if (options.onread !== true) s.on('data', socketOnData);
    dropNodeEndListener(s);
    s.on('end', socketOnEnd);
    s.on('error', socketOnError);
    s.on('close', socketOnClose);
    // 'finish' is listened to only once close() waits for it; write callbacks stand for 'drain'.
    if (options.skipConnectionMade === true) {
      this.made = true;
    } else {
      // Reads until connectionMade ran are queued (up to READ_BACKLOG_LIMIT).
      this.#pending = [];
      loop.callSoon(transportMakeConnection, this);
    }
    // A socket Node accepted or connected may already be reading: make it match.
    this.#socketReading = !s.isPaused();
    this.syncReading();
    if ((options.idleTimeout ?? 0) > 0) this.#idle = new IdleTimer(loop, options.idleTimeout!, this);
    this.#owner?.attach(this);
  }

  // -------------------------------------------------------------- reading side

  /**
   * @internal Node asks for the buffer of the next read, right after a read. A
   * BufferedProtocol that can take data now is asked for it (the read lands in place);
   * otherwise the read goes to the scratch buffer.
   */
  nextReadBuffer(): Uint8Array {
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
  onRead(nread: number, buf: Uint8Array): void {
    if (this.lifecycle !== 'open') return;
    if (this.#idle !== null) this.#idle.touch();
    if (!this.#deliverable()) {
      this.#enqueue(copyOut(buf, 0, nread));
    } else if (!this.#buffered) {
      this.callProtocol('dataReceived', copyOut(buf, 0, nread));
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
        this.callProtocol('bufferUpdated', nread);
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
      buf = (this.protocol as BufferedProtocol).getBuffer(hint);
    } catch (exception) {
      this.fatal(exception, 'protocol.getBuffer() call failed');
      return null;
    }
    if (!(buf instanceof Uint8Array) || buf.byteLength === 0) {
      this.fatal(new InvalidArgumentError('BufferedProtocol.getBuffer() must return a non-empty Uint8Array'), 'protocol.getBuffer() returned no buffer');
      return null;
    }
    return buf;
  }

  /** @internal An owned chunk arrived ('data' path). */
  onData(chunk: Buffer): void {
    if (this.lifecycle !== 'open') return;
    if (this.#idle !== null) this.#idle.touch();
    if (!this.#deliverable()) this.#enqueue(chunk);
    else if (this.#buffered) this.#feedBufferedRead(chunk, null, true);
    else this.callProtocol('dataReceived', chunk);
  }

  /** @internal The peer closed its writing side. */
  onEnd(): void {
    if (this.lifecycle !== 'open') return;
    if (this.#deliverable()) this.#deliverEof();
    else this.#enqueue(EOF);
  }

  #deliverable(): boolean {
    return this.made && this.#pending === null && this.#reading && !this.#readHold && this.lifecycle === 'open' && this.loop.isRunning();
  }

  /**
   * Copies `data` into the protocol's buffers, as many as it takes; `first`: the buffer
   * already asked for. Stops early if the protocol pauses reading (or a write of its
   * buffer is pending) and returns how many bytes it delivered.
   */
  #feedBuffered(data: Uint8Array, first: Uint8Array | null): number {
    let off = 0;
    let buf = first;
    while (off < data.byteLength && this.lifecycle === 'open') {
      buf ??= this.#getBuffer(data.byteLength - off);
      if (buf === null) break;
      const n = Math.min(buf.byteLength, data.byteLength - off);
      buf.set(n === data.byteLength ? data : data.subarray(off, off + n));
      this.#readBuf = buf;
      buf = null;
      off += n;
      this.callProtocol('bufferUpdated', n);
      if (!this.#reading || this.#readHold) break;
    }
    return off;
  }

  /** Feeds a read to a BufferedProtocol; what it does not take now waits in the queue (as an owned copy). */
  #feedBufferedRead(data: Uint8Array, first: Uint8Array | null, owned: boolean): void {
    const used = this.#feedBuffered(data, first);
    if (used < data.byteLength && this.lifecycle === 'open') this.#enqueue(owned ? data.subarray(used) as Buffer : copyOut(data, used, data.byteLength));
  }

  #deliverEof(): void {
    this.#eofReceived = true;
    const keepOpen = this.callProtocol('eofReceived');
    if (this.lifecycle === 'open' && keepOpen !== true) this.close();
  }

  #enqueue(item: Pending): void {
    (this.#pending ??= []).push(item);
    if (item !== EOF) this.#pendingBytes += item.length;
    this.syncReading();
    this.#scheduleFlush();
  }

  #clearPending(): void {
    this.#pending = null;
    this.#pendingBytes = 0;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || !this.made) return;
    this.#flushScheduled = true;
    try {
      this.loop.callSoon(transportFlush, this);
    } catch {
      // The loop is closed: nobody is left to deliver to.
      this.#flushScheduled = false;
      this.#clearPending();
      this.socket.destroy();
    }
  }

  /** @internal Runs on the loop: connectionMade, then whatever waited for it. */
  makeConnection(): void {
    this.made = true;
    this.callProtocol('connectionMade', this);
    const waiter = this.#waiter;
    this.#waiter = null;
    if (waiter !== null && !waiter.done()) {
      if (this.lifecycle === 'closed' && this.lostExc !== undefined) waiter.setException(this.lostExc);
      else waiter.setResult(undefined);
    }
    this.flush();
  }

  /** @internal Runs on the loop: feeds queued reads (connectionLost follows through the base). */
  flush(): void {
    this.#flushScheduled = false;
    if (!this.made) return;
    const q = this.#pending;
    if (q !== null) {
      let i = 0;
      while (i < q.length && this.#reading && !this.#readHold && this.lifecycle !== 'closing' && this.#pending === q) {
        const item = q[i++]!;
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
          this.callProtocol('dataReceived', item);
        }
      }
      if (this.#pending === q) {
        q.splice(0, i);
        if (q.length === 0 || this.lifecycle !== 'open') {
          this.#clearPending();
        } else {
          let n = 0;
          for (const item of q) if (item !== EOF) n += item.length;
          this.#pendingBytes = n;
        }
      }
    }
    this.syncReading();
  }

  /** @internal Starts or stops the socket's reading to match what the protocol and the queue allow. */
  syncReading(): void {
    const want = this.lifecycle === 'open' && this.#reading && !this.#readHold && (this.#pending === null || this.#pendingBytes <= READ_BACKLOG_LIMIT);
    if (want === this.#socketReading) return;
    this.#socketReading = want;
    if (want) this.socket.resume();
    else this.socket.pause();
  }

  /** Whether data is being delivered to the protocol. */
  isReading(): boolean {
    return this.#reading && this.lifecycle === 'open';
  }

  /** Stops delivering data until {@link resumeReading}; the peer feels backpressure. Idempotent. */
  pauseReading(): void {
    if (this.lifecycle !== 'open' || !this.#reading) return;
    this.#reading = false;
    this.syncReading();
  }

  /** Resumes delivering data (first whatever arrived meanwhile). Idempotent. */
  resumeReading(): void {
    if (this.lifecycle !== 'open' || this.#reading) return;
    this.#reading = true;
    if (this.#pending !== null) this.#scheduleFlush();
    this.syncReading();
  }

  /** @internal A write of our read buffer is pending (hold) or flushed (release). */
  holdReading(hold: boolean): void {
    if (this.#readHold === hold) return;
    this.#readHold = hold;
    if (!hold && this.#pending !== null) this.#scheduleFlush();
    this.syncReading();
  }

  /** @internal Whether `data` is a view inside the buffer the transport reads into. */
  isReadBufferView(data: Uint8Array): boolean {
    const rb = this.#readBuf;
    // Not merely the same ArrayBuffer: a pool slab is shared.
    return rb !== null && data.buffer === rb.buffer && data.byteOffset >= rb.byteOffset && data.byteOffset + data.byteLength <= rb.byteOffset + rb.byteLength;
  }

  /** @internal */
  get readHeld(): boolean {
    return this.#readHold;
  }

  // -------------------------------------------------------------- writing side

  /**
   * Writes `data` (a string is UTF-8 encoded). Never blocks; bytes that cannot go out
   * at once are kept (copied), so the caller may reuse its buffer right away.
   * Throws {@link TransportClosedError} after `close()`, `abort()` or `writeEof()`;
   * after the peer broke the connection, writes are dropped (one warning from the fifth).
   * Throws {@link InvalidArgumentError} for anything but a string or Uint8Array.
   */
  write(data: Uint8Array | string): void {
    if (!this.#checkWritable(data)) return;
    if (this.#idle !== null) this.#idle.touch();
    send(this, data);
    this.afterWrite(this.socket.writableLength);
  }

  /** Writes each chunk of `list` in order, in one system call where possible. */
  writeLines(list: Iterable<Uint8Array | string>): void {
    const chunks = [...list];
    for (const c of chunks) if (typeof c !== 'string' && !(c instanceof Uint8Array)) throw new InvalidArgumentError(`writeLines() takes strings and Uint8Arrays, got ${inspect(c, { depth: 0 })}`);
    const first = chunks.find((c) => c.length > 0);
    if (first === undefined || !this.#checkWritable(first)) return;
    if (this.#idle !== null) this.#idle.touch();
    sendMany(this, chunks);
    this.afterWrite(this.socket.writableLength);
  }

  /** Whether writing is allowed now; throws the right error when it is not. */
  #checkWritable(data: unknown): boolean {
    const open = this.lifecycle === 'open' && !this.eofWritten;
    if (typeof data === 'string') {
      if (data.length === 0 && open) return false;
    } else if (data instanceof Uint8Array) {
      if (data.byteLength === 0 && open) return false;
    } else {
      throw new InvalidArgumentError(`write() takes a string or a Uint8Array, got ${inspect(data, { depth: 0 })}`);
    }
    if (open) return true;
    if (this.lifecycle === 'closed' && !this.closedByUser) {
      // The peer broke the connection; connectionLost is on its way. asyncio drops these writes.
      this.dropWriteAfterLost();
      return false;
    }
    throw new TransportClosedError(
      this.eofWritten && this.lifecycle === 'open'
        ? 'write() after writeEof(): the writing side is closed'
        : `write() on a ${this.lifecycle} transport: it was closed with close() or abort()`,
    );
  }

  /** @internal WriteHost: a callback only when someone waits for the buffer to shrink. */
  wantsWriteCallback(size: number): boolean {
    const flow = this.flow;
    return (flow !== null && flow.paused) || size > (flow?.low ?? DEFAULT_LOW_WATER);
  }

  /** @internal WriteHost: the one completion callback (made on first need). */
  writeCallback(): (err?: Error | null) => void {
    return (this.#onWritten ??= this.#writeDone.bind(this));
  }

  #writeDone(): void {
    const size = this.socket.writableLength;
    if (this.#idle !== null) this.#idle.touch();
    if (this.#readHold && size === 0) this.holdReading(false);
    this.afterDrain(size);
  }

  /** Closes the writing side once the buffer is flushed (half-close). The reading side stays open. Idempotent. */
  writeEof(): void {
    if (this.lifecycle !== 'open' || this.eofWritten) return;
    this.eofWritten = true;
    this.socket.end();
  }

  /** Whether {@link writeEof} is supported: true for TCP, Unix and TLS sockets. */
  canWriteEof(): boolean {
    return true;
  }

  /** Bytes accepted by `write()` and not yet handed to the OS. */
  override getWriteBufferSize(): number {
    return this.lifecycle === 'closed' ? 0 : this.socket.writableLength;
  }

  // ---------------------------------------------------------------- closing

  /** Stops reading, flushes what is buffered, then closes; `connectionLost(undefined)` follows. Idempotent. */
  close(): void {
    if (this.lifecycle !== 'open') return;
    this.lifecycle = 'closing';
    this.closedByUser = true;
    this.#clearPending();
    this.syncReading();
    if (this.socket.writableFinished) {
      this.forceClose(undefined);
      return;
    }
    this.socket.once('finish', socketOnFinish);
    if (!this.eofWritten) this.socket.end();
  }

  /** Closes at once, dropping buffered data; `connectionLost(undefined)` follows. Idempotent. */
  abort(): void {
    if (this.lifecycle === 'closed') return;
    this.closedByUser = true;
    this.forceClose(undefined);
  }

  /** @internal Ends the connection at once with `exc` (a server limit: idle, handshake). */
  abortWith(exc: Error): void {
    if (this.lifecycle === 'closed') return;
    this.closedByUser = true;
    this.forceClose(exc);
  }

  /** @internal IdleHost: bytes still draining count as activity. */
  idleProgress(): number {
    return this.socket.writableLength;
  }

  /** @internal IdleHost: no byte read or written for `ms`. */
  idleExpired(ms: number): void {
    this.#idle = null;
    this.abortWith(new IdleTimeoutError(`no byte was read or written for ${ms} ms (idleTimeout)`));
  }

  /** @internal */
  onFinish(): void {
    if (this.lifecycle === 'closing') this.forceClose(undefined);
  }

  /** @internal */
  onError(err: Error): void {
    this.forceClose(mapSocketError(err));
  }

  /** @internal The socket closed (both sides ended, or destroyed). */
  onClose(): void {
    this.forceClose(undefined);
    this.socket[kTransport] = undefined;
  }

  /** Part of the one exit path (the base's forceClose): lets go of the socket. */
  protected override release(): void {
    this.#readHold = false;
    if (!this.#reading || this.closedByUser) this.#clearPending();
    this.#idle?.stop();
    this.#idle = null;
    this.#token.untrack();
    this.socket.destroy();
    // Data read before the close is delivered before connectionLost (scheduled next).
    if (this.#pending !== null) this.#scheduleFlush();
  }

  protected override afterLost(): void {
    this.#clearPending();
    const waiter = this.#waiter;
    if (waiter !== null && !waiter.done()) waiter.setException(this.lostExc ?? new TransportClosedError('the connection closed before it was made'));
    this.#waiter = null;
    const owner = this.#owner;
    this.#owner = null;
    owner?.detach(this);
    this.#readBuf = null;
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
    const s = this.socket;
    switch (name) {
      case 'socket': return s as unknown as T;
      case 'peername': return (s.remoteAddress === undefined ? defaultValue : addressOf(s.remoteAddress, s.remotePort, s.remoteFamily)) as T;
      case 'sockname': return (s.localAddress === undefined ? defaultValue : addressOf(s.localAddress, s.localPort, s.localFamily)) as T;
    }
    if (this.#tls) {
      const s = this.socket as unknown as tls.TLSSocket;
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
  override setProtocol(protocol: BaseProtocol): void {
    this.protocol = protocol as StreamProtocol;
    this.#buffered = isBuffered(protocol);
    this.#readBuf = null;
  }

  /** The current protocol. */
  override getProtocol(): StreamProtocol {
    return this.protocol;
  }

  /**
   * @internal Hands the socket over (startTls): stops reading, removes our listeners
   * and forgets the socket without closing it or calling connectionLost.
   */
  detachSocket(): net.Socket {
    if (this.lifecycle !== 'open') throw new TransportClosedError('startTls() needs an open transport');
    const s = this.socket;
    this.#reading = false;
    this.syncReading();
    this.handedOver();
    this.closedByUser = true;
    this.#clearPending();
    this.#idle?.stop();
    this.#idle = null;
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
    return this.#pendingBytes;
  }

  /** @internal */
  [kDescribe](): string {
    // trackResource() asks while the constructor runs: keep that one cheap (no getpeername).
    return this.#token === undefined ? '<SocketTransport>' : this.toString();
  }

  override toString(): string {
    const parts = [this.#tls ? 'TLS' : this.socket.remoteFamily === undefined ? 'unix' : 'TCP', this.lifecycle];
    const peer = this.getExtraInfo<{ address: string; port: number }>('peername');
    const path = this.#extra?.path;
    if (peer !== undefined) parts.push(`peer=${peer.address}:${peer.port}`);
    else if (typeof path === 'string') parts.push(`path=${path}`);
    if (!this.#reading) parts.push('reading paused');
    if (this.eofWritten) parts.push('eof written');
    if (this.#eofReceived) parts.push('eof received');
    if (this.lifecycle !== 'closed') parts.push(`buffered=${this.socket.writableLength}`);
    if (this.flow?.paused === true) parts.push('writing paused');
    return `<SocketTransport ${parts.join(' ')}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}
