// serveWorkers() end to end: a primary runs as a child process with real worker
// processes on one port; the tests talk to them over TCP and signal the primary.
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeHasReusePort } from '../../src/cluster/port-sharing.ts';
import { query } from '../../src/cli/client.ts';
import { PRIMARY, alive, ask, killChildren, start, type Child } from './helpers.ts';
import { pollOrThrow } from '../helpers.ts';

afterEach(killChildren);

async function startPool(options: Record<string, unknown>): Promise<{ p: Child; port: number; sharing: string; pids: number[] }> {
  const p = start(PRIMARY, [JSON.stringify(options)]);
  const m = await p.line(/^(ready (\d+) (\S+) ([\d,]+)|error .*)$/);
  if (m[1]!.startsWith('error')) throw new Error(m[1]);
  return { p, port: Number(m[2]), sharing: m[3]!, pids: m[4]!.split(',').map(Number) };
}

/** Asks `pid` over `n` connections, `parallel` at a time; returns each answer. */
async function askMany(port: number, n: number, parallel = 4): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i += parallel) {
    const batch = await Promise.all(Array.from({ length: Math.min(parallel, n - i) }, () => ask(port, 'pid')));
    out.push(...batch.map(Number));
  }
  return out;
}

/** The inodes of the sockets listening on `port` (Linux: /proc/net/tcp); null elsewhere. */
function listeningInodes(port: number): string[] | null {
  if (!existsSync('/proc/net/tcp')) return null;
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1]?.endsWith(`:${hexPort}`) && f[3] === '0A')
    .map((f) => f[9]!)
    .sort();
}

const sharings = nodeHasReusePort() ? ['reusePort', 'cluster'] : ['cluster'];

