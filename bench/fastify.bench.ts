/**
 * The Fastify adapter's cost (issue 9): requests per second and p99 latency of a
 * hello-world route and a JSON route, plain Fastify against Fastify with
 * protoloopFastify (each handler a loop task), measured in one run, alternating.
 *
 *   node bench/fastify.bench.ts            # ~60 s
 *   BENCH_SCALE=0.5 node bench/fastify.bench.ts
 *
 * Each server runs in a child process of its own; autocannon (programmatic API) runs
 * in this process, so the load generator never shares a thread with a server. On a
 * 2-core machine that is one core for the server under load and one for autocannon.
 * Target: the adapter at >= 0.9x plain Fastify's requests per second.
 */
import { spawn, type ChildProcess } from 'node:child_process';
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
const CONNECTIONS = 50;
const TARGET = 0.9;

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

interface CannonResult {
  requests: { average: number; total: number };
  latency: { p99: number; average: number };
  errors: number;
  non2xx: number;
}
type Cannon = (opts: Record<string, unknown>) => Promise<CannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Cannon;

function startServer(mode: Mode): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve', mode], { stdio: ['ignore', 'pipe', 'inherit'] });
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

/** One load run; `cpu` is the server's CPU time per answered request, µs. */
async function load(port: number, path: string, seconds: number): Promise<CannonResult & { cpu: number }> {
  const before = await cpuUs(port);
  const r = await autocannon({ url: `http://127.0.0.1:${port}${path}`, connections: CONNECTIONS, pipelining: 1, duration: seconds });
  const after = await cpuUs(port);
  return { ...r, cpu: (after - before) / Math.max(1, r.requests.total) };
}

async function drive(): Promise<void> {
  const t0 = Date.now();
  const servers = {} as Record<Mode, { child: ChildProcess; port: number }>;
  for (const mode of MODES) servers[mode] = await startServer(mode);
  const rps: Record<string, number[]> = {};
  const p99: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  try {
    for (const mode of MODES) for (const route of Object.values(ROUTES)) await load(servers[mode].port, route, WARMUP_S);
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate which side goes first, so drift on a shared machine hits both.
      const order = round % 2 === 0 ? MODES : [...MODES].reverse();
      for (const name of Object.keys(ROUTES) as RouteName[]) {
        for (const mode of order) {
          const r = await load(servers[mode].port, ROUTES[name], DURATION_S);
          if (r.errors > 0 || r.non2xx > 0) throw new Error(`${mode} ${name}: ${r.errors} errors, ${r.non2xx} non-2xx answers`);
          const key = `${name}/${mode}`;
          (rps[key] ??= []).push(r.requests.average);
          (p99[key] ??= []).push(r.latency.p99);
          (cpu[key] ??= []).push(r.cpu);
          console.log(`round ${round + 1} ${name.padEnd(5)} ${mode.padEnd(9)} ${r.requests.average.toFixed(0).padStart(6)} req/s  p99 ${r.latency.p99} ms  ${r.cpu.toFixed(1)} µs CPU/request`);
        }
      }
    }
  } finally {
    for (const mode of MODES) servers[mode].child.kill('SIGTERM');
  }
  const rows: (string | number)[][] = [];
  const verdicts: string[] = [];
  for (const name of Object.keys(ROUTES) as RouteName[]) {
    // Each round runs both servers back to back: the median of the per-round ratios
    // follows the drift of a shared machine better than a ratio of medians.
    const perRound = rps[`${name}/protoloop`]!.map((x, i) => x / rps[`${name}/plain`]![i]!);
    const ratio = median(perRound);
    const best = Math.max(...rps[`${name}/protoloop`]!) / Math.max(...rps[`${name}/plain`]!);
    // CPU time per request is what contention on a shared machine distorts least.
    const cpuRatio = median(cpu[`${name}/plain`]!) / median(cpu[`${name}/protoloop`]!);
    for (const mode of MODES) {
      const key = `${name}/${mode}`;
      rows.push([
        `GET ${ROUTES[name]}`,
        mode === 'plain' ? 'Fastify' : 'Fastify + protoloopFastify',
        median(rps[key]!).toFixed(0),
        rps[key]!.map((x) => x.toFixed(0)).join(' / '),
        median(p99[key]!).toFixed(0),
        median(cpu[key]!).toFixed(1),
      ]);
    }
    const line =
      `fastify ${name}: protoloop/plain = ${ratio.toFixed(2)}x req/s (median of per-round ratios; best-of ${best.toFixed(2)}x), ` +
      `${cpuRatio.toFixed(2)}x by CPU per request (target >= ${TARGET}x) ${ratio >= TARGET ? 'MET' : 'MISSED'}`;
    console.log(line);
    verdicts.push(`- ${line}`);
  }
  const elapsed = ((Date.now() - t0) / 1000).toFixed(0);
  writeResults(
    'fastify',
    [
      '# Fastify adapter benchmark',
      '',
      `Command: \`node bench/fastify.bench.ts\` (BENCH_SCALE=${SCALE}; ${elapsed} s).`,
      `Machine: ${machine()}. Read the ratios, not the absolute figures: the load generator shares the two cores.`,
      '',
      `Each server in its own process, autocannon (programmatic API, ${CONNECTIONS} connections, no pipelining) in the driver process;`,
      `${WARMUP_S} s warm-up per server and route, then ${ROUNDS} rounds of ${DURATION_S} s per server and route, alternating which server goes first.`,
      'Requests per second are the median of the rounds, and the ratio the median of the per-round ratios (both servers run',
      'back to back in each round); p99 latency (ms) is the median of the rounds\' p99; server CPU',
      'per request is the server process\'s CPU time (user + system) over the run divided by the requests answered:',
      'on a busy machine it is the steadier figure (plain/protoloop, so above 1 means the adapter costs less).',
      '',
      table(['route', 'server', 'req/s (median)', 'req/s per round', 'p99 ms', 'server CPU µs/request'], rows),
      '',
      ...verdicts,
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
