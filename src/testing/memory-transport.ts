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
import type { Loop } from '../loop/loop.ts';
import { trackResource, type ResourceToken } from '../loop/resources.ts';
import type { BaseProtocol, BufferedProtocol, Protocol } from '../protocols/protocols.ts';
import { TransportBase, type ConnectionInfo } from '../transports/base.ts';
import type { Transport } from '../transports/transports.ts';
import type { Pipe } from './pipe.ts';

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

function isBuffered(p: BaseProtocol): boolean {
  return typeof (p as BufferedProtocol).getBuffer === 'function' && typeof (p as BufferedProtocol).bufferUpdated === 'function';
}

function abortTransport(t: MemoryTransport): void {
  t.abort();
}

function transportMake(t: MemoryTransport): void {
  t.make();
}

/**
 * One end of a memory connection. Made by `createConnection`/`createServer` with
 * `network`. Derives from the one transport base (src/transports/base.ts): its exit
 * path, protocol-call policy, flow control and writes-after-lost rule are the socket
 * transport's. It is its pipe's `PipeEnd` structurally (those members are internal).
 */
export class MemoryTransport extends TransportBase<BaseProtocol> implements Transport {
  #buffered: boolean;
  #reading = true;
  #eofWritten = false;
  #eofReceived = false;
  /** The link was reset: nothing more goes out when the transport closes. */
  #reset = false;
  readonly #out: Pipe;
  readonly #in: Pipe;
  readonly #token: ResourceToken;
  readonly #sockname: MemoryAddress;
  readonly #peername: MemoryAddress;
  readonly #extra: Record<string, unknown>;
  #owner: MemoryOwner | null;
  #waiter: Future<void> | null;
  #onClosed: ((t: MemoryTransport) => void) | null;

  /** @internal Use `loop.createConnection(..., { network })`. */
  constructor(loop: Loop, protocol: BaseProtocol, options: MemoryTransportOptions) {
    super(loop, protocol);
    this.#buffered = isBuffered(protocol);
    this.#out = options.out;
    this.#in = options.in;
    this.#sockname = options.sockname;
    this.#peername = options.peername;
    this.#extra = options.extra;
    this.#owner = options.owner ?? null;
    this.#waiter = options.waiter ?? null;
    this.#onClosed = options.onClosed;
    this.#token = trackResource(loop, 'transport', this, abortTransport);
    loop.callSoon(transportMake, this);
    this.#owner?.attach(this);
  }

  /** @internal Runs on the loop: connectionMade, then whatever waited for it. */
  make(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    this.startConnection(waiter);
    if (this.lifecycle === 'closed') this.scheduleLost();
    else this.#in.schedule();
  }

  // ------------------------------------------------------------ PipeEnd

  /** @internal */
  canReceive(): boolean {
    return this.made && this.lifecycle === 'open' && this.#reading;
  }

  /** @internal */
  receive(data: Buffer): Buffer | null {
    if (!this.#buffered) {
      this.callProtocol('dataReceived', data);
      return null;
    }
    const p = this.protocol as BufferedProtocol;
    let off = 0;
    while (off < data.byteLength) {
      if (!this.canReceive()) return data.subarray(off);
      let buf: Uint8Array;
      try {
        buf = p.getBuffer(data.byteLength - off);
        if (!(buf instanceof Uint8Array) || buf.byteLength === 0) throw new InvalidArgumentError('BufferedProtocol.getBuffer() must return a non-empty Uint8Array');
      } catch (exception) {
        this.fatal(exception, 'protocol.getBuffer() call failed');
        return null;
      }
      const n = Math.min(buf.byteLength, data.byteLength - off);
      buf.set(data.subarray(off, off + n));
      off += n;
      this.callProtocol('bufferUpdated', n);
    }
    return null;
  }

