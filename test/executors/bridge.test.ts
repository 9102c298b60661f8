// The thread bridge with real worker threads.
import { Worker, type MessagePort } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import {
  BridgeError,
  InvalidArgumentError,
  Loop,
  LoopClosedError,
  Task,
  ThreadPoolExecutor,
  connectBridge,
  currentTask,
  getRunningLoop,
  run,
  sleep,
  transfer,
  workerTask,
  type ExceptionContext,
} from '../../src/index.ts';
import { eventually } from '../helpers.ts';
import { thrown } from './helpers.ts';

const WORKER = new URL('../fixtures/executors/bridge-worker.ts', import.meta.url);

/** Starts the bridge worker with `script`; resolves with its result (or its exit). Bounded. */
function runWorker(loop: Loop, script: string, onMessage?: (m: unknown) => void, onWorker?: (w: Worker) => void): Promise<any> {
  const port = loop.bridgeEndpoint();
  const w = new Worker(WORKER, { workerData: { bridge: port, script }, transferList: [port] });
  onWorker?.(w);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void w.terminate();
      reject(new Error(`worker ${script} timed out`));
    }, 15_000);
    w.on('message', (m: { result?: unknown }) => {
      if (m !== null && typeof m === 'object' && 'result' in m) resolve(m.result);
      else onMessage?.(m);
    });
    w.on('error', reject);
    w.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ exit: code });
    });
  });
}

