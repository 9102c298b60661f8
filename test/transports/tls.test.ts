// TLS over real sockets with a self-signed certificate generated at test time:
// echo, extra info, ALPN and SNI, a bad certificate, plain text to a TLS port, the
// reverse, and startTls on both sides.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Protocol, TlsError, type Loop, type Transport } from '../../src/index.ts';
import { EchoProtocol, Recorder, portOf, runLoop, within } from './helpers.ts';

let dir = '';
let key = '';
let cert = '';

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoloop-tls-'));
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')],
    { stdio: 'ignore' },
  );
  key = fs.readFileSync(path.join(dir, 'key.pem'), 'utf8');
  cert = fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8');
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('TLS', () => {
  it('echoes over TLS, with peercert, cipher, ALPN and SNI', async () => {
    await runLoop(async (loop, errors) => {
      let serverSide!: Recorder;
      class Echo extends Recorder {
        override dataReceived(data: Buffer): void {
          super.dataReceived(data);
          this.transport.write(data);
        }
      }
      await using server = await loop.createServer(() => (serverSide = new Echo(loop)), { host: '127.0.0.1', port: 0, tls: { key, cert, ALPNProtocols: ['h2', 'x-proto'] } });
      const [t, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server), tls: { ca: cert, servername: 'localhost', ALPNProtocols: ['x-proto'] } });
      t.write('over tls');
      await within(5000, client.waitBytes(8));
      expect(client.data.toString()).toBe('over tls');
      expect(t.getExtraInfo<{ subject: { CN: string } }>('peercert')?.subject.CN).toBe('localhost');
      expect(t.getExtraInfo<{ name: string }>('cipher')?.name).toBeTruthy();
      expect(t.getExtraInfo('alpnProtocol')).toBe('x-proto');
      expect(t.getExtraInfo('sslObject')).toBeDefined();
      const serverTls = serverSide.transport.getExtraInfo<{ servername: string }>('sslObject');
      expect(serverTls?.servername).toBe('localhost');
      expect(String(t)).toMatch(/<SocketTransport TLS open/);
      t.close();
      expect(await client.lost).toBeUndefined();
      expect(errors).toEqual([]);
    });
  });

  it('a certificate the client does not trust rejects with TlsError', async () => {
    await runLoop(async (loop) => {
      await using server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0, tls: { key, cert } });
      const err = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server), tls: true }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TlsError);
      expect(err).toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
      // A wrong host name is a TLS error too.
      const err2 = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server), tls: { ca: cert, servername: 'example.com' } }).catch((e: unknown) => e);
      expect(err2).toBeInstanceOf(TlsError);
    });
  });

  it('plain text to a TLS port: the server drops that connection and keeps serving', async () => {
    await runLoop(async (loop, errors) => {
      await using server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0, tls: { key, cert } });
      const [t, plain] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      t.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      await within(5000, plain.lost);
      expect(server.clientCount).toBe(0);
      // Still serving TLS clients.
      const [t2, ok] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server), tls: { ca: cert, servername: 'localhost' } });
      t2.write('still here');
      await within(5000, ok.waitBytes(10));
      t2.close();
      await ok.lost;
      expect(errors).toEqual([]);
    });
  });

  it('a TLS client talking to a plain server gets TlsError', async () => {
    await runLoop(async (loop) => {
      await using server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0 });
      const err = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server), tls: { ca: cert, servername: 'localhost', handshakeTimeout: 5000 } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TlsError);
    });
  });

  it('startTls upgrades an open connection on both sides (STARTTLS)', async () => {
    await runLoop(async (loop, errors) => {
      let upgraded: Transport | undefined;
      const lines: string[] = [];
      class StartTlsServer extends Protocol {
        transport!: Transport;
        override connectionMade(t: Transport): void {
          this.transport = t;
        }
        override dataReceived(data: Buffer): void {
          const line = data.toString();
          lines.push(line);
          if (line === 'STARTTLS\n') {
            // Nothing may be read in the clear once the peer starts its handshake.
            this.transport.pauseReading();
            this.transport.write('OK\n');
            loop.createTask(async () => {
              upgraded = await loop.startTls(this.transport, this, { serverSide: true, key, cert });
              this.transport = upgraded;
            });
          } else {
            this.transport.write(data);
          }
        }
      }
      await using server = await loop.createServer(() => new StartTlsServer(), { host: '127.0.0.1', port: 0 });
      const [plainT, client] = await loop.createConnection(() => new Recorder(), { host: '127.0.0.1', port: portOf(server) });
      plainT.write('STARTTLS\n');
      await within(5000, client.waitBytes(3));
      expect(client.data.toString()).toBe('OK\n');
      const tlsT = await within(5000, upgradeClient(loop, plainT, client));
      expect(plainT.isClosing()).toBe(true);
      tlsT.write('secret');
      await within(5000, client.waitBytes(9));
      expect(client.data.toString()).toBe('OK\nsecret');
      expect(tlsT.getExtraInfo<{ subject: { CN: string } }>('peercert')?.subject.CN).toBe('localhost');
      expect(upgraded?.getExtraInfo('cipher')).toBeDefined();
      tlsT.close();
      expect(await within(5000, client.lost)).toBeUndefined();
      expect(client.calls.filter((c) => c === 'made')).toHaveLength(1);
      expect(lines).toEqual(['STARTTLS\n', 'secret']);
      expect(errors).toEqual([]);
    });
  });
  it('handshakeTimeout: a client that never starts its handshake is dropped and counted, not logged', async () => {
    await runLoop(async (loop, errors) => {
      await using server = await loop.createServer(() => new EchoProtocol(), { host: '127.0.0.1', port: 0, tls: { key, cert, handshakeTimeout: 100 } });
      const { default: net } = await import('node:net');
      const closed = new Promise<void>((resolve) => {
        const s = net.connect(portOf(server), '127.0.0.1');
        s.on('error', () => {});
        s.on('close', () => resolve());
      });
      await within(5000, closed, 'the silent TLS client to be dropped');
      await within(5000, (async () => {
        while (server.stats().handshakeTimeouts === 0) await new Promise<void>((r) => loop.callSoon(r));
      })());
      expect(server.stats().handshakeTimeouts).toBe(1);
      expect(errors).toEqual([]);
    });
  });
});

function upgradeClient(loop: Loop, t: Transport, p: Recorder): Promise<Transport> {
  return loop.startTls(t, p, { ca: cert, servername: 'localhost' });
}
