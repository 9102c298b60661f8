// The PROXY protocol parser, by properties: every valid v1/v2 header, cut into any
// chunks and followed by any bytes, gives back its addresses and exactly those bytes;
// every prefix of a valid header waits for more; garbage fails with ProxyProtocolError
// and nothing else. Then the socket reader on real sockets, and the trust list.
import net from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, ProxyProtocolError } from '../../src/errors.ts';
import { Recorder, portOf, runLoop } from './helpers.ts';
import { eventually } from '../helpers.ts';
import {
  ProxyHeaderParser,
  V2_SIGNATURE,
  isTrusted,
  proxyAddressOf,
  proxySettings,
  readProxyHeader,
  trustList,
  type ParseResult,
  type ProxyAddress,
} from '../../src/transports/net/proxy-protocol.ts';

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
const ipv6Bytes = fc.uint8Array({ minLength: 16, maxLength: 16 });
const port = fc.nat(65535);

function v6String(b: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return new net.SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

interface Case {
  bytes: Buffer;
  address: ProxyAddress | null;
}

const v1Case: fc.Arbitrary<Case> = fc.oneof(
  fc.tuple(ipv4, ipv4, port, port).map(([s, d, sp, dp]) => ({
    bytes: Buffer.from(`PROXY TCP4 ${s} ${d} ${sp} ${dp}\r\n`),
    address: { family: 'IPv4' as const, address: s, destAddress: d, port: sp, destPort: dp },
  })),
  fc.tuple(ipv6Bytes, ipv6Bytes, port, port).map(([s, d, sp, dp]) => ({
    bytes: Buffer.from(`PROXY TCP6 ${v6String(s)} ${v6String(d)} ${sp} ${dp}\r\n`),
    address: { family: 'IPv6' as const, address: v6String(s), destAddress: v6String(d), port: sp, destPort: dp },
  })),
  fc.constant({ bytes: Buffer.from('PROXY UNKNOWN\r\n'), address: null }),
);

const tlvs = fc.array(fc.tuple(fc.nat(255), fc.uint8Array({ maxLength: 40 })), { maxLength: 4 });

function v2(command: number, family: number, addresses: Buffer, extra: [number, Uint8Array][]): Buffer {
  const tlvBytes = Buffer.concat(extra.map(([t, v]) => Buffer.concat([Buffer.from([t, v.length >> 8, v.length & 0xff]), v])));
  const head = Buffer.alloc(4);
  head[0] = 0x20 | command;
  head[1] = (family << 4) | 1;
  head.writeUInt16BE(addresses.length + tlvBytes.length, 2);
  return Buffer.concat([V2_SIGNATURE, head, addresses, tlvBytes]);
}

function portBytes(a: number, b: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt16BE(a, 0);
  p.writeUInt16BE(b, 2);
  return p;
}

const v2Case: fc.Arbitrary<Case> = fc.oneof(
  fc.tuple(ipv4, ipv4, port, port, tlvs).map(([s, d, sp, dp, t]) => ({
    bytes: v2(1, 1, Buffer.concat([Buffer.from(s.split('.').map(Number)), Buffer.from(d.split('.').map(Number)), portBytes(sp, dp)]), t),
    address: { family: 'IPv4' as const, address: s, destAddress: d, port: sp, destPort: dp },
  })),
  fc.tuple(ipv6Bytes, ipv6Bytes, port, port, tlvs).map(([s, d, sp, dp, t]) => ({
    bytes: v2(1, 2, Buffer.concat([s, d, portBytes(sp, dp)]), t),
    address: { family: 'IPv6' as const, address: v6String(s), destAddress: v6String(d), port: sp, destPort: dp },
  })),
  // LOCAL: the proxy's own health check; addresses (if any) are ignored.
  fc.tuple(fc.uint8Array({ maxLength: 12 })).map(([junk]) => ({ bytes: v2(0, 1, Buffer.from(junk), []), address: null })),
);

/** Splits `bytes` at the given cut points (any number, any place). */
function chunks(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    out.push(bytes.subarray(at, p));
    at = p;
  }
  out.push(bytes.subarray(at));
  return out;
}

function feedAll(parser: ProxyHeaderParser, parts: Buffer[]): { result: ParseResult; after: Buffer[] } {
  for (let i = 0; i < parts.length; i++) {
    const result = parser.feed(parts[i]!);
    if (result.done) return { result, after: parts.slice(i + 1) };
  }
  return { result: { done: false }, after: [] };
}

