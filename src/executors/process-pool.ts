/**
 * ProcessPoolExecutor: jobs in child processes (`child_process.fork` with advanced,
 * structured-clone serialization over the IPC channel).
 *
 * Each child runs one job at a time. A child that exits while running a job fails it
 * with {@link WorkerCrashedError}; the next job gets a fresh child. Cancelling a
 * running job kills its child (SIGKILL) — the only way to interrupt arbitrary code.
 * Idle children are unreferenced, so they never keep the parent alive, and they exit
 * when the parent's IPC channel closes.
 * @module
 */
import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExecutorShutdownError, InvalidArgumentError, NotCloneableError, WorkerCrashedError } from '../errors.ts';
import { BaseExecutor, PoolMember, durationMs, positiveInt, type Job } from './executor-base.ts';
import { isSerializedError, rebuildError, type SerializedError } from './remote-error.ts';

const CHILD_FILE = fileURLToPath(new URL(`./process-worker${extname(new URL(import.meta.url).pathname)}`, import.meta.url));

/** Options of {@link ProcessPoolExecutor}. */
export interface ProcessPoolExecutorOptions {
  /** Most child processes (and jobs running at once). Default `os.availableParallelism()`. */
  maxWorkers?: number;
  /** Milliseconds an idle child lives before it exits. Default 60 000. */
  idleTimeout?: number;
  /** Node options of the children. Default: the parent's, without `--inspect*`. */
  execArgv?: string[];
  /** Environment of the children. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

/** Idle children live this long by default (ms): starting a process costs tens of ms. */
export const DEFAULT_PROCESS_IDLE_TIMEOUT = 60_000;

type ChildState = 'starting' | 'idle' | 'busy' | 'exiting';

/** @internal One child process of the pool. */
class PoolChild extends PoolMember {
  state: ChildState = 'starting';
  readonly proc: ChildProcess;
  readonly pool: ProcessPoolExecutor;
  job: Job | null = null;
  jobId = 0;
  idleTimer: NodeJS.Timeout | null = null;

  constructor(pool: ProcessPoolExecutor, proc: ChildProcess) {
    super();
    this.pool = pool;
    this.proc = proc;
  }

  /** Busy children keep the parent alive; idle ones must not. */
  setRef(ref: boolean): void {
    const channel = this.proc.channel as { ref?: () => void; unref?: () => void } | undefined | null;
    if (ref) {
      this.proc.ref();
      channel?.ref?.();
    } else {
      this.proc.unref();
      channel?.unref?.();
    }
  }
}

let jobIds = 0;

/**
 * Runs jobs in child processes: for CPU-heavy work that must not share a heap with
 * the server, or code that may crash. Arguments and results are copied with
 * structured clone (no moving: `transfer()` copies, MessagePorts are refused).
 *
 * ```ts
 * await using pool = new ProcessPoolExecutor({ maxWorkers: 2 });
 * const n = await loop.runInExecutor(pool, countPrimes, 1e7);
 * ```
 */
export class ProcessPoolExecutor extends BaseExecutor {
  #children = new Set<PoolChild>();
  #idle: PoolChild[] = [];
  #idleTimeout: number;
  #execArgv: string[];
  #env: NodeJS.ProcessEnv | undefined;
  protected readonly canMove = false;

  constructor(options: ProcessPoolExecutorOptions = {}) {
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('ProcessPoolExecutor options must be an object');
    super(positiveInt(options.maxWorkers, 'ProcessPoolExecutor maxWorkers', availableParallelism()));
    this.#idleTimeout = durationMs(options.idleTimeout, 'ProcessPoolExecutor idleTimeout', DEFAULT_PROCESS_IDLE_TIMEOUT);
    if (options.execArgv !== undefined && !(Array.isArray(options.execArgv) && options.execArgv.every((a) => typeof a === 'string'))) {
      throw new InvalidArgumentError('ProcessPoolExecutor execArgv must be an array of strings');
    }
    this.#execArgv = options.execArgv ?? process.execArgv.filter((a) => !a.startsWith('--inspect'));
    if (options.env !== undefined && (options.env === null || typeof options.env !== 'object')) throw new InvalidArgumentError('ProcessPoolExecutor env must be an object');
    this.#env = options.env;
  }

  /** Process ids of the live children. */
  get pids(): number[] {
    return [...this.#children].map((c) => c.proc.pid ?? -1);
  }

  #spawn(): PoolChild {
    const proc = fork(CHILD_FILE, [], {
      serialization: 'advanced',
      execArgv: this.#execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      ...(this.#env !== undefined ? { env: this.#env } : {}),
    });
    const child = new PoolChild(this, proc);
    proc.on('message', childOnMessage.bind(child));
    proc.on('exit', childOnExit.bind(child));
    proc.on('error', childOnError.bind(child));
    this.#children.add(child);
    return child;
  }

