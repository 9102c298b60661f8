/**
 * `Semaphore` and `BoundedSemaphore`: a counter of permits, FIFO-fair and
 * cancellation-safe (asyncio's algorithm: a permit handed to a waiter is reserved
 * for it; a waiter that leaves after being chosen gives the permit back and wakes
 * the next one).
 *
 * ```ts
 * const slots = new Semaphore(4);
 * using _permit = await slots.acquire();
 * ```
 * @module
 */
import { inspect } from 'node:util';
import { InvalidArgumentError, InvalidStateError } from '../errors.ts';
import type { Future } from '../loop/future.ts';
import { Releaser } from './locks.ts';
import { abortable, checkWaitOptions, LoopBound, someNotCancelled, WaiterQueue, type WaitOptions } from './waiters.ts';

/**
 * A semaphore: `acquire()` takes a permit (waiting while none is free), `release()`
 * gives one back. FIFO: while tasks wait, a new caller queues behind them even if a
 * permit is free. Releasing more than was acquired is allowed (see
 * {@link BoundedSemaphore} for a checked variant).
 */
export class Semaphore extends LoopBound {
  #value: number;
  #waiters: WaiterQueue<Future<boolean>> | null = null;

  /**
   * `value`: the initial number of permits, an integer >= 0 (default 1);
   * {@link InvalidArgumentError} otherwise.
   */
  constructor(value = 1) {
    super();
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
      throw new InvalidArgumentError(`Semaphore initial value must be an integer >= 0, got ${String(value)}`);
    }
    this.#value = value;
  }

  /** The number of free permits (not counting those reserved for woken waiters). */
  get value(): number {
    return this.#value;
  }

  /** `'locked'` when `acquire()` would wait, else `'unlocked'`. */
  get state(): 'locked' | 'unlocked' {
    return this.locked() ? 'locked' : 'unlocked';
  }

  /** Whether `acquire()` would wait: no permit free, or live waiters queued first. */
  locked(): boolean {
    return this.#value === 0 || (this.#waiters !== null && someNotCancelled(this.#waiters));
  }

  /**
   * Takes a permit, waiting for one if needed, and resolves to a {@link Releaser} that
   * gives it back. Cancelling the task (or aborting `options.signal`: rejects with its
   * reason) while waiting takes no permit.
   */
  async acquire(options?: WaitOptions): Promise<Releaser> {
    const signal = checkWaitOptions(options, 'Semaphore.acquire()');
    if (!this.locked()) {
      // FIFO: others may be woken but not yet running; they already hold their permit.
      this.#value--;
      return new Releaser(this);
    }
    const loop = this.boundLoop();
    const waiters = (this.#waiters ??= new WaiterQueue());
    const fut = loop.createFuture<boolean>(`${this.constructor.name}.acquire()`);
    waiters.push(fut);
    try {
      try {
        await (signal === undefined ? fut : abortable(fut, signal));
      } finally {
        waiters.remove(fut);
      }
    } catch (e) {
      // Woken (a permit was reserved for us) but leaving anyway: give it back.
      if (fut.done() && !fut.cancelled()) this.#value++;
      throw e;
    } finally {
      // Waiters that arrived meanwhile had to queue (FIFO): wake as many as permits allow.
      while (this.#value > 0) {
        if (!this.#wakeUpNext()) break;
      }
    }
    return new Releaser(this);
  }

  /** Gives a permit back, waking the first waiter if any. */
  release(): void {
    this.#value++;
    this.#wakeUpNext();
  }

  /** Acquires a permit, runs `fn`, releases it; returns `fn`'s result. */
  async hold<T>(fn: () => PromiseLike<T> | T, options?: WaitOptions): Promise<T> {
    if (typeof fn !== 'function') throw new InvalidArgumentError('hold() needs a function');
    const permit = await this.acquire(options);
    try {
      return await fn();
    } finally {
      permit.release();
    }
  }

  /** Wakes the first waiter that is not done, reserving a permit for it. */
  #wakeUpNext(): boolean {
    const waiters = this.#waiters;
    if (waiters === null) return false;
    for (let i = 0, n = waiters.length; i < n; i++) {
      const fut = waiters.at(i);
      if (!fut.done()) {
        this.#value--;
        fut.setResult(true);
        return true;
      }
    }
    return false;
  }

  protected override dropWaiters(): void {
    this.#waiters = null;
  }

  override toString(): string {
    const n = this.#waiters?.length ?? 0;
    const extra = this.locked() ? 'locked' : `unlocked, value:${this.#value}`;
    return `<${this.constructor.name} [${extra}${n > 0 ? `, waiters:${n}` : ''}]>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * A {@link Semaphore} that refuses to be released above its initial value:
 * `release()` then throws {@link InvalidStateError} (a bug: more releases than acquires).
 */
export class BoundedSemaphore extends Semaphore {
  readonly #bound: number;

  /** `value`: the initial and maximum number of permits (default 1). */
  constructor(value = 1) {
    super(value);
    this.#bound = value;
  }

  override release(): void {
    if (this.value >= this.#bound) throw new InvalidStateError('BoundedSemaphore released too many times');
    super.release();
  }
}
