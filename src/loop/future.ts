/**
 * Future: a result that will exist later, bound to one loop.
 *
 * ```
 * pending --setResult()--> finished (result)
 *         --setException()--> finished (exception)
 *         --cancel()--> cancelled
 * ```
 *
 * Done callbacks are scheduled with `callSoon` once the future is done. A future is
 * a thenable: `await fut` waits for it; inside a task, cancelling the task cancels
 * the future the task is awaiting (asyncio's rule), so the await throws
 * {@link CancelledError}.
 * @module
 */
import { inspect } from 'node:util';
import { CancelledError, InvalidStateError } from '../errors.ts';
import { formatStack, taskStorage, type RawStack } from './internal.ts';
import { kAddDoneHandler, kAwait, kCallSoon, kCancelledError, kOnDone, kDescribe, kDescribeCall, kLastWait, kMakeResult, kPeekException, kRawStack, kSetResultLazy, kSetResultNow, kSettleSite, kStats, kSourceTraceback, kUnretrieved, kWoke } from './symbols.ts';
import { hints } from './debug.ts';
import type { ExceptionContext, Loop } from './loop.ts';
import type { Task } from './task.ts';
import type { CancelScope, ScopedAwait } from './scope.ts';

/** The three states of a future, as asyncio names them. */
export type FutureState = 'pending' | 'finished' | 'cancelled';

/** A done callback: called (through `callSoon`) with the future once it is done. */
export type DoneCallback<T> = (future: Future<T>) => void;

/** @internal An object run as a done callback through its {@link kOnDone} method (see Future[kAddDoneHandler]). */
export interface DoneHandler<T> {
  [kOnDone](future: Future<T>): void;
}

/** @internal Record of an exception nobody has retrieved yet. */
export interface UnretrievedRecord {
  kind: 'Future' | 'Task';
  describe: string;
  exception: unknown;
  sourceTraceback: string | undefined;
  retrieved: boolean;
  loop: Loop;
  /** The future itself while it lives (reports at loop close pass the object). */
  ref: WeakRef<Future<any>>;
}

/** A then() handler, as given. */
type Handler = ((value: any) => unknown) | null | undefined;
/** A promise's resolve or reject function. */
type Settle = (v: unknown) => void;

/**
 * @internal A pending `then()` registration; in task code, also the await recorded in
 * its cancel scope. This one has no handlers (`then()` with none: a stream read's await,
 * `await fut.then()` and `fut[kAwait]()` in protoloop's own code); a HandlerWaiter has them (a user's
 * `then(f, r)`, and V8's own call when it awaits a future).
 */
class Waiter implements ScopedAwait {
  readonly future: Future<any>;
  /** The promise then() returned, settled through `resolve`/`reject`. */
  readonly promise: Promise<unknown>;
  readonly resolve: Settle;
  readonly reject: Settle;
  /** The cancel scope the await is recorded in (task code only); its task is the awaiting task. */
  scope: CancelScope | undefined;
  prev: ScopedAwait | null = null;
  next: ScopedAwait | null = this; // in no list yet
  constructor(future: Future<any>, promise: Promise<unknown>, resolve: Settle, reject: Settle, scope: CancelScope | undefined) {
    this.future = future;
    this.promise = promise;
    this.resolve = resolve;
    this.reject = reject;
    this.scope = scope;
  }
}

/** @internal A then() registration with a handler (see Waiter). */
class HandlerWaiter extends Waiter {
  readonly onFulfilled: Handler;
  readonly onRejected: Handler;
  constructor(future: Future<any>, promise: Promise<unknown>, resolve: Settle, reject: Settle, scope: CancelScope | undefined, onFulfilled: Handler, onRejected: Handler) {
    super(future, promise, resolve, reject, scope);
    this.onFulfilled = onFulfilled;
    this.onRejected = onRejected;
  }
}

