/**
 * An in-memory network (turmoil's model): servers and clients made through the normal
 * API with a `network` option, bytes moved on the loop's clock, and faults — latency,
 * bandwidth, partitions, per-link stalls and resets.
 *
 * ```
 * MemoryNetwork --createServer({ network, host, port })--> MemoryServer (host:port in the table)
 *               --createConnection({ network, host, port })--> MemoryLink: two Pipes, two MemoryTransports
 * ```
 * @module
 */
import { inspect } from 'node:util';
import { ConnectionError, ConnectionRefusedError, InvalidArgumentError, InvalidStateError } from '../errors.ts';
import type { Future } from '../loop/future.ts';
import { kNetworkConnect, kNetworkListen } from '../loop/symbols.ts';
import type { Loop } from '../loop/loop.ts';
import type { BaseProtocol } from '../protocols/protocols.ts';
import type { Network, NetworkConnectOptions, NetworkListenOptions } from '../transports/network.ts';
import { BaseServer } from '../transports/net/server.ts';
import { MemoryTransport, type MemoryAddress, type MemoryOwner } from './memory-transport.ts';
import { Pipe } from './pipe.ts';

/** The first port handed out when a server asks for port 0 or a client has no `localPort`. */
const FIRST_EPHEMERAL_PORT = 49152;

function checkPort(port: unknown, what: string): number {
  if (!(typeof port === 'number' && Number.isInteger(port) && port >= 0 && port <= 65535)) {
    throw new InvalidArgumentError(`${what}.port must be an integer from 0 to 65535, got ${String(port)}`);
  }
  return port;
}

function checkHost(host: unknown, what: string): string {
  if (typeof host !== 'string' || host === '') throw new InvalidArgumentError(`${what}.host must be a non-empty string, got ${inspect(host)}`);
  return host;
}

function settle(fut: Future<void>): void {
  if (!fut.done()) fut.setResult(undefined);
}

