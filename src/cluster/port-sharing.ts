/**
 * How the workers share one port, decided at run time.
 *
 * `reusePort` (SO_REUSEPORT): each worker has its own listening socket and the kernel
 * spreads connections over them; Node has the option from 22.12 / 23.1, and only on
 * Linux and FreeBSD does it do what we need (elsewhere listen fails, nodejs/node#61018).
 * Otherwise node:cluster's round-robin: the primary accepts and hands each connection
 * to the next worker. The probe binds two sockets to one port, so a platform or a Node
 * that silently ignores the option is found out before any worker starts.
 * @module
 */
import net from 'node:net';
import { InvalidArgumentError } from '../errors.ts';

/** `'reusePort'` (kernel) or `'cluster'` (round-robin in the primary). */
export type PortSharing = 'reusePort' | 'cluster';

/** Whether this Node has the `reusePort` listen option at all. */
export function nodeHasReusePort(version: string = process.versions.node, platform: string = process.platform): boolean {
  if (platform !== 'linux' && platform !== 'freebsd') return false;
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

function listen(options: net.ListenOptions & { reusePort?: boolean }): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(options, () => {
      srv.off('error', reject);
      resolve(srv);
    });
  });
}

function close(srv: net.Server | undefined): Promise<void> {
  return new Promise((resolve) => (srv === undefined ? resolve() : srv.close(() => resolve())));
}

/**
 * Picks the port sharing and, when `port` is 0, a free port for every worker to use
 * (the port is free when the probe closes; another process could take it before the
 * workers bind, as with any port picked in advance).
 */
export async function choosePortSharing(host: string | undefined, port: number, wanted: PortSharing | 'auto'): Promise<{ sharing: PortSharing; port: number }> {
  const tryReuse = wanted !== 'cluster' && nodeHasReusePort();
  let a: net.Server | undefined;
  let b: net.Server | undefined;
  try {
    if (tryReuse) {
      try {
        a = await listen({ host, port, reusePort: true });
        const picked = (a.address() as net.AddressInfo).port;
        b = await listen({ host, port: picked, reusePort: true });
        return { sharing: 'reusePort', port: picked };
      } catch {
        await close(a);
        await close(b);
        a = b = undefined;
      }
    }
    if (wanted === 'reusePort') throw new InvalidArgumentError(`portSharing: 'reusePort' is not available on this platform or Node (${process.platform}, Node ${process.versions.node}): use 'auto' or 'cluster'`);
    a = await listen({ host, port });
    return { sharing: 'cluster', port: (a.address() as net.AddressInfo).port };
  } finally {
    await close(a);
    await close(b);
  }
}
