// gather(), wait(), asCompleted(), shield(). Ported from the matching parts of
// CPython's test_tasks.py (behaviours, not code).
import { describe, expect, it } from 'vitest';
import { runVirtual } from '../helpers.ts';
import {
  asCompleted,
  CancelledError,
  caught,
  coroutine,
  currentTask,
  eagerTaskFactory,
  Future,
  gather,
  getRunningLoop,
  InvalidArgumentError,
  Loop,
  MyExc,
  shield,
  sleep,
  TimeoutError,
  wait,
  ZeroDiv,
  type ExceptionContext,
  type Task,
} from './helpers.ts';

const LONG = 10_000;

async function tick(n = 1): Promise<void> {
  for (let i = 0; i < n; i++) await sleep(0);
}

describe('gather()', () => {
  it('collects results in argument order and types them as a tuple (success)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const [a, b, c] = [loop.createFuture<number>(), loop.createFuture<string>(), loop.createFuture<boolean>()];
      for (const opts of [{}, { returnExceptions: false }, { returnExceptions: true }]) {
        const fut = gather([a, b, c], opts);
        let called = 0;
        fut.addDoneCallback(() => called++);
        if (!a.done()) {
          b.setResult('1');
          a.setResult(2);
          await tick(2);
          expect(called).toBe(0);
          expect(fut.done()).toBe(false);
          c.setResult(true);
        }
        const res = await fut;
        await tick();
        expect(called).toBe(1);
        expect(res).toEqual([2, '1', true]);
      }
      // Typed tuple from mixed awaitables.
      const [n, s, v] = await gather([sleep(1, 5), () => sleep(1, 'x'), coroutine(async () => true)()]);
      const check: [number, string, boolean] = [n, s, v];
      expect(check).toEqual([5, 'x', true]);
      expect(await gather([])).toEqual([]);
    });
  });

  it('the first failure rejects the gather; later failures are marked retrieved, not logged (one_exception, exception_marking)', async () => {
    const reports: ExceptionContext[] = [];
    await runVirtual(async () => {
      getRunningLoop().setExceptionHandler((_l, ctx) => reports.push(ctx));
      const loop = getRunningLoop();
      const [a, b, c, d, e] = [0, 1, 2, 3, 4].map(() => loop.createFuture<number>());
      const fut = gather([a!, b!, c!, d!, e!]);
      const exc = new ZeroDiv();
      a!.setResult(1);
      b!.setException(exc);
      expect(await caught(fut)).toBe(exc);
      c!.setResult(3);
      d!.cancel();
      e!.setException(new Error('later'));
      await tick(2);

      const late = loop.createFuture<void>();
      const outer = loop.createTask(() =>
        gather([
          async () => {
            throw new MyExc('first');
          },
          async () => {
            await late;
            throw new Error('should not be reported');
          },
        ]),
      );
      expect(await caught(outer)).toBeInstanceOf(MyExc);
      late.setResult();
      await tick(3);
    });
    expect(reports).toEqual([]);
  });

  it('returnExceptions puts errors and cancellations in place (return_exceptions, result_exception_one_cancellation)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const [a, b, c, d, e, f] = [0, 1, 2, 3, 4, 5].map(() => loop.createFuture<number>());
      const fut = gather([a!, b!, c!, d!, e!, f!], { returnExceptions: true });
      a!.setResult(1);
      const zde = new ZeroDiv();
      b!.setException(zde);
      c!.cancel('c gone');
      await tick(2);
      expect(fut.done()).toBe(false);
      d!.setResult(3);
      e!.cancel();
      const rte = new Error('rte');
      f!.setException(rte);
      const res = await fut;
      expect(res[2]).toBeInstanceOf(CancelledError);
      expect((res[2] as Error).message).toBe('c gone');
      expect(res[4]).toBeInstanceOf(CancelledError);
      expect([res[0], res[1], res[3], res[5]]).toEqual([1, zde, 3, rte]);
    });
  });

  it('a child cancelled on its own fails the gather with CancelledError, but the gather is not cancelled (one_cancellation)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const [a, b, c] = [0, 1, 2].map(() => loop.createFuture<number>());
      const fut = gather([a!, b!, c!]);
      a!.setResult(1);
      b!.cancel();
      expect(await caught(fut)).toBeInstanceOf(CancelledError);
      expect(fut.cancelled()).toBe(false);
      expect(fut.exception()).toBeInstanceOf(CancelledError);
      c!.cancel();
    });
  });

  it('cancelling the awaiting task cancels every child; the gather ends with CancelledError (cancellation_broadcast)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      let proof = 0;
      const waiter = loop.createFuture<void>();
      const inner = async (): Promise<void> => {
        await waiter;
        proof += 1;
      };
      const child1 = loop.createTask(inner);
      const child2 = loop.createTask(inner);
      let gatherer!: Future<unknown>;
      const f = loop.createTask(async () => {
        gatherer = gather([child1, child2]);
        await gatherer;
        proof += 100;
      });
      await tick();
      expect(f.cancel()).toBe(true);
      expect(await caught(f)).toBeInstanceOf(CancelledError);
      expect(gatherer.cancel()).toBe(false);
      expect(waiter.cancelled()).toBe(true);
      expect(child1.cancelled()).toBe(true);
      expect(child2.cancelled()).toBe(true);
      await tick();
      expect(proof).toBe(0);
    });
  });

  it('cancelled gather stays cancelled even with returnExceptions, and carries the message (cancel_gather_2)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const t = loop.createTask(async () => {
        for (;;) await gather([() => sleep(LONG)], { returnExceptions: true });
      });
      await tick(2);
      t.cancel('my message');
      const err = await caught(t);
      expect(err).toBeInstanceOf(CancelledError);
      expect((err as Error).message).toBe('my message');
      // Cancelling the gather future itself.
      const g = gather([() => sleep(LONG), () => sleep(LONG)], { returnExceptions: true });
      await tick();
      expect(g.cancel()).toBe(true);
      expect(await caught(g)).toBeInstanceOf(CancelledError);
    });
  });

  it('refuses to be cancelled once every child is done (cancel_gather_1)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const fut = loop.createFuture<number>();
      const g = gather([fut]);
      let cancelResult: boolean | null = null;
      fut.addDoneCallback(() => {
        cancelResult = g.cancel();
      });
      fut.setResult(42);
      expect(await g).toEqual([42]);
      expect(cancelResult).toBe(false);
    });
  });

  it('runs a duplicate awaitable once; eager children done at once complete it eagerly (duplicate_coroutines)', async () => {
    await runVirtual(async () => {
      let runs = 0;
      const c = coroutine(async (s: string) => {
        runs++;
        return s;
      });
      const abc = c('abc');
      expect(await gather([abc, abc, c('def'), abc])).toEqual(['abc', 'abc', 'def', 'abc']);
      expect(runs).toBe(2);
      getRunningLoop().setTaskFactory(eagerTaskFactory);
      const g = gather([() => 1, () => 2]);
      expect(g.done()).toBe(true);
      expect(g.result()).toEqual([1, 2]);
      getRunningLoop().setTaskFactory(null);
    });
  });

  it('refuses bad input before starting anything, and futures of another loop (constructor_heterogenous_futures, issue46672)', async () => {
    const other = new Loop();
    const foreign = other.createFuture();
    await runVirtual(async () => {
      let started = false;
      const c = coroutine(async () => {
        started = true;
      });
      expect(() => gather([c(), {} as never])).toThrow(InvalidArgumentError);
      expect(() => gather([foreign])).toThrow(InvalidArgumentError);
      expect(() => gather('ab' as never)).toThrow(InvalidArgumentError);
      expect(() => gather(5 as never)).toThrow(InvalidArgumentError);
      await tick();
      expect(started).toBe(false);
    });
    other.close();
  });
});

