/**
 * Task: a Future that drives a coroutine or async function on the loop.
 *
 * ```
 * created --(first step via callSoon, or eagerly)--> running --return--> finished (result)
 *                                                            --throw-->  finished (exception)
 *                                                            --CancelledError escapes--> cancelled
 * ```
 *
 * Cancellation is asyncio's, per cancel scope (scope.ts): `cancel()` cancels every
 * future the task is awaiting, in every branch of its code, so those awaits throw
 * {@link CancelledError}; if the task awaits nothing of protoloop's (it is in a plain
 * promise), the request is remembered and the next protoloop await throws.
 * `task.signal` aborts at the same moment, so foreign APIs can stop too.
 * @module
 */
import { AsyncResource } from 'node:async_hooks';
import { inspect } from 'node:util';
import { CancelledError, InvalidArgumentError, InvalidStateError } from '../errors.ts';
import { taskCreatedChannel, taskDoneChannel, type TaskDoneMessage } from './channels.ts';
import { Coroutine } from './coroutine.ts';
import { Future } from './future.ts';
import { taskStorage } from './internal.ts';
import { CancelScope } from './scope.ts';
import { kCallSoon, kCancelledError, kDescribe, kDescribeCall, kLastWait, kStats, kLogDestroyPending, kNameSource, kPendingNext, kPendingPrev, kRawStack, kSettleSite, kSourceTraceback, kStart, kTaskDone, kTaskName, kTaskStarted } from './symbols.ts';
import type { Loop } from './loop.ts';

/** What a task can run: a lazy {@link Coroutine}, or a function returning a promise (or a value). */
export type TaskTarget<T> = Coroutine<T> | (() => PromiseLike<T> | T);

/** Options of `loop.createTask()`. */
export interface TaskOptions {
  /** The task's name; default `Task-N`. */
  name?: string;
  /** Run the first step synchronously, now, if the loop is running (Python 3.12's eager tasks). */
  eagerStart?: boolean;
  /** @internal Instead of `name`: an object that makes the name when it is first asked for. */
  [kNameSource]?: TaskNameSource;
}

/** @internal See TaskOptions[kNameSource]. */
export interface TaskNameSource {
  [kTaskName](): string;
}

/** Options of `task.getStack()` and `task.printStack()`. */
export interface StackOptions {
  /** At most this many entries, outermost first. Default: the whole chain. */
  limit?: number;
  /** Where `printStack()` writes. Default: `process.stderr`. */
  file?: { write(text: string): unknown };
}

let taskCounter = 0;

function invoke<T>(target: TaskTarget<T>, args: readonly unknown[] | undefined): PromiseLike<T> | T {
  if (target instanceof Coroutine) return target[kStart]();
  return args === undefined ? target() : (target as (...a: readonly unknown[]) => PromiseLike<T> | T)(...args);
}

/**
 * Whether a native promise has settled, read synchronously. JavaScript has no API for
 * this; util.inspect shows `<pending>` for a pending promise (strings are cut to
 * nothing, so a value cannot fake it). Used only when an eager task is cancelled.
 */
function promiseSettled(p: PromiseLike<unknown>): boolean {
  if (!(p instanceof Promise)) return false;
  return !inspect(p, { depth: 0, customInspect: false, maxStringLength: 0, maxArrayLength: 0, breakLength: Infinity }).includes('<pending>');
}

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return x !== null && (typeof x === 'object' || typeof x === 'function') && typeof (x as { then?: unknown }).then === 'function';
}

/** The eager task whose first step runs now, inside its constructor (a flag less per task). */
let startingEagerly: Task<unknown> | null = null;

