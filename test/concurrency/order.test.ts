// asyncio's iteration-counting cases: ports of CPython 3.13's test_locks.py (Condition,
// Semaphore, Lock) and test_tasks.py (wait, gather) whose assertions hold only when a
// woken task runs at its callback's place and sleep(0) yields exactly one iteration.
import { describe, expect, it } from 'vitest';
import {
  CancelledError,
  Condition,
  Event,
  gather,
  getRunningLoop,
  Lock,
  Loop,
  Queue,
  run,
  Semaphore,
  sleep,
  wait,
  type Task,
} from './helpers.ts';

function task<T>(fn: () => Promise<T>): Task<T> {
  return getRunningLoop().createTask(fn);
}

describe('Condition (asyncio ports, exact iterations)', () => {
  it('each notified waiter runs one iteration after the lock is released to it (test_wait)', async () => {
    await run(async () => {
      const cond = new Condition();
      const result: number[] = [];
      const c = (n: number) => async () => {
        await cond.acquire();
        if (await cond.wait()) result.push(n);
        return true;
      };
      const t1 = task(c(1));
      const t2 = task(c(2));
      const t3 = task(c(3));
      await sleep(0);
      expect(result).toEqual([]);
      expect(cond.locked()).toBe(false);

      await cond.acquire();
      cond.notify();
      await sleep(0);
      expect(result).toEqual([]);
      expect(cond.locked()).toBe(true);

      cond.release();
      await sleep(0);
      expect(result).toEqual([1]);
      expect(cond.locked()).toBe(true);

      cond.notify(2);
      await sleep(0);
      expect(result).toEqual([1]);
      expect(cond.locked()).toBe(true);

      cond.release();
      await sleep(0);
      expect(result).toEqual([1, 2]);
      expect(cond.locked()).toBe(true);

      cond.release();
      await sleep(0);
      expect(result).toEqual([1, 2, 3]);
      expect(cond.locked()).toBe(true);
      for (const t of [t1, t2, t3]) {
        expect(t.done()).toBe(true);
        expect(t.result()).toBe(true);
      }
    });
  });

  it('waitFor() re-checks its predicate at each notification (test_wait_for)', async () => {
    await run(async () => {
      const cond = new Condition();
      let presult = false;
      const result: number[] = [];
      const t = task(async () => {
        await cond.acquire();
        if (await cond.waitFor(() => presult)) {
          result.push(1);
          cond.release();
        }
        return true;
      });
      await sleep(0);
      expect(result).toEqual([]);
      await cond.acquire();
      cond.notify();
      cond.release();
      await sleep(0);
      expect(result).toEqual([]);
      presult = true;
      await cond.acquire();
      cond.notify();
      cond.release();
      await sleep(0);
      expect(result).toEqual([1]);
      expect(t.done()).toBe(true);
      expect(t.result()).toBe(true);
    });
  });

  it('notify(1), then notify(1) + notify(2048), each round in one iteration (test_notify)', async () => {
    await run(async () => {
      const cond = new Condition();
      const result: number[] = [];
      const c = (n: number) => async () => {
        await cond.acquire();
        if (await cond.wait()) {
          result.push(n);
          cond.release();
        }
        return true;
      };
      const ts = [task(c(1)), task(c(2)), task(c(3))];
      await sleep(0);
      expect(result).toEqual([]);
      await cond.acquire();
      cond.notify(1);
      cond.release();
      await sleep(0);
      expect(result).toEqual([1]);
      await cond.acquire();
      cond.notify(1);
      cond.notify(2048);
      cond.release();
      await sleep(0);
      expect(result).toEqual([1, 2, 3]);
      for (const t of ts) expect(t.result()).toBe(true);
    });
  });

  it('notifyAll() wakes both waiters within one iteration (test_notify_all)', async () => {
    await run(async () => {
      const cond = new Condition();
      const result: number[] = [];
      const c = (n: number) => async () => {
        await cond.acquire();
        if (await cond.wait()) {
          result.push(n);
          cond.release();
        }
        return true;
      };
      const ts = [task(c(1)), task(c(2))];
      await sleep(0);
      expect(result).toEqual([]);
      await cond.acquire();
      cond.notifyAll();
      cond.release();
      await sleep(0);
      expect(result).toEqual([1, 2]);
      for (const t of ts) expect(t.result()).toBe(true);
    });
  });
});

