/**
 * WebSocket echo benchmark (issue 6): protoloop's WebSocket transport with an echo
 * MessageProtocol against a raw `ws` echo server, the same load generator for both.
 *
 * Each server runs in its own child process; a third process (a Node `ws` client)
 * keeps 32 connections busy, one binary message in flight on each, and reports
 * messages per second and latency percentiles. Sizes 64 B, 1 KiB and 16 KiB; the two
 * servers alternate round by round. Default run well under 90 s.
 *
 *   node bench/websocket.bench.ts                  # 3 rounds of 2.5 s per cell
 *   BENCH_SCALE=2 node bench/websocket.bench.ts     # longer cells
 *   WS_NO_BUFFER_UTIL=1 node bench/websocket.bench.ts   # without ws's native masking helper
 *
 * Roles (internal): `--server=protoloop|ws`, `--load=<port>`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { WebSocket, WebSocketServer } from 'ws';
import { MessageProtocol, getRunningLoop, run, type WebSocketTransport } from '../src/index.ts';
import { fmtRate, machine, median, table, writeResults } from './lib.ts';

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const SIZES = [64, 1024, 16 * 1024];
const CONNECTIONS = 32;
const ROUNDS = 3;
const WARMUP_MS = 500;
const MEASURE_MS = Math.round(2500 * SCALE);
const TARGET = 0.95;
const SELF = fileURLToPath(import.meta.url);

type Kind = 'protoloop' | 'ws';
interface LoadResult {
  rate: number;
  p50: number;
  p99: number;
  /** Messages echoed while measuring. */
  count: number;
  /** Server CPU time per echoed message, µs (filled in by the driver). */
  cpuPerMsg?: number;
}

// ------------------------------------------------------------------ servers

class Echo extends MessageProtocol {
  #t: WebSocketTransport | null = null;
  override connectionMade(t: WebSocketTransport): void {
    this.#t = t;
  }
  override messageReceived(data: Buffer | string): void {
    this.#t!.send(data);
  }
}

/** Servers answer `'cpu'` with their CPU time so far (µs): CPU per message is steadier than wall-clock rates on a shared machine. */
function answerCpu(): void {
  process.on('message', (m) => {
    if (m === 'cpu') {
      const u = process.cpuUsage();
      process.send!({ cpu: u.user + u.system });
    }
  });
}

async function protoloopServer(): Promise<void> {
  answerCpu();
  await run(async () => {
    const server = await getRunningLoop().createWebSocketServer(() => new Echo(), { host: '127.0.0.1', port: 0 });
    process.send!({ port: server.address()!.port });
    process.once('disconnect', () => server.close());
    await server.serveForever();
    server.abortClients();
  }, { handleSigint: false });
}

function wsServer(): void {
  answerCpu();
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 1024 * 1024 }, () => {
    process.send!({ port: (server.address() as { port: number }).port });
  });
  server.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
  });
  process.once('disconnect', () => {
    for (const c of server.clients) c.terminate();
    server.close();
  });
}

// ------------------------------------------------------------ load generator

async function load(port: number, size: number, warmupMs: number, measureMs: number): Promise<LoadResult> {
  const payload = Buffer.alloc(size, 0x61);
  const samples = new Float64Array(4_000_000);
  let n = 0;
  let measuring = false;
  let count = 0;
  const sockets: WebSocket[] = [];
  await Promise.all(
    Array.from({ length: CONNECTIONS }, () => new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
      sockets.push(ws);
      let sentAt = 0;
      ws.on('open', () => {
        sentAt = performance.now();
        ws.send(payload);
        resolve();
      });
      ws.on('error', reject);
      ws.on('message', () => {
        const now = performance.now();
        if (measuring) {
          count++;
          if (n < samples.length) samples[n++] = now - sentAt;
        }
        sentAt = now;
        ws.send(payload);
      });
    })),
  );
  await new Promise((r) => setTimeout(r, warmupMs));
  measuring = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, measureMs));
  measuring = false;
  const elapsed = performance.now() - t0;
  for (const ws of sockets) ws.terminate();
  const sorted = samples.subarray(0, n).sort();
  const pct = (p: number): number => sorted[Math.min(n - 1, Math.floor(n * p))] ?? NaN;
  return { rate: count / (elapsed / 1000), p50: pct(0.5), p99: pct(0.99), count };
}

// -------------------------------------------------------------------- driver

function startServer(kind: Kind): Promise<[ChildProcess, number]> {
  return new Promise((resolve, reject) => {
    const child = fork(SELF, [`--server=${kind}`], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', (m: { port: number }) => resolve([child, m.port]));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
}

function serverCpu(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    const onMessage = (m: { cpu?: number }): void => {
      if (typeof m?.cpu !== 'number') return;
      child.off('message', onMessage);
      resolve(m.cpu);
    };
    child.on('message', onMessage);
    child.send('cpu');
  });
}

function runLoad(port: number, size: number): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(SELF, [`--load=${port}`, `--size=${size}`], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('load generator timed out'));
    }, MEASURE_MS + WARMUP_MS + 20_000);
    child.once('message', (m: LoadResult) => {
      clearTimeout(timer);
      resolve(m);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`load generator exited with ${code}`));
    });
  });
}

