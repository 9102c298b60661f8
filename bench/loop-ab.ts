/**
 * A/B of the loop core between two source trees, in one process: the callSoon chain
 * and task create+await loops of loop.bench.ts, and a StreamReader ping-pong (a task
 * awaits read(), a loop callback feeds 1 KiB, as a streams server's read path does
 * without the socket), run on tree A and tree B in
 * alternating order, rated by CPU time (process.cpuUsage) rather than wall time, so
 * that other processes on a shared machine blur the comparison less.
 *
 *   git archive <base> | tar -x -C /tmp/base && ln -s $PWD/node_modules /tmp/base/
 *   node bench/loop-ab.ts /tmp/base .          # ROUNDS=21 by default
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

interface LoopModule {
  Loop: new (options?: { slowCallbackDuration?: number }) => any;
  StreamReader: new (options?: { loop?: unknown }) => any;
}

const [dirA, dirB] = process.argv.slice(2);
if (dirA === undefined || dirB === undefined) {
  console.error('usage: node bench/loop-ab.ts <tree A> <tree B>');
  process.exit(2);
}
const load = async (dir: string): Promise<LoopModule> => (await import(pathToFileURL(resolve(dir, 'src/index.ts')).href)) as LoopModule;
const A = await load(dirA);
const B = await load(dirB);
const BATCH = 1000;
const ROUNDS = Number(process.env.ROUNDS ?? 21);
/** CPU ms of this process. */
const cpu = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function trivial(): Promise<number> {
  return 1;
}

async function tasks(M: LoopModule, n: number): Promise<number> {
  const loop = new M.Loop({ slowCallbackDuration: 1e9 });
  const rate = (await loop.runUntilComplete(async () => {
    const t0 = cpu();
    for (let b = 0; b < n / BATCH; b++) {
      const ts = [];
      for (let i = 0; i < BATCH; i++) ts.push(loop.createTask(trivial));
      await Promise.all(ts);
    }
    return n / ((cpu() - t0) / 1000);
  })) as number;
  loop.close();
  return rate;
}

async function chain(M: LoopModule, n: number): Promise<number> {
  const loop = new M.Loop({ slowCallbackDuration: 1e9 });
  const done = loop.createFuture();
  let left = n;
  const step = (): void => {
    if (--left === 0) done.setResult();
    else loop.callSoon(step);
  };
  const t0 = cpu();
  loop.callSoon(step);
  await loop.runUntilComplete(done);
  const rate = n / ((cpu() - t0) / 1000);
  loop.close();
  return rate;
}

const CHUNK = Buffer.alloc(1024);

async function readPingPong(M: LoopModule, n: number): Promise<number> {
  const loop = new M.Loop({ slowCallbackDuration: 1e9 });
  const rate = (await loop.runUntilComplete(async () => {
    const reader = new M.StreamReader({ loop });
    const feed = (): void => reader.feedData(CHUNK);
    const t0 = cpu();
    loop.callSoon(feed);
    for (let i = 0; i < n; i++) {
      const data = (await reader.read(65536)) as Buffer;
      if (data.length !== CHUNK.length) throw new Error(`read ${data.length} bytes, fed ${CHUNK.length}`);
      loop.callSoon(feed);
    }
    return n / ((cpu() - t0) / 1000);
  })) as number;
  loop.close();
  return rate;
}

const r = { taskA: [] as number[], taskB: [] as number[], chainA: [] as number[], chainB: [] as number[], readA: [] as number[], readB: [] as number[] };
await tasks(A, 20_000);
await tasks(B, 20_000);
await chain(A, 100_000);
await chain(B, 100_000);
await readPingPong(A, 20_000);
await readPingPong(B, 20_000);
for (let i = 0; i < ROUNDS; i++) {
  for (const M of i % 2 === 0 ? [A, B] : [B, A]) {
    const k = M === A ? 'A' : 'B';
    r[`task${k}`].push(await tasks(M, 100_000));
    r[`chain${k}`].push(await chain(M, 500_000));
    r[`read${k}`].push(await readPingPong(M, 100_000));
  }
}
const med = (xs: number[]): number => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
const fmt = (x: number): string => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M/s` : `${(x / 1e3).toFixed(1)}k/s`);
console.log(`| what | A (${dirA}) | B (${dirB}) | B / A |`);
console.log('| --- | --- | --- | --- |');
console.log(`| callSoon chain | ${fmt(med(r.chainA))} | ${fmt(med(r.chainB))} | ${(med(r.chainB) / med(r.chainA)).toFixed(3)} |`);
console.log(`| tasks (create + await) | ${fmt(med(r.taskA))} | ${fmt(med(r.taskB))} | ${(med(r.taskB) / med(r.taskA)).toFixed(3)} |`);
console.log(`| StreamReader read ping-pong | ${fmt(med(r.readA))} | ${fmt(med(r.readB))} | ${(med(r.readB) / med(r.readA)).toFixed(3)} |`);
console.log(`(median of ${ROUNDS} alternating rounds, CPU time)`);