describe('wait()', () => {
  it('ALL_COMPLETED (default), FIRST_COMPLETED, FIRST_EXCEPTION (wait, first_completed, first_exception, _in_wait)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const a = loop.createTask(() => sleep(5, 'a'));
      const b = loop.createTask(() => sleep(1, 'b'));
      const all = await wait([b, a]);
      expect(all.done).toEqual(new Set([a, b]));
      expect(all.pending.size).toBe(0);

      const slow = loop.createTask(() => sleep(LONG));
      const fast = loop.createTask(() => sleep(1));
      const first = await wait([fast, slow], { returnWhen: 'FIRST_COMPLETED' });
      expect(first.done).toEqual(new Set([fast]));
      expect(first.pending).toEqual(new Set([slow]));

      const failing = loop.createTask(async () => {
        throw new ZeroDiv();
      });
      const fe = await wait([failing, slow], { returnWhen: 'FIRST_EXCEPTION' });
      expect(fe.done).toEqual(new Set([failing]));
      expect(fe.pending).toEqual(new Set([slow]));
      const failsLater = loop.createTask(async () => {
        await sleep(1);
        throw new ZeroDiv();
      });
      const fe2 = await wait([failsLater, slow], { returnWhen: 'FIRST_EXCEPTION' });
      expect(fe2.done).toEqual(new Set([failsLater]));
      // No failure: FIRST_EXCEPTION waits for all; a cancelled one does not count as failing.
      const ok1 = loop.createTask(() => sleep(1));
      const cancelled = loop.createTask(() => sleep(LONG));
      cancelled.cancel();
      const fe3 = await wait([ok1, cancelled], { returnWhen: 'FIRST_EXCEPTION' });
      expect(fe3.done).toEqual(new Set([ok1, cancelled]));
      slow.cancel();
      for (const t of [failing, failsLater]) expect(t.exception()).toBeInstanceOf(ZeroDiv);
    });
  });

  it('with a timeout returns what is done, never throws nor cancels (wait_with_timeout)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const a = loop.createTask(() => sleep(LONG));
      const b = loop.createTask(() => sleep(1));
      const { done, pending } = await wait([a, b], { timeout: 20 });
      expect(done).toEqual(new Set([b]));
      expect(pending).toEqual(new Set([a]));
      expect(a.cancelled()).toBe(false);
      a.cancel();
    });
  });

  it('sees tasks done whose callbacks have not run yet (wait_really_done), accepts iterators (wait_with_iterator_of_tasks)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const a = loop.createTask(() => sleep(0));
      const b = loop.createTask(async () => {
        await sleep(0);
        await sleep(0);
      });
      const r = await wait([b, a], { returnWhen: 'FIRST_COMPLETED' });
      expect(r.done.has(a)).toBe(true);
      const tasks = [loop.createTask(() => sleep(1)), loop.createTask(() => sleep(2))];
      const r2 = await wait(tasks.values());
      expect(r2.done.size).toBe(2);
    });
  });

  it('cancelling the waiter leaves the futures alone', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const a = loop.createTask(() => sleep(LONG));
      const w = loop.createTask(() => wait([a]));
      await tick();
      w.cancel();
      expect(await caught(w)).toBeInstanceOf(CancelledError);
      expect(a.done()).toBe(false);
      a.cancel();
    });
  });

  it('refuses an empty set, coroutines, a bare future and an unknown returnWhen (wait_errors, wait_invalid_args)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const f = loop.createFuture();
      expect(await caught(wait([]))).toBeInstanceOf(InvalidArgumentError);
      expect(await caught(wait([coroutine(async () => 1)() as never]))).toBeInstanceOf(InvalidArgumentError);
      expect(await caught(wait(f as never))).toBeInstanceOf(InvalidArgumentError);
      expect(await caught(wait([f], { returnWhen: 'SOMETIMES' as never }))).toBeInstanceOf(InvalidArgumentError);
      expect(await caught(wait([f], { timeout: Number.NaN }))).toBeInstanceOf(InvalidArgumentError);
      f.cancel();
    });
  });
});