describe('serveWorkers', () => {
  for (const portSharing of sharings) {
    it(`2 workers share one port (${portSharing}); SIGTERM drains them and the primary exits 0`, async () => {
      const { p, port, sharing, pids } = await startPool({ workers: 2, portSharing });
      expect(sharing).toBe(portSharing);
      expect(pids).toHaveLength(2);
      const answers = await askMany(port, 24);
      expect(new Set(answers)).toEqual(new Set(pids));
      expect(await ask(port, 'hello')).toBe('hello');
      p.child.kill('SIGTERM');
      expect(await p.exited).toEqual({ code: 0, signal: null });
      expect(p.out).toContain('done 0');
      for (const pid of pids) expect(alive(pid)).toBe(false);
    });
  }

  it("'auto' picks reusePort where this Node and platform have it, cluster elsewhere", async () => {
    const { p, sharing } = await startPool({ workers: 1 });
    expect(sharing).toBe(nodeHasReusePort() ? 'reusePort' : 'cluster');
    p.child.kill('SIGTERM');
    expect((await p.exited).code).toBe(0);
  });

  it('SIGINT drains every worker and the primary exits 130', async () => {
    const { p, pids } = await startPool({ workers: 2 });
    p.child.kill('SIGINT');
    expect(await p.exited).toEqual({ code: 130, signal: null });
    expect(p.out).toContain('done 130');
    for (const pid of pids) expect(alive(pid)).toBe(false);
  });

  it('a crashed worker is restarted with a backoff and logged; the others keep serving', async () => {
    const { p, port, pids } = await startPool({ workers: 2, restartDelay: 50 });
    process.kill(pids[0]!, 'SIGKILL');
    await p.line(new RegExp(`worker 1 \\(pid ${pids[0]}\\) crashed \\(SIGKILL\\); restarting it in 50 ms`), 20_000, 'err');
    // Until the new worker is up, the other one answers; then both do, and never the dead one.
    const seen = new Set<number>();
    while (seen.size < 2) {
      const [pid] = await askMany(port, 1, 1);
      expect(pid).not.toBe(pids[0]);
      seen.add(pid!);
    }
    expect(seen.has(pids[1]!)).toBe(true);
    p.child.kill('SIGTERM');
    expect((await p.exited).code).toBe(0);
  });

  it('a crash loop stops with WorkerCrashLoopError', async () => {
    const p = start(PRIMARY, [JSON.stringify({ app: 'crash-app.ts', workers: 1, restartDelay: 10, crashLimit: 2, crashWindow: 60_000 })]);
    await p.line(/^error ERR_PROTOLOOP_WORKER_CRASH_LOOP workers crashed 3 times within 60000 ms/);
    expect((await p.exited).code).toBe(1);
    expect(p.err.filter((l) => l.includes('crashed (exit code 3)'))).toHaveLength(2);
  });

  it('a serve() that throws fails serveWorkers() with the worker error', async () => {
    const p = start(PRIMARY, [JSON.stringify({ workers: 2, serveOptions: { mode: 'fail' } })]);
    await p.line(/^error ERR_PROTOLOOP_REMOTE worker \d failed to start: RangeError: this serve\(\) always fails$/);
    expect((await p.exited).code).toBe(1);
  });

  // The clients connect without pause through both restarts: any refused, reset or
  // unanswered connection is a failure (with reusePort the old worker's listening
  // sockets pass to the new one, since closing one would reset its accept queue; with
  // cluster the old worker returns the connections the primary sent it late).
  for (const portSharing of sharings) it(`SIGHUP restarts the workers one at a time without refusing a connection (${portSharing})`, async () => {
    const { p, port, pids } = await startPool({ workers: 2, restartDelay: 50, portSharing });
    let stop = false;
    let restarted = false;
    const answers: number[] = [];
    /** Answers to connections made once the restart was over. */
    const later: number[] = [];
    const failures: unknown[] = [];
    const clients = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const after = restarted;
        try {
          const answer = await ask(port, 'pid');
          if (!/^\d+$/.test(answer)) throw new Error(`closed without an answer (got '${answer}')`);
          answers.push(Number(answer));
          if (after) later.push(Number(answer));
        } catch (err) {
          failures.push(err);
        }
      }
    });
    try {
      // Some traffic before the restart, so the clients run over it.
      await pollOrThrow(() => answers.length >= 10, 30_000, 'answers before the restart');
      const sockets = listeningInodes(port);
      p.child.kill('SIGHUP');
      const m = await p.line(/^workers ([\d,]+)$/, 60_000);
      const fresh = m[1]!.split(',').map(Number);
      restarted = true;
      await pollOrThrow(() => later.length >= 20, 30_000, 'answers after the restart');
      stop = true;
      await Promise.all(clients);
      expect(failures).toEqual([]);
      expect(fresh).toHaveLength(2);
      for (const pid of fresh) expect(pids).not.toContain(pid);
      for (const pid of pids) expect(alive(pid)).toBe(false);
      // Only the new workers answer once the restart finished, and both do.
      expect(new Set(later)).toEqual(new Set(fresh));
      // reusePort: the new workers listen on the very sockets of the old ones (none was closed).
      if (portSharing === 'reusePort' && sockets !== null) {
        expect(sockets).toHaveLength(2);
        expect(listeningInodes(port)).toEqual(sockets);
      }
    } finally {
      stop = true;
      await Promise.all(clients);
    }
    p.child.kill('SIGTERM');
    expect((await p.exited).code).toBe(0);
  });

  it('protoloop ps <primary pid> lists the workers with their tasks', async () => {
    const { p, pids } = await startPool({ workers: 2, inspect: true });
    const answer = (await query(p.child.pid!, 'ps')) as { pid: number; tasks: Array<{ name: string; parentName: string | null }> };
    expect(answer.pid).toBe(p.child.pid);
    const names = answer.tasks.map((t) => t.name);
    for (const [i, pid] of pids.entries()) expect(names).toContain(`worker ${i + 1} (pid ${pid})`);
    // Each worker's own main task, under its worker row.
    expect(answer.tasks.filter((t) => t.name.startsWith('worker ') && t.parentName?.startsWith('worker '))).toHaveLength(2);
    await expect(query(p.child.pid!, 'stats')).rejects.toThrow(/serveWorkers\(\) primary/);
    p.child.kill('SIGTERM');
    expect((await p.exited).code).toBe(0);
  });
});
