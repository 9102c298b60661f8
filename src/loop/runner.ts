/**
 * `run()` and `Runner`: asyncio.run for protoloop.
 *
 * A run creates a loop, runs `main` as a task, then (in this order) cancels the tasks
 * still pending and waits for them, runs the loop's shutdown hooks (default executor,
 * supervised subprocesses, servers), and closes the loop. The first SIGINT cancels
 * the main task (the run then throws {@link KeyboardInterrupt} and the process exits
 * with code 130); a second one exits at once.
 * @module
 */
import { CancelledError, InvalidStateError, KeyboardInterrupt, LoopRunningError } from '../errors.ts';
import { hints } from './debug.ts';
import { isMainThread } from './internal.ts';
import { kCloseHooks, kShutdownHooks } from './symbols.ts';
import { envInspect, startInspector } from './inspector.ts';
import { Loop, type LoopOptions } from './loop.ts';
import { activeLoop } from './running.ts';
import type { Task, TaskTarget } from './task.ts';

/** Options of {@link run} and {@link Runner}. */
export interface RunOptions extends LoopOptions {
  /** A function that makes the loop; default `new Loop(options)`. */
  loopFactory?: (options: LoopOptions) => Loop;
  /** Cancel the main task on SIGINT (when no other SIGINT listener exists). Default true. */
  handleSigint?: boolean;
  /** The main task's name. Default `'main'`. */
  name?: string;
  /**
   * Open the inspection endpoint so that `protoloop ps|pstree|stats <pid>` can read
   * this process's tasks. Default: `PROTOLOOP_INSPECT` set (to anything but `0`).
   */
  inspect?: boolean;
}

type RunnerState = 'initialized' | 'closed';

/**
 * Runs several top-level calls on one loop, then closes it.
 *
 * ```ts
 * await using runner = new Runner({ debug: true });
 * await runner.run(setup);
 * await runner.run(main);
 * ```
 */
export class Runner {
  #options: RunOptions;
  #loop: Loop | null = null;
  #state: RunnerState = 'initialized';
  #interrupts = 0;

  constructor(options: RunOptions = {}) {
    this.#options = options;
  }

  /** The runner's loop (created on first use). */
  getLoop(): Loop {
    if (this.#state === 'closed') throw new InvalidStateError('Runner is closed');
    if (this.#loop === null) {
      const { loopFactory, handleSigint: _h, name: _n, inspect, ...loopOptions } = this.#options;
      const loop = loopFactory ? loopFactory(loopOptions) : new Loop(loopOptions);
      if (inspect ?? envInspect()) {
        const inspector = startInspector(loop);
        loop[kCloseHooks].add(() => inspector.close());
      }
      this.#loop = loop;
    }
    return this.#loop;
  }

  /**
   * Runs `main` as a task on the runner's loop and returns its result (or throws its
   * error). Refused with {@link LoopRunningError} when a loop is already running here.
   */
  async run<T>(main: TaskTarget<T>, options: { name?: string } = {}): Promise<T> {
    if (activeLoop() !== null) throw new LoopRunningError('run() cannot be called from a running event loop: await the work directly instead');
    const loop = this.getLoop();
    const task = loop.createTask(main, { name: options.name ?? this.#options.name ?? 'main' });
    const removeSigint = this.#installSigint(task);
    try {
      return await loop.runUntilComplete(task);
    } catch (e) {
      if (e instanceof CancelledError && this.#interrupts > 0) {
        markInterrupted();
        throw new KeyboardInterrupt(undefined, { cause: e });
      }
      throw e;
    } finally {
      removeSigint();
    }
  }

  /**
   * Cancels the tasks still pending and waits for them, runs the shutdown hooks
   * (default executor, subprocesses), then closes the loop. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    const loop = this.#loop;
    if (loop === null) return;
    try {
      await cancelAllTasks(loop);
      for (const hook of loop[kShutdownHooks].take()) {
        try {
          await loop.runUntilComplete(async () => {
            await hook();
          });
        } catch (exception) {
          loop.callExceptionHandler({ message: 'Exception in a loop shutdown hook during run()', exception });
        }
      }
    } finally {
      loop.close();
    }
  }

  /** Same as {@link close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #installSigint(task: Task<unknown>): () => void {
    if (this.#options.handleSigint === false || !isMainThread || process.listenerCount('SIGINT') > 0) return () => {};
    const onSigint = (): void => {
      this.#interrupts++;
      if (this.#interrupts > 1 || task.done()) {
        process.exit(130);
      }
      task.cancel('interrupted by SIGINT');
    };
    process.on('SIGINT', onSigint);
    return () => process.removeListener('SIGINT', onSigint);
  }
}

function markInterrupted(): void {
  process.exitCode = 130;
  // An uncaught KeyboardInterrupt would make Node exit with 1: keep 130.
  process.once('exit', () => {
    process.exitCode = 130;
  });
}

async function cancelAllTasks(loop: Loop): Promise<void> {
  const toCancel = loop.pendingTasks();
  if (toCancel.size === 0) return;
  if (loop.getDebug()) {
    // Work started and never awaited (asyncio cancels it silently): say what it was.
    const n = toCancel.size;
    loop.callExceptionHandler({
      message: `run() is cancelling ${n} task${n === 1 ? '' : 's'} still pending when the main task finished`,
      tasks: [...toCancel],
      level: 'warn',
      hint: hints.leftovers,
    });
  }
  for (const t of toCancel) t.cancel();
  const all = loop.createFuture<void>('all tasks cancelled');
  let left = toCancel.size;
  const onDone = (): void => {
    if (--left === 0 && !all.done()) all.setResult();
  };
  for (const t of toCancel) t.addDoneCallback(onDone);
  await loop.runUntilComplete(all);
  for (const t of toCancel) {
    if (t.cancelled()) continue;
    const exception = t.exception();
    if (exception !== null) loop.callExceptionHandler({ message: 'unhandled exception during run() shutdown', exception, task: t });
  }
}

/**
 * asyncio.run: runs `main` (a coroutine or a function returning a promise) as a task
 * on a new loop, then cleans up and closes the loop; returns `main`'s result or throws
 * its error. See the module notes for SIGINT.
 *
 * ```ts
 * await run(async () => { await sleep(100); return 42; });
 * ```
 */
export async function run<T>(main: TaskTarget<T>, options: RunOptions = {}): Promise<T> {
  const runner = new Runner(options);
  try {
    return await runner.run(main);
  } finally {
    await runner.close();
  }
}
