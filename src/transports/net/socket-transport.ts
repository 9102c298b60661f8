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
 * Reading (and backpressure from the first byte) is socket-read.ts's; writing (direct
 * non-blocking `write(2)` when nothing is queued, a copy of only the tail the kernel
 * did not take) is socket-write.ts's; every reach into Node's internals is in
 * node-internals.ts.
 * @module
 */
import type net from 'node:net';
import type tls from 'node:tls';
import { nodeTls } from '../../loop/lazy.ts';
import { inspect } from 'node:util';
import { IdleTimeoutError, InvalidArgumentError, TransportClosedError } from '../../errors.ts';
import type { Future } from '../../loop/future.ts';
import type { Loop } from '../../loop/loop.ts';
import { trackResource, type ResourceToken } from '../../loop/resources.ts';
import { kDescribe, kTransport } from '../../loop/symbols.ts';
import type { ConnectionInfo, TransportState } from '../base.ts';
import { DEFAULT_LOW_WATER } from '../flow-control.ts';
import { IdleSweep } from './idle-sweep.ts';
import { mapSocketError } from '../map-error.ts';
import type { Transport } from '../transports.ts';
import { dropNodeEndListener, makeOnread, type OnreadTarget } from './node-internals.ts';
import { F_EOF_WRITTEN, F_TLS, SCRATCH, SocketReader, type OwnedSocket, type StreamProtocol } from './socket-read.ts';
import { send, sendMany } from './socket-write.ts';
import { proxyAddressOf } from './proxy-protocol.ts';

export { READ_BACKLOG_LIMIT, type StreamProtocol } from './socket-read.ts';

/** The lifecycle of a {@link SocketTransport}. */
export type SocketTransportState = TransportState;

/** @internal Who keeps a set of live transports (a server). */
export interface TransportOwner {
  attach(t: SocketTransport): void;
  detach(t: SocketTransport): void;
}

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
  /** The server's shared idle timeout (instead of `idleTimeout`: no timer per connection). */
  idleSweep?: IdleSweep;
}

type TransportSocket = OwnedSocket & { [kTransport]?: SocketTransport };

// ------------------------------------------------------------ module-level listeners
// Named functions bound through the socket's back-reference, no closure per connection.

const onreadTarget: OnreadTarget = {
  nextBuffer(socket) {
    const t = (socket as TransportSocket)[kTransport];
    return t === undefined ? SCRATCH : t.nextReadBuffer();
  },
  read(socket, nread, buf) {
    (socket as TransportSocket)[kTransport]?.onRead(nread, buf);
  },
};

/**
 * @internal The `onread` option for sockets a SocketTransport will own: pass it to the
 * `net.Socket` constructor, then create the transport in the same tick.
 */
export const ONREAD = makeOnread(onreadTarget, SCRATCH);

function socketOnData(this: TransportSocket, chunk: Buffer): void {
  this[kTransport]?.onData(chunk);
}
function socketOnEnd(this: TransportSocket): void {
  this[kTransport]?.onEnd();
}
function socketOnError(this: TransportSocket, err: Error): void {
  this[kTransport]?.onError(err);
}
function socketOnClose(this: TransportSocket): void {
  this[kTransport]?.onClose();
}
function socketOnFinish(this: TransportSocket): void {
  this[kTransport]?.onFinish();
}
function abortTransport(t: SocketTransport): void {
  t.abort();
}

function addressOf(address: string | undefined, port: number | undefined, family: string | undefined): { address: string; port: number; family: string } | undefined {
  return address === undefined ? undefined : { address, port: port ?? 0, family: family ?? '' };
}

/**
 * A TCP, Unix-socket or TLS transport. Created by `loop.createConnection()`,
 * `createServer()`, `createUnixConnection()`, `createUnixServer()`,
 * `connectAcceptedSocket()` and `startTls()`; never constructed by user code.
 * The reading side is `SocketReader`'s (socket-read.ts), the write path
 * socket-write.ts's.
 */
export class SocketTransport extends SocketReader implements Transport {
  #onWritten: ((err?: Error | null) => void) | null = null;
  /** Extra info given up front (peername and sockname are read from the socket when asked). */
  readonly #extra: Record<string, unknown> | null;
  readonly #token: ResourceToken;
  #owner: TransportOwner | null;

  /** @internal Use the loop methods. */
  constructor(loop: Loop, socket: net.Socket, protocol: StreamProtocol, options: SocketTransportOptions = {}) {
    super(loop, socket, protocol, options.waiter ?? null, options.skipConnectionMade === true);
    this.#owner = options.owner ?? null;
    this.setFlag(F_TLS, socket instanceof nodeTls().TLSSocket);
    this.#extra = options.extra ?? null;
    // Held: the socket refers to this transport (kTransport below) and an open socket's
    // native handle keeps the socket alive, so no finalization can report it while open.
    this.#token = trackResource(loop, options.kind ?? 'transport', this, abortTransport, true);
    const s = this.socket as TransportSocket;
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
    this.syncReading();
    const sweep = options.idleSweep ?? ((options.idleTimeout ?? 0) > 0 ? new IdleSweep(loop, options.idleTimeout!) : null);
    if (sweep !== null) {
      this.idleSweep = sweep;
      sweep.add(this);
    }
    this.#owner?.attach(this);
  }

