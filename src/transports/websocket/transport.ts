/**
 * The WebSocket transport: one `ws` WebSocket driven as a transport/protocol pair
 * with a {@link MessageProtocol}.
 *
 * ```
 * open --close(code, reason)--> closing --(closing handshake, or closeTimeout)--> closed
 * open --abort()------------------------------------------------------------> closed
 * open --(peer close, bad frame, reset, heartbeat, protocol error)-----------> closed
 * ```
 * Every path ends in {@link WebSocketTransport.#finish}, which runs once and schedules
 * `connectionLost(exc)` exactly once: `undefined` after our own `close()`/`abort()` and
 * after a normal close by the peer (1000, 1001, or no status), a `WebSocketError`
 * (with `closeCode`) for any other close, a `HeartbeatTimeoutError` for a dead peer,
 * and the protocol's own exception when one of its callbacks threw.
 *
 * Messages are delivered from ws's `'message'` event straight to the protocol while
 * the loop runs. They are held back in a small backlog (at most what one socket read
 * carried, since the socket is paused at once) while reading is paused, while the loop
 * is not running, or before `connectionMade()` ran; the backlog drains through the
 * loop in order. Only whole, validated messages reach the protocol: limits and frame
 * errors are ws's (maxPayload -> 1009, bad UTF-8 -> 1007, protocol errors -> 1002).
 * @module
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { inspect } from 'node:util';
import { performance } from 'node:perf_hooks';
import type { WebSocket } from 'ws';
import { InvalidArgumentError, TransportClosedError } from '../../errors.ts';
import { kDescribe } from '../../loop/symbols.ts';
import type { Loop } from '../../loop/loop.ts';
import { trackResource, type ResourceToken } from '../../loop/resources.ts';
import type { MessageProtocol } from '../../protocols/protocols.ts';
import { FlowControl } from '../flow-control.ts';
import { Heartbeat, kHeartbeatExpired, kHeartbeatPing } from './heartbeat.ts';
import type { ReadTransport } from '../transports.ts';
import type { TransportSettings } from './options.ts';
import { closeError, heartbeatError } from './errors.ts';

/** The life of a WebSocket transport. */
export type WebSocketTransportState = 'open' | 'closing' | 'closed';

/** Where a transport reports that it is gone (its server). @internal */
export interface TransportOwner {
  transportLost(transport: WebSocketTransport): void;
}

/** @internal Symbols the server and client use to drive a transport. */
export const kStart = Symbol('protoloop.wsStart');
const kTransport = Symbol('protoloop.wsTransport');

// Writes dropped after the peer closed are counted; from this many on each is logged
// (asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES).
const LOG_THRESHOLD_FOR_LOST_WRITES = 5;

const TEXT = { binary: false };
const BINARY = { binary: true };

type Backlog = Array<Buffer | string>;

function abortTransport(t: WebSocketTransport): void {
  t.abort();
}

/** The WebSocket transport, given to {@link MessageProtocol.connectionMade}. */
export class WebSocketTransport implements ReadTransport {
  /** Where the transport is in its life (see the module notes). */
  state: WebSocketTransportState = 'open';
  readonly #loop: Loop;
  #ws: WebSocket;
  #protocol: MessageProtocol | null;
  #owner: TransportOwner | null;
  readonly #flow: FlowControl;
  readonly #settings: TransportSettings;
  readonly #extra: Record<string, unknown>;
  readonly #onSent: (err?: Error | null) => void;
  #heartbeat: Heartbeat | null = null;
  #token: ResourceToken | null = null;
  /** connectionMade() ran. */
  #made = false;
  /** The protocol wants messages (pauseReading() not in force). */
  #reading = true;
  #backlog: Backlog = [];
  #flushScheduled = false;
  #lostScheduled = false;
  /** close() or abort() was called: writes are refused, not dropped. */
  #closedByUs = false;
  /** The error connectionLost() will carry, decided once. */
  #lostExc: Error | undefined = undefined;
  #lostDecided = false;
  /** The ws 'error' that preceded the close, and the socket's own error (for errno). */
  #wsError: Error | undefined = undefined;
  #socketError: Error | undefined = undefined;
  #droppedWrites = 0;

