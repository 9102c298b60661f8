/**
 * Server limits and what a server counts: `maxConnections`, `idleTimeout`,
 * `handshakeTimeout`, with the defaults an internet-facing server wants, and the
 * policy for peer drops: a peer that resets (ECONNRESET, EPIPE, WebSocket 1006), goes
 * silent, or sends malformed frames is not an application error. It is counted, logged
 * at debug level, and one warning line is written when such drops come faster than
 * {@link DROP_WARN_RATE} per {@link DROP_WINDOW} ms. Only exceptions from user code go
 * to the loop's exception handler (and are logged as errors).
 * @module
 */
import {
  BrokenPipeError,
  ConnectionError,
  ConnectionResetError,
  HeartbeatTimeoutError,
  IdleTimeoutError,
  IncompleteReadError,
  InvalidArgumentError,
  WebSocketError,
} from '../errors.ts';
import type { ExceptionContext, Loop } from '../loop/loop.ts';

/** Default `maxConnections` of a server: beyond it new connections are closed at once. */
export const DEFAULT_MAX_CONNECTIONS = 10_000;
/** Default `idleTimeout` of TCP, TLS and Unix servers, ms: 5 minutes without a byte either way. */
export const DEFAULT_IDLE_TIMEOUT = 300_000;
/** Default `handshakeTimeout` of TLS servers and WebSocket upgrades, ms. */
export const DEFAULT_SERVER_HANDSHAKE_TIMEOUT = 10_000;
/** Peer drops per window above which one warning line is written. */
export const DROP_WARN_RATE = 100;
/** The window of {@link DROP_WARN_RATE}, ms. */
export const DROP_WINDOW = 10_000;
/** At most one "maxConnections reached" warning per this many ms. */
const REJECT_WARN_INTERVAL = 60_000;

/** The limits every server takes (TCP, TLS, Unix, streams, WebSocket). */
export interface ServerLimitOptions {
  /**
   * Most connections open at once; beyond it a new connection is closed at once
   * (counted in `server.stats().rejected`, with one warning per minute). Default 10 000.
   */
  maxConnections?: number;
  /**
   * Milliseconds with no byte read or written after which a connection is closed; its
   * protocol's `connectionLost` (or its stream reader) gets an `IdleTimeoutError`.
   * 0 turns it off. Default 300 000 (5 minutes) for TCP/TLS/Unix servers.
   */
  idleTimeout?: number;
}

/** Resolved limits. */
export interface ServerLimits {
  maxConnections: number;
  idleTimeout: number;
}

/** Validates the limits; throws {@link InvalidArgumentError}. */
export function resolveLimits(o: ServerLimitOptions, what: string, defaultIdle = DEFAULT_IDLE_TIMEOUT): ServerLimits {
  const { maxConnections = DEFAULT_MAX_CONNECTIONS, idleTimeout = defaultIdle } = o;
  if (!(maxConnections === Infinity || (Number.isSafeInteger(maxConnections) && maxConnections >= 1))) {
    throw new InvalidArgumentError(`${what}.maxConnections must be an integer >= 1 (or Infinity), got ${String(maxConnections)}`);
  }
  if (!(typeof idleTimeout === 'number' && Number.isFinite(idleTimeout) && idleTimeout >= 0)) {
    throw new InvalidArgumentError(`${what}.idleTimeout must be a number of milliseconds >= 0 (0: off), got ${String(idleTimeout)}`);
  }
  return { maxConnections, idleTimeout };
}

/** What a server counts (`server.stats()`). */
export interface ServerStats {
  /** Connections open now. */
  connections: number;
  /** Connections accepted since the server started. */
  accepted: number;
  /** Connections closed at once because `maxConnections` were open. */
  rejected: number;
  /** Connections closed by `idleTimeout`. */
  idleClosed: number;
  /** TLS or WebSocket handshakes that did not finish within `handshakeTimeout`. */
  handshakeTimeouts: number;
  /** Connections the peer dropped (reset, broken pipe, WebSocket 1006, dead peer). */
  peerDrops: number;
  /** Connections closed for malformed input (bad frames, bad TLS, bad UTF-8, too large). */
  malformed: number;
}

