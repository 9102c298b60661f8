/**
 * The WebSocket server: an HTTP(S) server of its own (or a shared one) whose upgrade
 * requests become {@link WebSocketTransport}s with a {@link MessageProtocol} each.
 *
 * ```
 * idle --startServing()--> serving --close()--> closed --(every client gone)--> waitClosed() resolves
 * ```
 * The lifecycle (close, waitClosed, serveForever, shutdown, closeClients,
 * abortClients, `await using`) is {@link BaseServer}'s. ws runs in `noServer` mode:
 * this file owns the `'upgrade'` listener, so a wrong path gets 404, a plain HTTP
 * request 426, upgrades before `startServing()` wait (up to the backlog, then 503),
 * and on a shared server other upgrade listeners keep the paths that are not ours.
 * @module
 */
import type http from 'node:http';
import type { IncomingMessage } from 'node:http';
import { nodeHttp, nodeHttps, wsLib } from '../../loop/lazy.ts';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { WebSocketServer as WsServer, WebSocket } from 'ws';
import { InvalidArgumentError } from '../../errors.ts';
import { outsideTask } from '../../loop/internal.ts';
import type { Loop } from '../../loop/loop.ts';
import { kStartTransport } from '../../loop/symbols.ts';
import type { MessageProtocol } from '../../protocols/protocols.ts';
import { mapSocketError } from '../map-error.ts';
import { BaseServer } from '../net/server.ts';
import { resolveCommon, validateServerOptions, type TransportSettings, type VerifyClient, type VerifyClientInfo, type WebSocketServerOptions } from './options.ts';
import { serverExtra, WebSocketTransport, type TransportOwner } from './transport.ts';
import type { TimerHandle } from '../../loop/handle.ts';
import { DEFAULT_SERVER_HANDSHAKE_TIMEOUT, resolveLimits, type ServerLimits } from '../server-limits.ts';
import { proxySettings, readProxyHeaderFirst } from '../net/proxy-protocol.ts';
import { kLostExc } from '../../loop/symbols.ts';

// Every protoloop WebSocket server on one HTTP server, in creation order; one
// 'upgrade' listener dispatches by path.
const kWsServers = Symbol('protoloop.wsServers');
type OwnedHttpServer = http.Server & { [kWsServers]?: WebSocketServer[] };

/** Upgrades held before startServing(); more than this are refused with 503. */
const DEFAULT_EARLY_LIMIT = 511;

// ------------------------------------------------------------- named listeners

function httpOnUpgrade(this: OwnedHttpServer, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const servers = this[kWsServers];
  if (servers === undefined) return;
  const pathname = pathnameOf(req.url);
  for (const s of servers) {
    if (s.accepts(pathname)) {
      s.upgrade(req, socket, head);
      return;
    }
  }
  // Another upgrade listener on a shared server may own this path.
  if (this.listenerCount('upgrade') > 1) return;
  refuseUpgrade(socket, 404, `no WebSocket endpoint at ${pathname}\n`);
}

/** Plain HTTP requests to a server of our own: this port speaks WebSocket only. */
function httpOnRequest(_req: IncomingMessage, res: http.ServerResponse): void {
  const body = 'Upgrade Required: this endpoint speaks WebSocket only\n';
  res.writeHead(426, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body), Upgrade: 'websocket', Connection: 'close' });
  res.end(body);
}

function httpOnError(this: OwnedHttpServer, err: Error): void {
  // A failed listen() (EADDRINUSE, EACCES) is bind()'s to throw to the caller: not also logged.
  if (!this.listening) return;
  const s = this[kWsServers]?.[0];
  s?.loop.callExceptionHandler({ message: 'error on a WebSocket server socket', exception: mapSocketError(err), server: s });
}

const kHandshake = Symbol('protoloop.wsHandshakeTimer');
type TimedSocket = Socket & { [kHandshake]?: TimerHandle | null };

/** A TCP connection to a server that listens itself: it has handshakeTimeout ms to send its upgrade. */
function httpOnConnection(this: OwnedHttpServer, socket: TimedSocket): void {
  const s = this[kWsServers]?.[0];
  if (s === undefined) return;
  socket[kHandshake] = s.loop.callLater(s.handshakeTimeout, handshakeExpired, s, socket);
  socket.once('close', httpSocketOnClose);
}
function httpSocketOnClose(this: TimedSocket): void {
  this[kHandshake]?.cancel();
  this[kHandshake] = null;
}
function handshakeExpired(server: WebSocketServer, socket: TimedSocket): void {
  socket[kHandshake] = null;
  if (socket.destroyed) return;
  socket.destroy();
  server.counters.handshakeTimedOut(`no WebSocket upgrade within ${server.handshakeTimeout} ms`);
}
/** The upgrade request arrived: the handshake timer has done its job. */
function stopHandshakeTimer(socket: Duplex): void {
  const s = socket as TimedSocket;
  s[kHandshake]?.cancel();
  s[kHandshake] = null;
}

