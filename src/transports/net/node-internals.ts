/**
 * The one place where the transports reach into Node's (and ws's) undocumented
 * internals. Each reach says why it is made and what happens when it is not there:
 * every one is feature-detected, and the fallback is a public API, slower but correct.
 *
 * | reach | why | fallback |
 * |---|---|---|
 * | `socket._handle.fd` + `fs.writeSync` | write(2) at once, no copy, no request object | `socket.write()` with a copy |
 * | `onread.buffer` called without `this` | the next read lands in the protocol's buffer | the module scratch buffer |
 * | `server._handle.onconnection`, `_connections` | accepted sockets read through `onread` | Node's accept, `'data'` events |
 * | Node's `'end'` listener `onReadableStreamEnd` | one listener per event, no array per socket | both listeners stay |
 * | ws's `_socket` | the client's socket when ws gives no response | none needed (ws always sets it) |
 * | a TLSSocket's `_parent` | the TCP socket under a server's TLS socket, whose PROXY header was read | none: peername is then the proxy's |
 *
 * Tests switch the fast paths off ({@link setDirectWrites}, {@link setRewrapAccepted})
 * to run the fallbacks too; `PROTOLOOP_NO_DIRECT_WRITE=1` and `PROTOLOOP_NO_ONREAD=1`
 * do the same from the environment.
 * @module
 */
import { writeSync, writevSync } from 'node:fs';
import net from 'node:net';
import type { Socket } from 'node:net';

const envOff = (name: string): boolean => {
  const v = process.env[name];
  return v !== undefined && v !== '' && v !== '0';
};

// ------------------------------------------------------------------ direct writes

let directWrites = !envOff('PROTOLOOP_NO_DIRECT_WRITE');

/** Turns direct writes on or off (tests run both paths). Returns the previous setting. */
export function setDirectWrites(on: boolean): boolean {
  const was = directWrites;
  directWrites = on;
  return was;
}

/**
 * The fd of a plain socket to `write(2)` to directly, or -1. Why: one system call and
 * no allocation for the common write (the kernel takes it all). The handle is looked
 * up each time: once the socket is destroyed it is gone (and its fd may be reused).
 * Fallback (-1): the socket's own `write()`.
 */