describe('PROXY header parser (properties)', () => {
  for (const [name, cases, version] of [
    ['v1', v1Case, 'v1'],
    ['v2', v2Case, 'v2'],
  ] as const) {
    it(`every valid ${name} header, in any chunks, yields its address and the bytes after it untouched`, () => {
      fc.assert(
        fc.property(cases, fc.uint8Array({ maxLength: 64 }), fc.array(fc.nat(400), { maxLength: 6 }), fc.boolean(), (c, payload, cuts, any) => {
          const parser = new ProxyHeaderParser(any ? 'any' : version);
          const { result, after } = feedAll(parser, chunks(Buffer.concat([c.bytes, payload]), cuts));
          expect(result.done).toBe(true);
          if (!result.done) return;
          expect(result.header.version).toBe(name === 'v1' ? 1 : 2);
          expect(result.header.address).toEqual(c.address);
          expect(Buffer.concat([result.rest, ...after])).toEqual(Buffer.from(payload));
        }),
      );
    });

    it(`every strict prefix of a valid ${name} header waits for more, never fails`, () => {
      fc.assert(
        fc.property(cases, fc.nat(), (c, n) => {
          const prefix = c.bytes.subarray(0, n % c.bytes.length);
          expect(new ProxyHeaderParser('any').feed(prefix)).toEqual({ done: false });
        }),
      );
    });
  }

  it('any bytes at all: done, waiting, or ProxyProtocolError (never another error, never a crash)', () => {
    const noise = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
      fc.tuple(fc.constantFrom('PROXY ', 'PROXY TCP4 ', 'PROXY TCP6 ::1 '), fc.string({ maxLength: 120 })).map(([a, b]) => Buffer.from(a + b + '\r\n')),
      fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ maxLength: 300 })).map(([h, b]) => Buffer.concat([V2_SIGNATURE, h, b])),
    );
    fc.assert(
      fc.property(noise, fc.array(fc.nat(400), { maxLength: 4 }), (bytes, cuts) => {
        const parser = new ProxyHeaderParser('any');
        try {
          feedAll(parser, chunks(bytes, cuts));
        } catch (err) {
          expect(err).toBeInstanceOf(ProxyProtocolError);
          expect((err as ProxyProtocolError).code).toBe('ERR_PROTOLOOP_PROXY_MALFORMED');
        }
      }),
    );
  });

  it('a wrong byte in the v2 signature or the v1 prefix is refused at once', () => {
    fc.assert(
      fc.property(v2Case, fc.nat(11), fc.integer({ min: 1, max: 255 }), (c, i, flip) => {
        const bad = Buffer.from(c.bytes);
        bad[i]! ^= flip;
        expect(() => new ProxyHeaderParser('v2').feed(bad)).toThrow(ProxyProtocolError);
      }),
    );
    expect(() => new ProxyHeaderParser('v1').feed(Buffer.from('PROXZ'))).toThrow(ProxyProtocolError);
  });

  it('refuses what the spec forbids', () => {
    const bad = [
      'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', // LF without CR
      'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n', // leading zero
      'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n',
      'PROXY TCP4 ::1 5.6.7.8 1 2\r\n', // family mismatch
      'PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n', // two spaces
      'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n',
      `PROXY UNKNOWN ${'x'.repeat(100)}\r\n`, // longer than 107 bytes
      'GET / HTTP/1.1\r\n',
    ];
    for (const line of bad) expect(() => new ProxyHeaderParser('any').feed(Buffer.from(line)), line).toThrow(ProxyProtocolError);
    // Version 3, command 2, family 4, an INET block cut short.
    const inet = v2(1, 1, Buffer.alloc(12), []);
    for (const [at, value] of [
      [12, 0x31],
      [12, 0x22],
      [13, 0x41],
    ] as const) {
      const b = Buffer.from(inet);
      b[at] = value;
      expect(() => new ProxyHeaderParser('v2').feed(b)).toThrow(ProxyProtocolError);
    }
    expect(() => new ProxyHeaderParser('v2').feed(v2(1, 1, Buffer.alloc(8), []))).toThrow(/needs 12 bytes/);
    // The right version only: a v2 server refuses v1, and the reverse.
    expect(() => new ProxyHeaderParser('v2').feed(Buffer.from('PROXY UNKNOWN\r\n'))).toThrow(ProxyProtocolError);
    expect(() => new ProxyHeaderParser('v1').feed(inet)).toThrow(ProxyProtocolError);
  });
});

