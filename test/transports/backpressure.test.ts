// Backpressure from the first byte: a connection whose protocol has not run
// connectionMade yet (here: the loop is stopped right after the accept) reads at most
// one high-water mark, then pauses; everything arrives intact once the loop runs.
import { createHash } from 'node:crypto';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { Loop, Protocol, type Transport } from '../../src/index.ts';
import { READ_BACKLOG_LIMIT } from '../../src/transports/net/socket-read.ts';
import { pollOrThrow } from '../helpers.ts';
import { payload, portOf, within } from './helpers.ts';

class Hasher extends Protocol {
  readonly hash = createHash('sha256');
  received = 0;
  transport!: Transport;
  #done: (() => void) | null = null;
  #want = 0;
  override connectionMade(t: Transport): void {
    this.transport = t;
  }
  override dataReceived(data: Buffer): void {
    this.hash.update(data);
    this.received += data.length;
    if (this.#done !== null && this.received >= this.#want) this.#done();
  }
  bytes(n: number): Promise<void> {
    if (this.received >= n) return Promise.resolve();
    this.#want = n;
    return new Promise((resolve) => (this.#done = resolve));
  }
}

describe('backpressure from the first byte', () => {
  for (const onread of [true, false]) {
    it(`holds at most 1 MiB of a 64 MiB write while the loop is stopped before connectionMade (${onread ? 'onread' : "'data'"} accept)`, async () => {
      const { setRewrapAccepted } = await import('../../src/transports/net/node-internals.ts');
      const previous = setRewrapAccepted(onread);
      const loop = new Loop();
      const size = 64 * 1024 * 1024;
      const data = payload(size, 13);
      const expected = createHash('sha256').update(data).digest('hex');
      let client: net.Socket | undefined;
      try {
        let protocol: Hasher | undefined;
        let accepted!: () => void;
        const acceptedP = new Promise<void>((resolve) => (accepted = resolve));
        const server = await loop.runUntilComplete(() =>
          loop.createServer(
            () => {
              protocol = new Hasher();
              accepted();
              return protocol;
            },
            { host: '127.0.0.1', port: 0 },
          ),
        );
        // The loop is stopped now: the accept happens outside it, connectionMade waits.
        client = net.connect(portOf(server), '127.0.0.1');
        client.write(data);
        await within(10_000, acceptedP, 'accept');
        const resources = [...(loop as unknown as Record<symbol, Set<{ owner(): object | undefined }>>)[(await import('../../src/loop/symbols.ts')).kResources]];
        const transport = resources.map((e) => e.owner()).find((t) => t !== undefined && t.constructor.name === 'SocketTransport') as Transport;
        const socket = transport.getExtraInfo<net.Socket>('socket')!;
        // The scenario: the loop stays stopped while the client pushes data. Wait for the end
        // state, not a time: the socket read more than the backlog limit and then stopped
        // reading at the handle (libuv reads nothing more; only the loop could restart it).
        const handle = (socket as unknown as { _handle: { reading: boolean } | null })._handle;
        await pollOrThrow(() => handle !== null && !handle.reading && socket.bytesRead > READ_BACKLOG_LIMIT, 10_000, 'the socket to stop reading');
        expect(protocol!.received).toBe(0);
        expect(socket.bytesRead).toBeLessThanOrEqual(1024 * 1024);
        // Once the loop runs again, every byte arrives, intact and in order.
        await loop.runUntilComplete(() => within(30_000, protocol!.bytes(size), '64 MiB'));
        expect(protocol!.received).toBe(size);
        expect(protocol!.hash.digest('hex')).toBe(expected);
        client.end();
        server.close();
        server.abortClients();
        await loop.runUntilComplete(() => server.waitClosed());
      } finally {
        client?.destroy();
        setRewrapAccepted(previous);
        loop.close();
      }
    }, 60_000);
  }
});