export function socketFd(socket: Socket): number {
  if (!directWrites) return -1;
  const fd = (socket as Socket & { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/** Bytes `write(2)` took (0 when the socket buffer is full), or -1 on an error the socket should report itself. */
export function tryWrite(fd: number, data: Uint8Array): number {
  try {
    return writeSync(fd, data);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'EAGAIN' || code === 'EWOULDBLOCK' ? 0 : -1;
  }
}

/** As {@link tryWrite}, for several chunks in one `writev(2)`. */
export function tryWritev(fd: number, chunks: Uint8Array[]): number {
  try {
    return writevSync(fd, chunks);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'EAGAIN' || code === 'EWOULDBLOCK' ? 0 : -1;
  }
}

// ------------------------------------------------------------------ Node's 'end' listener

/**
 * Removes Node's own `'end'` listener of a half-open socket (`onReadableStreamEnd`):
 * on a socket with `allowHalfOpen` it does nothing, and with ours beside it the event
 * would need a listener array (memory per connection). Fallback (another name, or
 * more listeners): both stay, which costs only that array.
 */
export function dropNodeEndListener(socket: Socket): void {
  if (!socket.allowHalfOpen) return;
  const own = socket.listeners('end');
  if (own.length === 1 && (own[0] as { name?: string }).name === 'onReadableStreamEnd') socket.removeListener('end', own[0] as () => void);
}

// ------------------------------------------------------------------ onread

/** What the `onread` hand-off calls: the next read's buffer, and the read that landed. */
export interface OnreadTarget {
  nextBuffer(socket: Socket): Uint8Array;
  read(socket: Socket, nread: number, buf: Uint8Array): void;
}

/**
 * Node's `onread` option for a socket reader. Node asks `onread.buffer()` for the next
 * read's buffer right after each read callback, but calls it without a `this` (not
 * documented either way): the callback leaves its socket in a module variable for the
 * `buffer()` call that follows. Fallback: when the variable is empty (Node asked at
 * another moment), `fallback` is returned, so a read is never lost.
 */
export function makeOnread(target: OnreadTarget, fallback: Uint8Array): { buffer: () => Uint8Array; callback: (nread: number, buf: Uint8Array) => boolean } {
  let lastReader: Socket | undefined;
  return {
    buffer: function onreadBuffer(): Uint8Array {
      const s = lastReader;
      lastReader = undefined;
      return s === undefined ? fallback : target.nextBuffer(s);
    },
    callback: function onreadCallback(this: Socket, nread: number, buf: Uint8Array): boolean {
      target.read(this, nread, buf);
      lastReader = this;
      return true;
    },
  };
}

// ------------------------------------------------------------------ accept with onread

interface HandleLike {
  readStart?: unknown;
  useUserBuffer?: unknown;
}
interface ListenHandle {
  onconnection?: (this: unknown, err: number, clientHandle: HandleLike | undefined) => void;
}
type ServerInternals = net.Server & { _handle: ListenHandle | null; _connections: number };
type SocketInternals = net.Socket & { _server: unknown; server: unknown };

let rewrapAccepted = !envOff('PROTOLOOP_NO_ONREAD');

/** Turns the direct accept on or off for servers that start listening from now on (tests run both paths). Returns the previous setting. */
export function setRewrapAccepted(on: boolean): boolean {
  const was = rewrapAccepted;
  rewrapAccepted = on;
  return was;
}

/**
 * Makes the listening `srv` hand each accepted connection to `onSocket` as a socket
 * that reads through `onread`. Why: Node accepts `onread` only in the `net.Socket`
 * constructor, and `net.Server` builds the sockets it accepts itself; so the listening
 * handle's `onconnection` is wrapped, each accepted handle goes straight into a
 * `net.Socket` built with `onread`, and the server's connection count is kept as Node
 * keeps it. Fallback: returns false (and changes nothing) when disabled or when Node's
 * internals look different; the caller listens for `'connection'` events. Errors,
 * Node's `maxConnections` and handles of an unexpected kind go through Node's own
 * `onconnection` too.
 */
export function acceptWithOnread(srv: net.Server, onread: object, onSocket: (socket: net.Socket) => void): boolean {
  if (!rewrapAccepted) return false;
  const s = srv as ServerInternals;
  const handle = s._handle;
  if (handle === null || typeof handle !== 'object' || typeof handle.onconnection !== 'function' || typeof s._connections !== 'number') return false;
  const nodeOnConnection = handle.onconnection;
  handle.onconnection = function protoloopOnConnection(err, clientHandle) {
    if (
      (err !== 0 && err !== undefined) ||
      clientHandle === undefined ||
      typeof clientHandle.readStart !== 'function' ||
      typeof clientHandle.useUserBuffer !== 'function' ||
      (srv.maxConnections != null && s._connections >= srv.maxConnections)
    ) {
      nodeOnConnection.call(this, err, clientHandle);
      return;
    }
    let socket: SocketInternals;
    try {
      socket = new net.Socket({ handle: clientHandle, onread, allowHalfOpen: true, readable: true, writable: true } as unknown as net.SocketConstructorOpts) as SocketInternals;
    } catch {
      nodeOnConnection.call(this, err, clientHandle);
      return;
    }
    // As Node's own accept does: the server counts the connection until the socket closes.
    s._connections++;
    socket.server = srv;
    socket._server = srv;
    onSocket(socket);
  };
  return true;
}

// ------------------------------------------------------------------ ws

/**
 * The socket under a ws client WebSocket when the upgrade response is not at hand.
 * Why: ws exposes it only as `_socket`. Fallback: undefined (the caller has the
 * response's socket in every path ws documents).
 */
export function wsSocket(ws: object): Socket | undefined {
  return (ws as { _socket?: Socket })._socket;
}

// ------------------------------------------------------------------ TLS

/** The TCP socket a server-side TLSSocket wraps (`_parent`), or null when Node does not say. */
export function tlsParentSocket(socket: object): Socket | null {
  const parent = (socket as { _parent?: unknown })._parent;
  return parent instanceof net.Socket ? parent : null;
}
