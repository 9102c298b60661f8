/**
 * The event loop: a scheduler of callbacks, timers, tasks and protocol callbacks that
 * runs on top of Node's own event loop.
 *
 * ```
 * idle --runForever()/runUntilComplete()--> running --stop()--> idle --close()--> closed
 * ```
 *
 * One iteration runs the timers that are due and then exactly the callbacks that were
 * ready when it began (FIFO); what they schedule runs in the next iteration. A native
 * wake-up (one `setImmediate`, or a microtask when the wake-up comes from an I/O event
 * of the loop's own, see `kIoEvent`) runs a burst of iterations chained through
 * microtasks, so that promise continuations of tasks run between iterations as in
 * asyncio, and yields back to Node (I/O) after {@link MAX_BURST_ITERATIONS} iterations
 * or {@link MAX_BURST_MS} ms. All timers share one native timer set for the earliest
 * deadline.
 * @module
 */
import { AsyncResource } from 'node:async_hooks';
import type { FileHandle } from 'node:fs/promises';
import type net from 'node:net';
import { inspect } from 'node:util';
import { performance } from 'node:perf_hooks';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import type { Executor, WorkerTask } from '../executors/executor.ts';
import type { ThreadsafeHandler } from '../executors/bridge-server.ts';
import type { BaseProtocol, DatagramProtocol, MessageProtocol } from '../protocols/protocols.ts';
import type { SubprocessTransport } from '../subprocess/contract.ts';
import type { SubprocessOptions } from '../subprocess/options.ts';
import type { AcceptedSocketOptions, ConnectionOptions, UnixConnectionOptions } from '../transports/net/connect.ts';
import type { DatagramEndpointOptions, DatagramSocketTransport } from '../transports/net/datagram.ts';
import type { ServerOptions, UnixServerOptions } from '../transports/net/listen.ts';
import type { SendfileOptions } from '../transports/net/sendfile.ts';
import type { Server } from '../transports/net/server.ts';
import type { SocketTransport, StreamProtocol } from '../transports/net/socket-transport.ts';
import type { StartTlsOptions } from '../transports/net/tls.ts';
import type { Transport } from '../transports/transports.ts';
import type { WebSocketConnectOptions, WebSocketServerOptions } from '../transports/websocket/options.ts';
import type { WebSocketServer } from '../transports/websocket/server.ts';
import type { WebSocketTransport } from '../transports/websocket/transport.ts';
import { InvalidArgumentError, LoopClosedError, LoopRunningError, LoopStoppedError, NoRunningLoopError } from '../errors.ts';
import { callbackSlowChannel, nodeDebug, nodeDebugEnabled, timeCallbacks } from './channels.ts';
import { realTimerDriver, type LoopClock, type TimerDriver } from './clock.ts';
import { Coroutine, reportUnstartedCoroutines } from './coroutine.ts';
import type { LoopContract } from './contract.ts';
import { assertMainThread, contextLevel, formatExceptionContext, hints, reportSlowHandle, startStepTiming, stopStepTiming } from './debug.ts';
import { Future, futureBehind, reportUnretrieved, type UnretrievedRecord } from './future.ts';
import { Handle, TimerHandle } from './handle.ts';
import { TimerHeap } from './heap.ts';
import { HookList } from './hooks.ts';
import { bridgeArea, executorsArea, netArea, subprocessArea, webSocketArea } from './lazy.ts';
import { activeLoop, envDebug, setActiveLoop } from './running.ts';
import { captureRawStack, outsideTask, taskStorage, type RawStack } from './internal.ts';
import { kCallSoon, kCloseHooks, kCreateTaskCalling, kIoEvent, kLastWait, kLogDestroyPending, kPendingNext, kPendingPrev, kPendingTimers, kRealWork, kResources, kRun, kScheduled, kShutdownHooks, kSourceTraceback, kStats, kTaskDone, kTaskStarted, kThreadsafeHandlers, kTimerCancelled, kTimerDriver, kUnretrieved, kWoke } from './symbols.ts';
import { adoptLogger, setLevel, type Logger } from './log.ts';
import { closeUnclosedResources, openResourceCounts, type ResourceEntry } from './resources.ts';
import { addSignalHandler, removeSignalHandler } from './signals.ts';
import { Task, type TaskOptions, type TaskTarget } from './task.ts';

/** Iterations run per native wake-up before yielding to Node's I/O. */
export const MAX_BURST_ITERATIONS = 256;
/** Milliseconds a burst of iterations may take before yielding to Node's I/O. */
export const MAX_BURST_MS = 2;
/**
 * Microtask hops the batch waits, after a callback woke a task, for that task's step to
 * reach its next protoloop await (or end) before the batch goes on. A step that awaits
 * a foreign promise never gets there: the bound keeps it from stalling the loop. An
 * await chain through nested async functions costs about one hop per level.
 */
export const MAX_WAKE_HOPS = 32;

/** Context passed to an exception handler, asyncio-shaped. */
export interface ExceptionContext {
  /** What happened, one line. */
  message: string;
  /** The error, if there is one. */
  exception?: unknown;
  /** The future, task, handle, protocol, transport, ... involved. */
  future?: unknown;
  task?: unknown;
  handle?: unknown;
  protocol?: unknown;
  transport?: unknown;
  /** Where the object involved was created (debug mode), most recent call last. */
  sourceTraceback?: string;
  /**
   * How serious the report is: absent means `'error'`; `'warn'` for reports that are
   * not failures (a slow callback, leftover tasks cancelled by `run()`). The default
   * handler logs at this level.
   */
  level?: 'debug' | 'info' | 'warn' | 'error';
  /** What to do about it, one line (trap reports carry one). */
  hint?: string;
  [key: string]: unknown;
}

/** A loop exception handler. */
export type ExceptionHandler = (loop: Loop, context: ExceptionContext) => void;

