/**
 * A worker's listening sockets, kept open across a rolling restart (reusePort only).
 *
 * Why: with SO_REUSEPORT every worker has a listening socket of its own, and on Linux
 * closing one resets the connections waiting in its accept queue (and the handshakes
 * under way on it) unless `net.ipv4.tcp_migrate_req` is set, which it is not by
 * default. A worker that stops listening while clients connect therefore drops some of
 * them, however quickly it drains. So a rolling restart never closes a socket: the old
 * worker sends its listening sockets to the primary (a duplicate of the descriptor, as
 * node:cluster sends them), the primary sends them to the new worker, and the new
 * worker's `listen({ port, reusePort: true })` on the pool's port takes the socket it
 * was given instead of binding another. For a moment both accept on the same socket;
 * then the old one closes its copy, which leaves the socket (and its queue) open in the
 * new worker.
 *
 * The `listen` of `net.Server` is wrapped in worker processes only, as node:cluster
 * itself routes a worker's `listen` through the primary; a listen that is not a
 * reusePort one on the pool's port goes through unchanged.
 * @module
 */
import net from 'node:net';

/** A listening TCP handle as Node's IPC carries it (`net.Native`). */
export interface ListenHandle {
  getsockname?(out: Record<string, unknown>): number;
  close(): void;
}

type ListenArgs = Parameters<net.Server['listen']>;

const owned = new Set<net.Server>();
const inherited: ListenHandle[] = [];
let installed = false;

function addressOf(h: ListenHandle): string | undefined {
  const out: Record<string, unknown> = {};
  if (typeof h.getsockname !== 'function' || h.getsockname(out) !== 0) return undefined;
  return typeof out.address === 'string' ? out.address : undefined;
}

/** The inherited socket for a listen on `host` (an exact address match first, then any for a name). */
function take(host: unknown): ListenHandle | undefined {
  let i = inherited.findIndex((h) => addressOf(h) === host);
  if (i < 0 && (typeof host !== 'string' || net.isIP(host) === 0)) i = 0;
  if (i < 0 || i >= inherited.length) return undefined;
  return inherited.splice(i, 1)[0];
}

/**
 * Wraps `net.Server.prototype.listen` so that reusePort listens on `port` are recorded
 * (for {@link ownedListeners}) and take an inherited socket when there is one.
 */
export function trackListeners(port: number): void {
  if (installed) return;
  installed = true;
  const original = net.Server.prototype.listen;
  net.Server.prototype.listen = function protoloopWorkerListen(this: net.Server, ...args: ListenArgs): net.Server {
    const o = args[0] as (net.ListenOptions & { reusePort?: boolean }) | undefined;
    if (o === null || typeof o !== 'object' || o.reusePort !== true || Number(o.port) !== port) return original.apply(this, args);
    owned.add(this);
    this.once('close', () => owned.delete(this));
    const handle = take(o.host);
    if (handle === undefined) return original.apply(this, args);
    const cb = args.find((a) => typeof a === 'function') as (() => void) | undefined;
    return (original as (h: unknown, backlog?: number, cb?: () => void) => net.Server).call(this, handle, o.backlog, cb);
  } as typeof original;
}

/** Sockets given by the worker this one replaces, for its own listens. */
export function inherit(handle: ListenHandle): void {
  inherited.push(handle);
}

/** Closes inherited sockets that no listen took (the new code listens on fewer). */
export function dropUnused(): number {
  const n = inherited.length;
  for (const h of inherited.splice(0)) h.close();
  return n;
}

/** The handles of this worker's reusePort servers that still listen. */
export function ownedListeners(): ListenHandle[] {
  const out: ListenHandle[] = [];
  for (const s of owned) {
    const h = (s as net.Server & { _handle?: ListenHandle | null })._handle;
    if (s.listening && h != null) out.push(h);
  }
  return out;
}
