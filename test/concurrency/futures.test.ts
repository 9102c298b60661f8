// ensureFuture(), wrapFuture(), isFuture(), Task.getStack()/printStack(), and asCompleted()
// as a plain iterator. Ports of CPython 3.13's test_tasks.py (ensure_future, as_completed,
// get_stack) where one exists.
import { describe, expect, it } from 'vitest';
import { runVirtual } from '../helpers.ts';
import {
  asCompleted,
  coroutine,
  ensureFuture,
  Future,
  getRunningLoop,
  InvalidArgumentError,
  isFuture,
  Lock,
  Loop,
  NoRunningLoopError,
  sleep,
  Task,
  TimeoutError,
  wrapFuture,
} from './helpers.ts';

describe('ensureFuture / wrapFuture / isFuture', () => {
  it('a future is returned as is; a coroutine or a function becomes a task (test_ensure_future_future, _coroutine)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const f = loop.createFuture<string>();
      f.setResult('ko');
      expect(ensureFuture(f)).toBe(f);
      const c = coroutine(async () => 'ok');
      const t = ensureFuture(c());
      expect(t).toBeInstanceOf(Task);
      expect(await t).toBe('ok');
      const t2 = ensureFuture(async () => 'fn');
      expect(t2).toBeInstanceOf(Task);
      expect(await t2).toBe('fn');
    });
  });

  it('a promise or a thenable is followed by a future of the running loop (test_ensure_future_awaitable, wrap_future)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const f = wrapFuture(Promise.resolve(5));
      expect(f).toBeInstanceOf(Future);
      expect(f.getLoop()).toBe(loop);
      expect(await f).toBe(5);
      const thenable = { then: (ok: (v: string) => void) => ok('thenable') };
      expect(await ensureFuture(thenable as unknown as PromiseLike<string>)).toBe('thenable');
      const boom = new Error('boom');
      const rejected = wrapFuture(Promise.reject(boom));
      expect(await rejected.then(null, (e: unknown) => e)).toBe(boom);
      // cancelling the future leaves the promise alone, and a late result is dropped
      let finish!: (v: number) => void;
      const slow = wrapFuture(new Promise<number>((r) => (finish = r)));
      expect(slow.cancel()).toBe(true);
      finish(1);
      await sleep(0);
      expect(slow.cancelled()).toBe(true);
    });
  });

  it('refuses what is not awaitable and a future of another loop (test_ensure_future_neither, _error_msg)', async () => {
    const other = new Loop();
    await runVirtual(async () => {
      expect(() => ensureFuture('ok' as never)).toThrow(InvalidArgumentError);
      expect(() => wrapFuture(42 as never)).toThrow(InvalidArgumentError);
      const foreign = other.createFuture();
      expect(() => ensureFuture(foreign)).toThrow(/different loop/);
      expect(() => wrapFuture(foreign)).toThrow(/different loop/);
      expect(ensureFuture(foreign, { loop: other })).toBe(foreign);
    });
    other.close();
    expect(() => ensureFuture(Promise.resolve(1))).toThrow(NoRunningLoopError);
  });

  it('isFuture() is true for futures and tasks only (test_isfuture)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      expect(isFuture(loop.createFuture())).toBe(true);
      const t = loop.createTask(async () => 1);
      expect(isFuture(t)).toBe(true);
      expect(isFuture(Promise.resolve(1))).toBe(false);
      expect(isFuture({ then() {} })).toBe(false);
      expect(isFuture(null)).toBe(false);
      await t;
    });
  });
});

describe('Task.getStack() / printStack()', () => {
  it('shows the await chain, outermost first, down to the plain future (test_get_stack)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const lock = new Lock();
      await lock.acquire();
      const inner = loop.createTask(() => lock.acquire(), { name: 'inner' });
      const outer = loop.createTask(async () => await inner, { name: 'outer' });
      await sleep(0);
      await sleep(0);
      expect(outer.getStack()).toEqual(['Task "outer" awaiting', 'Task "inner" awaiting', 'Lock.acquire() (Future pending)']);
      expect(outer.getStack({ limit: 1 })).toEqual(['Task "outer" awaiting']);
      let text = '';
      outer.printStack({ file: { write: (s: string) => (text += s) } });
      expect(text).toMatch(/^Stack for <Task pending name="outer"/);
      expect(text).toContain('\n  Task "inner" awaiting\n  Lock.acquire() (Future pending)\n');
      lock.release();
      await outer;
      expect(outer.getStack()).toEqual(['Task "outer" finished']);
      expect(() => outer.getStack({ limit: -1 })).toThrow(InvalidArgumentError);
    });
  });
});

describe('asCompleted() as a plain iterator', () => {
  it('yields awaitables that give the results in completion order (test_as_completed, plain for)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const a = loop.createTask(() => sleep(30, 'a'));
      const b = loop.createTask(() => sleep(10, 'b'));
      const c = loop.createTask(() => sleep(20, 'c'));
      const results: string[] = [];
      for (const next of asCompleted([a, b, c])) results.push(await next);
      expect(results).toEqual(['b', 'c', 'a']);
    });
  });

  it('collected first, then awaited: the first awaited gets the first completion', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const slow = loop.createTask(() => sleep(20, 'slow'));
      const fast = loop.createTask(() => sleep(5, 'fast'));
      const its = [...asCompleted([slow, fast])];
      expect(its).toHaveLength(2);
      expect(await its[0]!).toBe('fast');
      expect(await its[1]!).toBe('slow');
    });
  });

  it('an error is thrown by its awaitable; the timeout throws TimeoutError (test_as_completed_with_timeout)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const boom = new Error('boom');
      const bad = loop.createTask(async () => {
        throw boom;
      });
      const never = loop.createFuture<string>();
      const it = asCompleted([bad, never], { timeout: 20 })[Symbol.iterator]();
      expect(await it.next().value!.then(null, (e: unknown) => e)).toBe(boom);
      expect(await it.next().value!.then(null, (e: unknown) => e)).toBeInstanceOf(TimeoutError);
      expect(it.next().done).toBe(true);
    });
  });
});
