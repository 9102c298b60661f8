/**
 * The transport at each end of a memory link: the same contract as a socket
 * transport (see src/transports/transports.ts), over two {@link Pipe}s.
 *
 * ```
 * open --close()--> closing --(send queue flushed, FIN sent)--> closed   connectionLost(undefined)
 * open --abort() / protocol error----------------------------> closed   connectionLost(undefined | error)
 * open --(FIN received, eofReceived() falsy)--> closing ...
 * open --(writeEof() and FIN received)-----------------------> closed   connectionLost(undefined)
 * open --(reset, bytes sent to a closed peer)----------------> closed   connectionLost(ConnectionResetError)
 * ```
 * Every path ends in `#forceClose`, a no-op the second time; `connectionLost` runs
 * once, on the loop, after `connectionMade`. Closing with unread bytes resets the peer,
 * as closing a TCP socket with unread data does.
 * @module
 */
import { inspect } from 'node:util';
import { ConnectionResetError, InvalidArgumentError, TransportClosedError } from '../errors.ts';
import type { Future } from '../loop/future.ts';
import { kDescribe } from '../loop/symbols.ts';
import { connectionLostChannel, connectionMadeChannel } from '../loop/channels.ts';
import type { Loop } from '../loop/loop.ts';
import { trackResource, type ResourceToken } from '../loop/resources.ts';
import type { BaseProtocol, BufferedProtocol, Protocol } from '../protocols/protocols.ts';
import { FlowControl } from '../transports/flow-control.ts';
import type { Transport } from '../transports/transports.ts';
import type { Pipe, PipeEnd } from './pipe.ts';

/** An address on a memory network: a host name and a port. */
export interface MemoryAddress {
  address: string;
  port: number;
  family: 'memory';
}

/** What a transport tells the server that accepted it (its client set). */
export interface MemoryOwner {
  attach(t: MemoryTransport): void;
  detach(t: MemoryTransport): void;
}

/** @internal Constructor options of {@link MemoryTransport}. */
export interface MemoryTransportOptions {
  out: Pipe;
  in: Pipe;
  sockname: MemoryAddress;
  peername: MemoryAddress;
  /** Extra info shared by both ends (`network`, `link`). */
  extra: Record<string, unknown>;
  owner?: MemoryOwner;
  waiter?: Future<void>;
  /** Told once when the transport is closed (the link forgets it). */
  onClosed: (t: MemoryTransport) => void;
}

type State = 'open' | 'closing' | 'closed';

function isBuffered(p: BaseProtocol): boolean {
  return typeof (p as BufferedProtocol).getBuffer === 'function' && typeof (p as BufferedProtocol).bufferUpdated === 'function';
}

function abortTransport(t: MemoryTransport): void {
  t.abort();
}

function transportMake(t: MemoryTransport): void {
  t.make();
}

function transportLost(t: MemoryTransport): void {
  t.deliverLost();
}

/** One end of a memory connection. Made by `createConnection`/`createServer` with `network`. */
export class MemoryTransport implements Transport, PipeEnd {
  readonly #loop: Loop;
  #protocol: BaseProtocol;
  #buffered: boolean;
  #state: State = 'open';
  #reading = true;
  #made = false;
  #lostDelivered = false;
  #lostScheduled = false;
  #eofWritten = false;
  #eofReceived = false;
  #lostExc: Error | undefined = undefined;
  readonly #out: Pipe;
  readonly #in: Pipe;
  readonly #flow: FlowControl;
  readonly #token: ResourceToken;
  readonly #sockname: MemoryAddress;
  readonly #peername: MemoryAddress;
  readonly #extra: Record<string, unknown>;
  #owner: MemoryOwner | null;
  #waiter: Future<void> | null;
  #onClosed: ((t: MemoryTransport) => void) | null;

  /** @internal Use `loop.createConnection(..., { network })`. */
  constructor(loop: Loop, protocol: BaseProtocol, options: MemoryTransportOptions) {
    this.#loop = loop;
    this.#protocol = protocol;
    this.#buffered = isBuffered(protocol);
    this.#out = options.out;
    this.#in = options.in;
    this.#sockname = options.sockname;
    this.#peername = options.peername;
    this.#extra = options.extra;
    this.#owner = options.owner ?? null;
    this.#waiter = options.waiter ?? null;
    this.#onClosed = options.onClosed;
    this.#flow = new FlowControl({ flowChanged: (method) => this.#call(method) });
    this.#token = trackResource(loop, 'transport', this, abortTransport);
    loop.callSoon(transportMake, this);
    this.#owner?.attach(this);
  }

