/**
 * The Fastify adapter's cost (issues 9 and 20): requests per second, p99 latency and
 * server CPU per request of a hello-world route and a JSON route, plain Fastify against
 * Fastify with protoloopFastify (each handler a loop task), in one run, alternating.
 *
 *   node bench/fastify.bench.ts            # ~95 s
 *   BENCH_SCALE=0.5 node bench/fastify.bench.ts
 *
 * Each server runs in a child process of its own, pinned with `taskset` to the last
 * core. The first table is driven by wrk (`wrk -t1 -c50 --latency`, HTTP/1.1
 * keep-alive, a C load generator) pinned to the first core, so the server has a core to
 * itself; the second by autocannon (programmatic API) in this process, pinned to the
 * first core too: autocannon costs more CPU per request than the server it drives, so
 * on 2 cores its figures say more about autocannon than about the server. Without wrk
 * (not on PATH, or BENCH_FASTIFY_WRK=0) only the autocannon table is made.
 * Target: the adapter at >= 0.95x plain Fastify's requests per second.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { run } from '../src/index.ts';
import { protoloopFastify, serveFastify } from '../src/fastify/index.ts';
import { machine, median, table, writeResults } from './lib.ts';

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const DURATION_S = Math.max(1, Math.round(3 * SCALE));
const WARMUP_S = Math.max(1, Math.round(2 * SCALE));
const ROUNDS = 5;
/** autocannon's table is the second one: fewer, shorter rounds. */
const CANNON_ROUNDS = 3;
const CANNON_DURATION_S = Math.max(1, Math.round(2 * SCALE));
const CONNECTIONS = 50;
const TARGET = 0.95;

type Mode = 'plain' | 'protoloop';
const MODES: Mode[] = ['plain', 'protoloop'];
const ROUTES = { hello: '/hello', json: '/json' } as const;
type RouteName = keyof typeof ROUTES;

const payload = { hello: 'world', count: 42, tags: ['loop', 'task', 'fastify'], nested: { ok: true, ratio: 0.5 } };

function addRoutes(app: FastifyInstance): void {
  app.get('/hello', async () => 'hello world');
  app.get('/json', async () => payload);
  // The server's CPU time so far (µs), read by the driver around each load run.
  app.get('/cpu', { config: { protoloop: false } }, async () => {
    const { user, system } = process.cpuUsage();
    return { us: user + system };
  });
}

// ---------------------------------------------------------------- server side

async function serve(mode: Mode): Promise<void> {
  if (mode === 'plain') {
    const app = Fastify();
    addRoutes(app);
    await app.listen({ host: '127.0.0.1', port: 0 });
    process.stdout.write(`ready ${(app.server.address() as { port: number }).port}\n`);
    await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));
    await app.close();
    return;
  }
  await run(
    async () => {
      const app = Fastify();
      await app.register(protoloopFastify);
      addRoutes(app);
      const server = await serveFastify(app, { host: '127.0.0.1', port: 0 });
      process.stdout.write(`ready ${server.address()!.port}\n`);
      await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));
      await server.close();
      await server.waitClosed();
    },
    { handleSigint: false },
  );
}

// ---------------------------------------------------------------- load side

interface LoadResult {
  /** Requests per second over the run. */
  rps: number;
  /** Requests answered. */
  total: number;
  /** p99 latency, ms. */
  p99: number;
  errors: number;
  non2xx: number;
}
interface CannonResult {
  requests: { average: number; total: number };
  latency: { p99: number; average: number };
  errors: number;
  non2xx: number;
}
type Cannon = (opts: Record<string, unknown>) => Promise<CannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Cannon;

function which(cmd: string): string | null {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

const TASKSET = cpus().length >= 2 ? which('taskset') : null;
const WRK = process.env.BENCH_FASTIFY_WRK === '0' ? null : which('wrk');
/** The server's core, and the load generator's. */
const SERVER_CPU = String(cpus().length - 1);
const LOAD_CPU = '0';

function pinned(cpu: string, cmd: string, args: string[]): [string, string[]] {
  return TASKSET !== null ? [TASKSET, ['-c', cpu, cmd, ...args]] : [cmd, args];
}

function startServer(mode: Mode): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const [cmd, args] = pinned(SERVER_CPU, process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--serve', mode]);
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ready (\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${mode} server exited early (${code})`)));
  });
}

async function cpuUs(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/cpu`);
  return ((await res.json()) as { us: number }).us;
}

/** wrk's duration figure (`1.23ms`, `850.00us`, `2.01s`) in ms. */
function wrkMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (m === null) throw new Error(`wrk: cannot read the duration ${text}`);
  const scale = { us: 1e-3, ms: 1, s: 1e3, m: 6e4 }[m[2] as 'us' | 'ms' | 's' | 'm'];
  return Number(m[1]) * scale;
}

