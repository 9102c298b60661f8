/**
 * Server objects. {@link BaseServer} holds the lifecycle every server shares (TCP, Unix,
 * TLS here; WebSocket servers extend it too): idempotent close, the set of live
 * clients, `waitClosed`, `serveForever`, graceful `shutdown`. {@link Server} adds
 * listening `net.Server`s and the transports it creates for each connection.
 *
 * ```
 * idle --startServing()--> serving --close()--> closed --(every client gone)--> waitClosed() resolves
 * idle --close()---------------------------------> closed
 * ```
 * @module
 */
import net from 'node:net';
import type tls from 'node:tls';
import { inspect } from 'node:util';
import { CancelledError, InvalidStateError } from '../../errors.ts';
import type { Future } from '../../loop/future.ts';
import { outsideTask } from '../../loop/internal.ts';
import { kDescribe } from '../../loop/symbols.ts';
import { serverCloseChannel, serverListenChannel } from '../../loop/channels.ts';
import type { Loop } from '../../loop/loop.ts';
import { trackResource, type ResourceToken } from '../../loop/resources.ts';
import { IdleSweep } from './idle-sweep.ts';
import { acceptWithOnread, tlsParentSocket } from './node-internals.ts';
import { mapSocketError } from '../map-error.ts';
import { ONREAD, SocketTransport, type StreamProtocol, type TransportOwner } from './socket-transport.ts';
import type { ServerLike } from '../transports.ts';
import { ServerCounters, type ServerLimits, type ServerStats } from '../server-limits.ts';
import { kLostExc } from '../../loop/symbols.ts';
import { kProxyAddress, readProxyHeader, readProxyHeaderFirst, type ProxySettings } from './proxy-protocol.ts';

/** What a server needs of each client connection. */
export interface ServerClient {
  close(): void;
  abort(): void;
}

/** Options of {@link BaseServer.shutdown}. */
export interface ServerShutdownOptions {
  /** How long (ms) clients may take to finish on their own before they are aborted. Default 10_000. */
  timeout?: number;
  /** Ask every client to close (flushing) at once instead of waiting for them to finish. Default false. */
  closeClients?: boolean;
}

/** The lifecycle state of a server. */
export type ServerState = 'idle' | 'serving' | 'closed';

/**
 * The lifecycle shared by every protoloop server. Subclasses implement the protected
 * `listen()` and `stopListening()`, and call `attach()`/`detach()` for each client.
 */
export abstract class BaseServer implements ServerLike {
  /** The loop the server belongs to. */
  readonly loop: Loop;
  #state: ServerState = 'idle';
  readonly #clients = new Set<ServerClient>();
  #waiters: Future<void>[] = [];
  #serving: Future<void> | null = null;
  #token: ResourceToken | null = null;
  #listening: Promise<void> | null = null;
  /** @internal What the server counts (see {@link stats}). */
  readonly counters: ServerCounters;

  constructor(loop: Loop) {
    this.loop = loop;
    this.counters = new ServerCounters(loop, () => this.toString());
  }

  /**
   * What the server counted: connections open now and accepted so far, those refused by
   * `maxConnections`, cut by `idleTimeout` or `handshakeTimeout`, dropped by their peer
   * (reset, broken pipe, WebSocket 1006) or closed for malformed input.
   */
  stats(): ServerStats {
    const c = this.counters;
    return {
      connections: this.#clients.size,
      accepted: c.accepted,
      rejected: c.rejected,
      idleClosed: c.idleClosed,
      handshakeTimeouts: c.handshakeTimeouts,
      peerDrops: c.peerDrops,
      malformed: c.malformed,
    };
  }

  /** Starts listening (binds and accepts). Called once by {@link startServing}. */
  protected abstract listen(): Promise<void>;
  /** Stops listening; existing connections stay. Called once by {@link close}. */
  protected abstract stopListening(): void;

