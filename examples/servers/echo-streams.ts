/**
 * A TCP echo server with streams: one task per client reads what arrives and writes
 * it back, awaiting `drain()` so a client that does not read cannot make us buffer
 * without bound.
 *
 *   node examples/servers/echo-streams.ts [--host 127.0.0.1] [--port 8888]
 *
 * Prints `listening on HOST:PORT` and shuts down cleanly on SIGINT or SIGTERM (the
 * client tasks are cancelled by run(), which closes their connections).
 */
import { parseArgs } from 'node:util';
import { CancelledError, ConnectionError, currentTask, run, startServer, type StreamReader, type StreamWriter } from '../../src/index.ts';

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

const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '8888' } } });

async function main(): Promise<void> {
  const server = await startServer(echo, { host: values.host, port: Number(values.port) });
  const { address, port } = server.sockets[0] as { address: string; port: number };
  console.log(`listening on ${address}:${port}`);
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
