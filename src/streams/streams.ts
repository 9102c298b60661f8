/**
 * The streams API (asyncio's `open_connection`/`start_server`): connections as a
 * {@link StreamReader} and {@link StreamWriter} pair, servers that run one task per
 * client. Built on the loop's `createConnection`/`createServer` and their Unix twins.
 *
 * ```ts
 * const [reader, writer] = await openConnection('127.0.0.1', 8888);
 * writer.write('hello\n');
 * await writer.drain();
 * const line = await reader.readLine();
 * writer.close();
 * await writer.waitClosed();
 * ```
 * @module
 */
import { InvalidArgumentError } from '../errors.ts';
import { getRunningLoop, type Loop } from '../loop/loop.ts';
import type { ConnectionOptions, UnixConnectionOptions } from '../transports/net/connect.ts';
import type { ServerOptions, UnixServerOptions } from '../transports/net/listen.ts';
import type { Server } from '../transports/net/server.ts';
import { StreamReaderProtocol, type ClientConnectedCallback } from './stream-protocol.ts';
import { checkLimit, StreamReader } from './stream-reader.ts';
import { StreamWriter } from './stream-writer.ts';

/** The `limit` option every streams helper takes. */
export interface StreamLimitOption {
  /** The readers' limit in bytes (longest line; backpressure unit). Default 64 KiB. */
  limit?: number;
}

/** Options of {@link openConnection}: `loop.createConnection()`'s, plus `limit`. */
export type OpenConnectionOptions = Omit<ConnectionOptions, 'host' | 'port'> & StreamLimitOption;
/** Options of {@link startServer}: `loop.createServer()`'s (`host`, `port`, `backlog`, `tls`, ...), plus `limit`. */
export type StartServerOptions = ServerOptions & StreamLimitOption;
/** Options of {@link openUnixConnection}. */
export type OpenUnixConnectionOptions = UnixConnectionOptions & StreamLimitOption;
/** Options of {@link startUnixServer}. */
export type StartUnixServerOptions = UnixServerOptions & StreamLimitOption;

/** A connected stream pair: `const [reader, writer] = await openConnection(...)`. */
export type StreamPair = [reader: StreamReader, writer: StreamWriter];

function splitLimit<T extends StreamLimitOption>(options: T | undefined, what: string): [number, Omit<T, 'limit'>] {
  if (options === undefined) return [checkLimit(undefined), {} as Omit<T, 'limit'>];
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError(`${what}() options must be an object`);
  const { limit, ...rest } = options;
  return [checkLimit(limit), rest];
}

function checkCallback(cb: unknown, what: string): asserts cb is ClientConnectedCallback {
  if (typeof cb !== 'function') throw new InvalidArgumentError(`${what}() needs a client callback (reader, writer) => ..., got ${typeof cb}`);
}

function pairOf(loop: Loop, limit: number): [StreamReader, StreamReaderProtocol] {
  const reader = new StreamReader({ limit, loop });
  return [reader, new StreamReaderProtocol(reader, loop)];
}

/**
 * Opens a TCP connection (TLS with the `tls` option) and returns its reader and writer.
 * Cancelling the task abandons the connect.
 * @throws ConnectionRefusedError, DnsError, TlsError, ConnectionError as `loop.createConnection()`; InvalidArgumentError for bad options.
 */
export async function openConnection(host: string, port: number, options?: OpenConnectionOptions): Promise<StreamPair> {
  const [limit, rest] = splitLimit(options, 'openConnection');
  const loop = getRunningLoop();
  const [reader, protocol] = pairOf(loop, limit);
  const [transport] = await loop.createConnection(() => protocol, { ...rest, host, port } as ConnectionOptions);
  return [reader, new StreamWriter(transport, protocol, reader, loop)];
}

/**
 * Starts a TCP server (TLS with the `tls` option): for each client, `clientConnected(reader,
 * writer)` runs as a task named after the peer. An error escaping it goes to the loop's
 * exception handler and closes that connection; when it returns, the connection stays
 * as it left it (close the writer when done). Returns the `Server` (`sockets`, `close()`,
 * `serveForever()`, `await using`).
 * @throws as `loop.createServer()` (address in use, ...); InvalidArgumentError for bad options.
 */
export async function startServer(clientConnected: ClientConnectedCallback, options?: StartServerOptions): Promise<Server> {
  checkCallback(clientConnected, 'startServer');
  const [limit, rest] = splitLimit(options, 'startServer');
  const loop = getRunningLoop();
  return loop.createServer(() => new StreamReaderProtocol(new StreamReader({ limit, loop }), loop, clientConnected), rest);
}

/** {@link openConnection} over a Unix socket at `path`. */
export async function openUnixConnection(path: string, options?: OpenUnixConnectionOptions): Promise<StreamPair> {
  const [limit, rest] = splitLimit(options, 'openUnixConnection');
  const loop = getRunningLoop();
  const [reader, protocol] = pairOf(loop, limit);
  const [transport] = await loop.createUnixConnection(() => protocol, path, rest);
  return [reader, new StreamWriter(transport, protocol, reader, loop)];
}

/** {@link startServer} on a Unix socket at `path`. */
export async function startUnixServer(clientConnected: ClientConnectedCallback, path: string, options?: StartUnixServerOptions): Promise<Server> {
  checkCallback(clientConnected, 'startUnixServer');
  const [limit, rest] = splitLimit(options, 'startUnixServer');
  const loop = getRunningLoop();
  return loop.createUnixServer(() => new StreamReaderProtocol(new StreamReader({ limit, loop }), loop, clientConnected), path, rest);
}
