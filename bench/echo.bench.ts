/**
 * TCP echo benchmark (issue 5): protoloop's Protocol, BufferedProtocol and streams echo
 * servers against a raw Node `net` echo server, Python asyncio and uvloop, all driven
 * by the same C epoll load generator (bench/c/echo_client.c, built here with gcc):
 * 32 connections, one message in flight on each, 1 KiB, 10 KiB and 100 KiB messages.
 * The servers run side by side and are hit in turn, round after round, so machine
 * drift is shared. Then the memory cost of 10,000 idle connections (server RSS delta)
 * against raw `net`.
 *
 *   node bench/echo.bench.ts                    # ~80 s on a quiet 2-core machine
 *   BENCH_ECHO_SECONDS=5 BENCH_ECHO_ROUNDS=3 node bench/echo.bench.ts
 *   BENCH_ECHO_IDLE=0 node bench/echo.bench.ts  # skip the memory part
 *   BENCH_ECHO_MEM_RUNS=3 node bench/echo.bench.ts  # memory runs per server (default 2; the mean is reported)
 *   BENCH_ECHO_ONLY=raw,Protocol node bench/echo.bench.ts
 *   BENCH_ECHO_PIN=0 node bench/echo.bench.ts   # do not pin (default: servers on CPU 1, client on CPU 0)
 *
 * Besides msg/s, each cell reports the server's CPU time per message (utime + stime of
 * the server process, all its threads, from /proc/<pid>/stat, over the measured window
 * only: the warm-up is a separate client run). On a shared machine msg/s swings with the
 * neighbours' load; CPU per message much less, so the "CPU ratio" column (raw net's CPU
 * per message over the server's) says how the servers compare when the machine is busy.
 *
 * With --write, writes bench/results/echo.md.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { machine, table, writeResults } from './lib.ts';

const SECONDS = Number(process.env.BENCH_ECHO_SECONDS ?? 1);
const WARMUP_MS = Number(process.env.BENCH_ECHO_WARMUP_MS ?? 300);
const ROUNDS = Number(process.env.BENCH_ECHO_ROUNDS ?? 2);
const IDLE_WANTED = Number(process.env.BENCH_ECHO_IDLE ?? 10_000);
const MEM_RUNS = Math.max(1, Number(process.env.BENCH_ECHO_MEM_RUNS ?? 2));
const ONLY = process.env.BENCH_ECHO_ONLY?.split(',').map((s) => s.trim().toLowerCase());
const PIN_WANTED = process.env.BENCH_ECHO_PIN !== '0';
const CONNS = 32;
const SIZES = [1024, 10 * 1024, 100 * 1024];
const HOST = '127.0.0.1';

const root = fileURLToPath(new URL('..', import.meta.url));
const node = process.execPath;
const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const clientSrc = `${root}bench/c/echo_client.c`;
const clientBin = `${root}bench/c/echo_client.bin`;

interface ServerSpec {
  name: string;
  /** Counts against the targets (protoloop servers) or is a baseline. */
  kind: 'protoloop' | 'baseline';
  cmd: string[];
  /** Measure idle-connection memory for it. */
  memory: boolean;
}