describe('trustedProxies', () => {
  it('matches addresses and CIDR blocks, IPv4-mapped IPv6 as IPv4', () => {
    const list = trustList(['10.0.0.0/8', '127.0.0.1', '2001:db8::/32']);
    expect(isTrusted(list, '10.1.2.3')).toBe(true);
    expect(isTrusted(list, '::ffff:127.0.0.1')).toBe(true);
    expect(isTrusted(list, '127.0.0.2')).toBe(false);
    expect(isTrusted(list, '2001:db8:1::5')).toBe(true);
    expect(isTrusted(list, '2001:db9::5')).toBe(false);
    expect(isTrusted(list, undefined)).toBe(false);
  });

  it('validates the options eagerly', () => {
    expect(proxySettings({})).toBeNull();
    expect(() => proxySettings({ proxyProtocol: 'v2' })).toThrow(InvalidArgumentError);
    expect(() => proxySettings({ proxyProtocol: 'v3' as 'v2', trustedProxies: ['::1'] })).toThrow(InvalidArgumentError);
    expect(() => proxySettings({ trustedProxies: ['::1'] })).toThrow(InvalidArgumentError);
    expect(() => proxySettings({ proxyProtocol: 'any', trustedProxies: ['10.0.0.0/33'] })).toThrow(InvalidArgumentError);
    expect(() => proxySettings({ proxyProtocol: 'any', trustedProxies: ['localhost'] })).toThrow(InvalidArgumentError);
    expect(() => proxySettings({ proxyProtocol: 'any', trustedProxies: ['::1'], proxyHeaderTimeout: 0 })).toThrow(InvalidArgumentError);
  });
});

describe('readProxyHeader on real sockets', () => {
  /** A server whose accepted sockets go through readProxyHeader; resolves with the outcome. */
  async function accept(trusted: string[], send: (c: net.Socket) => void, timeout = 5000): Promise<{ header?: unknown; error?: unknown; rest: Buffer; socket: net.Socket }> {
    const settings = proxySettings({ proxyProtocol: 'any', trustedProxies: trusted, proxyHeaderTimeout: timeout })!;
    const server = net.createServer({ pauseOnConnect: true });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
    const client = net.connect(port, '127.0.0.1');
    client.on('error', () => {});
    client.once('connect', () => send(client));
    const socket = await accepted;
    try {
      const header = await readProxyHeader(socket, settings);
      // What follows the header is read as the client sent it.
      const rest = await new Promise<Buffer>((resolve) => {
        const got: Buffer[] = [];
        socket.on('data', (d: Buffer) => got.push(d));
        socket.on('end', () => resolve(Buffer.concat(got)));
        socket.resume();
      });
      return { header, rest, socket };
    } catch (error) {
      return { error, rest: Buffer.alloc(0), socket };
    } finally {
      socket.destroy();
      client.destroy();
      await new Promise((r) => server.close(r));
    }
  }

  it('reads the header, records the address, and leaves the rest to read', async () => {
    const out = await accept(['127.0.0.1'], (c) => {
      c.write('PROXY TCP4 203.0.113.7 10.0.0.1 4567 80\r\nhel');
      setImmediate(() => c.end('lo'));
    });
    expect(out.error).toBeUndefined();
    expect(proxyAddressOf(out.socket)).toMatchObject({ address: '203.0.113.7', port: 4567 });
    expect(out.rest.toString()).toBe('hello');
  });

  it('an untrusted peer, a malformed header, an early end and a late header each fail with ProxyProtocolError', async () => {
    const untrusted = await accept(['10.0.0.0/8'], (c) => c.end('PROXY UNKNOWN\r\n'));
    expect(untrusted.error).toMatchObject({ code: 'ERR_PROTOLOOP_PROXY_UNTRUSTED' });
    const garbage = await accept(['127.0.0.1'], (c) => c.end('GET / HTTP/1.1\r\n\r\n'));
    expect(garbage.error).toMatchObject({ code: 'ERR_PROTOLOOP_PROXY_MALFORMED' });
    const early = await accept(['127.0.0.1'], (c) => c.end('PROXY TCP4 1.2'));
    expect(early.error).toMatchObject({ code: 'ERR_PROTOLOOP_PROXY_MALFORMED' });
    const late = await accept(['127.0.0.1'], (c) => c.write('PROXY TCP4 1.2'), 100);
    expect(late.error).toMatchObject({ code: 'ERR_PROTOLOOP_PROXY_MALFORMED', message: expect.stringMatching(/within 100 ms/) });
  });
});

