// Cancel scopes that follow the code (issue 13, part 1): timeout(), timeoutAt(),
// waitFor(), taskGroup() and shield() inside the branches of one task (Promise.all)
// each cancel only the protoloop awaits made inside their own callback. Timing runs on
// an autojumping VirtualClock: deadlines are exact and nothing waits on real time.
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { runVirtual } from '../helpers.ts';
import {
  CancelledError,
  caught,
  currentTask,
  errorTypes,
  ExceptionGroup,
  getRunningLoop,
  InvalidStateError,
  MyExc,
  shield,
  sleep,
  taskGroup,
  Timeout,
  timeout,
  timeoutAt,
  TimeoutError,
  waitFor,
  type Task,
  type TaskGroup,
} from './helpers.ts';

const LONG = 10_000;


/** The error's name, or 'completed' when `p` resolves. */
async function outcome(p: PromiseLike<unknown>): Promise<string> {
  try {
    await p;
    return 'completed';
  } catch (e) {
    return (e as Error).name;
  }
}

/** The task can still await, and no cancellation is left over. */
async function expectTaskClean(): Promise<void> {
  expect(currentTask()!.cancelling()).toBe(0);
  expect(await sleep(1, 'alive')).toBe('alive');
  expect(currentTask()!.cancelling()).toBe(0);
}

describe('cancel scopes: concurrent deadlines in one task', () => {
  it("the issue's case: three timeouts in Promise.all each raise TimeoutError at their deadline", async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const t0 = loop.time();
      const r = await Promise.all(
        [1, 2, 3].map(async () => {
          try {
            await timeout(50, () => sleep(1000));
            return 'completed';
          } catch (e) {
            return (e as Error).name;
          }
        }),
      );
      expect(r).toEqual(['TimeoutError', 'TimeoutError', 'TimeoutError']);
      expect(loop.time() - t0).toBe(50);
      await expectTaskClean();
    });
  });

  it('each deadline fires at its own time, at its own call; the branches without one go on', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const t0 = loop.time();
      const firedAt: number[] = [];
      const branch = async (ms: number): Promise<string> => {
        const err = await caught(timeout(ms, () => sleep(LONG)));
        firedAt.push(loop.time() - t0);
        expect(err).toBeInstanceOf(TimeoutError);
        expect((err as Error).cause).toBeInstanceOf(CancelledError);
        // the branch goes on after its own timeout
        return sleep(5, `after ${ms}`);
      };
      const plain = async (): Promise<string> => {
        await sleep(100);
        return `plain at ${loop.time() - t0}`;
      };
      const r = await Promise.all([branch(30), branch(10), plain(), branch(20)]);
      expect(firedAt).toEqual([10, 20, 30]);
      expect(r).toEqual(['after 30', 'after 10', 'plain at 100', 'after 20']);
      await expectTaskClean();
    });
  });

  it('timeoutAt() in branches: the same, with absolute deadlines', async () => {
    await runVirtual(async () => {
      const now = getRunningLoop().time();
      const r = await Promise.all([outcome(timeoutAt(now + 10, () => sleep(LONG))), outcome(timeoutAt(now + 20, () => sleep(5))), outcome(timeoutAt(null, () => sleep(30)))]);
      expect(r).toEqual(['TimeoutError', 'completed', 'completed']);
      await expectTaskClean();
    });
  });

  it('a deadline cancels every branch inside its own callback, and nothing outside it', async () => {
    await runVirtual(async () => {
      const inside: string[] = [];
      const [a, b] = await Promise.all([
        outcome(
          timeout(10, () =>
            Promise.all([
              sleep(LONG).catch((e: unknown) => {
                inside.push((e as Error).name);
                throw e;
              }),
              sleep(LONG).catch((e: unknown) => {
                inside.push((e as Error).name);
                throw e;
              }),
            ]),
          ),
        ),
        sleep(50, 'outside'),
      ]);
      expect(a).toBe('TimeoutError');
      expect(b).toBe('outside');
      expect(inside).toEqual(['CancelledError', 'CancelledError']);
      await expectTaskClean();
    });
  });

  it('cancelling() counts per scope: 1 in the expired branch, 0 in its sibling at the same moment', async () => {
    await runVirtual(async () => {
      const task = currentTask()!;
      const levels: Record<string, number> = {};
      const release = getRunningLoop().createFuture<void>();
      await Promise.all([
        outcome(
          timeout(10, async () => {
            try {
              await sleep(LONG);
            } catch (e) {
              levels.expired = task.cancelling();
              release.setResult();
              await sleep(1); // an await after the delivered cancellation works (asyncio's rule)
              throw e;
            }
          }),
        ),
        timeout(LONG, async () => {
          await release;
          levels.sibling = task.cancelling();
        }),
      ]);
      expect(levels).toEqual({ expired: 1, sibling: 0 });
      await expectTaskClean();
    });
  });

  it('waitFor() in branches: each times out on its own, the awaited futures are cancelled', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const tasks = [1, 2].map((i) => loop.createTask(() => sleep(LONG, i)));
      const r = await Promise.all([
        outcome(waitFor(tasks[0]!, 10)),
        outcome(waitFor(() => sleep(LONG), 20)),
        outcome(waitFor(tasks[1]!, 30)),
        waitFor(sleep(5, 'quick'), 30),
      ]);
      expect(r).toEqual(['TimeoutError', 'TimeoutError', 'TimeoutError', 'quick']);
      expect(tasks.map((t) => t.cancelled())).toEqual([true, true]);
      await expectTaskClean();
    });
  });

  it('a timeout nested in a timeout in a branch: the inner deadline is the inner TimeoutError, the outer one the outer', async () => {
    await runVirtual(async () => {
      const innerFirst = async (): Promise<string[]> => {
        const seen: string[] = [];
        const r = await timeout(100, async () => {
          seen.push(await outcome(timeout(10, () => sleep(LONG))));
          return sleep(5, 'outer completed');
        });
        seen.push(r);
        return seen;
      };
      const outerFirst = async (): Promise<string[]> => {
        const seen: string[] = [];
        const err = await caught(
          timeout(10, async () => {
            const inner = await caught(timeout(100, () => sleep(LONG)));
            seen.push((inner as Error).name); // the outer deadline's cancellation passes through
            throw inner;
          }),
        );
        seen.push((err as Error).name);
        return seen;
      };
      const r = await Promise.all([innerFirst(), outerFirst(), innerFirst()]);
      expect(r).toEqual([
        ['TimeoutError', 'outer completed'],
        ['CancelledError', 'TimeoutError'],
        ['TimeoutError', 'outer completed'],
      ]);
      await expectTaskClean();
    });
  });

  it('shield() inside a timeout inside a branch: the deadline stops the wait, not the shielded work, nor the other branches', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const work = loop.createTask(() => sleep(50, 'saved'));
      const r = await Promise.all([outcome(timeout(10, () => shield(work))), sleep(20, 'other'), outcome(timeout(10, () => sleep(LONG)))]);
      expect(r).toEqual(['TimeoutError', 'other', 'TimeoutError']);
      expect(work.cancelled()).toBe(false);
      expect(await work).toBe('saved');
      await expectTaskClean();
    });
  });
});

