/**
 * The reading side of the socket transport (SocketTransport extends it): reads through
 * `onread` or `'data'`, the queue that holds reads the protocol cannot take yet, and
 * backpressure from the first byte.
 *
 * Protocol callbacks run only while the loop runs: a read that arrives while it does
 * not (or before `connectionMade` ran) is queued and fed to the protocol by a loop
 * callback. Once more than one high-water mark ({@link READ_BACKLOG_LIMIT}) waits in
 * that queue, the socket stops reading, so a stopped loop or a slow start never
 * buffers a peer without bound.
 *
 * A `BufferedProtocol` is asked for the next read's buffer right after each read
 * (`getBuffer(-1)`) and the read lands in it; when the bytes arrive it is asked once
 * more, as asyncio asks before each read, and if it now answers with another region
 * the bytes are copied there. A `Protocol` gets one owned copy out of a module-wide
 * 256 KiB scratch buffer.
 * @module
 */
import type net from 'node:net';
import { InvalidArgumentError, TransportClosedError } from '../../errors.ts';
import type { Future } from '../../loop/future.ts';
import type { Loop } from '../../loop/loop.ts';
import { kTransport } from '../../loop/symbols.ts';
import type { BaseProtocol, BufferedProtocol, Protocol } from '../../protocols/protocols.ts';
import { TransportBase } from '../base.ts';
import { DEFAULT_HIGH_WATER } from '../flow-control.ts';
import type { IdleSweep } from './idle-sweep.ts';
import { copyOut } from './socket-write.ts';

/** A protocol a stream transport can drive. */
export type StreamProtocol = Protocol | BufferedProtocol;

/**
 * Bytes read and queued for a protocol that cannot take them yet (the loop is not
 * running, `connectionMade` has not run) before the socket stops reading: one
 * high-water mark, plus at most one read in flight.
 */
export const READ_BACKLOG_LIMIT = DEFAULT_HIGH_WATER;

/** @internal A socket with its back-reference to the transport that owns it. */
export type OwnedSocket = net.Socket & { [kTransport]?: SocketReader };

/**
 * One scratch buffer shared by every `onread` socket that has no protocol buffer to
 * read into: a read fills it and its callback consumes it synchronously, so sockets
 * never see each other's bytes. Large, so that a big message arrives in one read
 * (one callback, one copy) rather than in 64 KiB pieces.
 */
export const SCRATCH = Buffer.allocUnsafeSlow(256 * 1024);

/** @internal Bits of a socket transport's flags word (the reader's first, then the transport's). */
const F_BUFFERED = 1;
const F_FLUSH_SCHEDULED = 2;
const F_READING = 4;
const F_SOCKET_READING = 8;
const F_READ_HOLD = 16;
const F_EOF_RECEIVED = 32;
/** @internal */
export const F_TLS = 64;
/** @internal */
export const F_EOF_WRITTEN = 128;
/** The buffer the next read goes into (`#readBuf`) is a fresh one of ours, counted in `freshPinned`. */
const F_FRESH = 256;

/** A Protocol's read of at least this many bytes sends its next read to a fresh buffer. */
const LARGE_READ = 32 * 1024;
/** Room past the last read's size in a fresh buffer (a read that fills it costs one more read call). */
const FRESH_SLACK = 8 * 1024;
/**
 * At most this many bytes of fresh buffers pinned for a next read, over every socket: a
 * connection that goes quiet after a large read keeps its fresh buffer, so many such
 * connections fall back to the scratch buffer (a copy per read) rather than hold memory.
 */
export const FRESH_BUDGET = 8 * 1024 * 1024;
let freshPinned = 0;

/** @internal Bytes of fresh read buffers pinned now (tests). */
export function freshBytesPinned(): number {
  return freshPinned;
}

/** The first `nread` bytes of a fresh buffer, handed over without a copy (a copy when they fill less than half of it). */
function handOver(buf: Buffer, nread: number): Buffer {
  if (nread === buf.length) return buf;
  return nread * 2 >= buf.length ? buf.subarray(0, nread) : copyOut(buf, 0, nread);
}

const EOF = Symbol('eof');
type Pending = Buffer | typeof EOF;

function transportMakeConnection(t: SocketReader): void {
  t.makeConnection();
}
function transportFlush(t: SocketReader): void {
  t.flush();
}