function runWrk(url: string, seconds: number): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const [cmd, args] = pinned(LOAD_CPU, WRK!, ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', url]);
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      const total = /(\d+) requests in/.exec(out);
      const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
      const p99 = /^\s+99%\s+(\S+)/m.exec(out);
      if (code !== 0 || total === null || rps === null || p99 === null) {
        reject(new Error(`wrk failed (${code}):\n${out}`));
        return;
      }
      const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      const errors = sock === null ? 0 : sock.slice(1).reduce((a, b) => a + Number(b), 0);
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
      resolve({ rps: Number(rps[1]), total: Number(total[1]), p99: wrkMs(p99[1]!), errors, non2xx });
    });
  });
}

async function runCannon(url: string, seconds: number): Promise<LoadResult> {
  const r = await autocannon({ url, connections: CONNECTIONS, pipelining: 1, duration: seconds });
  return { rps: r.requests.average, total: r.requests.total, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx };
}

type Generator = 'wrk' | 'autocannon';

/** One load run; `cpu` is the server's CPU time per answered request, µs. */
async function load(gen: Generator, port: number, path: string, seconds: number): Promise<LoadResult & { cpu: number }> {
  const url = `http://127.0.0.1:${port}${path}`;
  const before = await cpuUs(port);
  const r = gen === 'wrk' ? await runWrk(url, seconds) : await runCannon(url, seconds);
  const after = await cpuUs(port);
  return { ...r, cpu: (after - before) / Math.max(1, r.total) };
}

interface Series {
  rps: Record<string, number[]>;
  p99: Record<string, number[]>;
  cpu: Record<string, number[]>;
}

async function measure(gen: Generator, servers: Record<Mode, { port: number }>, rounds: number, seconds: number): Promise<Series> {
  const s: Series = { rps: {}, p99: {}, cpu: {} };
  for (let round = 0; round < rounds; round++) {
    // Alternate which side goes first, so drift on a shared machine hits both.
    const order = round % 2 === 0 ? MODES : [...MODES].reverse();
    for (const name of Object.keys(ROUTES) as RouteName[]) {
      for (const mode of order) {
        const r = await load(gen, servers[mode].port, ROUTES[name], seconds);
        if (r.errors > 0 || r.non2xx > 0) throw new Error(`${gen} ${mode} ${name}: ${r.errors} errors, ${r.non2xx} non-2xx answers`);
        const key = `${name}/${mode}`;
        (s.rps[key] ??= []).push(r.rps);
        (s.p99[key] ??= []).push(r.p99);
        (s.cpu[key] ??= []).push(r.cpu);
        console.log(
          `${gen.padEnd(10)} round ${round + 1} ${name.padEnd(5)} ${mode.padEnd(9)} ${r.rps.toFixed(0).padStart(6)} req/s  p99 ${r.p99.toFixed(2)} ms  ${r.cpu.toFixed(1)} µs CPU/request`,
        );
      }
    }
  }
  return s;
}

function report(gen: Generator, s: Series): { table: string; verdicts: string[] } {
  const rows: (string | number)[][] = [];
  const verdicts: string[] = [];
  for (const name of Object.keys(ROUTES) as RouteName[]) {
    // Each round runs both servers back to back: the median of the per-round ratios
    // follows the drift of a shared machine better than a ratio of medians.
    const perRound = s.rps[`${name}/protoloop`]!.map((x, i) => x / s.rps[`${name}/plain`]![i]!);
    const ratio = median(perRound);
    // CPU time per request is what contention on a shared machine distorts least.
    const cpuRatio = median(s.cpu[`${name}/plain`]!) / median(s.cpu[`${name}/protoloop`]!);
    for (const mode of MODES) {
      const key = `${name}/${mode}`;
      rows.push([
        `GET ${ROUTES[name]}`,
        mode === 'plain' ? 'Fastify' : 'Fastify + protoloopFastify',
        median(s.rps[key]!).toFixed(0),
        s.rps[key]!.map((x) => x.toFixed(0)).join(' / '),
        median(s.p99[key]!).toFixed(2),
        median(s.cpu[key]!).toFixed(1),
      ]);
    }
    const spread = `${Math.min(...perRound).toFixed(2)}-${Math.max(...perRound).toFixed(2)}`;
    const line =
      `fastify ${name} (${gen}): protoloop/plain = ${ratio.toFixed(2)}x req/s (median of per-round ratios, range ${spread}), ` +
      `${cpuRatio.toFixed(2)}x by server CPU per request; target >= ${TARGET}x: ${ratio >= TARGET ? 'MET' : 'MISSED'} by req/s, ` +
      `${cpuRatio >= TARGET ? 'MET' : 'MISSED'} by CPU per request`;
    console.log(line);
    verdicts.push(`- ${line}`);
  }
  return { table: table(['route', 'server', 'req/s (median)', 'req/s per round', 'p99 ms', 'server CPU µs/request'], rows), verdicts };
}