/** The registration then() makes: a HandlerWaiter only when there is a handler to run (a stream read's await has none). */
function newWaiter(future: Future<any>, promise: Promise<unknown>, resolve: Settle, reject: Settle, scope: CancelScope | undefined, onFulfilled: Handler, onRejected: Handler): Waiter {
  return typeof onFulfilled === 'function' || typeof onRejected === 'function'
    ? new HandlerWaiter(future, promise, resolve, reject, scope, onFulfilled, onRejected)
    : new Waiter(future, promise, resolve, reject, scope);
}

type Callback<T> = DoneCallback<T> | DoneHandler<T> | Waiter;

/** The result of a future finished with kSetResultLazy, until it is made. */
const LAZY: unique symbol = Symbol('protoloop.lazyResult');

/** Future.#unretrieved once the outcome has been read. */
const RETRIEVED: unique symbol = Symbol('protoloop.retrieved');

const unretrievedRegistry = new FinalizationRegistry<UnretrievedRecord>((rec) => reportUnretrieved(rec));

/** @internal Logs an exception that no one retrieved, once. */
export function reportUnretrieved(rec: UnretrievedRecord): void {
  if (rec.retrieved) return;
  rec.retrieved = true;
  rec.loop[kUnretrieved].delete(rec);
  const ctx: ExceptionContext = {
    message: `${rec.kind} exception was never retrieved`,
    exception: rec.exception,
    [rec.kind === 'Task' ? 'task' : 'future']: rec.ref.deref() ?? rec.describe,
    hint: rec.kind === 'Task' ? hints.taskNeverRetrieved : hints.futureNeverRetrieved,
  };
  if (rec.sourceTraceback !== undefined) ctx.sourceTraceback = rec.sourceTraceback;
  rec.loop.callExceptionHandler(ctx);
}

/** A result that will exist later. Create one with `loop.createFuture()`. */
export class Future<T = unknown> implements PromiseLike<T> {
  #loop: Loop;
  // 'failed' is 'finished' with an exception. #result holds what the state has: the
  // result, the exception, or once cancelled the message, replaced by the
  // CancelledError every await of the future throws when that is first made (once, as
  // asyncio's `_cancelled_exc`). One slot for all of them, per future.
  #state: FutureState | 'failed' = 'pending';
  #result: any = undefined;
  // The done callbacks and pending awaits: one is kept as it is (the common case:
  // a single await), several in an array (no 17-slot array per awaited future).
  #callbacks: Callback<any> | Callback<any>[] | null = null;
  // The record of an exception nobody retrieved yet, or RETRIEVED once the outcome was
  // read (or the future cancelled): then no record is ever made.
  #unretrieved: UnretrievedRecord | typeof RETRIEVED | null = null;
  /**
   * @internal Where the future was created, in debug mode (formatted when read). Set
   * only then (undefined on the prototype): a future outside debug mode has no slot for it.
   */
  declare [kRawStack]: RawStack | undefined;

  /** @internal Where the future was created (the user's frames, most recent call last), in debug mode. */
  get [kSourceTraceback](): string | undefined {
    return formatStack(this[kRawStack]);
  }

  /**
   * What the future stands for (`sleep(100 ms)`, `read()`, ...), shown by task
   * introspection. Undefined on the prototype, set on futures that have one (a task has
   * none: no slot for it per task).
   */
  declare readonly description: string | undefined;

  static {
    const proto = this.prototype as { description?: string; [kRawStack]?: RawStack };
    proto.description = undefined;
    proto[kRawStack] = undefined;
  }

  /** @internal Use `loop.createFuture()`. */
  constructor(loop: Loop, description?: string) {
    this.#loop = loop;
    if (description !== undefined) (this as { description: string }).description = description;
    if (loop.getDebug()) this[kRawStack] = loop.captureSourceTraceback();
  }

  /** The loop this future belongs to. */
  getLoop(): Loop {
    return this.#loop;
  }

  /** Whether the future is done: it has a result or an exception, or was cancelled. */
  done(): boolean {
    return this.#state !== 'pending';
  }

  /** Whether the future was cancelled. */
  cancelled(): boolean {
    return this.#state === 'cancelled';
  }

  /** @internal the state, for introspection */
  get state(): FutureState {
    const s = this.#state;
    return s === 'failed' ? 'finished' : s;
  }

