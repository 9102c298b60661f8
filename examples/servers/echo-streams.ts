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
import { ConnectionError, startServer, type StreamReader, type StreamWriter } from '../../src/index.ts';
import { serveFromCommandLine, tcpLimits, tcpServed, type ServeOptions, type Served } from './_served.ts';

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
  const server = await startServer(echo, { host: options.host ?? '127.0.0.1', port: options.port ?? 8888, ...tcpLimits(options) });
  return tcpServed('tcp echo (streams)', server, log);
}

if (import.meta.main) await serveFromCommandLine(serve, 8888);