interface Cell {
  rate: number;
  /** Server CPU time per message, µs (NaN when /proc is not readable). */
  cpuUs: number;
  p50: number;
  p99: number;
  errors: number;
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Pinning: the servers on one core, the load generator on another (taskset), when there are two and taskset exists. */
function pinning(): { server: string[]; client: string[] } {
  const none = { server: [], client: [] };
  if (!PIN_WANTED) return none;
  try {
    const n = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
    return n >= 2 ? { server: ['taskset', '-c', '1'], client: ['taskset', '-c', '0'] } : none;
  } catch {
    return none;
  }
}
const PIN = pinning();

function buildClient(): void {
  const stale = !existsSync(clientBin) || statSync(clientBin).mtimeMs < statSync(clientSrc).mtimeMs;
  if (stale) execFileSync('gcc', ['-O2', '-o', clientBin, clientSrc], { stdio: 'inherit' });
}

function hasUvloop(): boolean {
  try {
    execFileSync(python, ['-c', 'import uvloop'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function fdLimit(): number {
  try {
    return Number(execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim()) || 1024;
  } catch {
    return 1024;
  }
}

class RunningServer {
  readonly spec: ServerSpec;
  readonly child: ChildProcess;
  port = 0;
  /** Waiting for the server's answer to SIGUSR2 (`gc HEAP_USED EXTERNAL`). */
  gcWaiter: ((heap: { used: number; external: number }) => void) | null = null;
  constructor(spec: ServerSpec, child: ChildProcess) {
    this.spec = spec;
    this.child = child;
  }

  /** utime + stime of the server process (all threads), in µs. */
  cpuUs(): number {
    try {
      const stat = readFileSync(`/proc/${this.child.pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
    } catch {
      return NaN;
    }
  }

  rssKiB(): number {
    const status = readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) : NaN;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** Starts a server (with the fd limit raised) and waits for its `listening on HOST:PORT` line. */
function startServer(spec: ServerSpec, nofile: number): Promise<RunningServer> {
  const child = spawn('sh', ['-c', `ulimit -n ${nofile} 2>/dev/null; exec "$@"`, 'sh', ...PIN.server, ...spec.cmd], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server = new RunningServer(spec, child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${spec.name} did not print its address within 15 s; stderr:\n${stderr}`));
    }, 15_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /listening on (\S+):(\d+)/.exec(out);
      if (m === null) return;
      clearTimeout(timer);
      server.port = Number(m[2]);
      child.stdout!.off('data', onData);
      child.stdout!.on('data', (d: Buffer) => {
        const g = /gc (\d+) (\d+)/.exec(d.toString());
        if (g !== null) server.gcWaiter?.({ used: Number(g[1]), external: Number(g[2]) });
      });
      resolve(server);
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${spec.name} exited with ${code}; stderr:\n${stderr}`));
    });
  });
}

function runClient(args: string[], timeoutMs: number): Promise<string> {
  const [file, ...pre] = PIN.client.length > 0 ? [...PIN.client, clientBin] : [clientBin];
  return new Promise((resolve, reject) => {
    execFile(file!, [...pre, ...args], { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && !stdout) reject(new Error(`echo_client ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

async function echoCell(server: RunningServer, size: number): Promise<Cell> {
  // The warm-up is a run of its own, so that the server's CPU time is read over the measured window only.
  if (WARMUP_MS > 0) await runClient(['echo', HOST, String(server.port), String(CONNS), String(size), '0', String(WARMUP_MS)], WARMUP_MS * 3 + 10_000);
  const cpu0 = server.cpuUs();
  const out = await runClient(['echo', HOST, String(server.port), String(CONNS), String(size), '0', String(Math.round(SECONDS * 1000))], SECONDS * 1000 * 3 + 10_000);
  const cpu1 = server.cpuUs();
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as { msgs: number; rate: number; p50_us: number; p99_us: number; errors: number };
  return { rate: r.rate, cpuUs: r.msgs > 0 ? (cpu1 - cpu0) / r.msgs : NaN, p50: r.p50_us, p99: r.p99_us, errors: r.errors };
}

const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Server RSS growth (KiB) for `n` idle connections, each after one 16-byte round trip. */
/**
 * For the memory part, Node servers run with a full GC on SIGUSR2 (`--expose-gc` and a
 * one-line `--import`), so RSS is read after the garbage of accepting is collected: the
 * figure is what the connections keep, not where the heap happened to be in its cycle.
 * The GC is V8's memory-reducing one (`flavor: 'last-resort'`, what V8 runs before it
 * gives up on memory): it also hands back the young generation, which V8 grows (up to
 * 64 MiB on Node 24) while a burst of connections is accepted and a plain full GC keeps,
 * so that a server that allocates more while accepting is not charged that buffer as
 * memory per connection.
 */
const GC_ON_SIGNAL = `data:text/javascript,${encodeURIComponent(
  "process.on('SIGUSR2', () => { globalThis.gc({ type: 'major', execution: 'sync', flavor: 'last-resort' }); const m = process.memoryUsage(); process.stdout.write(`gc ${m.heapUsed} ${m.external}\\n`); })",
)}`;

function withGcOnSignal(spec: ServerSpec): ServerSpec {
  if (spec.cmd[0] !== node) return spec;
  return { ...spec, cmd: [node, '--expose-gc', `--import=${GC_ON_SIGNAL}`, ...spec.cmd.slice(1)] };
}

interface MemProbe {
  /** VmRSS, KiB. */
  rss: number;
  /** JS heap in use after the GC, bytes (NaN when the server does not answer SIGUSR2). */
  heap: number;
}

/** RSS after a full GC in the server (when it takes SIGUSR2), with its JS heap then. */
async function settledMemory(server: RunningServer): Promise<MemProbe> {
  if (!server.spec.cmd.includes('--expose-gc')) return { rss: server.rssKiB(), heap: NaN };
  const answered = new Promise<{ used: number; external: number }>((resolve) => (server.gcWaiter = resolve));
  server.child.kill('SIGUSR2');
  const heap = await answered;
  server.gcWaiter = null;
  return { rss: server.rssKiB(), heap: heap.used };
}

/** Server RSS growth (KiB) and JS heap growth (bytes) for `n` idle connections, each after one 16-byte round trip. */
async function idleMemory(spec: ServerSpec, n: number, nofile: number): Promise<{ base: number; delta: number; heapDelta: number }> {
  const server = await startServer(withGcOnSignal(spec), nofile);
  try {
    // Warm the accept path first so that JIT and first-use allocations are in the baseline.
    await idleHold(server, 200, 200);
    await sleepMs(500);
    const base = await settledMemory(server);
    let held: MemProbe = base;
    await idleHold(server, n, 1000, async () => {
      held = await settledMemory(server);
    });
    return { base: base.rss, delta: held.rss - base.rss, heapDelta: held.heap - base.heap };
  } finally {
    await server.stop();
  }
}

/** Opens `n` idle connections with the C client, waits `settleMs` once they are ready, calls `probe`, closes them. */
function idleHold(server: RunningServer, n: number, settleMs: number, probe?: () => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    const [file, ...pre] = PIN.client.length > 0 ? [...PIN.client, clientBin] : [clientBin];
    const child = spawn(file!, [...pre, 'idle', HOST, String(server.port), String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!out.includes('"ready"')) return;
      out = '';
      setTimeout(() => {
        void (probe?.() ?? Promise.resolve()).finally(() => child.stdin.end());
      }, settleMs);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`echo_client idle ${n} exited with ${code}`));
    });
  });
}

/** The msg/s target of a protoloop server: against which baseline, and the ratio wanted. */
function rateTarget(name: string): { against: 'raw net' | 'uvloop'; want: number } {
  if (name.includes('Buffered')) return { against: 'uvloop', want: 1.0 };
  if (name.includes('streams')) return { against: 'raw net', want: 1.0 };
  return { against: 'raw net', want: 1.1 };
}

/** The idle-memory target of a protoloop server (its RSS growth over raw net's). */
function memTarget(name: string): number {
  if (name.includes('Buffered')) return 1.3;
  if (name.includes('streams')) return 2.0;
  return 1.1;
}

function fmtCpu(us: number): string {
  return Number.isFinite(us) ? us.toFixed(2) : 'n/a';
}

function ratio(a: number, b: number | undefined): string {
  return b === undefined || !(b > 0) ? 'n/a' : `${(a / b).toFixed(2)}x`;
}

function fmtSize(size: number): string {
  return `${size / 1024} KiB`;
}

async function main(): Promise<void> {
  buildClient();
  const uvloop = hasUvloop();
  const nofileHard = fdLimit();
  const idle = Math.max(0, Math.min(IDLE_WANTED, nofileHard - 200));
  const nofile = Math.min(nofileHard, Math.max(1024, idle + 200));
  const specs: ServerSpec[] = [
    { name: 'protoloop Protocol', kind: 'protoloop', cmd: [node, 'examples/servers/echo.ts', '--port', '0'], memory: true },
    { name: 'protoloop BufferedProtocol', kind: 'protoloop', cmd: [node, 'examples/servers/echo-buffered.ts', '--port', '0'], memory: true },
    { name: 'protoloop streams', kind: 'protoloop', cmd: [node, 'examples/servers/echo-streams.ts', '--port', '0'], memory: true },
    { name: 'raw net', kind: 'baseline', cmd: [node, 'bench/net-echo-server.ts', '0'], memory: true },
    { name: 'asyncio', kind: 'baseline', cmd: [python, 'bench/py/echo_server.py', 'asyncio', '0'], memory: false },
  ];
  if (uvloop) specs.push({ name: 'uvloop', kind: 'baseline', cmd: [python, 'bench/py/echo_server.py', 'uvloop', '0'], memory: false });
  else console.log('uvloop is not installed for python3 (apt-get install python3-uvloop): skipping it');
  const chosen = ONLY === undefined ? specs : specs.filter((s) => ONLY.some((o) => s.name.toLowerCase().includes(o)) || s.name === 'raw net');

  const servers: RunningServer[] = [];
  const results = new Map<string, Map<number, Cell[]>>();
  try {
    servers.push(...(await Promise.all(chosen.map((spec) => startServer(spec, 4096)))));
    for (const size of SIZES) {
      for (let round = 0; round < ROUNDS; round++) {
        // Rotate the order each round so no server always runs first or last.
        const order = servers.map((_, i) => servers[(i + round) % servers.length]!);
        for (const server of order) {
          const cell = await echoCell(server, size);
          const bySize = results.get(server.spec.name) ?? new Map<number, Cell[]>();
          results.set(server.spec.name, bySize);
          (bySize.get(size) ?? bySize.set(size, []).get(size)!).push(cell);
          console.log(`${fmtSize(size).padStart(7)} round ${round + 1}  ${server.spec.name.padEnd(28)} ${cell.rate.toFixed(0).padStart(7)} msg/s  ${cell.cpuUs.toFixed(2).padStart(6)} us CPU/msg  p99 ${String(cell.p99).padStart(6)} us${cell.errors ? `  ERRORS ${cell.errors}` : ''}`);
        }
      }
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }

  const summary = (name: string, size: number): Cell | undefined => {
    const cells = results.get(name)?.get(size);
    if (cells === undefined || cells.length === 0) return undefined;
    return {
      rate: cells.reduce((a, c) => a + c.rate, 0) / cells.length,
      cpuUs: cells.reduce((a, c) => a + c.cpuUs, 0) / cells.length,
      p50: Math.max(...cells.map((c) => c.p50)),
      p99: Math.max(...cells.map((c) => c.p99)),
      errors: cells.reduce((a, c) => a + c.errors, 0),
    };
  };

  const lines: string[] = [];
  const targetRows: (string | number)[][] = [];
  const tables: string[] = [];
  for (const size of SIZES) {
    const net = summary('raw net', size);
    const uv = summary('uvloop', size);
    const rows = chosen.map((spec) => {
      const c = summary(spec.name, size)!;
      return [spec.name, c.rate.toFixed(0), fmtCpu(c.cpuUs), c.p50, c.p99, ratio(c.rate, net?.rate), ratio(net?.cpuUs ?? NaN, c.cpuUs), ratio(c.rate, uv?.rate), ratio(uv?.cpuUs ?? NaN, c.cpuUs), c.errors];
    });
    tables.push(`### ${fmtSize(size)} messages\n\n${table(['server', 'msg/s', 'CPU µs/msg', 'p50 µs', 'p99 µs', 'vs raw net', 'CPU ratio vs raw net', 'vs uvloop', 'CPU ratio vs uvloop', 'errors'], rows)}`);
    for (const spec of chosen.filter((s) => s.kind === 'protoloop')) {
      const c = summary(spec.name, size)!;
      const t = rateTarget(spec.name);
      const base = t.against === 'uvloop' ? uv : net;
      const r = base ? c.rate / base.rate : NaN;
      const rc = base ? base.cpuUs / c.cpuUs : NaN;
      const verdict = base === undefined ? 'n/a' : r >= t.want ? 'met' : 'MISSED';
      lines.push(`${spec.name} ${fmtSize(size)}: ${r.toFixed(2)}x ${t.against} msg/s (target >= ${t.want}x: ${verdict}), CPU ratio ${rc.toFixed(2)}x; ${ratio(c.rate, net?.rate)} raw net, ${ratio(c.rate, uv?.rate)} uvloop`);
      targetRows.push([spec.name, fmtSize(size), `${r.toFixed(2)}x ${t.against}`, `>= ${t.want}x`, verdict === 'MISSED' ? '**missed**' : verdict, `${rc.toFixed(2)}x`]);
    }
  }
  console.log('\n' + lines.join('\n'));

  // Memory: fresh servers, one at a time.
  const memRows: (string | number)[][] = [];
  let memNote = '';
  if (idle > 0) {
    const memSpecs = chosen.filter((s) => s.memory);
    const deltas = new Map<string, number[]>();
    const heaps = new Map<string, number[]>();
    // Alternating runs, fresh servers each time: RSS moves by a few MiB from run to run.
    for (let run = 0; run < MEM_RUNS; run++) {
      for (const spec of memSpecs) {
        try {
          const m = await idleMemory(spec, idle, nofile);
          (deltas.get(spec.name) ?? deltas.set(spec.name, []).get(spec.name)!).push(m.delta);
          (heaps.get(spec.name) ?? heaps.set(spec.name, []).get(spec.name)!).push(m.heapDelta);
          console.log(`memory run ${run + 1} ${spec.name.padEnd(28)} base ${(m.base / 1024).toFixed(1)} MiB, +${(m.delta / 1024).toFixed(1)} MiB RSS, +${(m.heapDelta / 1048576).toFixed(1)} MiB JS heap for ${idle} idle connections`);
        } catch (e) {
          console.log(`memory ${spec.name}: failed: ${e instanceof Error ? e.message : String(e)}`);
          memNote += `\n${spec.name}: the measurement failed (${e instanceof Error ? e.message : String(e)}).\n`;
        }
      }
    }
    const mean = (xs: number[] | undefined): number | undefined => (xs === undefined || xs.length === 0 ? undefined : xs.reduce((a, b) => a + b, 0) / xs.length);
    const netDelta = mean(deltas.get('raw net'));
    const netHeap = mean(heaps.get('raw net'));
    for (const spec of memSpecs) {
      const d = mean(deltas.get(spec.name));
      if (d === undefined) continue;
      const runs = deltas.get(spec.name)!;
      const h = mean(heaps.get(spec.name))!;
      const r = netDelta ? d / netDelta : NaN;
      const want = memTarget(spec.name);
      const verdict = spec.kind === 'protoloop' ? (r <= want ? 'met' : '**missed**') : '';
      const spread = runs.length > 1 ? `${(Math.min(...runs) / 1024).toFixed(1)}-${(Math.max(...runs) / 1024).toFixed(1)}` : '';
      memRows.push([spec.name, (d / 1024).toFixed(1), spread, (d / idle).toFixed(2), netDelta ? `${r.toFixed(2)}x` : 'n/a', spec.kind === 'protoloop' ? `<= ${want}x` : '', verdict, (h / idle).toFixed(0), netHeap ? `${(h / netHeap).toFixed(2)}x` : 'n/a']);
      if (spec.kind === 'protoloop') console.log(`${spec.name} idle memory: ${r.toFixed(2)}x raw net RSS (target <= ${want}x: ${r <= want ? 'met' : 'MISSED'}), JS heap ${(h / idle).toFixed(0)} B per connection (${netHeap ? (h / netHeap).toFixed(2) : 'n/a'}x raw net)`);
    }
    if (idle < IDLE_WANTED) memNote += `\nOnly ${idle} idle connections: the hard fd limit here is ${nofileHard}.\n`;
  }

  const md = [
    '## TCP echo (issues 5 and 20)',
    '',
    `Command: \`node bench/echo.bench.ts\` (BENCH_ECHO_SECONDS=${SECONDS}, BENCH_ECHO_ROUNDS=${ROUNDS}, warm-up ${WARMUP_MS} ms per cell)  `,
    `Machine: ${machine()}, \`nproc\` = ${execFileSync('nproc', { encoding: 'utf8' }).trim()}, ${execFileSync(python, ['--version'], { encoding: 'utf8' }).trim()}${uvloop ? ', uvloop installed' : ', uvloop missing (skipped)'}  `,
    `Date: ${new Date().toISOString()}`,
    '',
    `Load: the C epoll client (bench/c/echo_client.c), ${CONNS} connections, one message in flight on each, ` +
      `${SECONDS} s measured per cell after ${WARMUP_MS} ms of warm-up, ${ROUNDS} round(s); the servers run side by side ` +
      'and are hit in turn (order rotated each round). msg/s and CPU µs/msg are the means over rounds, p50/p99 the worst round. ' +
      (PIN.server.length > 0
        ? 'The servers are pinned to CPU 1 and the load generator to CPU 0 (`taskset`; BENCH_ECHO_PIN=0 turns it off). '
        : 'Not pinned: the client and the servers share the cores. ') +
      'CPU µs/msg is the server process\'s user + system time (all threads: GC helpers included) over the measured window, per message.',
    '',
    'Absolute numbers move from run to run with the machine\'s load; the CPU ratios much less.',
    '',
    ...tables.flatMap((t) => [t, '']),
    '### Targets',
    '',
    'Protocol: msg/s at least 1.1x raw `net`; streams at least 1.0x raw `net`; BufferedProtocol at least 1.0x uvloop. ' +
      'The verdict is on msg/s; the CPU ratio (the baseline\'s CPU per message over the server\'s) is the same comparison made robust to a busy machine.',
    '',
    table(['server', 'size', 'msg/s ratio', 'target', 'verdict', 'CPU ratio'], targetRows),
    '',
    '### Memory: idle connections',
    '',
    idle > 0
      ? `Server RSS growth (VmRSS from /proc/<pid>/status) with ${idle} idle connections open, each after one 16-byte round trip, measured 1 s after the last one was served and after a memory-reducing full GC in the server (SIGUSR2 with \`--expose-gc\`, \`gc({ type: 'major', flavor: 'last-resort' })\`, which also gives back the young generation V8 grew while accepting; for the Node servers alike), against a baseline taken the same way after a 200-connection warm-up; the mean of ${MEM_RUNS} run(s) per server, alternating, fresh servers each time. The JS heap columns (heapUsed after that GC) are the same comparison without the RSS noise. Targets: Protocol <= 1.1x raw net, BufferedProtocol <= 1.3x, streams <= 2.0x.\n\n` +
        table(['server', 'RSS MiB', 'runs (MiB)', 'KiB per connection', 'vs raw net', 'target', 'verdict', 'JS heap B per connection', 'heap vs raw net'], memRows) +
        memNote
      : 'Skipped (BENCH_ECHO_IDLE=0).',
    '',
    NOTES,
  ].join('\n');
  writeResults('echo', md);
}

/** Where the time goes, from profiles (`perf record -g` with `node --perf-basic-prof`); kept by hand as the code changes. */
const NOTES = `### Notes

See docs/streams.md and examples/servers/ for the servers' code. Profiles: \`perf record -g -p <server pid>\`
with the server started as \`node --perf-basic-prof examples/servers/<server>.ts --port 0\`, under the same
load, pinned as above. The machine these runs came from is shared (others run benchmarks on the same two
cores): msg/s moves by up to 2x between rounds; compare the CPU ratios.

Where the time goes:
- **The read path.** Sockets read through Node's \`onread\` into a 256 KiB scratch buffer; a Protocol gets an owned
  copy (from Node's pool when small). After a read of 32 KiB or more, the next read lands in a fresh buffer
  that \`dataReceived\` gets as it is, without the copy (the memmove was 14.5% of the server's CPU at 100 KiB);
  the fresh buffers pinned for a next read are capped at 8 MiB over all sockets, since a connection that goes
  quiet after a large read keeps one. Writes go to \`write(2)\` at once.
- **1 KiB: the kernel.** About 78% of the Protocol server's CPU is the kernel (read, write, epoll, and waking
  the load generator on the other core: \`_raw_spin_unlock_irqrestore\` under \`sock_def_readable\`, 12%).
  The user-space rest (about 1.1 µs per message) is spread thin: Node's \`onStreamRead\` and
  \`CallJSOnreadMethod\`, \`Context::Enter\`/\`Exit\`, the typed array for each chunk, \`fs.writeSync\`'s
  checks and binding, protoloop's \`onRead\`/\`write\`. Raw \`net\` spends about 1.3 µs there, so the CPU ratio
  at 1 KiB is bounded near 1.1-1.2x whatever protoloop does.
- **100 KiB Protocol:** the kernel's copies (\`_copy_to_iter\`, \`_copy_from_iter\`: about 35%) and the full
  GCs that 100 KiB of external memory per read starts (about 15%, most of it on V8's worker threads, which the
  CPU column counts); raw \`net\` pays both.
- **BufferedProtocol against uvloop.** At 100 KiB, 91% of the server's CPU is in the kernel (copies 37%, and
  the scheduler, \`finish_task_switch\` 16%: the server drains its events and sleeps more often); uvloop is at
  86% kernel plus a 9.5% memmove (it copies each read into a bytes object). At 1 KiB the gap is user space,
  about 0.5 µs per message: the crossing from libuv into JavaScript twice per read (the read callback, then
  \`onread.buffer()\` for the next read's buffer, each through \`CallJSOnreadMethod\`/\`Function::Call\` with a
  context switch in V8), \`getBuffer()\` asked twice per read (after it, for the next read, and when the bytes
  arrive, as asyncio asks before each read), and \`fs.writeSync\`'s JavaScript checks before \`write(2)\`.
- **Streams** add a task per connection to the Protocol path: per message, the future the waiting
  \`read()\` waits on (its wake-up through the loop, the task's step), and \`drain()\`, which returns a shared
  resolved promise when nothing is paused. At 100 KiB a message usually arrives in two reads before the task
  runs, and \`read()\` returns all that is buffered as one Buffer (asyncio's semantics), so the reader copies the
  two chunks into one (raw \`net\` writes each chunk back as it comes).
- **Memory per idle connection** (JS heap per connection, from heap snapshots with 1,000 and 3,000 connections):
  raw \`net\` about 890 B (the Socket and its stream states, the TCP wrap). protoloop's Protocol adds the
  transport (about 220 B: nine booleans packed into one field), the loop's resource-tracking entry for
  unclosed-transport reports (the entry and a set slot: an open socket holds its transport, so no WeakRef
  or FinalizationRegistry cell, which were 104 B more before this round), the protocol
  object and a server client-set entry. The idle timeout is one sweep per server, not a timer per connection
  (an IdleTimer and its TimerHandle were 208 B each). The BufferedProtocol example's first buffer is a
  256-byte slice of Node's pool, grown (its own) only while reads fill it. Streams add about 1.75 KiB to the
  Protocol path: the client task (about 160 B, and 16 B for its creation time), its CancelScope (80 B) and
  AsyncLocalStorage context frame (184 B); the waiting read: its future (96 B), the Waiter of its await (80 B)
  and the native promise \`read()\` returns with its two resolving functions (about 210 B); the client
  callback's suspended async frame (its generator, registers and promise, and V8's await on the read's
  promise: about 460 B); the reader, writer and their protocol (about 270 B); the reaction through which the
  task learns that its body ended, and the promise it derives (96 B); the peer address the socket is asked
  for once, so the task is named after its peer also after the connection is gone (88 B). \`read()\` returns
  the native promise of its future's await, not the future: V8 follows a native promise as it is, where a
  thenable cost a promise and two resolving functions of its own for as long as the read waited (about 210 B)
  and a microtask per read. The client callback and its reader and writer go to the task's first step, and
  the protocol is the task's done handler: no closures or bound function stay (about 170 B). Futures, tasks,
  cancel scopes and awaits keep rarely used fields out of their objects (about 200 B per connection over
  them). The RSS column grows more than the heap in use: in an in-process check with 10,000 connections the
  committed JS heap (\`heapTotal\`) grew by 9.6 KB per connection for 3.8 KB in use (V8 sizes its spaces up
  during the burst of connections).
`;

await main();
