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
import { getRunningLoop } from '../../src/index.ts';

/** Where to listen, and whether to narrate. */
export interface ServeOptions {
  /** Host to bind (default 127.0.0.1). */
  host?: string;
  /** Port to bind; 0 picks a free one. */
  port?: number;
  /** Where the server writes its one-line notes (default: console.error). */
  log?: (line: string) => void;
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
