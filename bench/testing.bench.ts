/**
 * protoloop/testing (issue 15): how fast a memory connection moves 64 KiB writes
 * (target >= 1 GB/s; TCP over loopback in the same run for scale), and what a timer
 * costs on virtual time against real time (target: no more).
 *
 *   node bench/testing.bench.ts
 *   BENCH_SCALE=0.25 node bench/testing.bench.ts
 */
import { fileURLToPath } from 'node:url';
import { Protocol, run, getRunningLoop, type Transport, type ConnectionOptions, type ServerOptions } from '../src/index.ts';
import { MemoryNetwork, VirtualClock } from '../src/testing/index.ts';
import { machine, median, progress, writeResults } from './lib.ts';

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const BYTES = Math.round(2 * 2 ** 30 * SCALE);
const CHUNK = 64 * 1024;
const N_TIMERS = Math.round(200_000 * SCALE);
const ROUNDS = 3;

class Sink extends Protocol {
  received = 0;
  target = 0;
  done: (() => void) | null = null;
  override dataReceived(data: Buffer): void {
    this.received += data.byteLength;
    if (this.received >= this.target) this.done?.();
  }
}

class Writer extends Protocol {
  transport: Transport | null = null;
  paused = false;
  resume: (() => void) | null = null;
  override connectionMade(t: Transport): void {
    this.transport = t;
  }
  override pauseWriting(): void {
    this.paused = true;
  }
  override resumeWriting(): void {
    this.paused = false;
    this.resume?.();
  }
}

/** GB/s of 64 KiB writes from one end to the other of one connection. */
export async function throughput(kind: 'memory' | 'tcp'): Promise<number> {
  return run(async () => {
    const loop = getRunningLoop();
    const network = kind === 'memory' ? new MemoryNetwork() : undefined;
    let sink: Sink | null = null;
    const serverOptions: ServerOptions = kind === 'memory' ? { network, host: 'bench', port: 1 } : { host: '127.0.0.1', port: 0 };
    const server = await loop.createServer(() => (sink = new Sink()), serverOptions);
    const port = (server.sockets[0] as { port: number }).port;
    const clientOptions: ConnectionOptions = kind === 'memory' ? { network, host: 'bench', port } : { host: '127.0.0.1', port };
    const [transport, writer] = await loop.createConnection(() => new Writer(), clientOptions);
    while (sink === null) await new Promise<void>((r) => setImmediate(r));
    const s = sink as Sink;
    s.target = BYTES;
    const chunk = Buffer.alloc(CHUNK, 7);
    const finished = new Promise<void>((r) => (s.done = r));
    const t0 = performance.now();
    let sent = 0;
    while (sent < BYTES) {
      while (!writer.paused && sent < BYTES) {
        transport.write(chunk);
        sent += CHUNK;
      }
      if (writer.paused) await new Promise<void>((r) => (writer.resume = r));
    }
    await finished;
    const seconds = (performance.now() - t0) / 1000;
    transport.close();
    server.close();
    server.closeClients();
    await server.waitClosed();
    return BYTES / 1e9 / seconds;
  });
}

/** CPU µs per timer: schedule N timers over 0..99 ms, run until all fired. */
async function timerCost(virtual: boolean): Promise<number> {
  const clock = virtual ? new VirtualClock({ autojump: 0 }) : undefined;
  return run(async () => {
    const loop = getRunningLoop();
    let fired = 0;
    const all = loop.createFuture<void>();
    const onTimer = (): void => {
      if (++fired === N_TIMERS) all.setResult();
    };
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < N_TIMERS; i++) loop.callLater(i % 100, onTimer);
    await all;
    const cpu = process.cpuUsage(cpu0);
    return (cpu.user + cpu.system) / N_TIMERS;
  }, { clock });
}