describe('Semaphore and Lock (asyncio ports, exact iterations)', () => {
  it('a re-acquiring task queues behind the waiters already there (test_acquire_fifo_order_2)', async () => {
    await run(async () => {
      const sem = new Semaphore(1);
      const result: number[] = [];
      const t1 = task(async () => {
        await sem.acquire();
        result.push(1);
        return true;
      });
      const t2 = task(async () => {
        await sem.acquire();
        result.push(2);
        sem.release();
        await sem.acquire();
        result.push(4);
        return true;
      });
      const t3 = task(async () => {
        await sem.acquire();
        result.push(3);
        return true;
      });
      await sleep(0);
      sem.release();
      sem.release();
      await gather([t1, t2, t3]);
      expect(result).toEqual([1, 2, 3, 4]);
    });
  });

  it('a cancelled waiter gives its place to the next ones (test_acquire_fifo_order_3)', async () => {
    await run(async () => {
      const sem = new Semaphore(0);
      const result: number[] = [];
      const c = (n: number) => async () => {
        await sem.acquire();
        result.push(n);
        return true;
      };
      const ts = [task(c(1)), task(c(2)), task(c(3))];
      await sleep(0);
      ts[0]!.cancel();
      await sleep(0);
      sem.release();
      sem.release();
      await gather(ts, { returnExceptions: true });
      expect(result).toEqual([2, 3]);
    });
  });

  it('a waiter cancelled as the holder releases: the holder is done one iteration later (test_cancel_race)', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const lock = new Lock();
      const lockit = (blocker: PromiseLike<unknown> | null) => async () => {
        await lock.acquire();
        try {
          if (blocker !== null) await blocker;
        } finally {
          lock.release();
        }
      };
      const fa = loop.createFuture<void>();
      const ta = task(lockit(fa));
      await sleep(0);
      expect(lock.locked()).toBe(true);
      const tb = task(lockit(null));
      await sleep(0);
      expect(String(lock)).toContain('waiters:1');
      const tc = task(lockit(null));
      await sleep(0);
      expect(String(lock)).toContain('waiters:2');
      fa.setResult();
      tb.cancel();
      await sleep(0);
      expect(lock.locked()).toBe(false);
      expect(ta.done()).toBe(true);
      expect(tb.cancelled()).toBe(true);
      await tc;
    });
  });

  it('uncontended acquire(), get() with an item waiting and wait() on a set event take no loop iteration', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const lock = new Lock();
      const sem = new Semaphore(2);
      const q = new Queue<number>();
      q.putNowait(1);
      const ev = new Event();
      ev.set();
      const before = loop.stats().iterations;
      (await lock.acquire()).release();
      (await sem.acquire()).release();
      expect(await q.get()).toBe(1);
      expect(await ev.wait()).toBe(true);
      await q.put(2); // unbounded: never waits
      expect(loop.stats().iterations - before).toBe(0);
    });
  });
});

describe('wait() and gather() (asyncio ports, exact iterations)', () => {
  it('FIRST_COMPLETED returns every task that finished in the same iteration (test_wait_really_done)', async () => {
    await run(async () => {
      const a = task(async () => {
        await sleep(0);
      });
      const b = task(async () => {
        await sleep(0);
        await sleep(0);
      });
      const { done, pending } = await wait([b, a], { returnWhen: 'FIRST_COMPLETED' });
      expect(done).toEqual(new Set([a, b]));
      expect(pending.size).toBe(0);
      expect(a.result()).toBeUndefined();
      expect(b.done()).toBe(true);
    });
  });

  it('counts a task that finishes in the iteration of the timeout as done (test_wait_with_timeout, same iteration)', async () => {
    // A clock moved by hand: both deadlines are due in the same iteration.
    let now = 0;
    const loop = new Loop({ clock: () => now });
    const result = await loop.runUntilComplete(async () => {
      const a = loop.createTask(() => sleep(50));
      const b = loop.createTask(() => sleep(150));
      const foo = loop.createTask(async () => {
        const { done, pending } = await wait([b, a], { timeout: 50 });
        return { a: done.has(a), b: pending.has(b) };
      });
      await sleep(0); // a, b and foo have scheduled their timers, in that order
      now = 100;
      const r = await foo;
      b.cancel();
      return r;
    });
    expect(result).toEqual({ a: true, b: true });
    loop.close();
  });

  it('cancelling a gather from the awaited future\'s done callback returns false (test_cancel_gather_1)', async () => {
    const loop = new Loop();
    const fut = loop.createFuture<number>();
    // asyncio.ensure_future(gather_future) is the gathering future itself.
    const [gatherFuture] = await loop.runUntilComplete(async () => {
      // The indirection fut -> child is needed, else the gather is done with fut.
      const child = async (): Promise<number> => await fut;
      return [gather([child])] as const;
    });
    const gatherTask = gatherFuture;
    let cancelResult: boolean | null = null;
    fut.addDoneCallback(() => {
      cancelResult = gatherTask.cancel();
    });
    fut.setResult(42);
    await loop.runUntilComplete(gatherTask);
    expect(cancelResult).toBe(false);
    expect(gatherTask.cancelled()).toBe(false);
    expect(gatherTask.result()).toEqual([42]);
    loop.close();
  });

  it('a cancelled waiter of a woken task still ends cancelled at that await', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const fut = loop.createFuture<number>();
      const t = task(async () => await fut);
      await sleep(0);
      fut.setResult(1);
      t.cancel();
      await sleep(0);
      expect(t.cancelled()).toBe(true);
      expect(fut.result()).toBe(1);
      expect(await gather([t], { returnExceptions: true })).toEqual([expect.any(CancelledError)]);
    });
  });
});