  /** @internal A plain socket (not TLS): writes may go straight to the fd. */
  get direct(): boolean {
    return !this.hasFlag(F_TLS);
  }

  /** @internal writeEof() was called. */
  get eofWritten(): boolean {
    return this.hasFlag(F_EOF_WRITTEN);
  }

  get #tls(): boolean {
    return this.hasFlag(F_TLS);
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
    this.idleLooks = -1;
    send(this, data);
    this.afterWrite(this.socket.writableLength);
  }

  /** Writes each chunk of `list` in order, in one system call where possible. */
  writeLines(list: Iterable<Uint8Array | string>): void {
    const chunks = [...list];
    for (const c of chunks) if (typeof c !== 'string' && !(c instanceof Uint8Array)) throw new InvalidArgumentError(`writeLines() takes strings and Uint8Arrays, got ${inspect(c, { depth: 0 })}`);
    const first = chunks.find((c) => c.length > 0);
    if (first === undefined || !this.#checkWritable(first)) return;
    this.idleLooks = -1;
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
    this.idleLooks = -1;
    if (this.readHeld && size === 0) this.holdReading(false);
    this.afterDrain(size);
  }

  /** Closes the writing side once the buffer is flushed (half-close). The reading side stays open. Idempotent. */
  writeEof(): void {
    if (this.lifecycle !== 'open' || this.eofWritten) return;
    this.setFlag(F_EOF_WRITTEN, true);
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
    this.clearPending();
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
    this.idleSweep = null;
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
    this.releaseReading();
    this.idleSweep?.delete(this);
    this.idleSweep = null;
    this.#token.untrack();
    this.socket.destroy();
    // Data read before the close is delivered before connectionLost (scheduled next).
    this.flushBeforeLost();
  }

  protected override afterLost(): void {
    this.readerGone();
    const owner = this.#owner;
    this.#owner = null;
    owner?.detach(this);
  }

  // ---------------------------------------------------------------- the rest

  protected override connectionInfo(): ConnectionInfo {
    const unix = !this.#tls && this.socket.remoteFamily === undefined;
    const path = this.#extra?.path;
    return {
      kind: this.#tls ? 'tls' : unix ? 'unix' : 'tcp',
      local: this.getExtraInfo('sockname') ?? (unix ? path : undefined),
      peer: this.getExtraInfo('peername') ?? (unix ? path : undefined),
    };
  }

  /**
   * Extra information: `peername` and `sockname` (`{ address, port, family }` for TCP;
   * `peername` is the client a PROXY header named, on a server with `proxyProtocol`),
   * `socket` (the Node socket), and for TLS `peercert`, `cipher`, `sslObject` (the
   * `tls.TLSSocket`), `alpnProtocol`, `tlsProtocol`. Returns `defaultValue` when unknown.
   */
  getExtraInfo<T = unknown>(name: string, defaultValue?: T): T | undefined {
    const given = this.#extra?.[name];
    if (given !== undefined) return given as T;
    const s = this.socket;
    switch (name) {
      case 'socket': return s as unknown as T;
      case 'peername': {
        // Behind a load balancer that sent a PROXY header: the client it named.
        const proxied = proxyAddressOf(s);
        if (proxied !== null) return addressOf(proxied.address, proxied.port, proxied.family) as T;
        return (s.remoteAddress === undefined ? defaultValue : addressOf(s.remoteAddress, s.remotePort, s.remoteFamily)) as T;
      }
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

  /**
   * @internal Hands the socket over (startTls): stops reading, removes our listeners
   * and forgets the socket without closing it or calling connectionLost.
   */
  detachSocket(): net.Socket {
    if (this.lifecycle !== 'open') throw new TransportClosedError('startTls() needs an open transport');
    const s = this.socket as TransportSocket;
    this.stopReadingForHandover();
    this.handedOver();
    this.closedByUser = true;
    this.idleSweep?.delete(this);
    this.idleSweep = null;
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
    if (this.readingPaused) parts.push('reading paused');
    if (this.eofWritten) parts.push('eof written');
    if (this.eofSeen) parts.push('eof received');
    if (this.lifecycle !== 'closed') parts.push(`buffered=${this.socket.writableLength}`);
    if (this.flow?.paused === true) parts.push('writing paused');
    return `<SocketTransport ${parts.join(' ')}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}
