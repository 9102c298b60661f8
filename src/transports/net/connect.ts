/**
 * Client connections: `createConnection` (TCP, optionally TLS), `createUnixConnection`,
 * and `connectAcceptedSocket` (adopt a socket connected elsewhere).
 *
 * Plain sockets are constructed with `onread` (the fast read path). The socket is
 * created outside any task's context, so its events never inherit one. A connect that
 * is cancelled (task cancellation or `signal`) destroys the socket.
 * @module
 */
import net from 'node:net';
import type tls from 'node:tls';
import { nodeTls } from '../../loop/lazy.ts';
import { InvalidArgumentError } from '../../errors.ts';
import type { Future } from '../../loop/future.ts';
import { outsideTask } from '../../loop/internal.ts';
import { kNetworkConnect } from '../../loop/symbols.ts';
import type { Loop } from '../../loop/loop.ts';
import { mapSocketError } from '../map-error.ts';
import type { Network } from '../network.ts';
import { ONREAD, SocketTransport, type StreamProtocol } from './socket-transport.ts';
import { DEFAULT_TLS_HANDSHAKE_TIMEOUT, resolveTlsOption, waitHandshake, type TlsClientOptions, type TlsServerOptions } from './tls.ts';

/** Options of `loop.createConnection()`. */
export interface ConnectionOptions {
  /** Host name or IP address. Default `'localhost'`. */
  host?: string;
  /** TCP port (required). */
  port: number;
  /** TLS: `true` for defaults (system CAs, SNI = host) or {@link TlsClientOptions}. Default: plain TCP. */
  tls?: boolean | TlsClientOptions;
  /** Local address to bind before connecting. */
  localAddress?: string;
  /** Local port to bind before connecting. */
  localPort?: number;
  /** Restrict name resolution to IPv4 (4) or IPv6 (6). Default 0 (both). */
  family?: 0 | 4 | 6;
  /** Happy Eyeballs (RFC 8305): try the resolved addresses in turn, racing them. Default true (Node's `autoSelectFamily`). */
  happyEyeballs?: boolean;
  /** Delay (ms) before the next address is tried, with Happy Eyeballs. Default 250 (asyncio's suggestion, Node's default). Minimum 10. */
  happyEyeballsDelay?: number;
  /** TCP_NODELAY. Default true, as asyncio. */
  noDelay?: boolean;
  /** SO_KEEPALIVE, and its initial delay in ms when a number. Default off. */
  keepAlive?: boolean | number;
  /** Aborting it abandons the connect (the promise rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Connect on this network instead of the OS's (`MemoryNetwork` from `protoloop/testing`); the transport is then that network's. */
  network?: Network;
}

/** Options of `loop.createUnixConnection()`. */
export interface UnixConnectionOptions {
  /** TLS over the Unix socket. Default: none. */
  tls?: boolean | TlsClientOptions;
  /** Aborting it abandons the connect. */
  signal?: AbortSignal;
}

/** Options of `loop.connectAcceptedSocket()`. */
export interface AcceptedSocketOptions {
  /** Server-side TLS on the accepted socket. Default: none. */
  tls?: TlsServerOptions;
}

/** A factory of stream protocols. */
export type StreamProtocolFactory<P extends StreamProtocol> = () => P;

function checkFactory(f: unknown, what: string): void {
  if (typeof f !== 'function') throw new InvalidArgumentError(`${what}() needs a protocol factory (a function returning a Protocol or BufferedProtocol)`);
}

