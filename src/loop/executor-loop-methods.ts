/**
 * The Loop's executor methods: `runInExecutor`, `setDefaultExecutor`,
 * `shutdownDefaultExecutor`. The default executor is a {@link ThreadPoolExecutor}
 * created at the first `runInExecutor(null, ...)` (or `toThread()`); creating it
 * registers a shutdown hook (run() waits for its workers) and a close hook
 * (`loop.close()` stops them without waiting), so no worker outlives the loop.
 * @module
 */
import { CancelledError, ExecutorShutdownError, InvalidArgumentError, LoopClosedError } from '../errors.ts';
import { isExecutor, type Executor, type WorkerTask } from './executor.ts';
import type { Future } from './future.ts';
import { kCloseHooks, kShutdownHooks } from './internal.ts';
import { Loop } from './loop.ts';
import { BaseExecutor, type Job } from './executor-base.ts';
import { ThreadPoolExecutor } from './thread-pool.ts';

declare module './loop.ts' {
  interface Loop {
    /**
     * Runs `task(...args)` on `executor` (null: the loop's default executor, a
     * {@link ThreadPoolExecutor} created on first use) and returns a {@link Future} of
     * its result. Cancelling the future — or the task awaiting it — aborts the job.
     * Throws at once: `LoopClosedError`, `ExecutorShutdownError` (the executor, or the
     * default one after `shutdownDefaultExecutor()`), `NotCloneableError`,
     * `InvalidArgumentError`. The future fails with what the job failed with (see
     * docs/executors.md).
     */
    runInExecutor<A extends unknown[], R>(executor: Executor | null, task: WorkerTask<A, R>, ...args: A): Future<R>;
    /** Sets the executor `runInExecutor(null, ...)` and `toThread()` use. The loop does not shut a replaced one down. */
    setDefaultExecutor(executor: Executor): void;
    /**
     * Shuts the default executor down and waits for its workers (asyncio's
     * `shutdown_default_executor`). After `timeout` ms (default: no limit) it logs a
     * warning and stops the workers still running. Afterwards `runInExecutor(null, ...)`
     * throws `ExecutorShutdownError`. `run()` calls it with a 300 000 ms timeout.
     */
    shutdownDefaultExecutor(timeout?: number): Promise<void>;
  }
}

/** How long run() lets the default executor's jobs finish (ms), as asyncio does. */
export const DEFAULT_EXECUTOR_SHUTDOWN_TIMEOUT = 300_000;

interface DefaultExecutorState {
  executor: Executor | null;
  shutdownCalled: boolean;
  hooked: boolean;
}

const states = new WeakMap<Loop, DefaultExecutorState>();

function stateOf(loop: Loop): DefaultExecutorState {
  let s = states.get(loop);
  if (s === undefined) {
    s = { executor: null, shutdownCalled: false, hooked: false };
    states.set(loop, s);
  }
  return s;
}

function hook(loop: Loop, s: DefaultExecutorState): void {
  if (s.hooked) return;
  s.hooked = true;
  loop[kShutdownHooks].push(() => loop.shutdownDefaultExecutor(DEFAULT_EXECUTOR_SHUTDOWN_TIMEOUT));
  loop[kCloseHooks].push(() => {
    const ex = s.executor;
    s.shutdownCalled = true;
    if (ex === null || ex.state === 'shutdown') return;
    // close() cannot wait: stop the workers now, so that none outlives the loop.
    ex.shutdown({ wait: false, cancelFutures: true, timeout: 0 }).catch((exception: unknown) => {
      loop.logger.error({ err: exception }, 'the default executor failed to shut down while the loop closed');
    });
  });
}

function defaultExecutor(loop: Loop): Executor {
  const s = stateOf(loop);
  if (s.shutdownCalled) throw new ExecutorShutdownError('the default executor was shut down (shutdownDefaultExecutor() was called): it takes no new jobs');
  if (s.executor === null) {
    s.executor = new ThreadPoolExecutor();
    hook(loop, s);
  }
  return s.executor;
}

/**
 * One runInExecutor() call: the loop future and how to cancel the job behind it.
 * For protoloop's own pools the job reports straight to {@link settleCall} (no promise,
 * no AbortController); other executors get a signal.
 */
class ExecutorCall<R> {
  readonly fut: Future<R>;
  readonly executor: BaseExecutor | null;
  job: Job | null = null;
  controller: AbortController | null = null;
  constructor(fut: Future<R>, executor: BaseExecutor | null) {
    this.fut = fut;
    this.executor = executor;
  }
}

