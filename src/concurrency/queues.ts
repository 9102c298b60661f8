/**
 * `Queue`, `PriorityQueue`, `LifoQueue`: asyncio's queues (with Python 3.13's
 * `shutdown()`), for producer/consumer tasks on one loop.
 *
 * ```
 * open --shutdown()--> shut-down: put() throws QueueShutDown; get() drains what is
 *                      left, then throws QueueShutDown (at once with immediate=true)
 * ```
 *
 * Blocked `put()`/`get()` calls wait on protoloop futures (`Queue.put()`,
 * `Queue.get()`), so cancelling the task or aborting the `signal` ends them; a waiter
 * that leaves after being woken passes its turn to the next one.
 * @module
 */
import { inspect } from 'node:util';
import { InvalidArgumentError, InvalidStateError, QueueEmpty, QueueFull, QueueShutDown } from '../errors.ts';
import type { Future } from '../loop/future.ts';
import { abortable, checkWaitOptions, LoopBound, WaiterQueue, type WaitOptions } from './waiters.ts';

/** Options of {@link Queue}. */
export interface QueueOptions {
  /** How many items the queue holds before `put()` waits; 0 (the default), a negative number or Infinity: no limit. */
  maxsize?: number;
}

/** Options of {@link PriorityQueue}. */
export interface PriorityQueueOptions<T> extends QueueOptions {
  /**
   * Orders items: negative when `a` comes out first. Default: numbers, bigints and
   * strings by `<`, arrays element by element (Python's tuples: `[priority, data]`).
   */
  compare?: (a: T, b: T) => number;
}

/** The states of a {@link Queue}. */
export type QueueState = 'open' | 'shut-down';

function parseMaxsize(options: number | QueueOptions | undefined, what: string): number {
  let maxsize: unknown = 0;
  if (typeof options === 'number') maxsize = options;
  else if (options !== undefined) {
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError(`${what}() takes a maxsize number or an options object`);
    maxsize = options.maxsize ?? 0;
  }
  if (typeof maxsize !== 'number' || Number.isNaN(maxsize) || (Number.isFinite(maxsize) && !Number.isInteger(maxsize))) {
    throw new InvalidArgumentError(`${what} maxsize must be an integer (<= 0 or Infinity: unbounded), got ${String(maxsize)}`);
  }
  return maxsize;
}

const resolved: Promise<void> = Promise.resolve();

function wakeUpNext(waiters: WaiterQueue<Future<void>>): void {
  for (;;) {
    const fut = waiters.shift();
    if (fut === undefined) return;
    if (!fut.done()) {
      fut.setResult();
      return;
    }
  }
}

/**
 * A FIFO queue. `maxsize` bounds it (`put()` waits while it is full). Every item put
 * counts as unfinished until a consumer calls `taskDone()`; `join()` waits until none
 * is. Iterate it with `for await` to get items until it is shut down and empty.
 */
export class Queue<T> extends LoopBound implements AsyncIterable<T> {
  readonly #maxsize: number;
  #getters = new WaiterQueue<Future<void>>();
  #putters = new WaiterQueue<Future<void>>();
  #joiners: Future<void>[] = [];
  #unfinished = 0;
  #state: QueueState = 'open';

  /** `options`: `maxsize` as a number, or {@link QueueOptions}. */
  constructor(options?: number | QueueOptions) {
    super();
    this.#maxsize = parseMaxsize(options, new.target.name);
  }