describe('asCompleted()', () => {
  it('yields in completion order, the original tasks as they are (as_completed, same_tasks_in_as_out)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const ts = [30, 10, 20].map((ms) => loop.createTask(() => sleep(ms, ms)));
      const order: number[] = [];
      const seen = new Set<unknown>();
      for await (const t of asCompleted(ts)) {
        seen.add(t);
        order.push(await t);
      }
      expect(order).toEqual([10, 20, 30]);
      expect(seen).toEqual(new Set(ts));
      // Coroutines come back as the tasks made for them.
      const c = coroutine(async (i: number) => i);
      const out: unknown[] = [];
      for await (const t of asCompleted([c(0), c(1)])) {
        // TypeScript types a for-await variable as the awaited value (futures are
        // thenables); at run time it is the future: await it for the value.
        expect(t).toBeInstanceOf(Future);
        out.push(await t);
      }
      expect(out.sort()).toEqual([0, 1]);
    });
  });

  it('throws TimeoutError from the step that waits past the timeout (with_timeout, with_unused_timeout)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const a = loop.createTask(() => sleep(1, 'a'));
      const b = loop.createTask(() => sleep(LONG, 'b'));
      const values: unknown[] = [];
      const it = asCompleted([a, b], { timeout: 20 });
      for (;;) {
        try {
          const r = await it.next();
          if (r.done === true) break;
          values.push(await r.value);
        } catch (e) {
          values.push(e);
          break;
        }
      }
      expect(values[0]).toBe('a');
      expect(values[1]).toBeInstanceOf(TimeoutError);
      expect(b.done()).toBe(false);
      b.cancel();
      // A timeout never reached: nothing happens.
      const out: unknown[] = [];
      for await (const t of asCompleted([loop.createTask(() => sleep(1, 'x'))], { timeout: LONG })) out.push(await t);
      expect(out).toEqual(['x']);
      expect(loop.stats().timersScheduled).toBeLessThan(5);
    });
  });

  it('yields duplicates once (duplicate_coroutines); breaking out cancels the tasks it made and not the caller\'s', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const c = coroutine(async (s: string) => s);
      const abc = c('abc');
      const got: unknown[] = [];
      for await (const t of asCompleted([abc, abc, c('def')])) got.push(await t);
      expect(got.sort()).toEqual(['abc', 'def']);

      const mine = loop.createTask(() => sleep(LONG, 'mine'));
      let made!: Task<unknown>[];
      const slowFn = (): Promise<string> => sleep(LONG, 'slow');
      for await (const t of asCompleted<string>([() => sleep(1, 'fast'), slowFn, mine])) {
        expect(await t).toBe('fast');
        made = [...loop.pendingTasks()].filter((x) => x !== mine && x !== currentTask()) as Task<unknown>[];
        break;
      }
      await tick();
      expect(made.length).toBe(1);
      expect(made[0]!.cancelled()).toBe(true);
      expect(mine.done()).toBe(false);
      mine.cancel();
    });
  });

  it('refuses a single awaitable or bad items (as_completed_invalid_args)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const f = loop.createFuture();
      expect(() => asCompleted(f as never)).toThrow(InvalidArgumentError);
      expect(() => asCompleted([5 as never])).toThrow(InvalidArgumentError);
      expect(() => asCompleted([f], { timeout: 'x' as never })).toThrow(InvalidArgumentError);
      f.cancel();
      const empty: unknown[] = [];
      for await (const t of asCompleted([])) empty.push(t);
      expect(empty).toEqual([]);
    });
  });
});