function settleCall(call: ExecutorCall<unknown>, ok: boolean, value: unknown): void {
  const fut = call.fut;
  if (fut.done() || fut.getLoop().isClosed()) return;
  // Done without a cancellation: drop the cancel watcher first, so it costs no loop callback.
  fut.removeDoneCallback(cancelIfCancelled);
  if (ok) fut.setResult(value);
  else fut.setException(value);
}

function cancelIfCancelled(fut: Future<unknown>): void {
  if (!fut.cancelled()) return;
  const call = calls.get(fut);
  if (call === undefined) return;
  calls.delete(fut);
  const reason = new CancelledError('the executor job was cancelled');
  if (call.job !== null) call.executor!.cancelJob(call.job, reason);
  else call.controller?.abort(reason);
}

/** Pending calls by future: done callbacks receive only the future. */
const calls = new WeakMap<Future<unknown>, ExecutorCall<unknown>>();

Loop.prototype.runInExecutor = function runInExecutor<A extends unknown[], R>(this: Loop, executor: Executor | null, task: WorkerTask<A, R>, ...args: A): Future<R> {
  if (this.isClosed()) throw new LoopClosedError();
  let ex: Executor;
  if (executor === null || executor === undefined) ex = defaultExecutor(this);
  else if (isExecutor(executor)) ex = executor;
  else throw new InvalidArgumentError('runInExecutor() needs an Executor (a ThreadPoolExecutor, a ProcessPoolExecutor) or null for the default one');
  let call: ExecutorCall<R>;
  if (ex instanceof BaseExecutor) {
    // Submit first: it throws (NotCloneableError, ExecutorShutdownError) before any future exists.
    const pending: { call: ExecutorCall<R> | null; ok: boolean; value: unknown; early: boolean } = { call: null, ok: false, value: undefined, early: false };
    const job = ex.submitToSink(task, args, settleOrPark, pending as never);
    call = new ExecutorCall(this.createFuture<R>(`runInExecutor(${task.name})`), ex);
    call.job = job;
    pending.call = call;
    if (pending.early) settleCall(call as ExecutorCall<unknown>, pending.ok, pending.value);
  } else {
    const controller = new AbortController();
    const promise = ex.submit(task, args, { signal: controller.signal });
    call = new ExecutorCall(this.createFuture<R>(`runInExecutor(${task.name})`), null);
    call.controller = controller;
    promise.then(
      (value) => settleCall(call as ExecutorCall<unknown>, true, value),
      (exception: unknown) => settleCall(call as ExecutorCall<unknown>, false, exception),
    );
  }
  if (!call.fut.done()) {
    calls.set(call.fut as Future<unknown>, call as ExecutorCall<unknown>);
    call.fut.addDoneCallback(cancelIfCancelled);
  }
  return call.fut;
};

/** A job can settle inside submitToSink() (an aborted signal, a synchronous failure): park the outcome until the future exists. */
function settleOrPark(p: { call: ExecutorCall<unknown> | null; ok: boolean; value: unknown; early: boolean }, ok: boolean, value: unknown): void {
  if (p.call !== null) {
    settleCall(p.call, ok, value);
    return;
  }
  p.early = true;
  p.ok = ok;
  p.value = value;
}

Loop.prototype.setDefaultExecutor = function setDefaultExecutor(this: Loop, executor: Executor): void {
  if (!isExecutor(executor)) throw new InvalidArgumentError('setDefaultExecutor() needs an Executor (a ThreadPoolExecutor, a ProcessPoolExecutor)');
  const s = stateOf(this);
  s.executor = executor;
  hook(this, s);
};

Loop.prototype.shutdownDefaultExecutor = async function shutdownDefaultExecutor(this: Loop, timeout?: number): Promise<void> {
  if (timeout !== undefined && !(typeof timeout === 'number' && timeout >= 0)) {
    throw new InvalidArgumentError('shutdownDefaultExecutor(): timeout must be a number of milliseconds >= 0');
  }
  const s = stateOf(this);
  s.shutdownCalled = true;
  const ex = s.executor;
  if (ex === null) return;
  const done = ex.shutdown({ wait: true });
  if (timeout === undefined) {
    await done;
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<boolean>((resolve) => {
    timer = setTimeout(resolve, timeout, true);
  });
  try {
    const timedOut = await Promise.race([done.then(() => false), expired]);
    if (!timedOut) return;
  } finally {
    clearTimeout(timer);
  }
  this.logger.warn(`The default executor did not finish its jobs within ${timeout} ms: its workers were stopped`);
  await ex.shutdown({ wait: true, cancelFutures: true, timeout: 0 });
};