function makeProtocol<P extends StreamProtocol>(factory: StreamProtocolFactory<P>, socket: net.Socket): P {
  try {
    return factory();
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/**
 * Waits for `socket` to emit `event`; rejects with a typed error on 'error', with the
 * signal's reason on abort; destroys the socket when abandoned (cancelled, aborted).
 */
async function waitFor(loop: Loop, socket: net.Socket, event: string, what: string, signal: AbortSignal | undefined): Promise<void> {
  const fut: Future<void> = loop.createFuture<void>(`connect to ${what}`);
  const onEvent = (): void => {
    // Stop reading until the transport owns the socket (reads would have no one to go to).
    socket.pause();
    if (!fut.done()) fut.setResult(undefined);
  };
  const onError = (err: Error): void => {
    if (!fut.done()) fut.setException(mapSocketError(err, `connect to ${what}`));
  };
  const onAbort = (): void => {
    if (!fut.done()) fut.setException(signal!.reason ?? new DOMException('The operation was aborted', 'AbortError'));
  };
  socket.once(event, onEvent);
  socket.once('error', onError);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await fut;
  } catch (err) {
    socket.destroy();
    throw err;
  } finally {
    socket.off(event, onEvent);
    socket.off('error', onError);
    signal?.removeEventListener('abort', onAbort);
  }
}

function checkPort(port: unknown, what: string): number {
  if (!(typeof port === 'number' && Number.isInteger(port) && port >= 0 && port <= 65535)) {
    throw new InvalidArgumentError(`${what}.port must be an integer from 0 to 65535, got ${String(port)}`);
  }
  return port;
}

/**
 * Opens a TCP (or TLS) connection and returns its transport and protocol once
 * `connectionMade` ran. Rejects with `ConnectionRefusedError`, `DnsError`, `TlsError`,
 * `TimeoutError` (TLS handshake), `ConnectionError` (other system errors),
 * `InvalidArgumentError` (bad options), or the signal's reason.
 */
export async function createConnection<P extends StreamProtocol>(loop: Loop, protocolFactory: StreamProtocolFactory<P>, options: ConnectionOptions): Promise<[SocketTransport, P]> {
  if (options?.network != null) return (await options.network[kNetworkConnect](loop, protocolFactory, options)) as unknown as [SocketTransport, P];
  checkFactory(protocolFactory, 'createConnection');
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('createConnection() needs options with at least { port }');
  const port = checkPort(options.port, 'createConnection() options');
  const host = options.host ?? 'localhost';
  if (typeof host !== 'string' || host === '') throw new InvalidArgumentError('createConnection() options.host must be a non-empty string');
  const tlsOptions = resolveTlsOption<TlsClientOptions>(options.tls, 'createConnection() options');
  const { signal } = options;
  signal?.throwIfAborted();
  const what = `${host}:${port}`;
  const connectOptions: net.TcpNetConnectOpts = {
    host,
    port,
    localAddress: options.localAddress,
    localPort: options.localPort,
    family: options.family ?? 0,
    autoSelectFamily: options.happyEyeballs ?? true,
    noDelay: options.noDelay ?? true,
    keepAlive: options.keepAlive !== undefined && options.keepAlive !== false,
    keepAliveInitialDelay: typeof options.keepAlive === 'number' ? options.keepAlive : 0,
  };
  if (options.happyEyeballsDelay !== undefined) connectOptions.autoSelectFamilyAttemptTimeout = Math.max(10, options.happyEyeballsDelay);
  if (tlsOptions !== undefined) {
    const { handshakeTimeout, ...rest } = tlsOptions;
    const sock = outsideTask(() => nodeTls().connect({ ...connectOptions, ...rest, servername: rest.servername ?? (net.isIP(host) === 0 ? host : undefined), allowHalfOpen: true } as tls.ConnectionOptions));
    await waitHandshake(loop, sock, 'secureConnect', handshakeTimeout ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT, what, signal);
    return await adopt(loop, sock, makeProtocol(protocolFactory, sock), false);
  }
  const sock = outsideTask(() => new net.Socket({ onread: ONREAD, allowHalfOpen: true } as unknown as net.SocketConstructorOpts));
  outsideTask(() => sock.connect(connectOptions));
  await waitFor(loop, sock, 'connect', what, signal);
  return await adopt(loop, sock, makeProtocol(protocolFactory, sock), true);
}

/** Opens a connection to the Unix socket at `path`. Rejects as {@link createConnection} does (`ENOENT` as `ConnectionError`). */
export async function createUnixConnection<P extends StreamProtocol>(loop: Loop, protocolFactory: StreamProtocolFactory<P>, path: string, options: UnixConnectionOptions = {}): Promise<[SocketTransport, P]> {
  checkFactory(protocolFactory, 'createUnixConnection');
  if (typeof path !== 'string' || path === '') throw new InvalidArgumentError('createUnixConnection() needs a socket path');
  const tlsOptions = resolveTlsOption<TlsClientOptions>(options.tls, 'createUnixConnection() options');
  options.signal?.throwIfAborted();
  if (tlsOptions !== undefined) {
    const { handshakeTimeout, ...rest } = tlsOptions;
    const sock = outsideTask(() => nodeTls().connect({ ...rest, path, allowHalfOpen: true } as tls.ConnectionOptions));
    await waitHandshake(loop, sock, 'secureConnect', handshakeTimeout ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT, path, options.signal);
    return await adopt(loop, sock, makeProtocol(protocolFactory, sock), false, { path });
  }
  const sock = outsideTask(() => new net.Socket({ onread: ONREAD, allowHalfOpen: true } as unknown as net.SocketConstructorOpts));
  outsideTask(() => sock.connect({ path }));
  await waitFor(loop, sock, 'connect', path, options.signal);
  return await adopt(loop, sock, makeProtocol(protocolFactory, sock), true, { path });
}

/**
 * Wraps a socket that is already connected (accepted by another server, passed from
 * another process) in a transport. With `tls`, runs a server-side TLS handshake first.
 * The socket must not be read by anyone else.
 */
export async function connectAcceptedSocket<P extends StreamProtocol>(loop: Loop, protocolFactory: StreamProtocolFactory<P>, socket: net.Socket, options: AcceptedSocketOptions = {}): Promise<[SocketTransport, P]> {
  checkFactory(protocolFactory, 'connectAcceptedSocket');
  if (!(socket instanceof net.Socket)) throw new InvalidArgumentError('connectAcceptedSocket() needs a net.Socket');
  if (socket.destroyed) throw new InvalidArgumentError('connectAcceptedSocket() got a destroyed socket');
  const tlsOptions = resolveTlsOption<TlsServerOptions>(options.tls, 'connectAcceptedSocket() options');
  let sock: net.Socket = socket;
  if (tlsOptions !== undefined) {
    const { handshakeTimeout, ...rest } = tlsOptions;
    const t = outsideTask(() => new (nodeTls().TLSSocket)(socket, { ...rest, isServer: true, secureContext: rest.secureContext ?? nodeTls().createSecureContext(rest) } as tls.TLSSocketOptions));
    await waitHandshake(loop, t, 'secure', handshakeTimeout ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT, socket.remoteAddress ?? 'the peer');
    sock = t;
  }
  return await adopt(loop, sock, makeProtocol(protocolFactory, sock), false);
}

async function adopt<P extends StreamProtocol>(loop: Loop, sock: net.Socket, protocol: P, onread: boolean, extra?: Record<string, unknown>): Promise<[SocketTransport, P]> {
  const waiter = loop.createFuture<void>('connectionMade');
  const transport = new SocketTransport(loop, sock, protocol, { onread, waiter, extra });
  try {
    await waiter;
  } catch (err) {
    // Cancelled while connectionMade was pending, or the connection died first.
    transport.abort();
    throw err;
  }
  return [transport, protocol];
}
