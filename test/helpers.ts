/**
 * Waiting helpers shared by the whole suite. Each one waits for an event by polling
 * it, never for a fixed time; the bound only turns a hang into a clear failure.
 *
 * - {@link eventually}: on the running loop (polls with the loop's `sleep`), throws on timeout;
 * - {@link pollUntil}: anywhere (Node timers, no loop needed), returns whether it held;
 * - {@link pollOrThrow}: anywhere, throws on timeout;
 * - {@link afterIterations}: on the running loop, counts loop iterations, not time;
 * - {@link within}: a guard on a promise that should settle;
 * - {@link runVirtual}: `run()` on virtual time (autojump), for tests whose subject is loop logic, not real time.
 */
import { getRunningLoop, run, sleep, type RunOptions, type TaskTarget } from '../src/index.ts';
import { VirtualClock } from '../src/testing/index.ts';

/** Polls `predicate` on the running loop every 5 ms until it holds; throws after `ms` of loop time. */
export async function eventually(predicate: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const loop = getRunningLoop();
  const end = loop.time() + ms;
  while (!predicate()) {
    if (loop.time() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Polls `predicate` every 10 ms with Node's timers (no loop needed) for at most `ms`; returns whether it held. */
export async function pollUntil(predicate: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

/** {@link pollUntil}, throwing `timed out ... waiting for <what>` when `predicate` never held. */
export async function pollOrThrow(predicate: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  if (!(await pollUntil(predicate, ms))) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** Yields one loop iteration at a time (`sleep(0)`) until `predicate` holds; throws after `max` iterations. */
export async function afterIterations(predicate: () => boolean, what = 'condition', max = 100): Promise<void> {
  for (let i = 0; i < max && !predicate(); i++) await sleep(0);
  if (!predicate()) throw new Error(`${what} did not hold within ${max} loop iterations`);
}

/** Awaits `x` for at most `ms`, else throws `<what> did not finish within <ms> ms`. */
export async function within<T>(ms: number, x: PromiseLike<T>, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      x,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `run(main)` on a fresh {@link VirtualClock} with autojump 0: time jumps to the next
 * timer as soon as every task is blocked, so `sleep(1000)` takes no wall time and a
 * loaded machine cannot reorder deadlines. For tests of loop logic (tasks, timeouts,
 * locks, queues); tests of real sockets, children and workers keep real time.
 */
export function runVirtual<T>(main: TaskTarget<T>, options: RunOptions = {}): Promise<T> {
  return run(main, { clock: new VirtualClock({ autojump: 0 }), ...options });
}
