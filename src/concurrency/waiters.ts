/**
 * Machinery shared by the synchronisation primitives, queues and the waiting helpers:
 * a FIFO of waiter futures, binding a primitive to the loop that uses it, waits that an
 * AbortSignal can end, and turning "something awaitable" into a Future.
 * @module
 */
import { InvalidArgumentError, InvalidStateError } from '../errors.ts';
import { Coroutine } from '../loop/coroutine.ts';
import { Future, futureBehind } from '../loop/future.ts';
import { kLogDestroyPending } from '../loop/symbols.ts';
import { getRunningLoop, type Loop } from '../loop/loop.ts';

/**
 * Anything protoloop's helpers (`gather`, `waitFor`, `shield`, `asCompleted`) accept:
 * a {@link Future} or {@link Task} (used as is), a lazy {@link Coroutine} or a function
 * returning a promise (run as a new task, so it can be cancelled), or a promise that
 * is already running (followed by a future; cancelling that future does not stop
 * the promise's work).
 */
export type Awaitable<T> = Future<T> | Coroutine<T> | PromiseLike<T> | (() => PromiseLike<T> | T);

/** The value an {@link Awaitable} produces. */
export type AwaitedOf<A> = A extends Future<infer T> ? T : A extends Coroutine<infer T> ? T : A extends () => infer R ? Awaited<R> : Awaited<A>;

/**
 * A FIFO of waiters. Array with a moving head: `push`/`shift` are O(1); removing a
 * waiter from the middle (a cancelled one) is O(n), which asyncio's deque also pays.
 */
export class WaiterQueue<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  /** The i-th waiter from the head. */
  at(i: number): T {
    return this.#items[this.#head + i] as T;
  }

  shift(): T | undefined {
    const items = this.#items;
    if (this.#head >= items.length) return undefined;
    const item = items[this.#head];
    items[this.#head++] = undefined;
    if (this.#head === items.length) {
      items.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > items.length) {
      this.#items = items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Removes `item` (its first occurrence); false if it is not queued. */
  remove(item: T): boolean {
    const items = this.#items;
    // Usually the waiter leaving is the head (it was woken up): check it first.
    if (this.#head < items.length && items[this.#head] === item) {
      this.shift();
      return true;
    }
    const i = items.indexOf(item, this.#head);
    if (i < 0) return false;
    items.splice(i, 1);
    return true;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}

/** Whether any future in `q` is not cancelled (asyncio: `any(not w.cancelled() ...)`). */
export function someNotCancelled(q: WaiterQueue<Future<any>>): boolean {
  for (let i = 0, n = q.length; i < n; i++) if (!q.at(i).cancelled()) return true;
  return false;
}

/**
 * A primitive binds to the running loop the first time it has to wait, as asyncio's
 * `_LoopBoundMixin` does: its waiters are futures of that loop. Used from a different
 * running loop it throws {@link InvalidStateError}, unless the loop it was bound to is
 * closed: then its stale waiters are dropped and it binds to the new loop (so a
 * module-level lock survives successive `run()` calls).
 */
export abstract class LoopBound {
  #loop: Loop | null = null;

  /** The running loop, checked against the bound one. */
  protected boundLoop(): Loop {
    const loop = getRunningLoop();
    const bound = this.#loop;
    if (bound === loop) return loop;
    if (bound !== null && !bound.isClosed()) {
      throw new InvalidStateError(`${String(this)} is bound to a different event loop: create one per loop`);
    }
    if (bound !== null) this.dropWaiters();
    this.#loop = loop;
    return loop;
  }

  /** Forget waiters of a closed loop: their futures can never complete. */
  protected abstract dropWaiters(): void;
}

/** Options of every blocking call of the primitives and queues. */
export interface WaitOptions {
  /**
   * Ends the wait when aborted: the call rejects with `signal.reason` (an already
   * aborted signal rejects at once), and, like a cancellation, takes nothing with it.
   */
  signal?: AbortSignal;
}

/** An 'abort' listener object (EventTarget calls `handleEvent`): no closure per wait. */
class AbortLink {
  readonly fut: Future<unknown>;
  fired = false;
  constructor(fut: Future<unknown>) {
    this.fut = fut;
  }
  handleEvent(): void {
    if (this.fut.cancel('aborted by AbortSignal')) this.fired = true;
  }
}

/** Validates `options` and throws `signal.reason` if the signal is already aborted. */
export function checkWaitOptions(options: WaitOptions | undefined, what: string): AbortSignal | undefined {
  if (options === undefined) return undefined;
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError(`${what} options must be an object`);
  const signal = options.signal;
  if (signal === undefined) return undefined;
  if (!(signal instanceof AbortSignal)) throw new InvalidArgumentError(`${what} options.signal must be an AbortSignal`);
  if (signal.aborted) throw signal.reason;
  return signal;
}

/**
 * Awaits `fut`; if `signal` aborts first, cancels `fut` and rejects with
 * `signal.reason` (Node's convention) instead of the {@link CancelledError}.
 */
export async function abortable<T>(fut: Future<T>, signal: AbortSignal): Promise<T> {
  const link = new AbortLink(fut);
  signal.addEventListener('abort', link);
  try {
    return await fut;
  } catch (e) {
    if (link.fired) throw signal.reason;
    throw e;
  } finally {
    signal.removeEventListener('abort', link);
  }
}

function settleFromPromise<T>(fut: Future<T>, ok: boolean, value: unknown): void {
  if (fut.done() || fut.getLoop().isClosed()) return;
  if (ok) fut.setResult(value as T);
  else fut.setException(value);
}

/** Whether `x` is a thenable. */
export function isThenable(x: unknown): x is PromiseLike<unknown> {
  return x !== null && (typeof x === 'object' || typeof x === 'function') && typeof (x as { then?: unknown }).then === 'function';
}

/**
 * Checks that `x` is something {@link ensureFuture} takes (a Future of `loop`, a
 * Coroutine, a function or a thenable), so a list can be validated before any task
 * starts. {@link InvalidArgumentError} otherwise.
 */
export function checkAwaitable(x: unknown, loop: Loop, what: string): void {
  if (x instanceof Future) {
    if (x.getLoop() !== loop) throw new InvalidArgumentError(`${what} got a Future attached to a different loop`);
    return;
  }
  if (x instanceof Coroutine || typeof x === 'function' || isThenable(x)) return;
  throw new InvalidArgumentError(`${what} needs Futures, Tasks, Coroutines, functions returning a promise, or promises; got ${x === null ? 'null' : typeof x}`);
}

/**
 * asyncio's `ensure_future`: a Future as is (it must belong to `loop`), a Coroutine or
 * a function as a new task, a promise followed by a new future. Anything else:
 * {@link InvalidArgumentError}.
 */
export function ensureFuture<T>(x: Awaitable<T>, loop: Loop, what: string): Future<T> {
  checkAwaitable(x, loop, what);
  if (x instanceof Future) return x;
  if (x instanceof Coroutine || typeof x === 'function') {
    const task = loop.createTask(x as Coroutine<T> | (() => PromiseLike<T> | T));
    // The caller cannot reach this task to await it: don't report it as destroyed pending.
    task[kLogDestroyPending] = false;
    return task;
  }
  // The promise of a protoloop await of this task (a stream read): its own future.
  const behind = futureBehind(x);
  if (behind !== null && behind.getLoop() === loop) return behind as Future<T>;
  const fut = loop.createFuture<T>('promise');
  (x as PromiseLike<T>).then(
    (v) => settleFromPromise(fut, true, v),
    (e: unknown) => settleFromPromise(fut, false, e),
  );
  return fut;
}