function destroySocket(this: Duplex): void {
  this.destroy();
}

/** Answers an upgrade request with an HTTP error and closes the socket (ws's way). */
export function refuseUpgrade(socket: Duplex, status: number, message?: string, headers?: Record<string, string>): void {
  if (socket.destroyed) return;
  const body = message ?? nodeHttp().STATUS_CODES[status] ?? 'Error';
  const all: Record<string, string | number> = { Connection: 'close', 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body), ...headers };
  socket.on('error', destroySocket);
  socket.once('finish', destroySocket);
  socket.end(`HTTP/1.1 ${status} ${nodeHttp().STATUS_CODES[status] ?? ''}\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${body}`);
}

function pathnameOf(url: string | undefined): string {
  if (url === undefined) return '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/**
 * A WebSocket server created by `loop.createWebSocketServer()`: `close()`,
 * `waitClosed()`, `serveForever()`, `shutdown()`, `closeClients()` (close code 1001),
 * `abortClients()`, `await using`, plus {@link address} and {@link url}.
 */
export class WebSocketServer extends BaseServer implements TransportOwner {
  readonly #factory: () => MessageProtocol;
  readonly #options: WebSocketServerOptions;
  readonly #settings: TransportSettings;
  readonly #http: OwnedHttpServer;
  readonly #ownsHttp: boolean;
  readonly #wss: WsServer;
  readonly #transports = new Set<WebSocketTransport>();
  #early: [IncomingMessage, Duplex, Buffer][] = [];
  #address: AddressInfo | null = null;
  readonly #limits: ServerLimits;
  /** With `proxyProtocol`: the connections whose PROXY header is on the way. */
  #readingHeader: Set<Socket> | null = null;
  /** @internal ms a client has to send its upgrade request. */
  readonly handshakeTimeout: number;

  /** @internal Use `loop.createWebSocketServer()`. */
  constructor(loop: Loop, factory: () => MessageProtocol, options: WebSocketServerOptions) {
    super(loop);
    validateServerOptions(options);
    const proxy = proxySettings(options);
    const common = resolveCommon(options, 'createWebSocketServer()');
    // WebSocket connections are not cut for silence by default: the heartbeat drops dead peers.
    this.#limits = resolveLimits(options, 'createWebSocketServer() options', 0);
    this.handshakeTimeout = options.handshakeTimeout ?? DEFAULT_SERVER_HANDSHAKE_TIMEOUT;
    this.#factory = factory;
    this.#options = options;
    this.#settings = { ...common, idleTimeout: this.#limits.idleTimeout };
    this.#ownsHttp = options.server === undefined;
    const wsOptions = {
      noServer: true,
      clientTracking: false,
      maxPayload: common.maxPayload,
      perMessageDeflate: common.perMessageDeflate,
      closeTimeout: common.closeTimeout,
      autoPong: true,
      handleProtocols: options.handleProtocols === undefined ? undefined : this.#handleProtocols,
      verifyClient: options.verifyClient === undefined ? undefined : this.#verifyClient,
    };
    // ws is loaded on first use (createWebSocketServer() awaits it before constructing).
    const { WebSocketServer: WsServerClass } = wsLib.value!;
    this.#wss = outsideTask(() => new WsServerClass(wsOptions as any));
    this.#http = outsideTask((): OwnedHttpServer => {
      if (options.server !== undefined) return options.server as OwnedHttpServer;
      const srv = options.tls !== undefined ? nodeHttps().createServer(options.tls, httpOnRequest) : nodeHttp().createServer(httpOnRequest);
      // httpOnError is attached once listening: a listen error (EADDRINUSE) is bind()'s
      // rejection, not also a report to the exception handler.
      srv.on('connection', httpOnConnection);
      // Behind a proxy: each connection's PROXY header is read before HTTP sees it.
      if (proxy !== null) this.#readingHeader = readProxyHeaderFirst(srv, proxy, (err) => this.counters.badHandshake(`PROXY header: ${err.message}`));
      return srv;
    });
    const servers = this.#http[kWsServers];
    if (servers === undefined) {
      this.#http[kWsServers] = [this];
      this.#http.on('upgrade', httpOnUpgrade);
    } else {
      servers.push(this);
    }
  }

  /** @internal Binds the server's own port (nothing to do on a shared server). */
  async bind(): Promise<void> {
    if (this.#ownsHttp) {
      const { host, port = 0, backlog } = this.#options;
      const srv = this.#http;
      const fut = this.loop.createFuture<void>(`WebSocket server listen on ${host ?? '*'}:${port}`);
      const onError = (err: Error): void => {
        srv.off('listening', onListening);
        if (!fut.done()) fut.setException(mapSocketError(err, `listen on ${host ?? '*'}:${port}`));
      };
      const onListening = (): void => {
        srv.off('error', onError);
        srv.on('error', httpOnError);
        if (!fut.done()) fut.setResult(undefined);
      };
      outsideTask(() => {
        srv.once('error', onError);
        srv.once('listening', onListening);
        srv.listen({ host, port, backlog });
      });
      try {
        await fut;
      } catch (err) {
        this.#stop();
        throw err;
      }
      this.#address = srv.address() as AddressInfo;
    } else {
      const a = this.#http.address();
      this.#address = a !== null && typeof a === 'object' ? a : null;
    }
    this.track('WebSocket server');
  }

  protected async listen(): Promise<void> {
    const early = this.#early;
    this.#early = [];
    // Upgrades that arrived before serving, handled by the loop once the state says
    // 'serving' (BaseServer sets it after this promise resolves).
    if (early.length > 0) this.loop.callSoon(upgradeEarly, this, early);
    await Promise.resolve();
  }

  protected stopListening(): void {
    this.#stop();
  }

  /** Stops listening (idempotent; also when the server never served). Existing connections stay. */
  override close(): void {
    super.close();
    this.#stop();
  }

  #stopped = false;

  #stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#detachHttp();
    for (const socket of this.#readingHeader ?? []) socket.destroy();
    this.#readingHeader?.clear();
    for (const [, socket] of this.#early.splice(0)) refuseUpgrade(socket, 503);
    // Handshakes still in verifyClient are refused with 503 by ws from now on.
    this.#wss.close();
  }

  #detachHttp(): void {
    const servers = this.#http[kWsServers];
    const i = servers?.indexOf(this) ?? -1;
    if (i >= 0) servers!.splice(i, 1);
    if (servers !== undefined && servers.length === 0) {
      this.#http.off('upgrade', httpOnUpgrade);
      delete this.#http[kWsServers];
    }
    if (this.#ownsHttp) {
      this.#http.off('error', httpOnError);
      this.#http.on('error', noop);
      // Upgraded sockets no longer belong to the HTTP server: they stay open.
      this.#http.close();
    }
  }

  /** @internal Whether an upgrade for `pathname` is this server's. */
  accepts(pathname: string): boolean {
    const path = this.#options.path;
    return path === undefined || path === pathname;
  }

  /** @internal An upgrade request arrived. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    stopHandshakeTimer(socket);
    if (this.state === 'closed') {
      refuseUpgrade(socket, 503);
      return;
    }
    const max = this.#limits.maxConnections;
    if (this.clientCount >= max) {
      refuseUpgrade(socket, 503);
      this.counters.reject(max);
      return;
    }
    if (this.state === 'idle') {
      if (this.#early.length >= (this.#options.backlog ?? DEFAULT_EARLY_LIMIT)) refuseUpgrade(socket, 503);
      else this.#early.push([req, socket, head]);
      return;
    }
    try {
      this.#wss.handleUpgrade(req, socket, head, this.#onConnection);
    } catch (exception) {
      socket.destroy();
      this.loop.callExceptionHandler({ message: 'WebSocket upgrade failed', exception, server: this });
    }
  }

  #onConnection = (ws: WebSocket, req: IncomingMessage): void => {
    if (this.state !== 'serving') {
      ws.on('error', noop);
      ws.terminate();
      return;
    }
    let protocol: MessageProtocol;
    try {
      protocol = this.#factory();
    } catch (exception) {
      ws.on('error', noop);
      ws.terminate();
      this.loop.callExceptionHandler({ message: 'the protocol factory of a WebSocket server failed', exception, server: this });
      return;
    }
    this.counters.accepted++;
    const transport = new WebSocketTransport(this.loop, ws, req.socket as Socket, protocol, this.#settings, serverExtra(req), this);
    this.#transports.add(transport);
    this.attach(transport);
    transport[kStartTransport]();
  };

  /** @internal A transport delivered connectionLost. */
  transportLost(transport: WebSocketTransport): void {
    this.counters.ended(transport[kLostExc]);
    this.#transports.delete(transport);
    this.detach(transport);
  }

  #handleProtocols = (protocols: Set<string>, req: IncomingMessage): string | false => {
    try {
      return this.#options.handleProtocols!(protocols, req);
    } catch (exception) {
      this.loop.callExceptionHandler({ message: 'handleProtocols() of a WebSocket server failed', exception, server: this });
      return false;
    }
  };

  // ws calls this with a callback: a throw or a rejected promise refuses with 500.
  #verifyClient = (info: VerifyClientInfo, done: (ok: boolean, status?: number, message?: string, headers?: Record<string, string>) => void): void => {
    const user = this.#options.verifyClient as VerifyClient;
    const fail = (exception: unknown): void => {
      this.loop.callExceptionHandler({ message: 'verifyClient() of a WebSocket server failed', exception, server: this });
      done(false, 500);
    };
    try {
      if (user.length >= 2) {
        user(info, done);
        return;
      }
      const ok: unknown = (user as (i: VerifyClientInfo) => unknown)(info); // one-parameter form: its return value answers
      if (ok !== null && typeof ok === 'object' && typeof (ok as PromiseLike<unknown>).then === 'function') {
        (ok as PromiseLike<unknown>).then((v) => done(Boolean(v)), fail);
      } else {
        done(Boolean(ok));
      }
    } catch (exception) {
      fail(exception);
    }
  };

  /** Closes every client with the closing handshake, close code 1001 (going away). */
  override closeClients(): void {
    for (const t of [...this.#transports]) t.close(1001, 'server shutting down');
  }

  /** The live client transports (a copy). */
  get clients(): WebSocketTransport[] {
    return [...this.#transports];
  }

  /** Where the server listens (`{ address, port, family }`), or null for a shared server not yet listening. */
  address(): AddressInfo | null {
    if (this.#address === null && !this.#ownsHttp) {
      const a = this.#http.address();
      if (a !== null && typeof a === 'object') this.#address = a;
    }
    return this.#address;
  }

  /** The listening addresses, as `Server.sockets` gives them. */
  get sockets(): AddressInfo[] {
    const a = this.state === 'closed' ? null : this.address();
    return a === null ? [] : [a];
  }

  /** A URL clients can use (`ws://host:port/path`, `wss:` with TLS), or null before the server listens. */
  get url(): string | null {
    const a = this.address();
    if (a === null) return null;
    const host = a.family === 'IPv6' ? `[${a.address === '::' ? '::1' : a.address}]` : a.address === '0.0.0.0' ? '127.0.0.1' : a.address;
    const secure = this.#options.tls !== undefined || this.#http instanceof nodeHttps().Server;
    return `${secure ? 'wss' : 'ws'}://${host}:${a.port}${this.#options.path ?? '/'}`;
  }

  protected override channelKind(): string {
    return 'websocket';
  }

  protected describeAddress(): string {
    const a = this.#address;
    const path = this.#options.path ?? '/';
    if (a === null) return `${this.#options.host ?? '*'}:${this.#options.port ?? 0}${path}`;
    return `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}${path}`;
  }
}

function noop(): void {}

function upgradeEarly(s: WebSocketServer, early: [IncomingMessage, Duplex, Buffer][]): void {
  for (const [req, socket, head] of early) s.upgrade(req, socket, head);
}

/**
 * Creates a WebSocket server and (unless `startServing: false`) starts serving.
 * Rejects with a `ConnectionError` when the port cannot be bound; throws
 * `InvalidArgumentError` for bad options.
 */
export async function createWebSocketServer(loop: Loop, protocolFactory: () => MessageProtocol, options: WebSocketServerOptions = {}): Promise<WebSocketServer> {
  if (typeof protocolFactory !== 'function') throw new InvalidArgumentError('createWebSocketServer() needs a protocol factory function');
  if (wsLib.value === undefined) await wsLib.load();
  const server = new WebSocketServer(loop, protocolFactory, options ?? {});
  await server.bind();
  if (options.startServing !== false) await server.startServing();
  return server;
}
