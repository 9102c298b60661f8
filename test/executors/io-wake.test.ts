// The loop's wake-up from a worker's answer (an I/O event: the loop's iteration runs from
// a microtask of that event, not a setImmediate later) keeps asyncio's order, and the
// executor jobs in flight are counted exactly while their future is pending.
import { afterAll, describe, expect, it } from 'vitest';
import { CancelledError, ThreadPoolExecutor, getRunningLoop, run, type Loop } from '../../src/index.ts';
import { MAX_BURST_ITERATIONS } from '../../src/loop/loop.ts';
import { kIoEvent, kRealWork } from '../../src/loop/symbols.ts';
import { rejection, tasks } from './helpers.ts';

const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
afterAll(() => pool.shutdown({ wait: true, timeout: 0 }));

/** Runs `body` in a native macrotask of Node's, outside the loop (as an I/O callback runs). */
function inNativeEvent(body: (done: () => void) => void): Promise<void> {
  return new Promise<void>((resolve) => {
    setTimeout(() => body(resolve), 0);
  });
}

/** A callSoon from a native event (not an I/O event) wakes the loop through setImmediate: one queued before runs first. */
async function expectWakeThroughSetImmediate(loop: Loop): Promise<void> {
  const order: string[] = [];
  await inNativeEvent((done) => {
    setImmediate(() => order.push('native setImmediate'));
    loop.callSoon(() => {
      order.push('ready');
      done();
    });
  });
  expect(order).toEqual(['native setImmediate', 'ready']);
}

describe('the wake-up from an I/O event', () => {
  it('runs the iteration from the event itself: the ready callbacks, then the timers due now, before Node gets to its next callback', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const order: string[] = [];
      const later = { handle: null as { cancel(): void } | null };
      await inNativeEvent((done) => {
        // Outside the loop, while it waits: one timer due now, one due later.
        loop.callAt(loop.time() - 1, () => order.push('timer due'));
        later.handle = loop.callLater(60_000, () => order.push('timer later'));
        setImmediate(() => {
          order.push('native setImmediate');
          done();
        });
        loop[kIoEvent]((l: Loop, what: string) => l.callSoon(() => order.push(what)), loop, 'ready', null);
      });
      later.handle!.cancel();
      // asyncio: the iteration after the event runs what was ready, then the timers due;
      // a setImmediate queued before the event comes after that iteration.
      expect(order).toEqual(['ready', 'timer due', 'native setImmediate']);
    });
  });

  it('what the woken callbacks schedule runs in the next iteration, after the timers due by then', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const order: string[] = [];
      await inNativeEvent((done) => {
        loop[kIoEvent](
          (l: Loop) => {
            l.callSoon(() => {
              order.push('first');
              l.callAt(l.time() - 1, () => order.push('timer due'));
              l.callSoon(() => {
                order.push('scheduled by first');
                done();
              });
            });
            l.callSoon(() => order.push('second'));
          },
          loop,
          null,
          null,
        );
      });
      expect(order).toEqual(['first', 'second', 'scheduled by first', 'timer due']);
    });
  });

  it('a wake-up outside an I/O event still goes through setImmediate (a native setImmediate queued first runs first)', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      await expectWakeThroughSetImmediate(loop);
    });
  });

  it('an error thrown by the event callback propagates and leaves later wake-ups on setImmediate', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      expect(() =>
        loop[kIoEvent](
          () => {
            throw new RangeError('boom');
          },
          null,
          null,
          null,
        ),
      ).toThrow(RangeError);
      await expectWakeThroughSetImmediate(loop);
    });
  });

  it('a chain of I/O events settled in microtasks cannot keep Node out: after at most MAX_BURST_ITERATIONS wake-ups one goes through setImmediate', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const N = 3 * MAX_BURST_ITERATIONS;
      let count = 0;
      let immediateAt = -1;
      const event = (l: Loop): void => void l.callSoon(step);
      let finish = (): void => {};
      function step(): void {
        count++;
        if (count === N) finish();
        // The next event comes from a microtask, never from Node's event loop.
        else queueMicrotask(() => loop[kIoEvent](event, loop, null, null));
      }
      await inNativeEvent((done) => {
        finish = done;
        setImmediate(() => (immediateAt = count));
        loop[kIoEvent](event, loop, null, null);
      });
      expect(count).toBe(N);
      expect(immediateAt).toBeGreaterThan(0);
      expect(immediateAt).toBeLessThanOrEqual(MAX_BURST_ITERATIONS);
    });
  });

  it('executor answers resume their tasks in the order the jobs finish, and the done callbacks in registration order', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const order: string[] = [];
      const fut = loop.runInExecutor(pool, tasks.add, 1, 2);
      fut.addDoneCallback(() => order.push('done callback 1'));
      fut.addDoneCallback(() => order.push('done callback 2'));
      const waiter = (async () => {
        const v = await fut;
        order.push(`awaited ${v}`);
      })();
      await waiter;
      expect(order.slice(0, 3)).toEqual(['done callback 1', 'done callback 2', 'awaited 3']);
    });
  });
});

describe('executor jobs in flight (real work a virtual clock waits for)', () => {
  it('count while the future is pending, whatever settles it: the answer, a cancel, or setResult from outside', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      expect(loop[kRealWork]).toBe(0);
      const answered = loop.runInExecutor(pool, tasks.add, 20, 22);
      expect(loop[kRealWork]).toBe(1);
      expect(await answered).toBe(42);
      expect(loop[kRealWork]).toBe(0);

      const cancelled = loop.runInExecutor(pool, tasks.sleepMs, 60_000);
      expect(loop[kRealWork]).toBe(1);
      cancelled.cancel();
      expect(loop[kRealWork]).toBe(0);
      expect(await rejection(cancelled)).toBeInstanceOf(CancelledError);

      const failed = loop.runInExecutor(pool, tasks.throwType, 'no');
      expect(loop[kRealWork]).toBe(1);
      expect(await rejection(failed)).toBeInstanceOf(TypeError);
      expect(loop[kRealWork]).toBe(0);

      // Settled from outside first: counted off once, and the job's own answer later changes nothing.
      const outside = loop.runInExecutor(pool, tasks.add, 1, 1);
      outside.setResult(7);
      expect(loop[kRealWork]).toBe(0);
      expect(await outside).toBe(7);
      expect(await loop.runInExecutor(pool, tasks.add, 2, 2)).toBe(4); // the pool's one worker has answered the job before
      expect(loop[kRealWork]).toBe(0);
    });
  });
});
