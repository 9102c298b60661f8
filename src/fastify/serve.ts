/**
 * `serveFastify(app, { host, port })`: listens and makes the app one of the loop's
 * servers, with the lifecycle every protoloop server has (`close`, `waitClosed`,
 * `serveForever`, `shutdown`, `await using`).
 * @module
 */
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { InvalidArgumentError, InvalidStateError } from '../errors.ts';
import { outsideTask } from '../loop/internal.ts';
import { getRunningLoop } from '../loop/loop.ts';
import { BaseServer, type ServerClient } from '../transports/net/server.ts';
import { proxySettings, readProxyHeaderFirst, type ProxyProtocolOptions, type ProxySettings } from '../transports/net/proxy-protocol.ts';
import type { FastifyAdapter } from './adapter.ts';
import { declaredRoutes, protoloopFastify, type ProtoloopFastifyOptions } from './plugin.ts';

/**
 * Options of {@link serveFastify}. Behind an L4 load balancer, `proxyProtocol` and
 * `trustedProxies` (as for `createServer()`) read each connection's PROXY header first:
 * `request.ip` (and `request.socket.remoteAddress`) is then the client the header named.
 */
export interface ServeFastifyOptions extends ProxyProtocolOptions {
  /** Interface to listen on. Default Fastify's (`localhost`). */
  host?: string;
  /** Port; 0 picks a free one. Default 0. */
  port?: number;
  /** listen() backlog. Default Node's (511). */
  backlog?: number;
  /** Options for the plugin, when `serveFastify` registers it (the app has not). */
  plugin?: ProtoloopFastifyOptions;
  /**
   * ms a client gets to send a whole request (headers and body); past it the request is
   * answered 408 and its connection closed (Node's `server.requestTimeout`). Default
   * 60 000 ms (`DEFAULT_REQUEST_TIMEOUT`) unless the app set its own (`Fastify({
   * requestTimeout })`); `0` turns it off. Fastify's own default, 0, reads as "not set":
   * pass `requestTimeout: 0` here to really have none.
   */
  requestTimeout?: number;
  /**
   * How often (ms) Node checks connections for `requestTimeout` and `headersTimeout`,
   * so a cut comes at most this late. Default 2 000 ms
   * (`DEFAULT_CONNECTIONS_CHECKING_INTERVAL`) unless the app's server has its own (a `serverFactory` that set it).
   */
  connectionsCheckingInterval?: number;
}

/** Default `requestTimeout` of {@link serveFastify}, ms. */
export const DEFAULT_REQUEST_TIMEOUT = 60_000;
/** Default `connectionsCheckingInterval` of {@link serveFastify}, ms. */
export const DEFAULT_CONNECTIONS_CHECKING_INTERVAL = 2_000;
/** Node's own default of `connectionsCheckingInterval`: the value an app that did not choose has. */
const NODE_CHECKING_INTERVAL = 30_000;

/**
 * The connections of the app, as one client of its server: closing them closes the
 * idle keep-alive connections, aborting them drops every connection.
 */
class AppConnections implements ServerClient {
  readonly #server: FastifyServer;
  constructor(server: FastifyServer) {
    this.#server = server;
  }
  close(): void {
    this.#server.app.protoloop.closeIdleConnections();
  }
  abort(): void {
    this.#server.httpServer.closeAllConnections?.();
  }
}

/**
 * A Fastify app listening as a protoloop server. `close()` closes the app (see the
 * plugin: in-flight handlers get `closeTimeout` ms) and resolves once it is closed;
 * `waitClosed()` resolves once it is closed and its connections are gone. Closing the
 * loop or ending `run()` closes it too.
 */
export class FastifyServer extends BaseServer {
  /** The app. */
  readonly app: FastifyInstance;
  readonly #adapter: FastifyAdapter;
  readonly #listen: { host?: string; port: number; backlog?: number };
  readonly #timeouts: Timeouts;
  readonly #connections: AppConnections;
  #address: AddressInfo | null = null;
  /** The app's close, once {@link close} started it. */
  #stopped: Promise<void> | null = null;
  readonly #proxy: ProxySettings | null;
  /** With `proxyProtocol`: the connections whose PROXY header is on the way. */
  #readingHeader: Set<Socket> | null = null;

