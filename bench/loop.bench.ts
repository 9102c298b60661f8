/**
 * Scheduling microbenchmarks (issue 2/3): callSoon chains and trivial tasks, with
 * debug mode off and on, against a bare setImmediate chain, bare async calls with
 * Promise.all, and Python asyncio (and uvloop when installed), in one run.
 *
 *   node bench/loop.bench.ts            # default sizes, ~30 s
 *   BENCH_SCALE=3 node bench/loop.bench.ts
 */
import { fileURLToPath } from 'node:url';
import { Loop } from '../src/index.ts';
import { fmtRate, hasPythonModule, machine, median, progress, pythonVersion, runPythonJson, table, writeResults } from './lib.ts';

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const N_CB = Math.round(1_000_000 * SCALE);
const N_TASKS = Math.round(200_000 * SCALE);
const BATCH = 1000;
const ROUNDS = 3;

function setImmediateChain(n: number): Promise<number> {
  return new Promise((resolve) => {
    let left = n;
    const t0 = performance.now();
    const step = (): void => {
      if (--left === 0) resolve(n / ((performance.now() - t0) / 1000));
      else setImmediate(step);
    };
    setImmediate(step);
  });
}

/** This thread's CPU time in ms: debug on/off ratios are also taken by it (steadier on a shared machine). */
function cpuMs(): number {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
}
/** CPU-time rates of the cells, by name (filled as they run). */
const cpuRates: Record<string, number[]> = {};

async function callSoonChain(n: number, debug: boolean): Promise<number> {
  const loop = new Loop({ debug, slowCallbackDuration: 1e9 });
  const done = loop.createFuture<void>();
  let left = n;
  const step = (): void => {
    if (--left === 0) done.setResult();
    else loop.callSoon(step);
  };
  const t0 = performance.now();
  const c0 = cpuMs();
  loop.callSoon(step);
  await loop.runUntilComplete(done);
  const rate = n / ((performance.now() - t0) / 1000);
  (cpuRates[debug ? 'callSoon chain (debug)' : 'callSoon chain'] ??= []).push(n / ((cpuMs() - c0) / 1000));
  loop.close();
  return rate;
}

async function callSoonBatch(n: number): Promise<number> {
  const loop = new Loop();
  const done = loop.createFuture<void>();
  let left = n;
  const step = (): void => {
    if (--left === 0) done.setResult();
  };
  const t0 = performance.now();
  for (let i = 0; i < n; i++) loop.callSoon(step);
  await loop.runUntilComplete(done);
  const rate = n / ((performance.now() - t0) / 1000);
  loop.close();
  return rate;
}

async function trivial(): Promise<number> {
  return 1;
}

async function bareAsync(n: number): Promise<number> {
  const t0 = performance.now();
  for (let b = 0; b < n / BATCH; b++) {
    const ps: Promise<number>[] = [];
    for (let i = 0; i < BATCH; i++) ps.push(trivial());
    await Promise.all(ps);
  }
  return n / ((performance.now() - t0) / 1000);
}

async function protoloopTasks(n: number, debug: boolean): Promise<number> {
  const loop = new Loop({ debug, slowCallbackDuration: 1e9 });
  const rate = await loop.runUntilComplete(async () => {
    const t0 = performance.now();
    const c0 = cpuMs();
    for (let b = 0; b < n / BATCH; b++) {
      const ts = [];
      for (let i = 0; i < BATCH; i++) ts.push(loop.createTask(trivial));
      await Promise.all(ts);
    }
    (cpuRates[debug ? 'tasks (debug)' : 'tasks'] ??= []).push(n / ((cpuMs() - c0) / 1000));
    return n / ((performance.now() - t0) / 1000);
  });
  loop.close();
  return rate;
}

const results: Record<string, number[]> = {};
const CELLS = 7 * ROUNDS;
let cells = 0;
const add = (k: string, v: number): void => {
  (results[k] ??= []).push(v);
  progress(++cells, CELLS, `round ${results[k].length}/${ROUNDS}, ${k}: ${fmtRate(v)}`);
};

// Warm-up, then alternate so that machine drift is shared.
await callSoonChain(N_CB / 10, false);
await protoloopTasks(N_TASKS / 10, false);
await setImmediateChain(N_CB / 10);
for (let r = 0; r < ROUNDS; r++) {
  add('setImmediate chain', await setImmediateChain(N_CB));
  add('callSoon chain', await callSoonChain(N_CB, false));
  add('callSoon chain (debug)', await callSoonChain(N_CB / 4, true));
  add('callSoon batch', await callSoonBatch(N_CB));
  add('bare async + Promise.all', await bareAsync(N_TASKS));
  add('tasks', await protoloopTasks(N_TASKS, false));
  add('tasks (debug)', await protoloopTasks(N_TASKS / 4, true));
}

