/**
 * ThreadPoolExecutor: jobs on worker threads, one job at a time per thread.
 *
 * Jobs wait in the base class's queue until a thread is free; a free thread is
 * reused (the most recently idle first, so the others time out), or a new one is
 * started, up to `maxWorkers`. Each thread has a MessagePort of its own: the job goes
 * out on it as one flat array and the result comes back on it bare, moving what
 * `transfer()` marked; a failure comes on the worker's own port (thread-worker.ts).
 *
 * Workers load task modules with Node's own loader (so `.ts` modules run under Node
 * 24's type stripping, as the main thread does). A thread that dies while running a
 * job fails that job with {@link WorkerCrashedError}; the next job gets a new one.
 * Cancelling a running job terminates its thread (a thread cannot be interrupted
 * otherwise); a queued one just leaves the queue. Idle threads are unref'd (they
 * never keep the process alive) and exit after `idleTimeout`, down to `minWorkers`.
 * @module
 */
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { ExecutorShutdownError, InvalidArgumentError, NotCloneableError, WorkerCrashedError } from '../errors.ts';
import { BaseExecutor, durationMs, positiveInt, type Job } from './executor-base.ts';
import { isSerializedError, rebuildError } from './remote-error.ts';

/** The worker entry sits next to this module, with the same extension (`.ts` in src, `.js` in dist). */
const WORKER_FILE = new URL(`./thread-worker${extname(new URL(import.meta.url).pathname)}`, import.meta.url).href;

/** Options of {@link ThreadPoolExecutor}. */
export interface ThreadPoolExecutorOptions {
  /** Most worker threads (and jobs running at once). Default `os.availableParallelism()`. */
  maxWorkers?: number;
  /** Worker threads kept even when idle. Default 0 (threads start on demand). */
  minWorkers?: number;
  /** Milliseconds an idle worker above `minWorkers` lives before it exits. Default 10 000. */
  idleTimeout?: number;
  /** Memory limits of each worker (Node's `resourceLimits`); a worker exceeding them crashes its job. */
  resourceLimits?: { maxOldGenerationSizeMb?: number; maxYoungGenerationSizeMb?: number; codeRangeSizeMb?: number; stackSizeMb?: number };
  /** Node options of the workers (default: the main thread's). */
  execArgv?: string[];
}

/** Idle workers live this long by default (ms): long enough to serve bursts without restarting threads. */
export const DEFAULT_THREAD_IDLE_TIMEOUT = 10_000;

/**
 * Runs jobs on worker threads. `maxWorkers` jobs run at once; the others wait in
 * FIFO order.
 *
 * ```ts
 * await using pool = new ThreadPoolExecutor({ maxWorkers: 4 });
 * const digest = await loop.runInExecutor(pool, sha256, data);
 * ```
 *
 * Options are validated at once ({@link InvalidArgumentError}). Idle workers never
 * keep the process alive; running jobs do.
 */
export class ThreadPoolExecutor extends BaseExecutor {
  #threads = new Set<PoolThread>();
  #idle: PoolThread[] = [];
  /** Threads told to exit that have not yet: shutdown waits for them too. */
  #exiting = new Set<PoolThread>();
  #minWorkers: number;
  #idleTimeout: number;
  #resourceLimits: ThreadPoolExecutorOptions['resourceLimits'];
  #execArgv: string[] | undefined;
  protected readonly canMove = true;

  constructor(options: ThreadPoolExecutorOptions = {}) {
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('ThreadPoolExecutor options must be an object');
    const maxWorkers = positiveInt(options.maxWorkers, 'ThreadPoolExecutor maxWorkers', availableParallelism());
    super(maxWorkers);
    const minWorkers = options.minWorkers === undefined ? 0 : options.minWorkers;
    if (typeof minWorkers !== 'number' || !Number.isInteger(minWorkers) || minWorkers < 0 || minWorkers > maxWorkers) {
      throw new InvalidArgumentError(`ThreadPoolExecutor minWorkers must be an integer between 0 and maxWorkers (${maxWorkers})`);
    }
    if (options.execArgv !== undefined && !(Array.isArray(options.execArgv) && options.execArgv.every((a) => typeof a === 'string'))) {
      throw new InvalidArgumentError('ThreadPoolExecutor execArgv must be an array of strings');
    }
    if (options.resourceLimits !== undefined && (options.resourceLimits === null || typeof options.resourceLimits !== 'object')) {
      throw new InvalidArgumentError('ThreadPoolExecutor resourceLimits must be an object');
    }
    this.#minWorkers = minWorkers;
    this.#idleTimeout = durationMs(options.idleTimeout, 'ThreadPoolExecutor idleTimeout', DEFAULT_THREAD_IDLE_TIMEOUT);
    this.#resourceLimits = options.resourceLimits;
    this.#execArgv = options.execArgv;
  }

