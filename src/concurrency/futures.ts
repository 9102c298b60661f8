/**
 * asyncio's `ensure_future()` and `wrap_future()`: turning something awaitable into a
 * {@link Future} of the running loop (or of a given one).
 * @module
 */
import { InvalidArgumentError } from '../errors.ts';
import { Coroutine } from '../loop/coroutine.ts';
import { Future, futureBehind } from '../loop/future.ts';
import { getRunningLoop, type Loop } from '../loop/loop.ts';
import { isThenable, type Awaitable } from './waiters.ts';

/** Options of {@link ensureFuture} and {@link wrapFuture}. */
export interface EnsureFutureOptions {
  /** The loop the future belongs to. Default: the running loop (`NoRunningLoopError` if none). */
  loop?: Loop;
}

function loopOf(options: EnsureFutureOptions | undefined, what: string): Loop {
  if (options === undefined) return getRunningLoop();
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError(`${what} options must be an object`);
  return options.loop ?? getRunningLoop();
}

function settle<T>(fut: Future<T>, ok: boolean, value: unknown): void {
  // The future may have been cancelled meanwhile (the promise's work goes on: a promise
  // cannot be stopped), or its loop closed: then the outcome has nowhere to go.
  if (fut.done()) return;
  if (ok) fut.setResult(value as T);
  else fut.setException(value);
}

/**
 * A promise or any thenable, followed by a new {@link Future} of the loop (asyncio's
 * `wrap_future()`, for JavaScript's foreign awaitables): the future gets the promise's
 * value or error. Cancelling the future does not stop the promise's work. A Future is
 * returned as is. {@link InvalidArgumentError} for anything that is not a thenable, or
 * a Future of another loop.
 */
export function wrapFuture<T>(p: PromiseLike<T>, options?: EnsureFutureOptions): Future<T> {
  const loop = loopOf(options, 'wrapFuture()');
  if (p instanceof Future) {
    if (p.getLoop() !== loop) throw new InvalidArgumentError('wrapFuture() got a Future attached to a different loop');
    return p;
  }
  if (!isThenable(p)) throw new InvalidArgumentError(`wrapFuture() needs a promise or a thenable, got ${p === null ? 'null' : typeof p}`);
  const fut = loop.createFuture<T>('wrapFuture(promise)');
  p.then(
    (v) => settle(fut, true, v),
    (e: unknown) => settle(fut, false, e),
  );
  return fut;
}

/**
 * asyncio's `ensure_future()`: a Future or Task as is (it must belong to the loop), a
 * {@link Coroutine} or a function returning a promise as a new task, a promise or
 * thenable through {@link wrapFuture}; the promise a stream read returned, in the task
 * that made the read, as the read's own future (cancelling it cancels the read).
 * {@link InvalidArgumentError} for anything else.
 */
export function ensureFuture<T>(x: Awaitable<T>, options?: EnsureFutureOptions): Future<T> {
  const loop = loopOf(options, 'ensureFuture()');
  if (x instanceof Future) {
    if (x.getLoop() !== loop) throw new InvalidArgumentError('ensureFuture(): the future belongs to a different loop than the one given');
    return x;
  }
  if (x instanceof Coroutine || typeof x === 'function') return loop.createTask(x as Coroutine<T> | (() => PromiseLike<T> | T));
  if (isThenable(x)) {
    // The promise of a protoloop await of this task (a stream read): its own future.
    const behind = futureBehind(x);
    if (behind !== null && behind.getLoop() === loop) return behind as Future<T>;
    return wrapFuture(x as PromiseLike<T>, { loop });
  }
  throw new InvalidArgumentError(`ensureFuture() needs a Future, a Task, a Coroutine, a function returning a promise, or a promise; got ${x === null ? 'null' : typeof x}`);
}
