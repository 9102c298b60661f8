// Ported from CPython's test_timeouts.py and test_waitfor.py (behaviours, not code).
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runVirtual } from '../helpers.ts';
import {
  CancelledError,
  caught,
  coroutine,
  currentTask,
  errorTypes,
  ExceptionGroup,
  getRunningLoop,
  InvalidArgumentError,
  InvalidStateError,
  Loop,
  MyExc,
  shield,
  sleep,
  taskGroup,
  timeout,
  timeoutAt,
  TimeoutError,
  waitFor,
  ZeroDiv,
  type Timeout,
} from './helpers.ts';

const LONG = 10_000;

describe('timeout() / timeoutAt()', () => {
  it('turns its own cancellation into TimeoutError, with the CancelledError as cause (basic, waiter_cancelled)', async () => {
    await runVirtual(async () => {
      let cm!: Timeout;
      let sawCancel = false;
      const err = await caught(
        timeout(5, async (t) => {
          cm = t;
          try {
            await sleep(LONG);
          } catch (e) {
            sawCancel = e instanceof CancelledError;
            throw e;
          }
        }),
      );
      expect(err).toBeInstanceOf(TimeoutError);
      expect((err as TimeoutError).code).toBe('ERR_PROTOLOOP_TIMEOUT');
      expect((err as Error).cause).toBeInstanceOf(CancelledError);
      expect(sawCancel).toBe(true);
      expect(cm.expired()).toBe(true);
      expect(cm.state).toBe('expired');
      expect(String(cm)).toBe('<Timeout [expired]>');
      // The task itself is fine afterwards.
      expect(currentTask()!.cancelling()).toBe(0);
      expect(await sleep(1, 'ok')).toBe('ok');
    });
  });

  it('timeoutAt() takes a loop time; when() reports it', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const deadline = loop.time() + 5;
      let cm!: Timeout;
      expect(await caught(timeoutAt(deadline, (t) => ((cm = t), sleep(LONG))))).toBeInstanceOf(TimeoutError);
      expect(cm.expired()).toBe(true);
      expect(cm.when()).toBe(deadline);
    });
  });

  it('nested deadlines at the same time: only the outermost raises TimeoutError (nested_timeouts)', async () => {
    await runVirtual(async () => {
      const deadline = getRunningLoop().time() + 5;
      let innerCancelled = false;
      let cm1!: Timeout;
      let cm2!: Timeout;
      const err = await caught(
        timeoutAt(deadline, async (t1) => {
          cm1 = t1;
          try {
            await timeoutAt(deadline, async (t2) => {
              cm2 = t2;
              await sleep(LONG);
            });
          } catch (e) {
            innerCancelled = e instanceof CancelledError;
            throw e;
          }
        }),
      );
      expect(err).toBeInstanceOf(TimeoutError);
      expect(innerCancelled).toBe(true);
      expect(cm1.expired()).toBe(true);
      expect(cm2.expired()).toBe(true);
    });
  });

  it('nested: an inner expired deadline is caught inside, then the outer one fires (nested_timeouts_concurrent, loop_busy)', async () => {
    await runVirtual(async () => {
      const t0 = getRunningLoop().time();
      const err = await caught(
        timeout(50, async () => {
          const inner = await caught(
            timeout(1, async () => {
              const until = performance.now() + 10;
              while (performance.now() < until); // the loop is busy past both deadlines' first
              await sleep(LONG);
            }),
          );
          expect(inner).toBeInstanceOf(TimeoutError);
          await sleep(LONG); // interrupted by the outer deadline
        }),
      );
      expect(err).toBeInstanceOf(TimeoutError);
      expect(getRunningLoop().time() - t0).toBeLessThan(LONG);
    });
  });

  it('not reached, disabled (null / Infinity): no error, not expired (not_called, disabled)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const cms: Timeout[] = [];
      expect(await timeout(LONG, (t) => (cms.push(t), sleep(1, 'a')))).toBe('a');
      expect(cms[0]!.when()!).toBeGreaterThan(loop.time());
      expect(await timeout(null, (t) => (cms.push(t), sleep(1, 'b')))).toBe('b');
      expect(await timeout(Infinity, (t) => (cms.push(t), sleep(1, 'c')))).toBe('c');
      expect(await timeoutAt(null, (t) => (cms.push(t), sleep(1, 'd')))).toBe('d');
      for (const cm of cms) expect(cm.expired()).toBe(false);
      expect(cms[1]!.when()).toBeNull();
      expect(cms[3]!.when()).toBeNull();
      expect(String(cms[0])).toBe('<Timeout [finished]>');
      await timeout(null, (t) => expect(String(t)).toBe('<Timeout [active] when=null>'));
      await timeout(LONG, (t) => expect(inspect(t)).toMatch(/^<Timeout \[active\] when=\d+\.\d+>$/));
    });
  });

  it('zero and past deadlines fire at the next iteration, even around sleep(0) (zero, zero_sleep_zero, in_the_past)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      for (const ms of [0, -11]) {
        for (const nap of [LONG, 0]) {
          const t0 = loop.time();
          let cm!: Timeout;
          expect(await caught(timeout(ms, (t) => ((cm = t), sleep(nap))))).toBeInstanceOf(TimeoutError);
          expect(cm.expired()).toBe(true);
          expect(cm.when()!).toBeLessThanOrEqual(loop.time());
          if (ms === 0) expect(cm.when()!).toBeGreaterThanOrEqual(t0);
        }
      }
    });
  });

  it('lets other errors through unchanged, expired or not (foreign_exception_passed, on_timeout)', async () => {
    await runVirtual(async () => {
      let cm!: Timeout;
      expect(
        await caught(
          timeout(5, (t) => {
            cm = t;
            throw new MyExc();
          }),
        ),
      ).toBeInstanceOf(MyExc);
      expect(cm.expired()).toBe(false);
      const crash = async (): Promise<void> => {
        try {
          await sleep(LONG);
        } finally {
          // eslint-disable-next-line no-unsafe-finally
          throw new ZeroDiv();
        }
      };
      expect(await caught(timeout(2, (t) => ((cm = t), crash())))).toBeInstanceOf(ZeroDiv);
      expect(cm.expired()).toBe(true);
      expect(currentTask()!.cancelling()).toBe(0);
    });
  });

  it('an error replaced by the cancellation during cleanup becomes a TimeoutError (exception_context)', async () => {
    await runVirtual(async () => {
      const err = await caught(
        timeout(2, async () => {
          try {
            throw new ZeroDiv();
          } finally {
            await sleep(LONG);
          }
        }),
      );
      expect(err).toBeInstanceOf(TimeoutError);
      expect((err as Error).cause).toBeInstanceOf(CancelledError);
    });
  });

  it('a cancellation from outside stays a cancellation (foreign_cancel_doesnt_timeout_if_not_expired)', async () => {
    await runVirtual(async () => {
      let cm!: Timeout;
      const err = await caught(
        timeout(LONG, async (t) => {
          cm = t;
          currentTask()!.cancel();
          await sleep(LONG);
        }),
      );
      expect(err).toBeInstanceOf(CancelledError);
      expect(cm.expired()).toBe(false);
      expect(currentTask()!.uncancel()).toBe(0);
    });
  });

  it('an outside cancellation arriving after the deadline fired wins over the TimeoutError', async () => {
    await runVirtual(async () => {
      let cm!: Timeout;
      const err = await caught(
        timeout(1, async (t) => {
          cm = t;
          try {
            await sleep(LONG);
          } catch {
            // our deadline fired: now someone else cancels us too
            currentTask()!.cancel();
            await sleep(LONG);
          }
        }),
      );
      expect(cm.expired()).toBe(true);
      expect(err).toBeInstanceOf(CancelledError);
      expect(currentTask()!.uncancel()).toBe(0);
    });
  });

  it('a deadline firing at the same time as the work completes is a TimeoutError, deterministically', async () => {
    await runVirtual(async () => {
      // Same deadline: the timeout's timer was scheduled first, so it runs first and
      // cancels the sleep before the sleep's own timer resolves it.
      for (let i = 0; i < 5; i++) {
        expect(await caught(timeout(3, () => sleep(3, 'x')))).toBeInstanceOf(TimeoutError);
      }
      // Deadline and completion handled in the same loop iteration, deadline first: the
      // task resumes with the cancellation (asyncio's must_cancel), a TimeoutError.
      const loop = getRunningLoop();
      const race = (deadlineFirst: boolean): Promise<string> =>
        timeout(LONG, async (t) => {
          const fut = loop.createFuture<string>();
          loop.callSoon(() => {
            if (deadlineFirst) t.reschedule(loop.time() - 1);
            fut.setResult('done');
            if (!deadlineFirst) t.reschedule(loop.time() - 1);
          });
          return await fut;
        });
      expect(await caught(race(true))).toBeInstanceOf(TimeoutError);
      // Completion first: the block returns its result before it sees the deadline's
      // cancellation, which is withdrawn; nothing leaks.
      expect(await race(false)).toBe('done');
      expect(currentTask()!.cancelling()).toBe(0);
      expect(await sleep(1, 'alive')).toBe('alive');
    });
  });

  it('the outer task does not end cancelled (outer_task_is_not_cancelled)', async () => {
    await runVirtual(async () => {
      const task = getRunningLoop().createTask(async () => {
        expect(await caught(timeout(1, () => sleep(LONG)))).toBeInstanceOf(TimeoutError);
      });
      await task;
      expect(task.cancelled()).toBe(false);
      expect(task.done()).toBe(true);
    });
  });

  it('reschedule() moves or removes the deadline (reschedule)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const fut = loop.createFuture<Timeout>();
      const deadline1 = loop.time() + LONG;
      const deadline2 = deadline1 + 2 * LONG;
      const task = loop.createTask(() =>
        timeoutAt(deadline1, async (t) => {
          fut.setResult(t);
          await sleep(5 * LONG);
        }),
      );
      const cm = await fut;
      expect(cm.when()).toBe(deadline1);
      cm.reschedule(deadline2);
      expect(cm.when()).toBe(deadline2);
      cm.reschedule(null);
      expect(cm.when()).toBeNull();
      task.cancel();
      expect(await caught(task)).toBeInstanceOf(CancelledError);
      expect(cm.expired()).toBe(false);

      // Rescheduled into the past: fires at the next iteration.
      const err = await caught(
        timeout(LONG, async (t) => {
          t.reschedule(loop.time() - 1);
          await sleep(LONG);
        }),
      );
      expect(err).toBeInstanceOf(TimeoutError);
    });
  });

  it('reschedule() outside the block or once the deadline fired is refused (finished, expired, expiring)', async () => {
    await runVirtual(async () => {
      let cm!: Timeout;
      await timeout(5, (t) => {
        cm = t;
      });
      expect(() => cm.reschedule(1)).toThrow(InvalidStateError);
      expect(() => cm.reschedule(1)).toThrow(/finished/);
      await caught(timeout(1, (t) => ((cm = t), sleep(LONG))));
      expect(() => cm.reschedule(1)).toThrow(/expired/);
      await timeout(1, async (t) => {
        expect(await caught(sleep(LONG))).toBeInstanceOf(CancelledError);
        expect(() => t.reschedule(1)).toThrow(/expiring/);
      });
      expect(() => cm.reschedule(Number.NaN)).toThrow(InvalidStateError);
    });
  });

  it('a deadline after the task swallowed a cancellation still fires, and counts from there (timeout_after_cancellation)', async () => {
    await runVirtual(async () => {
      try {
        currentTask()!.cancel();
        await sleep(LONG);
      } catch {
        // swallowed without uncancel(): cancelling() stays 1
      }
      expect(await caught(timeout(0, () => sleep(LONG)))).toBeInstanceOf(TimeoutError);
      const err = await caught(
        timeout(LONG, async () => {
          currentTask()!.cancel();
          await sleep(LONG);
        }),
      );
      expect(err).toBeInstanceOf(CancelledError);
      expect(currentTask()!.uncancel()).toBe(1);
      expect(currentTask()!.uncancel()).toBe(0);
    });
  });

  it('a cancellation inside a deadline after a swallowed one stays a cancellation (cancel_in_timeout_after_cancellation)', async () => {
    await runVirtual(async () => {
      try {
        currentTask()!.cancel();
        await sleep(LONG); // work which will be cancelled
      } catch {
        // swallowed
      } finally {
        const err = await caught(
          timeout(LONG, async () => {
            currentTask()!.cancel();
            await sleep(LONG); // some clean-up
          }),
        );
        expect(err).toBeInstanceOf(CancelledError);
      }
      expect(currentTask()!.cancelling()).toBe(2);
    });
  });

  it('nested deadline in a finally block (nested_timeout_in_finally)', async () => {
    await runVirtual(async () => {
      let inner: unknown;
      const outer = await caught(
        timeout(1, async () => {
          try {
            await sleep(LONG);
          } finally {
            inner = await caught(timeout(1, () => sleep(LONG)));
          }
        }),
      );
      expect(outer).toBeInstanceOf(TimeoutError);
      expect(inner).toBeInstanceOf(TimeoutError);
    });
  });

  it('a task group failing during the expired deadline comes out as its ExceptionGroup (timeout_taskgroup)', async () => {
    await runVirtual(async () => {
      const err = await caught(
        timeout(2, () =>
          taskGroup(async (tg) => {
            tg.createTask(async () => {
              try {
                await sleep(LONG);
              } finally {
                // eslint-disable-next-line no-unsafe-finally
                throw new ZeroDiv();
              }
            });
            try {
              throw new MyExc();
            } finally {
              await sleep(LONG);
            }
          }),
        ),
      );
      expect(err).toBeInstanceOf(ExceptionGroup);
      expect(errorTypes(err)).toEqual(new Set([ZeroDiv]));
      expect(currentTask()!.cancelling()).toBe(0);
      expect(await sleep(0, 'alive')).toBe('alive');
    });
  });

  it('refuses bad input and use outside a task', async () => {
    await runVirtual(async () => {
      expect(await caught(timeout(Number.NaN, () => 1))).toBeInstanceOf(InvalidArgumentError);
      expect(await caught(timeout('5' as unknown as number, () => 1))).toBeInstanceOf(InvalidArgumentError);
      expect(await caught(timeout(5, 'x' as never))).toBeInstanceOf(InvalidArgumentError);
      expect(await caught(timeoutAt(Number.NaN, () => 1))).toBeInstanceOf(InvalidArgumentError);
      expect(await caught(waitFor(sleep(1), Number.NaN))).toBeInstanceOf(InvalidArgumentError);
    });
    const loop = new Loop();
    let err: unknown;
    loop.callSoon(() => {
      timeout(5, () => 1).catch((e: unknown) => {
        err = e;
        loop.stop();
      });
    });
    await loop.runForever();
    loop.close();
    expect(err).toBeInstanceOf(InvalidStateError);
    expect(String((err as Error).message)).toMatch(/inside a task/);
  });
});

