/**
 * Options of the WebSocket server and client, validated eagerly, with every default
 * in one place. All durations are milliseconds, all sizes bytes.
 * @module
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { SecureContextOptions, ConnectionOptions as TlsConnectionOptions, TlsOptions } from 'node:tls';
import { InvalidArgumentError } from '../../errors.ts';
import { resolveWaterMarks } from '../flow-control.ts';
import type { ServerLimitOptions } from '../server-limits.ts';
import type { ProxyProtocolOptions } from '../net/proxy-protocol.ts';

/** Largest message accepted by default: 1 MiB. Larger ones close the connection with 1009. */
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024;
/** Heartbeat defaults: a ping every 30 s, a pong due within 10 s. */
export const DEFAULT_HEARTBEAT_INTERVAL = 30_000;
export const DEFAULT_HEARTBEAT_TIMEOUT = 10_000;
/** How long `close()` waits for the peer's close frame before aborting. */
export const DEFAULT_CLOSE_TIMEOUT = 5_000;
/** How long a client waits for the opening handshake. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 10_000;

/** Heartbeat settings: a ping every `interval` ms; no pong within `timeout` ms aborts the connection. */
export interface HeartbeatOptions {
  /** Milliseconds between pings. Default 30 000. */
  interval?: number;
  /** Milliseconds a pong may take before the peer counts as dead. Default 10 000. */
  timeout?: number;
}

/** What `verifyClient` receives (ws's shape). */
export interface VerifyClientInfo {
  /** The `Origin` header, if any. */
  origin: string | undefined;
  /** Whether the connection is TLS. */
  secure: boolean;
  /** The upgrade request. */
  req: IncomingMessage;
}

/** How a two-argument {@link VerifyClient} answers: `(accept, status?, message?, headers?)`. */
export type VerifyClientCallback = (accept: boolean, status?: number, message?: string, headers?: Record<string, string>) => void;

/**
 * Accepts or refuses an opening handshake. Return a boolean (or a promise of one), or
 * declare the second parameter and call `callback` with `(accept, status?, message?,
 * headers?)`. A refusal answers with HTTP `status` (default 401). A throw or a rejected
 * promise refuses with 500 and is reported to the loop's exception handler.
 *
 * ```ts
 * verifyClient: ({ origin }) => origin === 'https://example.com'
 * ```
 */
export type VerifyClient = (info: VerifyClientInfo, callback: VerifyClientCallback) => boolean | PromiseLike<boolean> | void;

/** Options shared by the server and the client. */
export interface WebSocketCommonOptions {
  /** Largest message accepted, bytes; a larger one closes the connection with 1009. Default 1 MiB. */
  maxPayload?: number;
  /** permessage-deflate (ws's options object or true). Off by default: it costs CPU and memory per connection. */
  perMessageDeflate?: boolean | Record<string, unknown>;
  /** Ping/pong liveness check, or `false` to turn it off. On by default (30 s / 10 s). */
  heartbeat?: HeartbeatOptions | false;
  /** Milliseconds `close()` waits for the closing handshake before aborting. Default 5000. */
  closeTimeout?: number;
  /** Write-buffer high-water mark, bytes (see `setWriteBufferLimits`). Default 64 KiB. */
  writeHighWaterMark?: number;
  /** Write-buffer low-water mark, bytes. Default high / 4. */
  writeLowWaterMark?: number;
}

/**
 * Options of `loop.createWebSocketServer()`, with the limits every server takes:
 * `maxConnections` (default 10 000; beyond it an upgrade is answered 503) and
 * `idleTimeout` (ms without a message either way; default 0, off: the heartbeat
 * already drops dead peers, and a quiet subscriber is a normal WebSocket client).
 */