/** A task factory, as `loop.setTaskFactory()` takes. */
export type TaskFactory = <T>(loop: Loop, target: TaskTarget<T>, options?: TaskOptions) => Task<T>;

/** Options of `new Loop()`. */
export interface LoopOptions {
  /** Debug mode (see docs/debugging.md). Default: `PROTOLOOP_DEBUG` set to a non-empty value other than `0`. */
  debug?: boolean;
  /** A pino-compatible logger; protoloop logs through `logger.child({ name: 'protoloop' })`. Default: readable lines on stderr. */
  logger?: Logger;
  /** In debug mode, callbacks and task steps running at least this long (ms) are logged. Default 100. */
  slowCallbackDuration?: number;
  /**
   * The loop's clock: a function returning monotonic milliseconds, or a clock object
   * such as `protoloop/testing`'s `VirtualClock` (which also decides when timers fire).
   * Default `performance.now`, with timers on real time.
   */
  clock?: (() => number) | LoopClock;
  /**
   * Run each callback of `callSoon()`, `callLater()` and `callAt()` in the async context
   * of the code that scheduled it (its AsyncLocalStorage stores: an OpenTelemetry span,
   * a request id), as asyncio's `call_soon` copies the caller's contextvars. Default
   * false: callbacks run in the loop's own context, and the capture (one
   * `AsyncResource` per callback) is not paid. Tasks always run in their creator's context.
   */
  propagateContext?: boolean;
}

/** Counters of a loop's work, for dashboards and `protoloop stats`. */
export interface LoopStats {
  iterations: number;
  callbacks: number;
  tasksCreated: number;
  tasksPending: number;
  timersScheduled: number;
  slowCallbacks: number;
  readyQueue: number;
  openResources: Record<string, number>;
}

type State = 'idle' | 'running' | 'closed';

/** How many slow callbacks a loop remembers for `protoloop top`. */
const RECENT_SLOW = 32;
let loopCounter = 0;

/** The loop running on this thread. Throws {@link NoRunningLoopError} when none is. */
export function getRunningLoop(): Loop {
  const running = activeLoop();
  if (running === null) throw new NoRunningLoopError();
  return running;
}

/** The task whose code is running now, or null outside tasks. */
export function currentTask(): Task<unknown> | null {
  return taskStorage.getStore()?.task ?? null;
}

/** The tasks of `loop` (default: the running loop) that are not done yet. */
export function allTasks(loop?: Loop): Set<Task<unknown>> {
  const l = loop ?? getRunningLoop();
  return l.pendingTasks();
}

const noop = (): void => {};
const unclosedLoops = new FinalizationRegistry<string>((name) => {
  process.emitWarning(`unclosed event loop ${name}: call loop.close() (run() does it for you)`, 'ResourceWarning');
});

/**
 * An event loop. Most programs use `run()` rather than driving a loop by hand.
 * Every method is listed and documented in `LoopContract` (src/loop/contract.ts).
 */
export class Loop implements LoopContract {
  #state: State = 'idle';
  #stopping = false;
  #ready: (Handle | undefined)[] = [];
  // The batch being run (the callbacks ready when the iteration began). It pauses after
  // a callback that woke a task (#woken) while that task's step runs in microtasks.
  #batch: (Handle | undefined)[] | null = null;
  #batchIndex = 0;
  #batchN = 0;
  #inBatch = false;
  #woken: Task<unknown> | null = null;
  #wokenBy: unknown = null;
  #hops = 0;
  #spare: (Handle | undefined)[] = [];
  #timers = new TimerHeap<TimerHandle>();
  #timerSeq = 0;
  #cancelledTimers = 0;
  #wakeScheduled = false;
  /** Depth of {@link kIoEvent} calls running now: a wake-up requested inside one needs no setImmediate. */
  #ioDepth = 0;
  #burstStart = 0;
  #burstIterations = 0;
  #nativeTimer: unknown = null;
  #driver: TimerDriver = realTimerDriver;
  #nativeWhen = Infinity;
  #keepalive: NodeJS.Timeout | null = null;
  #onStopped: (() => void) | null = null;
  #debug: boolean;
  #logger: Logger;
  #clock: () => number;
  #exceptionHandler: ExceptionHandler | null = null;
  #taskFactory: TaskFactory | null = null;
  // The tasks not done, oldest first: an intrusive list through the tasks themselves.
  #pendingHead: Task<unknown> | null = null;
  #pendingTail: Task<unknown> | null = null;
  #pendingCount = 0;
  readonly #propagate: boolean;
  readonly #name: string;
  /** The last slow callbacks reported (what, ms, when on the loop's clock), oldest first; at most RECENT_SLOW. */
  #recentSlow: { what: string; durationMs: number; at: number }[] = [];
  /** In debug mode, callbacks and task steps taking at least this many ms are logged. */
  slowCallbackDuration: number;

  /** @internal */
  readonly [kUnretrieved] = new Set<UnretrievedRecord>();
  /** @internal */
  readonly [kResources] = new Set<ResourceEntry>();
  /** @internal Sync hooks run by close(), in order; `add()` returns the disposer. */
  readonly [kCloseHooks] = new HookList<() => void>();
  /** @internal Async hooks run by run()/Runner before close(), in order; `add()` returns the disposer. */
  readonly [kShutdownHooks] = new HookList<() => Promise<void> | void>();
  /** @internal The handlers exposeThreadsafe() registered (the bridge server reads them). */
  readonly [kThreadsafeHandlers] = new Map<string, ThreadsafeHandler>();
  /** @internal */
  readonly [kStats] = { iterations: 0, callbacks: 0, tasksCreated: 0, taskSteps: 0, slowCallbacks: 0 };
  /** @internal Real operations in flight (executor jobs): a virtual clock's autojump waits for them. */
  [kRealWork] = 0;