describe('thread bridge', () => {
  it('runCoroutineThreadsafe runs the handler as a task on the main loop and returns its result', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      let taskName = '';
      loop.exposeThreadsafe('add', async (a: number, b: number) => {
        taskName = currentTask()!.getName();
        await sleep(5);
        return a + b;
      });
      expect(await runWorker(loop, 'add')).toBe(42);
      expect(taskName).toMatch(/^bridge:add#\d+$/);
    });
  });

  it('callSoonThreadsafe runs the handler as a loop callback', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const calls: unknown[] = [];
      loop.exposeThreadsafe('record', (...args: unknown[]) => {
        calls.push({ args, inTask: currentTask() !== null, loop: getRunningLoop() === loop });
      });
      expect(await runWorker(loop, 'soon')).toBe('sent');
      await eventually(() => calls.length > 0, 5000, 'the callback');
      expect(calls).toEqual([{ args: ['hello', 1], inTask: false, loop: true }]);
    });
  });

  it('an unknown handler name rejects with BridgeError ERR_PROTOLOOP_BRIDGE_UNKNOWN_HANDLER', async () => {
    await run(async () => {
      const r = await runWorker(getRunningLoop(), 'unknown');
      expect(r).toMatchObject({ cls: 'BridgeError', code: 'ERR_PROTOLOOP_BRIDGE_UNKNOWN_HANDLER' });
      expect(r.message).toContain('"nope"');
    });
  });

  it("the handler's error comes back to the worker", async () => {
    await run(async () => {
      const loop = getRunningLoop();
      loop.exposeThreadsafe('fail', (m: string) => {
        throw new TypeError(m);
      });
      expect(await runWorker(loop, 'throws')).toMatchObject({ cls: 'TypeError', message: 'boom' });
    });
  });

  it('an argument that cannot be cloned throws NotCloneableError in the worker', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      loop.exposeThreadsafe('add', (a: number, b: number) => a + b);
      expect(await runWorker(loop, 'uncloneable')).toMatchObject({ cls: 'NotCloneableError', code: 'ERR_PROTOLOOP_NOT_CLONEABLE' });
    });
  });

  it("aborting the worker's signal, or cancelling the worker loop's task, cancels the handler's task on the main loop", async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const handlerTasks: Task<unknown>[] = [];
      loop.setTaskFactory((l, target, options) => {
        const t = new Task(l, target, options);
        if (options?.name?.startsWith('bridge:forever') === true) handlerTasks.push(t);
        return t;
      });
      // The worker cancels once told that the handler runs here.
      let worker: Worker | undefined;
      loop.exposeThreadsafe('forever', async () => {
        worker?.postMessage('started');
        await sleep(1e9);
      });
      expect(await runWorker(loop, 'abort', undefined, (w) => (worker = w))).toMatchObject({ cls: 'Error', message: 'worker gave up' });
      expect(await runWorker(loop, 'own-loop', undefined, (w) => (worker = w))).toMatchObject({ cls: 'CancelledError' });
      await eventually(() => handlerTasks.every((t) => t.done()), 5000, 'the handler tasks to end');
      expect(handlerTasks.length).toBe(2);
      expect(handlerTasks.every((t) => t.cancelled())).toBe(true);
    });
  });

  it('the main loop closing while a worker waits rejects the worker with ERR_PROTOLOOP_BRIDGE_CLOSED; nothing hangs', async () => {
    const loop = new Loop();
    loop.setExceptionHandler(() => {}); // the handler's task is destroyed pending: expected here
    loop.exposeThreadsafe('forever', async () => {
      await sleep(1e9);
    });
    let result: Promise<any> | undefined;
    await loop
      .runUntilComplete(async () => {
        result = runWorker(loop, 'wait-forever', () => loop.stop());
        await sleep(1e9);
      })
      .catch(() => {});
    loop.close();
    expect(await result).toMatchObject({ cls: 'BridgeError', code: 'ERR_PROTOLOOP_BRIDGE_CLOSED' });
  });

  it('under run(), leftover handler tasks are cancelled and the waiting worker is told', async () => {
    let result: Promise<any> | undefined;
    await run(async () => {
      const loop = getRunningLoop();
      let running = false;
      loop.exposeThreadsafe('forever', async () => {
        running = true;
        await sleep(1e9);
      });
      result = runWorker(loop, 'wait-forever');
      // main returns while the handler's task runs (a leftover for run() to cancel).
      await eventually(() => running, 5000, 'the handler to start');
    });
    expect(await result).toMatchObject({ cls: 'BridgeError', code: 'ERR_PROTOLOOP_BRIDGE_CLOSED' });
  });

  it('an executor job can reach the main loop through an endpoint passed with transfer()', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    try {
      await run(async () => {
        const loop = getRunningLoop();
        loop.exposeThreadsafe('double', async (x: number) => {
          await sleep(1);
          return x * 2;
        });
        const askMain = workerTask<(port: MessagePort, x: number) => Promise<number>>(new URL('../fixtures/executors/bridge-task.ts', import.meta.url), 'askMain');
        expect(await loop.runInExecutor(pool, askMain, transfer(loop.bridgeEndpoint()), 21)).toBe(42);
      });
    } finally {
      await pool.shutdown({ timeout: 0 });
    }
  });

  it('an unknown name given to callSoonThreadsafe goes to the exception handler', async () => {
    const seen: ExceptionContext[] = [];
    await run(async () => {
      const loop = getRunningLoop();
      loop.setExceptionHandler((_l, ctx) => seen.push(ctx));
      const port = loop.bridgeEndpoint();
      // The main thread can connect too (useful in tests): the protocol is the same.
      const client = connectBridge(port);
      client.callSoonThreadsafe('missing', 1);
      await eventually(() => seen.length > 0, 5000, 'the report');
      client.close();
    });
    expect(seen[0]!.message).toContain('callSoonThreadsafe("missing")');
    expect((seen[0]!.exception as BridgeError).code).toBe('ERR_PROTOLOOP_BRIDGE_UNKNOWN_HANDLER');
  });

  it('validates its input', async () => {
    const loop = new Loop();
    expect(thrown(() => loop.exposeThreadsafe('', () => 1))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => loop.exposeThreadsafe('x', 1 as never))).toBeInstanceOf(InvalidArgumentError);
    loop.exposeThreadsafe('x', () => 1);
    expect(loop.unexposeThreadsafe('x')).toBe(true);
    expect(loop.unexposeThreadsafe('x')).toBe(false);
    loop.close();
    expect(thrown(() => loop.bridgeEndpoint())).toBeInstanceOf(LoopClosedError);
  });
});
