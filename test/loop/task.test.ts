import { AsyncLocalStorage } from 'node:async_hooks';
import { describe, expect, it } from 'vitest';
import { runVirtual } from '../helpers.ts';
import {
  CancelledError,
  InvalidStateError,
  Loop,
  NoRunningLoopError,
  Task,
  allTasks,
  coroutine,
  currentTask,
  getRunningLoop,
  sleep,
  type ExceptionContext,
} from '../../src/index.ts';

async function settle<T>(p: PromiseLike<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error };
  }
}

describe('Task', () => {
  it('names tasks Task-N by default and lets them be renamed', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const a = loop.createTask(async () => {});
      const b = loop.createTask(async () => {}, { name: 'worker' });
      expect(a.getName()).toMatch(/^Task-\d+$/);
      expect(b.getName()).toBe('worker');
      b.setName('renamed');
      expect(b.getName()).toBe('renamed');
      await a;
      await b;
    });
  });

  it('does not start before the loop runs it, and runs its body once', async () => {
    const loop = new Loop();
    let runs = 0;
    const t = loop.createTask(async () => {
      runs++;
      return 'done';
    });
    expect(runs).toBe(0);
    expect(await loop.runUntilComplete(t)).toBe('done');
    expect(runs).toBe(1);
    loop.close();
  });

  it('refuses setResult()/setException()', async () => {
    const loop = new Loop();
    const t = loop.createTask(async () => 1);
    expect(() => t.setResult(2)).toThrow(InvalidStateError);
    expect(() => t.setException(new Error())).toThrow(InvalidStateError);
    await loop.runUntilComplete(t);
    loop.close();
  });

  it('cancel() while awaiting a future: the await throws CancelledError, the future is cancelled', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const fut = loop.createFuture();
      let caught: unknown;
      const t = loop.createTask(async () => {
        try {
          await fut;
        } catch (e) {
          caught = e;
          throw e;
        }
      });
      await sleep(1);
      expect(t.awaiting()).toBe(fut);
      expect(t.cancel('msg')).toBe(true);
      const r = await settle(t);
      expect(r.ok).toBe(false);
      expect(caught).toBeInstanceOf(CancelledError);
      expect((caught as Error).message).toBe('msg');
      expect(fut.cancelled()).toBe(true);
      expect(t.cancelled()).toBe(true);
    });
  });

  it('cancel() while sleeping cancels the sleep', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const start = loop.time();
      const t = loop.createTask(() => sleep(10_000));
      await sleep(5);
      t.cancel();
      await settle(t);
      expect(t.cancelled()).toBe(true);
      expect(loop.time() - start).toBeLessThan(5_000);
      expect(loop.stats().timersScheduled).toBe(0);
    });
  });

  it('cancel() during a foreign await is delivered at the next protoloop await', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const steps: string[] = [];
      const t = loop.createTask(async () => {
        await new Promise((r) => setTimeout(r, 20));
        steps.push('foreign await finished');
        await sleep(0);
        steps.push('not reached');
      });
      await sleep(2);
      t.cancel();
      expect(t.signal.aborted).toBe(true);
      await settle(t);
      expect(steps).toEqual(['foreign await finished']);
      expect(t.cancelled()).toBe(true);
    });
  });

  it('a task that returns normally after a cancel it never awaited ends cancelled', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const t = loop.createTask(async () => {
        await new Promise((r) => setTimeout(r, 10));
        return 'value';
      });
      await sleep(1);
      t.cancel();
      await settle(t);
      expect(t.cancelled()).toBe(true);
    });
  });

  it('a task that catches CancelledError and returns ends normally', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const t = loop.createTask(async () => {
        try {
          await sleep(10_000);
        } catch (e) {
          if (e instanceof CancelledError) return 'cleaned up';
          throw e;
        }
        return 'slept';
      });
      await sleep(1);
      t.cancel();
      expect(await t).toBe('cleaned up');
      expect(t.cancelled()).toBe(false);
    });
  });

  it('cancelled before it starts, a task never runs its body', async () => {
    const loop = new Loop();
    let ran = false;
    const t = loop.createTask(async () => {
      ran = true;
    });
    t.cancel();
    await settle(loop.runUntilComplete(t));
    expect(ran).toBe(false);
    expect(t.cancelled()).toBe(true);
    loop.close();
  });

  it('cancel() on a done task returns false and changes nothing', async () => {
    const loop = new Loop();
    const t = loop.createTask(async () => 5);
    await loop.runUntilComplete(t);
    expect(t.cancel()).toBe(false);
    expect(t.result()).toBe(5);
    expect(t.cancelling()).toBe(0);
    loop.close();
  });

  it('counts cancellation requests with cancelling()/uncancel()', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const t = loop.createTask(async () => {
        const me = currentTask()!;
        try {
          await sleep(10_000);
        } catch {
          expect(me.cancelling()).toBe(2);
          expect(me.uncancel()).toBe(1);
          expect(me.uncancel()).toBe(0);
        }
        await sleep(1);
        return 'survived';
      });
      await sleep(1);
      t.cancel();
      t.cancel();
      expect(await t).toBe('survived');
    });
  });

  it('cancelling a task cancels the task it awaits', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const inner = loop.createTask(() => sleep(10_000), { name: 'inner' });
      const outer = loop.createTask(async () => await inner, { name: 'outer' });
      await sleep(2);
      expect(outer.awaiting()).toBe(inner);
      outer.cancel();
      await settle(outer);
      expect(inner.cancelled()).toBe(true);
      expect(outer.cancelled()).toBe(true);
    });
  });

  it('task.signal aborts with a CancelledError reason on cancel', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      let reason: unknown;
      const t = loop.createTask(async () => {
        const signal = currentTask()!.signal;
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        reason = signal.reason;
      });
      await sleep(1);
      t.cancel('go away');
      await settle(t);
      expect(reason).toBeInstanceOf(CancelledError);
      expect((reason as Error).message).toBe('go away');
    });
  });

  it('propagates a task error to whoever awaits it', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const t = loop.createTask(async () => {
        await sleep(1);
        throw new SyntaxError('inner');
      });
      const r = await settle(t);
      expect(r.ok).toBe(false);
      expect((r as { error: Error }).error).toBeInstanceOf(SyntaxError);
      expect(t.exception()).toBeInstanceOf(SyntaxError);
    });
  });

  it('a synchronous throw in the task function fails the task', async () => {
    const loop = new Loop();
    const t = loop.createTask((() => {
      throw new Error('sync');
    }) as () => Promise<void>);
    await expect(loop.runUntilComplete(t)).rejects.toThrow('sync');
    loop.close();
  });

  it('currentTask() is the running task inside it and null outside', async () => {
    expect(currentTask()).toBeNull();
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const main = currentTask();
      expect(main).toBeInstanceOf(Task);
      expect(main!.getName()).toBe('main');
      const seen = await loop.createTask(async () => {
        await sleep(1);
        return currentTask()!.getName();
      }, { name: 'child' });
      expect(seen).toBe('child');
      expect(currentTask()).toBe(main);
      let inCallback: unknown = 'unset';
      loop.callSoon(() => {
        inCallback = currentTask();
      });
      await sleep(1);
      expect(inCallback).toBeNull();
    });
  });

  it('allTasks() lists the pending tasks', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const t = loop.createTask(() => sleep(50), { name: 'sleeper' });
      const names = [...allTasks()].map((x) => x.getName()).sort();
      expect(names).toEqual(['main', 'sleeper']);
      await t;
      expect([...allTasks()].map((x) => x.getName())).toEqual(['main']);
    });
  });

  it('a task sees the AsyncLocalStorage context of the code that created it', async () => {
    const requestId = new AsyncLocalStorage<string>();
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const t = requestId.run('req-42', () =>
        loop.createTask(async () => {
          const before = requestId.getStore();
          await sleep(1);
          return [before, requestId.getStore(), currentTask()!.getName()];
        }, { name: 'handler' }),
      );
      expect(await t).toEqual(['req-42', 'req-42', 'handler']);
      expect(requestId.getStore()).toBeUndefined();
    });
  });

  it('getRunningLoop() throws NoRunningLoopError outside a loop', () => {
    expect(() => getRunningLoop()).toThrow(NoRunningLoopError);
  });

  it('reports "Task exception was never retrieved" at loop close', async () => {
    const loop = new Loop();
    const seen: ExceptionContext[] = [];
    loop.setExceptionHandler((_l, ctx) => seen.push(ctx));
    loop.createTask(async function failing() {
      throw new Error('lost');
    });
    loop.callLater(5, () => loop.stop());
    await loop.runForever();
    loop.close();
    expect(seen).toHaveLength(1);
    expect(seen[0]!.message).toBe('Task exception was never retrieved');
    expect(String(seen[0]!.task)).toMatch(/coro=failing\(\)/);
  });

  it('reports "Task was destroyed but it is pending!" at loop close', async () => {
    const loop = new Loop();
    const seen: ExceptionContext[] = [];
    loop.setExceptionHandler((_l, ctx) => seen.push(ctx));
    const t = loop.createTask(() => sleep(10_000), { name: 'forgotten' });
    loop.callLater(2, () => loop.stop());
    await loop.runForever();
    loop.close();
    expect(seen.map((c) => c.message)).toEqual(['Task was destroyed but it is pending!']);
    expect(seen[0]!.task).toBe(t);
  });

  it('eager tasks run their first step inside createTask()', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const steps: string[] = [];
      const t = loop.createTask(
        async () => {
          steps.push('body started');
          await sleep(0);
          steps.push('body resumed');
        },
        { eagerStart: true },
      );
      steps.push('after createTask');
      await t;
      expect(steps).toEqual(['body started', 'after createTask', 'body resumed']);
    });
  });
});

describe('coroutine()', () => {
  it('returns a lazy Coroutine that runs once, when awaited', async () => {
    let calls = 0;
    const add = coroutine(async function add(a: number, b: number) {
      calls++;
      return a + b;
    });
    const c = add(2, 3);
    expect(calls).toBe(0);
    expect(c.started()).toBe(false);
    expect(c.name).toBe('add');
    expect(await c).toBe(5);
    expect(await c).toBe(5);
    expect(calls).toBe(1);
  });

  it('runs a Coroutine passed to createTask() as the task body', async () => {
    const work = coroutine(async function work(ms: number) {
      await sleep(ms);
      return currentTask()!.getName();
    });
    const name = await runVirtual(async () => getRunningLoop().createTask(work(1), { name: 'w' }));
    expect(name).toBe('w');
  });
});