/** Which of ws's optional helpers are in use in this process. */
function nativeHelpers(): string {
  const req = createRequire(createRequire(import.meta.url).resolve('ws'));
  const can = (m: string): boolean => {
    try {
      req(m);
      return true;
    } catch {
      return false;
    }
  };
  const bufferutil = process.env.WS_NO_BUFFER_UTIL ? 'disabled by WS_NO_BUFFER_UTIL' : can('bufferutil') ? 'active (masking/unmasking >= 32 B)' : 'not installed (JS fallback)';
  const utf8 = 'unused: ws prefers Node\'s buffer.isUtf8 on Node >= 18.14';
  return `bufferutil ${bufferutil}; utf-8-validate ${process.env.WS_NO_UTF_8_VALIDATE ? 'disabled by WS_NO_UTF_8_VALIDATE' : utf8}`;
}

async function main(): Promise<void> {
  const started = performance.now();
  const servers = { protoloop: await startServer('protoloop'), ws: await startServer('ws') };
  const results: Record<Kind, Record<number, LoadResult[]>> = { protoloop: {}, ws: {} };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const size of SIZES) {
        // Alternate which server goes first, so drift on the shared machine hits both.
        const order: Kind[] = (round + SIZES.indexOf(size)) % 2 === 0 ? ['protoloop', 'ws'] : ['ws', 'protoloop'];
        for (const kind of order) {
          const cpu0 = await serverCpu(servers[kind][0]);
          const r = await runLoad(servers[kind][1], size);
          // Includes the warm-up and connection set-up, the same for both servers.
          r.cpuPerMsg = (await serverCpu(servers[kind][0]) - cpu0) / (r.count * (1 + WARMUP_MS / MEASURE_MS));
          (results[kind][size] ??= []).push(r);
          console.log(
            `round ${round + 1} ${kind.padEnd(9)} ${String(size).padStart(5)} B: ${fmtRate(r.rate)} p50 ${r.p50.toFixed(3)} ms p99 ${r.p99.toFixed(3)} ms, server CPU ${r.cpuPerMsg.toFixed(1)} µs/msg`,
          );
        }
      }
    }
  } finally {
    for (const [child] of Object.values(servers)) child.disconnect();
  }
  const rows: (string | number)[][] = [];
  const ratios: string[] = [];
  let missed = false;
  for (const size of SIZES) {
    const p = results.protoloop[size]!;
    const w = results.ws[size]!;
    const pr = median(p.map((x) => x.rate));
    const wr = median(w.map((x) => x.rate));
    const ratio = pr / wr;
    if (ratio < TARGET) missed = true;
    const label = size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
    const pc = median(p.map((x) => x.cpuPerMsg!));
    const wc = median(w.map((x) => x.cpuPerMsg!));
    rows.push([
      label,
      fmtRate(wr),
      `${median(w.map((x) => x.p99)).toFixed(3)} ms`,
      `${wc.toFixed(1)} µs`,
      fmtRate(pr),
      `${median(p.map((x) => x.p99)).toFixed(3)} ms`,
      `${pc.toFixed(1)} µs`,
      `${ratio.toFixed(2)}x`,
      `${(wc / pc).toFixed(2)}x`,
    ]);
    const line = `ratio ${label}: protoloop ${ratio.toFixed(2)}x raw ws msg/s (target >= ${TARGET}x)${ratio >= TARGET ? '' : ' MISSED'}; server CPU per message ${(pc / wc).toFixed(2)}x raw ws`;
    ratios.push(line);
    console.log(line);
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  const md = [
    '## WebSocket echo (issue 6)',
    '',
    `Command: \`node bench/websocket.bench.ts\` (BENCH_SCALE=${SCALE}), ${new Date().toISOString().slice(0, 10)}, ${seconds} s.`,
    `Machine: ${machine()}. The load generator shares the two cores: treat differences of a few percent as noise.`,
    `Load: ${CONNECTIONS} connections from a separate Node process (ws client), one binary message in flight on each, ` +
      `${WARMUP_MS} ms warm-up then ${MEASURE_MS} ms measured per cell; each server in its own process; median of ${ROUNDS} alternating rounds.`,
    `ws's optional helpers: ${nativeHelpers()}.`,
    'protoloop server: `loop.createWebSocketServer()` with defaults (heartbeat on, maxPayload 1 MiB, no compression) and an echo `MessageProtocol`; ' +
      'raw server: `new WebSocketServer()` echoing in its `message` listener.',
    '',
    table(['size', 'raw ws msg/s', 'raw ws p99', 'raw ws CPU/msg', 'protoloop msg/s', 'protoloop p99', 'protoloop CPU/msg', 'msg/s ratio', 'CPU efficiency ratio'], rows),
    '',
    'CPU/msg is the server process\'s user+system CPU time per echoed message (warm-up included); the efficiency ratio is raw ws CPU/msg over protoloop CPU/msg, ' +
      'so 1.00x means the same cost per message. It moves much less than msg/s when other jobs share the cores.',
    '',
    ...ratios.map((r) => `- ${r}`),
    '',
    missed
      ? 'At least one size missed the 0.95x target in this run; the cells move by several percent from run to run, so re-run before drawing conclusions.'
      : 'Every size meets the 0.95x target.',
    '',
  ].join('\n');
  writeResults('websocket', md);
}

const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
if (arg('server') === 'protoloop') await protoloopServer();
else if (arg('server') === 'ws') wsServer();
else if (arg('load') !== undefined) {
  const r = await load(Number(arg('load')), Number(arg('size')), WARMUP_MS, MEASURE_MS);
  process.send!(r);
  process.disconnect();
} else await main();
