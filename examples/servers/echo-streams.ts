/**
 * A TCP echo server with streams: one task per client reads what arrives and writes
 * it back, awaiting `drain()` so a client that does not read cannot make us buffer
 * without bound.
 *
 *   node examples/servers/echo-streams.ts [--host 127.0.0.1] [--port 8888]
 *
 * Prints `listening on HOST:PORT` and shuts down cleanly on SIGINT or SIGTERM: the
 * server closes the connections, each client task sees the end of its stream and
 * returns. `serve()` starts the same server on the running loop.
 */
import { parseArgs } from 'node:util';
import { ConnectionError, run, startServer, type StreamReader, type StreamWriter } from '../../src/index.ts';
import { untilSignal, type ServeOptions, type Served } from './_served.ts';

async function echo(reader: StreamReader, writer: StreamWriter): Promise<void> {
  try {
    for (;;) {
      const data = await reader.read(256 * 1024);
      // Empty: the client closed its side. Closing: the server is shutting down.
      if (data.length === 0 || writer.isClosing()) break;
      writer.write(data);
      await writer.drain();
    }
  } catch (e) {
    // The client reset the connection: there is no one left to answer.
    if (!(e instanceof ConnectionError)) throw e;
  } finally {
    writer.close();
  }
}

/** Starts the streams echo server on the running loop. */
export async function serve(options: ServeOptions = {}): Promise<Served> {
  const log = options.log ?? console.error;
  const server = await startServer(echo, { host: options.host ?? '127.0.0.1', port: options.port ?? 8888 });
  const { address, port } = server.sockets[0] as { address: string; port: number };
  let closing: Promise<void> | null = null;
  return {
    name: 'tcp echo (streams)',
    url: `tcp://${address.includes(':') ? `[${address}]` : address}:${port}`,
    host: address,
    port,
    // Stop accepting, close the clients (their readers see the end, their tasks return),
    // abort those still open after 3 s.
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
