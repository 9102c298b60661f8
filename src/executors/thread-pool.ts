/**
 * ThreadPoolExecutor: jobs on worker threads, one job at a time per thread.
 *
 * Jobs wait in the base class's queue until a thread is free; a free thread is
 * reused (the most recently idle first, so the others time out), or a new one is
 * started, up to `maxWorkers`. Each thread has a MessagePort of its own: the job goes
 * out on it as one flat array and the answer comes back on it bare, moving what
 * `transfer()` marked; a shared claim slot per job says whether the answer is a failure
 * (thread-worker.ts). When every thread is busy, a job that moves nothing is staged
 * behind one (posted, not started: it counts as queued); a thread that frees up first
 * takes it over, and a cancelled one is taken back, so it never runs.
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
import { ExecutorShutdownError, InvalidArgumentError, InvalidStateError, NotCloneableError, WorkerCrashedError } from '../errors.ts';
import { BaseExecutor, PoolMember, durationMs, positiveInt, type Job } from './executor-base.ts';
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
  /** Jobs staged behind a busy thread's and not settled. */
  #staged = 0;
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
    const shared = new Int32Array(new SharedArrayBuffer(4 * SHARED_SLOTS));
    const worker = new Worker(new URL(WORKER_FILE), {
      workerData: { jobs: port2, shared },
      transferList: [port2],
      ...(this.#resourceLimits !== undefined ? { resourceLimits: this.#resourceLimits } : {}),
      ...(this.#execArgv !== undefined ? { execArgv: this.#execArgv } : {}),
    });
    const thread = new PoolThread(this, worker, port1, shared);
    port1.on('message', threadOnAnswer.bind(thread));
    // Only a running job keeps the process alive: the thread is ref'd while it runs one.
    port1.unref();
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
      if (thread.idle) this.#steal(thread);
    }
  }

  /** @internal */
  protected startJob(job: Job): void {
    let thread = this.#idle.pop();
    if (thread === undefined && this.#threads.size >= this.maxWorkers) {
      // Every thread is busy (hasRoom found one to stage behind): the job waits there, posted but unclaimed.
      const behind = this.#stagingThread();
      if (behind === null) throw new InvalidStateError('ThreadPoolExecutor: no thread to stage a job behind (hasRoom said there was)');
      let seq: number;
      try {
        seq = this.#post(behind, job);
      } catch (e) {
        this.settle(job, false, notCloneable(job, e));
        return;
      }
      behind.staged = job;
      behind.stagedSeq = seq;
      this.#staged++;
      job.worker = behind;
      return;
    }
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
    }
    this.#runOn(thread, job);
  }

  /** Sends `job` to `thread`, free (not in the idle list any more). */
  #runOn(thread: PoolThread, job: Job): void {
    thread.idle = false;
    if (thread.idleTimer !== null) {
      clearTimeout(thread.idleTimer);
      thread.idleTimer = null;
    }
    let seq: number;
    try {
      seq = this.#post(thread, job);
    } catch (e) {
      this.#makeIdle(thread);
      this.settle(job, false, notCloneable(job, e));
      return;
    }
    thread.job = job;
    thread.jobSeq = seq;
    job.worker = thread;
    if (!thread.busy) {
      thread.busy = true;
      thread.worker.ref();
    }
  }

  /**
   * Posts `job` to `thread` under a new sequence number, marked claimable: the thread
   * runs it only if it claims it first (see {@link reclaim}). Returns the number;
   * throws what `postMessage` throws (an argument the clone refuses).
   */
  #post(thread: PoolThread, job: Job): number {
    const seq = ++thread.seq;
    const slot = claimSlot(seq);
    Atomics.store(thread.shared, slot, seq);
    try {
      if (job.transferList.length === 0) thread.port.postMessage(jobMessage(job, seq));
      else thread.port.postMessage(jobMessage(job, seq), job.transferList);
    } catch (e) {
      Atomics.store(thread.shared, slot, 0);
      throw e;
    }
    Atomics.add(thread.shared, POSTED, 1);
    Atomics.notify(thread.shared, POSTED, 1);
    return seq;
  }

  /**
   * A busy thread that can take a staged job: none staged yet, and the new job's claim
   * slot is not its own job's (which could still be unclaimed: see {@link claimSlot}).
   */
  #stagingThread(): PoolThread | null {
    for (const t of this.#threads) {
      if (t.job !== null && t.staged === null && !t.abortAfterAnswer && t.seq + 1 - t.jobSeq < CLAIM_SLOTS) return t;
    }
    return null;
  }

  /**
   * @internal A free thread, room for a new one, or a busy thread to stage `job` behind
   * (only a job that moves nothing: a staged job may go to another thread).
   */
  protected override hasRoom(job: Job): boolean {
    if (this.#idle.length > 0 || this.#threads.size < this.maxWorkers) return true;
    return job.transferList.length === 0 && this.#stagingThread() !== null;
  }

  /** @internal */
  protected override stagedCount(): number {
    return this.#staged;
  }

  /** @internal */
  protected override unstageAll(): Job[] {
    const taken: Job[] = [];
    for (const t of this.#threads) {
      const job = t.staged;
      if (job !== null && job.state === 'running' && reclaim(t, t.stagedSeq)) {
        t.staged = null;
        this.#staged--;
        taken.push(job);
      }
    }
    return taken;
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
    thread.idle = true;
    this.#idle.push(thread);
    if (this.#idleTimeout !== Infinity && this.#threads.size > this.#minWorkers) {
      thread.idleTimer = setTimeout(retireIdle, this.#idleTimeout, thread);
      thread.idleTimer.unref();
    }
  }

  /** @internal `thread` answered its job: the result, or a SerializedError when the job's claim slot says it failed. */
  onAnswer(thread: PoolThread, value: unknown): void {
    if (thread.skipSeqs.length > 0) {
      // The answer of a cancelled job whose thread had already gone on to the next.
      takeFailed(thread, thread.skipSeqs.shift()!);
      return;
    }
    const job = thread.job;
    if (job === null) return;
    const ok = !takeFailed(thread, thread.jobSeq);
    thread.job = null;
    if (thread.staged !== null) this.#promote(thread);
    if (thread.abortAfterAnswer) {
      // The staged job was cancelled after the thread had started it: the thread must go.
      thread.abortAfterAnswer = false;
      thread.job = null;
      this.#retire(thread);
      this.#topUp();
    } else if (thread.job === null) {
      this.#makeIdle(thread);
      // A job staged behind a busy thread is older than any in the queue: it goes first.
      if (thread.idle) this.#steal(thread);
    }
    if (ok) this.settle(job, true, value);
    else this.settle(job, false, isSerializedError(value) ? rebuildError(value, `worker thread of ${this.executorName}`) : value);
  }

  /** The job staged on `thread` becomes its own job (started, or about to be). */
  #promote(thread: PoolThread): void {
    const next = thread.staged!;
    thread.staged = null;
    if (next.state === 'running') this.#staged--;
    thread.job = next;
    thread.jobSeq = thread.stagedSeq;
  }

  /** Moves a job staged behind another thread's (and not started there) to free `thread`. */
  #steal(thread: PoolThread): void {
    for (const t of this.#threads) {
      const job = t.staged;
      if (t === thread || job === null || job.state !== 'running' || !reclaim(t, t.stagedSeq)) continue;
      t.staged = null;
      this.#staged--;
      const i = this.#idle.lastIndexOf(thread);
      if (i >= 0) this.#idle.splice(i, 1);
      this.#runOn(thread, job);
      return;
    }
  }

  /** @internal An uncaught error ended `thread` (its 'exit' follows). */
  onThreadError(thread: PoolThread, error: Error): void {
    thread.error = error;
    // The thread is ending: no job may go to it while its 'exit' is on the way.
    this.#markExiting(thread);
    const job = thread.job;
    if (job === null || !claimed(thread, thread.jobSeq)) {
      // A thread failed outside any job (an error thrown by a timer a task left behind):
      // there is no job to fail, so say it rather than crash the process with an 'error' event.
      if (this.state === 'running') process.emitWarning(`a ThreadPoolExecutor worker failed outside a job: ${error.stack ?? error.message}`, 'ProtoloopWarning');
    }
    this.#orphan(thread);
  }

  /** @internal `thread` exited: it ended by itself, crashed, or was terminated. */
  onThreadExit(thread: PoolThread, code: number): void {
    this.#forget(thread);
    this.#exiting.delete(thread);
    thread.markExited();
    this.#orphan(thread, code);
    this.#topUp();
  }

  /**
   * The jobs of a dead thread: one it had not started (its own, or the staged one) goes
   * back to the head of the queue; the one it was running fails.
   */
  #orphan(thread: PoolThread, code?: number): void {
    const staged = thread.staged;
    const job = thread.job;
    thread.staged = null;
    thread.job = null;
    let requeued = false;
    if (staged !== null && staged.state === 'running') {
      this.#staged--;
      if (reclaim(thread, thread.stagedSeq)) {
        this.requeue(staged);
        requeued = true;
      } else this.#fail(thread, staged, code);
    }
    if (job !== null && job.state === 'running') {
      if (reclaim(thread, thread.jobSeq)) {
        this.requeue(job);
        requeued = true;
      } else this.#fail(thread, job, code);
    }
    if (requeued) this.pump();
  }

  #fail(thread: PoolThread, job: Job, code?: number): void {
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
    if (thread.idle) {
      thread.idle = false;
      const i = this.#idle.indexOf(thread);
      if (i >= 0) this.#idle.splice(i, 1);
    }
    if (thread.idleTimer !== null) {
      clearTimeout(thread.idleTimer);
      thread.idleTimer = null;
    }
  }

  /** `thread` takes no more jobs, and shutdown waits for its exit. */
  #markExiting(thread: PoolThread): void {
    this.#forget(thread);
    this.#exiting.add(thread);
  }

  #retire(thread: PoolThread): void {
    this.#markExiting(thread);
    thread.port.close();
    void thread.worker.terminate();
  }

  /** @internal An idle thread's timer ran out. */
  retireIdleThread(thread: PoolThread): void {
    thread.idleTimer = null;
    if (thread.idle && this.#threads.size > this.#minWorkers) this.#retire(thread);
  }

  /** @internal */
  protected abortJob(job: Job): void {
    const thread = job.worker as PoolThread | null;
    if (thread === null) return;
    if (thread.staged === job) {
      this.#staged--;
      if (reclaim(thread, thread.stagedSeq)) {
        // Never started: the thread will skip it.
        thread.staged = null;
        return;
      }
      // The thread has started it, so its own job is done and that answer is on its way:
      // the thread goes once the answer is in.
      thread.abortAfterAnswer = true;
      return;
    }
    if (thread.job !== job) return;
    const next = thread.staged;
    if (reclaim(thread, thread.jobSeq)) {
      // Posted but not started: the thread will skip it, and goes on with what is staged.
      thread.job = null;
      if (next !== null) this.#promote(thread);
      else {
        this.#makeIdle(thread);
        if (thread.idle) this.#steal(thread);
      }
      return;
    }
    if (next !== null && next.state === 'running' && !reclaim(thread, thread.stagedSeq)) {
      // The thread is past `job` and runs the staged one: let it. `job`'s answer is on
      // its way and is dropped; the staged job is the thread's job now.
      thread.skipSeqs.push(thread.jobSeq);
      this.#promote(thread);
      return;
    }
    // A thread cannot be interrupted: the one running an aborted job is terminated; a job
    // staged behind it goes back to the queue (the next jobs get a new thread).
    thread.job = null;
    if (next !== null) {
      thread.staged = null;
      if (next.state === 'running') {
        this.#staged--;
        this.requeue(next);
      }
    }
    this.#retire(thread);
    this.#topUp();
    if (next !== null) this.pump();
  }

  protected async releaseWorkers(_force: boolean): Promise<void> {
    // Called once no job runs (or, forced, once every job was failed): nothing is left to finish.
    for (const thread of [...this.#threads]) {
      thread.staged = null;
      thread.job = null;
      this.#retire(thread);
    }
    this.#staged = 0;
    await Promise.all([...this.#exiting].map((t) => t.exited));
  }

  protected describeWorkers(): string {
    return `threads=${this.#threads.size} idle=${this.#idle.length}`;
  }
}

/** Slots of a thread's shared Int32Array: the count of jobs posted, then the claim slots. */
const POSTED = 0;
const CLAIM_SLOTS = 8;
const SHARED_SLOTS = 1 + CLAIM_SLOTS;

/**
 * Where job `seq` of a thread is claimed. A job is posted with its slot set to `seq`;
 * the thread claims it (compare-exchange `seq` -> 0) before it runs it, and skips it
 * when the slot no longer holds `seq`; the pool takes a job back with the same
 * compare-exchange, so exactly one side wins; a job that fails has its slot set to
 * {@link FAILED} before its answer is sent. At most two jobs of a thread are
 * claimable at once (its own and the staged one), and a job is staged only less than
 * eight numbers after the thread's own (jobs taken back in between use numbers too),
 * so the two never share a slot.
 */
function claimSlot(seq: number): number {
  return 1 + (seq & (CLAIM_SLOTS - 1));
}

/** Takes job `seq` back from `thread` if it has not claimed it (it will skip it). */
function reclaim(thread: PoolThread, seq: number): boolean {
  return Atomics.compareExchange(thread.shared, claimSlot(seq), seq, 0) === seq;
}

/** The claim slot of a job that failed: the thread sets it before it sends the SerializedError. */
const FAILED = -1;

/** Whether job `seq` of `thread` failed (its answer is a SerializedError); clears the mark. */
function takeFailed(thread: PoolThread, seq: number): boolean {
  const slot = claimSlot(seq);
  if (Atomics.load(thread.shared, slot) !== FAILED) return false;
  Atomics.store(thread.shared, slot, 0);
  return true;
}

/** Whether `thread` has claimed (started) job `seq`, or it was taken back. */
function claimed(thread: PoolThread, seq: number): boolean {
  return Atomics.load(thread.shared, claimSlot(seq)) !== seq;
}

/** @internal One worker thread of the pool. */
class PoolThread extends PoolMember {
  readonly pool: ThreadPoolExecutor;
  readonly worker: Worker;
  /** Jobs go out and answers (results and failures) come back on this port. */
  readonly port: MessagePort;
  /** Shared with the thread: jobs posted, and the claim slots (see {@link claimSlot}). */
  readonly shared: Int32Array;
  /** The job the thread runs (or is about to). */
  job: Job | null = null;
  jobSeq = 0;
  /** A job posted behind `job`, not started yet. */
  staged: Job | null = null;
  stagedSeq = 0;
  /** Sequence numbers of the jobs posted to this thread. */
  seq = 0;
  /** In the pool's idle list. */
  idle = false;
  /** The staged job was cancelled after the thread started it: retire the thread once `job` answers. */
  abortAfterAnswer = false;
  /** Jobs whose answers are to be dropped: cancelled after the thread had finished them. */
  readonly skipSeqs: number[] = [];
  /** Ref'd while running a job. */
  busy = false;
  idleTimer: NodeJS.Timeout | null = null;
  /** The uncaught error that is ending the thread, if any. */
  error: Error | null = null;

  constructor(pool: ThreadPoolExecutor, worker: Worker, port: MessagePort, shared: Int32Array) {
    super();
    this.pool = pool;
    this.worker = worker;
    this.port = port;
    this.shared = shared;
  }
}

function threadOnAnswer(this: PoolThread, value: unknown): void {
  this.pool.onAnswer(this, value);
}

function threadOnError(this: PoolThread, error: Error): void {
  this.pool.onThreadError(this, error);
}

function threadOnExit(this: PoolThread, code: number): void {
  this.pool.onThreadExit(this, code);
}

/** A job whose arguments the real clone refused (the check before it let them through). */
function notCloneable(job: Job, e: unknown): NotCloneableError {
  return new NotCloneableError(`cannot send ${job.name}() its arguments: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

function retireIdle(thread: PoolThread): void {
  thread.pool.retireIdleThread(thread);
}

/**
 * The message a worker gets: the arguments, then the export's name, the module's URL
 * and the job's sequence number last (one flat array: less to clone than
 * `[url, name, args]`). Built on a copy, as `submit()`'s arguments are the caller's array.
 */
function jobMessage(job: Job, seq: number): unknown[] {
  const args = job.args;
  const n = args.length;
  const msg = new Array<unknown>(n + 3);
  for (let i = 0; i < n; i++) msg[i] = args[i];
  msg[n] = job.name;
  msg[n + 1] = job.url;
  msg[n + 2] = seq;
  return msg;
}
