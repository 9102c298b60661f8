/**
 * What both pools share: the job queue, the lifecycle and shutdown.
 *
 * ```
 * running --shutdown()--> shuttingDown --(queue empty, jobs settled, workers gone)--> shutdown
 * ```
 *
 * At most `maxWorkers` jobs are handed to workers at a time; the rest wait here, in
 * FIFO order, so that "not started yet" is exact (what `cancelFutures` drops, and what
 * a cancelled job can leave without costing a worker). A subclass runs a job on a
 * worker ({@link BaseExecutor.startJob}), stops one ({@link BaseExecutor.abortJob})
 * and lets its workers go ({@link BaseExecutor.releaseWorkers}). A subclass may also
 * take a job to stage behind a busy worker's ({@link BaseExecutor.hasRoom}): such a
 * job counts as queued until the worker starts it, and the subclass gives it back
 * ({@link BaseExecutor.requeue}, {@link BaseExecutor.unstageAll}) if it never does.
 * @module
 */
import { inspect } from 'node:util';
import { ExecutorShutdownError, InvalidArgumentError, NotCloneableError } from '../errors.ts';
import { allPrimitive, findUncloneable } from './clone-check.ts';
import { normalizeTask, type Executor, type ExecutorState, type ExecutorShutdownOptions, type SubmitOptions, type WorkerTask } from './executor.ts';
import { unwrapTransfers, type TransferItem } from './transfer.ts';
import { activeLoop } from '../loop/running.ts';

type JobState = 'queued' | 'running' | 'done';

/** @internal Receives a job's outcome: `ok` with the result, or not with the error. */
export type JobSink<T> = (arg: T, ok: boolean, value: unknown) => void;

/** @internal One submitted job. */
export class Job {
  state: JobState = 'queued';
  readonly url: string;
  readonly name: string;
  readonly args: unknown[];
  readonly transferList: TransferItem[];
  /** Where the outcome goes: a promise's resolve/reject, or a sink (loop futures, without a promise). */
  resolve: ((v: unknown) => void) | null = null;
  reject: ((e: unknown) => void) | null = null;
  sink: JobSink<any> | null = null;
  sinkArg: unknown = null;
  /** The user's signal, and our listener on it. */
  signal: AbortSignal | null = null;
  onUserAbort: (() => void) | null = null;
  /** Set by the subclass: what runs the job (a worker thread, a child process). */
  worker: unknown = null;

  constructor(url: string, name: string, args: unknown[], transferList: TransferItem[]) {
    this.url = url;
    this.name = name;
    this.args = args;
    this.transferList = transferList;
  }
}

/** @internal One worker of a pool (a thread, a child process): `exited` resolves once it is gone. */
export class PoolMember {
  readonly exited: Promise<void>;
  #resolveExited!: () => void;

  constructor() {
    this.exited = new Promise<void>((resolve) => {
      this.#resolveExited = resolve;
    });
  }

  markExited(): void {
    this.#resolveExited();
  }
}

function validateShutdownOptions(options: ExecutorShutdownOptions): void {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('shutdown() options must be an object');
  const { wait, cancelFutures, timeout } = options;
  if (wait !== undefined && typeof wait !== 'boolean') throw new InvalidArgumentError('shutdown(): wait must be a boolean');
  if (cancelFutures !== undefined && typeof cancelFutures !== 'boolean') throw new InvalidArgumentError('shutdown(): cancelFutures must be a boolean');
  if (timeout !== undefined && !(typeof timeout === 'number' && timeout >= 0)) throw new InvalidArgumentError('shutdown(): timeout must be a number of milliseconds >= 0');
}

/** @internal Validates `maxWorkers`-like options: a positive integer or undefined. */
export function positiveInt(value: unknown, what: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new InvalidArgumentError(`${what} must be an integer >= 1, got ${inspect(value)}`);
  return value;
}

