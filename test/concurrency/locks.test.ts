// Lock, Event, Condition. Ported from CPython's test_locks.py (behaviours, not code).
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runVirtual } from '../helpers.ts';
import {
  CancelledError,
  caught,
  Condition,
  Event,
  gather,
  getRunningLoop,
  InvalidArgumentError,
  InvalidStateError,
  Lock,
  Loop,
  Runner,
  sleep,
  timeout,
  TimeoutError,
  waitFor,
} from './helpers.ts';

async function tick(n = 1): Promise<void> {
  for (let i = 0; i < n; i++) await sleep(0);
}

describe('Lock', () => {
  it('prints its state', async () => {
    await runVirtual(async () => {
      const lock = new Lock();
      expect(String(lock)).toBe('<Lock [unlocked]>');
      await lock.acquire();
      expect(inspect(lock)).toBe('<Lock [locked]>');
      expect(lock.state).toBe('locked');
      const t = getRunningLoop().createTask(() => lock.acquire());
      await tick();
      expect(String(lock)).toBe('<Lock [locked, waiters:1]>');
      t.cancel();
      await caught(t);
    });
  });

  it('hands the lock over in FIFO order (acquire)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const lock = new Lock();
      const result: number[] = [];
      expect(await lock.acquire()).toBeTruthy();
      const c = (n: number) => async (): Promise<boolean> => {
        await lock.acquire();
        result.push(n);
        return true;
      };
      const t1 = loop.createTask(c(1));
      const t2 = loop.createTask(c(2));
      await tick();
      expect(result).toEqual([]);
      lock.release();
      await tick();
      expect(result).toEqual([1]);
      await tick();
      expect(result).toEqual([1]);
      const t3 = loop.createTask(c(3));
      lock.release();
      await tick();
      expect(result).toEqual([1, 2]);
      lock.release();
      await tick();
      expect(result).toEqual([1, 2, 3]);
      for (const t of [t1, t2, t3]) expect(t.result()).toBe(true);
    });
  });

  it('a new caller never jumps the queue while a woken waiter has not run yet', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const lock = new Lock();
      const order: string[] = [];
      await lock.acquire();
      const waiter = loop.createTask(async () => {
        await lock.acquire();
        order.push('waiter');
        lock.release();
      });
      await tick();
      lock.release(); // the waiter is woken, but has not run yet: the lock looks free
      expect(lock.locked()).toBe(false);
      const late = loop.createTask(async () => {
        await lock.acquire();
        order.push('late');
        lock.release();
      });
      await waiter;
      await late;
      expect(order).toEqual(['waiter', 'late']);
    });
  });

  it('a cancelled acquirer leaves no waiter behind (acquire_cancel)', async () => {
    await runVirtual(async () => {
      const lock = new Lock();
      await lock.acquire();
      const task = getRunningLoop().createTask(() => lock.acquire());
      getRunningLoop().callSoon(() => task.cancel());
      expect(await caught(task)).toBeInstanceOf(CancelledError);
      expect(String(lock)).toBe('<Lock [locked]>');
    });
  });

  it('a waiter cancelled as the holder releases passes the lock on (cancel_race)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const lock = new Lock();
      const lockit = async (blocker: PromiseLike<unknown> | null): Promise<void> => {
        await lock.acquire();
        try {
          if (blocker !== null) await blocker;
        } finally {
          lock.release();
        }
      };
      const fa = loop.createFuture<void>();
      const ta = loop.createTask(() => lockit(fa));
      await tick();
      expect(lock.locked()).toBe(true);
      const tb = loop.createTask(() => lockit(null));
      await tick();
      const tc = loop.createTask(() => lockit(null));
      await tick();
      expect(String(lock)).toBe('<Lock [locked, waiters:2]>');
      fa.setResult();
      tb.cancel();
      await tc;
      expect(ta.done()).toBe(true);
      expect(tb.cancelled()).toBe(true);
      expect(lock.locked()).toBe(false);
    });
  });

  it('cancelling one waiter while releasing lets exactly one other in (cancel_release_race, bpo-32734)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const lock = new Lock();
      let lockCount = 0;
      let callCount = 0;
      const lockit = async (): Promise<void> => {
        callCount++;
        await lock.acquire();
        lockCount++;
      };
      await lock.acquire();
      const t1 = loop.createTask(lockit);
      const t2 = loop.createTask(lockit);
      const t3 = loop.createTask(lockit);
      await tick();
      loop.callSoon(() => {
        t1.cancel();
        lock.release();
      });
      expect(await caught(t1)).toBeInstanceOf(CancelledError);
      await tick(2);
      expect(lockCount).toBe(1);
      expect(callCount).toBe(3);
      expect(t1.cancelled() && t2.done()).toBe(true);
      t3.cancel();
      await caught(t3);
      expect(t3.cancelled()).toBe(true);
    });
  });

  it('a woken waiter that is then cancelled wakes the next one (finished_waiter_cancelled)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const lock = new Lock();
      await lock.acquire();
      const tb = loop.createTask(() => lock.acquire());
      await tick();
      const tc = loop.createTask(() => lock.acquire());
      tb.cancel();
      lock.release();
      await tc;
      expect(lock.locked()).toBe(true);
      expect(tb.cancelled()).toBe(true);
    });
  });

  it('cancelled after being handed the lock but before resuming: no lock is lost', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const lock = new Lock();
      await lock.acquire();
      const tb = loop.createTask(() => lock.acquire());
      const tc = loop.createTask(() => lock.acquire());
      await tick();
      lock.release(); // hands the lock to tb (its waiter future is done)...
      tb.cancel(); // ...which is cancelled before it resumes
      expect(await caught(tb)).toBeInstanceOf(CancelledError);
      await tc; // tc gets the lock instead
      expect(lock.locked()).toBe(true);
      lock.release();
      expect(lock.locked()).toBe(false);
    });
  });

  it('release() of an unlocked lock throws; release with no waiters unlocks (release_not_acquired, no_waiters)', async () => {
    await runVirtual(async () => {
      const lock = new Lock();
      expect(() => lock.release()).toThrow(InvalidStateError);
      await lock.acquire();
      expect(lock.locked()).toBe(true);
      lock.release();
      expect(lock.locked()).toBe(false);
    });
  });

  it('works with using / await using and hold(), releasing once even if disposed twice', async () => {
    await runVirtual(async () => {
      const lock = new Lock();
      {
        using held = await lock.acquire();
        expect(lock.locked()).toBe(true);
        held.release();
        expect(held.released).toBe(true);
        expect(lock.locked()).toBe(false);
        await lock.acquire(); // someone else's hold: the block's dispose must not release it
      }
      expect(lock.locked()).toBe(true);
      lock.release();
      {
        await using _held = await lock.acquire();
        expect(lock.locked()).toBe(true);
      }
      expect(lock.locked()).toBe(false);
      expect(await lock.hold(() => (expect(lock.locked()).toBe(true), 5))).toBe(5);
      expect(lock.locked()).toBe(false);
      expect(await caught(lock.hold(() => Promise.reject(new Error('x'))))).toBeInstanceOf(Error);
      expect(lock.locked()).toBe(false);
      expect(await caught(lock.hold('x' as never))).toBeInstanceOf(InvalidArgumentError);
    });
  });

  it('a waiting task is described as awaiting Lock.acquire()', async () => {
    await runVirtual(async () => {
      const lock = new Lock();
      await lock.acquire();
      const t = getRunningLoop().createTask(() => lock.acquire(), { name: 'blocked' });
      await tick();
      expect(t.awaiting()?.description).toBe('Lock.acquire()');
      expect(String(t)).toMatch(/Lock\.acquire\(\)/);
      t.cancel();
      await caught(t);
    });
  });

  it('an AbortSignal ends the wait with its reason and takes nothing', async () => {
    await runVirtual(async () => {
      const lock = new Lock();
      await lock.acquire();
      const ac = new AbortController();
      const p = lock.acquire({ signal: ac.signal });
      const other = getRunningLoop().createTask(() => lock.acquire());
      await tick();
      const reason = new Error('no longer needed');
      ac.abort(reason);
      expect(await caught(p)).toBe(reason);
      lock.release();
      await other; // the next waiter gets the lock
      expect(lock.locked()).toBe(true);
      // Already aborted: rejects at once, even when the lock is free.
      lock.release();
      expect(await caught(lock.acquire({ signal: AbortSignal.abort(reason) }))).toBe(reason);
      expect(lock.locked()).toBe(false);
      expect(await caught(lock.acquire({ signal: 'x' as never }))).toBeInstanceOf(InvalidArgumentError);
      // AbortSignal.timeout: a Node-style deadline.
      await lock.acquire();
      const err = await caught(lock.acquire({ signal: AbortSignal.timeout(5) }));
      expect((err as Error).name).toBe('TimeoutError');
      expect(lock.locked()).toBe(true);
    });
  });

  it('is bound to one running loop, and rebinds once that loop is closed', async () => {
    const lock = new Lock();
    const runner = new Runner();
    await runner.run(async () => {
      await lock.acquire();
      const t = getRunningLoop().createTask(() => lock.acquire());
      await tick();
      expect(t.done()).toBe(false);
      // A second loop cannot run while this one does; simulate use from another loop
      // once this one is closed instead (below).
      t.cancel();
      await caught(t);
      lock.release();
    });
    await runner.close();
    await runVirtual(async () => {
      await lock.acquire();
      const t = getRunningLoop().createTask(() => lock.acquire());
      await tick();
      lock.release();
      await t;
      lock.release();
    });
    // Used from another loop while its own is alive (not running): refused.
    const a = new Loop();
    const b = new Loop();
    const l2 = new Lock();
    await a.runUntilComplete(async () => {
      await l2.acquire();
      const t = a.createTask(() => l2.acquire());
      await tick();
      expect(t.done()).toBe(false);
      t.cancel();
      await caught(t);
    });
    const err = await b
      .runUntilComplete(() => l2.acquire())
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(InvalidStateError);
    expect(String((err as Error).message)).toMatch(/different event loop/);
    a.close();
    b.close();
  });
});

