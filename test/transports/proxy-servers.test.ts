// PROXY protocol in front of the servers whose connections Node itself reads first: a
// TLS server (the header comes before the handshake), a WebSocket server and a Fastify
// app (the header comes before the HTTP request). Real sockets on 127.0.0.1; the
// header names a client the test makes up, which the server must report.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import Fastify from 'fastify';
import { WebSocket as WsClient } from 'ws';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, MessageProtocol, getRunningLoop, type WebSocketTransport } from '../../src/index.ts';
import { protoloopFastify, serveFastify } from '../../src/fastify/index.ts';
import { Recorder, portOf, runLoop } from './helpers.ts';
import { eventually } from '../helpers.ts';

const fixtures = new URL('../fixtures/streams/', import.meta.url);
const key = readFileSync(new URL('key.pem', fixtures), 'utf8');
const cert = readFileSync(new URL('cert.pem', fixtures), 'utf8');
const proxied = { proxyProtocol: 'v1', trustedProxies: ['127.0.0.1'] } as const;

/** A TCP connection to `port` that has sent `header` (the proxy's part) and is ready for the client's bytes. */
function connectWithHeader(port: number, header: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(header);
      resolve(s);
    });
    s.once('error', reject);
  });
}

describe('PROXY headers before TLS and HTTP', () => {
  it('a TLS server: the header comes before the handshake; peername is the client it names', async () => {
    await runLoop(async (loop, errors) => {
      let serverSide!: Recorder;
      await using server = await loop.createServer(() => (serverSide = new Recorder(loop)), { host: '127.0.0.1', tls: { key, cert }, ...proxied });
      const raw = await connectWithHeader(portOf(server), 'PROXY TCP4 203.0.113.5 127.0.0.1 4444 443\r\n');
      const secure = tls.connect({ socket: raw, rejectUnauthorized: false });
      await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
      secure.write('over tls');
      await eventually(() => serverSide?.received === 8, 10_000, 'the bytes over TLS');
      expect(serverSide.transport.getExtraInfo('peername')).toEqual({ address: '203.0.113.5', port: 4444, family: 'IPv4' });
      expect(Buffer.concat(serverSide.chunks).toString()).toBe('over tls');
      secure.destroy();
      // No header: that connection is closed before any handshake, and counted.
      const bare = tls.connect({ host: '127.0.0.1', port: portOf(server), rejectUnauthorized: false });
      bare.on('error', () => {});
      await new Promise<void>((resolve) => bare.once('close', () => resolve()));
      expect(server.stats().malformed).toBe(1);
      expect(errors).toEqual([]);
    });
  });

  it('a WebSocket server: the upgrade request follows the header; peername is the client it names', async () => {
    await runLoop(async (loop, errors) => {
      const sides: WebSocketTransport[] = [];
      class Side extends MessageProtocol {
        override connectionMade(t: WebSocketTransport): void {
          sides.push(t);
        }
      }
      await using server = await loop.createWebSocketServer(() => new Side(), { host: '127.0.0.1', port: 0, ...proxied });
      const port = server.address()!.port;
      const socket = await connectWithHeader(port, 'PROXY TCP6 2001:db8::7 ::1 5555 80\r\n');
      const client = new WsClient(`ws://127.0.0.1:${port}/`, { createConnection: () => socket });
      await new Promise<void>((resolve, reject) => client.once('open', () => resolve()).once('error', reject));
      await eventually(() => sides.length === 1, 10_000, 'the server side');
      expect(sides[0]!.getExtraInfo('peername')).toEqual({ address: '2001:db8::7', port: 5555, family: 'IPv6' });
      client.close();
      await new Promise<void>((resolve) => client.once('close', () => resolve()));
      await expect(loop.createWebSocketServer(() => new Side(), { server: net.createServer() as never, ...proxied })).rejects.toThrow(InvalidArgumentError);
      expect(errors).toEqual([]);
    });
  });

  it("a Fastify app: request.ip is the client the header names", async () => {
    await runLoop(async () => {
      const app = Fastify();
      await app.register(protoloopFastify);
      app.get('/ip', async (request) => ({ ip: request.ip, loop: getRunningLoop() !== null }));
      await using server = await serveFastify(app, { host: '127.0.0.1', ...proxied });
      const socket = await connectWithHeader(server.address()!.port, 'PROXY TCP4 198.51.100.20 127.0.0.1 6000 80\r\n');
      socket.write('GET /ip HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      let answer = '';
      socket.on('data', (d: Buffer) => (answer += d.toString()));
      await new Promise<void>((resolve) => socket.once('close', () => resolve()));
      expect(answer.split('\r\n\r\n')[1]).toBe(JSON.stringify({ ip: '198.51.100.20', loop: true }));
      // A connection without the header gets no answer: it is closed and counted.
      const bare = net.connect(server.address()!.port, '127.0.0.1', () => bare.write('GET /ip HTTP/1.1\r\nHost: x\r\n\r\n'));
      let got = '';
      bare.on('data', (d: Buffer) => (got += d.toString()));
      bare.on('error', () => {});
      await new Promise<void>((resolve) => bare.once('close', () => resolve()));
      expect(got).toBe('');
      expect(server.stats().malformed).toBe(1);
    });
  });
});
