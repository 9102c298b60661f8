/**
 * The PROXY protocol (HAProxy's, versions 1 and 2): a load balancer that passes TCP
 * connections on (HAProxy `send-proxy`/`send-proxy-v2`, nginx `proxy_protocol on`,
 * AWS NLB, ...) writes one header before the client's bytes, naming the client's
 * address. Node does not parse it (nodejs/node#17126) and no npm parser is both
 * maintained and incremental, so this module is a small one: {@link ProxyHeaderParser}
 * is an explicit state machine fed chunk by chunk, and {@link readProxyHeader} runs
 * it on an accepted socket before anything else (TLS, HTTP, WebSocket) reads it.
 *
 * Only headers from {@link ProxyProtocolOptions.trustedProxies} are believed: a
 * connection from anywhere else, or a header that does not parse, fails with
 * {@link ProxyProtocolError} and only that connection is closed.
 *
 * Spec: https://www.haproxy.org/download/3.0/doc/proxy-protocol.txt
 * @module
 */
import net from 'node:net';
import { InvalidArgumentError, ProxyProtocolError } from '../../errors.ts';

/** Which header versions a server accepts. `'any'` tells them apart by the first byte. */
export type ProxyProtocolVersion = 'v1' | 'v2' | 'any';

/** Server options for the PROXY protocol. */
export interface ProxyProtocolOptions {
  /** Expect a PROXY header on every connection. Default: none (no header is read). */
  proxyProtocol?: ProxyProtocolVersion;
  /**
   * Addresses or CIDR blocks (`'10.0.0.0/8'`, `'::1'`, `'127.0.0.1'`) of the proxies
   * whose headers are believed. Required with `proxyProtocol`; a connection from any
   * other address is closed with `ProxyProtocolError` (`ERR_PROTOLOOP_PROXY_UNTRUSTED`).
   */
  trustedProxies?: readonly string[];
  /** How long (ms) the proxy may take to send the whole header. Default 5000. */
  proxyHeaderTimeout?: number;
}

/** The address a PROXY header carried. */
export interface ProxyAddress {
  /** `'IPv4'`, `'IPv6'` or `'unix'`. */
  family: 'IPv4' | 'IPv6' | 'unix';
  /** The client's address (a path for `'unix'`). */
  address: string;
  /** The client's port (0 for `'unix'`). */
  port: number;
  /** The address the client connected to, as the proxy saw it. */
  destAddress: string;
  destPort: number;
}

/** A parsed header: `address` is null for v1 `UNKNOWN`, v2 `LOCAL` and v2 `UNSPEC` (use the socket's own). */
export interface ProxyHeader {
  version: 1 | 2;
  address: ProxyAddress | null;
  /** v2 TLVs after the addresses (type, value), unparsed. */
  tlvs: Array<[type: number, value: Buffer]>;
}

