/**
 * Executors: where blocking or CPU-heavy work goes so that it never runs on the loop.
 *
 * A job is a *task reference* — a module (absolute path or URL) and the name of one
 * of its exports — plus arguments, because functions cannot cross threads or
 * processes. Arguments and results are structured-cloned; {@link transfer} moves
 * ArrayBuffers and MessagePorts to a worker thread instead of copying them.
 *
 * This module holds the contract ({@link Executor}, {@link WorkerTask}) and the
 * loop-facing entry points ({@link toThread}); the pools live in `thread-pool.ts`
 * and `process-pool.ts`, the Loop methods in `executor-loop-methods.ts`.
 * @module
 */
import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InvalidArgumentError } from '../errors.ts';
import type { Future } from '../loop/future.ts';
import { getRunningLoop } from '../loop/loop.ts';

/**
 * A function that a worker runs: the module that exports it and the export's name.
 * The type parameters carry the function's arguments and (awaited) result, so that
 * `runInExecutor`/`toThread` check what they are given; build one with
 * {@link workerTask}, or write the object literal `{ module, name }`.
 */
export interface WorkerTask<A extends unknown[] = any[], R = unknown> {
  /** The module: an absolute path, or a `file:`/`data:` URL (a URL object or its string). Relative paths are refused. */
  readonly module: string | URL;
  /** The export to call. Default `'default'` when built with {@link workerTask}. */
  readonly name: string;
  /** @internal Phantom field carrying the types; never set. */
  readonly __signature?: (...args: A) => R;
}

/**
 * Names the export `name` (default `'default'`) of `module` as a task for an executor.
 * Give the function's type to check arguments and result:
 *
 * ```ts
 * const sha256 = workerTask<typeof import('./hash.ts').sha256>(new URL('./hash.ts', import.meta.url), 'sha256');
 * const digest = await toThread(sha256, data); // typed as the function's awaited result
 * ```
 *
 * Throws {@link InvalidArgumentError} for a relative path or an empty name. The module
 * is only loaded in the worker, at the first job that uses it.
 */
export function workerTask<F extends (...args: any[]) => unknown = (...args: any[]) => unknown>(
  module: string | URL,
  name = 'default',
): WorkerTask<Parameters<F>, Awaited<ReturnType<F>>> {
  const ref = { module, name };
  normalizeTask(ref, 'workerTask()');
  return Object.freeze(ref);
}

/** @internal A task reference checked and reduced to strings (module as a URL string). */
export interface NormalizedTask {
  readonly url: string;
  readonly name: string;
}

const urlCache = new Map<string, string>();

/** @internal Validates a task reference; throws {@link InvalidArgumentError}. */
export function normalizeTask(task: unknown, what: string): NormalizedTask {
  if (task === null || typeof task !== 'object') {
    const hint = typeof task === 'function' ? ': functions cannot cross threads, name a module and an export with workerTask(module, name)' : '';
    throw new InvalidArgumentError(`${what} needs a task { module, name }, got ${typeof task}${hint}`);
  }
  const { module, name } = task as { module?: unknown; name?: unknown };
  if (typeof name !== 'string' || name === '') throw new InvalidArgumentError(`${what}: task.name must be the name of an export (a non-empty string)`);
  let url: string;
  if (module instanceof URL) {
    url = module.href;
  } else if (typeof module === 'string') {
    const cached = urlCache.get(module);
    if (cached !== undefined) {
      url = cached;
    } else {
      if (isAbsolute(module)) url = pathToFileURL(module).href;
      else if (/^(file|data):/.test(module)) url = module;
      else throw new InvalidArgumentError(`${what}: task.module must be an absolute path or a file:/data: URL, got ${JSON.stringify(module)} (use new URL('./x.ts', import.meta.url))`);
      if (urlCache.size < 1024) urlCache.set(module, url);
    }
  } else {
    throw new InvalidArgumentError(`${what}: task.module must be an absolute path or a URL`);
  }
  if (!url.startsWith('file:') && !url.startsWith('data:')) throw new InvalidArgumentError(`${what}: task.module must be a file: or data: URL, got ${url}`);
  return { url, name };
}

/** Options of {@link Executor.submit}. */
export interface SubmitOptions {
  /** Aborting it cancels the job: dropped if still queued, its worker stopped if running. The promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Options of {@link Executor.shutdown}. */
export interface ExecutorShutdownOptions {
  /** Resolve only once every job has settled and every worker has exited. Default true. */
  wait?: boolean;
  /** Jobs not started yet fail with `ExecutorShutdownError` instead of running. Running jobs go on. Default false. */
  cancelFutures?: boolean;
  /**
   * Milliseconds to let running jobs finish; then their workers are stopped and the jobs
   * fail with `ExecutorShutdownError`. Default: no limit. `0` stops everything now.
   */
  timeout?: number;
}

/** The lifecycle of an executor: `running --shutdown()--> shuttingDown --> shutdown`. */
export type ExecutorState = 'running' | 'shuttingDown' | 'shutdown';

/**
 * What `loop.runInExecutor()` runs jobs on. {@link ThreadPoolExecutor} and
 * {@link ProcessPoolExecutor} implement it; so may your own class.
 */
export interface Executor {
  /** The lifecycle state. */
  readonly state: ExecutorState;
  /**
   * Runs the export `task.name` of `task.module` with `args` in a worker and returns a
   * promise of its (awaited) result. Throws synchronously: `ExecutorShutdownError`
   * after `shutdown()`, `NotCloneableError` when an argument cannot be cloned,
   * `InvalidArgumentError` for a bad task. The promise rejects with `TaskModuleError`
   * (module or export missing), the worker's error (see docs/executors.md: built-in
   * error classes come back as themselves, others as `RemoteError`), or
   * `WorkerCrashedError` when the worker died.
   */
  submit<A extends unknown[], R>(task: WorkerTask<A, R>, args: A, options?: SubmitOptions): Promise<R>;
  /** Stops taking jobs and lets the workers go; see {@link ExecutorShutdownOptions}. Idempotent. */
  shutdown(options?: ExecutorShutdownOptions): Promise<void>;
  /** `shutdown({ wait: true })`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Whether `x` looks like an {@link Executor}. */
export function isExecutor(x: unknown): x is Executor {
  return x !== null && typeof x === 'object' && typeof (x as Executor).submit === 'function' && typeof (x as Executor).shutdown === 'function';
}

/**
 * asyncio.to_thread: runs `task(...args)` on the running loop's default executor (a
 * {@link ThreadPoolExecutor} created on first use) and returns a {@link Future} of the
 * result. Cancelling the future, or the task awaiting it, aborts the job.
 *
 * ```ts
 * const digest = await toThread(workerTask(new URL('./hash.ts', import.meta.url), 'sha256'), data);
 * ```
 *
 * Throws `NoRunningLoopError` outside a running loop, and what `loop.runInExecutor()` throws.
 */
export function toThread<A extends unknown[], R>(task: WorkerTask<A, R>, ...args: A): Future<R> {
  return getRunningLoop().runInExecutor(null, task, ...args);
}
