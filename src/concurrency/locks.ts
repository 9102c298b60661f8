/**
 * `Lock`, `Event` and `Condition`: asyncio's primitives, FIFO-fair and cancellation-safe.
 *
 * Waiting always goes through a protoloop future (described as `Lock.acquire()`,
 * `Event.wait()`, `Condition.wait()`), so cancelling the waiting task, or aborting the
 * `signal` passed in the options, ends the wait at once. A waiter that leaves this way
 * never takes the lock with it: if it had already been chosen to run next, it hands
 * its turn to the next waiter (asyncio's careful wake-up logic, kept line for line).
 *
 * ```ts
 * const lock = new Lock();
 * {
 *   using _held = await lock.acquire();   // released at the end of the block
 *   ...
 * }
 * await lock.hold(async () => { ... });   // the same without `using`
 * ```
 * @module
 */
import { inspect } from 'node:util';
import { CancelledError, InvalidArgumentError, InvalidStateError } from '../errors.ts';
import type { Future } from '../loop/future.ts';
import { abortable, checkWaitOptions, LoopBound, someNotCancelled, WaiterQueue, type WaitOptions } from './waiters.ts';

/**
 * What `acquire()` of a {@link Lock}, {@link Condition} or {@link Semaphore} resolves
 * to: a disposable that releases what was acquired, once. `using held = await
 * lock.acquire()` (or `await using`) releases at the end of the block; calling
 * `release()` or disposing a second time does nothing. Either use it or call the
 * primitive's own `release()`, not both.
 */
export class Releaser implements Disposable {
  #target: { release(): void } | null;

  /** @internal Made by `acquire()`. */
  constructor(target: { release(): void }) {
    this.#target = target;
  }

  /** Whether this releaser has released already. */
  get released(): boolean {
    return this.#target === null;
  }

  /** Releases the lock or permit, the first time only. */
  release(): void {
    const target = this.#target;
    if (target === null) return;
    this.#target = null;
    target.release();
  }

  /** Same as {@link release}: makes `using` / `await using` work. */
  [Symbol.dispose](): void {
    this.release();
  }

