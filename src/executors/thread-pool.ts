/**
 * ThreadPoolExecutor: jobs on worker threads, pooled by piscina.
 *
 * Workers load task modules with Node's own loader (so `.ts` modules run under Node
 * 24's type stripping, as the main thread does). A worker that dies while running a
 * job fails that job with {@link WorkerCrashedError}; piscina starts a new one for the
 * next job. Cancelling a running job terminates its worker (a thread cannot be
 * interrupted otherwise); a queued one just leaves the queue.
 * @module
 */
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import type { Piscina } from 'piscina';
import { piscinaLib } from '../loop/lazy.ts';
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
  #piscina: Piscina | null = null;
  #options: { minThreads: number; maxThreads: number; idleTimeout: number; resourceLimits: ThreadPoolExecutorOptions['resourceLimits']; execArgv: string[] | undefined };
  protected readonly canMove = true;

  constructor(options: ThreadPoolExecutorOptions = {}) {
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('ThreadPoolExecutor options must be an object');
    const maxWorkers = positiveInt(options.maxWorkers, 'ThreadPoolExecutor maxWorkers', availableParallelism());
    super(maxWorkers);
    const minWorkers = options.minWorkers === undefined ? 0 : options.minWorkers;
    if (typeof minWorkers !== 'number' || !Number.isInteger(minWorkers) || minWorkers < 0 || minWorkers > maxWorkers) {
      throw new InvalidArgumentError(`ThreadPoolExecutor minWorkers must be an integer between 0 and maxWorkers (${maxWorkers})`);
    }
    if (options.execArgv !== undefined && !Array.isArray(options.execArgv)) throw new InvalidArgumentError('ThreadPoolExecutor execArgv must be an array of strings');
    this.#options = {
      minThreads: minWorkers,
      maxThreads: maxWorkers,
      idleTimeout: durationMs(options.idleTimeout, 'ThreadPoolExecutor idleTimeout', DEFAULT_THREAD_IDLE_TIMEOUT),
      resourceLimits: options.resourceLimits,
      execArgv: options.execArgv,
    };
  }

  #pool(Pool: typeof Piscina): Piscina {
    if (this.#piscina === null) {
      const o = this.#options;
      const pool = new Pool({
        filename: WORKER_FILE,
        minThreads: o.minThreads,
        maxThreads: o.maxThreads,
        idleTimeout: o.idleTimeout,
        // Our queue holds what waits; piscina gets only jobs a worker can start.
        maxQueue: o.maxThreads,
        // Nothing reads piscina's run/wait-time histograms: skip their clock reads and records per job.
        recordTiming: false,
        ...(o.resourceLimits !== undefined ? { resourceLimits: o.resourceLimits } : {}),
        ...(o.execArgv !== undefined ? { execArgv: o.execArgv } : {}),
      });
      pool.on('error', poolOnError);
      this.#piscina = pool;
    }
    return this.#piscina;
  }

  /** @internal */
  protected startJob(job: Job): void {
    const lib = piscinaLib.value;
    if (lib === undefined) {
      // piscina is loaded by the first job, not by import('protoloop'); a job cancelled
      // (settled) meanwhile is not started.
      piscinaLib.load().then(
        () => {
          if (job.state === 'running') this.startJob(job);
        },
        (e: unknown) => this.settle(job, false, e),
      );
      return;
    }
    this.#pool(lib.Piscina)
      .run(jobMessage(job), { transferList: job.transferList, signal: job as never })
      .then(
        (value: unknown) => this.settle(job, true, value),
        (e: unknown) => this.settle(job, false, this.#translate(job, e)),
      );
  }

  #translate(job: Job, e: unknown): unknown {
    if (isSerializedError(e)) return rebuildError(e, `worker thread of ${this.executorName}`);
    if (e instanceof Error && e.name === 'DataCloneError') return new NotCloneableError(`cannot send ${job.name}() its arguments: ${e.message}`, { cause: e });
    if (this.state !== 'running') return new ExecutorShutdownError(`${this.executorName} was shut down while ${job.name}() ran`, { cause: e });
    const why = e instanceof Error ? e.message : String(e);
    return new WorkerCrashedError(`the worker thread running ${job.name}() died (${why}); the pool replaces it`, { cause: e });
  }

  /** @internal */
  protected abortJob(job: Job): void {
    // piscina terminates the thread that runs an aborted job and starts another one.
    job.fireAbort();
  }

  protected async releaseWorkers(_force: boolean): Promise<void> {
    const pool = this.#piscina;
    if (pool === null) return;
    await pool.destroy();
  }

  protected describeWorkers(): string {
    return `threads=${this.#piscina?.threads.length ?? 0}`;
  }
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

function poolOnError(this: Piscina, err: unknown): void {
  // A worker failed outside any job (an error thrown by a timer a task left behind):
  // there is no job to fail, so say it rather than crash the process with an 'error' event.
  process.emitWarning(`a ThreadPoolExecutor worker failed outside a job: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`, 'ProtoloopWarning');
}