  /** Worker threads alive now (idle or running a job). */
  get threads(): number {
    return this.#threads.size;
  }

  /** Starts a thread; throws what `new Worker()` throws (bad `execArgv`, say). */
  #spawn(): PoolThread {
    const { port1, port2 } = new MessageChannel();
    const posted = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(new URL(WORKER_FILE), {
      workerData: { jobs: port2, posted },
      transferList: [port2],
      ...(this.#resourceLimits !== undefined ? { resourceLimits: this.#resourceLimits } : {}),
      ...(this.#execArgv !== undefined ? { execArgv: this.#execArgv } : {}),
    });
    const thread = new PoolThread(this, worker, port1, posted);
    port1.on('message', threadOnAnswer.bind(thread));
    // Only a running job keeps the process alive: the thread is ref'd while it runs one.
    port1.unref();
    worker.on('message', threadOnFailure.bind(thread));
    worker.on('error', threadOnError.bind(thread));
    worker.on('exit', threadOnExit.bind(thread));
    worker.unref();
    this.#threads.add(thread);
    return thread;
  }

  /** Keeps `minWorkers` threads (started on the first job, and again after one dies). */
  #topUp(): void {
    while (this.state === 'running' && this.#threads.size < this.#minWorkers) {
      let thread: PoolThread;
      try {
        thread = this.#spawn();
      } catch {
        return; // the job that needs a thread reports why
      }
      this.#makeIdle(thread);
    }
  }

