/**
 * The socket transport's write path.
 *
 * `write(view)` never lets a pending write see the caller's bytes change. On a plain
 * socket with nothing queued the bytes go to `write(2)` at once (non-blocking, on the
 * socket's fd: see node-internals.ts) and only the tail the kernel did not take is
 * copied and queued on the socket, so nothing keeps a reference to the caller's
 * buffer and the common case costs one system call and no allocation. Otherwise
 * (TLS, a queue, no fd, `PROTOLOOP_NO_DIRECT_WRITE=1`) the bytes are copied and
 * queued, except a view of the buffer the transport reads into (a BufferedProtocol
 * echoing its own buffer), which is queued as is while reading is held until it is
 * flushed.
 * @module
 */
import type net from 'node:net';
import { socketFd, tryWrite, tryWritev } from './node-internals.ts';

/** What the write path needs of its transport (SocketTransport implements it). */
export interface WriteHost {
  readonly socket: net.Socket;
  /** A plain socket (not TLS): writes may go straight to the fd. */
  readonly direct: boolean;
  /** Whether reading is held until a write of the read buffer is flushed. */
  readonly readHeld: boolean;
  isReadBufferView(data: Uint8Array): boolean;
  holdReading(hold: boolean): void;
  /** Whether a write that brings the buffer to `size` bytes needs a completion callback. */
  wantsWriteCallback(size: number): boolean;
  /** The one completion callback of this transport's writes. */
  writeCallback(): (err?: Error | null) => void;
}

/** An owned copy of `src[start, end)` (small ones from Node's buffer pool). */
export function copyOut(src: Uint8Array, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start);
  out.set(start === 0 && end === src.byteLength ? src : src.subarray(start, end));
  return out;
}

/**
 * The fd to write to directly, or -1: only for a plain socket with nothing queued,
 * corked, connecting or ending, so the bytes go out in order.
 */
function directFd(t: WriteHost): number {
  const s = t.socket;
  if (!t.direct || s.writableLength !== 0 || s.connecting || s.writableCorked !== 0 || s.writableEnded || s.destroyed) return -1;
  return socketFd(s);
}

/** Writes one chunk: directly when possible, else copied (or held) and queued. */
export function send(t: WriteHost, data: Uint8Array | string): void {
  const fd = directFd(t);
  if (fd >= 0) {
    // write(2) at once: nothing keeps a reference to the caller's bytes, and only the
    // tail the kernel did not take is copied.
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    const n = tryWrite(fd, bytes);
    if (n === bytes.byteLength) return;
    if (n >= 0) {
      queue(t, typeof data === 'string' ? bytes.subarray(n) : copyOut(bytes, n, bytes.byteLength), false);
      return;
    }
    // An error: the socket's own write meets it again and reports it ('error').
  }
  let chunk = data;
  let hold = false;
  if (typeof data !== 'string') {
    if (t.isReadBufferView(data)) hold = true;
    else chunk = copyOut(data, 0, data.byteLength);
  }
  queue(t, chunk, hold);
}

/** Writes several chunks in order, in one `writev(2)` where possible. */
export function sendMany(t: WriteHost, chunks: Array<Uint8Array | string>): void {
  const s = t.socket;
  const fd = directFd(t);
  if (fd >= 0) {
    const bufs: Uint8Array[] = [];
    // Strings are encoded into buffers of our own; the caller's bytes are copied if queued.
    const owned: boolean[] = [];
    for (const c of chunks) {
      if (c.length === 0) continue;
      bufs.push(typeof c === 'string' ? Buffer.from(c) : c);
      owned.push(typeof c === 'string');
    }
    let n = tryWritev(fd, bufs);
    if (n >= 0) {
      let i = 0;
      while (i < bufs.length && n >= bufs[i]!.byteLength) n -= bufs[i++]!.byteLength;
      if (i < bufs.length) {
        s.cork();
        try {
          for (; i < bufs.length; i++, n = 0) {
            const b = bufs[i]!;
            queue(t, owned[i] === true ? b.subarray(n) : copyOut(b, n, b.byteLength), false);
          }
        } finally {
          s.uncork();
        }
      }
      return;
    }
  }
  s.cork();
  try {
    for (const c of chunks) if (c.length > 0) send(t, c);
  } finally {
    s.uncork();
  }
}

/** Hands `chunk` to the socket; `hold`: it is a view of our read buffer, so reading waits until it is flushed. */
function queue(t: WriteHost, chunk: Uint8Array | string, hold: boolean): void {
  const s = t.socket;
  // A completion callback only when someone waits for the buffer to shrink.
  if (hold || t.readHeld || t.wantsWriteCallback(s.writableLength + chunk.length)) s.write(chunk, t.writeCallback());
  else s.write(chunk);
  // The write still references our read buffer: stop reading into it until flushed.
  if (hold && s.writableLength > 0 && !t.readHeld) t.holdReading(true);
}
