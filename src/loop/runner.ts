/**
 * `run()` and `Runner`: asyncio.run for protoloop.
 *
 * A run creates a loop, runs `main` as a task, then shuts down in this order: servers
 * drain (a Fastify app answers its in-flight requests, within its `closeTimeout`), the
 * tasks still pending are cancelled and awaited, the loop's shutdown hooks run (default
 * executor, supervised subprocesses), and the loop closes.
 *
 * Signals (`signals`, default SIGINT and SIGTERM): the first one cancels the main task;
 * the run then shuts down as above and rejects with {@link KeyboardInterrupt} (SIGINT)
 * or {@link SystemExit} (SIGTERM and others). Left uncaught, that rejection prints one
 * line, no stack, and the process exits with 130 (SIGINT) or 0 (SIGTERM). Caught, it is
 * the program's: nothing is printed and the exit code is left alone. A second signal
 * exits at once (128 + the signal's number). A signal the program handles itself with
 * `loop.addSignalHandler(sig)` is left to that handler.
 * @module
 */
import { constants } from 'node:os';
import { CancelledError, InvalidArgumentError, InvalidStateError, KeyboardInterrupt, LoopRunningError, SystemExit } from '../errors.ts';
import { nodeDebug, nodeDebugEnabled } from './channels.ts';
import { hints } from './debug.ts';
import { isMainThread } from './internal.ts';
import { kCloseHooks, kShutdownHooks } from './symbols.ts';
import { envInspect, startInspector } from './inspector.ts';
import { checkLeaks } from './leaks.ts';
import { Loop, type LoopOptions } from './loop.ts';
import { activeLoop } from './running.ts';
import { hasSignalHandler, signalName } from './signals.ts';
import type { Task, TaskTarget } from './task.ts';

/** The signals {@link run} handles unless told otherwise. */
const DEFAULT_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

/** Options of {@link run} and {@link Runner}. */
export interface RunOptions extends LoopOptions {
  /** A function that makes the loop; default `new Loop(options)`. */
  loopFactory?: (options: LoopOptions) => Loop;
  /**
   * The signals that stop the run gracefully (see the module notes). Default
   * `['SIGINT', 'SIGTERM']`; `[]` handles none. A signal the program handles with
   * `loop.addSignalHandler()` is left to that handler. Ignored off the main thread.
   */
  signals?: readonly NodeJS.Signals[];
  /** @deprecated Use `signals: []`. `false` handles no signal (as `signals: []`). */
  handleSigint?: boolean;
  /** The main task's name. Default `'main'`. */
  name?: string;
  /**
   * Open the inspection endpoint so that `protoloop ps|pstree|stats <pid>` can read
   * this process's tasks. Default: `PROTOLOOP_INSPECT` set (to anything but `0`).
   */
  inspect?: boolean;
  /**
   * Leak check for tests: when `main` returns, `run()` rejects with `LeakError` listing
   * the tasks, transports, servers, timers, children and executor jobs it left open
   * (after cleaning them up as usual) instead of cleaning up quietly. Default false.
   */
  strict?: boolean;
}

type RunnerState = 'initialized' | 'closed';

/** Work that servers finish before run() cancels what is left (see {@link onRunnerDrain}). */
const drainHooks = new WeakMap<Loop, Set<() => Promise<void>>>();

/**
 * @internal Registers `hook` to run when a {@link Runner} closes `loop`, before the tasks
 * still pending are cancelled: a server lets its in-flight work finish there. Returns
 * the function that removes it.
 */
export function onRunnerDrain(loop: Loop, hook: () => Promise<void>): () => void {
  let set = drainHooks.get(loop);
  if (set === undefined) drainHooks.set(loop, (set = new Set()));
  set.add(hook);
  return () => set.delete(hook);
}

