/**
 * `sleep()`: a cancellable pause on the running loop.
 * @module
 */
import { InvalidArgumentError } from '../errors.ts';
import type { Future } from './future.ts';
import { kCallSoon, kSetResultNow } from './symbols.ts';
import { getRunningLoop } from './loop.ts';

function setResultUnlessDone<T>(fut: Future<T>, value: T): void {
  if (!fut.done()) fut.setResult(value);
}

// sleep(0) is asyncio's bare yield: the task resumes in the next iteration, at this
// callback's place, not one callback later.
function resumeUnlessDone<T>(fut: Future<T>, value: T): void {
  if (!fut.done()) fut[kSetResultNow](value);
}

/**
 * Waits `ms` milliseconds on the running loop, then resolves with `value`.
 * `sleep(0)` yields to the loop for exactly one iteration (asyncio's bare yield). Cancelling the task cancels the sleep.
 * Throws `NoRunningLoopError` outside a running loop.
 */
export async function sleep<T = void>(ms: number, value?: T): Promise<T> {
  if (typeof ms !== 'number' || Number.isNaN(ms)) throw new InvalidArgumentError(`sleep() needs a number of milliseconds, got ${String(ms)}`);
  const loop = getRunningLoop();
  const fut = loop.createFuture<T>(`sleep(${ms} ms)`);
  const handle = ms <= 0 ? loop[kCallSoon](resumeUnlessDone, fut, value) : loop.callLater(ms, setResultUnlessDone, fut, value as T);
  try {
    return await fut;
  } finally {
    handle.cancel();
  }
}
