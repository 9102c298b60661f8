/**
 * `Barrier`: a cyclic barrier for a fixed number of tasks (asyncio's, Python 3.11).
 *
 * ```
 * filling --last party arrives--> draining --all have left--> filling
 *    |  reset() with waiters: resetting --all have left--> filling
 *    +-- abort() (any state) --> broken (for good)
 * ```
 * @module
 */
import { inspect } from 'node:util';
import { BrokenBarrierError, InvalidArgumentError } from '../errors.ts';
import { Condition } from './locks.ts';
import type { WaitOptions } from './waiters.ts';

/** The states of a {@link Barrier}. */
export type BarrierState = 'filling' | 'draining' | 'resetting' | 'broken';

/**
 * Tasks call `wait()`; once `parties` of them are waiting, all of them go on, each
 * with a distinct index `0 .. parties-1`, and the barrier starts over. A waiter that
 * is cancelled leaves (the count goes down). `reset()` and `abort()` make the current
 * waiters throw {@link BrokenBarrierError}.
 */
export class Barrier {
  readonly #cond = new Condition();
  readonly #parties: number;
  #state: BarrierState = 'filling';
  #count = 0;

  /** `parties`: how many tasks must wait to trip the barrier, an integer >= 1. */
  constructor(parties: number) {
    if (typeof parties !== 'number' || !Number.isInteger(parties) || parties < 1) {
      throw new InvalidArgumentError(`Barrier parties must be an integer >= 1, got ${String(parties)}`);
    }
    this.#parties = parties;
  }

  /** The barrier's state. */
  get state(): BarrierState {
    return this.#state;
  }

  /** How many tasks must wait to trip the barrier. */
  get parties(): number {
    return this.#parties;
  }

  /** How many tasks wait now (0 unless filling). */
  get nWaiting(): number {
    return this.#state === 'filling' ? this.#count : 0;
  }

  /** Whether the barrier was aborted. */
  get broken(): boolean {
    return this.#state === 'broken';
  }

  /**
   * Waits until `parties` tasks wait, then resolves to this task's index (the last
   * arrival gets `parties - 1`). Throws {@link BrokenBarrierError} if the barrier is
   * or gets broken or reset meanwhile. `options.signal` aborts the wait (rejecting
   * with its reason), like a cancellation.
   */
  async wait(options?: WaitOptions): Promise<number> {
    const held = await this.#cond.acquire(options);
    try {
      await this.#block(options);
      const index = this.#count++;
      try {
        if (index + 1 === this.#parties) {
          // The last one in releases everybody; later arrivals wait until they drained.
          this.#state = 'draining';
          this.#cond.notifyAll();
        } else {
          await this.#cond.waitFor(() => this.#state !== 'filling', options);
          if (this.#state === 'broken' || this.#state === 'resetting') throw new BrokenBarrierError('Abort or reset of barrier');
        }
        return index;
      } finally {
        this.#count--;
        this.#exit();
      }
    } finally {
      held.release();
    }
  }

  /** Waits while the barrier drains or resets; throws if it is broken. */
  async #block(options: WaitOptions | undefined): Promise<void> {
    await this.#cond.waitFor(() => this.#state !== 'draining' && this.#state !== 'resetting', options);
    if (this.#state === 'broken') throw new BrokenBarrierError('Barrier aborted');
  }

  /** The last task out ends draining or resetting and wakes whoever waits to enter. */
  #exit(): void {
    if (this.#count === 0) {
      if (this.#state === 'resetting' || this.#state === 'draining') this.#state = 'filling';
      this.#cond.notifyAll();
    }
  }

  /** Resets the barrier to empty; the tasks waiting now get {@link BrokenBarrierError}. */
  async reset(): Promise<void> {
    const held = await this.#cond.acquire();
    try {
      if (this.#count > 0) {
        if (this.#state !== 'resetting') this.#state = 'resetting';
      } else {
        this.#state = 'filling';
      }
      this.#cond.notifyAll();
    } finally {
      held.release();
    }
  }

  /** Breaks the barrier for good: current and future `wait()` calls throw {@link BrokenBarrierError}. */
  async abort(): Promise<void> {
    const held = await this.#cond.acquire();
    try {
      this.#state = 'broken';
      this.#cond.notifyAll();
    } finally {
      held.release();
    }
  }

  toString(): string {
    return `<Barrier [${this.#state}${this.#state === 'broken' ? '' : `, waiters:${this.nWaiting}/${this.#parties}`}]>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}