  // The storage, overridden by PriorityQueue and LifoQueue.
  /** @internal */
  protected items: T[] = [];
  #head = 0;
  /** @internal Adds an item to the storage. */
  protected putItem(item: T): void {
    this.items.push(item);
  }
  /** @internal Removes the next item from the storage (the queue is not empty). */
  protected getItem(): T {
    const items = this.items;
    const item = items[this.#head]!;
    items[this.#head++] = undefined as T;
    if (this.#head === items.length) {
      items.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > items.length) {
      this.items = items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
  /** @internal The number of stored items. */
  protected storedCount(): number {
    return this.items.length - this.#head;
  }
  /** @internal The stored items in the order they come out (for inspection). */
  protected storedItems(): T[] {
    return this.items.slice(this.#head);
  }

  /** `'open'` or `'shut-down'`. */
  get state(): QueueState {
    return this.#state;
  }

  /** How many items the queue holds at most (`<= 0` or Infinity: no limit). */
  get maxsize(): number {
    return this.#maxsize;
  }

  /** The number of items in the queue. */
  qsize(): number {
    return this.storedCount();
  }

  /** Whether the queue has no items. */
  empty(): boolean {
    return this.storedCount() === 0;
  }

  /** Whether the queue holds `maxsize` items (never true for an unbounded queue). */
  full(): boolean {
    return this.#maxsize > 0 && this.storedCount() >= this.#maxsize;
  }

  /** Whether `shutdown()` was called. */
  isShutDown(): boolean {
    return this.#state === 'shut-down';
  }

  /**
   * Puts an item, waiting while the queue is full. Throws {@link QueueShutDown} if the
   * queue is (or gets) shut down. Cancelling (or aborting `options.signal`: rejects with
   * its reason) while waiting puts nothing.
   */
  put(item: T, options?: WaitOptions): Promise<void> {
    // Fast path, the common case: room in the queue. No async frame: a shared settled
    // promise is cheaper to await.
    if (options === undefined && !this.full()) {
      try {
        this.putNowait(item);
        return resolved;
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return this.#putWaiting(item, options);
  }

  async #putWaiting(item: T, options: WaitOptions | undefined): Promise<void> {
    const signal = checkWaitOptions(options, `${this.constructor.name}.put()`);
    while (this.full()) {
      if (this.#state === 'shut-down') throw new QueueShutDown();
      const putters = this.#putters;
      const putter = this.boundLoop().createFuture<void>(`${this.constructor.name}.put()`);
      putters.push(putter);
      try {
        await (signal === undefined ? putter : abortable(putter, signal));
      } catch (e) {
        putter.cancel();
        // It may still be queued (cancelled), or already taken by getNowait()/shutdown().
        putters.remove(putter);
        // Woken by getNowait() but leaving: wake the next putter in line.
        if (!this.full() && !putter.cancelled()) wakeUpNext(this.#putters);
        throw e;
      }
    }
    this.putNowait(item);
  }

  /**
   * Puts an item without waiting. Throws {@link QueueFull} if the queue is full and
   * {@link QueueShutDown} if it was shut down.
   */
  putNowait(item: T): void {
    if (this.#state === 'shut-down') throw new QueueShutDown();
    if (this.full()) throw new QueueFull();
    this.putItem(item);
    this.#unfinished++;
    wakeUpNext(this.#getters);
  }

  /**
   * Removes and returns an item, waiting while the queue is empty. Throws
   * {@link QueueShutDown} once the queue is shut down and empty (or at once after an
   * immediate shutdown). Cancelling (or aborting `options.signal`) while waiting takes
   * nothing.
   */
  async get(options?: WaitOptions): Promise<T> {
    const signal = checkWaitOptions(options, `${this.constructor.name}.get()`);
    while (this.empty()) {
      if (this.#state === 'shut-down') throw new QueueShutDown();
      const getters = this.#getters;
      const getter = this.boundLoop().createFuture<void>(`${this.constructor.name}.get()`);
      getters.push(getter);
      try {
        await (signal === undefined ? getter : abortable(getter, signal));
      } catch (e) {
        getter.cancel();
        getters.remove(getter);
        // Woken by putNowait() but leaving: wake the next getter in line.
        if (!this.empty() && !getter.cancelled()) wakeUpNext(this.#getters);
        throw e;
      }
    }
    return this.getNowait();
  }

  /**
   * Removes and returns an item without waiting. Throws {@link QueueEmpty} if there is
   * none, {@link QueueShutDown} if the queue is shut down and empty.
   */
  getNowait(): T {
    if (this.empty()) {
      if (this.#state === 'shut-down') throw new QueueShutDown();
      throw new QueueEmpty();
    }
    const item = this.getItem();
    wakeUpNext(this.#putters);
    return item;
  }

  /**
   * Tells the queue that the work on an item taken with `get()` is done. When every
   * item put has been marked done, `join()` returns. Throws {@link InvalidStateError}
   * if called more times than items were put.
   */
  taskDone(): void {
    if (this.#unfinished <= 0) throw new InvalidStateError('taskDone() called too many times');
    if (--this.#unfinished === 0) this.#releaseJoiners();
  }

  /** The number of items put and not yet marked done with `taskDone()`. */
  unfinishedTasks(): number {
    return this.#unfinished;
  }

  /** Waits until every item put has been marked done with `taskDone()`. */
  async join(options?: WaitOptions): Promise<void> {
    const signal = checkWaitOptions(options, `${this.constructor.name}.join()`);
    if (this.#unfinished === 0) return;
    const fut = this.boundLoop().createFuture<void>(`${this.constructor.name}.join()`);
    this.#joiners.push(fut);
    try {
      await (signal === undefined ? fut : abortable(fut, signal));
    } finally {
      const i = this.#joiners.indexOf(fut);
      if (i >= 0) this.#joiners.splice(i, 1);
    }
  }

  /**
   * Shuts the queue down: `put()` throws {@link QueueShutDown} from now on, and `get()`
   * does once the queue is empty. With `immediate`, the items left are dropped (each
   * counts as done for `join()`) so `get()` throws at once. Every blocked `put()` and
   * `get()` wakes up to re-check. Idempotent.
   */
  shutdown(immediate = false): void {
    this.#state = 'shut-down';
    if (immediate) {
      while (!this.empty()) {
        this.getItem();
        if (this.#unfinished > 0) this.#unfinished--;
      }
      if (this.#unfinished === 0) this.#releaseJoiners();
    }
    // Every blocked caller re-checks and throws QueueShutDown (or takes an item left).
    for (let fut = this.#getters.shift(); fut !== undefined; fut = this.#getters.shift()) if (!fut.done()) fut.setResult();
    for (let fut = this.#putters.shift(); fut !== undefined; fut = this.#putters.shift()) if (!fut.done()) fut.setResult();
  }

  /**
   * Iterates the items with `get()` until the queue is shut down and drained. It does
   * not call `taskDone()`: do that for each item if someone `join()`s.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      let item: T;
      try {
        item = await this.get();
      } catch (e) {
        if (e instanceof QueueShutDown) return;
        throw e;
      }
      yield item;
    }
  }

  #releaseJoiners(): void {
    const joiners = this.#joiners;
    this.#joiners = [];
    for (const fut of joiners) if (!fut.done()) fut.setResult();
  }

  protected override dropWaiters(): void {
    this.#getters = new WaiterQueue();
    this.#putters = new WaiterQueue();
    this.#joiners = [];
  }

  override toString(): string {
    const parts = [`maxsize=${this.#maxsize}`];
    const n = this.storedCount();
    if (n > 0) parts.push(`items=${inspect(this.storedItems(), { depth: 0, breakLength: Infinity, maxArrayLength: 8, maxStringLength: 40 })}`);
    if (this.#getters.length > 0) parts.push(`getters[${this.#getters.length}]`);
    if (this.#putters.length > 0) parts.push(`putters[${this.#putters.length}]`);
    if (this.#unfinished > 0) parts.push(`tasks=${this.#unfinished}`);
    if (this.#state === 'shut-down') parts.push('shutdown');
    return `<${this.constructor.name} ${parts.join(' ')}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

/** A queue that hands out the most recently put item first. */
export class LifoQueue<T> extends Queue<T> {
  protected override getItem(): T {
    return this.items.pop()!;
  }
  protected override storedCount(): number {
    return this.items.length;
  }
  protected override storedItems(): T[] {
    return this.items.slice().reverse();
  }
}

/** Python's ordering: numbers, bigints and strings by `<`, arrays like tuples. */
export function defaultCompare(a: unknown, b: unknown): number {
  if (Array.isArray(a) && Array.isArray(b)) {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) {
      const c = defaultCompare(a[i], b[i]);
      if (c !== 0) return c;
    }
    return a.length - b.length;
  }
  const ta = typeof a;
  const tb = typeof b;
  const comparable = (t: string): boolean => t === 'number' || t === 'bigint' || t === 'string';
  if (comparable(ta) && comparable(tb) && (ta === 'string') === (tb === 'string')) {
    return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
  }
  throw new InvalidArgumentError(
    `PriorityQueue cannot order ${inspect(a, { depth: 0 })} and ${inspect(b, { depth: 0 })}: put numbers, strings, bigints or arrays of them (such as [priority, data]), or pass options.compare`,
  );
}

/**
 * A queue that hands out the smallest item first (a binary heap). Items are ordered by
 * `options.compare`, by default Python's way: `[priority, data]` arrays work.
 */
export class PriorityQueue<T> extends Queue<T> {
  readonly #compare: (a: T, b: T) => number;

  /** `options`: `maxsize` as a number, or {@link PriorityQueueOptions}. */
  constructor(options?: number | PriorityQueueOptions<T>) {
    super(options);
    const compare = typeof options === 'object' && options !== null ? options.compare : undefined;
    if (compare !== undefined && typeof compare !== 'function') throw new InvalidArgumentError('PriorityQueue options.compare must be a function');
    this.#compare = compare ?? (defaultCompare as (a: T, b: T) => number);
  }

  protected override putItem(item: T): void {
    const a = this.items;
    const less = this.#compare;
    // Compare before storing, so an item that cannot be ordered leaves the queue intact.
    let i = a.length;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(item, a[p]!) >= 0) break;
      i = p;
    }
    a.push(item);
    for (let j = a.length - 1; j > i; ) {
      const p = (j - 1) >> 1;
      a[j] = a[p]!;
      j = p;
    }
    a[i] = item;
  }

  protected override getItem(): T {
    const a = this.items;
    const top = a[0]!;
    const last = a.pop()!;
    const n = a.length;
    if (n > 0) {
      const cmp = this.#compare;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && cmp(a[r]!, a[l]!) < 0 ? r : l;
        if (cmp(a[c]!, last) >= 0) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }

  protected override storedCount(): number {
    return this.items.length;
  }

  protected override storedItems(): T[] {
    return this.items.slice().sort(this.#compare);
  }
}