/** CPU µs per callLater + cancel pair (no timer fires). */
async function scheduleCancel(virtual: boolean): Promise<number> {
  const clock = virtual ? new VirtualClock({ autojump: 0 }) : undefined;
  return run(async () => {
    const loop = getRunningLoop();
    const noop = (): void => {};
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < N_TIMERS; i++) loop.callLater(1000 + (i % 100), noop).cancel();
    const cpu = process.cpuUsage(cpu0);
    return (cpu.user + cpu.system) / N_TIMERS;
  }, { clock });
}

async function main(): Promise<void> {
  const started = performance.now();
  const mem: number[] = [];
  const tcp: number[] = [];
  const tv: number[] = [];
  const tr: number[] = [];
  const cv: number[] = [];
  const cr: number[] = [];
  const total = 2 * ROUNDS + 8 * ROUNDS; // two throughput cells a round, then four timer cells in each of 2 * ROUNDS rounds
  let done = 0;
  for (let round = 0; round < ROUNDS; round++) {
    mem.push(await throughput('memory'));
    progress(++done, total, `round ${round + 1}/${ROUNDS}, memory connection: ${mem.at(-1)!.toFixed(2)} GB/s`);
    tcp.push(await throughput('tcp'));
    progress(++done, total, `round ${round + 1}/${ROUNDS}, TCP loopback: ${tcp.at(-1)!.toFixed(2)} GB/s`);
  }
  // Timers after the byte pushing (its garbage is collected by then), alternating which
  // side goes first so that neither always pays for warm-up.
  for (let round = 0; round < 2 * ROUNDS; round++) {
    const virtualFirst = round % 2 === 0;
    for (const virtual of virtualFirst ? [true, false] : [false, true]) {
      const time = virtual ? 'virtual time' : 'real time';
      (virtual ? tv : tr).push(await timerCost(virtual));
      progress(++done, total, `round ${round + 1}/${2 * ROUNDS}, timer fired, ${time}: ${(virtual ? tv : tr).at(-1)!.toFixed(2)} µs`);
      (virtual ? cv : cr).push(await scheduleCancel(virtual));
      progress(++done, total, `round ${round + 1}/${2 * ROUNDS}, callLater + cancel, ${time}: ${(virtual ? cv : cr).at(-1)!.toFixed(3)} µs`);
    }
  }
  const m = median(mem);
  const t = median(tcp);
  const timerRatio = median(tv) / median(tr);
  const cancelRatio = median(cv) / median(cr);
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  const md = `## protoloop/testing (issue 15)

Command: \`node bench/testing.bench.ts\` (\`BENCH_SCALE=${SCALE}\`, ${seconds} s), ${new Date().toISOString().slice(0, 10)}.
Machine: ${machine()}.
${(BYTES / 2 ** 30).toFixed(2)} GiB in 64 KiB writes per run (the writer stops at \`pauseWriting\` and goes on at \`resumeWriting\`);
${N_TIMERS} timers per timer case; median of ${ROUNDS} rounds (timers: ${2 * ROUNDS}, alternating which goes first). Timer costs are CPU time per timer.

| what | result | ratio |
| --- | --- | --- |
| memory connection, 64 KiB writes | ${m.toFixed(2)} GB/s | target >= 1 GB/s (${m >= 1 ? 'met' : 'missed'}); ${(m / t).toFixed(1)}x TCP loopback |
| TCP loopback, same protocols | ${t.toFixed(2)} GB/s | |
| timer scheduled and fired, virtual time (autojump 0) | ${median(tv).toFixed(2)} µs | ${timerRatio.toFixed(2)}x real time (target <= 1.0x) |
| timer scheduled and fired, real time | ${median(tr).toFixed(2)} µs | |
| callLater + cancel, virtual time | ${median(cv).toFixed(3)} µs | ${cancelRatio.toFixed(2)}x real time |
| callLater + cancel, real time | ${median(cr).toFixed(3)} µs | |
`;
  console.log(md);
  writeResults('testing', md);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