/** Whether `p` is a BufferedProtocol (duck-typed, as it supplies its own buffer). */
function isBuffered(p: BaseProtocol): p is BufferedProtocol {
  return typeof (p as BufferedProtocol).getBuffer === 'function' && typeof (p as BufferedProtocol).bufferUpdated === 'function';
}

/** The reading side of {@link SocketTransport}. */
export abstract class SocketReader extends TransportBase<StreamProtocol> {
  /** @internal The socket. */
  readonly socket: OwnedSocket;
  /** @internal The idle timeout of a server connection (its server's sweep), or null. */
  idleSweep: IdleSweep | null = null;
  /** @internal For the idle sweep: -1 once a byte moved since its last look, else its quiet looks. */
  idleLooks = -1;
  /** @internal For the idle sweep: the write-buffer size at its last look. */
  idleProgressSeen = 0;
  /**
   * The reader's and the transport's yes/no state, one bit each (one field rather than
   * nine: every open connection carries them). See the F_* constants.
   */
  #flags = F_READING;
  /** The protocol is a BufferedProtocol. */
  get #buffered(): boolean {
    return (this.#flags & F_BUFFERED) !== 0;
  }
  set #buffered(on: boolean) {
    this.setFlag(F_BUFFERED, on);
  }
  get #flushScheduled(): boolean {
    return (this.#flags & F_FLUSH_SCHEDULED) !== 0;
  }
  set #flushScheduled(on: boolean) {
    this.setFlag(F_FLUSH_SCHEDULED, on);
  }
  /** The protocol's wish (pauseReading/resumeReading). */
  get #reading(): boolean {
    return (this.#flags & F_READING) !== 0;
  }
  set #reading(on: boolean) {
    this.setFlag(F_READING, on);
  }
  /** What the socket was last told. */
  get #socketReading(): boolean {
    return (this.#flags & F_SOCKET_READING) !== 0;
  }
  set #socketReading(on: boolean) {
    this.setFlag(F_SOCKET_READING, on);
  }
  /** Reading held until a pending write of our read buffer is flushed. */
  get #readHold(): boolean {
    return (this.#flags & F_READ_HOLD) !== 0;
  }
  set #readHold(on: boolean) {
    this.setFlag(F_READ_HOLD, on);
  }
  get #eofReceived(): boolean {
    return (this.#flags & F_EOF_RECEIVED) !== 0;
  }
  set #eofReceived(on: boolean) {
    this.setFlag(F_EOF_RECEIVED, on);
  }
  /** The size of the last read (a Protocol's: whether the next goes to a fresh buffer). */
  #lastRead = 0;
  /** Reads (and EOF) waiting for the loop; non-null while anything waits. */
  #pending: Pending[] | null = null;
  #pendingBytes = 0;
  /** The buffer the next read goes into when it is the protocol's. */
  #readBuf: Uint8Array | null = null;
  #waiter: Future<void> | null;

  constructor(loop: Loop, socket: net.Socket, protocol: StreamProtocol, waiter: Future<void> | null, skipConnectionMade: boolean) {
    super(loop, protocol);
    this.socket = socket as OwnedSocket;
    this.#buffered = isBuffered(protocol);
    this.#waiter = waiter;
    if (skipConnectionMade) {
      this.made = true;
    } else {
      // Reads until connectionMade ran are queued (up to READ_BACKLOG_LIMIT).
      this.#pending = [];
      loop.callSoon(transportMakeConnection, this);
    }
    // A socket Node accepted or connected may already be reading: make it match.
    this.#socketReading = !socket.isPaused();
  }

  /** @internal Whether flag `bit` is set. */
  protected hasFlag(bit: number): boolean {
    return (this.#flags & bit) !== 0;
  }

  /** @internal Sets or clears flag `bit`. */
  protected setFlag(bit: number, on: boolean): void {
    this.#flags = on ? this.#flags | bit : this.#flags & ~bit;
  }

  /** Closes after flushing (the transport's). */
  abstract close(): void;

  // -------------------------------------------------------------- reading side

  /**
   * @internal Node asks for the buffer of the next read, right after a read. A
   * BufferedProtocol that can take data now is asked for it (the read lands in place).
   * A Protocol whose last read was large gets its next read in a fresh buffer of that
   * size, handed over as it is (no copy), while the bytes so pinned stay within
   * {@link FRESH_BUDGET}. Otherwise the read goes to the scratch buffer.
   */
  nextReadBuffer(): Uint8Array {
    if (this.hasFlag(F_FRESH)) this.#dropFresh();
    if (!this.#deliverable()) return SCRATCH;
    if (this.#buffered) {
      const buf = this.#getBuffer(-1);
      if (buf !== null) {
        this.#readBuf = buf;
        return buf;
      }
    } else if (this.#lastRead >= LARGE_READ) {
      const size = Math.min(SCRATCH.length, (this.#lastRead + FRESH_SLACK) & ~4095);
      if (freshPinned + size <= FRESH_BUDGET) {
        const buf = Buffer.allocUnsafeSlow(size);
        freshPinned += size;
        this.setFlag(F_FRESH, true);
        this.#readBuf = buf;
        return buf;
      }
    }
    return SCRATCH;
  }

  /** The fresh buffer pinned for the next read is not (any more): out of the budget. */
  #dropFresh(): void {
    this.setFlag(F_FRESH, false);
    freshPinned -= this.#readBuf!.byteLength;
    this.#readBuf = null;
  }

  /** @internal `nread` bytes were read into `buf` (onread path). */
  onRead(nread: number, buf: Uint8Array): void {
    // A read into a fresh buffer: it is no longer pinned, and its bytes are ours to hand over.
    const fresh = this.hasFlag(F_FRESH) && buf === this.#readBuf;
    if (fresh) this.#dropFresh();
    if (this.lifecycle !== 'open') return;
    this.idleLooks = -1;
    if (!this.#buffered) this.#lastRead = nread;
    if (!this.#deliverable()) {
      this.#enqueue(fresh ? handOver(buf as Buffer, nread) : copyOut(buf, 0, nread));
    } else if (!this.#buffered) {
      this.callDataReceived(fresh ? handOver(buf as Buffer, nread) : copyOut(buf, 0, nread));
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
        this.callBufferUpdated(nread);
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
    this.idleLooks = -1;
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
      this.callBufferUpdated(n);
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

  #scheduleFlush(): void {
    if (this.#flushScheduled || !this.made) return;
    this.#flushScheduled = true;
    try {
      this.loop.callSoon(transportFlush, this);
    } catch {
      // The loop is closed: nobody is left to deliver to.
      this.#flushScheduled = false;
      this.clearPending();
      this.socket.destroy();
    }
  }

  /** @internal Runs on the loop: connectionMade, then whatever waited for it. */
  makeConnection(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    this.startConnection(waiter);
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
          this.clearPending();
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

  // -------------------------------------------------------------- for the transport

  /** close()/abort(): nothing queued is delivered any more. */
  protected clearPending(): void {
    this.#pending = null;
    this.#pendingBytes = 0;
  }

  /** Part of the exit path: reads queued before the close are delivered (if wanted) before connectionLost. */
  protected releaseReading(): void {
    this.#readHold = false;
    if (!this.#reading || this.closedByUser) this.clearPending();
  }

  /** Part of the exit path, after the socket is gone: schedules the delivery of what is still queued. */
  protected flushBeforeLost(): void {
    if (this.#pending !== null) this.#scheduleFlush();
  }

  /** After connectionLost: the waiter of a connection that was never made fails, references go. */
  protected readerGone(): void {
    if (this.hasFlag(F_FRESH)) this.#dropFresh();
    this.clearPending();
    const waiter = this.#waiter;
    if (waiter !== null && !waiter.done()) waiter.setException(this.lostExc ?? new TransportClosedError('the connection closed before it was made'));
    this.#waiter = null;
    this.#readBuf = null;
  }

  /** startTls: stop reading for good (the socket is handed over). */
  protected stopReadingForHandover(): void {
    if (this.hasFlag(F_FRESH)) this.#dropFresh();
    this.#reading = false;
    this.syncReading();
    this.clearPending();
  }

  /** Replaces the protocol; the next read goes to the new one. */
  override setProtocol(protocol: BaseProtocol): void {
    this.protocol = protocol as StreamProtocol;
    this.#buffered = isBuffered(protocol);
    if (this.hasFlag(F_FRESH)) this.#dropFresh();
    this.#readBuf = null;
  }

  /** The current protocol. */
  override getProtocol(): StreamProtocol {
    return this.protocol;
  }

  /** For descriptions: whether the protocol paused reading, and whether EOF arrived. */
  protected get readingPaused(): boolean {
    return !this.#reading;
  }
  protected get eofSeen(): boolean {
    return this.#eofReceived;
  }

  /** @internal Bytes read and queued for the protocol. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }
}
