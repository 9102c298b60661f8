/**
 * `wait(futures, { timeout, returnWhen })` and `asCompleted(awaitables, { timeout })`.
 * @module
 */
import { inspect } from 'node:util';
import { InvalidArgumentError, TimeoutError } from '../errors.ts';
import { coroutine, type Coroutine } from '../loop/coroutine.ts';
import { Future } from '../loop/future.ts';
import type { TimerHandle } from '../loop/handle.ts';
import { getRunningLoop, type Loop } from '../loop/loop.ts';
import { Queue } from './queues.ts';
import { checkAwaitable, ensureFuture, type Awaitable } from './waiters.ts';

/** When {@link wait} returns. */
export type ReturnWhen = 'FIRST_COMPLETED' | 'FIRST_EXCEPTION' | 'ALL_COMPLETED';

/** Options of {@link wait}. */
export interface WaitForOptions {
  /** Return after this many ms even if the condition is not met (no error). Default: no limit. */
  timeout?: number | null;
  /**
   * `'ALL_COMPLETED'` (default): when all are done. `'FIRST_COMPLETED'`: when any is.
   * `'FIRST_EXCEPTION'`: when any fails (a cancelled one does not count), else when all are done.
   */
  returnWhen?: ReturnWhen;
}

/** The result of {@link wait}. */
export interface WaitResult<F> {
  done: Set<F>;
  pending: Set<F>;
}

function checkTimeout(timeout: unknown, what: string): number | null {
  if (timeout === undefined || timeout === null || timeout === Infinity) return null;
  if (typeof timeout !== 'number' || Number.isNaN(timeout)) throw new InvalidArgumentError(`${what} timeout must be a number of ms or null, got ${inspect(timeout)}`);
  return timeout;
}

function releaseWaiter(waiter: Future<void>): void {
  if (!waiter.done()) waiter.setResult();
}

/**
 * Waits for the futures or tasks of `fs` (asyncio's `wait`) and resolves to
 * `{ done, pending }`. It never throws {@link TimeoutError} and never cancels anything:
 * on timeout, what is not done is in `pending`. Cancelling the waiting task leaves the
 * futures alone.
 *
 * Throws {@link InvalidArgumentError} for an empty list, for something other than a
 * Future/Task (create tasks for coroutines first: their sets would hold objects you
 * never saw), and for an unknown `returnWhen`.
 */
export async function wait<F extends Future<any>>(fs: Iterable<F>, options: WaitForOptions = {}): Promise<WaitResult<F>> {
  if (fs === null || typeof fs !== 'object' || typeof (fs as Iterable<F>)[Symbol.iterator] !== 'function' || fs instanceof Future) {
    throw new InvalidArgumentError('wait() takes an iterable of futures or tasks: wait([t1, t2])');
  }
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('wait() options must be an object');
  const returnWhen = options.returnWhen ?? 'ALL_COMPLETED';
  if (returnWhen !== 'ALL_COMPLETED' && returnWhen !== 'FIRST_COMPLETED' && returnWhen !== 'FIRST_EXCEPTION') {
    throw new InvalidArgumentError(`wait() returnWhen must be 'FIRST_COMPLETED', 'FIRST_EXCEPTION' or 'ALL_COMPLETED', got ${inspect(returnWhen)}`);
  }
  const timeout = checkTimeout(options.timeout, 'wait()');
  const set = new Set(fs);
  if (set.size === 0) throw new InvalidArgumentError('wait() needs at least one future: the set of tasks/futures is empty');
  const loop = getRunningLoop();
  for (const f of set) {
    if (!(f instanceof Future)) throw new InvalidArgumentError('wait() takes futures or tasks only: pass coroutines to loop.createTask() first');
    if (f.getLoop() !== loop) throw new InvalidArgumentError('wait() got a Future attached to a different loop');
  }

  const waiter = loop.createFuture<void>(`wait(${set.size}, ${returnWhen})`);
  const timer = timeout === null ? null : loop.callLater(timeout, releaseWaiter, waiter);
  let counter = set.size;
  const onCompletion = (f: Future<unknown>): void => {
    counter--;
    if (counter <= 0 || returnWhen === 'FIRST_COMPLETED' || (returnWhen === 'FIRST_EXCEPTION' && !f.cancelled() && f.exception() !== null)) {
      timer?.cancel();
      releaseWaiter(waiter);
    }
  };
  for (const f of set) f.addDoneCallback(onCompletion);
  try {
    await waiter;
  } finally {
    timer?.cancel();
    for (const f of set) f.removeDoneCallback(onCompletion);
  }
  const done = new Set<F>();
  const pending = new Set<F>();
  for (const f of set) (f.done() ? done : pending).add(f);
  return { done, pending };
}

const kTimeout = Symbol('AsCompleted.timeout');
const kNextResult = Symbol('AsCompleted.nextResult');
const nextResult = coroutine(function asCompletedNext(it: AsCompleted<unknown>): Promise<unknown> {
  return it[kNextResult]();
});

/** Options of {@link asCompleted}. */
export interface AsCompletedOptions {
  /** After this many ms, the iteration throws {@link TimeoutError}. Default: no limit. */
  timeout?: number | null;
}

/**
 * The async iterator {@link asCompleted} returns: yields the futures (tasks) as they
 * complete. Ending the iteration early (`break`, `return`, an error) cancels the tasks
 * it created itself for coroutines and functions that have not been yielded yet.
 */