/** How an error that ended a connection is classified. */
export type DropKind = 'peer' | 'malformed' | 'idle';

/** Whether `err` is the peer's doing (or a server limit) rather than an error in user code. */
export function dropKind(err: unknown): DropKind | null {
  if (err instanceof IdleTimeoutError) return 'idle';
  if (err instanceof WebSocketError) {
    const code = err.closeCode;
    return code === 1002 || code === 1007 || code === 1008 || code === 1009 ? 'malformed' : 'peer';
  }
  if (err instanceof HeartbeatTimeoutError || err instanceof ConnectionResetError || err instanceof BrokenPipeError || err instanceof IncompleteReadError) return 'peer';
  if (err instanceof ConnectionError) {
    // OS errors keep Node's code.
    const code = err.code;
    if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT' || code === 'ECONNABORTED') return 'peer';
  }
  return null;
}

/** A server's counters, and its rate-limited warnings. One per server. */
export class ServerCounters {
  accepted = 0;
  rejected = 0;
  idleClosed = 0;
  handshakeTimeouts = 0;
  peerDrops = 0;
  malformed = 0;
  readonly #loop: Loop;
  readonly #describe: () => string;
  #rejectWarnedAt = -Infinity;
  #rejectedSinceWarn = 0;
  #windowStart = -Infinity;
  #windowDrops = 0;
  #windowWarned = false;

  constructor(loop: Loop, describe: () => string) {
    this.#loop = loop;
    this.#describe = describe;
  }

  /** A connection was refused by `maxConnections`: counted; one warning per minute. */
  reject(max: number): void {
    this.rejected++;
    this.#rejectedSinceWarn++;
    const now = this.#loop.time();
    if (now - this.#rejectWarnedAt < REJECT_WARN_INTERVAL) return;
    this.#rejectWarnedAt = now;
    this.#loop.logger.warn(`${this.#describe()}: maxConnections (${max}) reached: ${this.#rejectedSinceWarn} new connection(s) closed at once since the last warning`);
    this.#rejectedSinceWarn = 0;
  }

  /** A handshake failed (bad TLS, not a WebSocket upgrade). */
  badHandshake(detail: string): void {
    this.malformed++;
    this.#noteDrop(detail);
  }

  /** A handshake did not finish in time. */
  handshakeTimedOut(detail: string): void {
    this.handshakeTimeouts++;
    this.#noteDrop(`handshake timeout: ${detail}`);
  }

  /** A connection of the server ended with `err` (what its connectionLost got): peer drops and limits are counted. */
  ended(err: Error | undefined): void {
    const kind = dropKind(err);
    if (kind === null) return;
    if (kind === 'idle') this.idleClosed++;
    else if (kind === 'malformed') this.malformed++;
    else this.peerDrops++;
    this.#noteDrop(err!.message);
  }

  #noteDrop(detail: string): void {
    const loop = this.#loop;
    if (loop.getDebug()) loop.logger.debug(`${this.#describe()}: connection ended: ${detail}`);
    const now = loop.time();
    if (now - this.#windowStart >= DROP_WINDOW) {
      this.#windowStart = now;
      this.#windowDrops = 0;
      this.#windowWarned = false;
    }
    if (++this.#windowDrops > DROP_WARN_RATE && !this.#windowWarned) {
      this.#windowWarned = true;
      loop.logger.warn(`${this.#describe()}: more than ${DROP_WARN_RATE} connections dropped by peers or cut by limits in ${DROP_WINDOW / 1000} s (see server.stats())`);
    }
  }
}

/**
 * Reports the error that escaped a per-connection handler (startServer's client
 * callback, startWebSocketServer's handler): a peer drop or a limit (already counted
 * by the server when the connection ended) is logged at debug level only; anything
 * else goes to the exception handler.
 */
export function reportHandlerError(loop: Loop, exception: unknown, context: ExceptionContext): void {
  if (dropKind(exception) !== null) {
    if (loop.getDebug()) loop.logger.debug(`${context.message} (the peer's doing, not an error): ${(exception as Error).message}`);
    return;
  }
  loop.callExceptionHandler(context);
}
