/**
 * UDP: the datagram transport over `dgram`, and `createDatagramEndpoint`.
 *
 * Send and receive errors (ICMP port unreachable on a connected socket, ...) go to the
 * protocol's `errorReceived(exc)`; the endpoint stays open, as in asyncio.
 * @module
 */
import dgram from 'node:dgram';
import { inspect } from 'node:util';
import { InvalidArgumentError, TransportClosedError } from '../../errors.ts';
import { outsideTask } from '../../loop/internal.ts';
import { kDescribe } from '../../loop/symbols.ts';
import type { Loop } from '../../loop/loop.ts';
import { trackResource, type ResourceToken } from '../../loop/resources.ts';
import type { DatagramAddress, DatagramProtocol } from '../../protocols/protocols.ts';
import { TransportBase, type ConnectionInfo } from '../base.ts';
import { kTransport } from '../../loop/symbols.ts';
import { mapSocketError } from '../map-error.ts';
import type { DatagramTransport } from '../transports.ts';

/** Options of `loop.createDatagramEndpoint()`. */
export interface DatagramEndpointOptions {
  /** Local address to bind: `{ address?, port? }`. Default: any address, a port the OS picks. */
  localAddr?: { address?: string; port?: number };
  /** Remote address to connect to: then `sendto(data)` needs no address and only its datagrams arrive. */
  remoteAddr?: { address: string; port: number };
  /** 4 or 6. Default: from the addresses given, else 4. */
  family?: 4 | 6;
  /** SO_REUSEADDR. Default false. */
  reuseAddress?: boolean;
  /** SO_REUSEPORT (Linux, BSDs; Node >= 22.12). Default false. */
  reusePort?: boolean;
  /** SO_BROADCAST. Default false. */
  allowBroadcast?: boolean;
  /** IPV6_V6ONLY for family 6. Default false. */
  ipv6Only?: boolean;
}

type OwnedSocket = dgram.Socket & { [kTransport]?: DatagramSocketTransport };

function dgramOnMessage(this: OwnedSocket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
  this[kTransport]?.onMessage(msg, rinfo);
}
function dgramOnError(this: OwnedSocket, err: Error): void {
  this[kTransport]?.onError(err);
}
function dgramOnClose(this: OwnedSocket): void {
  this[kTransport]?.onClose();
}
function abortDatagram(t: DatagramSocketTransport): void {
  t.abort();
}

/**
 * A UDP transport. Created by `loop.createDatagramEndpoint()`. Its lifecycle and exit
 * path are the base's (src/transports/base.ts):
 * ```
 * open --close()--> closing --(queued sends done)--> closed   connectionLost(undefined)
 * open --abort() or a protocol exception-----------> closed   connectionLost(exc)
 * ```
 */
export class DatagramSocketTransport extends TransportBase<DatagramProtocol> implements DatagramTransport {
  readonly #socket: OwnedSocket;
  #inFlight = 0;
  readonly #remote: DatagramAddress | undefined;
  readonly #token: ResourceToken;
  readonly #onSent: (err: Error | null) => void;
  readonly #sentSize: number[] = [];

  /** @internal Use `loop.createDatagramEndpoint()`. */
  constructor(loop: Loop, socket: dgram.Socket, protocol: DatagramProtocol, remote: DatagramAddress | undefined) {
    super(loop, protocol);
    this.#socket = socket as OwnedSocket;
    this.#remote = remote;
    this.flowControl();
    // One per endpoint (not per datagram): dgram calls it without a `this`.
    this.#onSent = (err) => this.#sent(err);
    this.#token = trackResource(loop, 'datagram transport', this, abortDatagram);
    this.#socket[kTransport] = this;
    this.#socket.on('message', dgramOnMessage).on('error', dgramOnError).on('close', dgramOnClose);
    loop.callSoon(datagramMade, this);
  }

  /** @internal */
  makeConnection(): void {
    this.made = true;
    this.callConnectionMade();
  }

