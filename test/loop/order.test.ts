// The loop's scheduling order (asyncio's) and the checks asyncio makes at an await.
// Ports of CPython 3.13's test_tasks.py, test_futures.py and test_eager_task_factory.py
// where one exists.
import { describe, expect, it } from 'vitest';
import {
  CancelledError,
  eagerTaskFactory,
  getRunningLoop,
  InvalidStateError,
  Loop,
  run,
  sleep,
  type ExceptionContext,
  type Task,
} from '../concurrency/helpers.ts';

function collect(loop: Loop): ExceptionContext[] {
  const seen: ExceptionContext[] = [];
  loop.setExceptionHandler((_l, ctx) => seen.push(ctx));
  return seen;
}

describe('scheduling order', () => {
  it('a task woken by a callback runs its step at that callback\'s place, before the next callback', async () => {
    const order = await run(async () => {
      const loop = getRunningLoop();
      const order: string[] = [];
      const fut = loop.createFuture<number>();
      const t = loop.createTask(async () => {
        await fut;
        order.push('task step');
        await sleep(0);
        order.push('task next step');
      });
      await sleep(0); // t awaits fut
      loop.callSoon(() => {
        fut.setResult(1); // schedules t's wake-up for the next iteration
        loop.callSoon(() => order.push('callback after the wake-up'));
      });
      await t;
      return order;
    });
    expect(order).toEqual(['task step', 'callback after the wake-up', 'task next step']);
  });

  it('sleep(0) yields exactly one iteration, and two tasks alternate step by step', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const before = loop.stats().iterations;
      await sleep(0);
      expect(loop.stats().iterations - before).toBe(1);
      await sleep(0);
      await sleep(0);
      expect(loop.stats().iterations - before).toBe(3);

      const order: string[] = [];
      const worker = (name: string) => async () => {
        for (let i = 1; i <= 3; i++) {
          order.push(`${name}${i}@${loop.stats().iterations}`);
          await sleep(0);
        }
      };
      const a = loop.createTask(worker('a'));
      const b = loop.createTask(worker('b'));
      const start = loop.stats().iterations + 1;
      await a;
      await b;
      expect(order).toEqual([`a1@${start}`, `b1@${start}`, `a2@${start + 1}`, `b2@${start + 1}`, `a3@${start + 2}`, `b3@${start + 2}`]);
    });
  });

  it('a woken task that then awaits a foreign promise does not stall the loop', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const fut = loop.createFuture<void>();
      const order: string[] = [];
      const t = loop.createTask(async () => {
        await fut;
        order.push('woken');
        await new Promise<void>((resolve) => setImmediate(resolve)); // foreign: the loop goes on
        order.push('after the foreign promise');
      });
      await sleep(0);
      fut.setResult();
      loop.callSoon(() => order.push('next callback'));
      await t;
      expect(order).toEqual(['woken', 'next callback', 'after the foreign promise']);
    });
  });

  it('runUntilComplete(f) stops only after the step that f\'s completion woke has run', async () => {
    const loop = new Loop();
    const f = loop.createFuture<number>();
    let seen: unknown = null;
    const t = loop.createTask(async () => {
      await f;
      seen = getRunningLoop(); // used to throw NoRunningLoopError
    });
    loop.callSoon(() => loop.callSoon(() => f.setResult(1)));
    expect(await loop.runUntilComplete(f)).toBe(1);
    expect(seen).toBe(loop);
    expect(t.done()).toBe(true);
    loop.close();
  });

  it('run(): a task woken by main\'s last step still runs on the loop (await f; getRunningLoop())', async () => {
    let seen: unknown = null;
    let loopSeen: unknown = null;
    await run(async () => {
      const loop = getRunningLoop();
      loopSeen = loop;
      const f = loop.createFuture<void>();
      loop.createTask(async () => {
        await f;
        seen = getRunningLoop();
      });
      await sleep(0);
      f.setResult();
    });
    expect(seen).toBe(loopSeen);
  });
});