describe('cancel scopes: task groups in branches', () => {
  it('a failing child cancels the body of its own group, not the groups of the other branches', async () => {
    await runVirtual(async () => {
      const branch = (fail: boolean) =>
        taskGroup(async (tg) => {
          const child = tg.createTask(async () => {
            await sleep(10);
            if (fail) throw new MyExc('boom');
            return 'child ok';
          });
          await sleep(30); // the body's own await: cancelled only in the failing branch
          return child.result();
        });
      const r = await Promise.allSettled([branch(false), branch(true), branch(false)]);
      expect(r[0]).toEqual({ status: 'fulfilled', value: 'child ok' });
      expect(r[2]).toEqual({ status: 'fulfilled', value: 'child ok' });
      expect(r[1]!.status).toBe('rejected');
      const err = (r[1] as PromiseRejectedResult).reason as unknown;
      expect(err).toBeInstanceOf(ExceptionGroup);
      expect(errorTypes(err)).toEqual(new Set([MyExc]));
      await expectTaskClean();
    });
  });

  it('TaskGroup.cancel() (asyncio 3.15): children and body are cancelled, the group exits without error, the other branch goes on', async () => {
    await runVirtual(async () => {
      let child!: Task<unknown>;
      let bodyError: unknown;
      let signalAborted = false;
      const [result, other] = await Promise.all([
        taskGroup(async (tg) => {
          child = tg.createTask(() => sleep(LONG));
          tg.createTask(async () => {
            await sleep(10);
            tg.cancel();
            tg.cancel(); // idempotent
          });
          try {
            await sleep(LONG);
          } catch (e) {
            bodyError = e;
            signalAborted = tg.signal.aborted;
            throw e;
          }
          return 'body finished';
        }),
        sleep(20, 'other'),
      ]);
      expect(result).toBeUndefined();
      expect(other).toBe('other');
      expect(bodyError).toBeInstanceOf(CancelledError);
      expect(signalAborted).toBe(true);
      expect(child.cancelled()).toBe(true);
      await expectTaskClean();
    });
  });

  it('TaskGroup.cancel() after the body returned stops the children; after the group ended it does nothing', async () => {
    await runVirtual(async () => {
      let group!: TaskGroup;
      const kids: Task<unknown>[] = [];
      const loop = getRunningLoop();
      loop.callLater(10, () => group.cancel());
      const r = await taskGroup((tg) => {
        group = tg;
        kids.push(tg.createTask(() => sleep(LONG)), tg.createTask(() => sleep(LONG)));
        return 'returned';
      });
      expect(r).toBe('returned');
      expect(kids.every((k) => k.cancelled())).toBe(true);
      expect(group.state).toBe('finished');
      group.cancel();
      expect(group.state).toBe('finished');
      await expectTaskClean();
    });
  });

  it('TaskGroup.cancel() before the body awaits, and from another task', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const t0 = loop.time();
      // Called before any await: the body's next protoloop await throws.
      expect(
        await taskGroup(async (tg) => {
          tg.createTask(() => sleep(LONG));
          tg.cancel();
          await sleep(LONG);
          return 'not reached';
        }),
      ).toBeUndefined();
      // Called from another task: the same.
      let group!: TaskGroup;
      const stopper = loop.createTask(async () => {
        await sleep(10);
        group.cancel();
      });
      expect(
        await taskGroup(async (tg) => {
          group = tg;
          await sleep(LONG);
        }),
      ).toBeUndefined();
      await stopper;
      expect(loop.time() - t0).toBe(10);
      await expectTaskClean();
    });
  });

  it('a cancellation from outside still comes out of a group that cancels itself', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      let child!: Task<unknown>;
      const t = loop.createTask(() =>
        taskGroup(async (tg) => {
          child = tg.createTask(() => sleep(LONG));
          try {
            await sleep(LONG);
          } catch (e) {
            tg.cancel(); // the group stops itself too, but the outside request wins
            throw e;
          }
        }),
      );
      await sleep(5);
      t.cancel();
      expect(await caught(t)).toBeInstanceOf(CancelledError);
      expect(t.cancelled()).toBe(true);
      expect(child.cancelled()).toBe(true);
    });
  });
});

