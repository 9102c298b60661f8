/**
 * TLS: the `tls` options of connections and servers, the client handshake, and
 * `startTls` (upgrading an open transport, client or server side).
 * @module
 */
import type net from 'node:net';
import type tls from 'node:tls';
import { nodeTls } from '../../loop/lazy.ts';
import { InvalidArgumentError, TimeoutError } from '../../errors.ts';
import type { Future } from '../../loop/future.ts';
import { outsideTask } from '../../loop/internal.ts';
import type { Loop } from '../../loop/loop.ts';
import { mapSocketError } from '../map-error.ts';
import { DEFAULT_SERVER_HANDSHAKE_TIMEOUT } from '../server-limits.ts';
import { SocketTransport, type StreamProtocol } from './socket-transport.ts';
import type { Transport } from '../transports.ts';

/** Default TLS handshake timeout, ms (asyncio's 60 s). */
export const DEFAULT_TLS_HANDSHAKE_TIMEOUT = 60_000;

/**
 * TLS options of a client connection: Node's `nodeTls().connect()` options (SecureContext
 * options such as `ca`, `cert`, `key`; `servername` for SNI, which defaults to the
 * host; `ALPNProtocols`; `rejectUnauthorized`, default true; `checkServerIdentity`;
 * or a ready `secureContext`), plus `handshakeTimeout` in ms (default 60_000).
 */
export type TlsClientOptions = Omit<tls.ConnectionOptions, 'host' | 'port' | 'path' | 'socket' | 'timeout' | 'onread' | 'allowHalfOpen'> & {
  handshakeTimeout?: number;
};

/**
 * TLS options of a server: Node's `nodeTls().createServer()` options (`key`, `cert`, `ca`,
 * `requestCert`, `ALPNProtocols`, `SNICallback`, a ready `secureContext`, ...), plus
 * `handshakeTimeout` in ms (default 10_000 for a server's clients: a client that has
 * not finished its handshake by then is dropped and counted; 60_000 for `startTls`).
 */
export type TlsServerOptions = Omit<tls.TlsOptions, 'allowHalfOpen' | 'pauseOnConnect'> & {
  handshakeTimeout?: number;
};

/** Options of `loop.startTls()`. */
export type StartTlsOptions = (TlsClientOptions & { serverSide?: false }) | (TlsServerOptions & { serverSide: true });

/** @internal Validates a `tls` option: `true` means defaults. Returns undefined for no TLS. */
export function resolveTlsOption<T extends object>(value: unknown, what: string): T | undefined {
  if (value === undefined || value === false || value === null) return undefined;
  if (value === true) return {} as T;
  if (typeof value !== 'object') throw new InvalidArgumentError(`${what}.tls must be true or an object of TLS options, got ${typeof value}`);
  const hs = (value as { handshakeTimeout?: unknown }).handshakeTimeout;
  if (hs !== undefined && !(typeof hs === 'number' && hs > 0)) throw new InvalidArgumentError(`${what}.tls.handshakeTimeout must be a number of milliseconds > 0`);
  return value as T;
}

/** @internal Creates a TLS server (used by Server). */
export function makeTlsServer(options: tls.TlsOptions): net.Server {
  const { handshakeTimeout, ...rest } = options as TlsServerOptions;
  return nodeTls().createServer({ ...rest, handshakeTimeout: handshakeTimeout ?? DEFAULT_SERVER_HANDSHAKE_TIMEOUT, allowHalfOpen: true });
}

/**
 * @internal Waits for `socket`'s handshake ('secure'/'secureConnect'), an error, or the
 * timeout; rejects with a typed error (TlsError, ConnectionResetError, TimeoutError).
 */