/** The v2 signature: `\r\n\r\n\0\r\nQUIT\n`. */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** A v1 header is at most 107 bytes, CRLF included (the spec's bound). */
export const V1_MAX = 107;
const V1_PREFIX = Buffer.from('PROXY ');
/** Signature, version/command, family/transport, length. */
const V2_FIXED = 16;
/** Address block sizes of v2 by family nibble: INET, INET6, UNIX. */
const V2_ADDRESS_SIZE: Record<number, number> = { 1: 12, 2: 36, 3: 216 };

// Parser states, in the order a header goes through them.
const START = 0; // nothing decided: which version is it?
const V1_LINE = 1; // reading "PROXY ...\r\n"
const V2_HEAD = 2; // reading the 16 fixed bytes
const V2_BODY = 3; // reading the addresses and TLVs
const DONE = 4;
const FAILED = 5;

/** What {@link ProxyHeaderParser.feed} found. */
export type ParseResult = { done: false } | { done: true; header: ProxyHeader; rest: Buffer };

/**
 * An incremental PROXY header parser. `feed()` each chunk as it arrives; it returns
 * `{ done: false }` until the header is complete, then the header and the bytes after
 * it (the client's first bytes). Throws {@link ProxyProtocolError} as soon as the
 * bytes cannot be a valid header (it never waits for more bytes to reject a bad prefix).
 */
export class ProxyHeaderParser {
  #state = START;
  readonly #accept: ProxyProtocolVersion;
  #buffered: Buffer = Buffer.alloc(0);
  #bodyLength = 0;

  constructor(accept: ProxyProtocolVersion = 'any') {
    this.#accept = accept;
  }

  feed(chunk: Buffer): ParseResult {
    if (this.#state === DONE || this.#state === FAILED) throw new ProxyProtocolError('ERR_PROTOLOOP_PROXY_MALFORMED', 'the PROXY header parser was fed after it finished');
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    try {
      return this.#step();
    } catch (err) {
      this.#state = FAILED;
      throw err;
    }
  }

  #step(): ParseResult {
    const b = this.#buffered;
    for (;;) {
      switch (this.#state) {
        case START: {
          if (b.length === 0) return { done: false };
          if (b[0] === V1_PREFIX[0] && this.#accept !== 'v2') this.#state = V1_LINE;
          else if (b[0] === V2_SIGNATURE[0] && this.#accept !== 'v1') this.#state = V2_HEAD;
          else throw malformed(`expected a PROXY protocol ${this.#accept === 'any' ? 'v1 or v2' : this.#accept} header`);
          break;
        }
        case V1_LINE: {
          const n = Math.min(b.length, V1_PREFIX.length);
          if (b.compare(V1_PREFIX, 0, n, 0, n) !== 0) throw malformed('a v1 header starts with "PROXY "');
          const lf = b.indexOf(0x0a);
          if (lf === -1) {
            if (b.length >= V1_MAX) throw malformed(`a v1 header is at most ${V1_MAX} bytes`);
            return { done: false };
          }
          if (lf + 1 > V1_MAX) throw malformed(`a v1 header is at most ${V1_MAX} bytes`);
          if (b[lf - 1] !== 0x0d) throw malformed('a v1 header ends with CRLF');
          const header = parseV1(b.toString('latin1', V1_PREFIX.length, lf - 1));
          return this.#finish(header, lf + 1);
        }
        case V2_HEAD: {
          const n = Math.min(b.length, V2_SIGNATURE.length);
          if (b.compare(V2_SIGNATURE, 0, n, 0, n) !== 0) throw malformed('bad v2 signature');
          if (b.length < V2_FIXED) return { done: false };
          const version = b[12]! >> 4;
          const command = b[12]! & 0x0f;
          if (version !== 2) throw malformed(`unknown v2 version ${version}`);
          if (command > 1) throw malformed(`unknown v2 command ${command}`);
          this.#bodyLength = b.readUInt16BE(14);
          this.#state = V2_BODY;
          break;
        }
        case V2_BODY: {
          if (b.length < V2_FIXED + this.#bodyLength) return { done: false };
          const header = parseV2(b, this.#bodyLength);
          return this.#finish(header, V2_FIXED + this.#bodyLength);
        }
        default:
          throw malformed('unreachable parser state');
      }
    }
  }

  #finish(header: ProxyHeader, length: number): ParseResult {
    this.#state = DONE;
    const rest = this.#buffered.subarray(length);
    this.#buffered = Buffer.alloc(0);
    return { done: true, header, rest };
  }
}

function malformed(what: string): ProxyProtocolError {
  return new ProxyProtocolError('ERR_PROTOLOOP_PROXY_MALFORMED', `malformed PROXY protocol header: ${what}`);
}

const PORT = /^(0|[1-9][0-9]{0,4})$/;

function parsePort(s: string): number {
  if (!PORT.test(s) || Number(s) > 65535) throw malformed(`bad port ${JSON.stringify(s)}`);
  return Number(s);
}

/** The part between "PROXY " and CRLF. */
function parseV1(line: string): ProxyHeader {
  const fields = line.split(' ');
  if (fields[0] === 'UNKNOWN') return { version: 1, address: null, tlvs: [] };
  if (fields.length !== 5) throw malformed('a v1 header has five fields after "PROXY"');
  const [proto, src, dst, sport, dport] = fields as [string, string, string, string, string];
  const family = proto === 'TCP4' ? 4 : proto === 'TCP6' ? 6 : 0;
  if (family === 0) throw malformed(`unknown v1 protocol ${JSON.stringify(proto)}`);
  for (const a of [src, dst]) {
    if (net.isIP(a) !== family) throw malformed(`${JSON.stringify(a)} is not an IPv${family} address`);
  }
  return {
    version: 1,
    address: { family: family === 4 ? 'IPv4' : 'IPv6', address: src, port: parsePort(sport), destAddress: dst, destPort: parsePort(dport) },
    tlvs: [],
  };
}

/** The whole v2 header, `length` bytes after the fixed 16. */
function parseV2(b: Buffer, length: number): ProxyHeader {
  const command = b[12]! & 0x0f;
  const family = b[13]! >> 4;
  const transport = b[13]! & 0x0f;
  if (family > 3) throw malformed(`unknown v2 address family ${family}`);
  if (transport > 2) throw malformed(`unknown v2 transport ${transport}`);
  const body = b.subarray(V2_FIXED, V2_FIXED + length);
  // LOCAL (health checks from the proxy itself) and UNSPEC: keep the socket's address.
  if (command === 0 || family === 0) return { version: 2, address: null, tlvs: [] };
  const size = V2_ADDRESS_SIZE[family]!;
  if (length < size) throw malformed(`a v2 family ${family} address block needs ${size} bytes, the header has ${length}`);
  let address: ProxyAddress;
  if (family === 1) {
    address = { family: 'IPv4', address: ipv4(body, 0), destAddress: ipv4(body, 4), port: body.readUInt16BE(8), destPort: body.readUInt16BE(10) };
  } else if (family === 2) {
    address = { family: 'IPv6', address: ipv6(body, 0), destAddress: ipv6(body, 16), port: body.readUInt16BE(32), destPort: body.readUInt16BE(34) };
  } else {
    address = { family: 'unix', address: cString(body, 0, 108), destAddress: cString(body, 108, 108), port: 0, destPort: 0 };
  }
  return { version: 2, address, tlvs: parseTlvs(body.subarray(size)) };
}

function parseTlvs(b: Buffer): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  let i = 0;
  while (i < b.length) {
    if (i + 3 > b.length) throw malformed('truncated v2 TLV');
    const len = b.readUInt16BE(i + 1);
    if (i + 3 + len > b.length) throw malformed('a v2 TLV runs past the header');
    out.push([b[i]!, Buffer.from(b.subarray(i + 3, i + 3 + len))]);
    i += 3 + len;
  }
  return out;
}

function ipv4(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

function ipv6(b: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(at + i).toString(16));
  // Normalise (zero compression, IPv4-mapped) the way Node prints socket addresses.
  return new net.SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

function cString(b: Buffer, at: number, size: number): string {
  const end = b.indexOf(0, at);
  return b.toString('utf8', at, end === -1 || end > at + size ? at + size : end);
}

// ---------------------------------------------------------------- trust

/**
 * A compiled `trustedProxies` list. Throws `InvalidArgumentError` on an entry that is
 * neither an address nor a CIDR block.
 */
export function trustList(entries: readonly string[]): net.BlockList {
  const list = new net.BlockList();
  for (const entry of entries) {
    if (typeof entry !== 'string') throw new InvalidArgumentError(`trustedProxies entries are strings, got ${typeof entry}`);
    const slash = entry.indexOf('/');
    const address = slash === -1 ? entry : entry.slice(0, slash);
    const family = net.isIP(address);
    if (family === 0) throw new InvalidArgumentError(`trustedProxies: ${JSON.stringify(entry)} is not an address or a CIDR block`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (slash === -1) {
      list.addAddress(address, type);
      continue;
    }
    const bits = entry.slice(slash + 1);
    const prefix = Number(bits);
    if (!/^\d{1,3}$/.test(bits) || prefix > (family === 4 ? 32 : 128)) throw new InvalidArgumentError(`trustedProxies: bad prefix length in ${JSON.stringify(entry)}`);
    list.addSubnet(address, prefix, type);
  }
  return list;
}

/** Whether `address` (as a socket reports it) is on `list`; IPv4-mapped IPv6 counts as IPv4. */
export function isTrusted(list: net.BlockList, address: string | undefined): boolean {
  if (address === undefined) return false;
  const mapped = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
  const family = net.isIP(mapped);
  if (family === 0) return false;
  return list.check(mapped, family === 4 ? 'ipv4' : 'ipv6');
}

/** Validated server options: what {@link readProxyHeader} needs. */
export interface ProxySettings {
  version: ProxyProtocolVersion;
  trusted: net.BlockList;
  timeout: number;
}

/** Validates the PROXY options of a server; null when `proxyProtocol` is not set. */
export function proxySettings(options: ProxyProtocolOptions): ProxySettings | null {
  const version = options.proxyProtocol;
  if (version === undefined) {
    if (options.trustedProxies !== undefined) throw new InvalidArgumentError('trustedProxies needs proxyProtocol');
    return null;
  }
  if (version !== 'v1' && version !== 'v2' && version !== 'any') throw new InvalidArgumentError(`proxyProtocol is 'v1', 'v2' or 'any', got ${JSON.stringify(version)}`);
  if (!Array.isArray(options.trustedProxies) || options.trustedProxies.length === 0) {
    throw new InvalidArgumentError('proxyProtocol needs trustedProxies: the addresses or CIDR blocks of the proxies whose headers are believed');
  }
  const timeout = options.proxyHeaderTimeout ?? 5000;
  if (!Number.isFinite(timeout) || timeout <= 0) throw new InvalidArgumentError(`proxyHeaderTimeout is a positive number of ms, got ${String(timeout)}`);
  return { version, trusted: trustList(options.trustedProxies), timeout };
}

// ---------------------------------------------------------------- on a socket

/** The symbol under which an accepted socket carries the address its PROXY header named. */
export const kProxyAddress = Symbol('protoloop.proxyAddress');

/** The client address a PROXY header gave `socket`, if any. */
export function proxyAddressOf(socket: object): ProxyAddress | null {
  return (socket as { [kProxyAddress]?: ProxyAddress | null })[kProxyAddress] ?? null;
}

/**
 * Reads the PROXY header from a freshly accepted (paused or flowing) socket, then
 * puts the client's first bytes back (`unshift`) and leaves the socket paused, so
 * whatever reads next (a transport, TLS, an HTTP parser) sees the stream as the
 * client sent it. The address is recorded on the socket ({@link proxyAddressOf}).
 * Rejects with {@link ProxyProtocolError} (untrusted peer, malformed header, timeout)
 * or the socket's own error; the caller destroys the socket then.
 */
export function readProxyHeader(socket: net.Socket, settings: ProxySettings): Promise<ProxyHeader> {
  return new Promise<ProxyHeader>((resolve, reject) => {
    if (!isTrusted(settings.trusted, socket.remoteAddress)) {
      reject(new ProxyProtocolError('ERR_PROTOLOOP_PROXY_UNTRUSTED', `a connection from ${socket.remoteAddress ?? 'an unknown address'}, which is not in trustedProxies: closed`));
      return;
    }
    const parser = new ProxyHeaderParser(settings.version);
    const finish = (err: Error | null, header?: ProxyHeader): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('end', onEnd);
      socket.off('close', onClose);
      socket.pause();
      if (err !== null) reject(err);
      else resolve(header!);
    };
    const onData = (chunk: Buffer): void => {
      let result: ParseResult;
      try {
        result = parser.feed(chunk);
      } catch (err) {
        finish(err as Error);
        return;
      }
      if (!result.done) return;
      (socket as unknown as Record<symbol, unknown>)[kProxyAddress] = result.header.address;
      finish(null, result.header);
      if (result.rest.length !== 0) socket.unshift(result.rest);
    };
    const onError = (err: Error): void => finish(err);
    const onEnd = (): void => finish(malformed('the connection ended before the header was complete'));
    const onClose = (): void => finish(malformed('the connection closed before the header was complete'));
    const timer = setTimeout(() => finish(new ProxyProtocolError('ERR_PROTOLOOP_PROXY_MALFORMED', `no complete PROXY header within ${settings.timeout} ms`)), settings.timeout);
    // The header deadline must not keep a process alive on its own.
    timer.unref();
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('end', onEnd);
    socket.on('close', onClose);
    socket.resume();
  });
}

/**
 * `socket` reports the client a PROXY header named as its own remote end:
 * `remoteAddress`, `remotePort` and `remoteFamily` are shadowed on the socket object,
 * so that what reads them later (Node's HTTP server, Fastify's `request.ip`, ws) sees
 * the client, not the proxy.
 */
function showClient(socket: net.Socket, address: ProxyAddress): void {
  if (address.family === 'unix') return;
  Object.defineProperty(socket, 'remoteAddress', { value: address.address, configurable: true });
  Object.defineProperty(socket, 'remotePort', { value: address.port, configurable: true });
  Object.defineProperty(socket, 'remoteFamily', { value: address.family, configurable: true });
}

/**
 * Puts the reading of a PROXY header in front of a Node server's own handling of its
 * connections (an `http`, `https` or `tls` server, whose 'connection' listeners parse
 * HTTP or run the TLS handshake): each accepted socket's header is read first, then the
 * server's listeners get the socket with the client's first bytes put back and its
 * remote address the client's. Call it once every 'connection' listener is in place.
 * A header that is malformed, late or from an untrusted peer destroys that socket
 * after `rejected` is told; nothing else is affected. Returns the sockets whose header
 * is still on the way (for a close to destroy).
 */
export function readProxyHeaderFirst(server: net.Server, settings: ProxySettings, rejected: (err: Error) => void): Set<net.Socket> {
  const own = server.listeners('connection') as Array<(this: net.Server, socket: net.Socket) => void>;
  server.removeAllListeners('connection');
  const pending = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    socket.pause();
    pending.add(socket);
    readProxyHeader(socket, settings).then(
      (header) => {
        if (!pending.delete(socket) || socket.destroyed) return;
        if (header.address !== null) showClient(socket, header.address);
        for (const listener of own) listener.call(server, socket);
        socket.resume();
      },
      (err: unknown) => {
        pending.delete(socket);
        socket.destroy();
        rejected(err as Error);
      },
    );
  });
  return pending;
}