describe('Event', () => {
  it('set() wakes every waiter; wait() on a set event returns at once (wait, wait_on_set)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const ev = new Event();
      expect(String(ev)).toBe('<Event [unset]>');
      const result: number[] = [];
      const c = (n: number) => async (): Promise<boolean> => {
        if (await ev.wait()) result.push(n);
        return true;
      };
      const t1 = loop.createTask(c(1));
      const t2 = loop.createTask(c(2));
      await tick();
      expect(result).toEqual([]);
      expect(String(ev)).toBe('<Event [unset, waiters:2]>');
      const t3 = loop.createTask(c(3));
      ev.set();
      expect(ev.isSet()).toBe(true);
      await tick(2);
      expect(result.sort()).toEqual([1, 2, 3]);
      expect(t1.result() && t2.result() && t3.result()).toBe(true);
      expect(await ev.wait()).toBe(true);
      expect(ev.state).toBe('set');
    });
  });

  it('a cancelled waiter is removed; clear() with waiters keeps them waiting (wait_cancel, clear, clear_with_waiters)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const ev = new Event();
      const wait = loop.createTask(() => ev.wait());
      loop.callSoon(() => wait.cancel());
      expect(await caught(wait)).toBeInstanceOf(CancelledError);
      expect(String(ev)).toBe('<Event [unset]>');
      ev.set();
      ev.clear();
      expect(ev.isSet()).toBe(false);
      let woken = 0;
      const t = loop.createTask(async () => {
        await ev.wait();
        woken++;
      });
      await tick();
      ev.set();
      ev.clear(); // the waiter was already woken by set()
      await t;
      expect(woken).toBe(1);
      expect(ev.isSet()).toBe(false);
      const ac = new AbortController();
      const p = ev.wait({ signal: ac.signal });
      ac.abort();
      expect((await caught(p)) as Error).toHaveProperty('name', 'AbortError');
      expect(await caught(waitFor(ev.wait(), 2))).toBeInstanceOf(TimeoutError);
    });
  });
});

