/**
 * A TCP echo server with a Protocol: every chunk received is written back.
 *
 *   node examples/servers/echo.ts [--host 127.0.0.1] [--port 8888]
 *
 * Prints `listening on HOST:PORT` (port 0 picks a free one) and shuts down cleanly on
 * SIGINT or SIGTERM: stops accepting, closes the clients, waits for them.
 * `serve()` starts the same server on the running loop (examples/demo.ts does).
 */
import { Protocol, getRunningLoop, type Transport } from '../../src/index.ts';
import { serveFromCommandLine, tcpLimits, tcpServed, type ServeOptions, type Served } from './_served.ts';

class EchoProtocol extends Protocol {
  #transport: Transport | null = null;

  override connectionMade(transport: Transport): void {
    this.#transport = transport;
  }

  override dataReceived(data: Buffer): void {
    // `data` is ours: the transport writes it out, or keeps it until the socket can take it.
    this.#transport!.write(data);
  }

  override connectionLost(): void {
    this.#transport = null;
  }
}

/** Starts the echo server on the running loop. */
export async function serve(options: ServeOptions = {}): Promise<Served> {
  const log = options.log ?? console.error;
  const server = await getRunningLoop().createServer(() => new EchoProtocol(), { host: options.host ?? '127.0.0.1', port: options.port ?? 8888, ...tcpLimits(options) });
  return tcpServed('tcp echo', server, log);
}

if (import.meta.main) await serveFromCommandLine(serve, 8888);