async function drive(): Promise<void> {
  const t0 = Date.now();
  // The driver (autocannon, the /cpu reads) keeps off the server's core.
  if (TASKSET !== null) execFileSync(TASKSET, ['-pc', LOAD_CPU, String(process.pid)], { stdio: 'ignore' });
  const servers = {} as Record<Mode, { child: ChildProcess; port: number }>;
  for (const mode of MODES) servers[mode] = await startServer(mode);
  const warmGen: Generator = WRK !== null ? 'wrk' : 'autocannon';
  let wrk: Series | null = null;
  let cannon: Series;
  try {
    for (const mode of MODES) for (const route of Object.values(ROUTES)) await load(warmGen, servers[mode].port, route, WARMUP_S);
    if (WRK !== null) wrk = await measure('wrk', servers, ROUNDS, DURATION_S);
    cannon = await measure('autocannon', servers, WRK !== null ? CANNON_ROUNDS : ROUNDS, WRK !== null ? CANNON_DURATION_S : DURATION_S);
  } finally {
    for (const mode of MODES) servers[mode].child.kill('SIGTERM');
  }
  const w = wrk !== null ? report('wrk', wrk) : null;
  const c = report('autocannon', cannon);
  const elapsed = ((Date.now() - t0) / 1000).toFixed(0);
  const pin = TASKSET !== null ? `each server pinned to core ${SERVER_CPU} (\`taskset -c ${SERVER_CPU}\`), the load generator to core ${LOAD_CPU}` : 'no taskset: nothing pinned';
  writeResults(
    'fastify',
    [
      '## Fastify adapter (issues 9 and 20)',
      '',
      `Command: \`node bench/fastify.bench.ts\` (BENCH_SCALE=${SCALE}; ${elapsed} s).`,
      `Machine: ${machine()}; ${pin}.`,
      '',
      `Each server in its own process; ${WARMUP_S} s warm-up per server and route, then rounds of one run per server and route,`,
      'alternating which server goes first. Requests per second are the median of the rounds, and the ratio the median of the',
      'per-round ratios (both servers run back to back in each round); p99 latency (ms) is the median of the rounds\' p99;',
      'server CPU per request is the server process\'s CPU time (user + system) over the run divided by the requests answered:',
      'on a busy machine it is the steadier figure (the ratio is plain/protoloop, so above 1 means the adapter costs less).',
      'Requests per second swing 2x and more from run to run on a shared machine: read the req/s verdict from a quiet one.',
      'CPU per request also grows when a server answers fewer requests per event-loop turn (more wake-ups and syscalls per',
      'request), so compare the two servers within one table, not across tables.',
      '',
      ...(w !== null
        ? [
            `### wrk (\`taskset -c ${LOAD_CPU} wrk -t1 -c${CONNECTIONS} -d${DURATION_S}s --latency\`, HTTP/1.1 keep-alive; ${ROUNDS} rounds)`,
            '',
            w.table,
            '',
            ...w.verdicts,
            '',
          ]
        : ['wrk was not found: no wrk table.', '']),
      `### autocannon (programmatic API in the driver process, ${CONNECTIONS} connections, no pipelining; ${WRK !== null ? CANNON_ROUNDS : ROUNDS} rounds of ${WRK !== null ? CANNON_DURATION_S : DURATION_S} s)`,
      '',
      'autocannon spends more CPU per request than the server it drives: with one core for it, it is the bottleneck, and the',
      'req/s ratio is squeezed towards 1 (or, unpinned, the load generator takes CPU from the server). The server CPU per',
      'request still compares the two servers.',
      '',
      c.table,
      '',
      ...c.verdicts,
      '',
      'With the adapter, each request also creates a loop Task (named after the route), a',
      'per-request record for disconnect detection and shutdown, and one `close` listener on',
      'the response; the handler\'s first step runs eagerly, and the answer reaches Fastify',
      'straight from the handler\'s promise, so no loop iteration sits on the request path.',
      '',
    ].join('\n'),
  );
}

const serveIndex = process.argv.indexOf('--serve');
if (serveIndex >= 0) await serve(process.argv[serveIndex + 1] as Mode);
else await drive();