describe("asyncio's checks at an await", () => {
  it('a task awaiting itself gets InvalidStateError, not a deadlock (test_task_awaits_on_itself)', async () => {
    const loop = new Loop();
    const task: Task<void> = loop.createTask(async () => {
      await task;
    });
    const e = await loop.runUntilComplete(task).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InvalidStateError);
    expect((e as Error).message).toMatch(/^Task cannot await on itself/);
    loop.close();
  });

  it('awaiting a future of another loop fails at the await, not a hang', async () => {
    const other = new Loop();
    const foreign = other.createFuture<number>();
    const e = await run(async () => {
      try {
        await foreign;
        return null;
      } catch (x) {
        return x;
      }
    });
    expect(e).toBeInstanceOf(InvalidStateError);
    expect((e as Error).message).toMatch(/attached to a different loop/);
    other.close();
  });

  it('cancel() on a finished future or task whose exception was never retrieved silences the report', async () => {
    const loop = new Loop();
    const seen = collect(loop);
    await loop.runUntilComplete(async () => {
      const fut = loop.createFuture();
      fut.setException(new Error('future boom'));
      expect(fut.cancel()).toBe(false);
      const t = loop.createTask(async () => {
        throw new Error('task boom');
      });
      await sleep(0);
      await sleep(0);
      expect(t.done()).toBe(true);
      expect(t.cancel()).toBe(false);
      // the control: not cancelled, so reported
      const reported = loop.createFuture();
      reported.setException(new Error('reported'));
    });
    loop.close();
    expect(seen.map((c) => (c.exception as Error).message)).toEqual(['reported']);
  });

  it('awaiting a task that ended with a CancelledError re-raises that same instance', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const mine = new CancelledError('mine');
      const t = loop.createTask(async () => {
        throw mine;
      });
      const first = await t.then(null, (e: unknown) => e);
      const second = await t.then(null, (e: unknown) => e);
      expect(t.cancelled()).toBe(true);
      expect(first).toBe(mine);
      expect(second).toBe(mine);
      expect(() => t.result()).toThrow(mine);
    });
  });

  it('an eager task whose first step returns cannot be cancelled (test_cancellation_after_eager_completion)', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      loop.setTaskFactory(eagerTaskFactory);
      const t = loop.createTask(async () => 'finished without blocking');
      expect(t.cancel()).toBe(false);
      expect(await t).toBe('finished without blocking');
      expect(t.cancelled()).toBe(false);
      // one that blocks is cancelled (test_cancellation_after_eager_step_blocks)
      const u = loop.createTask(async () => {
        await sleep(100);
        return 'finished after blocking';
      });
      expect(u.cancel('cancellation message')).toBe(true);
      expect(u.cancelling()).toBeGreaterThan(0);
      const e = await u.then(null, (x: unknown) => x);
      expect(e).toBeInstanceOf(CancelledError);
      expect((e as Error).message).toBe('cancellation message');
      loop.setTaskFactory(null);
    });
  });

  it('a then() registered before loop.close() settles when the future is resolved later', async () => {
    const loop = new Loop();
    const fut = loop.createFuture<number>();
    const fut2 = loop.createFuture<number>();
    const p = fut.then((v) => v * 2);
    const p2 = fut2.then(null, (e: unknown) => e);
    loop.close();
    fut.setResult(21);
    const boom = new Error('late');
    fut2.setException(boom);
    expect(await p).toBe(42);
    expect(await p2).toBe(boom);
  });

  it('Future and Task have catch() and finally()', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const fut = loop.createFuture<number>();
      const boom = new Error('boom');
      fut.setException(boom);
      expect(await fut.catch((e: unknown) => e)).toBe(boom);
      const order: string[] = [];
      const t = loop.createTask(async () => 7);
      expect(
        await t.finally(() => {
          order.push('finally');
        }),
      ).toBe(7);
      const f2 = loop.createFuture<number>();
      f2.setException(boom);
      await expect(f2.finally(() => order.push('finally 2'))).rejects.toBe(boom);
      expect(order).toEqual(['finally', 'finally 2']);
    });
  });
});