  /** @internal */
  protected startJob(job: Job): void {
    let child = this.#idle.pop();
    if (child === undefined) child = this.#spawn();
    else if (child.idleTimer !== null) {
      clearTimeout(child.idleTimer);
      child.idleTimer = null;
    }
    child.job = job;
    child.jobId = ++jobIds;
    job.worker = child;
    child.setRef(true);
    if (child.state === 'idle') this.#send(child);
  }

  #send(child: PoolChild): void {
    const job = child.job!;
    child.state = 'busy';
    try {
      child.proc.send([child.jobId, job.url, job.name, job.args]);
    } catch (e) {
      child.job = null;
      this.#makeIdle(child);
      this.settle(job, false, new NotCloneableError(`cannot send ${job.name}() its arguments: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
    }
  }

  #makeIdle(child: PoolChild): void {
    child.state = 'idle';
    child.setRef(false);
    if (this.state !== 'running') {
      // Shutting down: an idle child is done.
      this.#retire(child, false);
      return;
    }
    this.#idle.push(child);
    if (this.#idleTimeout !== Infinity) {
      child.idleTimer = setTimeout(retireIdle, this.#idleTimeout, child);
      child.idleTimer.unref();
    }
  }

  /** @internal A message from `child`. */
  onChildMessage(child: PoolChild, msg: unknown): void {
    if (!Array.isArray(msg)) return;
    if (msg[0] === 'ready') {
      if (child.state !== 'starting') return;
      if (child.job !== null) this.#send(child);
      else this.#makeIdle(child);
      return;
    }
    const [id, ok, value] = msg as [number, boolean, unknown];
    const job = child.job;
    if (job === null || id !== child.jobId || child.state !== 'busy') return;
    child.job = null;
    this.#makeIdle(child);
    if (ok) this.settle(job, true, value);
    else this.settle(job, false, isSerializedError(value) ? rebuildError(value as SerializedError, `worker process ${child.proc.pid}`) : value);
  }

  /** @internal `child` exited (or failed to start). */
  onChildExit(child: PoolChild, code: number | null, signal: NodeJS.Signals | null, error?: Error): void {
    if (!this.#children.delete(child)) {
      child.markExited();
      return;
    }
    const i = this.#idle.indexOf(child);
    if (i >= 0) this.#idle.splice(i, 1);
    if (child.idleTimer !== null) clearTimeout(child.idleTimer);
    const prev = child.state;
    child.state = 'exiting';
    child.markExited();
    const job = child.job;
    child.job = null;
    if (job === null || job.state === 'done') return;
    const how = error !== undefined ? `failed: ${error.message}` : signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
    const pid = child.proc.pid ?? '?';
    if (this.state !== 'running') {
      this.settle(job, false, new ExecutorShutdownError(`${this.executorName} was shut down while ${job.name}() ran`));
    } else {
      const phase = prev === 'starting' ? 'starting for' : 'running';
      this.settle(job, false, new WorkerCrashedError(`the worker process ${pid} ${phase} ${job.name}() ${how}; the next job gets a new process`, error !== undefined ? { cause: error } : undefined));
    }
  }

  #retire(child: PoolChild, force: boolean): void {
    if (child.idleTimer !== null) {
      clearTimeout(child.idleTimer);
      child.idleTimer = null;
    }
    const i = this.#idle.indexOf(child);
    if (i >= 0) this.#idle.splice(i, 1);
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
    if (force || !child.proc.connected) child.proc.kill('SIGKILL');
    else child.proc.disconnect();
  }

  /** @internal An idle child's timer ran out. */
  retireIdleChild(child: PoolChild): void {
    child.idleTimer = null;
    if (child.state === 'idle') this.#retire(child, false);
  }

  /** @internal */
  protected abortJob(job: Job): void {
    const child = job.worker as PoolChild | null;
    if (child === null || child.job !== job) return;
    child.job = null;
    this.#retire(child, true);
  }

  protected async releaseWorkers(force: boolean): Promise<void> {
    const children = [...this.#children];
    for (const child of children) {
      child.setRef(false);
      this.#retire(child, force || child.state === 'busy' || child.state === 'starting');
    }
    await Promise.all(children.map((c) => c.exited));
  }

  protected describeWorkers(): string {
    return `processes=${this.#children.size} idle=${this.#idle.length}`;
  }
}

function childOnMessage(this: PoolChild, msg: unknown): void {
  this.pool.onChildMessage(this, msg);
}

function childOnExit(this: PoolChild, code: number | null, signal: NodeJS.Signals | null): void {
  this.pool.onChildExit(this, code, signal);
}

function childOnError(this: PoolChild, error: Error): void {
  // 'error' without 'exit' means the process could not be spawned (or killed/sent to).
  if (this.proc.pid === undefined || this.proc.exitCode !== null) this.pool.onChildExit(this, null, null, error);
}

function retireIdle(child: PoolChild): void {
  child.pool.retireIdleChild(child);
}