/** Awaits `fut`, rejecting with the signal's reason if `signal` aborts first. */
async function awaitWithSignal(fut: Future<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return fut;
  const onAbort = (): void => {
    if (!fut.done()) fut.setException(signal.reason ?? new DOMException('The operation was aborted', 'AbortError'));
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await fut;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * A simulated network on one loop. Hosts are names (`'db'`, `'10.0.0.1'`, anything);
 * a server listens on `host:port`, a client connects to it.
 *
 * ```ts
 * import { Protocol, run, type Transport } from 'protoloop';
 * import { MemoryNetwork, VirtualClock } from 'protoloop/testing';
 *
 * class Echo extends Protocol {
 *   #t: Transport | null = null;
 *   override connectionMade(t: Transport): void { this.#t = t; }
 *   override dataReceived(data: Buffer): void { this.#t!.write(data); }
 * }
 *
 * await run(async (loop) => {
 *   const network = new MemoryNetwork();
 *   const server = await loop.createServer(() => new Echo(), { network, host: 'db', port: 5432 });
 *   const [client] = await loop.createConnection(() => new Protocol(), { network, host: 'db', port: 5432 });
 *   console.log(client.getExtraInfo('peername')); // { address: 'db', port: 5432, family: 'memory' }
 *   client.close();
 *   server.close();
 *   await server.waitClosed();
 * }, { clock: new VirtualClock({ autojump: 0 }) });
 * ```
 */
export class MemoryNetwork implements Network {
  readonly #servers = new Map<string, MemoryServer>();
  readonly #links = new Set<MemoryLink>();
  #nextPort = FIRST_EPHEMERAL_PORT;
  #latency = 0;
  #bandwidth = Infinity;
  #partitioned = false;
  /** Connects waiting for the partition to heal. */
  #healWaiters = new Set<Future<void>>();

  /**
   * Sets the one-way latency of every link, in ms (>= 0), for bytes sent from now on;
   * connecting takes one latency too. Without an argument, returns it. Default 0.
   */
  latency(ms?: number): number {
    if (ms !== undefined) {
      if (!(typeof ms === 'number' && Number.isFinite(ms) && ms >= 0)) throw new InvalidArgumentError(`latency() needs a finite number of milliseconds >= 0, got ${String(ms)}`);
      this.#latency = ms;
    }
    return this.#latency;
  }

  /**
   * Sets the bandwidth of each direction of every link, in bytes per second (> 0,
   * `Infinity` for none). Without an argument, returns it. Default Infinity.
   */
  bandwidth(bytesPerSecond?: number): number {
    if (bytesPerSecond !== undefined) {
      if (!(typeof bytesPerSecond === 'number' && bytesPerSecond > 0)) throw new InvalidArgumentError(`bandwidth() needs a number of bytes per second > 0, got ${String(bytesPerSecond)}`);
      this.#bandwidth = bytesPerSecond;
    }
    return this.#bandwidth;
  }

  /**
   * Cuts every link: no byte passes and no connection is made until {@link heal}.
   * Connections stay open; writes queue up (and backpressure builds) as they would on a
   * real link whose packets are lost.
   */
  partition(): void {
    this.#partitioned = true;
  }

  /** Ends a {@link partition}: what was held moves on. */
  heal(): void {
    if (!this.#partitioned) return;
    this.#partitioned = false;
    for (const link of this.#links) link.unblocked();
    for (const w of this.#healWaiters) settle(w);
    this.#healWaiters.clear();
  }

  /** Whether the network is partitioned. */
  isPartitioned(): boolean {
    return this.#partitioned;
  }

  /** The open links (a link goes once both of its ends are closed). */
  connections(): MemoryLink[] {
    return [...this.#links];
  }

  /** Where servers listen: `host:port` for each. */
  listeners(): string[] {
    return [...this.#servers.keys()];
  }

  #port(): number {
    while (this.#nextPort <= 65535) {
      const p = this.#nextPort++;
      let used = false;
      for (const key of this.#servers.keys()) if (key.endsWith(`:${p}`)) used = true;
      if (!used) return p;
    }
    throw new ConnectionError(ConnectionError.GENERIC_CODE, 'the memory network ran out of ports', { code: 'EADDRNOTAVAIL' });
  }

  /** @internal `loop.createServer(factory, { network })`. */
  async [kNetworkListen](loop: Loop, protocolFactory: () => BaseProtocol, options: NetworkListenOptions): Promise<MemoryServer> {
    const what = 'createServer() options';
    if (typeof protocolFactory !== 'function') throw new InvalidArgumentError('createServer() needs a protocol factory (a function returning a Protocol or BufferedProtocol)');
    const hosts = options.host === undefined ? ['localhost'] : Array.isArray(options.host) ? options.host : [options.host];
    if (hosts.length !== 1) throw new InvalidArgumentError(`${what}.host: a memory server listens on one host`);
    const host = checkHost(hosts[0], what);
    let port = checkPort(options.port ?? 0, what);
    if (port === 0) port = this.#port();
    const key = `${host}:${port}`;
    if (this.#servers.has(key)) throw new ConnectionError(ConnectionError.GENERIC_CODE, `listen on ${key}: address already in use (memory network)`, { code: 'EADDRINUSE' });
    const server = new MemoryServer(loop, this, protocolFactory, { address: host, port, family: 'memory' });
    this.#servers.set(key, server);
    if (options.startServing !== false) await server.startServing();
    return server;
  }

  /** @internal A server closed. */
  unlisten(server: MemoryServer, address: MemoryAddress): void {
    const key = `${address.address}:${address.port}`;
    if (this.#servers.get(key) === server) this.#servers.delete(key);
  }

  /** @internal `loop.createConnection(factory, { network })`. */
  async [kNetworkConnect](loop: Loop, protocolFactory: () => BaseProtocol, options: NetworkConnectOptions): Promise<[MemoryTransport, BaseProtocol]> {
    const what = 'createConnection() options';
    if (typeof protocolFactory !== 'function') throw new InvalidArgumentError('createConnection() needs a protocol factory (a function returning a Protocol or BufferedProtocol)');
    const port = checkPort(options.port, what);
    const host = checkHost(options.host ?? 'localhost', what);
    const localAddress = checkHost(options.localAddress ?? 'localhost', `${what} localAddress`);
    const { signal } = options;
    signal?.throwIfAborted();
    await this.#handshake(loop, signal);
    const server = this.#servers.get(`${host}:${port}`);
    if (server === undefined || server.state === 'closed') {
      throw new ConnectionRefusedError(`connect to ${host}:${port}: connection refused (nothing listens there on the memory network)`, { code: 'ECONNREFUSED' });
    }
    if (server.loop !== loop) throw new InvalidStateError(`connect to ${host}:${port}: the memory server runs on another loop`);
    const protocol = protocolFactory();
    const local: MemoryAddress = { address: localAddress, port: options.localPort === undefined ? this.#port() : checkPort(options.localPort, what), family: 'memory' };
    const link = new MemoryLink(this, loop, local, { address: host, port, family: 'memory' });
    this.#links.add(link);
    const waiter = loop.createFuture<void>('connectionMade');
    const transport = link.open('client', protocol, waiter, undefined);
    server.accept(link);
    try {
      await awaitWithSignal(waiter, signal);
    } catch (err) {
      transport.abort();
      throw err;
    }
    return [transport, protocol];
  }

  /** The SYN: one latency, and it waits out a partition. */
  async #handshake(loop: Loop, signal: AbortSignal | undefined): Promise<void> {
    for (;;) {
      if (this.#partitioned) {
        const fut = loop.createFuture<void>('memory network partition to heal');
        this.#healWaiters.add(fut);
        try {
          await awaitWithSignal(fut, signal);
        } finally {
          this.#healWaiters.delete(fut);
        }
      }
      if (this.#latency > 0) {
        const fut = loop.createFuture<void>(`connect latency ${this.#latency} ms`);
        const timer = loop.callLater(this.#latency, settle, fut);
        try {
          await awaitWithSignal(fut, signal);
        } finally {
          timer.cancel();
        }
      }
      if (!this.#partitioned) return;
    }
  }

  /** @internal A link's ends are both closed. */
  forget(link: MemoryLink): void {
    this.#links.delete(link);
  }

  toString(): string {
    return `<MemoryNetwork servers=${this.#servers.size} links=${this.#links.size}${this.#partitioned ? ' partitioned' : ''} latency=${this.#latency}ms>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * One connection on a {@link MemoryNetwork}: a client end and a server end, each a
 * {@link MemoryTransport}. Listed by `network.connections()`; faults apply to it alone.
 * It is its pipe's `PipeLink` structurally (internal members, stripped from the .d.ts).
 */
export class MemoryLink {
  readonly #network: MemoryNetwork;
  readonly #loop: Loop;
  /** The client's address. */
  readonly client: MemoryAddress;
  /** The server's address. */
  readonly server: MemoryAddress;
  /** @internal Client to server. */
  readonly up: Pipe;
  /** @internal Server to client. */
  readonly down: Pipe;
  #stalled = false;
  #open = new Set<MemoryTransport>();
  #ends: MemoryTransport[] = [];

  /** @internal */
  constructor(network: MemoryNetwork, loop: Loop, client: MemoryAddress, server: MemoryAddress) {
    this.#network = network;
    this.#loop = loop;
    this.client = client;
    this.server = server;
    this.up = new Pipe(loop, this);
    this.down = new Pipe(loop, this);
  }

  /** @internal Makes one end. */
  open(side: 'client' | 'server', protocol: BaseProtocol, waiter: Future<void> | undefined, owner: MemoryOwner | undefined): MemoryTransport {
    const client = side === 'client';
    const t = new MemoryTransport(this.#loop, protocol, {
      out: client ? this.up : this.down,
      in: client ? this.down : this.up,
      sockname: client ? this.client : this.server,
      peername: client ? this.server : this.client,
      extra: { network: this.#network, link: this },
      owner,
      waiter,
      onClosed: (end) => this.#closed(end),
    });
    this.#open.add(t);
    this.#ends.push(t);
    if (this.#ends.length === 2) {
      const [c, s] = this.#ends as [MemoryTransport, MemoryTransport];
      this.up.attach(c, s);
      this.down.attach(s, c);
      this.up.schedule();
      this.down.schedule();
    }
    return t;
  }

  /** The transport at one end (the server's once it accepted the connection). */
  end(side: 'client' | 'server'): MemoryTransport | undefined {
    return this.#ends[side === 'client' ? 0 : 1];
  }

  #closed(end: MemoryTransport): void {
    this.#open.delete(end);
    if (this.#open.size === 0) {
      this.#network.forget(this);
      // Nobody is left to receive: what is still on the wire (a last FIN) goes nowhere.
      this.up.kill();
      this.down.kill();
    }
  }

  /**
   * Resets the connection: both ends get `connectionLost(ConnectionResetError)`,
   * whatever was buffered or in flight is dropped.
   */
  reset(): void {
    this.up.kill();
    this.down.kill();
    for (const t of [...this.#ends]) t.peerReset();
  }

  /** Holds every byte of this link (both directions) until {@link release}; the connection stays open. */
  stall(): void {
    this.#stalled = true;
  }

  /** Ends a {@link stall}. */
  release(): void {
    if (!this.#stalled) return;
    this.#stalled = false;
    this.unblocked();
  }

  /** Whether the link is stalled. */
  isStalled(): boolean {
    return this.#stalled;
  }

  /** Whether at least one end is still open. */
  isOpen(): boolean {
    return this.#open.size > 0;
  }

  /** @internal */
  unblocked(): void {
    this.up.schedule();
    this.down.schedule();
  }

  /** @internal */
  blocked(): boolean {
    return this.#stalled || this.#network.isPartitioned();
  }

  /** @internal */
  latency(): number {
    return this.#network.latency();
  }

  /** @internal */
  bandwidth(): number {
    return this.#network.bandwidth();
  }

  toString(): string {
    return `<MemoryLink ${this.client.address}:${this.client.port}<->${this.server.address}:${this.server.port} open=${this.#open.size}${this.#stalled ? ' stalled' : ''}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

/** A server on a {@link MemoryNetwork}, with the lifecycle every protoloop server has. */
export class MemoryServer extends BaseServer {
  readonly #network: MemoryNetwork;
  readonly #factory: () => BaseProtocol;
  readonly #address: MemoryAddress;
  /** Connections made before startServing(), waiting (a listening socket's backlog). */
  #early: MemoryLink[] = [];
  readonly #owner: MemoryOwner = { attach: (t) => this.attach(t), detach: (t) => this.detach(t) };

  /** @internal Use `loop.createServer(factory, { network })`. */
  constructor(loop: Loop, network: MemoryNetwork, factory: () => BaseProtocol, address: MemoryAddress) {
    super(loop);
    this.#network = network;
    this.#factory = factory;
    this.#address = address;
    this.track();
  }

  /** Where the server listens (`[{ address, port, family: 'memory' }]`); empty once closed. */
  get sockets(): MemoryAddress[] {
    return this.state === 'closed' ? [] : [{ ...this.#address }];
  }

  protected async listen(): Promise<void> {
    const early = this.#early;
    this.#early = [];
    // On the next iteration: startServing() marks the server serving first.
    if (early.length > 0) this.loop.callSoon(acceptEarly, this, early);
  }

  protected stopListening(): void {}

  override close(): void {
    if (this.state === 'closed') return;
    this.#network.unlisten(this, this.#address);
    super.close();
    for (const link of this.#early.splice(0)) link.reset();
  }

  /** @internal A client connected. */
  accept(link: MemoryLink): void {
    if (this.state === 'closed') {
      link.reset();
      return;
    }
    if (this.state === 'idle') {
      this.#early.push(link);
      return;
    }
    let protocol: BaseProtocol;
    try {
      protocol = this.#factory();
    } catch (exception) {
      link.reset();
      this.loop.callExceptionHandler({ message: 'the protocol factory of a server failed', exception, server: this });
      return;
    }
    link.open('server', protocol, undefined, this.#owner);
  }

  protected override channelKind(): string {
    return 'memory';
  }

  protected describeAddress(): string {
    return `${this.#address.address}:${this.#address.port}`;
  }
}

function acceptEarly(server: MemoryServer, early: MemoryLink[]): void {
  for (const link of early) server.accept(link);
}