describe('cancel scopes: task.cancel() from outside', () => {
  it('cancels every pending await of the task, in every branch and every scope', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const seen: string[] = [];
      const note = (what: string) => (e: unknown) => {
        seen.push(`${what}: ${(e as Error).name}`);
        throw e;
      };
      const t = loop.createTask(async () => {
        await Promise.allSettled([
          sleep(LONG).catch(note('plain')),
          timeout(LONG, () => sleep(LONG)).catch(note('timeout')),
          waitFor(() => sleep(LONG), LONG).catch(note('waitFor')),
          taskGroup(async (tg) => {
            tg.createTask(() => sleep(LONG));
            await sleep(LONG);
          }).catch(note('taskGroup')),
          timeout(LONG, () => timeout(LONG, () => sleep(LONG))).catch(note('nested')),
        ]);
        await sleep(0); // the request was delivered: this await works
        return 'went on';
      });
      await sleep(5);
      expect(t.cancel()).toBe(true);
      expect(await t).toBe('went on');
      expect(seen.sort()).toEqual(['nested: CancelledError', 'plain: CancelledError', 'taskGroup: CancelledError', 'timeout: CancelledError', 'waitFor: CancelledError']);
      expect(t.cancelling()).toBe(1);
    });
  });

  it('an outside cancellation during concurrent expired deadlines stays a cancellation in every branch', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const outcomes: string[] = [];
      const branch = (): Promise<void> =>
        timeout(10, async () => {
          try {
            await sleep(LONG);
          } catch {
            // the deadline fired; the task is cancelled from outside meanwhile
            await sleep(LONG);
          }
        }).catch((e: unknown) => {
          outcomes.push((e as Error).name);
        });
      const t = loop.createTask(async () => {
        await Promise.all([branch(), branch()]);
        return currentTask()!.cancelling();
      });
      await sleep(20);
      t.cancel();
      // Each branch's CancelledError comes out as one (the request is the task's, not
      // the deadlines'), and the task's count is still 1 after both.
      expect(await t).toBe(1);
      expect(outcomes).toEqual(['CancelledError', 'CancelledError']);
    });
  });

  it('a branch that outlives its timeout callback is still reached by task.cancel()', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      let straggler!: Promise<string>;
      const t = loop.createTask(async () => {
        const first = await timeout(LONG, () => {
          straggler = outcome(sleep(LONG));
          return Promise.race([sleep(5, 'fast'), straggler]);
        });
        await sleep(LONG);
        return first;
      });
      await sleep(10);
      t.cancel();
      expect(await caught(t)).toBeInstanceOf(CancelledError);
      expect(await straggler).toBe('CancelledError');
    });
  });
});

