/**
 * `gather([a, b, c], { returnExceptions })`: run awaitables concurrently and collect
 * their results in order (asyncio's `gather`, with an array instead of varargs so that
 * TypeScript types the result as a tuple).
 * @module
 */
import { CancelledError, InvalidArgumentError } from '../errors.ts';
import { Future } from '../loop/future.ts';
import { getRunningLoop, type Loop } from '../loop/loop.ts';
import { checkAwaitable, ensureFuture, type Awaitable, type AwaitedOf } from './waiters.ts';

/** Options of {@link gather}. */
export interface GatherOptions {
  /**
   * Default false: the first failure rejects the gather at once (the other children go
   * on running). True: failures (and cancellations, as {@link CancelledError}) take
   * their place in the results.
   */
  returnExceptions?: boolean;
}

/** The results of {@link gather}: a tuple of what each awaitable produces. */
export type GatherResults<A extends readonly unknown[]> = { -readonly [K in keyof A]: AwaitedOf<A[K]> };
/** The results of {@link gather} with `returnExceptions: true`: each a value or the error it threw. */
export type GatherSettled<A extends readonly unknown[]> = { -readonly [K in keyof A]: AwaitedOf<A[K]> | Error };

/**
 * The future `gather()` returns. Cancelling it cancels the children that are not done;
 * it then fails with {@link CancelledError} once they finish, even with
 * `returnExceptions` (asyncio's `_GatheringFuture`).
 */
class GatheringFuture<T> extends Future<T> {
  readonly #children: Future<unknown>[];
  cancelRequested = false;

  constructor(loop: Loop, children: Future<unknown>[]) {
    super(loop, `gather(${children.length})`);
    this.#children = children;
  }

  override cancel(msg?: string): boolean {
    if (this.done()) return false;
    let cancelled = false;
    for (const child of this.#children) if (child.cancel(msg)) cancelled = true;
    // A child actually cancelled: the gather must end cancelled, whatever returnExceptions says.
    if (cancelled) this.cancelRequested = true;
    return cancelled;
  }
}

/** The state of one gather() call, shared by its children's done callbacks. */
class Gathering {
  readonly children: Future<unknown>[];
  readonly returnExceptions: boolean;
  readonly total: number;
  finished = 0;
  outer: GatheringFuture<unknown[]> | null = null;

  constructor(children: Future<unknown>[], total: number, returnExceptions: boolean) {
    this.children = children;
    this.total = total;
    this.returnExceptions = returnExceptions;
  }

  onChildDone(fut: Future<unknown>): void {
    this.finished++;
    const outer = this.outer;
    if (outer === null || outer.done()) {
      // Nobody will read it: mark the exception retrieved.
      if (!fut.cancelled()) fut.exception();
      return;
    }
    if (!this.returnExceptions) {
      if (fut.cancelled()) {
        outer.setException(fut.makeCancelledError());
        return;
      }
      const exc = fut.exception();
      if (exc !== null) {
        outer.setException(exc);
        return;
      }
    }
    if (this.finished < this.total) return;
    const results: unknown[] = [];
    for (const child of this.children) {
      if (child.cancelled()) results.push(child.makeCancelledError());
      else {
        const exc = child.exception();
        results.push(exc !== null ? exc : child.result());
      }
    }
    // Cancelled while it waited: cancelled it stays, even with returnExceptions.
    if (outer.cancelRequested) outer.setException(fut.cancelled() ? fut.makeCancelledError() : new CancelledError());
    else outer.setResult(results);
  }
}

function onChildDone(this: Gathering, fut: Future<unknown>): void {
  this.onChildDone(fut);
}

/**
 * Runs the awaitables of `xs` concurrently (Coroutines and functions become tasks) and
 * resolves to their results in the order of `xs`; the array type becomes a typed tuple.
 *
 * - Without `returnExceptions`, the first failure (a cancelled child counts as failing
 *   with {@link CancelledError}) rejects the gather; the other children keep running.
 * - With `returnExceptions: true`, failures are returned in place of results.
 * - Cancelling the returned future, or the task awaiting it, cancels every child not
 *   done; the gather then fails with {@link CancelledError}.
 *
 * The same awaitable given twice runs once. An empty list resolves to `[]`.
 * Throws {@link InvalidArgumentError} for anything that is not awaitable, before
 * starting anything.
 *
 * ```ts
 * const [user, posts] = await gather([getUser(id), () => getPosts(id)]);
 * ```
 */
export function gather<const A extends readonly Awaitable<unknown>[]>(xs: A, options?: GatherOptions & { returnExceptions?: false }): Future<GatherResults<A>>;
export function gather<const A extends readonly Awaitable<unknown>[]>(xs: A, options: GatherOptions & { returnExceptions: true }): Future<GatherSettled<A>>;
export function gather(xs: Iterable<Awaitable<unknown>>, options?: GatherOptions): Future<unknown[]>;
export function gather(xs: Iterable<Awaitable<unknown>>, options: GatherOptions = {}): Future<unknown[]> {
  if (xs === null || typeof xs !== 'object' || typeof (xs as Iterable<unknown>)[Symbol.iterator] !== 'function') {
    throw new InvalidArgumentError('gather() takes an array of awaitables: gather([a, b])');
  }
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('gather() options must be an object');
  const loop = getRunningLoop();
  const args = [...xs];
  for (const x of args) checkAwaitable(x, loop, 'gather()');
  if (args.length === 0) {
    const outer = loop.createFuture<unknown[]>('gather(0)');
    outer.setResult([]);
    return outer;
  }
  const byArg = new Map<unknown, Future<unknown>>();
  const children: Future<unknown>[] = [];
  const alreadyDone: Future<unknown>[] = [];
  const pending: Future<unknown>[] = [];
  for (const x of args) {
    let fut = byArg.get(x);
    if (fut === undefined) {
      fut = ensureFuture(x, loop, 'gather()');
      byArg.set(x, fut);
      (fut.done() ? alreadyDone : pending).push(fut);
    }
    children.push(fut);
  }
  const state = new Gathering(children, byArg.size, options.returnExceptions === true);
  const cb = onChildDone.bind(state);
  for (const fut of pending) fut.addDoneCallback(cb);
  const outer = new GatheringFuture<unknown[]>(loop, children);
  state.outer = outer;
  // Children done already (eager tasks, done futures) count now: if all are, the
  // gather is done before it is returned.
  for (const fut of alreadyDone) state.onChildDone(fut);
  return outer;
}