  /** @internal */
  protected startJob(job: Job): void {
    let thread = this.#idle.pop();
    if (thread === undefined) {
      if (this.#threads.size === 0) this.#topUp();
      thread = this.#idle.pop();
    }
    if (thread === undefined) {
      try {
        thread = this.#spawn();
      } catch (e) {
        this.settle(job, false, new WorkerCrashedError(`could not start a worker thread for ${job.name}(): ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
        return;
      }
    } else if (thread.idleTimer !== null) {
      clearTimeout(thread.idleTimer);
      thread.idleTimer = null;
    }
    thread.job = job;
    job.worker = thread;
    try {
      if (job.transferList.length === 0) thread.port.postMessage(jobMessage(job));
      else thread.port.postMessage(jobMessage(job), job.transferList);
    } catch (e) {
      thread.job = null;
      this.#makeIdle(thread);
      this.settle(job, false, new NotCloneableError(`cannot send ${job.name}() its arguments: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
      return;
    }
    Atomics.add(thread.posted, 0, 1);
    Atomics.notify(thread.posted, 0, 1);
    thread.busy = true;
    thread.worker.ref();
  }

  #makeIdle(thread: PoolThread): void {
    if (thread.busy) {
      thread.busy = false;
      thread.worker.unref();
    }
    if (this.state !== 'running') {
      // Shutting down: an idle thread is done.
      this.#retire(thread);
      return;
    }
    this.#idle.push(thread);
    if (this.#idleTimeout !== Infinity && this.#threads.size > this.#minWorkers) {
      thread.idleTimer = setTimeout(retireIdle, this.#idleTimeout, thread);
      thread.idleTimer.unref();
    }
  }

  /** @internal `thread` answered its job: `ok` with the result, or not with a SerializedError. */
  onAnswer(thread: PoolThread, ok: boolean, value: unknown): void {
    const job = thread.job;
    if (job === null) return;
    thread.job = null;
    this.#makeIdle(thread);
    if (ok) this.settle(job, true, value);
    else this.settle(job, false, isSerializedError(value) ? rebuildError(value, `worker thread of ${this.executorName}`) : value);
  }

  /** @internal An uncaught error ended `thread` (its 'exit' follows). */
  onThreadError(thread: PoolThread, error: Error): void {
    thread.error = error;
    // The thread is ending: no job may go to it while its 'exit' is on the way.
    this.#forget(thread);
    this.#exiting.add(thread);
    const job = thread.job;
    if (job === null) {
      // A thread failed outside any job (an error thrown by a timer a task left behind):
      // there is no job to fail, so say it rather than crash the process with an 'error' event.
      if (this.state === 'running') process.emitWarning(`a ThreadPoolExecutor worker failed outside a job: ${error.stack ?? error.message}`, 'ProtoloopWarning');
      return;
    }
    this.#fail(thread, job);
  }

  /** @internal `thread` exited: it ended by itself, crashed, or was terminated. */
  onThreadExit(thread: PoolThread, code: number): void {
    this.#forget(thread);
    this.#exiting.delete(thread);
    thread.markExited();
    const job = thread.job;
    if (job !== null) this.#fail(thread, job, code);
    this.#topUp();
  }

  #fail(thread: PoolThread, job: Job, code?: number): void {
    thread.job = null;
    if (job.state === 'done') return;
    const e = thread.error;
    if (this.state !== 'running') {
      this.settle(job, false, new ExecutorShutdownError(`${this.executorName} was shut down while ${job.name}() ran`, e !== null ? { cause: e } : undefined));
      return;
    }
    const why = e !== null ? e.message : `it exited with code ${code}`;
    this.settle(job, false, new WorkerCrashedError(`the worker thread running ${job.name}() died (${why}); the pool replaces it`, e !== null ? { cause: e } : undefined));
  }

  #forget(thread: PoolThread): void {
    this.#threads.delete(thread);
    const i = this.#idle.indexOf(thread);
    if (i >= 0) this.#idle.splice(i, 1);
    if (thread.idleTimer !== null) {
      clearTimeout(thread.idleTimer);
      thread.idleTimer = null;
    }
  }

  #retire(thread: PoolThread): void {
    this.#forget(thread);
    this.#exiting.add(thread);
    thread.port.close();
    void thread.worker.terminate();
  }

  /** @internal An idle thread's timer ran out. */
  retireIdleThread(thread: PoolThread): void {
    thread.idleTimer = null;
    if (!thread.busy && thread.job === null && this.#threads.size > this.#minWorkers) this.#retire(thread);
  }

  /** @internal */
  protected abortJob(job: Job): void {
    // A thread cannot be interrupted: the one running an aborted job is terminated (the next job gets a new one).
    const thread = job.worker as PoolThread | null;
    if (thread === null || thread.job !== job) return;
    thread.job = null;
    this.#retire(thread);
    this.#topUp();
  }

  protected async releaseWorkers(_force: boolean): Promise<void> {
    // Called once no job runs (or, forced, once every job was failed): nothing is left to finish.
    for (const thread of [...this.#threads]) this.#retire(thread);
    await Promise.all([...this.#exiting].map((t) => t.exited));
  }

  protected describeWorkers(): string {
    return `threads=${this.#threads.size} idle=${this.#idle.length}`;
  }
}

/** @internal One worker thread of the pool. */
class PoolThread {
  readonly pool: ThreadPoolExecutor;
  readonly worker: Worker;
  /** Jobs go out and results come back on this port; failures come on the worker's own. */
  readonly port: MessagePort;
  readonly posted: Int32Array;
  job: Job | null = null;
  /** Ref'd while running a job. */
  busy = false;
  idleTimer: NodeJS.Timeout | null = null;
  /** The uncaught error that is ending the thread, if any. */
  error: Error | null = null;
  readonly exited: Promise<void>;
  #resolveExited!: () => void;

  constructor(pool: ThreadPoolExecutor, worker: Worker, port: MessagePort, posted: Int32Array) {
    this.pool = pool;
    this.worker = worker;
    this.port = port;
    this.posted = posted;
    this.exited = new Promise<void>((resolve) => {
      this.#resolveExited = resolve;
    });
  }

  markExited(): void {
    this.#resolveExited();
  }
}

function threadOnAnswer(this: PoolThread, value: unknown): void {
  this.pool.onAnswer(this, true, value);
}

function threadOnFailure(this: PoolThread, value: unknown): void {
  this.pool.onAnswer(this, false, value);
}

function threadOnError(this: PoolThread, error: Error): void {
  this.pool.onThreadError(this, error);
}

function threadOnExit(this: PoolThread, code: number): void {
  this.pool.onThreadExit(this, code);
}

function retireIdle(thread: PoolThread): void {
  thread.pool.retireIdleThread(thread);
}

/**
 * The message a worker gets: the arguments, then the export's name and the module's
 * URL last (one flat array: less to clone than `[url, name, args]`). Built on a copy,
 * as `submit()`'s arguments are the caller's array.
 */
function jobMessage(job: Job): unknown[] {
  const args = job.args;
  const n = args.length;
  const msg = new Array<unknown>(n + 2);
  for (let i = 0; i < n; i++) msg[i] = args[i];
  msg[n] = job.name;
  msg[n + 1] = job.url;
  return msg;
}