describe('waitFor()', () => {
  it('returns the result in time; cancels and waits for the work on timeout (wait_for, waits_for_task_cancellation)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      expect(await waitFor(sleep(1, 'fast'), 1000)).toBe('fast');
      expect(await waitFor(coroutine(async () => 'coro')(), null)).toBe('coro');
      expect(await waitFor(() => sleep(1, 'fn'), LONG)).toBe('fn');
      let running: boolean | null = null;
      let done = false;
      const fut = loop.createTask(async () => {
        running = true;
        try {
          await sleep(LONG);
        } catch (e) {
          await sleep(2); // the cancellation takes a while: waitFor waits for it
          throw e;
        } finally {
          running = false;
          done = true;
        }
        return 'done';
      });
      const err = await caught(waitFor(fut, 2));
      expect(err).toBeInstanceOf(TimeoutError);
      expect((err as Error).cause).toBeInstanceOf(CancelledError);
      expect(done).toBe(true);
      expect(fut.cancelled()).toBe(true);
      expect(running).toBe(false);
    });
  });

  it('ms <= 0: a done future gives its result; a coroutine never starts; a task is cancelled and awaited (less_then_0_or_0)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const f = loop.createFuture<string>();
      f.setResult('done');
      expect(await waitFor(f, 0)).toBe('done');
      let started = false;
      const foo = coroutine(async () => {
        started = true;
      });
      expect(await caught(waitFor(foo(), 0))).toBeInstanceOf(TimeoutError);
      expect(started).toBe(false);
      for (const ms of [0, -1]) {
        let running: boolean | null = null;
        const ready = loop.createFuture<void>();
        const t = loop.createTask(async () => {
          running = true;
          ready.setResult();
          try {
            await sleep(LONG);
          } finally {
            running = false;
          }
        });
        await ready;
        expect(await caught(waitFor(t, ms))).toBeInstanceOf(TimeoutError);
        expect(t.cancelled()).toBe(true);
        expect(running).toBe(false);
      }
    });
  });

  it('a result arriving just before the deadline wins (race_condition); a swallowed cancellation returns its value (cancel_suppressed)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const fut = loop.createFuture<string>();
      const p = waitFor(fut, 200);
      loop.callSoon(() => fut.setResult('ok'));
      expect(await p).toBe('ok');
      expect(
        await waitFor(async () => {
          try {
            await sleep(LONG);
          } catch {
            return 42;
          }
          return 0;
        }, 2),
      ).toBe(42);
      expect(
        await waitFor(async () => {
          expect(await caught(sleep(LONG))).toBeInstanceOf(CancelledError);
          return 1;
        }, 2),
      ).toBe(1);
    });
  });

  it('an error raised while the work is cancelled comes out instead of TimeoutError (reraises_exception_during_cancellation)', async () => {
    await runVirtual(async () => {
      const inner = getRunningLoop().createTask(async () => {
        try {
          await sleep(LONG);
        } finally {
          // eslint-disable-next-line no-unsafe-finally
          throw new MyExc();
        }
      });
      expect(await caught(waitFor(inner, 1))).toBeInstanceOf(MyExc);
    });
  });

  it('cancelling the waiter cancels the work, with or without a deadline (cancel_wait_for, cancel_blocking_wait_for)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      for (const ms of [null, 60_000]) {
        const task = loop.createTask(async () => {
          await loop.createFuture(); // never set
        });
        const w = loop.createTask(() => waitFor(task, ms));
        loop.callSoon(() => w.cancel());
        expect(await caught(w)).toBeInstanceOf(CancelledError);
        expect(task.cancelled()).toBe(true);
      }
    });
  });

  it('a cancellation arriving as the work completes still cancels the caller (issue86296)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const inner = loop.createTask(async () => 'done');
      let reachedEnd = false;
      const task = loop.createTask(async () => {
        await waitFor(inner, 100_000);
        await sleep(LONG);
        reachedEnd = true;
      });
      await sleep(0);
      task.cancel();
      expect(await caught(task)).toBeInstanceOf(CancelledError);
      expect(inner.done()).toBe(true);
      expect(await inner).toBe('done');
      expect(reachedEnd).toBe(false);
    });
  });

  it('a foreign promise is followed by a future, so the deadline works (its work goes on)', async () => {
    await runVirtual(async () => {
      let resolveLater!: (v: string) => void;
      const foreign = new Promise<string>((r) => (resolveLater = r));
      expect(await caught(waitFor(foreign, 2))).toBeInstanceOf(TimeoutError);
      resolveLater('late');
      expect(await foreign).toBe('late');
    });
  });

  it('with shield(): the deadline cancels the shield, not the work (zero_timeout, none_timeout, shielded_timeout)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const task = loop.createTask(() => sleep(5, 'done'));
      const shielded = shield(task);
      expect(await caught(waitFor(shielded, 0))).toBeInstanceOf(TimeoutError);
      expect(task.done()).toBe(false);
      expect(shielded.cancelled()).toBe(true);
      expect(await task).toBe('done');

      const t2 = loop.createTask(() => sleep(2, 'done'));
      expect(await waitFor(shield(t2), null)).toBe('done');

      const t3 = loop.createTask(() => sleep(20, 'done'));
      expect(await caught(waitFor(shield(t3), 1))).toBeInstanceOf(TimeoutError);
      expect(t3.done()).toBe(false);
      expect(await t3).toBe('done');
    });
  });

  it('a task ignoring cancellation is waited for (asyncio_wait_for_cancelled / _timeout)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const slow = (): { run: () => Promise<void>; exited: () => boolean } => {
        let exited = false;
        return {
          exited: () => exited,
          run: async () => {
            const until = loop.time() + 20;
            while (loop.time() < until) {
              try {
                await sleep(until - loop.time());
              } catch {
                // ignore cancellation
              }
            }
            exited = true;
          },
        };
      };
      const s1 = slow();
      const w = loop.createTask(() => waitFor(s1.run, 40));
      await sleep(0);
      w.cancel();
      await caught(w).catch(() => undefined);
      expect(s1.exited()).toBe(true);
      const s2 = slow();
      await waitFor(s2.run, 10).catch(() => undefined);
      expect(s2.exited()).toBe(true);
    });
  });
});