  /** @internal Use {@link serveFastify}. */
  constructor(app: FastifyInstance, listen: { host?: string; port: number; backlog?: number }, timeouts: Timeouts = {}, proxy: ProxySettings | null = null) {
    super(app.protoloop.loop);
    this.#proxy = proxy;
    this.app = app;
    this.#adapter = app.protoloop;
    this.#listen = listen;
    this.#timeouts = timeouts;
    this.#connections = new AppConnections(this);
  }

  /** @internal Fastify's HTTP server. */
  get httpServer(): HttpServer {
    return this.app.server as HttpServer;
  }

  protected async listen(): Promise<void> {
    const http = this.httpServer;
    const { requestTimeout, connectionsCheckingInterval } = this.#timeouts;
    // Fastify leaves requestTimeout at 0: a client trickling a body would hold its
    // connection for ever (slowloris). 0 is also what an app that chose nothing has.
    if (requestTimeout !== undefined) http.requestTimeout = requestTimeout;
    else if (http.requestTimeout === 0) http.requestTimeout = DEFAULT_REQUEST_TIMEOUT;
    // Node's own rule (headersTimeout defaults to min(60 s, requestTimeout)): with
    // headersTimeout above requestTimeout, Node does not enforce requestTimeout.
    if (http.requestTimeout > 0 && http.headersTimeout > http.requestTimeout) http.headersTimeout = http.requestTimeout;
    if (!http.listening) {
      // The option of http.createServer() is kept as an undocumented field, which Node
      // reads when the server starts listening (test/fastify/timeouts.test.ts checks it).
      // Without the field (another Node), Node's 30 s interval stays.
      const h = http as HttpServer & { connectionsCheckingInterval?: unknown };
      if (typeof h.connectionsCheckingInterval === 'number') {
        if (connectionsCheckingInterval !== undefined) h.connectionsCheckingInterval = connectionsCheckingInterval;
        else if (h.connectionsCheckingInterval === NODE_CHECKING_INTERVAL) h.connectionsCheckingInterval = DEFAULT_CONNECTIONS_CHECKING_INTERVAL;
      }
      // Behind a proxy: each connection's PROXY header is read before HTTP sees it.
      if (this.#proxy !== null) this.#readingHeader = readProxyHeaderFirst(http, this.#proxy, (err) => this.counters.badHandshake(`PROXY header: ${err.message}`));
      // Outside any task: the server's requests must not inherit the caller's context.
      await outsideTask(() => this.app.listen(this.#listen));
    }
    const a = this.httpServer.address();
    this.#address = a !== null && typeof a === 'object' ? a : null;
    this.attach(this.#connections);
    this.track('Fastify server');
    // However the app closes (app.close(), run() ending), the server follows.
    this.#adapter.waitClosed().then(
      () => this.close(),
      () => this.close(),
    );
  }

  /**
   * Stops accepting and closes the app (`app.close()`): in-flight handlers get the
   * plugin's `closeTimeout` to answer, those still running then are cancelled and
   * answered 503. Resolves once the app is closed, so after `await server.close()`
   * every request that was in flight has been answered (returning from main at once is
   * fine too: run() waits for the close before it cancels the tasks left). Idempotent;
   * never rejects (a failing close is reported to the loop's exception handler).
   */
  // BaseServer's callers ignore the promise, which never rejects: the override only adds something to await.
  // eslint-disable-next-line @typescript-eslint/no-misused-promises
  override close(): Promise<void> {
    super.close();
    return this.#stopped ?? Promise.resolve();
  }

  protected stopListening(): void {
    for (const socket of this.#readingHeader ?? []) socket.destroy();
    this.#readingHeader?.clear();
    this.#stopped = this.#adapter.close().then(
      () => this.detach(this.#connections),
      (exception: unknown) => {
        this.loop.callExceptionHandler({ message: 'closing a Fastify app failed', exception, server: this });
        this.detach(this.#connections);
      },
    );
  }

  /** Where the app listens, or null before it does. */
  address(): AddressInfo | null {
    return this.#address;
  }

  /** `http://host:port` (IPv6 in brackets, a wildcard address as loopback), or null before listening. */
  get url(): string | null {
    const a = this.#address;
    if (a === null) return null;
    const host = a.family === 'IPv6' ? `[${a.address === '::' ? '::1' : a.address}]` : a.address === '0.0.0.0' ? '127.0.0.1' : a.address;
    return `http://${host}:${a.port}`;
  }

  protected override channelKind(): string {
    return 'fastify';
  }

  protected describeAddress(): string {
    const a = this.#address;
    if (a === null) return `${this.#listen.host ?? 'localhost'}:${this.#listen.port}`;
    return `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }
}

/** The timeouts serveFastify sets on the app's server. @internal */
interface Timeouts {
  requestTimeout?: number;
  connectionsCheckingInterval?: number;
}

function isMs(x: unknown, min: number): boolean {
  return typeof x === 'number' && Number.isInteger(x) && x >= min && x <= 2 ** 31 - 1;
}

function validate(options: unknown): ServeFastifyOptions {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('serveFastify() options must be an object');
  const { host, port, backlog, plugin, requestTimeout, connectionsCheckingInterval } = options as ServeFastifyOptions;
  if (requestTimeout !== undefined && !isMs(requestTimeout, 0)) throw new InvalidArgumentError(`serveFastify(): requestTimeout must be an integer number of ms >= 0, got ${String(requestTimeout)}`);
  if (connectionsCheckingInterval !== undefined && !isMs(connectionsCheckingInterval, 1)) {
    throw new InvalidArgumentError(`serveFastify(): connectionsCheckingInterval must be an integer number of ms > 0, got ${String(connectionsCheckingInterval)}`);
  }
  if (host !== undefined && typeof host !== 'string') throw new InvalidArgumentError('serveFastify(): host must be a string');
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    throw new InvalidArgumentError(`serveFastify(): port must be an integer in 0..65535, got ${String(port)}`);
  }
  if (backlog !== undefined && !(Number.isInteger(backlog) && backlog > 0)) throw new InvalidArgumentError('serveFastify(): backlog must be a positive integer');
  if (plugin !== undefined && (plugin === null || typeof plugin !== 'object')) throw new InvalidArgumentError('serveFastify(): plugin must be an object');
  return options as ServeFastifyOptions;
}

/**
 * Makes `app` listen on `host`/`port` and returns it as a {@link FastifyServer} of the
 * loop: graceful shutdown (`run()` ending, `server.close()`, `server.shutdown()`)
 * covers HTTP like any other server. Sets the server's `requestTimeout` (60 s) and
 * `connectionsCheckingInterval` (2 s) unless the app chose its own, so a client that
 * stalls or trickles its request is answered 408. Registers {@link protoloopFastify} (with
 * `options.plugin`) when the app has not and has no routes yet. Call it from code the
 * loop runs.
 *
 * Throws `NoRunningLoopError` outside a running loop, `InvalidArgumentError` for bad
 * options, `InvalidStateError` when the app started, or declared routes, without the
 * plugin; rejects
 * with Fastify's error when it cannot listen.
 *
 * ```ts
 * const server = await serveFastify(app, { host: '127.0.0.1', port: 8080 });
 * console.log(`listening on ${server.url}`);
 * await server.serveForever();
 * ```
 */
export async function serveFastify(app: FastifyInstance, options: ServeFastifyOptions = {}): Promise<FastifyServer> {
  if (app === null || typeof app !== 'object' || typeof (app as { listen?: unknown }).listen !== 'function') {
    throw new InvalidArgumentError('serveFastify() needs a Fastify app');
  }
  const { host, port = 0, backlog, plugin, requestTimeout, connectionsCheckingInterval } = validate(options);
  const proxy = proxySettings(options);
  const loop = plugin?.loop ?? getRunningLoop();
  if (!app.hasDecorator('protoloop')) {
    if (app.server.listening) throw new InvalidStateError('serveFastify(): the app is already listening without protoloopFastify');
    // Load what was registered so far: the plugin may be among it.
    await app.after();
    if (!app.hasDecorator('protoloop')) {
      const routes = declaredRoutes(app);
      if (routes !== null) {
        throw new InvalidStateError(
          `serveFastify(): the app has routes but not protoloopFastify, and routes declared before the plugin cannot run as loop tasks: ` +
            `\`await app.register(protoloopFastify)\` before declaring them. Routes:\n${routes}`,
        );
      }
      await app.register(protoloopFastify, { ...plugin, loop });
    }
  }
  const server = new FastifyServer(app, { host, port, backlog }, { requestTimeout, connectionsCheckingInterval }, proxy);
  await server.startServing();
  return server;
}
