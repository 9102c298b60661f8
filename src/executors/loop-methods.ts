/**
 * What the Loop's executor methods run: `runInExecutor`, `setDefaultExecutor`,
 * `shutdownDefaultExecutor` (the methods and their docs are in src/loop/contract.ts
 * and src/loop/loop.ts, which loads this module on first use and then calls it
 * synchronously). The default executor is a {@link ThreadPoolExecutor}
 * created at the first `runInExecutor(null, ...)` (or `toThread()`); creating it
 * registers a shutdown hook (run() waits for its workers) and a close hook
 * (`loop.close()` stops them without waiting), so no worker outlives the loop.
 * @module
 */
import { CancelledError, ExecutorShutdownError, InvalidArgumentError, LoopClosedError } from '../errors.ts';
import { isExecutor, type Executor, type WorkerTask } from './executor.ts';
import { Future as LoopFuture, type Future } from '../loop/future.ts';
import { kCloseHooks, kIoEvent, kPeekException, kRealWork, kShutdownHooks } from '../loop/symbols.ts';
import type { Loop } from '../loop/loop.ts';
import { BaseExecutor, type Job } from './executor-base.ts';
import { ThreadPoolExecutor } from './thread-pool.ts';
import { registerStatsProvider } from '../loop/introspect.ts';
import { executorJobChannel, type ExecutorJobMessage } from '../loop/channels.ts';

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
  loop[kShutdownHooks].add(() => shutdownDefaultExecutor(loop, DEFAULT_EXECUTOR_SHUTDOWN_TIMEOUT));
  loop[kCloseHooks].add(() => {
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

const seenExecutors = new WeakSet<BaseExecutor>();
let executorsShown = 0;

/** Adds an executor's queue to `protoloop stats` (once per executor). */
function showInStats(loop: Loop, ex: BaseExecutor): void {
  seenExecutors.add(ex);
  const ref = new WeakRef(ex);
  registerStatsProvider(loop, `executor ${++executorsShown}`, () => {
    const e = ref.deref();
    return e === undefined ? 'collected' : { kind: e.constructor.name, state: e.state, workers: e.maxWorkers, running: e.running, queued: e.queued, completed: e.completed };
  });
}

/**
 * The future runInExecutor() returns: cancelling it aborts the job behind it at once
 * (no done callback, no side table). For protoloop's own pools the job reports
 * straight to {@link settleFromWorker} (no promise, no AbortController); other executors
 * get a signal. Named `Future` so that it reads as one in reports and `toString()`.
 */
const ExecutorFuture = class Future<R> extends LoopFuture<R> {
  /** The job, until it settles (protoloop's pools). */
  job: Job | null = null;
  executor: BaseExecutor | null = null;
  /** The signal's controller (other executors). */
  controller: AbortController | null = null;
  /** Whether the job still counts in the loop's real work (until the future is done; see {@link countRealWork}). */
  counted = false;

  override setResult(value: R): void {
    super.setResult(value);
    this.uncount();
  }

  override setException(exception: unknown): void {
    super.setException(exception);
    this.uncount();
  }

  override cancel(msg?: string): boolean {
    if (!super.cancel(msg)) return false;
    this.uncount();
    const reason = new CancelledError('the executor job was cancelled');
    const job = this.job;
    if (job !== null) {
      this.job = null;
      this.executor!.cancelJob(job, reason);
    } else {
      this.controller?.abort(reason);
    }
    return true;
  }

  /** The future is done: the job no longer counts as real work. */
  uncount(): void {
    if (!this.counted) return;
    this.counted = false;
    this.getLoop()[kRealWork]--;
  }
};
type ExecutorFuture<R> = InstanceType<typeof ExecutorFuture<R>>;

/** The sink of protoloop's pools' jobs: a worker's answer (or the job's cancellation). */
function settleFromWorker(fut: ExecutorFuture<unknown>, ok: boolean, value: unknown): void {
  fut.job = null;
  const loop = fut.getLoop();
  if (fut.done() || loop.isClosed()) return;
  // The worker's answer is an I/O event: the loop's wake-up runs from here.
  loop[kIoEvent](settleNow, fut, ok, value);
}

/** Another executor's promise settled (from wherever it settles: no wake-up shortcut). */
function settleFuture(fut: ExecutorFuture<unknown>, ok: boolean, value: unknown): void {
  fut.controller = null;
  if (fut.done() || fut.getLoop().isClosed()) return;
  settleNow(fut, ok, value);
}

function settleNow(fut: ExecutorFuture<unknown>, ok: boolean, value: unknown): void {
  if (ok) fut.setResult(value);
  else fut.setException(value);
}

function settleExpired(fut: Future<boolean>): void {
  if (!fut.done()) fut.setResult(true);
}

/**
 * A job in flight is real work a virtual clock's autojump waits for (see
 * protoloop/testing), until its future is done: the future's own setResult,
 * setException and cancel take it off (no done callback, so no extra loop callback
 * per job). The ready callbacks its outcome schedules keep the loop from idling meanwhile.
 */
function countRealWork(loop: Loop, fut: ExecutorFuture<unknown>): void {
  loop[kRealWork]++;
  fut.counted = true;
}

/** `loop.runInExecutor()`: `args` is the argument list (no rest parameter: no copy per call). */
export function runInExecutor<A extends unknown[], R>(loop: Loop, executor: Executor | null, task: WorkerTask<A, R>, args: A): Future<R> {
  if (executorJobChannel.hasSubscribers) return tracedRun(loop, executor, task, args);
  return startJob(loop, executor, task, args);
}

/**
 * runInExecutor() seen by the `protoloop:executor:job` TracingChannel: `start` and
 * `end` around the submission (`error` if it throws), then `error` (a failed or
 * cancelled job), `asyncStart` and `asyncEnd` when the future is done.
 */
function tracedRun<A extends unknown[], R>(loop: Loop, executor: Executor | null, task: WorkerTask<A, R>, args: A): Future<R> {
  const module = task?.module;
  const ctx: ExecutorJobMessage = {
    executor: executor === null || executor === undefined ? 'ThreadPoolExecutor' : String((executor as object).constructor?.name),
    module: module instanceof URL ? module.href : String(module),
    export: String(task?.name),
    future: null,
  };
  const fut = executorJobChannel.traceSync(startJob<A, R>, ctx, null, loop, executor, task, args);
  ctx.future = fut;
  fut.addDoneCallback(() => {
    const exception = fut[kPeekException]();
    if (fut.cancelled()) ctx.error = new CancelledError('the executor job was cancelled');
    else if (exception !== undefined) ctx.error = exception;
    else ctx.result = fut.result();
    if ('error' in ctx) executorJobChannel.error.publish(ctx);
    executorJobChannel.asyncStart.publish(ctx);
    executorJobChannel.asyncEnd.publish(ctx);
  });
  return fut;
}

function startJob<A extends unknown[], R>(loop: Loop, executor: Executor | null, task: WorkerTask<A, R>, args: A): Future<R> {
  if (loop.isClosed()) throw new LoopClosedError();
  let ex: Executor;
  if (executor === null || executor === undefined) ex = defaultExecutor(loop);
  else if (isExecutor(executor)) ex = executor;
  else throw new InvalidArgumentError('runInExecutor() needs an Executor (a ThreadPoolExecutor, a ProcessPoolExecutor) or null for the default one');
  if (ex instanceof BaseExecutor) {
    if (!seenExecutors.has(ex)) showInStats(loop, ex);
    // Check first: it throws (NotCloneableError, ExecutorShutdownError) before any future exists.
    const job = ex.prepareJob(task, args);
    const fut = new ExecutorFuture<R>(loop, `runInExecutor(${task.name})`);
    fut.job = job;
    fut.executor = ex;
    job.sink = settleFromWorker;
    job.sinkArg = fut;
    ex.enqueueJob(job);
    countRealWork(loop, fut as ExecutorFuture<unknown>);
    return fut;
  }
  const controller = new AbortController();
  const promise = ex.submit(task, args, { signal: controller.signal });
  const fut = new ExecutorFuture<R>(loop, `runInExecutor(${task.name})`);
  fut.controller = controller;
  countRealWork(loop, fut as ExecutorFuture<unknown>);
  promise.then(
    (value) => settleFuture(fut as ExecutorFuture<unknown>, true, value),
    (exception: unknown) => settleFuture(fut as ExecutorFuture<unknown>, false, exception),
  );
  return fut;
}

/** `loop.setDefaultExecutor()`. */
export function setDefaultExecutor(loop: Loop, executor: Executor): void {
  if (!isExecutor(executor)) throw new InvalidArgumentError('setDefaultExecutor() needs an Executor (a ThreadPoolExecutor, a ProcessPoolExecutor)');
  const s = stateOf(loop);
  s.executor = executor;
  hook(loop, s);
}

/** `loop.shutdownDefaultExecutor()`. */
export async function shutdownDefaultExecutor(loop: Loop, timeout?: number): Promise<void> {
  if (timeout !== undefined && !(typeof timeout === 'number' && timeout >= 0)) {
    throw new InvalidArgumentError('shutdownDefaultExecutor(): timeout must be a number of milliseconds >= 0');
  }
  const s = stateOf(loop);
  s.shutdownCalled = true;
  const ex = s.executor;
  if (ex === null) return;
  const done = ex.shutdown({ wait: true });
  if (timeout === undefined) {
    await done;
    return;
  }
  // The deadline is on the loop's clock (virtual time in tests), not a native timer.
  const expired = loop.createFuture<boolean>('shutdownDefaultExecutor deadline');
  const timer = loop.callLater(timeout, settleExpired, expired);
  try {
    const timedOut = await Promise.race([done.then(() => false), expired]);
    if (!timedOut) return;
  } finally {
    timer.cancel();
    if (!expired.done()) expired.cancel();
  }
  loop.logger.warn(`The default executor did not finish its jobs within ${timeout} ms: its workers were stopped`);
  await ex.shutdown({ wait: true, cancelFutures: true, timeout: 0 });
}
