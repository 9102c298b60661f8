// UDP endpoints over loopback: echo on IPv4 and IPv6, connected endpoints, ICMP
// errors through errorReceived, closing.
import { describe, expect, it } from 'vitest';
import { ConnectionRefusedError, DatagramProtocol, DatagramSocketTransport, InvalidArgumentError, TransportClosedError, type DatagramAddress, type DatagramTransport, type Future, type Loop } from '../../src/index.ts';
import { runLoop, within } from './helpers.ts';

class UdpEcho extends DatagramProtocol {
  transport!: DatagramTransport;
  override connectionMade(t: DatagramTransport): void {
    this.transport = t;
  }
  override datagramReceived(data: Buffer, addr: DatagramAddress): void {
    this.transport.sendto(data, addr);
  }
}

class UdpRecorder extends DatagramProtocol {
  readonly got: [string, DatagramAddress][] = [];
  readonly errors: Error[] = [];
  readonly first: Future<void>;
  readonly error: Future<Error>;
  readonly lost: Future<Error | undefined>;
  constructor(loop: Loop) {
    super();
    this.first = loop.createFuture();
    this.error = loop.createFuture();
    this.lost = loop.createFuture();
  }
  override datagramReceived(data: Buffer, addr: DatagramAddress): void {
    this.got.push([data.toString(), addr]);
    if (!this.first.done()) this.first.setResult(undefined);
  }
  override errorReceived(exc: Error): void {
    this.errors.push(exc);
    if (!this.error.done()) this.error.setResult(exc);
  }
  override connectionLost(exc: Error | undefined): void {
    this.lost.setResult(exc);
  }
}

describe('datagram endpoints', () => {
  it.each([
    ['IPv4', '127.0.0.1'],
    ['IPv6', '::1'],
  ])('echo over %s', async (_name, host) => {
    await runLoop(async (loop) => {
      const [server] = await loop.createDatagramEndpoint(() => new UdpEcho(), { localAddr: { address: host, port: 0 } });
      const port = server.getExtraInfo<{ port: number }>('sockname')!.port;
      const [client, rec] = await loop.createDatagramEndpoint(() => new UdpRecorder(loop), { localAddr: { address: host } });
      expect(client).toBeInstanceOf(DatagramSocketTransport);
      client.sendto('ping', { address: host, port });
      await within(5000, rec.first);
      expect(rec.got[0]![0]).toBe('ping');
      expect(rec.got[0]![1]).toMatchObject({ address: host, port });
      expect(() => client.sendto('x')).toThrow(InvalidArgumentError);
      client.close();
      client.close();
      expect(await rec.lost).toBeUndefined();
      expect(() => client.sendto('x', { address: host, port })).toThrow(TransportClosedError);
      server.abort();
    });
  });

  it('a connected endpoint sends without an address and gets ICMP errors through errorReceived', async () => {
    await runLoop(async (loop) => {
      // Find a port nobody listens on.
      const [probe, probeRec] = await loop.createDatagramEndpoint(() => new UdpRecorder(loop), { localAddr: { address: '127.0.0.1' } });
      const deadPort = probe.getExtraInfo<{ port: number }>('sockname')!.port;
      probe.abort();
      await within(5000, probeRec.lost, 'the probe to close');
      const [t, rec] = await loop.createDatagramEndpoint(() => new UdpRecorder(loop), { remoteAddr: { address: '127.0.0.1', port: deadPort } });
      expect(t.getExtraInfo('peername')).toMatchObject({ address: '127.0.0.1', port: deadPort });
      expect(() => t.sendto('x', { address: '127.0.0.1', port: deadPort + 1 })).toThrow(InvalidArgumentError);
      // Linux reports ICMP port unreachable on the next operation of a connected socket.
      t.sendto('anyone?');
      const exc = await within(5000, rec.error, 'the ICMP error');
      expect(exc).toBeInstanceOf(ConnectionRefusedError);
      expect(t.isClosing()).toBe(false); // the endpoint stays open
      t.close();
      await rec.lost;
    });
  });

  it('reports inspectable state and is tracked until closed', async () => {
    await runLoop(async (loop) => {
      const [t] = await loop.createDatagramEndpoint(() => new DatagramProtocol(), { localAddr: { address: '127.0.0.1' }, allowBroadcast: true, reuseAddress: true });
      expect(String(t)).toMatch(/<DatagramSocketTransport open local=127\.0\.0\.1:\d+/);
      expect(loop.stats().openResources['datagram transport']).toBe(1);
      t.abort();
      expect(loop.stats().openResources['datagram transport']).toBeUndefined();
    });
  });
});
