/**
 * The WebSocket transport: one `ws` WebSocket driven as a transport/protocol pair
 * with a {@link MessageProtocol}.
 *
 * ```
 * open --close(code, reason)--> closing --(closing handshake, or closeTimeout)--> closed
 * open --abort()------------------------------------------------------------> closed
 * open --(peer close, bad frame, reset, heartbeat, protocol error)-----------> closed
 * ```
 * Every path ends in the base's exit path (src/transports/base.ts), which runs once
 * and schedules `connectionLost(exc)` exactly once: `undefined` after our own `close()`/`abort()` and
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
import type { WebSocket } from 'ws';
import { IdleTimeoutError, InvalidArgumentError, TransportClosedError } from '../../errors.ts';
import { kDescribe } from '../../loop/symbols.ts';
import type { Loop } from '../../loop/loop.ts';
import { trackResource, type ResourceToken } from '../../loop/resources.ts';
import type { MessageProtocol } from '../../protocols/protocols.ts';
import { TransportBase, type ConnectionInfo, type TransportState } from '../base.ts';
import { FlowControl } from '../flow-control.ts';
import { IdleTimer } from '../idle.ts';
import { kStartTransport, kTransport } from '../../loop/symbols.ts';
import { Heartbeat, kHeartbeatExpired, kHeartbeatPing } from './heartbeat.ts';
import type { ReadTransport } from '../transports.ts';
import type { TransportSettings } from './options.ts';
import { closeError, heartbeatError } from './errors.ts';

/** The life of a WebSocket transport. */
export type WebSocketTransportState = TransportState;

/** Where a transport reports that it is gone (its server). Not exported from the package. */
export interface TransportOwner {
  /** @internal */
  transportLost(transport: WebSocketTransport): void;
}

const TEXT = { binary: false };
const BINARY = { binary: true };

type Backlog = Array<Buffer | string>;
type Owned = { [kTransport]?: WebSocketTransport };

function abortTransport(t: WebSocketTransport): void {
  t.abort();
}

// ------------------------------------------------------------- listeners
// Named, shared by every connection: `this` is the ws object (or its socket), which
// points back to its transport.

function wsOnMessage(this: WebSocket & Owned, data: Buffer, isBinary: boolean): void {
  this[kTransport]!.onMessage(data, isBinary);
}
function wsOnPong(this: WebSocket & Owned): void {
  this[kTransport]!.onPong();
}
function wsOnError(this: WebSocket & Owned, err: Error): void {
  this[kTransport]!.onWsError(err);
}
function wsOnClose(this: WebSocket & Owned, code: number, reason: Buffer): void {
  this[kTransport]!.onWsClose(code, reason);
}
function socketOnError(this: Socket & Owned, err: Error): void {
  this[kTransport]?.onSocketError(err);
}

/** The WebSocket transport, given to {@link MessageProtocol.connectionMade}. */
export class WebSocketTransport extends TransportBase<MessageProtocol> implements ReadTransport {
  #ws: WebSocket;
  #owner: TransportOwner | null;
  readonly #settings: TransportSettings;
  readonly #extra: Record<string, unknown>;
  readonly #onSent: (err?: Error | null) => void;
  #heartbeat: Heartbeat | null = null;
  #idle: IdleTimer | null = null;
  #token: ResourceToken | null = null;
  /** The protocol wants messages (pauseReading() not in force). */
  #reading = true;
  #backlog: Backlog = [];
  #flushScheduled = false;
  /** The peer closed (the close handshake or the socket): held messages may still be read. */
  #peerClosed = false;
  /** connectionLost was delivered: the protocol is let go. */
  #gone = false;
  /** The ws 'error' that preceded the close, and the socket's own error (for errno). */
  #wsError: Error | undefined = undefined;
  #socketError: Error | undefined = undefined;