  /** @internal Use `loop.createWebSocketServer()` / `loop.createWebSocketConnection()`. */
  constructor(loop: Loop, ws: WebSocket, socket: Socket, protocol: MessageProtocol, settings: TransportSettings, extra: Record<string, unknown>, owner: TransportOwner | null) {
    this.#loop = loop;
    this.#ws = ws;
    this.#protocol = protocol;
    this.#settings = settings;
    this.#owner = owner;
    this.#flow = new FlowControl((method) => this.#callFlow(method));
    this.#flow.high = settings.high;
    this.#flow.low = settings.low;
    this.#onSent = (err) => {
      if (err == null && this.#flow.paused && this.state !== 'closed') this.#flow.afterDrain(this.#ws.bufferedAmount);
    };
    // Addresses are read now: Node forgets them once the socket is closed.
    this.#extra = {
      ...extra,
      peername: socket.remoteAddress === undefined ? undefined : { address: socket.remoteAddress, port: socket.remotePort, family: socket.remoteFamily },
      sockname: socket.localAddress === undefined ? undefined : { address: socket.localAddress, port: socket.localPort, family: socket.localFamily },
      socket,
      websocket: ws,
    };
    (ws as any)[kTransport] = this;
    (socket as any)[kTransport] = this;
    ws.on('message', WebSocketTransport.#wsOnMessage);
    ws.on('pong', WebSocketTransport.#wsOnPong);
    ws.on('error', WebSocketTransport.#wsOnError);
    ws.on('close', WebSocketTransport.#wsOnClose);
    socket.on('error', WebSocketTransport.#socketOnError);
    this.#token = trackResource(loop, 'WebSocket transport', this, abortTransport);
  }

  // ------------------------------------------------------------- listeners
  // Named, shared by every connection: `this` is the ws object (or its socket), which
  // points back to its transport.

  static #wsOnMessage = function wsOnMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
    const t: WebSocketTransport = (this as any)[kTransport];
    if (t.state !== 'open') return; // close() or abort() stopped reading
    const message = isBinary ? data : data.toString();
    if (t.#backlog.length !== 0 || !t.#reading || !t.#made || !t.#loop.isRunning()) {
      t.#hold(message);
      return;
    }
    t.#deliver(message);
  };

  static #wsOnPong = function wsOnPong(this: WebSocket): void {
    (this as any)[kTransport].#heartbeat?.pong();
  };

  static #wsOnError = function wsOnError(this: WebSocket, err: Error): void {
    const t: WebSocketTransport = (this as any)[kTransport];
    t.#wsError ??= err;
  };

  static #wsOnClose = function wsOnClose(this: WebSocket, code: number, reason: Buffer): void {
    const t: WebSocketTransport = (this as any)[kTransport];
    t.#finish(t.#closedByUs ? undefined : closeError(code, reason.toString(), t.#wsError, t.#socketError), true);
  };

