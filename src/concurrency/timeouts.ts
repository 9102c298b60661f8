/**
 * Deadlines: `timeout(ms, fn)`, `timeoutAt(when, fn)` and `waitFor(x, ms)`.
 *
 * A deadline is asyncio's `Timeout`, over a cancel scope (loop/scope.ts) rather than a
 * whole task: the block runs in a child scope of the code that called `timeout()`;
 * when the deadline passes it cancels that scope, so the protoloop awaits made inside
 * the block (in every branch of it) throw, and nothing outside it; when the block ends
 * with that cancellation it becomes a {@link TimeoutError} (its `cause` is the
 * {@link CancelledError}). Because it counts cancellation requests per scope (the
 * enclosing scopes' count on entry and on exit), a cancellation from outside that
 * arrives meanwhile stays a cancellation, and nested or concurrent deadlines each
 * convert only their own.
 *
 * ```
 * created --enter--> active --deadline--> expiring --exit--> expired
 *                       +------------exit---------------------> finished
 * ```
 * @module
 */
import { inspect } from 'node:util';
import { CancelledError, InvalidArgumentError, InvalidStateError, TimeoutError } from '../errors.ts';
import { Coroutine } from '../loop/coroutine.ts';
import { Future } from '../loop/future.ts';
import type { Handle } from '../loop/handle.ts';
import { taskStorage } from '../loop/internal.ts';
import { getRunningLoop, type Loop } from '../loop/loop.ts';
import { CancelScope } from '../loop/scope.ts';
import { ensureFuture, isThenable, type Awaitable } from './waiters.ts';

/** The states of a {@link Timeout}: `active` inside the block, `expiring` once the deadline passed. */
export type TimeoutState = 'created' | 'active' | 'expiring' | 'expired' | 'finished';

const kEnter = Symbol('Timeout.enter');
const kExit = Symbol('Timeout.exit');
const kFire = Symbol('Timeout.fire');

function onTimeout(t: Timeout): void {
  t[kFire]();
}

/**
 * A deadline over a block of code, handed to the function given to {@link timeout} /
 * {@link timeoutAt}. The block can move its deadline (`reschedule()`) and ask whether
 * it passed (`expired()`); `signal` aborts when it passes, for foreign APIs. Deadlines
 * are loop times in ms (see `loop.time()`).
 *
 * A Timeout can also be made first (`new Timeout(when)`, asyncio's `Timeout(when)`;
 * `null`: no deadline yet) and entered later with `t.run(fn)`, once.
 */
export class Timeout {
  #state: TimeoutState = 'created';
  #when: number | null;
  #handle: Handle | null = null;
  #scope: CancelScope | null = null;
  #outer: CancelScope | null = null;
  #loop: Loop | null = null;
  #cancellingAtEntry = 0;

  /** A deadline at loop time `when` (ms; null: none yet), entered by {@link Timeout.run}. */
  constructor(when: number | null) {
    checkWhen(when, 'new Timeout()');
    this.#when = when;
  }

  /**
   * Runs `fn` under this deadline, as `timeoutAt(t.when(), fn)` does; returns its result
   * or throws {@link TimeoutError}. {@link InvalidStateError} if it was entered before.
   */
  run<T>(fn: (t: Timeout) => PromiseLike<T> | T): Promise<T> {
    checkFn(fn, 'Timeout.run()');
    return runWithin(this, fn);
  }

