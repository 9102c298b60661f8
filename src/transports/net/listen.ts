/**
 * `createServer` and `createUnixServer`: option validation and binding.
 * @module
 */
import fs from 'node:fs';
import type net from 'node:net';
import { InvalidArgumentError } from '../../errors.ts';
import { kNetworkListen } from '../../loop/symbols.ts';
import type { Loop } from '../../loop/loop.ts';
import type { Network } from '../network.ts';
import { Server, type ListenSpec } from './server.ts';
import type { StreamProtocol } from './socket-transport.ts';
import { makeTlsServer, resolveTlsOption, type TlsServerOptions } from './tls.ts';
import { resolveLimits, type ServerLimitOptions } from '../server-limits.ts';
import { proxySettings, type ProxyProtocolOptions } from './proxy-protocol.ts';

/**
 * Options of `loop.createServer()`; with the limits every server takes (`maxConnections`,
 * `idleTimeout`) and the PROXY protocol ones (`proxyProtocol`, `trustedProxies`,
 * `proxyHeaderTimeout`; plain TCP only for now, not with `tls`).
 */
export interface ServerOptions extends ServerLimitOptions, ProxyProtocolOptions {
  /** Host(s) to listen on: a name, an address, or a list (one listening socket each). Default: every interface (`::`, dual-stack, or `0.0.0.0`). */
  host?: string | string[];
  /** TCP port. Default 0 (the OS picks one; see `server.sockets`). */
  port?: number;
  /** Listen backlog. Default 100 (asyncio's). */
  backlog?: number;
  /** SO_REUSEADDR. Node always sets it on Unix-like systems, so only `true` (the default) is accepted. */
  reuseAddress?: boolean;
  /** SO_REUSEPORT: several processes share the port (Linux, BSDs). Default false. */
  reusePort?: boolean;
  /** Listen on IPv6 only (no IPv4-mapped addresses) when listening on `::`. Default false. */
  ipv6Only?: boolean;
  /** TLS: Node's `tls.createServer()` options (`key`, `cert`, `ALPNProtocols`, `SNICallback`, ...) plus `handshakeTimeout` (ms, default 10_000 on a server). */
  tls?: TlsServerOptions;
  /** Start accepting at once. Default true; with false, the sockets are bound and connections wait until `startServing()`. */
  startServing?: boolean;
  /** Listen on this network instead of the OS's (`MemoryNetwork` from `protoloop/testing`); the server is then that network's. */
  network?: Network;
}

/** Options of `loop.createUnixServer()`; with the limits every server takes (`maxConnections`, `idleTimeout`). */
export interface UnixServerOptions extends ServerLimitOptions {
  /** Listen backlog. Default 100. */
  backlog?: number;
  /** TLS over the Unix socket. */
  tls?: TlsServerOptions;
  /** Start accepting at once. Default true. */
  startServing?: boolean;
  /** Remove a stale socket file at `path` before listening (only if it is a socket). Default true. */
  removeExisting?: boolean;
}

function checkCommon(options: { backlog?: unknown; startServing?: unknown }, what: string): void {
  if (options.backlog !== undefined && !(typeof options.backlog === 'number' && Number.isInteger(options.backlog) && options.backlog >= 0)) {
    throw new InvalidArgumentError(`${what}.backlog must be an integer >= 0`);
  }
  if (options.startServing !== undefined && typeof options.startServing !== 'boolean') throw new InvalidArgumentError(`${what}.startServing must be a boolean`);
}

/** Creates, binds and (unless `startServing: false`) starts a TCP/TLS server. */
export async function createServer(loop: Loop, protocolFactory: () => StreamProtocol, options: ServerOptions = {}): Promise<Server> {
  if (options?.network != null) return (await options.network[kNetworkListen](loop, protocolFactory, options)) as unknown as Server;
  const what = 'createServer() options';
  if (typeof protocolFactory !== 'function') throw new InvalidArgumentError('createServer() needs a protocol factory (a function returning a Protocol or BufferedProtocol)');
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('createServer() options must be an object');
  checkCommon(options, what);
  const port = options.port ?? 0;
  if (!(typeof port === 'number' && Number.isInteger(port) && port >= 0 && port <= 65535)) throw new InvalidArgumentError(`${what}.port must be an integer from 0 to 65535`);
  if (options.reuseAddress === false) throw new InvalidArgumentError(`${what}.reuseAddress: Node always sets SO_REUSEADDR on listening sockets; false is not supported`);
  const hosts = options.host === undefined ? [undefined] : Array.isArray(options.host) ? options.host : [options.host];
  if (hosts.length === 0) throw new InvalidArgumentError(`${what}.host must not be an empty list`);
  for (const h of hosts) if (h !== undefined && (typeof h !== 'string' || h === '')) throw new InvalidArgumentError(`${what}.host must be a non-empty string or a list of them`);
  const tlsOptions = resolveTlsOption<TlsServerOptions>(options.tls, what);
  const proxy = proxySettings(options);
  const specs: ListenSpec[] = hosts.map((host) => {
    const o: net.ListenOptions & { reusePort?: boolean } = { port, backlog: options.backlog ?? 100, ipv6Only: options.ipv6Only ?? false };
    if (host !== undefined) o.host = host;
    if (options.reusePort === true) o.reusePort = true;
    return { options: o, tls: tlsOptions };
  });
  const server = new Server(loop, protocolFactory, specs, makeTlsServer, resolveLimits(options, what), proxy);
  await server.bind();
  if (options.startServing !== false) await server.startServing();
  return server;
}

/** Creates, binds and (unless `startServing: false`) starts a Unix-socket server at `path`. */
export async function createUnixServer(loop: Loop, protocolFactory: () => StreamProtocol, path: string, options: UnixServerOptions = {}): Promise<Server> {
  const what = 'createUnixServer() options';
  if (typeof protocolFactory !== 'function') throw new InvalidArgumentError('createUnixServer() needs a protocol factory');
  if (typeof path !== 'string' || path === '') throw new InvalidArgumentError('createUnixServer() needs a socket path');
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('createUnixServer() options must be an object');
  checkCommon(options, what);
  const tlsOptions = resolveTlsOption<TlsServerOptions>(options.tls, what);
  if (options.removeExisting !== false) {
    try {
      if (fs.statSync(path).isSocket()) fs.unlinkSync(path);
    } catch {
      // Nothing there (or not ours to remove): listen() reports what matters.
    }
  }
  const limits = resolveLimits(options, what);
  const server = new Server(loop, protocolFactory, [{ options: { path, backlog: options.backlog ?? 100 }, tls: tlsOptions }], makeTlsServer, limits);
  await server.bind();
  if (options.startServing !== false) await server.startServing();
  return server;
}