  /** @internal Use `loop.createWebSocketServer()` / `loop.createWebSocketConnection()`. */
  constructor(loop: Loop, ws: WebSocket, socket: Socket, protocol: MessageProtocol, settings: TransportSettings, extra: Record<string, unknown>, owner: TransportOwner | null) {
    super(loop, protocol);
    this.#ws = ws;
    this.#settings = settings;
    this.#owner = owner;
    this.flow = new FlowControl(this, settings.high, settings.low);
    // ws calls a send callback without a `this`: one per connection, not per message.
    this.#onSent = (err) => {
      if (this.#idle !== null) this.#idle.touch();
      if (err == null && this.flow!.paused) this.afterDrain(this.#ws.bufferedAmount);
    };
    // Addresses are read now: Node forgets them once the socket is closed.
    this.#extra = {
      ...extra,
      peername: socket.remoteAddress === undefined ? undefined : { address: socket.remoteAddress, port: socket.remotePort, family: socket.remoteFamily },
      sockname: socket.localAddress === undefined ? undefined : { address: socket.localAddress, port: socket.localPort, family: socket.localFamily },
      socket,
      websocket: ws,
    };
    (ws as WebSocket & Owned)[kTransport] = this;
    (socket as Socket & Owned)[kTransport] = this;
    ws.on('message', wsOnMessage);
    ws.on('pong', wsOnPong);
    ws.on('error', wsOnError);
    ws.on('close', wsOnClose);
    socket.on('error', socketOnError);
    this.#token = trackResource(loop, 'WebSocket transport', this, abortTransport);
  }