function checkSignals(options: RunOptions): readonly NodeJS.Signals[] {
  const { signals, handleSigint } = options;
  if (signals === undefined) return handleSigint === false ? [] : DEFAULT_SIGNALS;
  if (!Array.isArray(signals)) throw new InvalidArgumentError(`run(): signals must be an array of signal names such as ['SIGINT', 'SIGTERM'], got ${String(signals)}`);
  return [...new Set(signals.map((sig: unknown) => {
    if (typeof sig !== 'string') throw new InvalidArgumentError(`run(): signals must hold signal names such as 'SIGTERM', got ${String(sig)}`);
    return signalName(sig);
  }))];
}

/**
 * Runs several top-level calls on one loop, then closes it. Each `run()` call, and
 * `close()`, handles the `signals` (see the module notes).
 *
 * ```ts
 * await using runner = new Runner({ debug: true });
 * await runner.run(setup);
 * await runner.run(main);
 * ```
 */
export class Runner {
  #options: RunOptions;
  #signals: readonly NodeJS.Signals[];
  #loop: Loop | null = null;
  #state: RunnerState = 'initialized';
  /** The main task of the run() in progress. */
  #main: Task<unknown> | null = null;
  /** The first signal received, and how many came. */
  #signalled: NodeJS.Signals | null = null;
  #signalCount = 0;

  /** Throws `InvalidArgumentError` for `signals` that are not catchable signal names. */
  constructor(options: RunOptions = {}) {
    this.#options = options;
    this.#signals = checkSignals(options);
  }

  /** The runner's loop (created on first use). */
  getLoop(): Loop {
    if (this.#state === 'closed') throw new InvalidStateError('Runner is closed');
    if (this.#loop === null) {
      const { loopFactory, handleSigint: _h, signals: _s, name: _n, inspect, strict: _strict, ...loopOptions } = this.#options;
      const loop = loopFactory ? loopFactory(loopOptions) : new Loop(loopOptions);
      if (inspect ?? envInspect()) {
        const inspector = startInspector(loop);
        if (inspector !== null) loop[kCloseHooks].add(() => inspector.close());
      }
      this.#loop = loop;
    }
    return this.#loop;
  }

  /**
   * Runs `main` as a task on the runner's loop and returns its result (or throws its
   * error). Refused with {@link LoopRunningError} when a loop is already running here.
   * Rejects with {@link KeyboardInterrupt} or {@link SystemExit} when one of the
   * `signals` cancelled `main` (a `main` that catches the cancellation and returns
   * returns normally).
   */
  async run<T>(main: TaskTarget<T>, options: { name?: string } = {}): Promise<T> {
    if (activeLoop() !== null) throw new LoopRunningError('run() cannot be called from a running event loop: await the work directly instead');
    const loop = this.getLoop();
    const task = loop.createTask(main, { name: options.name ?? this.#options.name ?? 'main' });
    this.#main = task;
    const unlisten = this.#listen();
    try {
      const result = await loop.runUntilComplete(task);
      if (this.#options.strict === true) checkLeaks(loop, task);
      return result;
    } catch (e) {
      const sig = this.#signalled;
      if (e instanceof CancelledError && sig !== null && task.cancelled()) throw interruptError(sig, e);
      throw e;
    } finally {
      this.#main = null;
      unlisten();
    }
  }

  /**
   * Shuts down (servers drain, pending tasks are cancelled and awaited, the shutdown
   * hooks run: default executor, subprocesses), then closes the loop. Idempotent. A
   * first signal meanwhile changes nothing; a second one exits at once.
   */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    const loop = this.#loop;
    if (loop === null) return;
    const unlisten = this.#listen();
    try {
      const drains = [...(drainHooks.get(loop) ?? [])];
      if (nodeDebugEnabled) nodeDebug('shutdown: draining %d server(s)', drains.length);
      await runHooks(loop, drains, 'Exception while a server drained during run() shutdown');
      drainHooks.delete(loop);
      if (nodeDebugEnabled) nodeDebug('shutdown: cancelling %d pending task(s)', loop.pendingTasks().size);
      await cancelAllTasks(loop);
      const hooks = loop[kShutdownHooks].take();
      if (nodeDebugEnabled) nodeDebug('shutdown: running %d shutdown hook(s)', hooks.length);
      await runHooks(loop, hooks, 'Exception in a loop shutdown hook during run()');
    } finally {
      if (nodeDebugEnabled) nodeDebug('shutdown: closing the loop');
      loop.close();
      unlisten();
    }
  }

  /** Same as {@link close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Listens to the signals while a run or the close goes on; returns the function that stops. */
  #listen(): () => void {
    if (this.#signals.length === 0 || !isMainThread) return () => {};
    const listeners = this.#signals.map((sig) => {
      const listener = (): void => this.#onSignal(sig);
      process.on(sig, listener);
      return [sig, listener] as const;
    });
    return () => {
      for (const [sig, listener] of listeners) process.removeListener(sig, listener);
    };
  }

  #onSignal(sig: NodeJS.Signals): void {
    // The program handles this signal itself (loop.addSignalHandler): its handler decides.
    // (Plain process listeners do not count: libraries add them, signal-exit for one.)
    const loop = this.#loop;
    if (loop !== null && !loop.isClosed() && hasSignalHandler(loop, sig)) return;
    if (++this.#signalCount > 1) {
      process.stderr.write(`protoloop: second signal (${sig}) during the graceful shutdown: exiting at once\n`);
      process.exit(128 + (constants.signals[sig] ?? 0));
    }
    this.#signalled = sig;
    const main = this.#main;
    if (main !== null && !main.done()) main.cancel(`interrupted by ${sig}`);
  }
}