  /** @internal Runs on the loop: connectionMade, then whatever waited for it. */
  make(): void {
    this.#made = true;
    if (connectionMadeChannel.hasSubscribers) connectionMadeChannel.publish({ kind: 'memory', transport: this, local: this.#sockname, peer: this.#peername });
    this.#call('connectionMade', this);
    const waiter = this.#waiter;
    this.#waiter = null;
    if (waiter !== null && !waiter.done()) {
      if (this.#state === 'closed' && this.#lostExc !== undefined) waiter.setException(this.#lostExc);
      else waiter.setResult(undefined);
    }
    if (this.#state === 'closed') this.#scheduleLost();
    else this.#in.schedule();
  }

  // ------------------------------------------------------------ PipeEnd

  /** @internal */
  canReceive(): boolean {
    return this.#made && this.#state === 'open' && this.#reading;
  }

  /** @internal */
  receive(data: Buffer): Buffer | null {
    if (!this.#buffered) {
      this.#call('dataReceived', data);
      return null;
    }
    const p = this.#protocol as BufferedProtocol;
    let off = 0;
    while (off < data.byteLength) {
      if (!this.canReceive()) return data.subarray(off);
      let buf: Uint8Array;
      try {
        buf = p.getBuffer(data.byteLength - off);
        if (!(buf instanceof Uint8Array) || buf.byteLength === 0) throw new InvalidArgumentError('BufferedProtocol.getBuffer() must return a non-empty Uint8Array');
      } catch (exception) {
        this.#fatal(exception, 'protocol.getBuffer() call failed');
        return null;
      }
      const n = Math.min(buf.byteLength, data.byteLength - off);
      buf.set(data.subarray(off, off + n));
      off += n;
      this.#call('bufferUpdated', n);
    }
    return null;
  }

  /** @internal */
  receiveEof(): void {
    this.#eofReceived = true;
    const keepOpen = this.#call('eofReceived');
    if (this.#state !== 'open') return;
    if (keepOpen !== true) this.close();
    else if (this.#eofWritten && this.#out.finSent) this.#forceClose(undefined);
  }

  /** @internal */
  drained(size: number): void {
    if (this.#state === 'closed') return;
    this.#flow.afterDrain(size);
    if (!this.#out.finSent) return;
    if (this.#state === 'closing' || this.#eofReceived) this.#forceClose(undefined);
  }

  /** @internal */
  gone(): boolean {
    return this.#state === 'closed';
  }

  /** @internal */
  peerReset(): void {
    this.#forceClose(new ConnectionResetError('the connection was reset by the peer (memory network)', { code: 'ECONNRESET' }), false);
  }

  // ------------------------------------------------------------ reading side

  /** Whether received data is being delivered. */
  isReading(): boolean {
    return this.#state === 'open' && this.#reading;
  }

  /** Stops delivering data; the peer feels backpressure once the window fills. Idempotent. */
  pauseReading(): void {
    if (this.#state !== 'open') return;
    this.#reading = false;
  }

  /** Resumes delivering data. Idempotent. */
  resumeReading(): void {
    if (this.#state !== 'open' || this.#reading) return;
    this.#reading = true;
    this.#in.schedule();
  }

  // ------------------------------------------------------------ writing side

  /** Queues bytes (copied: the caller may reuse its buffer). Throws TransportClosedError after close/abort/writeEof. */
  write(data: Uint8Array | string): void {
    if (typeof data !== 'string' && !(data instanceof Uint8Array)) throw new InvalidArgumentError(`write() takes a string or a Uint8Array, got ${inspect(data, { depth: 0 })}`);
    if (!this.#checkWritable()) return;
    if (data.length === 0) return;
    let buf: Buffer;
    if (typeof data === 'string') {
      buf = Buffer.from(data);
    } else {
      buf = Buffer.allocUnsafe(data.byteLength);
      buf.set(data);
    }
    this.#out.write(buf);
    this.#flow.afterWrite(this.#out.sendBytes);
  }

  /** Writes each chunk in order. */
  writeLines(list: Iterable<Uint8Array | string>): void {
    for (const chunk of list) this.write(chunk);
  }

  #checkWritable(): boolean {
    if (this.#state === 'open' && !this.#eofWritten) return true;
    // The peer broke the connection: connectionLost is on its way; asyncio drops these writes.
    if (this.#state === 'closed' && this.#lostExc !== undefined) return false;
    throw new TransportClosedError(this.#eofWritten && this.#state === 'open' ? 'write() after writeEof(): the writing side is closed' : `write() on a ${this.#state} transport: it was closed with close() or abort()`);
  }

  /** Sends a FIN after the buffered bytes (half-close). Idempotent. */
  writeEof(): void {
    if (this.#state !== 'open' || this.#eofWritten) return;
    this.#eofWritten = true;
    this.#out.writeEof();
  }

  /** Always true: memory links half-close like TCP. */
  canWriteEof(): boolean {
    return true;
  }

  /** See `WriteTransport.setWriteBufferLimits`. */
  setWriteBufferLimits(high?: number, low?: number): void {
    this.#flow.setLimits(this.#out.sendBytes, high, low);
  }

  /** The water marks, `[low, high]`. */
  getWriteBufferLimits(): [low: number, high: number] {
    return [this.#flow.low, this.#flow.high];
  }

  /** Bytes written and not yet sent (the link's window is full, or the loop has not run yet). */
  getWriteBufferSize(): number {
    return this.#out.sendBytes;
  }

  // ------------------------------------------------------------ closing

  /** Whether the transport is closing or closed. */
  isClosing(): boolean {
    return this.#state !== 'open';
  }

  /** Stops reading, sends what is buffered and a FIN, then closes; `connectionLost(undefined)` follows. Idempotent. */
  close(): void {
    if (this.#state !== 'open') return;
    this.#state = 'closing';
    this.#out.writeEof();
    this.#out.schedule();
  }

  /** Closes at once, dropping buffered data (the peer sees EOF); `connectionLost(undefined)` follows. Idempotent. */
  abort(): void {
    this.#forceClose(undefined);
  }

  /** The one exit path. A no-op the second time. `sendFin` false: the link was reset, nothing more goes out. */
  #forceClose(exc: Error | undefined, sendFin = true): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#lostExc = exc;
    this.#token.untrack();
    if (sendFin) {
      this.#out.dropSendQueue();
      this.#out.writeEof();
      this.#out.schedule();
      // Unread bytes when we close: our stack resets the peer.
      if (this.#in.undelivered > 0) this.#in.schedule();
    }
    const onClosed = this.#onClosed;
    this.#onClosed = null;
    onClosed?.(this);
    if (this.#made) this.#scheduleLost();
  }

  #scheduleLost(): void {
    if (this.#lostScheduled) return;
    this.#lostScheduled = true;
    if (this.#loop.isClosed()) {
      this.#owner?.detach(this);
      return;
    }
    this.#loop.callSoon(transportLost, this);
  }

  /** @internal Runs on the loop, once. */
  deliverLost(): void {
    if (this.#lostDelivered) return;
    this.#lostDelivered = true;
    try {
      if (this.#made && connectionLostChannel.hasSubscribers) connectionLostChannel.publish({ kind: 'memory', transport: this, local: this.#sockname, peer: this.#peername, error: this.#lostExc });
      this.#call('connectionLost', this.#lostExc);
    } finally {
      const owner = this.#owner;
      this.#owner = null;
      owner?.detach(this);
    }
  }

  #fatal(exception: unknown, message: string): void {
    this.#loop.callExceptionHandler({ message: `Fatal error on transport: ${message}`, exception, protocol: this.#protocol, transport: this });
    this.#forceClose(exception instanceof Error ? exception : new Error(String(exception)));
  }

  #call(method: string, arg?: unknown): unknown {
    const p = this.#protocol as unknown as Record<string, (a?: unknown) => unknown>;
    try {
      return p[method]!(arg);
    } catch (exception) {
      if (method === 'connectionLost') this.#loop.callExceptionHandler({ message: 'Exception in protocol.connectionLost()', exception, protocol: this.#protocol, transport: this });
      else this.#fatal(exception, `protocol.${method}() call failed`);
      return undefined;
    }
  }

  // ------------------------------------------------------------ the rest

  /** `peername`, `sockname` (`{ address, port, family: 'memory' }`), `network`, `link`; else `defaultValue`. */
  getExtraInfo<T = unknown>(name: string, defaultValue?: T): T | undefined {
    switch (name) {
      case 'peername': return { ...this.#peername } as T;
      case 'sockname': return { ...this.#sockname } as T;
    }
    const v = this.#extra[name];
    return (v === undefined ? defaultValue : v) as T | undefined;
  }

  /** Replaces the protocol; the next delivery goes to the new one. */
  setProtocol(protocol: BaseProtocol): void {
    this.#protocol = protocol;
    this.#buffered = isBuffered(protocol);
  }

  /** The current protocol. */
  getProtocol(): Protocol | BufferedProtocol {
    return this.#protocol as Protocol | BufferedProtocol;
  }

  /** @internal */
  [kDescribe](): string {
    return this.toString();
  }

  toString(): string {
    const s = this.#sockname;
    const p = this.#peername;
    return `<MemoryTransport ${s.address}:${s.port}->${p.address}:${p.port} ${this.#state}${this.#reading ? '' : ' paused'} buffered=${this.#out.sendBytes}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}