export async function waitHandshake(loop: Loop, socket: tls.TLSSocket, event: 'secure' | 'secureConnect', timeoutMs: number, what: string, signal?: AbortSignal): Promise<void> {
  const fut: Future<void> = loop.createFuture<void>(`TLS handshake ${what}`);
  const onSecure = (): void => {
    // Stop reading until the transport owns the socket.
    socket.pause();
    if (!fut.done()) fut.setResult(undefined);
  };
  const onError = (err: Error): void => {
    if (!fut.done()) fut.setException(mapSocketError(err, `TLS handshake with ${what}`));
  };
  const onClose = (): void => {
    if (!fut.done()) fut.setException(mapSocketError(Object.assign(new Error('the peer closed the connection during the TLS handshake'), { code: 'ECONNRESET' }), `TLS handshake with ${what}`));
  };
  const onAbort = (): void => {
    if (!fut.done()) fut.setException(signal!.reason ?? new DOMException('The operation was aborted', 'AbortError'));
  };
  socket.once(event, onSecure);
  socket.once('error', onError);
  socket.once('close', onClose);
  signal?.addEventListener('abort', onAbort, { once: true });
  const timer = loop.callLater(timeoutMs, () => {
    if (!fut.done()) fut.setException(new TimeoutError(`TLS handshake with ${what} took longer than ${timeoutMs} ms`));
  });
  try {
    await fut;
  } catch (err) {
    socket.destroy();
    throw err;
  } finally {
    timer.cancel();
    socket.off(event, onSecure);
    socket.off('error', onError);
    socket.off('close', onClose);
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Upgrades `transport` to TLS and returns the new transport; the old one must not be
 * used again. `protocol` keeps receiving data (its `connectionMade` is not called again).
 * Client side by default; `serverSide: true` for a server. Rejects with `TlsError` when
 * the handshake fails (the connection is then closed), `TimeoutError` after
 * `handshakeTimeout` ms, `TransportClosedError` if the transport is not open.
 */
export async function startTls(loop: Loop, transport: Transport, protocol: StreamProtocol, options: StartTlsOptions = {}): Promise<SocketTransport> {
  if (!(transport instanceof SocketTransport)) throw new InvalidArgumentError('startTls() needs a transport made by createConnection/createServer/connectAcceptedSocket');
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('startTls() options must be an object');
  const { serverSide, handshakeTimeout, ...rest } = options as StartTlsOptions & { handshakeTimeout?: number };
  const timeoutMs = handshakeTimeout ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT;
  const peer = transport.getExtraInfo<{ address: string; port: number }>('peername');
  const what = peer === undefined ? 'the peer' : `${peer.address}:${peer.port}`;
  // Data written before the upgrade goes out in the clear first (it is in the socket's queue).
  const raw = transport.detachSocket();
  // The server (if any) keeps counting the connection until the upgraded transport takes over.
  const owner = transport.releaseOwner();
  let sock: tls.TLSSocket;
  try {
    if (serverSide === true) {
      const { handshakeTimeout: _h, ...serverOpts } = rest as TlsServerOptions;
      sock = outsideTask(() => new (nodeTls().TLSSocket)(raw, { ...serverOpts, isServer: true, secureContext: serverOpts.secureContext ?? nodeTls().createSecureContext(serverOpts) } as tls.TLSSocketOptions));
      await waitHandshake(loop, sock, 'secure', timeoutMs, what);
    } else {
      const clientOpts = rest as TlsClientOptions;
      sock = outsideTask(() => nodeTls().connect({ ...clientOpts, socket: raw, servername: clientOpts.servername ?? (peer !== undefined && !isIpLiteral(peer.address) ? peer.address : undefined) } as tls.ConnectionOptions));
      await waitHandshake(loop, sock, 'secureConnect', timeoutMs, what);
    }
  } catch (err) {
    raw.destroy();
    owner?.detach(transport);
    throw err;
  }
  const upgraded = new SocketTransport(loop, sock, protocol, { skipConnectionMade: true, owner: owner ?? undefined });
  owner?.detach(transport);
  return upgraded;
}

function isIpLiteral(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