  /**
   * The result. Throws the future's exception if it has one, {@link CancelledError}
   * if it was cancelled, {@link InvalidStateError} if it is still pending.
   */
  result(): T {
    if (this.#state === 'cancelled') throw this.makeCancelledError();
    if (this.#state === 'pending') throw new InvalidStateError('Result is not set.');
    this.#markRetrieved();
    if (this.#state === 'failed') throw this.#result;
    return this.#value();
  }

  /** @internal The exception, or undefined, without marking it retrieved (for the diagnostics channels). */
  [kPeekException](): unknown {
    return this.#state === 'failed' ? this.#result : undefined;
  }

  /**
   * The exception, or `null` if the future has a result. Throws {@link CancelledError}
   * if it was cancelled and {@link InvalidStateError} if it is pending.
   */
  exception(): unknown {
    if (this.#state === 'cancelled') throw this.makeCancelledError();
    if (this.#state === 'pending') throw new InvalidStateError('Exception is not set.');
    this.#markRetrieved();
    return this.#state === 'failed' ? this.#result : null;
  }

  /** Marks the future done with `value` and schedules its callbacks. {@link InvalidStateError} if it is done. */
  setResult(value: T): void {
    if (this.#state !== 'pending') throw new InvalidStateError(`invalid state: ${this.state}: ${this}`);
    this.#result = value;
    this.#state = 'finished';
    this.#scheduleCallbacks();
  }

  /**
   * @internal Finishes the future with a result that {@link kMakeResult} makes when it
   * is first read: by `result()`, or by an await as it resumes. An await whose task is
   * cancelled before it resumes makes nothing (a stream read leaves its bytes buffered).
   */
  [kSetResultLazy](): void {
    this.setResult(LAZY as T);
  }

  /** @internal Makes the result of a future finished with {@link kSetResultLazy} (subclasses). */
  protected [kMakeResult](): T {
    throw new InvalidStateError('this future has no lazy result');
  }

  #value(): T {
    const r = this.#result;
    return r === LAZY ? (this.#result = this[kMakeResult]()) : r;
  }

  /**
   * @internal Like setResult, but the awaits of this future resume now, inside the
   * running callback, instead of one callback later: `sleep(0)` yields exactly one
   * iteration, as asyncio's bare yield does. Done callbacks are still scheduled.
   */
  [kSetResultNow](value: T): void {
    if (this.#state !== 'pending') throw new InvalidStateError(`invalid state: ${this.state}: ${this}`);
    this.#result = value;
    this.#state = 'finished';
    const cbs = this.#callbacks;
    if (cbs === null) return;
    this.#callbacks = null;
    if (!Array.isArray(cbs)) this.#resumeNow(cbs);
    else for (let i = 0; i < cbs.length; i++) this.#resumeNow(cbs[i]!);
  }

  #resumeNow(cb: Callback<T>): void {
    if (cb instanceof Waiter) Future.#runCallback(this, cb);
    else this.#loop[kCallSoon](Future.#runCallback, this, cb);
  }

  #addCallback(cb: Callback<T>): void {
    const cbs = this.#callbacks;
    if (cbs === null) this.#callbacks = cb;
    else if (Array.isArray(cbs)) cbs.push(cb);
    else this.#callbacks = [cbs, cb];
  }

  /** Marks the future done with an exception and schedules its callbacks. {@link InvalidStateError} if it is done. */
  setException(exception: unknown): void {
    if (this.#state !== 'pending') throw new InvalidStateError(`invalid state: ${this.state}: ${this}`);
    this.#result = exception;
    this.#state = 'failed';
    if (this.#unretrieved !== RETRIEVED) {
      // Read the stack now: until then V8 keeps the raw frames, and with them the
      // arguments of every frame (this task among them), which would keep this future
      // alive and its "never retrieved" report from ever coming at collection.
      if (exception instanceof Error) void exception.stack;
      const rec: UnretrievedRecord = {
        kind: this.constructor.name === 'Future' ? 'Future' : 'Task',
        describe: this.toString(),
        exception,
        sourceTraceback: this[kSourceTraceback],
        retrieved: false,
        loop: this.#loop,
        ref: new WeakRef(this),
      };
      this.#unretrieved = rec;
      this.#loop[kUnretrieved].add(rec);
      unretrievedRegistry.register(this, rec, rec);
    }
    this.#scheduleCallbacks();
  }

  /**
   * Cancels the future: it becomes done and its callbacks are scheduled. Returns false
   * if it was already done. `msg` becomes the message of the {@link CancelledError}.
   */
  cancel(msg?: string): boolean {
    // asyncio: cancelling means "I am done with this future": its exception, if it
    // has one nobody retrieved, is not reported.
    this.#markRetrieved();
    if (this.#state !== 'pending') return false;
    this.#state = 'cancelled';
    this.#result = msg;
    this.#scheduleCallbacks();
    return true;
  }

  /** Adds a callback run (through `callSoon`) with this future once it is done; at once if it is done. */
  addDoneCallback(fn: DoneCallback<T>): void {
    if (this.#state !== 'pending') {
      this.#loop[kCallSoon](Future.#runCallback, this, fn);
      return;
    }
    this.#addCallback(fn);
  }

  /**
   * @internal Adds `handler` as a done callback: its {@link kOnDone} method runs (through
   * callSoon) with this future once it is done. An object that already holds what the
   * callback needs costs no closure per registration.
   */
  [kAddDoneHandler](handler: DoneHandler<T>): void {
    if (this.#state !== 'pending') this.#loop[kCallSoon](Future.#runCallback, this, handler);
    else this.#addCallback(handler);
  }

  /** Removes every registration of `fn`; returns how many were removed. */
  removeDoneCallback(fn: DoneCallback<T>): number {
    const cbs = this.#callbacks;
    if (cbs === null) return 0;
    if (!Array.isArray(cbs)) {
      if (cbs !== fn) return 0;
      this.#callbacks = null;
      return 1;
    }
    const kept = cbs.filter((c) => c !== fn);
    const removed = cbs.length - kept.length;
    this.#callbacks = kept.length === 0 ? null : kept.length === 1 ? kept[0]! : kept;
    return removed;
  }

  /**
   * Makes the future awaitable. Inside a task this also records the await in the cancel
   * scope it is made in (the task's root, or the scope of the `timeout()` /
   * `taskGroup()` callback around it), so that cancelling that scope or the task
   * cancels this future; and if the scope was cancelled while it ran foreign code, the
   * cancellation is delivered here.
   */
  then<R1 = T, R2 = never>(
    onFulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: any) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.#await(onFulfilled, onRejected, false);
  }

  /**
   * @internal `then()` without handlers, for protoloop's own code that hands the promise
   * on (a stream read returns it): made outside any task, the promise is remembered with
   * this future, so that `loop.runUntilComplete()` and `ensureFuture()` given it take the
   * future itself (see {@link futureBehind}).
   */
  [kAwait](): Promise<T> {
    return this.#await(undefined, undefined, true);
  }

  #await<R1, R2>(onFulfilled: Handler, onRejected: Handler, remember: boolean): Promise<R1 | R2> {
    this.#markRetrieved();
    let resolve!: (v: unknown) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<R1 | R2>((res, rej) => {
      resolve = res as (v: unknown) => void;
      reject = rej;
    });
    const scope = taskStorage.getStore();
    let task: Task<unknown> | undefined;
    if (scope !== undefined) {
      const current = scope.task;
      // asyncio's checks at the await: these would otherwise never settle.
      const refusal =
        (current as unknown) === this
          ? `Task cannot await on itself: ${current.getName()}`
          : current.getLoop() !== this.#loop
            ? `Task ${current.getName()} got ${this} attached to a different loop: create futures with the loop that awaits them`
            : null;
      if (refusal !== null) {
        const waiter = newWaiter(this, promise, resolve, reject, undefined, onFulfilled, onRejected);
        queueMicrotask(() => settleWaiter(waiter, false, new InvalidStateError(refusal)));
        return promise;
      }
      task = current;
    }
    const waiter = newWaiter(this, promise, resolve, reject, scope, onFulfilled, onRejected);
    if (scope === undefined && remember) outsideAwaits.set(promise, this);
    // The task's suspension point: when this waiter is settled by a loop callback, the
    // loop lets the task's step run before its next callback (see loop.ts, the batch).
    if (task !== undefined) task[kLastWait] = waiter;
    if (this.#state === 'pending') {
      this.#addCallback(waiter);
      // A cancellation requested while the task ran foreign code cancels this future.
      if (scope !== undefined) scope.awaitStarted(waiter);
    } else {
      // Already done: the await still yields once, and still delivers a pending cancellation.
      const cancelled = scope !== undefined ? scope.awaitStarted(waiter) : null;
      if (cancelled !== null) this.#loop.callSoon(settleWaiter, waiter, false, cancelled);
      else if (this.#loop.isClosed()) queueMicrotask(() => Future.#runCallback(this, waiter)); // awaited after its loop closed
      else this.#loop[kCallSoon](Future.#runCallback, this, waiter);
    }
    return promise;
  }

  /** Promise's `catch()`: `then(undefined, onRejected)`. */
  catch<R = never>(onRejected?: ((reason: any) => R | PromiseLike<R>) | null): Promise<T | R> {
    return this.then(undefined, onRejected);
  }

  /** Promise's `finally()`: runs `onFinally` once the future is done, then passes its outcome on. */
  finally(onFinally?: (() => void) | null): Promise<T> {
    if (typeof onFinally !== 'function') return this.then();
    return this.then(
      (v) => Promise.resolve(onFinally()).then(() => v),
      (e: unknown) => Promise.resolve(onFinally()).then(() => { throw e; }),
    );
  }

  /** @internal The CancelledError raised for this cancelled future. */
  makeCancelledError(): CancelledError {
    if (this.#state !== 'cancelled') return new CancelledError('the operation was cancelled');
    const r = this.#result as CancelledError | string | undefined;
    if (r instanceof CancelledError) return r;
    return (this.#result = new CancelledError(r ?? 'the operation was cancelled'));
  }

  /** @internal The error a cancelled task ended with: awaiting the task re-raises this very instance. */
  set [kCancelledError](e: CancelledError) {
    if (this.#state === 'cancelled') this.#result = e;
  }

  /** @internal What a task inspector prints for an awaited future. */
  [kDescribe](): string {
    return this.toString();
  }

  #markRetrieved(): void {
    const rec = this.#unretrieved;
    if (rec === RETRIEVED) return;
    this.#unretrieved = RETRIEVED;
    if (rec !== null) {
      rec.retrieved = true;
      this.#loop[kUnretrieved].delete(rec);
      unretrievedRegistry.unregister(rec);
    }
  }

  #scheduleCallbacks(): void {
    const cbs = this.#callbacks;
    if (cbs === null) return;
    this.#callbacks = null;
    const loop = this.#loop;
    if (loop.isClosed()) {
      // Nothing runs on a closed loop, but an await made before close() must still
      // settle (awaiting a done future after close works the same way).
      for (const cb of Array.isArray(cbs) ? cbs : [cbs]) {
        if (cb instanceof Waiter) queueMicrotask(() => Future.#runCallback(this, cb));
      }
      return;
    }
    const site = this[kSettleSite]();
    if (!Array.isArray(cbs)) loop[kCallSoon](Future.#runCallback, this, cbs, 2, site);
    else for (let i = 0; i < cbs.length; i++) loop[kCallSoon](Future.#runCallback, this, cbs[i], 2, site);
  }

  /**
   * @internal The call site the done callbacks are scheduled from: in debug mode one
   * capture of the settling call, shared by all of them. A Task settles from its own
   * steps, where no user frame is on the stack, and answers null (nothing to capture).
   */
  [kSettleSite](): RawStack | null | undefined {
    return this.#loop.getDebug() ? this.#loop.captureSourceTraceback() : undefined;
  }

  static {
    (this.#runCallback as { [kDescribeCall]?: unknown })[kDescribeCall] = describeRunCallback;
  }

  static #runCallback<T>(fut: Future<T>, cb: Callback<T>): void {
    if (!(cb instanceof Waiter)) {
      if (typeof cb === 'function') cb(fut);
      else cb[kOnDone](fut);
      return;
    }
    let cancelled: CancelledError | null = null;
    const scope = cb.scope;
    if (scope !== undefined) {
      cancelled = scope.awaitResumed(cb);
      fut.#loop[kStats].taskSteps++;
      // This settles the await the task is suspended on: its step runs next.
      const task = scope.task;
      if (task[kLastWait] === cb) fut.#loop[kWoke](task, cb);
    }
    fut.#markRetrieved();
    if (cancelled !== null) settleWaiter(cb, false, cancelled);
    else if (fut.#state === 'cancelled') settleWaiter(cb, false, fut.makeCancelledError());
    else if (fut.#state === 'failed') settleWaiter(cb, false, fut.#result);
    else settleWaiter(cb, true, fut.#value());
  }

  /** Extra words for toString (subclasses). @internal */
  protected describeState(): string {
    if (this.#state === 'failed') return `exception=${shortError(this.#result)}`;
    if (this.#state === 'finished') {
      return this.#result === LAZY ? 'result=<not read yet>' : `result=${inspect(this.#result, { depth: 0, breakLength: Infinity, maxStringLength: 40 })}`;
    }
    return '';
  }

  toString(): string {
    const extra = this.describeState();
    const site = this[kSourceTraceback]?.split('\n').at(-1)?.trim();
    const what = this.description !== undefined ? ` ${this.description}` : '';
    return `<${this.constructor.name}${what} ${this.state}${extra ? ' ' + extra : ''}${site ? ` created ${site}` : ''}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

function ignore(): void {}

/**
 * @internal The future whose pending await in this task returned `x` (a stream read's
 * promise, say: `reader.read()` returns the native promise of its await), or null. The
 * caller takes the future over (to cancel it, or to await it in its own scope), so the
 * promise gets a handler: nobody may be left awaiting it when the future is cancelled.
 */
export function futureBehind(x: unknown): Future<unknown> | null {
  if (!(x instanceof Promise)) return null;
  const scope = taskStorage.getStore();
  const fut = (scope !== undefined ? scope.futureOf(x) : outsideAwaits.get(x)) ?? null;
  if (fut !== null) x.then(undefined, ignore);
  return fut;
}

/** Promises of awaits made outside any task by Future[kAwait], by promise. */
const outsideAwaits = new WeakMap<Promise<unknown>, Future<unknown>>();

/** Whether `x` is a protoloop {@link Future} (a {@link Task} is one). asyncio's `isfuture()`. */
export function isFuture(x: unknown): x is Future<unknown> {
  return x instanceof Future;
}

/** @internal */
export function shortError(e: unknown): string {
  if (e instanceof Error) return `${e.name}(${JSON.stringify(e.message)})`;
  return inspect(e, { depth: 0, breakLength: Infinity });
}

/** Names a done-callback handle by the callback and the future (not by `#runCallback`). */
function describeRunCallback(args: readonly unknown[]): string {
  const [fut, cb] = args;
  if (cb instanceof Waiter) return cb.scope !== undefined ? `resume ${cb.scope.task.getName()} awaiting ${String(fut)}` : `resolve await of ${String(fut)}`;
  const name = typeof cb === 'function' ? cb.name : (cb as object).constructor.name;
  return `${name || '<anonymous>'}(${String(fut)})`;
}

function settleWaiter(w: Waiter, ok: boolean, value: unknown): void {
  const handler = w instanceof HandlerWaiter ? (ok ? w.onFulfilled : w.onRejected) : undefined;
  if (typeof handler !== 'function') {
    (ok ? w.resolve : w.reject)(value);
    return;
  }
  try {
    w.resolve(handler(value));
  } catch (e) {
    w.reject(e);
  }
}