export class AsCompleted<T> implements AsyncIterableIterator<Future<T>>, Iterable<Coroutine<T>> {
  // Completed futures (boxed: a promise cannot resolve to a thenable), and null as
  // the timeout's sentinel.
  readonly #done = new Queue<{ readonly fut: Future<T> } | null>();
  readonly #todo: Set<Future<T>>;
  readonly #created: Set<Future<T>>;
  #todoLeft: number;
  #timer: TimerHandle | null = null;
  readonly #onCompletion = (f: Future<T>): void => this.#handleCompletion(f);

  /** @internal Use {@link asCompleted}. */
  constructor(loop: Loop, todo: Set<Future<T>>, created: Set<Future<T>>, timeout: number | null) {
    this.#todo = todo;
    this.#created = created;
    this.#todoLeft = todo.size;
    for (const f of todo) f.addDoneCallback(this.#onCompletion);
    if (todo.size > 0 && timeout !== null) this.#timer = loop.callLater(timeout, handleTimeout, this as AsCompleted<unknown>);
  }

  /** The next future to complete; throws {@link TimeoutError} once the timeout passed. */
  async next(): Promise<IteratorResult<Future<T>, undefined>> {
    if (this.#todoLeft === 0) return { done: true, value: undefined };
    this.#todoLeft--;
    const box = await this.#done.get();
    if (box === null) throw new TimeoutError('asCompleted() timed out before all futures completed');
    this.#created.delete(box.fut);
    return { done: false, value: box.fut };
  }

  /** Stops the iteration: detaches from the futures, cancels the tasks it created that were not yielded. */
  async return(): Promise<IteratorResult<Future<T>, undefined>> {
    this.#todoLeft = 0;
    this.#timer?.cancel();
    this.#timer = null;
    for (const f of this.#todo) f.removeDoneCallback(this.#onCompletion);
    this.#todo.clear();
    for (const f of this.#created) f.cancel();
    this.#created.clear();
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /**
   * Plain iteration (asyncio's `for f in as_completed(aws)`): yields one lazy
   * {@link Coroutine} per future; awaiting it waits for the next future to complete
   * and returns its result (or throws its error, or {@link TimeoutError}). The
   * coroutines complete in the order they are awaited, not created.
   */
  *[Symbol.iterator](): IterableIterator<Coroutine<T>> {
    while (this.#todoLeft > 0) {
      this.#todoLeft--;
      yield nextResult(this as AsCompleted<unknown>) as Coroutine<T>;
    }
  }

  /** @internal One step of plain iteration: the next completed future's result. */
  async [kNextResult](): Promise<T> {
    const box = await this.#done.get();
    if (box === null) throw new TimeoutError('asCompleted() timed out before all futures completed');
    this.#created.delete(box.fut);
    return box.fut.result();
  }

  /** @internal The timeout passed: every step left throws TimeoutError. */
  [kTimeout](): void {
    this.#timer = null;
    for (const f of this.#todo) {
      f.removeDoneCallback(this.#onCompletion);
      this.#done.putNowait(null);
    }
    this.#todo.clear();
  }

  #handleCompletion(f: Future<T>): void {
    if (!this.#todo.delete(f)) return;
    this.#done.putNowait({ fut: f });
    if (this.#todo.size === 0) {
      this.#timer?.cancel();
      this.#timer = null;
    }
  }

  toString(): string {
    return `<AsCompleted pending=${this.#todo.size} ready=${this.#done.qsize()}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

function handleTimeout(it: AsCompleted<unknown>): void {
  it[kTimeout]();
}

/**
 * Iterates over `xs` in completion order (asyncio 3.13's `as_completed` as an async
 * iterator): each step yields the next future or task to finish (Coroutines and
 * functions are started as tasks; promises are followed by futures), to be awaited or
 * read with `result()`. With `timeout` (ms), the step that would wait past it throws
 * {@link TimeoutError}. Duplicates are yielded once. It is also a plain iterator
 * (asyncio's `for f in as_completed(...)`): each item is an awaitable that gives the
 * next result to complete.
 *
 * ```ts
 * for await (const t of asCompleted([a, b, c], { timeout: 5_000 })) console.log(t.result());
 * for (const next of asCompleted([d, e])) console.log(await next);
 * ```
 */
export function asCompleted<T>(xs: Iterable<Awaitable<T>>, options: AsCompletedOptions = {}): AsCompleted<T> {
  if (xs === null || typeof xs !== 'object' || typeof (xs as Iterable<unknown>)[Symbol.iterator] !== 'function' || xs instanceof Future) {
    throw new InvalidArgumentError('asCompleted() takes an iterable of awaitables: asCompleted([a, b])');
  }
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('asCompleted() options must be an object');
  const timeout = checkTimeout(options.timeout, 'asCompleted()');
  const loop = getRunningLoop();
  const args = new Set(xs);
  for (const x of args) checkAwaitable(x, loop, 'asCompleted()');
  const todo = new Set<Future<T>>();
  const created = new Set<Future<T>>();
  for (const x of args) {
    const f = ensureFuture(x, loop, 'asCompleted()');
    if (f !== x) created.add(f);
    todo.add(f);
  }
  return new AsCompleted(loop, todo, created, timeout);
}
