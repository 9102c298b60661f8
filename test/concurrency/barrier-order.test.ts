// Barrier draining, reset and abort: ports of CPython 3.13's test_locks.py BarrierTests
// that depend on asyncio's scheduling order (a woken task runs at its callback's place).
import { describe, expect, it } from 'vitest';
import { Barrier, BrokenBarrierError, gather, getRunningLoop, run, sleep, type Task } from './helpers.ts';

const N = 5;

function makeTasks(n: number, fn: () => Promise<void>): Task<void>[] {
  const loop = getRunningLoop();
  return Array.from({ length: n }, () => loop.createTask(fn));
}

describe('Barrier (asyncio ports, scheduling order)', () => {
  it('reset() while half the tasks drain and half block (reset_barrier_when_tasks_half_draining_half_blocking)', async () => {
    await run(async () => {
      const barrier = new Barrier(N);
      const results1: boolean[] = [];
      const results2: boolean[] = [];
      const blocking = Math.floor(N / 2);
      let count = 0;
      await gather(
        makeTasks(N, async () => {
          try {
            await barrier.wait();
          } catch (e) {
            if (!(e instanceof BrokenBarrierError)) throw e;
            results1.push(true);
            await barrier.wait();
            return;
          }
          count++;
          if (count > blocking) {
            await barrier.reset();
            await barrier.wait();
          } else {
            try {
              await barrier.wait();
            } catch (e) {
              if (!(e instanceof BrokenBarrierError)) throw e;
              results2.push(true);
            }
          }
        }),
      );
      expect(results1).toEqual(Array(blocking).fill(true));
      expect(results2).toEqual([]);
      expect(barrier.nWaiting).toBe(0);
      expect(String(barrier)).not.toContain('resetting');
      expect(barrier.broken).toBe(false);
    });
  });

  it('reset() while tasks wait, and they wait again (reset_barrier_while_tasks_waiting_and_waiting_again)', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const barrier = new Barrier(N);
      const results1: boolean[] = [];
      const results2: boolean[] = [];
      const tasks = makeTasks(N - 1, async () => {
        try {
          await barrier.wait();
        } catch (e) {
          if (!(e instanceof BrokenBarrierError)) throw e;
          results1.push(true);
        } finally {
          await barrier.wait();
          results2.push(true);
        }
      });
      const resetter = loop.createTask(() => barrier.reset());
      await sleep(0);
      const last = loop.createTask(async () => {
        await barrier.wait();
        results2.push(true);
      });
      await gather(tasks);
      await gather([resetter, last]);
      expect(barrier.broken).toBe(false);
      expect(results1).toEqual(Array(N - 1).fill(true));
      expect(results2).toEqual(Array(N).fill(true));
      expect(barrier.nWaiting).toBe(0);
    });
  });

  it('reset() by the last task out while the others drain (reset_barrier_while_tasks_draining)', async () => {
    await run(async () => {
      const barrier = new Barrier(N);
      const results1: boolean[] = [];
      const results2: boolean[] = [];
      const results3: boolean[] = [];
      let count = 0;
      await gather(
        makeTasks(N, async () => {
          await barrier.wait();
          count++;
          if (count === N) {
            await barrier.reset();
            await barrier.wait();
          } else {
            try {
              await barrier.wait();
              results1.push(true);
            } catch {
              results2.push(true);
            }
          }
          await barrier.wait();
          results3.push(true);
        }),
      );
      expect(barrier.broken).toBe(false);
      expect(results1).toHaveLength(N - 1);
      expect(results2).toHaveLength(0);
      expect(results3).toHaveLength(N);
      expect(barrier.nWaiting).toBe(0);
    });
  });

  it('abort() from a task reaches the one party waiting (abort_barrier)', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const barrier = new Barrier(1);
      const aborter = loop.createTask(() => barrier.abort());
      await sleep(0);
      expect(barrier.nWaiting).toBe(0);
      expect(barrier.broken).toBe(true);
      await aborter;
    });
  });

  it('abort() while half the tasks drain and half block (abort_barrier_when_tasks_half_draining_half_blocking)', async () => {
    await run(async () => {
      const barrier = new Barrier(N);
      const results1: boolean[] = [];
      const results2: boolean[] = [];
      const blocking = Math.floor(N / 2);
      let count = 0;
      await gather(
        makeTasks(N, async () => {
          try {
            await barrier.wait();
          } catch (e) {
            if (!(e instanceof BrokenBarrierError)) throw e;
            results1.push(true);
            return;
          }
          count++;
          if (count > blocking) {
            await barrier.abort();
          } else {
            try {
              await barrier.wait();
            } catch (e) {
              if (!(e instanceof BrokenBarrierError)) throw e;
              results2.push(true);
            }
          }
        }),
      );
      expect(barrier.broken).toBe(true);
      expect(results1).toEqual(Array(blocking).fill(true));
      expect(results2).toEqual(Array(N - blocking - 1).fill(true));
      expect(barrier.nWaiting).toBe(0);
      expect(String(barrier)).not.toContain('resetting');
    });
  });

  it('abort() after an error in one party breaks it for everyone (abort_barrier_when_exception)', async () => {
    await run(async () => {
      const barrier = new Barrier(N);
      const results1: boolean[] = [];
      const results2: boolean[] = [];
      await gather(
        makeTasks(N, async () => {
          try {
            const i = await barrier.wait();
            if (i === Math.floor(N / 2)) throw new RangeError('boom');
            await barrier.wait();
            results1.push(true);
          } catch (e) {
            if (e instanceof BrokenBarrierError) results2.push(true);
            else if (e instanceof RangeError) await barrier.abort();
            else throw e;
          }
        }),
      );
      expect(barrier.broken).toBe(true);
      expect(results1).toHaveLength(0);
      expect(results2).toHaveLength(N - 1);
      expect(barrier.nWaiting).toBe(0);
    });
  });

  it('abort(), then everyone synchronises and one resets: the barrier works again (abort_barrier_when_exception_then_resetting)', async () => {
    await run(async () => {
      const barrier1 = new Barrier(N);
      const barrier2 = new Barrier(N);
      const results1: boolean[] = [];
      const results2: boolean[] = [];
      const results3: boolean[] = [];
      await gather(
        makeTasks(N, async () => {
          try {
            const i = await barrier1.wait();
            if (i === Math.floor(N / 2)) throw new RangeError('boom');
            await barrier1.wait();
            results1.push(true);
          } catch (e) {
            if (e instanceof BrokenBarrierError) results2.push(true);
            else if (e instanceof RangeError) await barrier1.abort();
            else throw e;
          }
          const i = await barrier2.wait();
          if (i === Math.floor(N / 2)) await barrier1.reset();
          await barrier2.wait();
          await barrier1.wait();
          results3.push(true);
        }),
      );
      expect(barrier1.broken).toBe(false);
      expect(results1).toHaveLength(0);
      expect(results2).toHaveLength(N - 1);
      expect(results3).toHaveLength(N);
      expect(barrier1.nWaiting).toBe(0);
      expect(barrier2.nWaiting).toBe(0);
    });
  });
});