  /**
   * Aborted when the deadline passes (or the code around the block is cancelled), with
   * a {@link CancelledError} as reason: pass it to foreign APIs (fetch, fs, timers) so
   * they stop too. {@link InvalidStateError} before the block starts.
   */
  get signal(): AbortSignal {
    if (this.#scope === null) throw new InvalidStateError('Timeout has not been entered: its signal exists once the block runs');
    return this.#scope.signal;
  }

  /** The state: `created`, `active`, `expiring`, `expired` or `finished`. */
  get state(): TimeoutState {
    return this.#state;
  }

  /** The deadline (loop time, ms), or null for none. */
  when(): number | null {
    return this.#when;
  }

  /**
   * Moves the deadline to loop time `when` (ms; null removes it). A deadline already
   * past fires at the next loop iteration. Throws {@link InvalidStateError} unless the
   * block is running and the deadline has not fired.
   */
  reschedule(when: number | null): void {
    if (this.#state !== 'active') {
      if (this.#state === 'created') throw new InvalidStateError('Timeout has not been entered');
      throw new InvalidStateError(`Cannot change state of ${this.#state} Timeout`);
    }
    checkWhen(when, 'Timeout.reschedule()');
    this.#when = when;
    this.#handle?.cancel();
    this.#handle = null;
    if (when === null || when === Infinity) return;
    const loop = this.#loop!;
    this.#handle = when <= loop.time() ? loop.callSoon(onTimeout, this) : loop.callAt(when, onTimeout, this);
  }

  /** Whether the deadline passed while the block ran. */
  expired(): boolean {
    return this.#state === 'expiring' || this.#state === 'expired';
  }

  /** @internal Starts the deadline over a new scope of the code running now; returns the scope. */
  [kEnter](): CancelScope {
    if (this.#state !== 'created') throw new InvalidStateError('Timeout has already been entered');
    const outer = taskStorage.getStore();
    if (outer === undefined) throw new InvalidStateError('timeout() must be used inside a task');
    this.#loop = getRunningLoop();
    this.#state = 'active';
    this.#outer = outer;
    this.#scope = new CancelScope(outer.task, outer);
    this.#cancellingAtEntry = outer.cancelling();
    this.reschedule(this.#when);
    return this.#scope;
  }

  /** @internal The deadline passed: cancel the block's scope. */
  [kFire](): void {
    if (this.#state !== 'active') return;
    this.#handle = null;
    this.#state = 'expiring';
    this.#scope!.cancel();
  }

  /** @internal The block ended: returns the error to throw instead of the block's, or undefined. */
  [kExit](failed: boolean, error: unknown): TimeoutError | undefined {
    this.#handle?.cancel();
    this.#handle = null;
    const scope = this.#scope!;
    scope.close();
    if (this.#state === 'expiring') {
      this.#state = 'expired';
      scope.uncancel();
      // No request from outside the block beyond those present at entry: the
      // cancellation is ours (or a foreign API's abort for our signal), we handle it.
      if (this.#outer!.cancelling() <= this.#cancellingAtEntry && failed && isOwnCancellation(error, scope)) {
        return new TimeoutError(`the deadline passed (timeout at loop time ${this.#when!.toFixed(3)} ms)`, { cause: error });
      }
    } else if (this.#state === 'active') {
      this.#state = 'finished';
    }
    return undefined;
  }

  toString(): string {
    const when = this.#state === 'active' ? ` when=${this.#when === null ? 'null' : this.#when.toFixed(3)}` : '';
    return `<Timeout [${this.#state}]${when}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

function checkWhen(when: unknown, what: string): asserts when is number | null {
  if (when !== null && (typeof when !== 'number' || Number.isNaN(when))) {
    throw new InvalidArgumentError(`${what} needs a loop time in ms or null, got ${inspect(when)}`);
  }
}

function checkFn(fn: unknown, what: string): void {
  if (typeof fn !== 'function') throw new InvalidArgumentError(`${what} needs a function to run under the deadline`);
}

/** A CancelledError, or the rejection of a foreign API aborted by the scope's signal (the reason itself, or an AbortError caused by it). */
function isOwnCancellation(error: unknown, scope: CancelScope): boolean {
  if (error instanceof CancelledError) return true;
  const reason = scope.abortReason;
  return reason !== null && (error === reason || (error instanceof Error && error.cause === reason));
}

async function callIn<T>(fn: (t: Timeout) => PromiseLike<T> | T, t: Timeout): Promise<T> {
  return await fn(t);
}

async function runWithin<T>(t: Timeout, fn: (t: Timeout) => PromiseLike<T> | T): Promise<T> {
  const scope = t[kEnter]();
  let result: T;
  try {
    // The block and every await it makes (its then() calls included) run in the scope.
    result = await taskStorage.run(scope, callIn, fn, t);
  } catch (e) {
    throw t[kExit](true, e) ?? e;
  }
  t[kExit](false, undefined);
  return result;
}

/**
 * Runs `fn` (in the current task) with a deadline `ms` milliseconds from now; returns
 * its result. When the deadline passes, the work `fn` started is cancelled: every
 * protoloop await made inside `fn` (in all its branches, and only those: concurrent
 * timeouts in one task each stop their own block) throws {@link CancelledError}, and
 * if `fn` lets it out, `timeout()` throws {@link TimeoutError} instead (with the
 * CancelledError as `cause`). A foreign promise is not interrupted: pass `t.signal` to
 * foreign APIs. A cancellation from outside is not turned into a TimeoutError. `ms`
 * null or Infinity: no deadline; `ms <= 0`: it fires at the next loop iteration. `fn`
 * gets the {@link Timeout}, to move the deadline and for its signal.
 *
 * Throws {@link InvalidStateError} outside a task.
 *
 * ```ts
 * const body = await timeout(5_000, async () => (await reader.readUntil('\r\n\r\n')));
 * ```
 */
export async function timeout<T>(ms: number | null, fn: (t: Timeout) => PromiseLike<T> | T): Promise<T> {
  if (ms !== null && (typeof ms !== 'number' || Number.isNaN(ms))) throw new InvalidArgumentError(`timeout() needs a number of ms or null, got ${inspect(ms)}`);
  checkFn(fn, 'timeout()');
  const when = ms === null || ms === Infinity ? null : getRunningLoop().time() + ms;
  return runWithin(new Timeout(when), fn);
}

/**
 * Like {@link timeout}, with an absolute deadline: loop time `when` in ms (see
 * `loop.time()`); null: none.
 */
export async function timeoutAt<T>(when: number | null, fn: (t: Timeout) => PromiseLike<T> | T): Promise<T> {
  checkWhen(when, 'timeoutAt()');
  checkFn(fn, 'timeoutAt()');
  return runWithin(new Timeout(when), fn);
}

function awaitInline<T>(x: Awaitable<T>, loop: Loop): PromiseLike<T> | T {
  if (x instanceof Future || x instanceof Coroutine) return x;
  if (typeof x === 'function') return x();
  // A foreign promise cannot be interrupted: follow it with a future, which can.
  if (isThenable(x)) return ensureFuture(x, loop, 'waitFor()');
  throw new InvalidArgumentError(`waitFor() needs a Future, Task, Coroutine, function returning a promise, or promise; got ${typeof x}`);
}

/**
 * Waits for `x` for at most `ms` milliseconds and returns its result; on timeout,
 * cancels it, waits for the cancellation to finish, and throws {@link TimeoutError}.
 * asyncio 3.12's `wait_for`: a Coroutine or function runs in the current task under a
 * {@link timeout}; a Future/Task is awaited (and cancelled on timeout: wrap it in
 * `shield()` to keep it running); the promise of a stream read made in this task is
 * its read (cancelled on timeout); any other promise is followed by a future (its
 * work goes on after a timeout). If `x` swallows the cancellation and returns a value,
 * that value is returned. `ms <= 0` with `x` not done: `x` is cancelled before it
 * starts. `ms` null or Infinity: no limit.
 */
export async function waitFor<T>(x: Awaitable<T>, ms: number | null): Promise<T> {
  if (ms !== null && (typeof ms !== 'number' || Number.isNaN(ms))) throw new InvalidArgumentError(`waitFor() needs a number of ms or null, got ${inspect(ms)}`);
  const loop = getRunningLoop();
  if (ms !== null && ms <= 0) {
    const fut = ensureFuture(x, loop, 'waitFor()');
    if (fut.done()) return fut.result();
    await cancelAndWait(fut, loop);
    try {
      return fut.result();
    } catch (e) {
      if (e instanceof CancelledError) throw new TimeoutError('the deadline passed (waitFor() with ms <= 0)', { cause: e });
      throw e;
    }
  }
  return timeout(ms, () => awaitInline(x, loop));
}

function releaseWaiter(waiter: Future<void>): void {
  if (!waiter.done()) waiter.setResult();
}

/** @internal Cancels `fut` and waits until it is done, without awaiting `fut` itself (so this wait is cancellable on its own). */
export async function cancelAndWait(fut: Future<unknown>, loop: Loop): Promise<void> {
  const waiter = loop.createFuture<void>('cancelled future to finish');
  const cb = (): void => releaseWaiter(waiter);
  fut.addDoneCallback(cb);
  try {
    fut.cancel();
    await waiter;
  } finally {
    fut.removeDoneCallback(cb);
  }
}