  static #socketOnError = function socketOnError(this: Socket, err: Error): void {
    const t: WebSocketTransport = (this as any)[kTransport];
    t.#socketError ??= err;
  };

  // ------------------------------------------------------------- lifecycle

  /** @internal Calls `connectionMade()` (through the loop when it is not running) and starts the heartbeat. */
  [kStart](): void {
    if (this.#settings.heartbeat !== null) this.#heartbeat = new Heartbeat(this.#loop, this.#settings.heartbeat, this);
    if (this.#loop.isRunning()) {
      this.#connectionMade();
    } else {
      this.#ws.pause();
      this.#loop.callSoon(startLater, this);
    }
  }

  #connectionMade(): void {
    if (this.#made || this.#protocol === null) return;
    this.#made = true;
    const protocol = this.#protocol;
    const t0 = this.#loop.getDebug() ? performance.now() : -1;
    try {
      protocol.connectionMade(this);
    } catch (exc) {
      this.#fatal(exc, 'Fatal error: protocol.connectionMade() call failed.');
      return;
    }
    if (t0 >= 0) this.#timed('connectionMade()', t0);
    if (this.state === 'open' && this.#reading) {
      if (this.#backlog.length !== 0) this.#scheduleFlush();
      else this.#ws.resume();
    }
  }

  /** @internal Deferred start. */
  startLater(): void {
    this.#connectionMade();
  }

  // --------------------------------------------------------------- reading

  #deliver(message: Buffer | string): void {
    const protocol = this.#protocol!;
    if (!this.#loop.getDebug()) {
      try {
        protocol.messageReceived(message, typeof message !== 'string');
      } catch (exc) {
        this.#fatal(exc, 'Fatal error: protocol.messageReceived() call failed.');
      }
      return;
    }
    const t0 = performance.now();
    try {
      protocol.messageReceived(message, typeof message !== 'string');
    } catch (exc) {
      this.#fatal(exc, 'Fatal error: protocol.messageReceived() call failed.');
      return;
    }
    this.#timed('messageReceived()', t0);
  }

  #hold(message: Buffer | string): void {
    this.#backlog.push(message);
    // Stop the socket: the backlog then holds at most what one read carried.
    this.#ws.pause();
    if (this.#reading && this.#made) this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#loop.isClosed()) return;
    this.#flushScheduled = true;
    this.#loop.callSoon(flushBacklog, this);
  }

  /** @internal Delivers held messages in order, while reading is wanted. */
  flush(): void {
    this.#flushScheduled = false;
    if (!this.#made) return;
    const backlog = this.#backlog;
    let i = 0;
    while (i < backlog.length && this.#reading && this.#protocol !== null && (this.state === 'open' || this.#lostDecided)) {
      const message = backlog[i++]!;
      this.#deliver(message);
    }
    backlog.splice(0, i);
    if (backlog.length !== 0 || !this.#reading) return;
    if (this.state === 'open') this.#ws.resume();
    else if (this.#lostDecided) this.#scheduleLost();
  }

  /** Whether messages are being delivered (not paused, not closing). */
  isReading(): boolean {
    return this.#reading && this.state === 'open';
  }

  /**
   * Stops delivering messages until {@link resumeReading}: the socket stops being read,
   * so the peer feels TCP backpressure. Idempotent.
   */
  pauseReading(): void {
    if (this.state !== 'open' || !this.#reading) return;
    this.#reading = false;
    this.#ws.pause();
  }

  /** Resumes delivering messages (held ones first, through the loop). Idempotent. */
  resumeReading(): void {
    if (this.#reading || (this.state !== 'open' && !this.#lostDecided)) return;
    this.#reading = true;
    if (this.#backlog.length !== 0) this.#scheduleFlush();
    else if (this.state === 'open' && this.#made) this.#ws.resume();
  }

  // --------------------------------------------------------------- writing

  /**
   * Sends one message: a string as a text message, bytes as a binary one. Never
   * blocks; past the high-water mark the protocol is told `pauseWriting()`. The
   * transport keeps a reference to the bytes until they are written (as ws and
   * `socket.write()` do): do not modify them afterwards.
   *
   * Throws `TransportClosedError` after `close()`/`abort()`. After the peer closed
   * (before `connectionLost()` arrives) messages are dropped and counted.
   */
  send(data: string | Uint8Array): void {
    const ws = this.#ws;
    if (this.state !== 'open' || ws.readyState !== 1) {
      this.#refuseWrite();
      return;
    }
    if (typeof data === 'string') ws.send(data, TEXT, this.#onSent);
    else if (data instanceof Uint8Array) ws.send(data, BINARY, this.#onSent);
    else throw new InvalidArgumentError(`send() takes a string or a Uint8Array, got ${inspect(data, { depth: 0 })}`);
    const size = ws.bufferedAmount;
    if (size > this.#flow.high) this.#flow.afterWrite(size);
  }

  /** Sends each message of `list` in order. */
  sendMany(list: Iterable<string | Uint8Array>): void {
    for (const data of list) this.send(data);
  }

  /** Sends a ping (the peer answers with a pong; the heartbeat does this by itself). */
  ping(data?: string | Uint8Array): void {
    if (this.state !== 'open' || this.#ws.readyState !== 1) {
      this.#refuseWrite();
      return;
    }
    this.#ws.ping(data);
  }

  #refuseWrite(): void {
    if (this.#closedByUs) throw new TransportClosedError('the WebSocket transport is closed: it was closed with close() or abort()');
    if (++this.#droppedWrites >= LOG_THRESHOLD_FOR_LOST_WRITES) {
      this.#loop.logger.warn(`${this.#describe()}: send() after the peer closed the connection (${this.#droppedWrites} messages dropped)`);
    }
  }

  /**
   * Sets the write-buffer water marks, bytes: above `high` the protocol is told
   * `pauseWriting()`, at or below `low` `resumeWriting()`. Defaults 64 KiB / 16 KiB.
   * Throws `InvalidArgumentError` unless `high >= low >= 0`.
   */
  setWriteBufferLimits(high?: number, low?: number): void {
    this.#flow.setLimits(this.getWriteBufferSize(), high, low);
  }

  /** The water marks, `[low, high]`, bytes. */
  getWriteBufferLimits(): [low: number, high: number] {
    return [this.#flow.low, this.#flow.high];
  }

  /**
   * Bytes accepted by `send()` and not yet handed to the kernel: ws's queue plus the
   * socket's user-space buffer (ws's `bufferedAmount`). The kernel's own socket buffer
   * is not counted.
   */
  getWriteBufferSize(): number {
    return this.state === 'closed' ? 0 : this.#ws.bufferedAmount;
  }

  #callFlow(method: 'pauseWriting' | 'resumeWriting'): void {
    const protocol = this.#protocol;
    if (protocol === null) return;
    try {
      protocol[method]();
    } catch (exception) {
      this.#loop.callExceptionHandler({ message: `protocol.${method}() failed`, exception, protocol, transport: this });
    }
  }

  // --------------------------------------------------------------- closing

  /** Whether the transport is closing or closed (by us or by the peer). */
  isClosing(): boolean {
    return this.state !== 'open' || this.#ws.readyState !== 1;
  }

  /**
   * Starts the closing handshake with `code` (default 1000) and `reason` (at most 123
   * bytes of UTF-8): messages already sent go out first, no more messages are
   * delivered, and if the peer does not answer within `closeTimeout` ms (default 5000)
   * the connection is aborted. `connectionLost(undefined)` follows. Idempotent.
   * Throws `InvalidArgumentError` for a code a peer may not receive (1004-1006,
   * 1015, other values outside 1000-1014 and 3000-4999).
   */
  close(code = 1000, reason = ''): void {
    if (this.state !== 'open') return;
    if (!isSendableCloseCode(code)) {
      throw new InvalidArgumentError(`close() code must be 1000-1003, 1007-1014 or 3000-4999, got ${String(code)}`);
    }
    if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
      throw new InvalidArgumentError('close() reason must be a string of at most 123 bytes of UTF-8');
    }
    this.#closedByUs = true;
    this.state = 'closing';
    this.#backlog.length = 0;
    this.#heartbeat?.stop();
    // ws sends the close frame after what is queued and destroys the socket if the
    // peer has not answered within its closeTimeout (set from ours).
    this.#ws.close(code, reason);
  }

  /** Closes at once, dropping what is buffered both ways. `connectionLost(undefined)` follows. Idempotent. */
  abort(): void {
    this.#closedByUs = true;
    if (this.state === 'closed') {
      // Messages held for a paused protocol after the peer left: drop them.
      if (this.#lostDecided && this.#backlog.length !== 0) {
        this.#backlog.length = 0;
        this.#scheduleLost();
      }
      return;
    }
    this.#finish(undefined, false);
  }

  /** @internal The heartbeat's ping. */
  [kHeartbeatPing](): void {
    if (this.#ws.readyState === 1) this.#ws.ping();
  }

  /** @internal The heartbeat found the peer dead. */
  [kHeartbeatExpired](): void {
    if (this.state === 'closed') return;
    this.#finish(heartbeatError(this.#settings.heartbeat!.timeout), false);
  }

  #fatal(exception: unknown, message: string): void {
    this.#loop.callExceptionHandler({ message, exception, protocol: this.#protocol, transport: this });
    if (this.state === 'closed') return;
    this.#backlog.length = 0;
    this.#finish(exception instanceof Error ? exception : new Error(String(exception)), false);
  }

  /**
   * The one exit path: decides the error, stops the heartbeat, releases the socket and
   * schedules connectionLost (after the backlog when the peer closed while a paused
   * protocol still has messages to read). Runs once.
   */
  #finish(exc: Error | undefined, peerClosed: boolean): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.#lostExc = exc;
    this.#lostDecided = true;
    this.#heartbeat?.stop();
    this.#heartbeat = null;
    this.#token?.untrack();
    this.#token = null;
    if (this.#flow.paused) this.#flow.paused = false;
    if (!peerClosed) {
      this.#backlog.length = 0;
      this.#ws.terminate();
    }
    if (this.#backlog.length === 0) this.#scheduleLost();
    else if (this.#reading && this.#made) this.#scheduleFlush();
  }

  #scheduleLost(): void {
    if (this.#lostScheduled) return;
    this.#lostScheduled = true;
    if (this.#loop.isClosed()) {
      this.#release();
      return;
    }
    this.#loop.callSoon(callConnectionLost, this);
  }

  /** @internal Delivers connectionLost once, then lets go of the protocol. */
  connectionLost(): void {
    const protocol = this.#protocol;
    if (protocol === null) return;
    if (this.#made) {
      const t0 = this.#loop.getDebug() ? performance.now() : -1;
      try {
        protocol.connectionLost(this.#lostExc);
      } catch (exception) {
        this.#loop.callExceptionHandler({ message: 'Exception in protocol.connectionLost()', exception, protocol, transport: this });
      }
      if (t0 >= 0) this.#timed('connectionLost()', t0);
    }
    this.#release();
  }

  #release(): void {
    this.#protocol = null;
    const owner = this.#owner;
    this.#owner = null;
    owner?.transportLost(this);
  }

  // ---------------------------------------------------------------- extras

  /**
   * Extra information: `url`, `protocol` (the subprotocol), `extensions`, `peername`
   * and `sockname` (`{ address, port, family }`), `headers` (of the upgrade request on
   * a server, of the upgrade response on a client), `request` (server: the upgrade
   * `IncomingMessage`), `socket`, `websocket` (the ws object), `peercert`/`cipher` on
   * TLS. Unknown names give `defaultValue`.
   */
  getExtraInfo<T = unknown>(name: string, defaultValue?: T): T | undefined {
    switch (name) {
      case 'protocol':
        return this.#ws.protocol as T;
      case 'extensions':
        return this.#ws.extensions as T;
      case 'peercert':
      case 'cipher': {
        const s = this.#extra.socket as { getPeerCertificate?: () => unknown; getCipher?: () => unknown };
        if (name === 'peercert' && typeof s.getPeerCertificate === 'function') return s.getPeerCertificate() as T;
        if (name === 'cipher' && typeof s.getCipher === 'function') return s.getCipher() as T;
        return defaultValue;
      }
      default: {
        const v = this.#extra[name];
        return v === undefined ? defaultValue : (v as T);
      }
    }
  }

  /** Replaces the protocol (messages go to the new one from now on). */
  setProtocol(protocol: MessageProtocol): void {
    if (this.#protocol !== null) this.#protocol = protocol;
  }

  /** The current protocol (null once `connectionLost()` was delivered). */
  getProtocol(): MessageProtocol {
    return this.#protocol as MessageProtocol;
  }

  #timed(what: string, t0: number): void {
    const dt = performance.now() - t0;
    if (dt >= this.#loop.slowCallbackDuration) {
      this.#loop.reportSlow(`${this.#protocol?.constructor.name ?? 'protocol'}.${what} on ${this.#describe()}`, dt, { protocol: this.#protocol, transport: this });
    }
  }

  #describe(): string {
    const peer = this.#extra.peername as { address: string; port: number } | undefined;
    const where = this.#extra.url ?? (peer ? `${peer.address}:${peer.port}` : '?');
    return `<WebSocketTransport ${this.state} ${String(where)}>`;
  }

  /** @internal */
  [kDescribe](): string {
    return this.#describe();
  }

  /** @internal */
  [inspect.custom](): string {
    const parts = [this.state, String(this.#extra.url ?? '')];
    const peer = this.#extra.peername as { address: string; port: number } | undefined;
    if (peer) parts.push(`peer=${peer.address}:${peer.port}`);
    if (this.state !== 'closed') parts.push(`buffered=${this.#ws.bufferedAmount}`);
    if (!this.#reading) parts.push('reading-paused');
    if (this.#flow.paused) parts.push('writing-paused');
    if (this.#backlog.length) parts.push(`held=${this.#backlog.length}`);
    if (this.#heartbeat) parts.push(inspect(this.#heartbeat));
    return `<WebSocketTransport ${parts.filter(Boolean).join(' ')}>`;
  }
}

/** Close codes an endpoint may send (RFC 6455 7.4, as ws checks them). */
function isSendableCloseCode(code: unknown): boolean {
  if (typeof code !== 'number' || !Number.isInteger(code)) return false;
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

function startLater(t: WebSocketTransport): void {
  t.startLater();
}

function flushBacklog(t: WebSocketTransport): void {
  t.flush();
}

function callConnectionLost(t: WebSocketTransport): void {
  t.connectionLost();
}

/** @internal What a server transport's extra info starts from. */
export function serverExtra(request: IncomingMessage): Record<string, unknown> {
  return { url: request.url, headers: request.headers, request };
}