/** The error run() rejects with after `sig` stopped it. */
function interruptError(sig: NodeJS.Signals, cause: CancelledError): KeyboardInterrupt | SystemExit {
  const err = sig === 'SIGINT' ? new KeyboardInterrupt(undefined, { cause }) : new SystemExit(sig, 0, { cause });
  quietIfUncaught(err, sig, err instanceof SystemExit ? err.exitCode : 130);
  return err;
}

/** Interrupt errors thrown by run(), with what to print and the exit code when uncaught. */
const quiet = new WeakMap<object, { line: string; code: number }>();
let uncaughtInstalled = false;

/**
 * An interrupt that reaches the top (an uncaught `await run()`) is the end the user
 * asked for: one line and the signal's exit code, not Node's stack trace and code 1.
 */
function quietIfUncaught(err: Error, sig: NodeJS.Signals, code: number): void {
  quiet.set(err, { line: `protoloop: ${sig} stopped main; shut down gracefully (${err.name}, exit code ${code})\n`, code });
  if (uncaughtInstalled) return;
  uncaughtInstalled = true;
  process.on('uncaughtException', onUncaught);
}

function onUncaught(e: unknown): void {
  const mine = e !== null && typeof e === 'object' ? quiet.get(e) : undefined;
  if (mine !== undefined) {
    process.stderr.write(mine.line);
    process.exit(mine.code);
  }
  // Not ours. With no other listener, give it back to Node's default (print, exit 1).
  if (process.listenerCount('uncaughtException') === 1) {
    process.removeListener('uncaughtException', onUncaught);
    uncaughtInstalled = false;
    process.nextTick(() => {
      throw e;
    });
  }
}

async function runHooks(loop: Loop, hooks: Array<() => Promise<void> | void>, message: string): Promise<void> {
  for (const hook of hooks) {
    try {
      await loop.runUntilComplete(async () => {
        await hook();
      });
    } catch (exception) {
      loop.callExceptionHandler({ message, exception });
    }
  }
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
 * its error. SIGINT and SIGTERM (option `signals`) stop it gracefully: see the module
 * notes. Throws `InvalidArgumentError` for bad `signals`.
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