  /** @internal */
  [inspect.custom](): string {
    return `<Releaser ${this.#target === null ? 'released' : `of ${String(this.#target)}`}>`;
  }
}

/** Runs `fn` while holding what `acquire` takes; releases after, whatever happens. */
async function holding<T>(owner: { acquire(o?: WaitOptions): Promise<Releaser> }, fn: () => PromiseLike<T> | T, options: WaitOptions | undefined): Promise<T> {
  if (typeof fn !== 'function') throw new InvalidArgumentError('hold() needs a function');
  const held = await owner.acquire(options);
  try {
    return await fn();
  } finally {
    held.release();
  }
}

/** The two states of a {@link Lock}. */
export type LockState = 'unlocked' | 'locked';

/**
 * A mutual-exclusion lock, not owned by a task (any task may release it). Fair:
 * waiters get the lock in the order they asked for it, and a new caller never jumps
 * the queue while a live waiter exists.
 */
export class Lock extends LoopBound {
  #locked = false;
  #waiters: WaiterQueue<Future<boolean>> | null = null;

  /** `'locked'` or `'unlocked'`. */
  get state(): LockState {
    return this.#locked ? 'locked' : 'unlocked';
  }

  /** Whether the lock is held. */
  locked(): boolean {
    return this.#locked;
  }

  /**
   * Waits until the lock is free, takes it, and resolves to a {@link Releaser}. Returns
   * without yielding when the lock is free and nobody waits. Cancelling the task (or
   * aborting `options.signal`: rejects with its reason) while waiting leaves the lock
   * to the next waiter.
   */
  async acquire(options?: WaitOptions): Promise<Releaser> {
    const signal = checkWaitOptions(options, 'Lock.acquire()');
    // Fair scheduling: take the fast path only if no live waiter is queued.
    if (!this.#locked && (this.#waiters === null || !someNotCancelled(this.#waiters))) {
      this.#locked = true;
      return new Releaser(this);
    }
    const loop = this.boundLoop();
    const waiters = (this.#waiters ??= new WaiterQueue());
    const fut = loop.createFuture<boolean>('Lock.acquire()');
    waiters.push(fut);
    try {
      try {
        await (signal === undefined ? fut : abortable(fut, signal));
      } finally {
        waiters.remove(fut);
      }
    } catch (e) {
      // Keep the invariant: if the lock is not claimed (nor about to be), the waiter
      // at the head must run. We may have been woken up just before being cancelled.
      if (!this.#locked) this.#wakeUpFirst();
      throw e;
    }
    this.#locked = true;
    return new Releaser(this);
  }

  /**
   * Releases the lock and lets the first waiter (if any) take it.
   * Throws {@link InvalidStateError} if the lock is not held.
   */
  release(): void {
    if (!this.#locked) throw new InvalidStateError('Lock is not acquired: release() without a matching acquire()');
    this.#locked = false;
    this.#wakeUpFirst();
  }

  /** Acquires, runs `fn`, releases (also when `fn` throws); returns `fn`'s result. */
  hold<T>(fn: () => PromiseLike<T> | T, options?: WaitOptions): Promise<T> {
    return holding(this, fn, options);
  }

  #wakeUpFirst(): void {
    const waiters = this.#waiters;
    if (waiters === null || waiters.length === 0) return;
    const fut = waiters.at(0);
    // done() means it is already set to wake up.
    if (!fut.done()) fut.setResult(true);
  }

  protected override dropWaiters(): void {
    this.#waiters = null;
  }

  override toString(): string {
    const n = this.#waiters?.length ?? 0;
    return `<Lock [${this.state}${n > 0 ? `, waiters:${n}` : ''}]>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

/** The two states of an {@link Event}. */
export type EventState = 'unset' | 'set';

/**
 * A flag tasks can wait for. `set()` wakes every task waiting now; `wait()` on a set
 * event returns at once. (Named after asyncio's; it shadows the DOM `Event` global
 * in a module that imports it.)
 */
export class Event extends LoopBound {
  #value = false;
  #waiters = new WaiterQueue<Future<boolean>>();

  /** `'set'` or `'unset'`. */
  get state(): EventState {
    return this.#value ? 'set' : 'unset';
  }

  /** Whether the flag is set. */
  isSet(): boolean {
    return this.#value;
  }

  /** Sets the flag and wakes every waiting task. */
  set(): void {
    if (this.#value) return;
    this.#value = true;
    const waiters = this.#waiters;
    for (let i = 0, n = waiters.length; i < n; i++) {
      const fut = waiters.at(i);
      if (!fut.done()) fut.setResult(true);
    }
  }

  /** Clears the flag: later `wait()` calls block until the next `set()`. */
  clear(): void {
    this.#value = false;
  }

  /**
   * Resolves to `true` once the flag is set (at once if it is). Cancellable; with
   * `options.signal`, rejects with the signal's reason when it aborts.
   */
  async wait(options?: WaitOptions): Promise<true> {
    const signal = checkWaitOptions(options, 'Event.wait()');
    if (this.#value) return true;
    const fut = this.boundLoop().createFuture<boolean>('Event.wait()');
    const waiters = this.#waiters;
    waiters.push(fut);
    try {
      await (signal === undefined ? fut : abortable(fut, signal));
      return true;
    } finally {
      waiters.remove(fut);
    }
  }

  protected override dropWaiters(): void {
    this.#waiters = new WaiterQueue();
  }

  override toString(): string {
    const n = this.#waiters.length;
    return `<Event [${this.state}${n > 0 ? `, waiters:${n}` : ''}]>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * A condition variable over a {@link Lock} (a new one unless given): tasks holding
 * the lock `wait()` until another task `notify()`s them. Wake-ups may be spurious:
 * re-check the state in a loop, or use {@link Condition.waitFor}.
 */
export class Condition extends LoopBound {
  readonly #lock: Lock;
  #waiters = new WaiterQueue<Future<boolean>>();

  /** `lock`: the lock to share (default: a new {@link Lock}). */
  constructor(lock?: Lock) {
    super();
    if (lock !== undefined && !(lock instanceof Lock)) throw new InvalidArgumentError('Condition() needs a Lock or nothing');
    this.#lock = lock ?? new Lock();
  }

  /** The state of the underlying lock. */
  get state(): LockState {
    return this.#lock.state;
  }

  /** Whether the underlying lock is held. */
  locked(): boolean {
    return this.#lock.locked();
  }

  /** Acquires the underlying lock (see {@link Lock.acquire}). */
  acquire(options?: WaitOptions): Promise<Releaser> {
    return this.#lock.acquire(options);
  }

  /** Releases the underlying lock (see {@link Lock.release}). */
  release(): void {
    this.#lock.release();
  }

  /** Acquires the lock, runs `fn`, releases; returns `fn`'s result. */
  hold<T>(fn: () => PromiseLike<T> | T, options?: WaitOptions): Promise<T> {
    return holding(this, fn, options);
  }

  /**
   * Releases the lock, waits until notified, re-acquires the lock, resolves to `true`.
   * The lock is held again when this returns *or throws*, also when the wait was
   * cancelled or aborted. Throws {@link InvalidStateError} if the lock is not held.
   */
  async wait(options?: WaitOptions): Promise<true> {
    if (!this.locked()) throw new InvalidStateError('cannot wait on un-acquired lock: acquire the Condition first');
    const signal = checkWaitOptions(options, 'Condition.wait()');
    const fut = this.boundLoop().createFuture<boolean>('Condition.wait()');
    this.release();
    let failed = false;
    let error: unknown;
    const waiters = this.#waiters;
    waiters.push(fut);
    try {
      await (signal === undefined ? fut : abortable(fut, signal));
    } catch (e) {
      failed = true;
      error = e;
    } finally {
      waiters.remove(fut);
    }
    // Re-acquire the lock even if the wait was cancelled; a cancellation during the
    // re-acquisition is remembered and thrown once we hold the lock again (the latest
    // one wins, as in asyncio).
    for (;;) {
      try {
        await this.#lock.acquire();
        break;
      } catch (e) {
        failed = true;
        error = e;
        if (!(e instanceof CancelledError)) break;
      }
    }
    if (failed) {
      // We may have been notified before the error: pass the notification on (this can
      // cause a spurious wake-up, which condition variables allow).
      this.#notify(1);
      throw error;
    }
    return true;
  }

  /**
   * Waits until `predicate()` is truthy (checked first, then after each wake-up) and
   * returns its value. The lock must be held.
   */
  async waitFor<T>(predicate: () => T, options?: WaitOptions): Promise<T> {
    if (typeof predicate !== 'function') throw new InvalidArgumentError('Condition.waitFor() needs a predicate function');
    let result = predicate();
    while (!result) {
      await this.wait(options);
      result = predicate();
    }
    return result;
  }

  /**
   * Wakes up to `n` (default 1) waiting tasks; each returns from `wait()` once it gets
   * the lock back. The lock must be held ({@link InvalidStateError} otherwise).
   */
  notify(n = 1): void {
    if (!this.locked()) throw new InvalidStateError('cannot notify on un-acquired lock: acquire the Condition first');
    if (typeof n !== 'number' || Number.isNaN(n)) throw new InvalidArgumentError('Condition.notify(n) needs a number');
    this.#notify(n);
  }

  /** Wakes every waiting task. The lock must be held. */
  notifyAll(): void {
    this.notify(this.#waiters.length);
  }

  #notify(n: number): void {
    const waiters = this.#waiters;
    let woken = 0;
    for (let i = 0, len = waiters.length; i < len && woken < n; i++) {
      const fut = waiters.at(i);
      if (!fut.done()) {
        woken++;
        fut.setResult(false);
      }
    }
  }

  protected override dropWaiters(): void {
    this.#waiters = new WaiterQueue();
  }

  override toString(): string {
    const n = this.#waiters.length;
    return `<Condition [${this.state}${n > 0 ? `, waiters:${n}` : ''}]>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}