export interface WebSocketServerOptions extends WebSocketCommonOptions, ServerLimitOptions, ProxyProtocolOptions {
  /**
   * Milliseconds from the TCP connection to the upgrade request; a client that has not
   * sent it by then is dropped (counted in `server.stats().handshakeTimeouts`). Only for
   * a server that listens itself (not with `server`). Default 10 000.
   */
  handshakeTimeout?: number;
  /** Interface to listen on. Default: all interfaces. Ignored with `server`. */
  host?: string;
  /** Port to listen on; 0 picks a free one. Default 0. Ignored with `server`. */
  port?: number;
  /** Accept upgrades only for this path (the query string is ignored); others get 404. Default: any path. */
  path?: string;
  /**
   * Share an existing HTTP(S) server instead of listening: the WebSocket server handles
   * its `'upgrade'` events. Closing the WebSocket server leaves that server running.
   */
  server?: HttpServer;
  /** Serve WebSockets over TLS (wss:) with these options (key, cert, ...). Not with `server`. */
  tls?: TlsOptions & SecureContextOptions;
  /** Picks the subprotocol from those the client offers; return false for none. */
  handleProtocols?: (protocols: Set<string>, request: IncomingMessage) => string | false;
  /** Accepts or refuses each handshake (origin checks, authentication). */
  verifyClient?: VerifyClient;
  /** listen() backlog. Default Node's (511). */
  backlog?: number;
  /** Start accepting at once. Default true; otherwise call `startServing()` or `serveForever()`. */
  startServing?: boolean;
}

/** Options of `loop.createWebSocketConnection()`. */
export interface WebSocketConnectOptions extends WebSocketCommonOptions {
  /** Subprotocols to offer (`Sec-WebSocket-Protocol`). */
  protocols?: string | string[];
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** The `Origin` header. */
  origin?: string;
  /** TLS options for a `wss:` URL (ca, cert, key, rejectUnauthorized, servername, ...). */
  tls?: TlsConnectionOptions;
  /** Milliseconds the opening handshake may take. Default 10 000. */
  handshakeTimeout?: number;
  /** Aborts the connection attempt (and, once open, nothing: close the transport). */
  signal?: AbortSignal;
}

/** Resolved heartbeat settings. */
export interface ResolvedHeartbeat {
  interval: number;
  timeout: number;
}

/** The resolved settings a transport needs. */
export interface TransportSettings {
  heartbeat: ResolvedHeartbeat | null;
  closeTimeout: number;
  high: number;
  low: number;
  /** Server connections: close after this many ms without a message either way (0: never). */
  idleTimeout?: number;
}

function checkObject(what: string, v: unknown): void {
  if (v !== undefined && (v === null || typeof v !== 'object')) throw new InvalidArgumentError(`${what} must be an object`);
}

function checkMs(name: string, v: unknown, allowZero = false): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    throw new InvalidArgumentError(`${name} must be a number of milliseconds ${allowZero ? '>= 0' : '> 0'}, got ${String(v)}`);
  }
}

function checkFunction(name: string, v: unknown): void {
  if (v !== undefined && typeof v !== 'function') throw new InvalidArgumentError(`${name} must be a function`);
}

/** Validates the common options and resolves what the transport needs. */
export function resolveCommon(o: WebSocketCommonOptions, where: string): TransportSettings & { maxPayload: number; perMessageDeflate: boolean | Record<string, unknown> } {
  const { maxPayload = DEFAULT_MAX_PAYLOAD, perMessageDeflate = false, heartbeat, closeTimeout = DEFAULT_CLOSE_TIMEOUT } = o;
  if (!Number.isSafeInteger(maxPayload) || maxPayload <= 0) {
    throw new InvalidArgumentError(`${where}: maxPayload must be a positive integer number of bytes, got ${String(maxPayload)}`);
  }
  if (typeof perMessageDeflate !== 'boolean' && (perMessageDeflate === null || typeof perMessageDeflate !== 'object')) {
    throw new InvalidArgumentError(`${where}: perMessageDeflate must be a boolean or ws's options object`);
  }
  checkMs(`${where}: closeTimeout`, closeTimeout);
  let hb: ResolvedHeartbeat | null = null;
  if (heartbeat !== false) {
    checkObject(`${where}: heartbeat`, heartbeat);
    const interval = heartbeat?.interval ?? DEFAULT_HEARTBEAT_INTERVAL;
    const timeout = heartbeat?.timeout ?? DEFAULT_HEARTBEAT_TIMEOUT;
    checkMs(`${where}: heartbeat.interval`, interval);
    checkMs(`${where}: heartbeat.timeout`, timeout);
    hb = { interval, timeout };
  }
  const [high, low] = resolveWaterMarks(o.writeHighWaterMark, o.writeLowWaterMark);
  return { maxPayload, perMessageDeflate, heartbeat: hb, closeTimeout, high, low };
}

