// A Protocol's large reads land in a fresh buffer that is handed over without a copy
// (src/transports/net/socket-read.ts): the bytes stay intact after later reads, and the
// fresh buffers pinned for a next read stay within their budget and are given back when
// the connections close.
import { describe, expect, it } from 'vitest';
import { FRESH_BUDGET, freshBytesPinned } from '../../src/transports/net/socket-read.ts';
import { Recorder, payload, portOf, runLoop, within } from './helpers.ts';

describe('fresh read buffers (Protocol)', () => {
  it('hands large reads over intact: no later read overwrites bytes the protocol got', async () => {
    await runLoop(async (loop, errors) => {
      const before = freshBytesPinned();
      let serverSide: Recorder | undefined;
      await using server = await loop.createServer(() => (serverSide = new Recorder(loop)), { host: '127.0.0.1', port: 0 });
      const [client] = await loop.createConnection(() => new Recorder(loop), { host: '127.0.0.1', port: portOf(server) });
      const message = payload(2 * 1024 * 1024);
      // Pieces of 100 KiB, each one received before the next is sent: large reads, one after another.
      for (let off = 0; off < message.length; off += 100 * 1024) {
        client.write(message.subarray(off, off + 100 * 1024));
        await within(5000, serverSide!.waitBytes(Math.min(off + 100 * 1024, message.length)));
      }
      expect(serverSide!.data.equals(message)).toBe(true);
      // No two chunks share bytes.
      const chunks = serverSide!.chunks;
      for (let i = 0; i < chunks.length; i++) {
        for (let j = i + 1; j < chunks.length; j++) {
          const a = chunks[i]!;
          const b = chunks[j]!;
          if (a.buffer !== b.buffer) continue;
          expect(a.byteOffset + a.byteLength <= b.byteOffset || b.byteOffset + b.byteLength <= a.byteOffset).toBe(true);
        }
      }
      expect(freshBytesPinned()).toBeLessThanOrEqual(before + FRESH_BUDGET);
      client.close();
      await within(5000, serverSide!.lost);
      expect(freshBytesPinned()).toBe(before);
      expect(errors).toEqual([]);
    });
  });

  it('keeps what many connections that went quiet after a large read pin within the budget', async () => {
    await runLoop(async (loop, errors) => {
      const before = freshBytesPinned();
      const servers: Recorder[] = [];
      await using server = await loop.createServer(() => {
        const r = new Recorder(loop);
        servers.push(r);
        return r;
      }, { host: '127.0.0.1', port: 0 });
      const clients = [];
      const message = payload(200 * 1024);
      for (let i = 0; i < 60; i++) {
        const [t] = await loop.createConnection(() => new Recorder(loop), { host: '127.0.0.1', port: portOf(server) });
        clients.push(t);
        t.write(message);
      }
      for (const s of servers) await within(5000, s.waitBytes(message.length));
      for (const s of servers) expect(s.data.equals(message)).toBe(true);
      // 60 connections x up to 208 KiB would be past the budget: the rest read through the scratch buffer.
      expect(freshBytesPinned() - before).toBeLessThanOrEqual(FRESH_BUDGET);
      for (const t of clients) t.close();
      for (const s of servers) await within(5000, s.lost);
      expect(freshBytesPinned()).toBe(before);
      expect(errors).toEqual([]);
    });
  });
});
