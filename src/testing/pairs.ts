/**
 * Connected pairs for unit tests: a protocol pair over one memory link, or two stream
 * pairs, without naming hosts and ports.
 * @module
 */
import '../transports/net/loop-methods.ts';
import { InvalidArgumentError } from '../errors.ts';
import { getRunningLoop } from '../loop/loop.ts';
import type { BaseProtocol } from '../protocols/protocols.ts';
import { StreamReaderProtocol } from '../streams/stream-protocol.ts';
import { StreamReader } from '../streams/stream-reader.ts';
import { StreamWriter } from '../streams/stream-writer.ts';
import type { StreamPair } from '../streams/streams.ts';
import type { MemoryTransport } from './memory-transport.ts';
import { MemoryNetwork, type MemoryLink } from './network.ts';

/** Options of {@link createMemoryConnection} and {@link memoryStreamPair}. */
export interface MemoryPairOptions {
  /** The network to make the link on (its latency, bandwidth and partitions apply). Default: a new one. */
  network?: MemoryNetwork;
  /** The server's host name. Default `'server'`. */
  host?: string;
  /** The readers' limit in bytes ({@link memoryStreamPair} only). Default 64 KiB. */
  limit?: number;
}

/** One end of a {@link MemoryConnection}. */
export interface MemoryEnd<P> {
  transport: MemoryTransport;
  protocol: P;
}

/** What {@link createMemoryConnection} resolves to. */
export interface MemoryConnection<S, C> {
  server: MemoryEnd<S>;
  client: MemoryEnd<C>;
  /** The link between them: `reset()`, `stall()`, `release()`. */
  link: MemoryLink;
  /** The network the link is on. */
  network: MemoryNetwork;
}

function checkOptions(options: MemoryPairOptions, what: string): void {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError(`${what}() options must be an object`);
  if (options.network !== undefined && !(options.network instanceof MemoryNetwork)) throw new InvalidArgumentError(`${what}() options.network must be a MemoryNetwork`);
}

/**
 * Connects a protocol made by `serverFactory` to one made by `clientFactory` over a new
 * memory link, and resolves once both `connectionMade()` ran. Needs a running loop.
 *
 * ```ts
 * import { Protocol, run } from 'protoloop';
 * import { createMemoryConnection } from 'protoloop/testing';
 *
 * await run(async () => {
 *   const { server, client } = await createMemoryConnection(() => new Protocol(), () => new Protocol());
 *   client.transport.close();
 *   server.transport.close();
 * });
 * ```
 * @throws NoRunningLoopError outside a loop; InvalidArgumentError for bad arguments.
 */
export async function createMemoryConnection<S extends BaseProtocol, C extends BaseProtocol>(
  serverFactory: () => S,
  clientFactory: () => C,
  options: MemoryPairOptions = {},
): Promise<MemoryConnection<S, C>> {
  if (typeof serverFactory !== 'function' || typeof clientFactory !== 'function') throw new InvalidArgumentError('createMemoryConnection() needs a server and a client protocol factory');
  checkOptions(options, 'createMemoryConnection');
  const loop = getRunningLoop();
  const network = options.network ?? new MemoryNetwork();
  let serverProtocol: S | null = null;
  const server = await loop.createServer(
    () => {
      serverProtocol = serverFactory();
      return serverProtocol as never;
    },
    { network, host: options.host ?? 'server', port: 0 },
  );
  try {
    const port = (server.sockets[0] as { port: number }).port;
    const [transport, protocol] = await loop.createConnection(clientFactory as never, { network, host: options.host ?? 'server', port });
    const clientTransport = transport as unknown as MemoryTransport;
    const link = clientTransport.getExtraInfo<MemoryLink>('link')!;
    const serverTransport = link.end('server');
    if (serverTransport === undefined || serverProtocol === null) throw new InvalidArgumentError('createMemoryConnection(): the server protocol factory failed');
    return { server: { transport: serverTransport, protocol: serverProtocol }, client: { transport: clientTransport, protocol: protocol as unknown as C }, link, network };
  } finally {
    // The link outlives the listening side, as an accepted socket outlives its server.
    server.close();
  }
}

/**
 * Two connected stream pairs over one memory link: what one writes, the other reads.
 * Needs a running loop.
 *
 * ```ts
 * import { run } from 'protoloop';
 * import { memoryStreamPair } from 'protoloop/testing';
 *
 * await run(async () => {
 *   const [[r1, w1], [r2, w2]] = await memoryStreamPair();
 *   w1.write('ping\n');
 *   console.log(String(await r2.readLine())); // 'ping\n'
 *   w1.close();
 *   w2.close();
 *   await Promise.all([w1.waitClosed(), w2.waitClosed()]);
 *   void r1;
 * });
 * ```
 */
export async function memoryStreamPair(options: MemoryPairOptions = {}): Promise<[StreamPair, StreamPair]> {
  checkOptions(options, 'memoryStreamPair');
  const loop = getRunningLoop();
  const make = (): [StreamReader, StreamReaderProtocol] => {
    const reader = new StreamReader({ limit: options.limit, loop });
    return [reader, new StreamReaderProtocol(reader, loop)];
  };
  const [ra, pa] = make();
  const [rb, pb] = make();
  const { server, client } = await createMemoryConnection(
    () => pa,
    () => pb,
    options,
  );
  return [
    [rb, new StreamWriter(client.transport, pb, rb, loop)],
    [ra, new StreamWriter(server.transport, pa, ra, loop)],
  ];
}
