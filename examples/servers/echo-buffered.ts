/**
 * A TCP echo server with a BufferedProtocol: the fast path. The transport reads
 * straight into this connection's own buffer (no allocation per read) and the echo
 * writes a view of it back; the transport holds reading until that write is flushed,
 * so the buffer is never overwritten under a pending write.
 *
 *   node examples/servers/echo-buffered.ts [--host 127.0.0.1] [--port 8888]
 *
 * Prints `listening on HOST:PORT` and shuts down cleanly on SIGINT or SIGTERM.
 * `serve()` starts the same server on the running loop.
 */
import { BufferedProtocol, getRunningLoop, type Transport } from '../../src/index.ts';
import { serveFromCommandLine, tcpLimits, tcpServed, type ServeOptions, type Served } from './_served.ts';

/**
 * Buffer sizes: start small, grow while reads fill the buffer. Node reads a socket into
 * a buffer fixed before the bytes arrive (the transport asks for the next one right
 * after each read), so every open connection keeps its buffer, idle or not. The first
 * one is a 256-byte slice of Node's shared buffer pool (Buffer.allocUnsafe: 32
 * connections share one 8 KiB slab, no backing store of its own), which is all an idle
 * connection costs; the transport reads into exactly that slice and nothing else uses
 * it. A read that fills the buffer moves to one four times larger, of its own
 * (allocUnsafeSlow), up to one large read per message, which is what makes big
 * messages fast.
 */
const MIN_BUFFER = 256;
const MAX_BUFFER = 256 * 1024;

class EchoBufferedProtocol extends BufferedProtocol {
  #transport: Transport | null = null;
  #buf: Buffer | null = null;

  override connectionMade(transport: Transport): void {
    this.#transport = transport;
  }

  override getBuffer(_sizeHint: number): Uint8Array {
    this.#buf ??= Buffer.allocUnsafe(MIN_BUFFER);
    return this.#buf;
  }

  override bufferUpdated(nbytes: number): void {
    const buf = this.#buf!;
    this.#transport!.write(buf.subarray(0, nbytes));
    // A read that filled the buffer means more was waiting: read bigger next time.
    if (nbytes === buf.length && buf.length < MAX_BUFFER) this.#buf = Buffer.allocUnsafeSlow(Math.min(buf.length * 4, MAX_BUFFER));
  }

  override connectionLost(): void {
    this.#transport = null;
    this.#buf = null;
  }
}

/** Starts the BufferedProtocol echo server on the running loop. */
export async function serve(options: ServeOptions = {}): Promise<Served> {
  const log = options.log ?? console.error;
  const server = await getRunningLoop().createServer(() => new EchoBufferedProtocol(), { host: options.host ?? '127.0.0.1', port: options.port ?? 8888, ...tcpLimits(options) });
  return tcpServed('tcp echo (BufferedProtocol)', server, log);
}

if (import.meta.main) await serveFromCommandLine(serve, 8888);