/** @internal Validates a duration option: a number of ms >= 0 or undefined. */
export function durationMs(value: unknown, what: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw new InvalidArgumentError(`${what} must be a number of milliseconds >= 0, got ${inspect(value)}`);
  return value;
}

let executorCounter = 0;
/** The transfer list of the jobs that move nothing (the usual case): one shared, frozen array. */
const NO_TRANSFERS = Object.freeze([]) as unknown as TransferItem[];

/** The shared machinery of ThreadPoolExecutor and ProcessPoolExecutor (not exported from the package; its job plumbing is internal). */
export abstract class BaseExecutor implements Executor {
  #state: ExecutorState = 'running';
  #queue: Job[] = [];
  #queueHead = 0;
  #running = new Set<Job>();
  #maxWorkers: number;
  #closed: Promise<void> | null = null;
  #resolveClosed: (() => void) | null = null;
  #releasing = false;
  #deadline: { cancel(): void } | null = null;
  #completed = 0;
  /** The executor's name in messages: `ThreadPoolExecutor-1`. */
  readonly executorName: string;

  constructor(maxWorkers: number) {
    this.#maxWorkers = maxWorkers;
    this.executorName = `${new.target.name}-${++executorCounter}`;
  }

  /** The lifecycle state. */
  get state(): ExecutorState {
    return this.#state;
  }

  /** At most this many jobs run at once, each on its own worker. */
  get maxWorkers(): number {
    return this.#maxWorkers;
  }

  /** Whether workers can receive moved buffers and ports (threads) or only copies (processes). */
  protected abstract readonly canMove: boolean;
  /** @internal Starts `job` on a worker; calls {@link settle} when it ends. */
  protected abstract startJob(job: Job): void;
  /** @internal Stops the worker running `job` (settled by the caller right after), or drops it where it is staged. */
  protected abstract abortJob(job: Job): void;
  /**
   * @internal Whether `job` can go to a worker now: by default while fewer than
   * `maxWorkers` jobs run. A subclass that stages jobs says so itself.
   */
  protected hasRoom(_job: Job): boolean {
    return this.#running.size < this.#maxWorkers;
  }
  /** @internal Jobs handed to {@link startJob} that are staged and not started: counted as queued. */
  protected stagedCount(): number {
    return 0;
  }
  /** @internal Takes back every staged job that has not started (shutdown's cancelFutures). */
  protected unstageAll(): Job[] {
    return [];
  }
  /** Lets every worker go; `force` also kills those still running something. Resolves once all have exited. */
  protected abstract releaseWorkers(force: boolean): Promise<void>;
  /** Live details for inspect (worker counts). */
  protected abstract describeWorkers(): string;