  constructor(options: LoopOptions = {}) {
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('Loop options must be an object');
    const { debug, logger, slowCallbackDuration, clock, propagateContext } = options;
    if (propagateContext !== undefined && typeof propagateContext !== 'boolean') throw new InvalidArgumentError('options.propagateContext must be a boolean');
    this.#propagate = propagateContext === true;
    if (debug !== undefined && typeof debug !== 'boolean') throw new InvalidArgumentError('options.debug must be a boolean');
    if (slowCallbackDuration !== undefined && !(typeof slowCallbackDuration === 'number' && slowCallbackDuration >= 0)) {
      throw new InvalidArgumentError('options.slowCallbackDuration must be a number of milliseconds >= 0');
    }
    const clockObject = clock !== null && typeof clock === 'object' && typeof clock.now === 'function';
    if (clock !== undefined && typeof clock !== 'function' && !clockObject) throw new InvalidArgumentError('options.clock must be a function or a clock object with now()');
    this.#debug = debug ?? envDebug();
    this.#logger = adoptLogger(logger, this.#debug);
    this.slowCallbackDuration = slowCallbackDuration ?? 100;
    this.#name = `Loop-${++loopCounter}`;
    if (clockObject) {
      const c = clock as LoopClock;
      this.#clock = c.now.bind(c);
      const driver = c[kTimerDriver]?.(this, { idle: () => this.#state === 'running' && !this.#wakeScheduled && this.#ready.length === 0 });
      if (driver !== undefined) this.#driver = driver;
    } else {
      this.#clock = (clock as (() => number) | undefined) ?? performance.now.bind(performance);
    }
    unclosedLoops.register(this, this.#name, this);
  }

  // ------------------------------------------------------------------ time

  /** The loop's monotonic time in milliseconds. */
  time(): number {
    return this.#clock();
  }

  // ------------------------------------------------------------ scheduling

  /** Schedules `callback(...args)` for the next iteration. FIFO. Returns a {@link Handle}. */
  callSoon<A extends unknown[]>(callback: (...args: A) => unknown, ...args: A): Handle {
    if (this.#state === 'closed') throw new LoopClosedError();
    if (typeof callback !== 'function') throw new InvalidArgumentError('callSoon() needs a function');
    if (this.#propagate) callback = AsyncResource.bind(callback);
    const h = new Handle(callback as (...a: any[]) => unknown, args, this, this.#debug ? captureRawStack() : undefined);
    this.#ready.push(h);
    if (!this.#wakeScheduled && this.#state === 'running') this.#scheduleWake();
    return h;
  }

  /**
   * @internal callSoon for protoloop's own one- or two-argument callbacks: no argument
   * array, no validation. Same ordering as callSoon.
   */
  [kCallSoon](callback: (a: any, b: any) => unknown, a0: unknown, a1?: unknown, argc = 2, rawStack?: RawStack | null): Handle {
    if (this.#state === 'closed') throw new LoopClosedError();
    // rawStack: the caller already holds the call site (a task's first step) or knows
    // there is no user frame to capture (null); undefined captures one in debug mode.
    const stack = this.#debug ? (rawStack === undefined ? captureRawStack() : (rawStack ?? undefined)) : undefined;
    const h = new Handle(callback, null, this, stack, argc, a0, a1);
    this.#ready.push(h);
    if (!this.#wakeScheduled && this.#state === 'running') this.#scheduleWake();
    return h;
  }

  /** Schedules `callback(...args)` in `delay` ms (negative means now). Returns a {@link TimerHandle}. */
  callLater<A extends unknown[]>(delay: number, callback: (...args: A) => unknown, ...args: A): TimerHandle {
    if (typeof delay !== 'number' || Number.isNaN(delay)) throw new InvalidArgumentError(`callLater() delay must be a number of milliseconds, got ${inspect(delay)}`);
    return this.#callAt(this.time() + delay, callback, args);
  }

  /** Schedules `callback(...args)` at loop time `when` (see {@link time}). Returns a {@link TimerHandle}. */
  callAt<A extends unknown[]>(when: number, callback: (...args: A) => unknown, ...args: A): TimerHandle {
    if (typeof when !== 'number' || Number.isNaN(when)) throw new InvalidArgumentError(`callAt() when must be a loop time in milliseconds, got ${inspect(when)}`);
    return this.#callAt(when, callback, args);
  }

  #callAt(when: number, callback: (...args: any[]) => unknown, args: unknown[]): TimerHandle {
    if (this.#state === 'closed') throw new LoopClosedError();
    if (typeof callback !== 'function') throw new InvalidArgumentError('callLater()/callAt() need a function');
    if (this.#propagate) callback = AsyncResource.bind(callback);
    const h = new TimerHandle(when, ++this.#timerSeq, callback, args, this, this.#debug ? captureRawStack() : undefined);
    this.#timers.push(h);
    if (this.#state === 'running' && !this.#wakeScheduled && when < this.#nativeWhen) this.#armTimer();
    return h;
  }

  /** @internal The timers still scheduled and not cancelled (for leak checks). */
  [kPendingTimers](): TimerHandle[] {
    return this.#timers.items.filter((t) => !t.cancelled());
  }

  /** @internal A scheduled timer was cancelled. */
  [kTimerCancelled](): void {
    this.#cancelledTimers++;
  }

  // --------------------------------------------------------------- running

  /** Whether the loop is running. */
  isRunning(): boolean {
    return this.#state === 'running';
  }

  /** Whether the loop is closed. */
  isClosed(): boolean {
    return this.#state === 'closed';
  }

  /**
   * Runs the loop until `stop()` is called. Resolves then. Rejects with
   * {@link LoopRunningError} if this or another loop is running on this thread, and
   * with {@link LoopClosedError} if the loop is closed.
   */
  runForever(): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(new LoopClosedError());
    if (this.#state === 'running') return Promise.reject(new LoopRunningError('This event loop is already running'));
    if (activeLoop() !== null) return Promise.reject(new LoopRunningError('Cannot run the event loop while another loop is running'));
    this.#state = 'running';
    setActiveLoop(this);
    if (this.#debug) startStepTiming(this);
    if (nodeDebugEnabled) nodeDebug('%s: run (%d callbacks ready, %d timers)', this.#name, this.#ready.length, this.#timers.size - this.#cancelledTimers);
    const stopped = new Promise<void>((resolve) => {
      this.#onStopped = resolve;
    });
    outsideTask(() => {
      // While running, the loop keeps the process alive, as asyncio's run_forever() blocks.
      this.#keepalive = setInterval(noop, 0x7fffffff);
    });
    this.#scheduleWake();
    return stopped;
  }

  /**
   * Runs the loop until `x` completes and returns its result (or throws its error).
   * `x` may be a Future/Task, a {@link Coroutine} or a function returning a promise
   * (both are wrapped in a task), or the promise of a stream read (its future).
   * Rejects with {@link LoopStoppedError} if `stop()` ends the loop first.
   */
  async runUntilComplete<T>(x: Future<T> | TaskTarget<T>): Promise<T> {
    if (this.#state === 'closed') throw new LoopClosedError();
    if (this.#state === 'running') throw new LoopRunningError('This event loop is already running');
    if (activeLoop() !== null) throw new LoopRunningError('Cannot run the event loop while another loop is running');
    let fut: Future<T>;
    // The promise of a stream read made outside the loop: the read's own future.
    const read = futureBehind(x) as Future<T> | null;
    if (x instanceof Future) {
      if (x.getLoop() !== this) throw new InvalidArgumentError('runUntilComplete() got a Future attached to a different loop');
      fut = x;
    } else if (read !== null && read.getLoop() === this) {
      fut = read;
    } else {
      const task = this.createTask(x);
      task[kLogDestroyPending] = false;
      fut = task;
    }
    const stopWhenDone = (): void => this.stop();
    fut.addDoneCallback(stopWhenDone);
    try {
      await this.runForever();
    } finally {
      fut.removeDoneCallback(stopWhenDone);
    }
    if (!fut.done()) throw new LoopStoppedError();
    return fut.result();
  }

  /**
   * Stops the loop after the current iteration: the callbacks already running finish;
   * what they schedule runs when the loop runs again. Called before `runForever()`,
   * the next run does one iteration and stops.
   */
  stop(): void {
    this.#stopping = true;
    if (this.#state === 'running' && !this.#wakeScheduled) this.#scheduleWake();
  }

  /**
   * Closes the loop: reports tasks still pending ("Task was destroyed but it is
   * pending!"), exceptions never retrieved and resources never closed, runs the close
   * hooks (executors, subprocesses), drops every scheduled callback. Idempotent.
   * Throws {@link LoopRunningError} on a running loop.
   */
  close(): void {
    if (this.#state === 'running') throw new LoopRunningError('Cannot close a running event loop');
    if (this.#state === 'closed') return;
    if (this.#debug) this.#logger.debug(`Close ${this}`);
    if (nodeDebugEnabled) nodeDebug('%s: close (%d tasks pending, %d callbacks dropped)', this.#name, this.#pendingCount, this.#ready.length);
    for (let task = this.#pendingHead; task !== null; task = task[kPendingNext]) {
      if (!task[kLogDestroyPending]) continue;
      const ctx: ExceptionContext = { message: 'Task was destroyed but it is pending!', task, hint: hints.destroyedPending };
      if (task[kSourceTraceback] !== undefined) ctx.sourceTraceback = task[kSourceTraceback];
      this.callExceptionHandler(ctx);
    }
    reportUnstartedCoroutines(this);
    for (const rec of [...this[kUnretrieved]]) reportUnretrieved(rec);
    closeUnclosedResources(this);
    for (const hook of this[kCloseHooks].take()) {
      try {
        hook();
      } catch (exception) {
        this.callExceptionHandler({ message: 'Exception in a loop close hook', exception });
      }
    }
    this.#state = 'closed';
    for (let task = this.#pendingHead; task !== null; ) {
      const next = task[kPendingNext];
      task[kPendingPrev] = task[kPendingNext] = null;
      task = next;
    }
    this.#pendingHead = this.#pendingTail = null;
    this.#pendingCount = 0;
    this.#ready = [];
    this.#spare = [];
    this.#timers.clear();
    this.#clearNativeTimer();
    unclosedLoops.unregister(this);
  }

  // The burst: a native wake-up runs iterations back to back, each one chained
  // through a microtask so that task continuations resumed by an iteration run
  // before the next one. Invariant: #wakeScheduled is true from the moment a
  // wake-up is requested until the burst ends (so callSoon never schedules twice).

  #scheduleWake(): void {
    this.#wakeScheduled = true;
    // From an I/O event, the iteration runs from a microtask of the event. Such bursts
    // count in the burst that Node last started (a setImmediate or the native timer):
    // once MAX_BURST_ITERATIONS are used up, the wake-up is a setImmediate again (which
    // starts a new count), so that a chain of events settled in microtasks (never
    // leaving the microtask queue) cannot keep Node from its own callbacks. Counted, not
    // timed: which way a wake-up goes does not depend on the machine's speed.
    if (this.#ioDepth > 0 && ++this.#burstIterations < MAX_BURST_ITERATIONS) {
      queueMicrotask(this.#runIoBurstOutside);
    } else {
      setImmediate(this.#runBurstOutside);
    }
  }

  /**
   * @internal Runs `fn(a, b, c)` as the callback of an I/O event (a worker's answer or
   * message, delivered by Node in its own macrotask). If what it does wakes the loop,
   * the burst starts from a microtask queued here, at the end of this event, rather
   * than from a setImmediate after Node's next poll: this event is the loop's "select"
   * returning, so the iteration that follows runs the due timers and then the ready
   * callbacks (these among them) in asyncio's order, as a native wake-up would.
   */
  [kIoEvent]<A, B, C>(fn: (a: A, b: B, c: C) => void, a: A, b: B, c: C): void {
    this.#ioDepth++;
    try {
      fn(a, b, c);
    } finally {
      this.#ioDepth--;
    }
  }

  #runBurst = (): void => {
    this.#burstStart = performance.now();
    this.#burstIterations = 0;
    this.#runIteration();
  };

  /** A burst from an I/O event (see #scheduleWake): it goes on counting in the current burst. */
  #runIoBurst = (): void => {
    this.#runIteration();
  };

  #runIteration = (): void => {
    if (this.#state !== 'running') {
      this.#wakeScheduled = false;
      return;
    }
    if (this.#runOnce()) this.#afterIteration();
  };

  #afterIteration(): void {
    if (this.#stopping) {
      this.#finishStop();
      return;
    }
    if (this.#ready.length > 0) {
      if (++this.#burstIterations < MAX_BURST_ITERATIONS && performance.now() - this.#burstStart < MAX_BURST_MS) {
        queueMicrotask(this.#runIteration);
      } else {
        setImmediate(this.#runBurstOutside);
      }
      return;
    }
    this.#wakeScheduled = false;
    this.#armTimer();
  }

  /** Runs the due timers and the ready batch; false when the batch paused for a task step. */
  #runOnce(): boolean {
    this[kStats].iterations++;
    const timers = this.#timers;
    if (timers.size > 0) {
      if (this.#cancelledTimers > 100 && this.#cancelledTimers * 2 > timers.size) {
        timers.filter((t) => !t.cancelled());
        this.#cancelledTimers = 0;
      }
      const now = this.#clock();
      let head = timers.peek();
      while (head !== undefined && head.heapWhen <= now) {
        timers.pop();
        if (head.cancelled()) {
          if (head[kScheduled]) this.#cancelledTimers--;
        } else {
          this.#ready.push(head);
        }
        head[kScheduled] = false;
        head = timers.peek();
      }
    }
    const batch = this.#ready;
    const n = batch.length;
    if (n === 0) return true;
    this.#ready = this.#spare;
    this.#batch = batch;
    this.#batchN = n;
    this.#batchIndex = 0;
    return this.#runBatch();
  }

  // asyncio's order: a task step runs at the place of the callback that woke it. A
  // task's step here is a promise continuation, so after a callback that woke a task
  // (Future.#runCallback reports it through kWoke) the batch pauses and yields to the
  // microtask queue until the task has made its next protoloop await (a new then()
  // registration) or ended, at most MAX_WAKE_HOPS hops; then it goes on with the next
  // callback. A batch in which nothing woke a task runs as one synchronous loop.

  /** Runs the batch from #batchIndex; false when it paused (#resumeBatch goes on). */
  #runBatch(): boolean {
    const batch = this.#batch!;
    const n = this.#batchN;
    let i = this.#batchIndex;
    this.#inBatch = true;
    if (this.#debug || timeCallbacks()) {
      const slow = this.slowCallbackDuration;
      // One clock read per callback: the end of one is the start of the next.
      let t0 = performance.now();
      while (i < n) {
        const h = batch[i]!;
        batch[i++] = undefined;
        if (h.cancelled()) continue;
        h[kRun]();
        const t1 = performance.now();
        const dt = t1 - t0;
        t0 = t1;
        if (dt >= slow) {
          reportSlowHandle(this, h, dt);
          t0 = performance.now(); // the report's own time is not the next callback's
        }
        if (this.#woken !== null) return this.#pauseBatch(i);
      }
    } else {
      while (i < n) {
        const h = batch[i]!;
        batch[i++] = undefined;
        h[kRun]();
        if (this.#woken !== null) return this.#pauseBatch(i);
      }
    }
    this.#inBatch = false;
    // A small batch is dropped for a fresh array: batch.length = 0 is a runtime call,
    // dearer than a young-generation array. A large one is kept (no regrowing).
    if (n < 1024) {
      this.#spare = [];
    } else {
      batch.length = 0;
      this.#spare = batch;
    }
    this.#batch = null;
    this[kStats].callbacks += n;
    return true;
  }

  #pauseBatch(next: number): false {
    this.#inBatch = false;
    this.#batchIndex = next;
    this.#hops = 0;
    queueMicrotask(this.#resumeBatch);
    return false;
  }

  #resumeBatch = (): void => {
    const task = this.#woken!;
    if (!task.done() && task[kLastWait] === this.#wokenBy && ++this.#hops < MAX_WAKE_HOPS) {
      queueMicrotask(this.#resumeBatch);
      return;
    }
    this.#woken = null;
    this.#wokenBy = null;
    if (this.#runBatch()) this.#afterIteration();
  };

  /** @internal A callback of the running batch settled the await `task` is suspended on. */
  [kWoke](task: Task<unknown>, by: unknown): void {
    if (!this.#inBatch) return;
    this.#woken = task;
    this.#wokenBy = by;
  }

  /** @internal The last slow callbacks reported (for `protoloop top`), oldest first. */
  recentSlowCallbacks(): readonly { what: string; durationMs: number; at: number }[] {
    return this.#recentSlow;
  }

  /**
   * @internal Reports a callback or task step that blocked the loop: always on
   * `protoloop:callback:slow` and NODE_DEBUG=protoloop; in debug mode also as
   * `Executing <what> took 1.234 seconds`, through the exception handler with
   * `level: 'warn'` and `durationMs`. `context` names the object (`handle`, `task`,
   * `protocol`, ...) and its `sourceTraceback`.
   */
  reportSlow(what: string, ms: number, context: Record<string, unknown> = {}): void {
    this[kStats].slowCallbacks++;
    const recent = this.#recentSlow;
    if (recent.length === RECENT_SLOW) recent.shift();
    recent.push({ what, durationMs: ms, at: this.time() });
    if (callbackSlowChannel.hasSubscribers) callbackSlowChannel.publish({ what, durationMs: ms, loop: this, ...context });
    if (nodeDebugEnabled) nodeDebug('%s: slow callback: %s took %s ms', this.#name, what, ms.toFixed(1));
    // Outside debug mode (timed for a subscriber or NODE_DEBUG) nothing is logged.
    if (!this.#debug) return;
    this.callExceptionHandler({
      message: `Executing ${what} took ${(ms / 1000).toFixed(3)} seconds`,
      ...context,
      level: 'warn',
      durationMs: ms,
      hint: hints.slow,
    });
  }

  #finishStop(): void {
    stopStepTiming(this);
    if (nodeDebugEnabled) nodeDebug('%s: stop after %d iterations', this.#name, this[kStats].iterations);
    this.#stopping = false;
    this.#state = 'idle';
    setActiveLoop(null);
    this.#wakeScheduled = false;
    this.#clearNativeTimer();
    if (this.#keepalive !== null) {
      clearInterval(this.#keepalive);
      this.#keepalive = null;
    }
    const resolve = this.#onStopped;
    this.#onStopped = null;
    resolve?.();
  }

  #armTimer(): void {
    const timers = this.#timers;
    let head = timers.peek();
    while (head !== undefined && head.cancelled()) {
      timers.pop();
      if (head[kScheduled]) this.#cancelledTimers--;
      head[kScheduled] = false;
      head = timers.peek();
    }
    if (head === undefined) {
      this.#clearNativeTimer();
      return;
    }
    const when = head.heapWhen;
    if (this.#nativeTimer !== null && this.#nativeWhen <= when) return;
    this.#clearNativeTimer();
    const delay = Math.max(0, Math.ceil(when - this.#clock()));
    this.#nativeWhen = when;
    this.#nativeTimer = this.#driver.arm(when, delay, this.#onNativeTimerOutside);
  }

  #onNativeTimer = (): void => {
    this.#nativeTimer = null;
    this.#nativeWhen = Infinity;
    if (this.#state !== 'running' || this.#wakeScheduled) return;
    this.#wakeScheduled = true;
    this.#runBurst();
  };

  // The native wake-ups, bound once outside any task: they run in no task's async
  // context whoever scheduled them, with no closure or context copy per wake-up.
  #runBurstOutside = outsideTask(() => AsyncResource.bind(this.#runBurst));
  #runIoBurstOutside = outsideTask(() => AsyncResource.bind(this.#runIoBurst));
  #onNativeTimerOutside = outsideTask(() => AsyncResource.bind(this.#onNativeTimer));

  #clearNativeTimer(): void {
    if (this.#nativeTimer !== null) {
      this.#driver.disarm(this.#nativeTimer);
      this.#nativeTimer = null;
    }
    this.#nativeWhen = Infinity;
  }

  // ------------------------------------------------------- futures, tasks

  /** Creates a {@link Future} bound to this loop; `description` names what it stands for in task listings. */
  createFuture<T = unknown>(description?: string): Future<T> {
    return new Future<T>(this, description);
  }

  /**
   * Wraps `target` in a {@link Task} scheduled on this loop. `target` is a
   * {@link Coroutine} or a function returning a promise; a promise that is already
   * running cannot be cancelled and is refused with {@link InvalidArgumentError}.
   */
  createTask<T>(target: TaskTarget<T>, options?: TaskOptions): Task<T> {
    if (this.#state === 'closed') throw new LoopClosedError();
    if (!(target instanceof Coroutine) && typeof target !== 'function') {
      const what = target !== null && typeof (target as { then?: unknown })?.then === 'function' ? 'a promise, which is already running and cannot be cancelled; pass () => work() instead' : inspect(target);
      throw new InvalidArgumentError(`createTask() needs a Coroutine or a function returning a promise, got ${what}`);
    }
    if (options !== undefined && (options === null || typeof options !== 'object')) throw new InvalidArgumentError('createTask() options must be an object');
    if (this.#taskFactory !== null) return this.#taskFactory(this, target, options);
    return new Task<T>(this, target, options);
  }

  /**
   * @internal `createTask(() => fn(...args), options)` without the closure: with the
   * default factory only the first step's handle holds `args` (a server's client task
   * keeps nothing for them); a task factory gets the closure.
   */
  [kCreateTaskCalling]<T>(fn: (...args: any[]) => PromiseLike<T> | T, args: readonly unknown[], options?: TaskOptions): Task<T> {
    if (this.#taskFactory !== null || this.#state === 'closed') return this.createTask(() => fn(...args), options);
    return new Task<T>(this, fn as TaskTarget<T>, options, args);
  }

  /** Sets the factory `createTask()` uses (null restores the default). See `eagerTaskFactory`. */
  setTaskFactory(factory: TaskFactory | null): void {
    if (factory !== null && typeof factory !== 'function') throw new InvalidArgumentError('task factory must be a function or null');
    this.#taskFactory = factory;
  }

  /** The factory `createTask()` uses, or null for the default. */
  getTaskFactory(): TaskFactory | null {
    return this.#taskFactory;
  }

  /** @internal */
  [kTaskStarted](task: Task<unknown>): void {
    const tail = this.#pendingTail;
    task[kPendingPrev] = tail;
    task[kPendingNext] = null;
    if (tail === null) this.#pendingHead = task;
    else tail[kPendingNext] = task;
    this.#pendingTail = task;
    this.#pendingCount++;
    this[kStats].tasksCreated++;
  }

  /** @internal Idempotent. */
  [kTaskDone](task: Task<unknown>): void {
    const prev = task[kPendingPrev];
    const next = task[kPendingNext];
    if (prev === null ? this.#pendingHead !== task : prev[kPendingNext] !== task) return; // not in the list
    if (prev === null) this.#pendingHead = next;
    else prev[kPendingNext] = next;
    if (next === null) this.#pendingTail = prev;
    else next[kPendingPrev] = prev;
    task[kPendingPrev] = task[kPendingNext] = null;
    this.#pendingCount--;
  }

  /** The tasks of this loop that are not done. A new set each call. */
  pendingTasks(): Set<Task<unknown>> {
    const tasks = new Set<Task<unknown>>();
    for (let task = this.#pendingHead; task !== null; task = task[kPendingNext]) tasks.add(task);
    return tasks;
  }

  // ----------------------------------------------------- errors and debug

  /** Sets the handler for errors no one else caught (null restores the default). */
  setExceptionHandler(handler: ExceptionHandler | null): void {
    if (handler !== null && typeof handler !== 'function') throw new InvalidArgumentError('exception handler must be a function or null');
    this.#exceptionHandler = handler;
  }

  /** The handler set with `setExceptionHandler()`, or null. */
  getExceptionHandler(): ExceptionHandler | null {
    return this.#exceptionHandler;
  }

  /** Routes `context` to the exception handler (or the default one). Never throws. */
  callExceptionHandler(context: ExceptionContext): void {
    const handler = this.#exceptionHandler;
    if (handler === null) {
      try {
        this.defaultExceptionHandler(context);
      } catch (exception) {
        process.stderr.write(`protoloop: the default exception handler failed: ${String(exception)}\n`);
      }
      return;
    }
    try {
      handler(this, context);
    } catch (exception) {
      try {
        this.defaultExceptionHandler({ message: 'Unhandled error in exception handler', exception, context: inspect(context, { depth: 1 }) });
      } catch {
        // nothing left to report with
      }
    }
  }

  /**
   * The default handler: logs `message` at `context.level` (default error), then one
   * line per context key (the objects involved first), the creation stack
   * (`sourceTraceback`, "Object created at (most recent call last):"), the `hint`,
   * and the exception's stack.
   */
  defaultExceptionHandler(context: ExceptionContext): void {
    this.#logger[contextLevel(context)]({ err: context.exception }, formatExceptionContext(context, this.#debug));
  }

  /** Whether debug mode is on. */
  getDebug(): boolean {
    return this.#debug;
  }

  /** Turns debug mode on or off (the logger follows: debug level when on). */
  setDebug(enabled: boolean): void {
    this.#debug = Boolean(enabled);
    setLevel(this.#logger, this.#debug ? 'debug' : 'info');
    if (this.#state === 'running') {
      if (this.#debug) startStepTiming(this);
      else stopStepTiming(this);
    }
  }

  /** The loop's logger (named `protoloop`). */
  get logger(): Logger {
    return this.#logger;
  }

  /** @internal The current stack, for objects created in debug mode. */
  captureSourceTraceback(): RawStack {
    return captureRawStack();
  }

  /** Counters of the loop's work. */
  stats(): LoopStats {
    const s = this[kStats];
    return {
      iterations: s.iterations,
      callbacks: s.callbacks,
      tasksCreated: s.tasksCreated,
      tasksPending: this.#pendingCount,
      timersScheduled: this.#timers.size - this.#cancelledTimers,
      slowCallbacks: s.slowCallbacks,
      readyQueue: this.#ready.length,
      openResources: openResourceCounts(this),
    };
  }

  // ------------------------------------------------------------------- I/O
  // The methods of the areas above the loop, documented in contract.ts. Each area's
  // code is loaded on first use (lazy.ts), so src/loop imports no higher folder at run
  // time. Async methods reject (never throw) whether or not the area was loaded yet;
  // sync methods call the loaded module at once, without an await.

  createConnection<P extends StreamProtocol>(protocolFactory: () => P, options: ConnectionOptions): Promise<[SocketTransport, P]> {
    return netArea.use((m) => m.createConnection(this, protocolFactory, options));
  }

  createUnixConnection<P extends StreamProtocol>(protocolFactory: () => P, path: string, options?: UnixConnectionOptions): Promise<[SocketTransport, P]> {
    return netArea.use((m) => m.createUnixConnection(this, protocolFactory, path, options));
  }

  createServer(protocolFactory: () => StreamProtocol, options?: ServerOptions): Promise<Server> {
    return netArea.use((m) => m.createServer(this, protocolFactory, options));
  }

  createUnixServer(protocolFactory: () => StreamProtocol, path: string, options?: UnixServerOptions): Promise<Server> {
    return netArea.use((m) => m.createUnixServer(this, protocolFactory, path, options));
  }

  connectAcceptedSocket<P extends StreamProtocol>(protocolFactory: () => P, socket: net.Socket, options?: AcceptedSocketOptions): Promise<[SocketTransport, P]> {
    return netArea.use((m) => m.connectAcceptedSocket(this, protocolFactory, socket, options));
  }

  createDatagramEndpoint<P extends DatagramProtocol>(protocolFactory: () => P, options?: DatagramEndpointOptions): Promise<[DatagramSocketTransport, P]> {
    return netArea.use((m) => m.createDatagramEndpoint(this, protocolFactory, options));
  }

  startTls(transport: Transport, protocol: StreamProtocol, options?: StartTlsOptions): Promise<SocketTransport> {
    return netArea.use((m) => m.startTls(this, transport, protocol, options));
  }

  sendfile(transport: Transport, file: string | FileHandle | number, options?: SendfileOptions): Promise<number> {
    return netArea.use((m) => m.sendfile(this, transport, file, options));
  }

  createWebSocketServer(protocolFactory: () => MessageProtocol, options?: WebSocketServerOptions): Promise<WebSocketServer> {
    return webSocketArea.use((m) => m.createWebSocketServer(this, protocolFactory, options));
  }

  createWebSocketConnection<P extends MessageProtocol>(protocolFactory: () => P, url: string | URL, options?: WebSocketConnectOptions): Promise<[WebSocketTransport, P]> {
    return webSocketArea.use((m) => m.createWebSocketConnection(this, protocolFactory, url, options));
  }

  subprocessExec<P extends BaseProtocol>(protocolFactory: () => P, file: string, args?: readonly string[], options?: SubprocessOptions): Promise<[SubprocessTransport, P]> {
    assertMainThread('loop.subprocessExec()');
    return subprocessArea.use((m) => m.subprocessExec(this, protocolFactory, file, args, options));
  }

  subprocessShell<P extends BaseProtocol>(protocolFactory: () => P, command: string, options?: SubprocessOptions): Promise<[SubprocessTransport, P]> {
    assertMainThread('loop.subprocessShell()');
    return subprocessArea.use((m) => m.subprocessShell(this, protocolFactory, command, options));
  }

  runInExecutor<A extends unknown[], R>(executor: Executor | null, task: WorkerTask<A, R>, ...args: A): Future<R> {
    if (this.#state === 'closed') throw new LoopClosedError();
    const m = executorsArea.value;
    if (m !== undefined) return m.runInExecutor(this, executor, task, args);
    return deferredFuture(this, executorsArea.load(), `runInExecutor(${String(task?.name)})`, (mod) => mod.runInExecutor(this, executor, task, args));
  }

  setDefaultExecutor(executor: Executor): void {
    const m = executorsArea.value;
    if (m !== undefined) {
      m.setDefaultExecutor(this, executor);
      return;
    }
    // Checked here as the executors module checks it, so that the first call throws too.
    if (executor === null || typeof executor !== 'object' || typeof executor.submit !== 'function' || typeof executor.shutdown !== 'function') {
      throw new InvalidArgumentError('setDefaultExecutor() needs an Executor (a ThreadPoolExecutor, a ProcessPoolExecutor)');
    }
    // Calls made while the module loads run in call order (one shared load promise).
    executorsArea.load().then(
      (mod) => mod.setDefaultExecutor(this, executor),
      (exception: unknown) => this.callExceptionHandler({ message: 'setDefaultExecutor(): the executors module failed to load', exception }),
    );
  }

  shutdownDefaultExecutor(timeout?: number): Promise<void> {
    return executorsArea.use((m) => m.shutdownDefaultExecutor(this, timeout));
  }

  exposeThreadsafe(name: string, fn: ThreadsafeHandler): void {
    if (typeof name !== 'string' || name === '') throw new InvalidArgumentError('exposeThreadsafe() needs a non-empty handler name');
    if (typeof fn !== 'function') throw new InvalidArgumentError(`exposeThreadsafe("${name}") needs a function, got ${inspect(fn)}`);
    if (this.#state === 'closed') throw new LoopClosedError();
    this[kThreadsafeHandlers].set(name, fn);
  }

  unexposeThreadsafe(name: string): boolean {
    return this[kThreadsafeHandlers].delete(name);
  }

  bridgeEndpoint(): MessagePort {
    if (this.#state === 'closed') throw new LoopClosedError();
    // The channel's events must never inherit the context of the task that asked for it.
    const { port1, port2 } = outsideTask(() => new MessageChannel());
    const m = bridgeArea.value;
    if (m !== undefined) {
      m.attachEndpoint(this, port1);
    } else {
      // The worker's messages wait in port1 until the bridge server listens.
      bridgeArea.load().then(
        (mod) => outsideTask(() => mod.attachEndpoint(this, port1)),
        (exception: unknown) => {
          port1.close();
          this.callExceptionHandler({ message: 'bridgeEndpoint(): the thread bridge module failed to load', exception });
        },
      );
    }
    return port2;
  }

  addSignalHandler<A extends unknown[]>(sig: NodeJS.Signals | number, callback: (...args: A) => unknown, ...args: A): void {
    addSignalHandler(this, sig, callback as (...a: unknown[]) => unknown, args);
  }

  removeSignalHandler(sig: NodeJS.Signals | number): boolean {
    return removeSignalHandler(this, sig);
  }

  toString(): string {
    return `<Loop ${this.#name} ${this.#state}${this.#stopping ? ' stopping' : ''} debug=${this.#debug}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * The future of a sync method's first call, made while its area's module loads: once
 * loaded, `start()` makes the real future, whose outcome this one takes; cancelling
 * this one cancels that one (or, before it exists, keeps it from starting).
 */
function deferredFuture<M, R>(loop: Loop, loading: Promise<M>, description: string, start: (m: M) => Future<R>): Future<R> {
  const outer = new Future<R>(loop, description);
  loading.then(
    (m) => {
      if (outer.done() || loop.isClosed()) return;
      let inner: Future<R>;
      try {
        inner = start(m);
      } catch (exception) {
        outer.setException(exception);
        return;
      }
      outer.addDoneCallback(() => {
        if (outer.cancelled()) inner.cancel();
      });
      inner.addDoneCallback(() => {
        if (outer.done()) return;
        if (inner.cancelled()) outer.cancel();
        else if (inner.exception() !== null) outer.setException(inner.exception());
        else outer.setResult(inner.result());
      });
    },
    (exception: unknown) => {
      if (!outer.done() && !loop.isClosed()) outer.setException(exception);
    },
  );
  return outer;
}