  /** @internal */
  receiveEof(): void {
    this.#eofReceived = true;
    const keepOpen = this.callProtocol('eofReceived');
    if (this.lifecycle !== 'open') return;
    if (keepOpen !== true) this.close();
    else if (this.#eofWritten && this.#out.finSent) this.forceClose(undefined);
  }

  /** @internal */
  drained(size: number): void {
    if (this.lifecycle === 'closed') return;
    this.afterDrain(size);
    if (!this.#out.finSent) return;
    if (this.lifecycle === 'closing' || this.#eofReceived) this.forceClose(undefined);
  }

  /** @internal */
  gone(): boolean {
    return this.lifecycle === 'closed';
  }

  /** @internal */
  peerReset(): void {
    this.#reset = true;
    this.forceClose(new ConnectionResetError('the connection was reset by the peer (memory network)', { code: 'ECONNRESET' }));
  }

  // ------------------------------------------------------------ reading side

  /** Whether received data is being delivered. */
  isReading(): boolean {
    return this.lifecycle === 'open' && this.#reading;
  }

  /** Stops delivering data; the peer feels backpressure once the window fills. Idempotent. */
  pauseReading(): void {
    if (this.lifecycle !== 'open') return;
    this.#reading = false;
  }

  /** Resumes delivering data. Idempotent. */
  resumeReading(): void {
    if (this.lifecycle !== 'open' || this.#reading) return;
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
    this.afterWrite(this.#out.sendBytes);
  }

  /** Writes each chunk in order. */
  writeLines(list: Iterable<Uint8Array | string>): void {
    for (const chunk of list) this.write(chunk);
  }

  #checkWritable(): boolean {
    if (this.lifecycle === 'open' && !this.#eofWritten) return true;
    // The peer broke the connection: connectionLost is on its way; asyncio drops these writes.
    if (this.lifecycle === 'closed' && !this.closedByUser) {
      this.dropWriteAfterLost();
      return false;
    }
    throw new TransportClosedError(this.#eofWritten && this.lifecycle === 'open' ? 'write() after writeEof(): the writing side is closed' : `write() on a ${this.lifecycle} transport: it was closed with close() or abort()`);
  }

  /** Sends a FIN after the buffered bytes (half-close). Idempotent. */
  writeEof(): void {
    if (this.lifecycle !== 'open' || this.#eofWritten) return;
    this.#eofWritten = true;
    this.#out.writeEof();
  }

  /** Always true: memory links half-close like TCP. */
  canWriteEof(): boolean {
    return true;
  }

  /** Bytes written and not yet sent (the link's window is full, or the loop has not run yet). */
  override getWriteBufferSize(): number {
    return this.#out.sendBytes;
  }

  // ------------------------------------------------------------ closing

  /** Stops reading, sends what is buffered and a FIN, then closes; `connectionLost(undefined)` follows. Idempotent. */
  close(): void {
    if (this.lifecycle !== 'open') return;
    this.closedByUser = true;
    this.lifecycle = 'closing';
    this.#out.writeEof();
    this.#out.schedule();
  }

  /** Closes at once, dropping buffered data (the peer sees EOF); `connectionLost(undefined)` follows. Idempotent. */
  abort(): void {
    if (this.lifecycle === 'closed') return;
    this.closedByUser = true;
    this.forceClose(undefined);
  }

  /** Lets go of the link end: FIN (unless the link was reset), the peer reset if bytes were left unread. */
  protected release(): void {
    this.#token.untrack();
    if (!this.#reset) {
      this.#out.dropSendQueue();
      this.#out.writeEof();
      this.#out.schedule();
      // Unread bytes when we close: our stack resets the peer.
      if (this.#in.undelivered > 0) this.#in.schedule();
    }
    const onClosed = this.#onClosed;
    this.#onClosed = null;
    onClosed?.(this);
  }

  /** connectionLost waits for connectionMade (make() schedules it then). */
  protected override holdLost(): boolean {
    return !this.made;
  }

  /** What the diagnostics channels say about this connection. */
  protected override connectionInfo(): ConnectionInfo {
    return { kind: 'memory', local: { ...this.#sockname }, peer: { ...this.#peername } };
  }

  protected override afterLost(): void {
    const owner = this.#owner;
    this.#owner = null;
    owner?.detach(this);
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
  override setProtocol(protocol: BaseProtocol): void {
    super.setProtocol(protocol);
    this.#buffered = isBuffered(protocol);
  }

  /** The current protocol. */
  override getProtocol(): Protocol | BufferedProtocol {
    return this.protocol as Protocol | BufferedProtocol;
  }

  /** @internal */
  [kDescribe](): string {
    return this.toString();
  }

  override toString(): string {
    const s = this.#sockname;
    const p = this.#peername;
    return `<MemoryTransport ${s.address}:${s.port}->${p.address}:${p.port} ${this.lifecycle}${this.#reading ? '' : ' paused'} buffered=${this.#out.sendBytes}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}
