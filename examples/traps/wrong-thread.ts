// Trap 7: a main-thread-only API called from a worker thread.
//
// Subprocesses and signal handlers belong to the main thread (a worker's children
// would outlive it; signals reach only the main thread). In a worker these APIs throw
// MainThreadOnlyError at once, and the message names the way out: the main loop
// exposes a handler, and the worker calls it through the thread bridge.
//
//   node examples/traps/wrong-thread.ts bug
//   node examples/traps/wrong-thread.ts fixed
import { once } from 'node:events';
import { isMainThread, Worker, workerData, type MessagePort } from 'node:worker_threads';
import { connectBridge, createSubprocessExec, getRunningLoop, PIPE, run, runCoroutineThreadsafe } from '../../src/index.ts';

/** Runs `node --version` in a child process and returns its output. Main thread only. */
async function childNodeVersion(): Promise<string> {
  const child = await createSubprocessExec(process.execPath, ['--version'], { stdout: PIPE });
  const [out] = await child.communicate();
  return out!.toString().trim();
}

async function inWorker(mode: string, bridge: MessagePort): Promise<void> {
  if (mode === 'bug') {
    console.log(`child says ${await childNodeVersion()}`); // BUG: spawns from the worker
  } else {
    connectBridge(bridge);
    console.log(`child says ${await runCoroutineThreadsafe<string>('childNodeVersion')}`); // asks the main loop
  }
}

async function inMain(): Promise<void> {
  const loop = getRunningLoop();
  loop.exposeThreadsafe('childNodeVersion', childNodeVersion);
  const bridge = loop.bridgeEndpoint();
  const mode = process.argv[2] === 'fixed' ? 'fixed' : 'bug';
  const worker = new Worker(new URL(import.meta.url), { workerData: { mode, bridge }, transferList: [bridge] });
  const [code] = (await once(worker, 'exit')) as [number];
  if (code !== 0) process.exitCode = code;
}

if (isMainThread) {
  await run(inMain);
} else {
  const { mode, bridge } = workerData as { mode: string; bridge: MessagePort };
  try {
    await run(() => inWorker(mode, bridge));
  } catch (err) {
    const { name, code, message } = err as Error & { code?: string };
    console.error(`the worker failed: ${name} [${code}]: ${message}`);
    process.exitCode = 1;
  }
}