/** A coroutine or async function scheduled on a loop. Create one with `loop.createTask()`. */
export class Task<T = unknown> extends Future<T> {
  #target: TaskTarget<T>;
  // The name, or what makes it on demand (an id for `Task-N`, or a name source).
  #name: string | number | TaskNameSource;
  // The root of the task's cancel scopes: what taskStorage holds while the body runs
  // outside any timeout/taskGroup; it keeps the request count and the pending awaits.
  readonly #root: CancelScope;
  // Before the first step: the creator's async context (asyncio copies the creator's
  // contextvars), which the first step runs in, so AsyncLocalStorage stores set around
  // createTask() are visible in the task; awaits carry the context from there. After
  // it, in an eager task, the body's promise until the task finishes: once it has
  // settled the task is finished in all but name (the settlement reaches it a microtask
  // later), so cancel() must not turn its result into a cancellation. One slot for both.
  #scope: AsyncResource | PromiseLike<T> | null;
  #targetName(): string {
    const t = this.#target;
    return t instanceof Coroutine ? t.name : t.name || 'anonymous';
  }
  /** @internal Whether the loop reports this task if it is destroyed pending (true on the prototype: a slot less per task). */
  declare [kLogDestroyPending]: boolean;
  /** @internal Neighbours in the loop's pending list (see Loop[kTaskStarted]). */
  [kPendingPrev]: Task<unknown> | null = null;
  /** @internal */
  [kPendingNext]: Task<unknown> | null = null;
  /** @internal The task's last then() registration (its suspension point), see loop.ts. */
  [kLastWait]: unknown = null;
  /** The loop time (ms) at which the task was created. */
  readonly createdAt: number;
  /** A number unique among this thread's tasks, in creation order. */
  readonly id: number;
  /** The task that created this one (null when created from a plain callback or outside the loop). */
  readonly parent: Task<unknown> | null;

  /**
   * @internal Use `loop.createTask()`. `args` (internal): what the first step calls a
   * function target with; only the step's handle holds them, so a task that runs
   * `cb(reader, writer)` keeps no closure or bound function for it.
   */
  constructor(loop: Loop, target: TaskTarget<T>, options?: TaskOptions, args?: readonly unknown[]) {
    super(loop);
    this.#target = target;
    this.id = ++taskCounter;
    this.#name = options?.name ?? options?.[kNameSource] ?? this.id;
    this.createdAt = loop.time();
    this.parent = taskStorage.getStore()?.task ?? null;
    this.#root = new CancelScope(this as Task<unknown>, null);
    this.#scope = new AsyncResource('protoloop.Task', { requireManualDestroy: true });
    loop[kTaskStarted](this);
    if (taskCreatedChannel.hasSubscribers) taskCreatedChannel.publish({ task: this, id: this.id, name: this.getName(), parentId: this.parent?.id ?? null, loop });
    if (options?.eagerStart === true && loop.isRunning()) {
      const outer = startingEagerly;
      startingEagerly = this as Task<unknown>;
      try {
        Task.#step(this, args);
      } finally {
        startingEagerly = outer;
      }
    } else loop[kCallSoon](Task.#step, this, args, 2, this[kRawStack] ?? null); // the step's call site is the task's
  }

  /** The task's name (`Task-N` unless one was given). */
  getName(): string {
    // The default name is built on demand: most tasks are never asked for it.
    const name = this.#name;
    if (typeof name === 'string') return name;
    return (this.#name = typeof name === 'number' ? `Task-${name}` : String(name[kTaskName]()));
  }

  /** Renames the task. */
  setName(name: string): void {
    this.#name = String(name);
  }

  /** The coroutine or function the task runs. */
  getCoro(): TaskTarget<T> {
    return this.#target;
  }

  /**
   * An AbortSignal aborted when the task is cancelled, with the {@link CancelledError}
   * as its reason. Pass it to foreign APIs (fetch, undici, execa) so they stop too.
   */
  get signal(): AbortSignal {
    const root = this.#root;
    if (root.abortReason === null && this.cancelled()) root.abort(this.makeCancelledError());
    return root.signal;
  }

  /**
   * Requests cancellation: every future the task awaits, in every branch of its code
   * (Promise.all, timeouts, task groups), is cancelled, so those awaits throw
   * {@link CancelledError}; if it awaits nothing of protoloop's, the next protoloop
   * await throws. Returns false if the task is done. Each call counts (`cancelling()`).
   */
  override cancel(msg?: string): boolean {
    if (this.done()) return super.cancel(msg); // false; silences a never-retrieved exception
    const body = this.#scope;
    if (body !== null && !(body instanceof AsyncResource) && promiseSettled(body)) return false;
    // The awaited futures stay recorded: one may be a task that swallows the
    // cancellation, to be cancelled again by the next request.
    this.#root.cancel(msg);
    return true;
  }

  /** The scope of this task whose code is running now, or its root from outside. */
  #scopeHere(): CancelScope {
    const s = taskStorage.getStore();
    return s !== undefined && s.task === (this as Task<unknown>) ? s : this.#root;
  }

  /**
   * How many cancellation requests are pending (`cancel()` calls minus `uncancel()`
   * calls). Called from the task's own code inside a `timeout()` or `taskGroup()`, the
   * requests of those scopes count too (those that reach the code running now); from
   * anywhere else, the task's own requests only.
   */
  cancelling(): number {
    return this.#scopeHere().cancelling();
  }

  /**
   * Withdraws one cancellation request (the innermost that reaches the code running
   * now, see {@link cancelling}); returns the remaining count. At zero a pending
   * request is dropped.
   */
  uncancel(): number {
    return this.#scopeHere().uncancelInnermost();
  }

  /** Tasks complete themselves: {@link InvalidStateError}. */
  /** @internal A task settles from its own steps: no user frame to capture for its done callbacks. */
  override [kSettleSite](): null {
    return null;
  }

  override setResult(_value: T): void {
    throw new InvalidStateError('Task does not support setResult(): it completes when its code returns');
  }

  /** Tasks complete themselves: {@link InvalidStateError}. */
  override setException(_exception: unknown): void {
    throw new InvalidStateError('Task does not support setException(): it completes when its code throws');
  }

  /**
   * A future this task is awaiting now, if any. With several awaits pending at once
   * (Promise.all), the most recent of the innermost scope.
   */
  awaiting(): Future<unknown> | null {
    return this.done() ? null : this.#root.anyPending();
  }

  static {
    (this.prototype as { [kLogDestroyPending]: boolean })[kLogDestroyPending] = true;
  }

  static {
    // Reports name a task step's handle by the task, not by this function.
    (this.#step as { [kDescribeCall]?: unknown })[kDescribeCall] = (args: readonly unknown[]) => args[0];
  }

  static #step<T>(task: Task<T>, args: readonly unknown[] | undefined): void {
    if (task.done()) return;
    const scope = task.#scope as AsyncResource;
    task.#scope = null;
    task.getLoop()[kStats].taskSteps++;
    scope.runInAsyncScope(Task.#firstStep, null, task, args);
  }

  /** Runs in the creator's context; marks it as this task's and starts the body. */
  static #firstStep<T>(task: Task<T>, args: readonly unknown[] | undefined): void {
    const target = task.#target;
    const early = task.#root.takeOwnPending();
    if (early !== null) {
      if (target instanceof Coroutine) target.close();
      task.#finishCancelled(early.message);
      return;
    }
    // runInAsyncScope restores the loop's context afterwards; enterWith only changes
    // the context of this step and of the continuations it creates.
    taskStorage.enterWith(task.#root);
    let result: PromiseLike<T> | T;
    try {
      result = invoke(target, args);
    } catch (e) {
      task.#finishError(e);
      return;
    }
    if (isThenable(result)) {
      if (startingEagerly === (task as Task<unknown>)) task.#scope = result;
      if (result instanceof Promise && result.constructor === Promise) {
        // A native promise runs its reactions in the async context current at then():
        // this task's (entered above), so the handlers find the task there and need no
        // closure (two closures and their context less per running task).
        result.then(Task.#bodyOk, Task.#bodyError);
      } else {
        result.then(
          (v) => task.#finishOk(v),
          (e: unknown) => task.#finishError(e),
        );
      }
    } else {
      task.#finishOk(result);
    }
  }

  static #bodyOk(this: void, value: unknown): void {
    Task.#bodyTask().#finishOk(value);
  }

  static #bodyError(this: void, e: unknown): void {
    Task.#bodyTask().#finishError(e);
  }

  /** The task whose body promise settled (see #firstStep): the one of the current context. */
  static #bodyTask(): Task<unknown> {
    const task = taskStorage.getStore()?.task;
    if (task === undefined) throw new InvalidStateError('protoloop: a task body settled outside its task context');
    return task;
  }

  #finishOk(value: T): void {
    if (this.done()) return;
    const late = this.#root.takeOwnPending();
    if (late !== null) {
      this.#finishCancelled(late.message);
      return;
    }
    this.#release();
    super.setResult(value);
    if (taskDoneChannel.hasSubscribers) this.#publishDone('result', undefined);
  }

  #finishError(e: unknown): void {
    if (this.done()) return;
    if (e instanceof CancelledError) {
      this.#finishCancelled(e.message, e);
      return;
    }
    this.#release();
    super.setException(e);
    if (taskDoneChannel.hasSubscribers) this.#publishDone('exception', e);
  }

  #finishCancelled(msg: string | undefined, error?: CancelledError): void {
    this.#release();
    super.cancel(msg);
    // Awaiting the task re-raises this very error (asyncio's _cancelled_exc).
    if (error !== undefined) this[kCancelledError] = error;
    if (taskDoneChannel.hasSubscribers) this.#publishDone('cancelled', undefined);
  }

  #publishDone(state: TaskDoneMessage['state'], exception: unknown): void {
    const loop = this.getLoop();
    const message: TaskDoneMessage = { task: this, id: this.id, name: this.getName(), parentId: this.parent?.id ?? null, loop, state, durationMs: loop.time() - this.createdAt };
    if (state === 'exception') message.exception = exception;
    taskDoneChannel.publish(message);
  }

  #release(): void {
    this.#root.reset();
    this.#scope = null;
    this.getLoop()[kTaskDone](this as Task<unknown>);
  }

  protected override describeState(): string {
    const parts = [`name=${JSON.stringify(this.getName())}`, `coro=${this.#targetName()}()`];
    const base = super.describeState();
    if (base) parts.push(base);
    const waiting = this.awaiting();
    if (waiting !== null) parts.push(`wait_for=${waiting[kDescribe]()}`);
    return parts.join(' ');
  }

  /**
   * The await chain of this task, outermost first, one line per entry: this task, what
   * it awaits, and when that is a task, what that one awaits, and so on down to a
   * plain future (`sleep(100 ms)`, `Lock.acquire()`, ...). It is the data `protoloop ps`
   * shows; in debug mode each task's line ends with where it was created. A JavaScript
   * task has no frames to show between two awaits (asyncio's `get_stack()` shows the
   * coroutine's frames). A done task's chain is the task alone.
   */
  getStack(options: StackOptions = {}): string[] {
    const limit = options.limit ?? Infinity;
    if (typeof limit !== 'number' || Number.isNaN(limit) || limit < 0) throw new InvalidArgumentError('getStack() limit must be a number >= 0');
    const lines: string[] = [];
    const seen = new Set<Future<unknown>>();
    let cur: Future<unknown> | null = this as Task<unknown>;
    while (cur !== null && lines.length < limit && !seen.has(cur)) {
      seen.add(cur);
      if (cur instanceof Task) {
        const site = cur[kSourceTraceback]?.split('\n').at(-1)?.trim();
        const next: Future<unknown> | null = cur.done() ? null : cur.awaiting();
        lines.push(`Task ${JSON.stringify(cur.getName())} ${cur.done() ? cur.state : next !== null ? 'awaiting' : 'running'}${site ? ` created ${site}` : ''}`);
        cur = next;
      } else {
        lines.push(cur.description !== undefined ? `${cur.description} (${cur.constructor.name} ${cur.state})` : String(cur));
        cur = null;
      }
    }
    return lines;
  }

  /** Writes {@link getStack}'s lines under a header to `options.file` (default stderr). */
  printStack(options: StackOptions = {}): void {
    const lines = this.getStack(options);
    const out = options.file ?? process.stderr;
    out.write(`Stack for ${this.toString()} (outermost await first):\n${lines.map((l) => `  ${l}\n`).join('')}`);
  }

  /** @internal The creation site in debug mode. */
  get sourceTraceback(): string | undefined {
    return this[kSourceTraceback];
  }
}