describe('shield()', () => {
  it('follows the inner result, error or cancellation (shield_result, _exception, _cancel_inner, _shortcut)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const inner = loop.createFuture<number>();
      const outer = shield(inner);
      inner.setResult(42);
      expect(await outer).toBe(42);
      const i2 = loop.createFuture<number>();
      const o2 = shield(i2);
      const exc = new Error('expected');
      i2.setException(exc);
      expect(await caught(o2)).toBe(exc);
      const i3 = loop.createFuture<number>();
      const o3 = shield(i3);
      i3.cancel();
      await tick();
      expect(o3.cancelled()).toBe(true);
      const done = loop.createFuture<number>();
      done.setResult(7);
      expect(shield(done)).toBe(done);
    });
  });

  it('cancelling the outer does not cancel the inner (shield_cancel_outer, shield_effect)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      let proof = 0;
      const waiter = loop.createFuture<void>();
      const f = loop.createTask(async () => {
        await shield(async () => {
          await waiter;
          proof += 1;
        });
        proof += 100;
      });
      await tick();
      f.cancel();
      expect(await caught(f)).toBeInstanceOf(CancelledError);
      waiter.setResult();
      await tick(2);
      expect(proof).toBe(1);
    });
  });

  it('a failure of the inner after the outer was cancelled is reported once; a result is not (cancel_outer_result, _exception, duplicate_log_once)', async () => {
    const reports: ExceptionContext[] = [];
    await runVirtual(async () => {
      const loop = getRunningLoop();
      loop.setExceptionHandler((_l, ctx) => reports.push(ctx));
      const i1 = loop.createFuture<number>();
      shield(i1).cancel();
      await tick();
      i1.setResult(1);
      await tick();
      expect(reports).toEqual([]);
      const i2 = loop.createFuture<number>();
      shield(i2).cancel();
      await tick();
      shield(i2).cancel();
      await tick();
      i2.setException(new Error('foo'));
      await tick(2);
    });
    expect(reports).toHaveLength(1);
    expect(reports[0]!.message).toBe('Error exception in shielded future');
    expect((reports[0]!.exception as Error).message).toBe('foo');
  });

  it('works with gather both ways (shield_gather, gather_shield)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const [c1, c2] = [loop.createFuture<number>(), loop.createFuture<number>()];
      const parent = gather([c1, c2]);
      const outer = shield(parent);
      outer.cancel();
      await tick();
      expect(outer.cancelled()).toBe(true);
      c1.setResult(1);
      c2.setResult(2);
      expect(await parent).toEqual([1, 2]);

      const [d1, d2] = [loop.createFuture<number>(), loop.createFuture<number>()];
      const inner1 = shield(d1);
      const inner2 = shield(d2);
      const p2 = gather([inner1, inner2]);
      p2.cancel();
      expect(await caught(p2)).toBeInstanceOf(CancelledError);
      expect(inner1.cancelled() && inner2.cancelled()).toBe(true);
      expect(d1.done() || d2.done()).toBe(false);
      d1.setResult(1);
      d2.setResult(2);
    });
  });
});
