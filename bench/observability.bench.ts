/**
 * The cost of the diagnostics channels (issue 18) on the hot paths: a callSoon chain
 * and trivial tasks (create + await), with no subscriber (the default: it must match
 * the same code without channels) and with subscribers on `protoloop:task:created` +
 * `protoloop:task:done` and on `protoloop:callback:slow` (which makes the loop time
 * every callback). Prints JSON medians; run it on two commits to compare.
 *
 *   node bench/observability.bench.ts            # BENCH_SCALE=1
 *   BENCH_SUBSCRIBE=0 node bench/observability.bench.ts   # skip the subscribed cells (older commits)
 *
 * Rates are per second of the main thread's CPU time (`process.threadCpuUsage()`), not
 * of wall time, so that other jobs on a loaded machine disturb them less.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { Loop } from '../src/index.ts';
import { fmtRate, median } from './lib.ts';

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const SUBSCRIBE = process.env.BENCH_SUBSCRIBE !== '0';
const N_CB = Math.round(1_000_000 * SCALE);
const N_TASKS = Math.round(200_000 * SCALE);
const BATCH = 1000;

/** The main thread's CPU time in ms. */
function cpuNow(): number {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
}
const ROUNDS = 5;

async function callSoonChain(n: number): Promise<number> {
  const loop = new Loop({ slowCallbackDuration: 1e9 });
  const done = loop.createFuture<void>();
  let left = n;
  const step = (): void => {
    if (--left === 0) done.setResult();
    else loop.callSoon(step);
  };
  const t0 = cpuNow();
  loop.callSoon(step);
  await loop.runUntilComplete(done);
  const rate = n / ((cpuNow() - t0) / 1000);
  loop.close();
  return rate;
}

async function trivial(): Promise<number> {
  return 1;
}

async function tasks(n: number): Promise<number> {
  const loop = new Loop({ slowCallbackDuration: 1e9 });
  const rate = await loop.runUntilComplete(async () => {
    const t0 = cpuNow();
    for (let b = 0; b < n / BATCH; b++) {
      const ts = [];
      for (let i = 0; i < BATCH; i++) ts.push(loop.createTask(trivial));
      await Promise.all(ts);
    }
    return n / ((cpuNow() - t0) / 1000);
  });
  loop.close();
  return rate;
}

let seen = 0;
const count = (): void => {
  seen++;
};

async function subscribed<T>(names: string[], fn: () => Promise<T>): Promise<T> {
  for (const n of names) diagnosticsChannel.subscribe(n, count);
  try {
    return await fn();
  } finally {
    for (const n of names) diagnosticsChannel.unsubscribe(n, count);
  }
}

const results: Record<string, number[]> = {};
const add = (k: string, v: number): void => {
  (results[k] ??= []).push(v);
};

await callSoonChain(N_CB / 10);
await tasks(N_TASKS / 10);
for (let r = 0; r < ROUNDS; r++) {
  add('callSoon chain', await callSoonChain(N_CB));
  add('tasks (create + await)', await tasks(N_TASKS));
  if (SUBSCRIBE) {
    add('callSoon chain, callback:slow subscribed', await subscribed(['protoloop:callback:slow'], () => callSoonChain(N_CB)));
    add('tasks, task:created + task:done subscribed', await subscribed(['protoloop:task:created', 'protoloop:task:done'], () => tasks(N_TASKS)));
  }
}
const out: Record<string, string> = {};
for (const [k, v] of Object.entries(results)) out[k] = fmtRate(median(v));
console.log(JSON.stringify({ scale: SCALE, rounds: ROUNDS, messages: seen, ...out }, null, 1));