  /** @internal Registers the server as an open resource (call once it listens). */
  protected track(kind = 'server'): void {
    if (this.#token !== null) return;
    this.#token = trackResource(this.loop, kind, this, (s) => {
      s.close();
      s.abortClients();
    });
    if (serverListenChannel.hasSubscribers) serverListenChannel.publish({ server: this, kind: this.channelKind(), address: this.describeAddress() });
  }

  /** What `protoloop:server:listen`/`close` call this server (`'tcp'`, `'websocket'`, `'fastify'`, `'memory'`). */
  protected channelKind(): string {
    return 'tcp';
  }

  /** The server's state. */
  get state(): ServerState {
    return this.#state;
  }

  /** Number of live client connections. */
  get clientCount(): number {
    return this.#clients.size;
  }

  /** Whether the server accepts connections. */
  isServing(): boolean {
    return this.#state === 'serving';
  }

  /** Starts accepting. Idempotent; throws {@link InvalidStateError} on a closed server. */
  async startServing(): Promise<void> {
    if (this.#state === 'closed') throw new InvalidStateError(`${this.toString()} is closed`);
    if (this.#state === 'serving') return;
    this.#listening ??= this.listen();
    await this.#listening;
    if (this.#state === 'idle') this.#state = 'serving';
  }

  /**
   * Starts accepting and waits until the server is closed. Cancelling the awaiting
   * task closes the server, closes its clients and waits for them, then rethrows.
   * Throws {@link InvalidStateError} if another `serveForever()` is running.
   */
  async serveForever(): Promise<void> {
    if (this.#serving !== null) throw new InvalidStateError(`serveForever() is already running on ${this.toString()}`);
    // Registered before listening: a close() while startServing() binds ends this
    // call too, and a second serveForever() meanwhile is refused.
    const fut = this.loop.createFuture<void>(`serveForever ${this.toString()}`);
    this.#serving = fut;
    try {
      await this.startServing();
      await fut;
    } catch (err) {
      if (err instanceof CancelledError) {
        this.close();
        this.closeClients();
        await this.waitClosed();
      }
      throw err;
    } finally {
      this.#serving = null;
    }
  }

  /** Stops listening. Existing connections stay open (see {@link closeClients}/{@link abortClients}). Idempotent. */
  close(): void {
    if (this.#state === 'closed') return;
    const wasListening = this.#listening !== null;
    // Read before the sockets close: a closed server has no address left to show.
    const address = this.#token !== null && serverCloseChannel.hasSubscribers ? this.describeAddress() : null;
    this.#state = 'closed';
    if (wasListening) {
      try {
        this.stopListening();
      } catch (exception) {
        this.loop.callExceptionHandler({ message: 'error while closing a server', exception, server: this });
      }
    }
    if (this.#token !== null) {
      this.#token.untrack();
      if (address !== null && serverCloseChannel.hasSubscribers) serverCloseChannel.publish({ server: this, kind: this.channelKind(), address });
    }
    const serving = this.#serving;
    if (serving !== null && !serving.done()) serving.setResult(undefined);
    this.#wakeIfDone();
  }

  /** Resolves once the server is closed and every connection it accepted is gone. */
  async waitClosed(): Promise<void> {
    if (this.#state === 'closed' && this.#clients.size === 0) return;
    const fut = this.loop.createFuture<void>(`waitClosed ${this.toString()}`);
    this.#waiters.push(fut);
    await fut;
  }

  /** Closes every open client connection gracefully (flushing what they buffered). */
  closeClients(): void {
    for (const c of [...this.#clients]) c.close();
  }

  /** Aborts every open client connection. */
  abortClients(): void {
    for (const c of [...this.#clients]) c.abort();
  }

  /**
   * Graceful shutdown: stops accepting, lets clients finish (or asks them to close,
   * with `closeClients`), and aborts those still open after `timeout` ms. Resolves once
   * every client is gone, with how many had to be aborted.
   */
  async shutdown(options: ServerShutdownOptions = {}): Promise<{ aborted: number }> {
    const timeout = options.timeout ?? 10_000;
    this.close();
    if (options.closeClients === true) this.closeClients();
    if (this.#clients.size === 0) return { aborted: 0 };
    const deadline = this.loop.createFuture<void>(`shutdown ${this.toString()}`);
    const timer = this.loop.callLater(timeout, resolveFuture, deadline);
    this.#waiters.push(deadline);
    try {
      await deadline;
    } finally {
      timer.cancel();
    }
    const aborted = this.#clients.size;
    if (aborted > 0) {
      this.abortClients();
      await this.waitClosed();
    }
    return { aborted };
  }

  /** `close()`, `closeClients()` and `waitClosed()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    this.closeClients();
    await this.waitClosed();
  }

  /** The open client connections (walked by a TCP server's idle sweep). */
  protected get clientSet(): ReadonlySet<ServerClient> {
    return this.#clients;
  }

  /** @internal A client connection starts. */
  protected attach(client: ServerClient): void {
    this.#clients.add(client);
  }

  /** @internal A client connection is gone. */
  protected detach(client: ServerClient): void {
    if (this.#clients.delete(client)) this.#wakeIfDone();
  }

  #wakeIfDone(): void {
    if (this.#state !== 'closed' || this.#clients.size > 0) return;
    for (const w of this.#waiters.splice(0)) if (!w.done()) w.setResult(undefined);
  }

  /** Where the server listens, for messages. */
  protected abstract describeAddress(): string;

  /** @internal */
  [kDescribe](): string {
    return this.toString();
  }

  toString(): string {
    return `<${this.constructor.name} ${this.describeAddress()} ${this.#state} clients=${this.#clients.size}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

function resolveFuture(f: Future<void>): void {
  if (!f.done()) f.setResult(undefined);
}

/** A factory of stream protocols, called once per accepted connection. */
export type ProtocolFactory<P> = () => P;

/** @internal How a {@link Server} listens: one entry per listening socket. */
export interface ListenSpec {
  options: net.ListenOptions;
  /** TLS server options, or undefined for plain sockets. */
  tls: tls.TlsOptions | undefined;
}

/** @internal Creates a listening net/tls server (set by tls.ts, to keep TLS out of this file). */
export type TlsServerMaker = (options: tls.TlsOptions) => net.Server;

const kServer = Symbol('protoloop.server');
type OwnedNetServer = net.Server & { [kServer]?: Server };

/** How an accepted socket is read: through onread, or through 'data' events (plain or TLS). */
type AcceptedKind = 'onread' | 'data';

function serverOnConnection(this: OwnedNetServer, socket: net.Socket): void {
  const s = this[kServer];
  if (s === undefined) socket.destroy();
  else s.acceptSocket(socket, 'data');
}
/** A TLS server's raw connection: refused at once beyond maxConnections, before any handshake work. */
function serverOnRawTlsConnection(this: OwnedNetServer, socket: net.Socket): void {
  this[kServer]?.checkCapacity(socket);
}
function serverOnSecureConnection(this: OwnedNetServer, socket: tls.TLSSocket): void {
  const s = this[kServer];
  if (s === undefined) {
    socket.destroy();
    return;
  }
  // Behind a proxy, the header was read off the TCP socket before the handshake.
  const raw = tlsParentSocket(socket);
  if (raw !== null && kProxyAddress in raw) (socket as unknown as Record<symbol, unknown>)[kProxyAddress] = (raw as unknown as Record<symbol, unknown>)[kProxyAddress];
  s.acceptSocket(socket, 'data');
}
function serverOnTlsClientError(this: OwnedNetServer, err: Error, socket: tls.TLSSocket): void {
  socket.destroy();
  const s = this[kServer];
  if (s === undefined) return;
  // A client that fails or stalls its handshake is the peer's doing: counted, logged at debug level.
  if ((err as { code?: unknown }).code === 'ERR_TLS_HANDSHAKE_TIMEOUT') s.counters.handshakeTimedOut('TLS');
  else s.counters.badHandshake(`TLS handshake failed: ${mapSocketError(err).message}`);
}
function serverOnError(this: OwnedNetServer, err: Error): void {
  const s = this[kServer];
  s?.loop.callExceptionHandler({ message: 'error on a listening socket', exception: mapSocketError(err), server: s });
}

/**
 * A TCP, Unix-socket or TLS server created by `loop.createServer()` or
 * `loop.createUnixServer()`: listening sockets plus the transports of its clients.
 */
export class Server extends BaseServer {
  readonly #factory: ProtocolFactory<StreamProtocol>;
  readonly #specs: ListenSpec[];
  readonly #makeTls: TlsServerMaker | null;
  #servers: OwnedNetServer[] = [];
  /** Connections accepted before startServing(), waiting. */
  #early: [net.Socket, AcceptedKind][] = [];
  readonly #owner: TransportOwner = {
    attach: (t) => this.attach(t),
    detach: (t) => {
      this.counters.ended(t[kLostExc]);
      this.detach(t);
    },
  };
  readonly #limits: ServerLimits;
  /** The idle timeout all the clients share (made on first need), or null when there is none. */
  #sweep: IdleSweep | null | undefined = undefined;
  /** `proxyProtocol`: each connection's PROXY header is read before it is accepted. */
  readonly #proxy: ProxySettings | null;
  /** Connections whose PROXY header is still on the way. */
  readonly #readingHeader = new Set<net.Socket>();
  /** The same, for TLS listeners (read before the handshake: see readProxyHeaderFirst). */
  readonly #tlsHeaders: Set<net.Socket>[] = [];

  /** @internal Use `loop.createServer()` / `loop.createUnixServer()`. */
  constructor(loop: Loop, factory: ProtocolFactory<StreamProtocol>, specs: ListenSpec[], makeTls: TlsServerMaker | null, limits: ServerLimits, proxy: ProxySettings | null = null) {
    super(loop);
    this.#factory = factory;
    this.#specs = specs;
    this.#makeTls = makeTls;
    this.#limits = limits;
    this.#proxy = proxy;
  }

  /**
   * The addresses the server listens on: `{ address, port, family }` for TCP, the
   * path (string) for Unix sockets. Empty once closed.
   */
  get sockets(): Array<net.AddressInfo | string> {
    const out: Array<net.AddressInfo | string> = [];
    for (const s of this.#servers) {
      const a = s.address();
      if (a !== null) out.push(a);
    }
    return out;
  }

  /** @internal Binds every listening socket; connections queue until serving. */
  async bind(): Promise<void> {
    try {
      for (const spec of this.#specs) {
        const srv = outsideTask(() => this.#makeServer(spec));
        this.#servers.push(srv);
        await listenOnce(srv, spec.options);
        // Only now: a failed listen is thrown to the caller, not also reported.
        srv.on('error', serverOnError);
        // With PROXY headers, sockets are read through 'data' events until the header is in.
        if (spec.tls === undefined && this.#proxy === null && acceptWithOnread(srv, ONREAD, (sock) => this.acceptSocket(sock, 'onread'))) srv.off('connection', serverOnConnection);
      }
    } catch (err) {
      for (const s of this.#servers) s.close();
      this.#servers = [];
      throw mapSocketError(err, `listen on ${describeListen(this.#specs)}`);
    }
    this.track();
  }

  #makeServer(spec: ListenSpec): OwnedNetServer {
    let srv: OwnedNetServer;
    if (spec.tls !== undefined) {
      srv = this.#makeTls!({ ...spec.tls, allowHalfOpen: true } as tls.TlsOptions);
      srv.on('secureConnection', serverOnSecureConnection);
      srv.on('tlsClientError', serverOnTlsClientError);
      srv.on('connection', serverOnRawTlsConnection);
      // Behind a proxy: the PROXY header comes before the TLS handshake.
      if (this.#proxy !== null) this.#tlsHeaders.push(readProxyHeaderFirst(srv, this.#proxy, (err) => this.counters.badHandshake(`PROXY header: ${err.message}`)));
    } else {
      srv = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
      srv.on('connection', serverOnConnection);
    }
    srv[kServer] = this;
    return srv;
  }

  protected async listen(): Promise<void> {
    if (this.#servers.length === 0) await this.bind();
    // Connections that arrived between bind() and now.
    const early = this.#early;
    this.#early = [];
    // On the next iteration: startServing() marks the server serving first.
    if (early.length > 0) this.loop.callSoon(acceptEarly, this, early);
  }

  protected stopListening(): void {
    for (const s of this.#servers) {
      s.close();
      s[kServer] = undefined;
    }
    this.#servers = [];
    for (const [sock] of this.#early.splice(0)) sock.destroy();
    for (const sock of this.#readingHeader) sock.destroy();
    this.#readingHeader.clear();
    for (const set of this.#tlsHeaders) {
      for (const sock of set) sock.destroy();
      set.clear();
    }
  }

  /** @internal Closes `socket` at once (and counts it) when `maxConnections` are open. Returns whether it was. */
  checkCapacity(socket: net.Socket): boolean {
    const max = this.#limits.maxConnections;
    if (this.clientCount < max) return false;
    socket.destroy();
    this.counters.reject(max);
    return true;
  }

  /** @internal A connection arrived on one of the listening sockets. */
  acceptSocket(socket: net.Socket, kind: AcceptedKind): void {
    if (this.state === 'closed') {
      socket.destroy();
      return;
    }
    if (this.checkCapacity(socket)) return;
    if (this.#proxy !== null && !(kProxyAddress in socket)) {
      this.#readHeader(socket, kind, this.#proxy);
      return;
    }
    if (this.state === 'idle') {
      // Read nothing until a transport owns the socket (an onread socket reads at once).
      socket.pause();
      this.#early.push([socket, kind]);
      return;
    }
    let protocol: StreamProtocol;
    try {
      protocol = this.#factory();
    } catch (exception) {
      socket.destroy();
      this.loop.callExceptionHandler({ message: 'the protocol factory of a server failed', exception, server: this });
      return;
    }
    this.counters.accepted++;
    new SocketTransport(this.loop, socket, protocol, { onread: kind === 'onread', owner: this.#owner, idleSweep: this.#idleSweep() });
  }

  /** The idle timeout the clients share: one loop timer for all of them (none while no client is open). */
  #idleSweep(): IdleSweep | undefined {
    if (this.#sweep === undefined) this.#sweep = this.#limits.idleTimeout > 0 ? new IdleSweep(this.loop, this.#limits.idleTimeout, this.clientSet) : null;
    return this.#sweep ?? undefined;
  }

  /**
   * Reads `socket`'s PROXY header, then accepts it. A header that is malformed, late or
   * from an untrusted peer closes that connection (counted as a bad handshake, logged
   * at debug level) and nothing else.
   */
  #readHeader(socket: net.Socket, kind: AcceptedKind, proxy: ProxySettings): void {
    this.#readingHeader.add(socket);
    readProxyHeader(socket, proxy).then(
      () => {
        if (!this.#readingHeader.delete(socket)) return;
        this.acceptSocket(socket, kind);
      },
      (err: unknown) => {
        this.#readingHeader.delete(socket);
        socket.destroy();
        this.counters.badHandshake(`PROXY header: ${(err as Error).message}`);
      },
    );
  }

  protected describeAddress(): string {
    const a = this.sockets;
    if (a.length === 0) return describeListen(this.#specs);
    return a.map((x) => (typeof x === 'string' ? x : x.family === 'IPv6' ? `[${x.address}]:${x.port}` : `${x.address}:${x.port}`)).join(',');
  }
}

function acceptEarly(server: Server, early: [net.Socket, AcceptedKind][]): void {
  for (const [sock, kind] of early) server.acceptSocket(sock, kind);
}

function describeListen(specs: ListenSpec[]): string {
  return specs.map((s) => (s.options.path !== undefined ? s.options.path : `${s.options.host ?? '*'}:${s.options.port ?? 0}`)).join(',');
}

function listenOnce(srv: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      srv.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      srv.off('error', onError);
      resolve();
    };
    srv.once('error', onError);
    srv.once('listening', onListening);
    srv.listen(options);
  });
}

