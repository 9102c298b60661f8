/**
 * Reading accepted server sockets through `onread`.
 *
 * Node accepts `onread` only in the `net.Socket` constructor, and `net.Server` builds
 * the sockets it accepts itself. So once a server listens, its listening handle's
 * `onconnection` is wrapped: each accepted handle goes straight into a `net.Socket`
 * built with {@link ONREAD}, with the server's connection count kept as Node keeps it
 * (and no throw-away socket per connection). That relies on undocumented internals
 * (`server._handle.onconnection`, `_connections`): they are feature-detected here, and
 * when anything looks different the server keeps Node's own accept path, its sockets
 * read through `'data'` events (a copy into the protocol's buffer for a
 * BufferedProtocol). Errors, `maxConnections` and handles of an unexpected kind go
 * through Node's original `onconnection` too.
 * @module
 */
import net from 'node:net';
import { ONREAD } from './socket-transport.ts';

interface HandleLike {
  readStart?: unknown;
  useUserBuffer?: unknown;
}
interface ListenHandle {
  onconnection?: (this: unknown, err: number, clientHandle: HandleLike | undefined) => void;
}
type ServerInternals = net.Server & { _handle: ListenHandle | null; _connections: number };
type SocketInternals = net.Socket & { _server: unknown; server: unknown };

let enabled = process.env.PROTOLOOP_NO_ONREAD === undefined || process.env.PROTOLOOP_NO_ONREAD === '' || process.env.PROTOLOOP_NO_ONREAD === '0';

/** @internal Turns the direct accept on or off for servers that start listening from now on (tests run both paths). Returns the previous setting. */
export function setRewrapAccepted(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  return was;
}

/**
 * Makes the listening `srv` hand each accepted connection to `onSocket` as a socket
 * that reads through {@link ONREAD}. Returns false (and changes nothing) when disabled
 * or when Node's internals do not look as expected; the caller then listens for
 * `'connection'` events.
 */
export function acceptWithOnread(srv: net.Server, onSocket: (socket: net.Socket) => void): boolean {
  if (!enabled) return false;
  const s = srv as ServerInternals;
  const handle = s._handle;
  if (handle === null || typeof handle !== 'object' || typeof handle.onconnection !== 'function' || typeof s._connections !== 'number') return false;
  const nodeOnConnection = handle.onconnection;
  handle.onconnection = function protoloopOnConnection(err, clientHandle) {
    if (
      err !== 0 && err !== undefined ||
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
      socket = new net.Socket({ handle: clientHandle, onread: ONREAD, allowHalfOpen: true, readable: true, writable: true } as unknown as net.SocketConstructorOpts) as SocketInternals;
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
