// Semaphore, BoundedSemaphore, Barrier. Ported from CPython's test_locks.py (behaviours, not code).
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runVirtual } from '../helpers.ts';
import {
  Barrier,
  BoundedSemaphore,
  BrokenBarrierError,
  CancelledError,
  caught,
  gather,
  getRunningLoop,
  InvalidArgumentError,
  InvalidStateError,
  Semaphore,
  sleep,
  taskGroup,
  wait,
  waitFor,
  type Task,
} from './helpers.ts';
import { afterIterations } from '../helpers.ts';

async function tick(n = 1): Promise<void> {
  for (let i = 0; i < n; i++) await sleep(0);
}


describe('Semaphore', () => {
  it('validates its value and prints its state (initial_value_zero, repr)', async () => {
    expect(() => new Semaphore(-1)).toThrow(InvalidArgumentError);
    expect(() => new Semaphore(1.5)).toThrow(InvalidArgumentError);
    expect(() => new Semaphore('2' as never)).toThrow(InvalidArgumentError);
    expect(new Semaphore(0).locked()).toBe(true);
    await runVirtual(async () => {
      const sem = new Semaphore(2);
      expect(String(sem)).toBe('<Semaphore [unlocked, value:2]>');
      await sem.acquire();
      await sem.acquire();
      expect(inspect(sem)).toBe('<Semaphore [locked]>');
      const t = getRunningLoop().createTask(() => sem.acquire());
      await tick();
      expect(String(sem)).toBe('<Semaphore [locked, waiters:1]>');
      t.cancel();
      await caught(t);
      expect(sem.value).toBe(0);
    });
  });

  it('hands permits out in FIFO order (acquire)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const sem = new Semaphore(3);
      const result: number[] = [];
      expect(sem.value).toBe(3);
      await sem.acquire();
      await sem.acquire();
      expect(sem.value).toBe(1);
      const c = (n: number) => async (): Promise<boolean> => {
        await sem.acquire();
        result.push(n);
        return true;
      };
      const t1 = loop.createTask(c(1));
      const t2 = loop.createTask(c(2));
      const t3 = loop.createTask(c(3));
      await tick();
      expect(result).toEqual([1]);
      expect(sem.locked()).toBe(true);
      expect(sem.value).toBe(0);
      const t4 = loop.createTask(c(4));
      sem.release();
      sem.release();
      expect(sem.value).toBe(0);
      await tick(2);
      expect(result).toEqual([1, 2, 3]);
      expect(sem.value).toBe(0);
      sem.release();
      await t4;
      expect(result).toEqual([1, 2, 3, 4]);
      for (const t of [t1, t2, t3, t4]) expect(t.result()).toBe(true);
    });
  });

  it('a cancelled acquirer takes no permit (acquire_cancel, acquire_cancel_before_awoken, acquire_hang)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const sem = new Semaphore();
      await sem.acquire();
      const acquire = loop.createTask(() => sem.acquire());
      loop.callSoon(() => acquire.cancel());
      expect(await caught(acquire)).toBeInstanceOf(CancelledError);
      expect(String(sem)).toBe('<Semaphore [locked]>');

      const sem0 = new Semaphore(0);
      const ts = [0, 1, 2, 3].map(() => loop.createTask(() => sem0.acquire()));
      await tick();
      ts[0]!.cancel();
      ts[1]!.cancel();
      sem0.release();
      await tick(2);
      expect(ts[2]!.done()).toBe(true);
      expect(ts[3]!.done()).toBe(false);
      ts[3]!.cancel();
      await caught(ts[3]!);

      const sem1 = new Semaphore(0);
      const t1 = loop.createTask(() => sem1.acquire());
      const t2 = loop.createTask(() => sem1.acquire());
      await tick();
      t1.cancel();
      sem1.release();
      await tick(2);
      expect(sem1.locked()).toBe(true);
      expect(t2.done()).toBe(true);
    });
  });

  it('a permit handed to a waiter cancelled before it resumes goes to the next one', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const sem = new Semaphore(0);
      const t1 = loop.createTask(() => sem.acquire());
      const t2 = loop.createTask(() => sem.acquire());
      await tick();
      sem.release(); // reserved for t1...
      t1.cancel(); // ...cancelled before it resumes
      expect(await caught(t1)).toBeInstanceOf(CancelledError);
      await t2;
      expect(sem.value).toBe(0);
      sem.release();
      expect(sem.value).toBe(1);
    });
  });

  it('does not hang when a holder cancels a waiter on its way out (acquire_no_hang)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const sem = new Semaphore(1);
      const t1 = loop.createTask(async () => {
        await sem.hold(() => sleep(0));
        t2.cancel();
      });
      const t2: Task<void> = loop.createTask(async () => {
        await sem.hold(() => {
          throw new Error('must not get here');
        });
      });
      const [r1, r2] = await gather([t1, t2], { returnExceptions: true });
      expect(r1).toBeUndefined();
      expect(r2).toBeInstanceOf(CancelledError);
      await waitFor(sem.acquire(), 1000);
    });
  });

  it('release() with no waiters unlocks; BoundedSemaphore refuses extra releases (release_not_acquired, no_waiters)', async () => {
    await runVirtual(async () => {
      const sem = new Semaphore();
      await sem.acquire();
      expect(sem.locked()).toBe(true);
      sem.release();
      expect(sem.locked()).toBe(false);
      sem.release(); // unbounded: allowed
      expect(sem.value).toBe(2);
      const b = new BoundedSemaphore(1);
      expect(() => b.release()).toThrow(InvalidStateError);
      await b.acquire();
      b.release();
      expect(() => b.release()).toThrow(/released too many times/);
      expect(String(b)).toBe('<BoundedSemaphore [unlocked, value:1]>');
    });
  });

  it('keeps FIFO order across re-acquisitions (acquire_fifo_order, _2, _3)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const sem = new Semaphore(1);
      const result: string[] = [];
      const coro = (tag: string) => async (): Promise<void> => {
        await sem.acquire();
        result.push(`${tag}_1`);
        await sleep(2);
        sem.release();
        await sem.acquire();
        result.push(`${tag}_2`);
        await sleep(2);
        sem.release();
      };
      await taskGroup((tg) => {
        for (const tag of ['c1', 'c2', 'c3']) tg.createTask(coro(tag));
      });
      expect(result).toEqual(['c1_1', 'c2_1', 'c3_1', 'c1_2', 'c2_2', 'c3_2']);

      const sem2 = new Semaphore(1);
      const r2: number[] = [];
      const t1 = loop.createTask(async () => {
        await sem2.acquire();
        r2.push(1);
      });
      const t2 = loop.createTask(async () => {
        await sem2.acquire();
        r2.push(2);
        sem2.release();
        await sem2.acquire();
        r2.push(4);
      });
      const t3 = loop.createTask(async () => {
        await sem2.acquire();
        r2.push(3);
      });
      await tick();
      sem2.release();
      sem2.release();
      await gather([t1, t2, t3]);
      expect(r2).toEqual([1, 2, 3, 4]);

      const sem3 = new Semaphore(0);
      const r3: number[] = [];
      const ts = [1, 2, 3].map((n) =>
        loop.createTask(async () => {
          await sem3.acquire();
          r3.push(n);
        }),
      );
      await tick();
      ts[0]!.cancel();
      await tick();
      sem3.release();
      sem3.release();
      await gather(ts, { returnExceptions: true });
      expect(r3).toEqual([2, 3]);
    });
  });

  it('a successful acquire wakes the waiters queued behind it by FIFO (acquire_fifo_order_4)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const sem = new Semaphore(0);
      const result: number[] = [];
      let t4: Task<void> | null = null;
      const t1 = loop.createTask(async () => {
        expect(sem.value).toBe(0);
        await sem.acquire();
        expect(sem.value).toBe(0); // all the waiters were woken
        t4 = loop.createTask(async () => {
          result.push(4);
        });
        result.push(1);
      });
      const t2 = loop.createTask(async () => {
        sem.release();
        sem.release();
        sem.release();
        expect(sem.value).toBe(2);
        expect(sem.locked()).toBe(true); // t1 was woken but has not run
        await sem.acquire();
        result.push(2);
      });
      const t3 = loop.createTask(async () => {
        await sem.acquire();
        expect(sem.locked()).toBe(true);
        result.push(3);
      });
      await tick(3);
      await gather([t1, t2, t3]);
      await t4!;
      // t1's acquire() woke t2 and t3 in order. (t4's first step may run before their
      // resumptions: a task resumes in the microtask phase after the loop's batch.)
      expect(result.filter((n) => n !== 4)).toEqual([1, 2, 3]);
      expect(result.indexOf(4)).toBeGreaterThan(0);
    });
  });

  it('using / hold() / AbortSignal', async () => {
    await runVirtual(async () => {
      const sem = new Semaphore(2);
      {
        using _a = await sem.acquire();
        using _b = await sem.acquire();
        expect(sem.value).toBe(0);
        const ac = new AbortController();
        const p = sem.acquire({ signal: ac.signal });
        await tick();
        expect(getRunningLoop().pendingTasks().size).toBeGreaterThan(0);
        ac.abort(new Error('enough'));
        expect(((await caught(p)) as Error).message).toBe('enough');
      }
      expect(sem.value).toBe(2);
      expect(await sem.hold(() => sem.value)).toBe(1);
      expect(sem.value).toBe(2);
    });
  });
});

