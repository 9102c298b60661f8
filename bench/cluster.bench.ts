/**
 * Scale-out benchmark (issue 19): echo throughput of a serveWorkers() pool with 1 and
 * with 2 workers, in the same run (rounds alternate 1, 2, 1, 2, ...), driven by the C
 * epoll load generator (bench/c/echo_client.c): 32 connections, one 1 KiB message in
 * flight on each. Then how evenly 400 short connections spread over 2 workers, for each
 * port sharing (reusePort: the kernel's hash; cluster: the primary's round-robin).
 *
 * On a 2-core machine the load generator needs a core too: the ratio says what a
 * second worker buys there, not what it buys on a machine with cores to spare.
 *
 *   node bench/cluster.bench.ts
 *   BENCH_CLUSTER_SECONDS=3 BENCH_CLUSTER_ROUNDS=3 node bench/cluster.bench.ts
 *
 * Writes bench/results/cluster.md.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import net from 'node:net';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { serveWorkers, type PortSharing, type WorkerPool } from '../src/cluster/index.ts';
import { nodeHasReusePort } from '../src/cluster/port-sharing.ts';
import { fmtRate, machine, median, table, writeResults } from './lib.ts';

const SECONDS = Number(process.env.BENCH_CLUSTER_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_CLUSTER_ROUNDS ?? 3);
const WARMUP_MS = 1000;
const CONNS = 32;
const SIZE = 1024;
const SPREAD = 400;

const root = fileURLToPath(new URL('..', import.meta.url));
const clientSrc = `${root}bench/c/echo_client.c`;
const clientBin = `${root}bench/c/echo_client.bin`;
const app = new URL('./cluster-echo-app.ts', import.meta.url);

if (!existsSync(clientBin) || statSync(clientBin).mtimeMs < statSync(clientSrc).mtimeMs) execFileSync('gcc', ['-O2', '-o', clientBin, clientSrc], { stdio: 'inherit' });

function echo(port: number): Promise<{ rate: number; p99: number; errors: number }> {
  const args = ['echo', '127.0.0.1', String(port), String(CONNS), String(SIZE), String(WARMUP_MS), String(SECONDS * 1000)];
  return new Promise((resolve, reject) => {
    execFile(clientBin, args, { timeout: SECONDS * 3000 + 20_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && !stdout) return reject(new Error(`echo_client failed: ${err.message}\n${stderr}`));
      const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as { rate: number; p99_us: number; errors: number };
      resolve({ rate: r.rate, p99: r.p99_us, errors: r.errors });
    });
  });
}

function askPid(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    s.on('connect', () => s.write('PID?\n'));
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\n')) {
        s.end();
        resolve(Number(buf.trim()));
      }
    });
    s.on('error', reject);
  });
}

async function pool(workers: number, portSharing: PortSharing): Promise<WorkerPool> {
  return serveWorkers(app, { workers, portSharing, handleSignals: false, log: () => undefined });
}

const loadBefore = loadavg()[0]!;
const sharing: PortSharing = nodeHasReusePort() ? 'reusePort' : 'cluster';
const rates: Record<1 | 2, number[]> = { 1: [], 2: [] };
const p99: Record<1 | 2, number[]> = { 1: [], 2: [] };
let errors = 0;
for (let round = 0; round < ROUNDS; round++) {
  for (const n of [1, 2] as const) {
    const p = await pool(n, sharing);
    try {
      const r = await echo(p.port);
      rates[n].push(r.rate);
      p99[n].push(r.p99);
      errors += r.errors;
      console.log(`round ${round + 1}: ${n} worker(s): ${fmtRate(r.rate)} (p99 ${r.p99} us)`);
    } finally {
      await p.close();
    }
  }
}

const spreadRows: (string | number)[][] = [];
for (const s of nodeHasReusePort() ? (['reusePort', 'cluster'] as const) : (['cluster'] as const)) {
  const p = await pool(2, s);
  try {
    const counts = new Map<number, number>(p.workers().map((w) => [w.pid, 0]));
    for (let i = 0; i < SPREAD; i += 8) {
      for (const pid of await Promise.all(Array.from({ length: 8 }, () => askPid(p.port)))) counts.set(pid, (counts.get(pid) ?? 0) + 1);
    }
    const c = [...counts.values()];
    spreadRows.push([s, SPREAD, c.join(' / '), `${((Math.max(...c) / SPREAD) * 100).toFixed(1)}%`]);
    console.log(`spread (${s}): ${c.join(' / ')}`);
  } finally {
    await p.close();
  }
}

const one = median(rates[1]);
const two = median(rates[2]);
const md = `## Scale-out: serveWorkers() (issue 19)

Command: \`node bench/cluster.bench.ts\` (BENCH_CLUSTER_SECONDS=${SECONDS}, BENCH_CLUSTER_ROUNDS=${ROUNDS}), ${new Date().toISOString().slice(0, 10)}.
Machine: ${machine()}; 1-minute load average ${loadBefore.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end (other jobs share the machine: with a load above the core count the rates say little, rerun on a quiet machine).
Echo through a pool (port sharing: ${sharing}), ${CONNS} connections, one ${SIZE} B message in flight on each (after ${WARMUP_MS} ms of warm-up), bench/c/echo_client.c as the load; rounds alternate 1 and 2 workers, median of ${ROUNDS}. Errors: ${errors}.

${table(['workers', 'echo rate', 'p99', 'ratio'], [
  ['1', fmtRate(one), `${median(p99[1])} us`, ''],
  ['2', fmtRate(two), `${median(p99[2])} us`, `${(two / one).toFixed(2)}x 1 worker`],
])}

How ${SPREAD} short connections (8 at a time) spread over 2 workers:

${table(['port sharing', 'connections', 'per worker', 'busiest worker'], spreadRows)}
`;
writeResults('cluster', md);
console.log(md);
