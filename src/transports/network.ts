/**
 * The hook through which the connection and server calls run on a network other than
 * the operating system's: `protoloop/testing`'s `MemoryNetwork`. A `network` option
 * on `loop.createConnection()`/`loop.createServer()` (and so on `openConnection()`/
 * `startServer()`) hands the call to the network; nothing else changes.
 * @module
 */
import type { kNetworkConnect, kNetworkListen } from '../loop/symbols.ts';
import type { Loop } from '../loop/loop.ts';
import type { BaseProtocol } from '../protocols/protocols.ts';
import type { ServerLike, Transport } from './transports.ts';

/** What a network is asked for a connection: the subset of `createConnection()`'s options it understands. */
export interface NetworkConnectOptions {
  host?: string;
  port: number;
  localAddress?: string;
  localPort?: number;
  signal?: AbortSignal;
}

/** What a network is asked for a server: the subset of `createServer()`'s options it understands. */
export interface NetworkListenOptions {
  host?: string | string[];
  port?: number;
  startServing?: boolean;
}

/** A network the connection and server calls can run on (see `MemoryNetwork` in `protoloop/testing`). */
export interface Network {
  /** @internal */
  [kNetworkConnect](loop: Loop, protocolFactory: () => BaseProtocol, options: NetworkConnectOptions): Promise<[Transport, BaseProtocol]>;
  /** @internal */
  [kNetworkListen](loop: Loop, protocolFactory: () => BaseProtocol, options: NetworkListenOptions): Promise<ServerLike>;
}
