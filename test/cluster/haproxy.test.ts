// serveWorkers() behind a real HAProxy (Debian's haproxy, TCP mode, send-proxy-v2):
// the workers see each client's own address, not HAProxy's, and the connections
// spread over both workers. The clients connect from 127.0.0.2, HAProxy from
// 127.0.0.1, so the two cannot be mistaken for one another.
import net from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PRIMARY, killChildren, start, type Child } from './helpers.ts';
import { removeTempDirs, servicesMissing, startHaproxy } from './services.ts';

const missing = servicesMissing();
afterEach(killChildren);
afterAll(removeTempDirs);

/** One `peer` request from 127.0.0.2 to `port`: what the server saw, and our own port. */
function askPeer(port: number): Promise<{ pid: number; address: string; port: number; localPort: number }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    let buf = '';
    sock.setTimeout(10_000, () => sock.destroy(new Error('no answer within 10 s')));
    sock.on('connect', () => sock.write('peer\n'));
    sock.on('data', (d: Buffer) => {
      buf += d.toString();
      if (!buf.includes('\n')) return;
      const [pid, address, p] = buf.trim().split(' ');
      resolve({ pid: Number(pid), address: address!, port: Number(p), localPort: sock.localPort! });
      sock.end();
    });
    sock.on('error', reject);
    sock.on('close', () => reject(new Error(`closed without an answer (got '${buf}')`)));
  });
}

async function startPool(options: Record<string, unknown>): Promise<{ p: Child; port: number; pids: number[] }> {
  const p = start(PRIMARY, [JSON.stringify(options)]);
  const m = await p.line(/^(ready (\d+) (\S+) ([\d,]+)|error .*)$/);
  if (m[1]!.startsWith('error')) throw new Error(m[1]);
  return { p, port: Number(m[2]), pids: m[4]!.split(',').map(Number) };
}

describe.skipIf(missing !== null)('serveWorkers behind HAProxy', () => {
  it("with send-proxy-v2 the workers see the client's address, and the load spreads over 2 workers", async () => {
    const { p, port, pids } = await startPool({ workers: 2, serveOptions: { proxyProtocol: 'v2' } });
    const haproxy = await startHaproxy([port], 'send-proxy-v2');
    try {
      const counts = new Map<number, number>();
      for (let i = 0; i < 40; i += 4) {
        const answers = await Promise.all(Array.from({ length: 4 }, () => askPeer(haproxy.port)));
        for (const a of answers) {
          // The client's own address and port, as HAProxy's header said.
          expect(a.address).toBe('127.0.0.2');
          expect(a.port).toBe(a.localPort);
          counts.set(a.pid, (counts.get(a.pid) ?? 0) + 1);
        }
      }
      expect(new Set(counts.keys())).toEqual(new Set(pids));
      // A connection that skips HAProxy comes from an untrusted address: closed (reset,
      // as its request is unread), and the workers go on.
      await expect(askPeer(port)).rejects.toThrow(/closed without an answer|ECONNRESET/);
      expect((await askPeer(haproxy.port)).address).toBe('127.0.0.2');
    } finally {
      await haproxy.stop();
    }
    p.child.kill('SIGTERM');
    expect((await p.exited).code).toBe(0);
  });
});
