/**
 * A TCP echo server with a Protocol: every chunk received is written back.
 *
 *   node examples/servers/echo.ts [--host 127.0.0.1] [--port 8888]
 *
 * Prints `listening on HOST:PORT` (port 0 picks a free one) and shuts down cleanly on
 * SIGINT or SIGTERM: stops accepting, closes the clients, waits for them.
 * `serve()` starts the same server on the running loop (examples/demo.ts does).
 */
import { parseArgs } from 'node:util';
import { Protocol, getRunningLoop, run, type Transport } from '../../src/index.ts';
import { untilSignal, type ServeOptions, type Served } from './_served.ts';

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
  const server = await getRunningLoop().createServer(() => new EchoProtocol(), { host: options.host ?? '127.0.0.1', port: options.port ?? 8888 });
  const { address, port } = server.sockets[0] as { address: string; port: number };
  let closing: Promise<void> | null = null;
  return {
    name: 'tcp echo',
    url: `tcp://${address.includes(':') ? `[${address}]` : address}:${port}`,
    host: address,
    port,
    // Stop accepting, close the clients (flushing), abort those still open after 3 s.
    close: () =>
      (closing ??= server.shutdown({ closeClients: true, timeout: 3000 }).then(({ aborted }) => {
        if (aborted > 0) log(`tcp echo: ${aborted} client(s) aborted`);
      })),
  };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '8888' } } });
  await run(
    async () => {
      const server = await serve({ host: values.host, port: Number(values.port) });
      console.log(`listening on ${server.host}:${server.port}`);
      const signal = await untilSignal();
      await server.close();
      console.error(`shut down: received ${signal}`);
    },
    { handleSigint: false },
  );
}