/** Validates server options. Throws {@link InvalidArgumentError}. */
export function validateServerOptions(o: WebSocketServerOptions): void {
  checkObject('createWebSocketServer() options', o);
  const { host, port, path, server, tls, handleProtocols, verifyClient, backlog, startServing } = o;
  if (host !== undefined && typeof host !== 'string') throw new InvalidArgumentError('createWebSocketServer(): host must be a string');
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    throw new InvalidArgumentError(`createWebSocketServer(): port must be an integer in 0..65535, got ${String(port)}`);
  }
  if (path !== undefined && (typeof path !== 'string' || !path.startsWith('/'))) {
    throw new InvalidArgumentError(`createWebSocketServer(): path must be a string starting with '/', got ${String(path)}`);
  }
  if (server !== undefined && (server === null || typeof (server as { on?: unknown }).on !== 'function')) {
    throw new InvalidArgumentError('createWebSocketServer(): server must be an http.Server or https.Server');
  }
  if (server !== undefined && o.proxyProtocol !== undefined) {
    throw new InvalidArgumentError('createWebSocketServer(): proxyProtocol is for a server that listens itself, not with server (the HTTP server reads its connections)');
  }
  if (server !== undefined && (host !== undefined || port !== undefined || tls !== undefined)) {
    throw new InvalidArgumentError('createWebSocketServer(): give either server or host/port/tls, not both');
  }
  checkObject('createWebSocketServer(): tls', tls);
  checkFunction('createWebSocketServer(): handleProtocols', handleProtocols);
  checkFunction('createWebSocketServer(): verifyClient', verifyClient);
  if (backlog !== undefined && !(Number.isInteger(backlog) && backlog > 0)) throw new InvalidArgumentError('createWebSocketServer(): backlog must be a positive integer');
  if (startServing !== undefined && typeof startServing !== 'boolean') throw new InvalidArgumentError('createWebSocketServer(): startServing must be a boolean');
  checkMs('createWebSocketServer(): handshakeTimeout', o.handshakeTimeout);
}

/** Validates client options and the URL; returns the parsed URL. Throws {@link InvalidArgumentError}. */
export function validateConnectOptions(url: unknown, o: WebSocketConnectOptions): URL {
  checkObject('createWebSocketConnection() options', o);
  let parsed: URL;
  try {
    parsed = url instanceof URL ? url : new URL(String(url));
  } catch {
    throw new InvalidArgumentError(`createWebSocketConnection(): invalid URL ${String(url)}`);
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw new InvalidArgumentError(`createWebSocketConnection(): the URL must start with ws: or wss:, got ${parsed.protocol}`);
  }
  const { protocols, headers, origin, tls, handshakeTimeout, signal } = o;
  if (protocols !== undefined) {
    const list = Array.isArray(protocols) ? protocols : [protocols];
    for (const p of list) {
      if (typeof p !== 'string' || !/^[!#$%&'*+\-.0-9A-Z^_`|a-z~]+$/.test(p)) {
        throw new InvalidArgumentError(`createWebSocketConnection(): invalid subprotocol ${String(p)}`);
      }
    }
    if (new Set(list).size !== list.length) throw new InvalidArgumentError('createWebSocketConnection(): duplicated subprotocol');
  }
  checkObject('createWebSocketConnection(): headers', headers);
  if (origin !== undefined && typeof origin !== 'string') throw new InvalidArgumentError('createWebSocketConnection(): origin must be a string');
  checkObject('createWebSocketConnection(): tls', tls);
  if (tls !== undefined && parsed.protocol !== 'wss:') throw new InvalidArgumentError('createWebSocketConnection(): tls options need a wss: URL');
  checkMs('createWebSocketConnection(): handshakeTimeout', handshakeTimeout);
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new InvalidArgumentError('createWebSocketConnection(): signal must be an AbortSignal');
  return parsed;
}
