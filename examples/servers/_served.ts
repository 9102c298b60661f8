/**
 * The contract every example server follows, so that `npm start` (examples/demo.ts)
 * can run them all on one loop and `protoloop serve <name>` can run any one of them.
 *
 * Each examples/servers/<name>.ts that is a server exports
 *
 *   export async function serve(options: ServeOptions): Promise<Served>
 *
 * which starts the server on the running loop and returns at once, and keeps its own
 * command-line entry point behind `if (import.meta.main)`.
 */
import { parseArgs } from 'node:util';
import { getRunningLoop, run, type Server } from '../../src/index.ts';

/** Where to listen, and whether to narrate. */
export interface ServeOptions {
  /** Host to bind (default 127.0.0.1). */
  host?: string;
  /** Port to bind; 0 picks a free one. */
  port?: number;
  /** Where the server writes its one-line notes (default: console.error). */
  log?: (line: string) => void;
  /** Server limits (`protoloop serve --max-connections/--idle-timeout/--handshake-timeout`); absent: protoloop's defaults. */
  maxConnections?: number;
  idleTimeout?: number;
  handshakeTimeout?: number;
}

/** The limit options of an example's command line (as `protoloop serve` passes them on). */
export const LIMIT_ARGS = {
  'max-connections': { type: 'string' },
  'idle-timeout': { type: 'string' },
  'handshake-timeout': { type: 'string' },
} as const;

/** The limits given on the command line (see {@link LIMIT_ARGS}), as {@link ServeOptions}. */
export function limitsFromArgs(values: { 'max-connections'?: string; 'idle-timeout'?: string; 'handshake-timeout'?: string }): Pick<ServeOptions, 'maxConnections' | 'idleTimeout' | 'handshakeTimeout'> {
  const out: Pick<ServeOptions, 'maxConnections' | 'idleTimeout' | 'handshakeTimeout'> = {};
  if (values['max-connections'] !== undefined) out.maxConnections = Number(values['max-connections']);
  if (values['idle-timeout'] !== undefined) out.idleTimeout = Number(values['idle-timeout']);
  if (values['handshake-timeout'] !== undefined) out.handshakeTimeout = Number(values['handshake-timeout']);
  return out;
}

/** The limits of `options` a TCP server takes (only those given: the rest keep protoloop's defaults). */
export function tcpLimits(options: ServeOptions): { maxConnections?: number; idleTimeout?: number } {
  const out: { maxConnections?: number; idleTimeout?: number } = {};
  if (options.maxConnections !== undefined) out.maxConnections = options.maxConnections;
  if (options.idleTimeout !== undefined) out.idleTimeout = options.idleTimeout;
  return out;
}

/** The limits of `options` a WebSocket server takes. */
export function webSocketLimits(options: ServeOptions): { maxConnections?: number; idleTimeout?: number; handshakeTimeout?: number } {
  return options.handshakeTimeout === undefined ? tcpLimits(options) : { ...tcpLimits(options), handshakeTimeout: options.handshakeTimeout };
}

/** A running example server. */
export interface Served {
  /** What it is, e.g. `tcp echo` or `websocket chat`. */
  readonly name: string;
  /** The URL a client uses: `tcp://127.0.0.1:8888`, `ws://127.0.0.1:8890/chat`, `http://...`. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Graceful shutdown: stop accepting, let clients finish briefly, then close them. Idempotent. */
  close(): Promise<void>;
}

/**
 * Resolves with the first SIGINT or SIGTERM the process receives (as a loop signal
 * handler); the handlers are removed after, so a second signal gets Node's default.
 */
export async function untilSignal(): Promise<string> {
  const loop = getRunningLoop();
  const stop = loop.createFuture<string>('SIGINT or SIGTERM');
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    loop.addSignalHandler(sig, () => {
      if (!stop.done()) stop.setResult(sig);
    });
  }
  try {
    return await stop;
  } finally {
    loop.removeSignalHandler('SIGINT');
    loop.removeSignalHandler('SIGTERM');
  }
}

/**
 * The {@link Served} of a TCP server: its first listening address, and a graceful
 * close that stops accepting, closes the clients (flushing what they were sent) and
 * aborts those still open after 3 s. Idempotent.
 */
export function tcpServed(name: string, server: Server, log: (line: string) => void): Served {
  const { address, port } = server.sockets[0] as { address: string; port: number };
  let closing: Promise<void> | null = null;
  return {
    name,
    url: `tcp://${address.includes(':') ? `[${address}]` : address}:${port}`,
    host: address,
    port,
    close: () =>
      (closing ??= server.shutdown({ closeClients: true, timeout: 3000 }).then(({ aborted }) => {
        if (aborted > 0) log(`${name}: ${aborted} client(s) aborted`);
      })),
  };
}

/**
 * The command line of a server example: `--host`, `--port` (and `extra` options, given
 * to `serve` as parsed strings); prints `listening on HOST:PORT`, serves until SIGINT or
 * SIGTERM, then closes gracefully.
 */
export async function serveFromCommandLine(serve: (options: ServeOptions) => Promise<Served>, defaultPort: number): Promise<void> {
  const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: String(defaultPort) }, ...LIMIT_ARGS } });
  await run(
    async () => {
      const server = await serve({ host: values.host, port: Number(values.port), ...limitsFromArgs(values) });
      // The handlers are in place before the line: whoever waits for it may signal at once.
      const stop = untilSignal();
      console.log(`listening on ${server.host}:${server.port}`);
      const signal = await stop;
      await server.close();
      console.error(`shut down: received ${signal}`);
    },
    { handleSigint: false },
  );
}