const py = fileURLToPath(new URL('./py/loop_bench.py', import.meta.url));
const pyVersion = pythonVersion();
let asyncio: Record<string, number> | null = null;
let uvloop: Record<string, number> | null = null;
if (pyVersion !== null) {
  console.log(`the same on Python asyncio (${pyVersion})...`);
  asyncio = runPythonJson([py, 'asyncio', String(N_CB), String(N_TASKS)]);
  if (hasPythonModule('uvloop')) {
    console.log('the same on uvloop...');
    uvloop = runPythonJson([py, 'uvloop', String(N_CB), String(N_TASKS)]);
  }
}

const m = (k: string): number => median(results[k]!);
/** Debug on / off by CPU time (the warm-up runs are left out: they ran first). */
const cpuRatio = (k: string): number => median(cpuRates[`${k} (debug)`]!.slice(-ROUNDS)) / median(cpuRates[k]!.slice(-ROUNDS));
const debugCell = (k: string): string => `${(m(`${k} (debug)`) / m(k)).toFixed(2)}x debug off (by CPU time ${cpuRatio(k).toFixed(2)}x; target >= 0.25x)`;
const cs = m('callSoon chain');
const tk = m('tasks');
const rows: (string | number)[][] = [
  ['bare setImmediate chain', fmtRate(m('setImmediate chain')), ''],
  ['protoloop callSoon chain', fmtRate(cs), `${(cs / m('setImmediate chain')).toFixed(2)}x setImmediate (target >= 1.0x)`],
  ['protoloop callSoon chain, debug on', fmtRate(m('callSoon chain (debug)')), debugCell('callSoon chain')],
  ['protoloop callSoon batch (1M queued, then drained)', fmtRate(m('callSoon batch')), ''],
  ['bare async calls + Promise.all', fmtRate(m('bare async + Promise.all')), ''],
  ['protoloop tasks (create + await)', fmtRate(tk), `${(tk / m('bare async + Promise.all')).toFixed(2)}x bare async calls`],
  ['protoloop tasks, debug on', fmtRate(m('tasks (debug)')), debugCell('tasks')],
];
if (asyncio) {
  rows.push(['asyncio call_soon chain', fmtRate(asyncio.callSoon!), `callSoon is ${(cs / asyncio.callSoon!).toFixed(1)}x asyncio (target >= 5x)`]);
  rows.push(['asyncio tasks via gather', fmtRate(asyncio.tasks!), `tasks are ${(tk / asyncio.tasks!).toFixed(1)}x asyncio (target >= 5x)`]);
  if (asyncio.callSoonDebug !== undefined) {
    rows.push(['asyncio call_soon chain, debug on', fmtRate(asyncio.callSoonDebug), `${(asyncio.callSoonDebug / asyncio.callSoon!).toFixed(2)}x asyncio debug off; protoloop's debug callSoon is ${(m('callSoon chain (debug)') / asyncio.callSoonDebug).toFixed(1)}x it`]);
    rows.push(['asyncio tasks via gather, debug on', fmtRate(asyncio.tasksDebug!), `${(asyncio.tasksDebug! / asyncio.tasks!).toFixed(2)}x asyncio debug off; protoloop's debug tasks are ${(m('tasks (debug)') / asyncio.tasksDebug!).toFixed(1)}x it`]);
  }
}
if (uvloop) {
  rows.push(['uvloop call_soon chain', fmtRate(uvloop.callSoon!), `callSoon is ${(cs / uvloop.callSoon!).toFixed(1)}x uvloop`]);
  rows.push(['uvloop tasks via gather', fmtRate(uvloop.tasks!), `tasks are ${(tk / uvloop.tasks!).toFixed(1)}x uvloop`]);
}

const md = `## Loop scheduling (issues 2 and 3)

Command: \`npm run bench\` (or \`node bench/loop.bench.ts\`, \`BENCH_SCALE=${SCALE}\`), ${new Date().toISOString().slice(0, 10)}.
Machine: ${machine()}; ${pyVersion ?? 'no python3'}${uvloop ? ', uvloop installed' : ', uvloop not installed'}.
${N_CB} callbacks per chain, ${N_TASKS} tasks in batches of ${BATCH}; median of ${ROUNDS} alternating rounds (debug-on cells run a quarter of the work).

${table(['what', 'rate', 'ratio'], rows)}
`;
console.log(md);
writeResults('loop', md);
