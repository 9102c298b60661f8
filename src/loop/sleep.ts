/**
 * `sleep()`: a cancellable pause on the running loop.
 * @module
 */
import { InvalidArgumentError } from '../errors.ts';
import type { Future } from './future.ts';
import { getRunningLoop } from './loop.ts';

function setResultUnlessDone<T>(fut: Future<T>, value: T): void {
  if (!fut.done()) fut.setResult(value);
}

/**
 * Waits `ms` milliseconds on the running loop, then resolves with `value`.
 * `sleep(0)` yields to the loop once. Cancelling the task cancels the sleep.
 * Throws `NoRunningLoopError` outside a running loop.
 */
export async function sleep<T = void>(ms: number, value?: T): Promise<T> {
  if (typeof ms !== 'number' || Number.isNaN(ms)) throw new InvalidArgumentError(`sleep() needs a number of milliseconds, got ${String(ms)}`);
  const loop = getRunningLoop();
  const fut = loop.createFuture<T>(`sleep(${ms} ms)`);
  const handle = ms <= 0 ? loop.callSoon(setResultUnlessDone, fut, value as T) : loop.callLater(ms, setResultUnlessDone, fut, value as T);
  try {
    return await fut;
  } finally {
    handle.cancel();
  }
}