describe('Condition', () => {
  it('notify(n) wakes waiters in order, each once it gets the lock back (wait)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const cond = new Condition();
      const result: number[] = [];
      const c = (n: number) => async (): Promise<boolean> => {
        await cond.acquire();
        if (await cond.wait()) result.push(n);
        return true;
      };
      const tasks = [1, 2, 3].map((n) => loop.createTask(c(n)));
      await tick();
      expect(result).toEqual([]);
      expect(cond.locked()).toBe(false);
      expect(await cond.acquire()).toBeTruthy();
      cond.notify();
      await tick();
      expect(result).toEqual([]);
      expect(cond.locked()).toBe(true);
      cond.release();
      await tick();
      expect(result).toEqual([1]);
      expect(cond.locked()).toBe(true);
      cond.notify(2);
      await tick();
      expect(result).toEqual([1]);
      cond.release();
      await tick();
      expect(result).toEqual([1, 2]);
      cond.release();
      await tick();
      expect(result).toEqual([1, 2, 3]);
      expect(cond.locked()).toBe(true);
      for (const t of tasks) expect(t.result()).toBe(true);
    });
  });

  it('a cancelled wait still re-acquires the lock (wait_cancel, wait_cancel_contested)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const cond = new Condition();
      await cond.acquire();
      const wait = loop.createTask(() => cond.wait());
      loop.callSoon(() => wait.cancel());
      expect(await caught(wait)).toBeInstanceOf(CancelledError);
      expect(String(cond)).toBe('<Condition [locked]>');
      expect(cond.locked()).toBe(true);
      cond.release();

      await cond.acquire();
      const waitTask = loop.createTask(() => cond.wait());
      await tick();
      expect(cond.locked()).toBe(false);
      await cond.acquire();
      cond.notify();
      loop.callSoon(() => waitTask.cancel());
      loop.callSoon(() => cond.release());
      await caught(waitTask).catch(() => undefined);
      expect(cond.locked()).toBe(true);
    });
  });

  it('cancelled after notify, while re-acquiring: ends cancelled (wait_cancel_after_notify, bpo-32841)', async () => {
    await runVirtual(async () => {
      let waited = false;
      const cond = new Condition();
      const waiter = getRunningLoop().createTask(() =>
        cond.hold(async () => {
          waited = true;
          await cond.wait();
        }),
      );
      await tick();
      await cond.acquire();
      cond.notify();
      await tick();
      waiter.cancel();
      await tick();
      cond.release();
      await caught(waiter);
      expect(waiter.cancelled()).toBe(true);
      expect(waited).toBe(true);
      expect(cond.locked()).toBe(false);
    });
  });

  it('wait()/notify() without the lock throw (wait_unacquired, notify_unacquired)', async () => {
    await runVirtual(async () => {
      const cond = new Condition();
      expect(await caught(cond.wait())).toBeInstanceOf(InvalidStateError);
      expect(() => cond.notify()).toThrow(InvalidStateError);
      expect(() => cond.notifyAll()).toThrow(InvalidStateError);
      expect(() => new Condition('x' as never)).toThrow(InvalidArgumentError);
    });
  });

  it('waitFor(predicate) re-checks after each wake-up and returns the predicate value (wait_for)', async () => {
    await runVirtual(async () => {
      const cond = new Condition();
      let presult: number | false = false;
      const result: number[] = [];
      const t = getRunningLoop().createTask(() =>
        cond.hold(async () => {
          const v = await cond.waitFor(() => presult);
          result.push(v as number);
          return v;
        }),
      );
      await tick();
      await cond.hold(() => cond.notify());
      await tick();
      expect(result).toEqual([]);
      presult = 7;
      await cond.hold(() => cond.notify());
      expect(await t).toBe(7);
      expect(result).toEqual([7]);
    });
  });

  it('notifyAll() wakes everyone; notify(n) exactly n (notify, notify_all)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const cond = new Condition();
      const result: number[] = [];
      const tasks = [1, 2, 3].map((n) =>
        loop.createTask(() =>
          cond.hold(async () => {
            await cond.wait();
            result.push(n);
          }),
        ),
      );
      await tick();
      await cond.hold(() => cond.notify(1));
      await tick(2);
      expect(result).toEqual([1]);
      await cond.hold(() => cond.notifyAll());
      await gather(tasks);
      expect(result).toEqual([1, 2, 3]);
    });
  });

  it('shares an explicit lock (explicit_lock)', async () => {
    await runVirtual(async () => {
      const lock = new Lock();
      const cond = new Condition(lock);
      await lock.acquire();
      expect(cond.locked()).toBe(true);
      cond.release();
      expect(lock.locked()).toBe(false);
    });
  });

  it('a deadline inside the block: the wait times out and the lock is held again (timeout_in_block)', async () => {
    await runVirtual(async () => {
      const cond = new Condition();
      await cond.hold(async () => {
        expect(await caught(waitFor(() => cond.wait(), 5))).toBeInstanceOf(TimeoutError);
        expect(cond.locked()).toBe(true);
      });
      expect(cond.locked()).toBe(false);
    });
  });

  it('lets the CancelledError received while waiting or re-acquiring out, with its message (cancelled_error_wakeup, re_aquire)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      for (const whileReacquiring of [false, true]) {
        let wake = false;
        let raised: unknown = null;
        const cond = new Condition();
        const task = loop.createTask(() =>
          cond.hold(async () => {
            raised = await caught(cond.waitFor(() => wake));
            throw raised;
          }),
        );
        await tick();
        if (whileReacquiring) {
          await cond.acquire();
          wake = true;
          cond.notify();
          await tick();
          task.cancel('foo');
          cond.release();
        } else {
          task.cancel('foo');
        }
        const err = await caught(task);
        // The task's own code saw the cancellation (with its message) and let it out.
        expect(raised).toBeInstanceOf(CancelledError);
        expect((raised as Error).message).toBe('foo');
        expect(err).toBeInstanceOf(CancelledError);
        expect((err as Error).message).toBe('foo');
        expect(task.cancelled()).toBe(true);
      }
    });
  });

  it('a task cancelled as it is notified does not lose the notification (cancelled_wakeup, cancelled_wakeup_relock)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      for (const relock of [false, true]) {
        const condition = new Condition();
        let state = 0;
        const consumer = (): Promise<void> =>
          condition.hold(async () => {
            for (;;) {
              await condition.waitFor(() => state !== 0);
              if (state < 0) return;
              state -= 1;
            }
          });
        const c = [loop.createTask(consumer), loop.createTask(consumer)];
        await tick();
        await condition.hold(async () => {
          state += 1;
          condition.notify(1);
          if (relock) await tick();
          c[0]!.cancel();
          await caught(timeout(20, () => condition.waitFor(() => state === 0))).catch(() => undefined);
          expect(state).toBe(0);
          state = -1;
          condition.notifyAll();
        });
        await c[1];
        await caught(c[0]!).catch(() => undefined);
      }
    });
  });

  it('an aborted signal ends the wait with its reason, with the lock held again', async () => {
    await runVirtual(async () => {
      const cond = new Condition();
      const ac = new AbortController();
      const reason = new Error('stop');
      await cond.hold(async () => {
        getRunningLoop().callLater(2, () => ac.abort(reason));
        expect(await caught(cond.wait({ signal: ac.signal }))).toBe(reason);
        expect(cond.locked()).toBe(true);
      });
    });
  });
});