  /**
   * Sends one datagram to `addr`, or to the remote address the endpoint was connected
   * to. Throws {@link TransportClosedError} after close/abort, {@link InvalidArgumentError}
   * for a missing or extra address or data that is not a string/Uint8Array.
   */
  sendto(data: Uint8Array | string, addr?: DatagramAddress): void {
    if (typeof data !== 'string' && !(data instanceof Uint8Array)) throw new InvalidArgumentError('sendto() takes a string or a Uint8Array');
    if (this.lifecycle !== 'open') throw new TransportClosedError('sendto() on a closed datagram transport');
    if (this.#remote !== undefined && addr !== undefined && (addr.address !== this.#remote.address || addr.port !== this.#remote.port)) {
      throw new InvalidArgumentError(`sendto() on a connected endpoint may only target ${this.#remote.address}:${this.#remote.port}`);
    }
    if (this.#remote === undefined && addr === undefined) throw new InvalidArgumentError('sendto() needs an address: the endpoint has no remoteAddr');
    // dgram keeps a reference until the send completes: copy, as the caller may reuse its buffer.
    const buf = typeof data === 'string' ? Buffer.from(data) : Buffer.copyBytesFrom(data);
    this.#inFlight += buf.length;
    this.#sentSize.push(buf.length);
    if (this.#remote !== undefined) this.#socket.send(buf, this.#onSent);
    else this.#socket.send(buf, addr!.port, addr!.address, this.#onSent);
    this.afterWrite(this.#inFlight);
  }

  #sent(err: Error | null): void {
    this.#inFlight -= this.#sentSize.shift() ?? 0;
    if (err !== null && this.lifecycle !== 'closed') this.#error(mapSocketError(err));
    if (this.lifecycle === 'closing' && this.#inFlight === 0) this.forceClose(undefined);
    else if (this.lifecycle === 'open') this.afterDrain(this.#inFlight);
  }

  /** @internal */
  onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.lifecycle !== 'open') return;
    const addr: DatagramAddress = { address: rinfo.address, port: rinfo.port, family: rinfo.family as 'IPv4' | 'IPv6' };
    if (this.loop.isRunning() && this.made) this.callProtocol('datagramReceived', msg, addr);
    else this.loop.callSoon(datagramDeliver, this, msg, addr);
  }

  /** @internal */
  deliver(msg: Buffer, addr: DatagramAddress): void {
    if (this.lifecycle === 'open') this.callProtocol('datagramReceived', msg, addr);
  }

  /** @internal */
  onError(err: Error): void {
    if (this.lifecycle === 'closed') return;
    this.#error(mapSocketError(err));
  }

  #error(exc: Error): void {
    if (this.loop.isRunning() && this.made) this.callProtocol('errorReceived', exc);
    else this.loop.callSoon(datagramError, this, exc);
  }

  /** @internal */
  deliverError(exc: Error): void {
    if (this.lifecycle !== 'closed') this.callProtocol('errorReceived', exc);
  }

  /** @internal */
  onClose(): void {
    this.forceClose(undefined);
  }

  /** Bytes handed to `sendto()` and not yet sent. */
  override getWriteBufferSize(): number {
    return this.#inFlight;
  }

  /** Closes once queued datagrams are sent; `connectionLost(undefined)` follows. Idempotent. */
  close(): void {
    if (this.lifecycle !== 'open') return;
    this.lifecycle = 'closing';
    this.closedByUser = true;
    if (this.#inFlight === 0) this.forceClose(undefined);
  }

  /** Closes at once, dropping queued datagrams. Idempotent. */
  abort(): void {
    this.closedByUser = true;
    this.forceClose(undefined);
  }

  protected override release(): void {
    this.#token.untrack();
    try {
      this.#socket.close();
    } catch {
      // already closed
    }
  }

  protected override afterLost(): void {
    this.#socket[kTransport] = undefined;
  }

  protected override connectionInfo(): ConnectionInfo {
    return { kind: 'udp', local: this.getExtraInfo('sockname'), peer: this.#remote ?? undefined };
  }

  /** `sockname` (`{ address, port, family }`), `peername` (if connected), `socket` (the `dgram.Socket`). */
  getExtraInfo<T = unknown>(name: string, defaultValue?: T): T | undefined {
    try {
      switch (name) {
        case 'socket': return this.#socket as T;
        case 'sockname': return this.#socket.address() as T;
        case 'peername': return (this.#remote ?? defaultValue) as T;
      }
    } catch {
      return defaultValue;
    }
    return defaultValue;
  }

  /** @internal */
  [kDescribe](): string {
    return this.toString();
  }

  override toString(): string {
    let local = '';
    try {
      const a = this.#socket.address();
      local = ` local=${a.address}:${a.port}`;
    } catch {
      // not bound or closed
    }
    const remote = this.#remote === undefined ? '' : ` remote=${this.#remote.address}:${this.#remote.port}`;
    return `<DatagramSocketTransport ${this.lifecycle}${local}${remote} inFlight=${this.#inFlight}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

function datagramMade(t: DatagramSocketTransport): void {
  t.makeConnection();
}
function datagramDeliver(t: DatagramSocketTransport, msg: Buffer, addr: DatagramAddress): void {
  t.deliver(msg, addr);
}
function datagramError(t: DatagramSocketTransport, exc: Error): void {
  t.deliverError(exc);
}

function once(socket: dgram.Socket, run: (cb: () => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    socket.once('error', onError);
    run(() => {
      socket.off('error', onError);
      resolve();
    });
  });
}

/**
 * Creates a UDP endpoint. Resolves once `connectionMade` ran. Rejects with a typed
 * error (`ConnectionError` with `code` such as `EADDRINUSE`, `DnsError`) if binding or
 * connecting fails, {@link InvalidArgumentError} for bad options.
 */
export async function createDatagramEndpoint<P extends DatagramProtocol>(loop: Loop, protocolFactory: () => P, options: DatagramEndpointOptions = {}): Promise<[DatagramSocketTransport, P]> {
  if (typeof protocolFactory !== 'function') throw new InvalidArgumentError('createDatagramEndpoint() needs a protocol factory');
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('createDatagramEndpoint() options must be an object');
  const { localAddr, remoteAddr } = options;
  if (remoteAddr !== undefined && (typeof remoteAddr.address !== 'string' || typeof remoteAddr.port !== 'number')) {
    throw new InvalidArgumentError('createDatagramEndpoint() options.remoteAddr must be { address, port }');
  }
  const family = options.family ?? (isV6(localAddr?.address) || isV6(remoteAddr?.address) ? 6 : 4);
  if (family !== 4 && family !== 6) throw new InvalidArgumentError('createDatagramEndpoint() options.family must be 4 or 6');
  const socket = outsideTask(() =>
    dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', reuseAddr: options.reuseAddress ?? false, ipv6Only: options.ipv6Only ?? false, ...(options.reusePort === true ? { reusePort: true } : {}) } as dgram.SocketOptions),
  );
  try {
    await once(socket, (cb) => socket.bind({ address: localAddr?.address, port: localAddr?.port ?? 0 }, cb));
    if (options.allowBroadcast === true) socket.setBroadcast(true);
    if (remoteAddr !== undefined) await once(socket, (cb) => socket.connect(remoteAddr.port, remoteAddr.address, cb));
  } catch (err) {
    closeQuietly(socket);
    throw mapSocketError(err, 'createDatagramEndpoint()');
  }
  let protocol: P;
  try {
    protocol = protocolFactory();
  } catch (err) {
    closeQuietly(socket);
    throw err;
  }
  let remote: DatagramAddress | undefined;
  if (remoteAddr !== undefined) {
    const r = socket.remoteAddress();
    remote = { address: r.address, port: r.port, family: r.family as 'IPv4' | 'IPv6' };
  }
  const transport = new DatagramSocketTransport(loop, socket, protocol, remote);
  const made = loop.createFuture<void>('datagram connectionMade');
  loop.callSoon(resolveVoid, made);
  await made;
  return [transport, protocol];
}

function resolveVoid(f: { done(): boolean; setResult(v: undefined): void }): void {
  if (!f.done()) f.setResult(undefined);
}

function isV6(address: string | undefined): boolean {
  return address !== undefined && address.includes(':');
}

function closeQuietly(socket: dgram.Socket): void {
  try {
    socket.close();
  } catch {
    // not running
  }
}