  /** See {@link Executor.submit}. */
  submit<A extends unknown[], R>(task: WorkerTask<A, R>, args: A, options?: SubmitOptions): Promise<R> {
    let signal: AbortSignal | null = null;
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') throw new InvalidArgumentError('submit() options must be an object');
      if (options.signal !== undefined) {
        if (!(options.signal instanceof AbortSignal)) throw new InvalidArgumentError('submit(): options.signal must be an AbortSignal');
        signal = options.signal;
      }
    }
    const job = this.#makeJob(task, args);
    if (signal?.aborted === true) return Promise.reject(signal.reason as Error);
    const promise = new Promise<R>((resolve, reject) => {
      job.resolve = resolve as (v: unknown) => void;
      job.reject = reject;
    });
    if (signal !== null) {
      job.signal = signal;
      job.onUserAbort = () => this.cancelJob(job, signal.reason);
      signal.addEventListener('abort', job.onUserAbort, { once: true });
    }
    this.#enqueue(job);
    return promise;
  }

  /**
   * @internal {@link submit} without a promise, in two steps: this one checks the call
   * and builds the job (throwing as submit() does, before anything exists); the caller
   * sets `job.sink`/`job.sinkArg` (where the outcome goes) and hands the job to
   * {@link enqueueJob}.
   */
  prepareJob(task: WorkerTask, args: unknown[]): Job {
    return this.#makeJob(task, args);
  }

  /** @internal Queues (or starts) a job from {@link prepareJob}. The sink may be called before this returns. */
  enqueueJob(job: Job): void {
    this.#enqueue(job);
  }

  #makeJob(task: WorkerTask, args: unknown[]): Job {
    if (this.#state !== 'running') throw new ExecutorShutdownError(`${this.executorName} was shut down: it takes no new jobs`);
    const { url, name } = normalizeTask(task, 'submit()');
    if (!Array.isArray(args)) throw new InvalidArgumentError('submit(): args must be an array');
    if (allPrimitive(args)) return new Job(url, name, args, NO_TRANSFERS);
    const transferList: TransferItem[] = [];
    const plain = unwrapTransfers(args, transferList);
    // Processes share no memory: moving means copying (and ports cannot go at all).
    if (transferList.length > 0 && !this.canMove) transferList.length = 0;
    const bad = findUncloneable(plain, 'args', this.canMove ? new Set<unknown>(transferList) : null);
    if (bad !== null) throw new NotCloneableError(`cannot send the arguments of ${name}() to a worker: ${bad}`);
    return new Job(url, name, plain, transferList);
  }

  #enqueue(job: Job): void {
    if (this.#queueHead === this.#queue.length && this.hasRoom(job)) this.#start(job);
    else this.#queue.push(job);
  }

  /**
   * @internal A job handed to {@link startJob} that never started (its worker died
   * first): back to the head of the queue, to start again with {@link pump}.
   */
  protected requeue(job: Job): void {
    if (job.state !== 'running') return;
    job.state = 'queued';
    this.#running.delete(job);
    if (this.#queueHead > 0) this.#queue[--this.#queueHead] = job;
    else this.#queue.unshift(job);
  }

  /** @internal Starts the queued jobs that can start. */
  protected pump(): void {
    this.#pump();
  }

  /**
   * @internal Cancels `job`: dropped if queued, its worker stopped if running. The job's
   * promise rejects with `reason`. Returns false if the job had already settled.
   */
  cancelJob(job: Job, reason: unknown): boolean {
    if (job.state === 'done') return false;
    // The worker is stopped (or the job taken back) first: the settle starts the next job.
    if (job.state === 'running') this.abortJob(job);
    this.settle(job, false, reason);
    return true;
  }

  #start(job: Job): void {
    job.state = 'running';
    this.#running.add(job);
    this.startJob(job);
  }

  /** @internal Ends `job` (once) and starts the next queued one. */
  protected settle(job: Job, ok: boolean, value: unknown): void {
    if (job.state === 'done') return;
    const wasRunning = job.state === 'running';
    job.state = 'done';
    if (job.signal !== null && job.onUserAbort !== null) job.signal.removeEventListener('abort', job.onUserAbort);
    job.onUserAbort = null;
    this.#completed++;
    if (wasRunning) this.#running.delete(job);
    if (job.sink !== null) {
      const sink = job.sink;
      job.sink = null;
      sink(job.sinkArg, ok, value);
    } else if (ok) job.resolve!(value);
    else job.reject!(value);
    this.#pump();
  }

  #pump(): void {
    const q = this.#queue;
    while (this.#queueHead < q.length) {
      const job = q[this.#queueHead]!;
      if (job.state === 'queued' && !this.hasRoom(job)) break;
      q[this.#queueHead++] = undefined as never;
      if (job.state === 'queued') this.#start(job);
    }
    if (this.#queueHead === q.length && this.#queueHead > 0) {
      this.#queue = [];
      this.#queueHead = 0;
    } else if (this.#queueHead > 1024 && this.#queueHead * 2 > q.length) {
      this.#queue = q.slice(this.#queueHead);
      this.#queueHead = 0;
    }
    if (this.#state !== 'running') this.#maybeRelease();
  }

  /** Jobs waiting for a worker (cancelled ones excluded). */
  get queued(): number {
    let n = this.stagedCount();
    for (let i = this.#queueHead; i < this.#queue.length; i++) if (this.#queue[i]!.state === 'queued') n++;
    return n;
  }

  /** Jobs running on a worker now. */
  get running(): number {
    return this.#running.size - this.stagedCount();
  }

  /** Jobs settled so far (done, failed or cancelled). */
  get completed(): number {
    return this.#completed;
  }

  /**
   * Stops taking jobs. With `cancelFutures`, jobs not started fail with
   * {@link ExecutorShutdownError}; the others run to the end unless `timeout` ms pass,
   * then their workers are stopped and they fail with ExecutorShutdownError. With
   * `wait` (default true) resolves once every worker has exited. May be called again
   * to tighten the options; never throws for being called twice.
   */
  async shutdown(options: ExecutorShutdownOptions = {}): Promise<void> {
    validateShutdownOptions(options);
    const { wait = true, cancelFutures = false, timeout } = options;
    if (this.#state === 'running') this.#state = 'shuttingDown';
    this.#closed ??= new Promise<void>((resolve) => {
      this.#resolveClosed = resolve;
    });
    if (cancelFutures) this.#dropQueued(`${this.executorName} was shut down before this job started (cancelFutures)`, true);
    if (timeout !== undefined && this.#state !== 'shutdown') {
      if (timeout === 0) {
        this.#forceStop(`${this.executorName} was shut down: the job was stopped (shutdown timeout 0 ms)`);
      } else if (this.#deadline === null) {
        const expire = (): void => {
          this.#deadline = null;
          this.#forceStop(`${this.executorName} was shut down: the job did not finish within the shutdown timeout of ${timeout} ms and was stopped`);
        };
        this.#deadline = shutdownDeadline(timeout, expire);
      }
    }
    this.#maybeRelease();
    if (wait) await this.#closed;
  }

  /** `shutdown({ wait: true })`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown({ wait: true });
  }

  #dropQueued(message: string, staged = false): void {
    // The queue is emptied before anything settles: a settle starts what is queued.
    const q = this.#queue;
    const start = this.#queueHead;
    this.#queue = [];
    this.#queueHead = 0;
    const dropped = staged ? this.unstageAll() : [];
    for (let i = start; i < q.length; i++) if (q[i]!.state === 'queued') dropped.push(q[i]!);
    for (const job of dropped) this.settle(job, false, new ExecutorShutdownError(message));
  }

  #forceStop(message: string): void {
    this.#dropQueued(message);
    for (const job of [...this.#running]) this.settle(job, false, new ExecutorShutdownError(message));
    this.#release(true);
  }

  #maybeRelease(): void {
    if (this.#state === 'running' || this.#releasing) return;
    if (this.#running.size > 0 || this.#queueHead < this.#queue.length) return;
    this.#release(false);
  }

  #release(force: boolean): void {
    if (this.#releasing && !force) return;
    this.#releasing = true;
    if (this.#deadline !== null && !force) {
      this.#deadline.cancel();
      this.#deadline = null;
    }
    this.releaseWorkers(force).then(
      () => this.#finish(),
      () => this.#finish(),
    );
  }

  #finish(): void {
    if (this.#state === 'shutdown') return;
    this.#state = 'shutdown';
    if (this.#deadline !== null) {
      this.#deadline.cancel();
      this.#deadline = null;
    }
    this.#resolveClosed?.();
  }

  toString(): string {
    return `<${this.executorName} ${this.#state} maxWorkers=${this.#maxWorkers} running=${this.running} queued=${this.queued} ${this.describeWorkers()}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * The shutdown deadline: on the running loop's clock when there is one (so that virtual
 * time drives it in tests), else a native timer that does not keep the process alive
 * (running jobs do).
 */
function shutdownDeadline(ms: number, expire: () => void): { cancel(): void } {
  const loop = activeLoop();
  if (loop !== null) return loop.callLater(ms, expire);
  const t = setTimeout(expire, ms);
  t.unref();
  return { cancel: () => clearTimeout(t) };
}