  /** @internal */
  onMessage(data: Buffer, isBinary: boolean): void {
    if (this.lifecycle !== 'open') return; // close() or abort() stopped reading
    if (this.#idle !== null) this.#idle.touch();
    const message = isBinary ? data : data.toString();
    if (this.#backlog.length !== 0 || !this.#reading || !this.made || !this.loop.isRunning()) {
      this.#hold(message);
      return;
    }
    this.callProtocol('messageReceived', message, isBinary);
  }

  /** @internal */
  onPong(): void {
    this.#heartbeat?.pong();
  }

  /** @internal */
  onWsError(err: Error): void {
    this.#wsError ??= err;
  }

  /** @internal */
  onWsClose(code: number, reason: Buffer): void {
    this.#finish(this.closedByUser ? undefined : closeError(code, reason.toString(), this.#wsError, this.#socketError), true);
  }

  /** @internal */
  onSocketError(err: Error): void {
    this.#socketError ??= err;
  }

  // ------------------------------------------------------------- lifecycle

  /** @internal Calls `connectionMade()` (through the loop when it is not running) and starts the heartbeat and the idle timer. */
  [kStartTransport](): void {
    if (this.#settings.heartbeat !== null) this.#heartbeat = new Heartbeat(this.loop, this.#settings.heartbeat, this);
    const idle = this.#settings.idleTimeout ?? 0;
    if (idle > 0) this.#idle = new IdleTimer(this.loop, idle, this);
    if (this.loop.isRunning()) {
      this.#connectionMade();
    } else {
      this.#ws.pause();
      this.loop.callSoon(startLater, this);
    }
  }

  #connectionMade(): void {
    if (this.made || this.#gone) return;
    this.made = true;
    this.callConnectionMade();
    if (this.lifecycle === 'open' && this.#reading) {
      if (this.#backlog.length !== 0) this.#scheduleFlush();
      else this.#ws.resume();
    }
  }

  /** @internal Deferred start. */
  startLater(): void {
    this.#connectionMade();
  }

  // --------------------------------------------------------------- reading

  #hold(message: Buffer | string): void {
    this.#backlog.push(message);
    // Stop the socket: the backlog then holds at most what one read carried.
    this.#ws.pause();
    if (this.#reading && this.made) this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.loop.isClosed()) return;
    this.#flushScheduled = true;
    this.loop.callSoon(flushBacklog, this);
  }

  /** @internal Delivers held messages in order, while reading is wanted. */
  flush(): void {
    this.#flushScheduled = false;
    if (!this.made) return;
    const backlog = this.#backlog;
    let i = 0;
    while (i < backlog.length && this.#reading && !this.#gone && (this.lifecycle === 'open' || this.#peerClosed)) {
      const message = backlog[i++]!;
      this.callProtocol('messageReceived', message, typeof message !== 'string');
    }
    backlog.splice(0, i);
    if (backlog.length !== 0 || !this.#reading) return;
    if (this.lifecycle === 'open') this.#ws.resume();
    else this.scheduleLost();
  }

  /** Whether messages are being delivered (not paused, not closing). */
  isReading(): boolean {
    return this.#reading && this.lifecycle === 'open';
  }

  /**
   * Stops delivering messages until {@link resumeReading}: the socket stops being read,
   * so the peer feels TCP backpressure. Idempotent.
   */
  pauseReading(): void {
    if (this.lifecycle !== 'open' || !this.#reading) return;
    this.#reading = false;
    this.#ws.pause();
  }

  /** Resumes delivering messages (held ones first, through the loop). Idempotent. */
  resumeReading(): void {
    if (this.#reading || (this.lifecycle !== 'open' && !this.#peerClosed)) return;
    this.#reading = true;
    if (this.#backlog.length !== 0) this.#scheduleFlush();
    else if (this.lifecycle === 'open' && this.made) this.#ws.resume();
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
    if (this.lifecycle !== 'open' || ws.readyState !== 1) {
      this.#refuseWrite('send()');
      return;
    }
    if (typeof data === 'string') ws.send(data, TEXT, this.#onSent);
    else if (data instanceof Uint8Array) ws.send(data, BINARY, this.#onSent);
    else throw new InvalidArgumentError(`send() takes a string or a Uint8Array, got ${inspect(data, { depth: 0 })}`);
    if (this.#idle !== null) this.#idle.touch();
    this.afterWrite(ws.bufferedAmount);
  }

  /** Sends each message of `list` in order. */
  sendMany(list: Iterable<string | Uint8Array>): void {
    for (const data of list) this.send(data);
  }

  /** Sends a ping (the peer answers with a pong; the heartbeat does this by itself). */
  ping(data?: string | Uint8Array): void {
    if (this.lifecycle !== 'open' || this.#ws.readyState !== 1) {
      this.#refuseWrite('ping()');
      return;
    }
    this.#ws.ping(data);
  }

  #refuseWrite(what: string): void {
    if (this.closedByUser) throw new TransportClosedError('the WebSocket transport is closed: it was closed with close() or abort()');
    this.dropWriteAfterLost(what);
  }

  /**
   * Bytes accepted by `send()` and not yet handed to the kernel: ws's queue plus the
   * socket's user-space buffer (ws's `bufferedAmount`). The kernel's own socket buffer
   * is not counted.
   */
  override getWriteBufferSize(): number {
    return this.lifecycle === 'closed' ? 0 : this.#ws.bufferedAmount;
  }

  // --------------------------------------------------------------- closing

  /** Whether the transport is closing or closed (by us or by the peer). */
  override isClosing(): boolean {
    return this.lifecycle !== 'open' || this.#ws.readyState !== 1;
  }

  /**
   * Starts the closing handshake with `code` (default 1000) and `reason` (at most 123
   * bytes of UTF-8): messages already sent go out first, no more messages are
   * delivered, and if the peer does not answer within `closeTimeout` ms (default 5000)
   * the connection is aborted. `connectionLost(undefined)` follows. Idempotent; after
   * the peer closed, drops the messages still held for a paused protocol.
   * Throws `InvalidArgumentError` for a code a peer may not receive (1004-1006,
   * 1015, other values outside 1000-1014 and 3000-4999).
   */
  close(code = 1000, reason = ''): void {
    if (this.lifecycle !== 'open') {
      // The peer closed first and messages are still held for a paused protocol: closing
      // means no more are delivered, so they are dropped and connectionLost follows.
      if (this.lifecycle === 'closed' && this.#backlog.length !== 0) {
        this.#backlog.length = 0;
        this.scheduleLost();
      }
      return;
    }
    if (!isSendableCloseCode(code)) {
      throw new InvalidArgumentError(`close() code must be 1000-1003, 1007-1014 or 3000-4999, got ${String(code)}`);
    }
    if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
      throw new InvalidArgumentError('close() reason must be a string of at most 123 bytes of UTF-8');
    }
    this.closedByUser = true;
    this.lifecycle = 'closing';
    this.#backlog.length = 0;
    this.#heartbeat?.stop();
    this.#idle?.stop();
    // ws sends the close frame after what is queued and destroys the socket if the
    // peer has not answered within its closeTimeout (set from ours).
    this.#ws.close(code, reason);
  }

  /** Closes at once, dropping what is buffered both ways. `connectionLost(undefined)` follows. Idempotent. */
  abort(): void {
    this.closedByUser = true;
    if (this.lifecycle === 'closed') {
      // Messages held for a paused protocol after the peer left: drop them.
      if (this.#backlog.length !== 0) {
        this.#backlog.length = 0;
        this.scheduleLost();
      }
      return;
    }
    this.#finish(undefined, false);
  }

  /** @internal Ends the connection at once with `exc` (a server limit: idle). */
  abortWith(exc: Error): void {
    if (this.lifecycle === 'closed') return;
    this.closedByUser = true;
    this.#finish(exc, false);
  }

  /** @internal IdleHost: bytes still draining count as activity. */
  idleProgress(): number {
    return this.lifecycle === 'closed' ? 0 : this.#ws.bufferedAmount;
  }

  /** @internal IdleHost: no message read or written for `ms`. */
  idleExpired(ms: number): void {
    this.#idle = null;
    this.abortWith(new IdleTimeoutError(`no message was read or written for ${ms} ms (idleTimeout)`));
  }

  /** @internal The heartbeat's ping. */
  [kHeartbeatPing](): void {
    if (this.#ws.readyState === 1) this.#ws.ping();
  }

  /** @internal The heartbeat found the peer dead. */
  [kHeartbeatExpired](): void {
    if (this.lifecycle === 'closed') return;
    this.#finish(heartbeatError(this.#settings.heartbeat!.timeout), false);
  }

  /** Every way out: decides the error once and takes the base's exit path. */
  #finish(exc: Error | undefined, peerClosed: boolean): void {
    if (this.lifecycle === 'closed') return;
    this.#peerClosed = peerClosed;
    this.forceClose(exc);
  }

  /** Part of the one exit path: stops the timers and releases the socket. */
  protected override release(): void {
    this.#heartbeat?.stop();
    this.#heartbeat = null;
    this.#idle?.stop();
    this.#idle = null;
    this.#token?.untrack();
    this.#token = null;
    const wasPaused = this.flow!.paused;
    if (wasPaused) this.flow!.paused = false;
    if (!this.#peerClosed) {
      this.#backlog.length = 0;
      this.#ws.terminate();
    } else if (this.#backlog.length !== 0 && this.#reading && this.made) {
      this.#scheduleFlush();
    }
    // connectionLost waits for a paused reader to take the held messages; a writer that
    // waits for the drain (a stream's send()) must not wait with it, or the reader never
    // comes: nothing is left to drain, so it is told to resume.
    if (wasPaused && this.made && this.holdLost() && !this.loop.isClosed()) this.loop.callSoon(resumeAfterClose, this);
  }

  /** @internal The write buffer went with the connection while connectionLost is held. */
  resumeAfterClose(): void {
    if (!this.#gone) this.callProtocol('resumeWriting');
  }

  /** connectionLost waits while the peer left messages a paused protocol has not read. */
  protected override holdLost(): boolean {
    return this.#backlog.length !== 0;
  }

  protected override afterLost(): void {
    this.#gone = true;
    this.#backlog.length = 0;
    const owner = this.#owner;
    this.#owner = null;
    owner?.transportLost(this);
  }

  // ---------------------------------------------------------------- extras

  protected override connectionInfo(): ConnectionInfo {
    return { kind: 'websocket', local: this.#extra.sockname, peer: this.#extra.peername };
  }

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
  override setProtocol(protocol: MessageProtocol): void {
    if (!this.#gone) this.protocol = protocol;
  }

  /** The current protocol (null once `connectionLost()` was delivered). */
  override getProtocol(): MessageProtocol {
    return (this.#gone ? null : this.protocol) as MessageProtocol;
  }

  #describe(): string {
    const peer = this.#extra.peername as { address: string; port: number } | undefined;
    const where = this.#extra.url ?? (peer ? `${peer.address}:${peer.port}` : '?');
    return `<WebSocketTransport ${this.lifecycle} ${String(where)}>`;
  }

  override toString(): string {
    return this.#describe();
  }

  /** @internal */
  [kDescribe](): string {
    return this.#describe();
  }

  /** @internal */
  [inspect.custom](): string {
    const parts = [this.lifecycle, String(this.#extra.url ?? '')];
    const peer = this.#extra.peername as { address: string; port: number } | undefined;
    if (peer) parts.push(`peer=${peer.address}:${peer.port}`);
    if (this.lifecycle !== 'closed') parts.push(`buffered=${this.#ws.bufferedAmount}`);
    if (!this.#reading) parts.push('reading-paused');
    if (this.flow!.paused) parts.push('writing-paused');
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

function resumeAfterClose(t: WebSocketTransport): void {
  t.resumeAfterClose();
}

function flushBacklog(t: WebSocketTransport): void {
  t.flush();
}


/** @internal What a server transport's extra info starts from. */
export function serverExtra(request: IncomingMessage): Record<string, unknown> {
  return { url: request.url, headers: request.headers, request };
}
