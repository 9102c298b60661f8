// A worker thread asks the main loop to run a subprocess, through the thread bridge.
//
// Subprocesses belong to the main thread (a worker gets MainThreadOnlyError), so the
// main loop exposes a handler, "exec", and hands the worker an endpoint of its bridge.
// The worker calls the handler with runCoroutineThreadsafe(): the handler runs as a
// task on the main loop, starts the child with createSubprocessExec(), and its result
// (exit code and output) travels back to the worker. A worker's cancellation
// (AbortSignal) cancels the handler's task on the main side.
//
//   node examples/worker-bridge.ts
import { isMainThread, workerData, parentPort, Worker, type MessagePort } from 'node:worker_threads';
import {
  MainThreadOnlyError,
  PIPE,
  connectBridge,
  createSubprocessExec,
  getRunningLoop,
  run,
  type Loop,
} from '../src/index.ts';

interface ExecResult {
  code: number | null;
  stdout: string;
}

/** The main loop's handler: runs `file args` and returns what it printed. */
async function exec(file: string, args: string[]): Promise<ExecResult> {
  const proc = await createSubprocessExec(file, args, { stdout: PIPE });
  const [stdout] = await proc.communicate();
  return { code: proc.returncode, stdout: stdout?.toString('utf8') ?? '' };
}

/** Starts this file as a worker with an endpoint of `loop`'s bridge; resolves with what it reports. */
function startWorker(loop: Loop): Promise<string[]> {
  const bridge = loop.bridgeEndpoint();
  const worker = new Worker(new URL(import.meta.url), { workerData: { bridge }, transferList: [bridge] });
  const lines: string[] = [];
  return new Promise((resolve, reject) => {
    worker.on('message', (line: string) => lines.push(line));
    worker.on('error', reject);
    worker.on('exit', () => resolve(lines));
  });
}

async function mainThread(): Promise<void> {
  await run(async () => {
    const loop = getRunningLoop();
    loop.exposeThreadsafe('exec', exec);
    const lines = await startWorker(loop);
    for (const line of lines) console.log(`worker: ${line}`);
  });
}

async function workerThread(): Promise<void> {
  const say = (line: string): void => parentPort!.postMessage(line);
  // 1. The trap: subprocesses cannot be started from here.
  try {
    await createSubprocessExec(process.execPath, ['--version']);
  } catch (e) {
    if (!(e instanceof MainThreadOnlyError)) throw e;
    say(`direct call refused: ${e.code}`);
  }
  // 2. The way out: ask the main loop.
  const bridge = connectBridge((workerData as { bridge: MessagePort }).bridge);
  const script = 'console.log(`child ${process.pid} says hello`)';
  const result = await bridge.runCoroutineThreadsafe<ExecResult>('exec', process.execPath, ['-e', script]);
  say(`through the bridge: exit code ${result.code}, output: ${result.stdout.trim()}`);
  bridge.close();
}

if (isMainThread) await mainThread();
else await workerThread();
