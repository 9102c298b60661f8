/**
 * `loop.sendfile()`: sends a file over a stream transport.
 *
 * Node has no zero-copy `sendfile(2)` for sockets, so the only path is the fallback:
 * read the file in 64 KiB chunks and `write()` them, waiting for the socket to drain
 * whenever the transport's buffer goes above its high-water mark (memory stays bounded
 * by the water marks whatever the file size). With `fallback: false` the call rejects
 * with `SendfileNotAvailableError`, as asyncio's does where the OS offers nothing.
 * @module
 */
import type net from 'node:net';
import { open, type FileHandle } from 'node:fs/promises';
import { InvalidArgumentError, SendfileNotAvailableError, TransportClosedError } from '../../errors.ts';
import type { Loop } from '../../loop/loop.ts';
import type { Transport } from '../transports.ts';

/** Options of `loop.sendfile()`. */
export interface SendfileOptions {
  /** Where to start in the file, bytes. Default 0. */
  offset?: number;
  /** How many bytes to send at most. Default: up to the end of the file. */
  count?: number;
  /** Read and write chunks when no zero-copy path exists (always, on Node). Default true. */
  fallback?: boolean;
}

const CHUNK = 64 * 1024;

/**
 * Sends `file` (a path, a `FileHandle` or a file descriptor) over `transport` and
 * resolves with the number of bytes sent. A FileHandle or descriptor is not closed.
 * Rejects with `SendfileNotAvailableError` when `fallback` is false,
 * `TransportClosedError` if the transport closes meanwhile, `InvalidArgumentError` for bad options.
 */
export async function sendfile(loop: Loop, transport: Transport, file: string | FileHandle | number, options: SendfileOptions = {}): Promise<number> {
  const offset = options.offset ?? 0;
  const count = options.count;
  if (!(Number.isInteger(offset) && offset >= 0)) throw new InvalidArgumentError('sendfile() offset must be an integer >= 0');
  if (count !== undefined && !(Number.isInteger(count) && count >= 0)) throw new InvalidArgumentError('sendfile() count must be an integer >= 0');
  if (transport.isClosing()) throw new TransportClosedError('sendfile() on a closing transport');
  if (options.fallback === false) throw new SendfileNotAvailableError('Node offers no zero-copy sendfile for sockets; call sendfile() with fallback: true');
  const socket = transport.getExtraInfo<net.Socket>('socket');
  let fh: FileHandle;
  let owned = false;
  if (typeof file === 'string') {
    fh = await open(file, 'r');
    owned = true;
  } else if (typeof file === 'number') {
    fh = await open(`/dev/fd/${file}`, 'r');
    owned = true;
  } else {
    fh = file;
  }
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    let sent = 0;
    let pos = offset;
    for (;;) {
      const want = count === undefined ? CHUNK : Math.min(CHUNK, count - sent);
      if (want <= 0) break;
      const { bytesRead } = await fh.read(buf, 0, want, pos);
      if (bytesRead === 0) break;
      if (transport.isClosing()) throw new TransportClosedError('the transport closed during sendfile()');
      transport.write(buf.subarray(0, bytesRead));
      sent += bytesRead;
      pos += bytesRead;
      const [, high] = transport.getWriteBufferLimits();
      if (transport.getWriteBufferSize() > high && socket !== undefined) await drained(loop, socket, transport);
    }
    return sent;
  } finally {
    if (owned) await fh.close();
  }
}

async function drained(loop: Loop, socket: net.Socket, transport: Transport): Promise<void> {
  const fut = loop.createFuture<void>('sendfile drain');
  const done = (): void => {
    if (!fut.done()) fut.setResult(undefined);
  };
  socket.once('drain', done);
  socket.once('close', done);
  try {
    await fut;
  } finally {
    socket.off('drain', done);
    socket.off('close', done);
  }
  if (transport.isClosing() && transport.getWriteBufferSize() > 0) throw new TransportClosedError('the transport closed during sendfile()');
}