describe('Barrier', () => {
  const N = 5;

  it('validates parties and prints its state (barrier_parties, repr)', async () => {
    expect(() => new Barrier(0)).toThrow(InvalidArgumentError);
    expect(() => new Barrier(-4)).toThrow(InvalidArgumentError);
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const barrier = new Barrier(N);
      expect(String(barrier)).toBe(`<Barrier [filling, waiters:0/${N}]>`);
      const waiters: Task<number>[] = [];
      for (let i = 0; i < 2; i++) waiters.push(loop.createTask(() => barrier.wait()));
      await afterIterations(() => barrier.nWaiting === 2);
      expect(inspect(barrier)).toBe(`<Barrier [filling, waiters:2/${N}]>`);
      for (let i = barrier.nWaiting; i < barrier.parties; i++) waiters.push(loop.createTask(() => barrier.wait()));
      await afterIterations(() => barrier.state === 'draining');
      expect(String(barrier)).toBe('<Barrier [draining, waiters:0/5]>');
      await afterIterations(() => barrier.state === 'filling');
      for (let i = 0; i < 2; i++) waiters.push(loop.createTask(() => barrier.wait()));
      await afterIterations(() => barrier.nWaiting === 2);
      await barrier.reset();
      expect(String(barrier)).toBe('<Barrier [resetting, waiters:0/5]>');
      await afterIterations(() => barrier.state === 'filling');
      for (let i = 0; i < 2; i++) waiters.push(loop.createTask(() => barrier.wait()));
      await afterIterations(() => barrier.nWaiting === 2);
      await barrier.abort();
      expect(String(barrier)).toBe('<Barrier [broken]>');
      expect(barrier.broken).toBe(true);
      const results = await gather(waiters, { returnExceptions: true });
      expect(results.filter((r) => typeof r === 'number')).toHaveLength(N);
      expect(results.filter((r) => r instanceof BrokenBarrierError)).toHaveLength(4);
    });
  });

  it('releases all parties together with distinct indexes, and is reusable (context_manager, wait_twice, check_return_value)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const barrier = new Barrier(3);
      const first: number[] = [];
      const second: number[] = [];
      const tasks = [0, 1, 2].map(() =>
        loop.createTask(async () => {
          first.push(await barrier.wait());
          second.push(await barrier.wait());
        }),
      );
      await gather(tasks);
      expect(first.sort()).toEqual([0, 1, 2]);
      expect(second.sort()).toEqual([0, 1, 2]);
      expect(barrier.nWaiting).toBe(0);
      expect(barrier.broken).toBe(false);
      expect(barrier.state).toBe('filling');
    });
  });

  it('one party passes alone, twice (filling_one_task, _twice)', async () => {
    await runVirtual(async () => {
      const barrier = new Barrier(1);
      expect(await barrier.wait()).toBe(0);
      expect(await barrier.wait()).toBe(0);
      expect(barrier.nWaiting).toBe(0);
    });
  });

  it('counts waiters task by task; the last one in sees filling again (filling_task_by_task, draining_state)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const barrier = new Barrier(3);
      const t1 = loop.createTask(() => barrier.wait());
      await afterIterations(() => barrier.nWaiting === 1);
      const t2 = loop.createTask(() => barrier.wait());
      await afterIterations(() => barrier.nWaiting === 2);
      expect(barrier.state).toBe('filling');
      const t3 = loop.createTask(() => barrier.wait());
      await wait([t1, t2, t3]);
      expect(barrier.nWaiting).toBe(0);

      const draining: boolean[] = [];
      const b5 = new Barrier(N);
      await gather(
        Array.from({ length: N }, () => async () => {
          await b5.wait();
          draining.push(b5.state === 'draining');
        }),
      );
      expect(draining.slice(0, N - 1).every(Boolean)).toBe(true);
      expect(draining[N - 1]).toBe(false);
    });
  });

  it('tasks arriving while it drains wait for the next round (blocking_tasks_while_draining)', async () => {
    await runVirtual(async () => {
      const barrier = new Barrier(N);
      const rewait = 2;
      const nowaiting = new Barrier(N - rewait);
      let rewaitN = rewait;
      await gather(
        Array.from({ length: N }, () => async () => {
          await barrier.wait();
          if (rewaitN > 0) {
            rewaitN--;
            await barrier.wait();
          } else {
            await nowaiting.wait();
            await barrier.wait();
          }
        }),
      );
      expect(barrier.nWaiting).toBe(0);
    });
  });

  it('a cancelled waiter leaves the count (filling_tasks_cancel_one)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const barrier = new Barrier(3);
      let passed = 0;
      const coro = async (): Promise<void> => {
        await barrier.wait();
        passed++;
      };
      const t1 = loop.createTask(coro);
      await afterIterations(() => barrier.nWaiting === 1);
      const t2 = loop.createTask(coro);
      await afterIterations(() => barrier.nWaiting === 2);
      t1.cancel();
      expect(await caught(t1)).toBeInstanceOf(CancelledError);
      await afterIterations(() => barrier.nWaiting === 1);
      const t3 = loop.createTask(coro);
      await afterIterations(() => barrier.nWaiting === 2);
      const t4 = loop.createTask(coro);
      await gather([t2, t3, t4]);
      expect(passed).toBe(3);
      expect(barrier.broken).toBe(false);
    });
  });

  it('reset() breaks the current waiters, then the barrier works again (reset_barrier_while_tasks_waiting)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const barrier = new Barrier(N);
      await barrier.reset();
      expect(barrier.state).toBe('filling');
      const waiting = Array.from({ length: N - 1 }, () => loop.createTask(() => barrier.wait()));
      await afterIterations(() => barrier.nWaiting === N - 1);
      await barrier.reset();
      const results = await gather(waiting, { returnExceptions: true });
      for (const r of results) expect(r).toBeInstanceOf(BrokenBarrierError);
      expect(barrier.state).toBe('filling');
      expect(barrier.nWaiting).toBe(0);
      const again = await gather(Array.from({ length: N }, () => () => barrier.wait()));
      expect([...again].sort()).toEqual([0, 1, 2, 3, 4]);
    });
  });

  it('abort() breaks it for good (abort_barrier, abort_barrier_when_exception)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const barrier = new Barrier(N);
      const waiting = Array.from({ length: 2 }, () => loop.createTask(() => barrier.wait()));
      await afterIterations(() => barrier.nWaiting === 2);
      await barrier.abort();
      for (const r of await gather(waiting, { returnExceptions: true })) expect(r).toBeInstanceOf(BrokenBarrierError);
      const err = await caught(barrier.wait());
      expect(err).toBeInstanceOf(BrokenBarrierError);
      expect((err as BrokenBarrierError).code).toBe('ERR_PROTOLOOP_BROKEN_BARRIER');
      expect(barrier.broken).toBe(true);
      expect(barrier.nWaiting).toBe(0);
    });
  });
});
