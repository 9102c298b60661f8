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
 *   BENCH_ECHO_ONLY=raw,Protocol node bench/echo.bench.ts
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
const ONLY = process.env.BENCH_ECHO_ONLY?.split(',').map((s) => s.trim().toLowerCase());
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
  p50: number;
  p99: number;
  errors: number;
}

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
  constructor(spec: ServerSpec, child: ChildProcess) {
    this.spec = spec;
    this.child = child;
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
  const child = spawn('sh', ['-c', `ulimit -n ${nofile} 2>/dev/null; exec "$@"`, 'sh', ...spec.cmd], {
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
      child.stdout!.resume();
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
  return new Promise((resolve, reject) => {
    execFile(clientBin, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && !stdout) reject(new Error(`echo_client ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

async function echoCell(server: RunningServer, size: number): Promise<Cell> {
  const out = await runClient(['echo', HOST, String(server.port), String(CONNS), String(size), String(WARMUP_MS), String(Math.round(SECONDS * 1000))], (SECONDS * 1000 + WARMUP_MS) * 3 + 10_000);
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as { rate: number; p50_us: number; p99_us: number; errors: number };
  return { rate: r.rate, p50: r.p50_us, p99: r.p99_us, errors: r.errors };
}

const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Server RSS growth (KiB) for `n` idle connections, each after one 16-byte round trip. */
async function idleMemory(spec: ServerSpec, n: number, nofile: number): Promise<{ base: number; delta: number }> {
  const server = await startServer(spec, nofile);
  try {
    // Warm the accept path first so that JIT and first-use allocations are in the baseline.
    await idleHold(server, 200, 200);
    await sleepMs(500);
    const base = server.rssKiB();
    let rss = 0;
    await idleHold(server, n, 1000, () => {
      rss = server.rssKiB();
    });
    return { base, delta: rss - base };
  } finally {
    await server.stop();
  }
}

/** Opens `n` idle connections with the C client, waits `settleMs` once they are ready, calls `probe`, closes them. */
function idleHold(server: RunningServer, n: number, settleMs: number, probe?: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(clientBin, ['idle', HOST, String(server.port), String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!out.includes('"ready"')) return;
      out = '';
      setTimeout(() => {
        try {
          probe?.();
        } finally {
          child.stdin.end();
        }
      }, settleMs);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`echo_client idle ${n} exited with ${code}`));
    });
  });
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
          console.log(`${fmtSize(size).padStart(7)} round ${round + 1}  ${server.spec.name.padEnd(28)} ${cell.rate.toFixed(0).padStart(7)} msg/s  p99 ${String(cell.p99).padStart(6)} us${cell.errors ? `  ERRORS ${cell.errors}` : ''}`);
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
      return [spec.name, c.rate.toFixed(0), c.p50, c.p99, ratio(c.rate, net?.rate), ratio(c.rate, uv?.rate), c.errors];
    });
    tables.push(`### ${fmtSize(size)} messages\n\n${table(['server', 'msg/s', 'p50 µs', 'p99 µs', 'vs raw net', 'vs uvloop', 'errors'], rows)}`);
    for (const spec of chosen.filter((s) => s.kind === 'protoloop')) {
      const c = summary(spec.name, size)!;
      const r = net ? c.rate / net.rate : NaN;
      const want = spec.name.includes('streams') ? 0.9 : size === 100 * 1024 ? 1.5 : 1.0;
      const line = `${spec.name} ${fmtSize(size)}: ${r.toFixed(2)}x raw net (target >= ${want}x: ${r >= want ? 'met' : 'MISSED'}), ${ratio(c.rate, uv?.rate)} uvloop`;
      lines.push(line);
      targetRows.push([spec.name, fmtSize(size), `${r.toFixed(2)}x`, `>= ${want}x`, r >= want ? 'met' : '**missed**', ratio(c.rate, uv?.rate)]);
    }
  }
  console.log('\n' + lines.join('\n'));

  // Memory: fresh servers, one at a time.
  const memRows: (string | number)[][] = [];
  let memNote = '';
  if (idle > 0) {
    const memSpecs = chosen.filter((s) => s.memory);
    const deltas = new Map<string, number>();
    for (const spec of memSpecs) {
      try {
        const m = await idleMemory(spec, idle, nofile);
        deltas.set(spec.name, m.delta);
        console.log(`memory ${spec.name.padEnd(28)} base ${(m.base / 1024).toFixed(1)} MiB, +${(m.delta / 1024).toFixed(1)} MiB for ${idle} idle connections`);
      } catch (e) {
        console.log(`memory ${spec.name}: failed: ${e instanceof Error ? e.message : String(e)}`);
        memNote += `\n${spec.name}: the measurement failed (${e instanceof Error ? e.message : String(e)}).\n`;
      }
    }
    const netDelta = deltas.get('raw net');
    for (const spec of memSpecs) {
      const d = deltas.get(spec.name);
      if (d === undefined) continue;
      const r = netDelta ? d / netDelta : NaN;
      const verdict = spec.kind === 'protoloop' ? (r <= 1.2 ? 'met' : '**missed**') : '';
      memRows.push([spec.name, (d / 1024).toFixed(1), (d / idle).toFixed(2), netDelta ? `${r.toFixed(2)}x` : 'n/a', verdict]);
      if (spec.kind === 'protoloop') console.log(`${spec.name} idle memory: ${r.toFixed(2)}x raw net (target <= 1.2x: ${r <= 1.2 ? 'met' : 'MISSED'})`);
    }
    if (idle < IDLE_WANTED) memNote += `\nOnly ${idle} idle connections: the hard fd limit here is ${nofileHard}.\n`;
  }

  const md = [
    '# TCP echo benchmark',
    '',
    `Command: \`node bench/echo.bench.ts\` (BENCH_ECHO_SECONDS=${SECONDS}, BENCH_ECHO_ROUNDS=${ROUNDS}, warm-up ${WARMUP_MS} ms per cell)  `,
    `Machine: ${machine()}, \`nproc\` = ${execFileSync('nproc', { encoding: 'utf8' }).trim()}, ${execFileSync(python, ['--version'], { encoding: 'utf8' }).trim()}${uvloop ? ', uvloop installed' : ', uvloop missing (skipped)'}  `,
    `Date: ${new Date().toISOString()}`,
    '',
    `Load: the C epoll client (bench/c/echo_client.c), ${CONNS} connections, one message in flight on each, ` +
      `${SECONDS} s measured per cell after ${WARMUP_MS} ms of warm-up, ${ROUNDS} round(s); the servers run side by side ` +
      'and are hit in turn (order rotated each round). msg/s is the mean over rounds, p50/p99 the worst round. ' +
      'The client and the server share the machine\'s cores, as in the measurements quoted in the issue.',
    '',
    'The client and the servers share the same two cores: absolute numbers move from run to run, the ratios much less.',
    '',
    ...tables.flatMap((t) => [t, '']),
    '## Targets',
    '',
    table(['server', 'size', 'vs raw net', 'target', 'verdict', 'vs uvloop'], targetRows),
    '',
    '## Memory: idle connections',
    '',
    idle > 0
      ? `Server RSS growth (VmRSS from /proc/<pid>/status) with ${idle} idle connections open, each after one 16-byte round trip, measured 1 s after the last one was served, against a baseline taken after a 200-connection warm-up. Target: protoloop <= 1.2x raw net.\n\n` +
        table(['server', 'MiB', 'KiB per connection', 'vs raw net', 'target <= 1.2x'], memRows) +
        memNote
      : 'Skipped (BENCH_ECHO_IDLE=0).',
    '',
    NOTES,
  ].join('\n');
  writeResults('echo', md);
}

/** Where the time goes, from profiles (`node --cpu-prof`); kept by hand as the code changes. */
const NOTES = `## Notes

See docs/streams.md for the servers' code. Profiles are taken with \`node --cpu-prof examples/servers/<server>.ts --port 0\` under the same load.

Where the misses come from:
- **Protocol at 10 KiB and 100 KiB.** \`dataReceived(data)\` hands the protocol a Buffer it owns,
  so every read costs one fresh allocation (raw \`net\` pays the same). With the rest of the
  path producing almost no garbage, V8 runs few cheap young-generation collections and
  more full ones driven by external buffer memory; those pauses are the p99 above and the
  gap to raw \`net\` (0.7x to 0.9x at 10 KiB, 0.9x to 1.04x at 100 KiB across runs). BufferedProtocol, which reads into a buffer the protocol reuses, is the
  fast path and meets the target at 10 KiB; at 100 KiB it is 1.3-1.8x raw \`net\` from run
  to run against the 1.5x target.
- **Streams** sit on the Protocol path plus the StreamReader's buffer and a task per
  connection: across the runs on this machine, 0.8x to 1.3x raw \`net\` at 10 and 100 KiB
  (target 0.9x), so a single run may land on either side of the target.
- **Memory per idle connection.** raw \`net\` keeps a socket; protoloop adds the transport
  (flags packed, flow control created lazily), its resource-tracking entry (a WeakRef and
  a FinalizationRegistry cell, for unclosed-transport reports) and, for streams, a task,
  its promises and a StreamReader/StreamWriter pair. The BufferedProtocol example also
  keeps its own 2 KiB buffer per connection. Protocol is at 1.25-1.3x (target 1.2x).
- Before this round of work the Protocol server was at 0.36-0.62x raw \`net\` at 100 KiB:
  every write was copied (twice with an offset) and BufferedProtocol never read into its
  own buffer. Writes now go to the socket at once and copy only what the kernel did not
  take; BufferedProtocol reads in place.
`;

await main();
