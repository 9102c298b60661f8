/**
 * A TCP echo server with a Protocol: every chunk received is written back.
 *
 *   node examples/servers/echo.ts [--host 127.0.0.1] [--port 8888]
 *
 * Prints `listening on HOST:PORT` (port 0 picks a free one) and shuts down cleanly on
 * SIGINT or SIGTERM: stops accepting, closes the clients, waits for them.
 */
import { parseArgs } from 'node:util';
import { CancelledError, Protocol, currentTask, getRunningLoop, run, type Transport } from '../../src/index.ts';

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

const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '8888' } } });

async function main(): Promise<void> {
  const loop = getRunningLoop();
  const server = await loop.createServer(() => new EchoProtocol(), { host: values.host, port: Number(values.port) });
  const { address, port } = server.sockets[0] as { address: string; port: number };
  console.log(`listening on ${address}:${port}`);
  // SIGINT/SIGTERM cancel this task; serveForever() then closes the server and its clients.
  const main = currentTask()!;
  const stop = (signal: string): void => {
    main.cancel(`received ${signal}`);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await server.serveForever();
  } catch (e) {
    if (!(e instanceof CancelledError)) throw e;
    console.error(`shut down: ${e.message}`);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

await run(main, { handleSigint: false });