describe('createServer({ proxyProtocol })', () => {
  /** A v2 PROXY header for a TCP4 client `src:sport` (to 10.0.0.1:80). */
  function v2Tcp4(src: string, sport: number): Buffer {
    const addr = Buffer.concat([Buffer.from(src.split('.').map(Number)), Buffer.from([10, 0, 0, 1]), portBytes(sport, 80)]);
    return v2(1, 1, addr, []);
  }

  it("a client's address from the header is the transport's peername; the bytes after it are the protocol's", async () => {
    await runLoop(async (loop) => {
      const got: Recorder[] = [];
      const server = await loop.createServer(() => {
        const r = new Recorder();
        got.push(r);
        return r;
      }, { host: '127.0.0.1', proxyProtocol: 'any', trustedProxies: ['127.0.0.1'] });
      try {
        const port = portOf(server);
        for (const [header, want] of [
          [v2Tcp4('203.0.113.9', 40123), { address: '203.0.113.9', port: 40123, family: 'IPv4' }],
          [Buffer.from('PROXY TCP6 2001:db8::5 ::1 5555 80\r\n'), { address: '2001:db8::5', port: 5555, family: 'IPv6' }],
        ] as const) {
          const c = net.connect(port, '127.0.0.1');
          c.end(Buffer.concat([header, Buffer.from('hello')]));
          await eventually(() => got.length === 1 && got[0]!.received >= 5, 10_000, 'the data after the header');
          const r = got.shift()!;
          await r.made;
          expect(r.transport.getExtraInfo('peername')).toEqual(want);
          expect(r.data.toString()).toBe('hello');
          r.transport.close();
          c.destroy();
        }
      } finally {
        server.close();
      }
    });
  });

  it('a bad header or an untrusted peer closes that connection only, counted as malformed', async () => {
    await runLoop(async (loop, errors) => {
      const made: Recorder[] = [];
      const server = await loop.createServer(() => {
        const r = new Recorder();
        made.push(r);
        return r;
      }, { host: '127.0.0.1', proxyProtocol: 'v2', trustedProxies: ['127.0.0.1'] });
      const strict = await loop.createServer(() => new Recorder(), { host: '127.0.0.1', proxyProtocol: 'v1', trustedProxies: ['10.0.0.0/8'] });
      try {
        const closed = (port: number, bytes: string | Buffer): Promise<void> =>
          new Promise((resolve) => {
            const c = net.connect(port, '127.0.0.1');
            c.on('error', () => undefined);
            c.on('close', () => resolve());
            c.write(bytes);
          });
        await closed(portOf(server), 'GET / HTTP/1.1\r\n\r\n');
        await closed(portOf(strict), 'PROXY UNKNOWN\r\n');
        expect(made).toHaveLength(0);
        expect(server.stats().malformed).toBe(1);
        expect(strict.stats().malformed).toBe(1);
        // The server goes on.
        const c = net.connect(portOf(server), '127.0.0.1');
        c.end(Buffer.concat([v2Tcp4('198.51.100.1', 1), Buffer.from('x')]));
        await eventually(() => made[0]?.received === 1, 10_000, 'the data after the header');
        expect(made[0]!.transport.getExtraInfo<{ address: string }>('peername')?.address).toBe('198.51.100.1');
        made[0]!.transport.close();
        c.destroy();
        expect(errors).toEqual([]);
      } finally {
        server.close();
        strict.close();
      }
    });
  });

  it('validates the options: trustedProxies required', async () => {
    await runLoop(async (loop) => {
      await expect(loop.createServer(() => new Recorder(), { proxyProtocol: 'v2' })).rejects.toThrow(InvalidArgumentError);
      await expect(loop.createServer(() => new Recorder(), { trustedProxies: ['127.0.0.1'] })).rejects.toThrow(/trustedProxies needs proxyProtocol/);
    });
  });
});