describe('cancel scopes: foreign promises and signals', () => {
  it('a foreign promise is not interrupted: the deadline is delivered at the next protoloop await', async () => {
    await runVirtual(async () => {
      // The block sits in a plain promise when the deadline passes: it completes, and
      // with nothing of protoloop's awaited after it no TimeoutError is invented.
      let cm!: Timeout;
      expect(await timeout(1, (t) => ((cm = t), delay(20, 'foreign')))).toBe('foreign');
      expect(cm.expired()).toBe(true);
      // The next protoloop await inside the block throws, and the deadline becomes a TimeoutError.
      const err = await caught(
        timeout(1, async () => {
          await delay(20);
          await sleep(0);
        }),
      );
      expect(err).toBeInstanceOf(TimeoutError);
      await expectTaskClean();
    });
  });

  it("a scope's signal aborts foreign APIs when its deadline passes; the sibling's and the task's do not", async () => {
    await runVirtual(async () => {
      const task = currentTask()!;
      let sibling!: AbortSignal;
      const [a, b] = await Promise.all([
        caught(timeout(10, (t) => delay(LONG, 'late', { signal: t.signal }))),
        timeout(LONG, async (t) => {
          sibling = t.signal;
          await sleep(30);
          return t.signal.aborted;
        }),
      ]);
      // The foreign API rejects with Node's AbortError (its cause is the scope's
      // CancelledError): the timeout recognises its own signal and raises TimeoutError.
      expect(a).toBeInstanceOf(TimeoutError);
      expect((a as Error).cause).toMatchObject({ name: 'AbortError' });
      expect(((a as Error).cause as Error).cause).toBeInstanceOf(CancelledError);
      expect(b).toBe(false);
      expect(sibling.aborted).toBe(false);
      expect(task.signal.aborted).toBe(false);
      await expectTaskClean();
    });
  });

  it('task.cancel() aborts the signals of every scope of the task, so foreign work in every branch stops', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const signals: AbortSignal[] = [];
      let settled: PromiseSettledResult<unknown>[] = [];
      const t = loop.createTask(async () => {
        settled = await Promise.allSettled([
          timeout(LONG, (tm) => (signals.push(tm.signal), delay(LONG, 'x', { signal: tm.signal }))),
          taskGroup((tg) => (signals.push(tg.signal), delay(LONG, 'y', { signal: tg.signal }))),
          delay(LONG, 'z', { signal: currentTask()!.signal }),
        ]);
      });
      await sleep(5);
      t.cancel('stop');
      // The body never awaited anything of protoloop's after the request: the task
      // ends cancelled when it returns (asyncio's rule), and every foreign wait stopped.
      expect(await caught(t)).toBeInstanceOf(CancelledError);
      expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected', 'rejected']);
      expect(signals.map((s) => s.aborted)).toEqual([true, true]);
      expect(t.signal.aborted).toBe(true);
      expect((t.signal.reason as Error).message).toBe('stop');
    });
  });

  it('Timeout.signal exists once the block runs', () => {
    const t = new Timeout(null);
    expect(() => t.signal).toThrow(InvalidStateError);
  });
});

describe('cancel scopes: Timeout objects', () => {
  it('a Timeout made before it is entered, with no deadline yet, rescheduled by another branch', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const t = new Timeout(null);
      expect(t.when()).toBeNull();
      expect(t.state).toBe('created');
      expect(() => t.reschedule(1)).toThrow(InvalidStateError);
      const t0 = loop.time();
      const [r] = await Promise.all([
        outcome(t.run(() => sleep(LONG))),
        (async () => {
          await sleep(5);
          t.reschedule(loop.time() + 10);
        })(),
      ]);
      expect(r).toBe('TimeoutError');
      expect(loop.time() - t0).toBe(15);
      expect(t.expired()).toBe(true);
      expect(t.state).toBe('expired');
      await expect(t.run(() => 1)).rejects.toThrow(InvalidStateError);
      await expectTaskClean();
    });
  });

  it('timeout(null) and reschedule() per scope: moving one deadline leaves the others alone', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const t0 = loop.time();
      const at: Record<string, number> = {};
      await Promise.all([
        timeout(null, async (t) => {
          t.reschedule(loop.time() + 20);
          await caught(sleep(LONG));
          at.rescheduled = loop.time() - t0;
          expect(t.expired()).toBe(true);
        }).catch(() => undefined),
        timeout(10, async (t) => {
          t.reschedule(null); // no deadline after all
          await sleep(40);
          at.unlimited = loop.time() - t0;
          expect(t.expired()).toBe(false);
        }),
      ]);
      expect(at).toEqual({ rescheduled: 20, unlimited: 40 });
      await expectTaskClean();
    });
  });
});
