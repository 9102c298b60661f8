// Ported from CPython's Lib/test/test_asyncio/test_taskgroups.py (behaviours, not code).
import { describe, expect, it } from 'vitest';
import { runVirtual } from '../helpers.ts';
import {
  CancelledError,
  caught,
  currentTask,
  Event,
  eagerTaskFactory,
  errorTypes,
  ExceptionGroup,
  getRunningLoop,
  InvalidStateError,
  KeyboardInterrupt,
  MyExc,
  sleep,
  taskGroup,
  timeout,
  TimeoutError,
  ZeroDiv,
  coroutine,
  type Task,
  type TaskGroup,
} from './helpers.ts';

const LONG = 10_000; // never reached: these sleeps are always cancelled

async function crashAfter(ms: number, err: () => Error = () => new ZeroDiv()): Promise<never> {
  await sleep(ms);
  throw err();
}

describe('taskGroup', () => {
  it('waits for every child and returns the body result (01, 02)', async () => {
    await runVirtual(async () => {
      const [t1, t2] = await taskGroup(async (tg) => {
        const t1 = tg.createTask(() => sleep(5, 42));
        await sleep(2);
        const t2 = tg.createTask(() => sleep(5, 11));
        return [t1, t2];
      });
      expect(t1.result()).toBe(42);
      expect(t2.result()).toBe(11);
    });
  });

  it('a child cancelled explicitly does not disturb the group (03)', async () => {
    await runVirtual(async () => {
      let t1!: Task<number>;
      let t2!: Task<number>;
      await taskGroup(async (tg) => {
        t1 = tg.createTask(() => sleep(LONG, 42));
        await sleep(1);
        t1.cancel();
        t2 = tg.createTask(() => sleep(2, 11));
      });
      expect(t1.cancelled()).toBe(true);
      expect(t2.result()).toBe(11);
    });
  });

  it('a failing child cancels its siblings and the body; errors are grouped (04, cancel_children_on_child_error)', async () => {
    await runVirtual(async () => {
      let num = 0;
      let t2Cancelled = false;
      let bodyCancelled = false;
      let t2!: Task<void>;
      const runner = async (): Promise<void> => {
        await taskGroup(async (tg) => {
          tg.createTask(() => crashAfter(1));
          tg.createTask(() => crashAfter(1));
          t2 = tg.createTask(async () => {
            try {
              await sleep(LONG);
            } catch (e) {
              if (e instanceof CancelledError) t2Cancelled = true;
              throw e;
            }
            num += 1;
          });
          try {
            await sleep(LONG);
          } catch (e) {
            if (e instanceof CancelledError) bodyCancelled = true;
            throw e;
          }
        });
        num += 10;
      };
      const err = await caught(getRunningLoop().createTask(runner));
      expect(err).toBeInstanceOf(ExceptionGroup);
      expect(err).toBeInstanceOf(AggregateError);
      expect(errorTypes(err)).toEqual(new Set([ZeroDiv]));
      expect((err as ExceptionGroup).code).toBe('ERR_PROTOLOOP_EXCEPTION_GROUP');
      expect(num).toBe(0);
      expect(t2Cancelled).toBe(true);
      expect(t2.cancelled()).toBe(true);
      expect(bodyCancelled).toBe(true);
    });
  });

  it('cancelling the parent task cancels every child and stays a cancellation (cancellation, 07, 17, 22)', async () => {
    await runVirtual(async () => {
      let num = 0;
      const r = getRunningLoop().createTask(async () => {
        await taskGroup(async (tg) => {
          for (let i = 0; i < 5; i++) {
            tg.createTask(async () => {
              try {
                await sleep(LONG);
              } catch (e) {
                num += 1;
                throw e;
              }
            });
          }
          try {
            await sleep(LONG);
          } catch (e) {
            num += 10;
            throw e;
          }
        });
      });
      await sleep(2);
      expect(r.done()).toBe(false);
      r.cancel();
      expect(await caught(r)).toBeInstanceOf(CancelledError);
      expect(r.cancelled()).toBe(true);
      expect(num).toBe(15);
    });
  });

  it('children failing while being cancelled turn the cancellation into an ExceptionGroup (08)', async () => {
    await runVirtual(async () => {
      const r = getRunningLoop().createTask(async () => {
        await taskGroup(async (tg) => {
          for (let i = 0; i < 5; i++) {
            tg.createTask(async () => {
              try {
                await sleep(LONG);
              } finally {
                // eslint-disable-next-line no-unsafe-finally
                throw new ZeroDiv();
              }
            });
          }
          await sleep(LONG);
        });
      });
      await sleep(2);
      r.cancel();
      const err = await caught(r);
      expect(errorTypes(err)).toEqual(new Set([ZeroDiv]));
      expect((err as ExceptionGroup).errors).toHaveLength(5);
    });
  });

  it('an error in the body cancels the children and is grouped (09, 10)', async () => {
    await runVirtual(async () => {
      for (const delay of [1, -1]) {
        let t1!: Task<number>;
        let t2!: Task<number>;
        const err = await caught(
          taskGroup(async (tg) => {
            t1 = tg.createTask(() => sleep(LONG, 42));
            t2 = tg.createTask(() => sleep(LONG, 11));
            if (delay > 0) await sleep(delay);
            throw new ZeroDiv();
          }),
        );
        expect(errorTypes(err)).toEqual(new Set([ZeroDiv]));
        expect(t1.cancelled()).toBe(true);
        expect(t2.cancelled()).toBe(true);
      }
    });
  });

  it('nested groups: an inner group error comes out as a nested ExceptionGroup (11, 12)', async () => {
    await runVirtual(async () => {
      const failing = async (): Promise<void> => {
        try {
          await sleep(LONG);
        } finally {
          // eslint-disable-next-line no-unsafe-finally
          throw new ZeroDiv();
        }
      };
      for (const withSibling of [false, true]) {
        const r = getRunningLoop().createTask(() =>
          taskGroup(async (g1) => {
            if (withSibling) g1.createTask(() => sleep(LONG));
            await taskGroup(async (g2) => {
              for (let i = 0; i < 5; i++) g2.createTask(failing);
              await sleep(LONG);
            });
          }),
        );
        await sleep(2);
        expect(r.done()).toBe(false);
        r.cancel();
        const err = await caught(r);
        expect(errorTypes(err)).toEqual(new Set([ExceptionGroup]));
        expect(errorTypes((err as ExceptionGroup).errors[0])).toEqual(new Set([ZeroDiv]));
      }
    });
  });

  it('nested groups: the outer child failing first cancels the inner group (13), the inner failing first nests (14)', async () => {
    await runVirtual(async () => {
      const e13 = await caught(
        taskGroup(async (g1) => {
          g1.createTask(() => crashAfter(1, () => new MyExc('outer')));
          await taskGroup((g2) => {
            g2.createTask(() => crashAfter(LONG, () => new MyExc('inner')));
          });
        }),
      );
      expect(errorTypes(e13)).toEqual(new Set([MyExc]));
      const e14 = await caught(
        taskGroup(async (g1) => {
          g1.createTask(() => crashAfter(LONG, () => new MyExc('outer')));
          await taskGroup((g2) => {
            g2.createTask(() => crashAfter(1, () => new MyExc('inner')));
          });
        }),
      );
      expect(errorTypes(e14)).toEqual(new Set([ExceptionGroup]));
      expect(errorTypes((e14 as ExceptionGroup).errors[0])).toEqual(new Set([MyExc]));
      expect(currentTask()!.cancelling()).toBe(0);
    });
  });

  it('a child failing while the body handles an outside cancellation wins over it (15, 16)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const nested = (): Promise<void> =>
        taskGroup(async (g1) => {
          g1.createTask(() => crashAfter(10));
          try {
            await sleep(LONG);
          } catch (e) {
            await sleep(20);
            throw e;
          }
        });
      for (const viaSubtask of [false, true]) {
        const r = loop.createTask(viaSubtask ? () => loop.createTask(nested) : nested);
        await sleep(2);
        expect(r.done()).toBe(false);
        r.cancel();
        expect(errorTypes(await caught(r))).toEqual(new Set([ZeroDiv]));
      }
    });
  });

  it('the body replacing its cancellation with an error gives an ExceptionGroup (18)', async () => {
    await runVirtual(async () => {
      let num = 0;
      const r = getRunningLoop().createTask(() =>
        taskGroup(async () => {
          try {
            await sleep(LONG);
          } catch {
            num += 10;
            throw new MyExc();
          }
        }),
      );
      await sleep(2);
      r.cancel();
      expect(errorTypes(await caught(r))).toEqual(new Set([MyExc]));
      expect(num).toBe(10);
    });
  });

  it('errors raised by the body during the group cancellation are collected with the children\'s (19)', async () => {
    await runVirtual(async () => {
      const err = await caught(
        taskGroup(async (g) => {
          g.createTask(() => crashAfter(1));
          try {
            await sleep(LONG);
          } finally {
            // eslint-disable-next-line no-unsafe-finally
            throw new MyExc();
          }
        }),
      );
      expect(errorTypes(err)).toEqual(new Set([MyExc, ZeroDiv]));
    });
  });

  it('a KeyboardInterrupt from the body or a child is re-thrown bare after the children end (20, 21)', async () => {
    await runVirtual(async () => {
      let sibling!: Task<void>;
      const fromBody = await caught(
        taskGroup(async (g) => {
          g.createTask(() => crashAfter(1));
          sibling = g.createTask(() => sleep(LONG));
          try {
            await sleep(LONG);
          } finally {
            // eslint-disable-next-line no-unsafe-finally
            throw new KeyboardInterrupt();
          }
        }),
      );
      expect(fromBody).toBeInstanceOf(KeyboardInterrupt);
      expect(sibling.cancelled()).toBe(true);
      const fromChild = await caught(
        taskGroup(async (g) => {
          g.createTask(() => crashAfter(1, () => new KeyboardInterrupt()));
          try {
            await sleep(LONG);
          } finally {
            // eslint-disable-next-line no-unsafe-finally
            throw new TypeError('in body');
          }
        }),
      );
      expect(fromChild).toBeInstanceOf(KeyboardInterrupt);
    });
  });

  it('children may create more children while the group waits (23, 24, 25)', async () => {
    await runVirtual(async () => {
      const late: Task<unknown>[] = [];
      const group = await taskGroup(async (g) => {
        g.createTask(async () => {
          await sleep(1);
          late.push(g.createTask(() => sleep(2)), g.createTask(() => sleep(3)));
        });
        return g;
      });
      expect(late.map((t) => t.done())).toEqual([true, true]);
      expect(group.size).toBe(0);

      let hydras = 0;
      const hydra = coroutine(async function hydraBody(g: TaskGroup): Promise<void> {
        hydras++;
        await sleep(1);
        g.createTask(hydra(g));
        g.createTask(hydra(g));
      });
      const err = await caught(
        taskGroup(async (g) => {
          g.createTask(hydra(g));
          g.createTask(async () => {
            while (hydras < 10) await sleep(1);
            throw new ZeroDiv();
          });
        }),
      );
      expect(errorTypes(err)).toEqual(new Set([ZeroDiv]));
      expect(hydras).toBeGreaterThanOrEqual(10);
    });
  });

  it('names children and refuses new ones once shutting down or finished, closing the coroutine (task_name, no_create_task_after_failure, finished)', async () => {
    await runVirtual(async () => {
      let refused: unknown = null;
      let name = '';
      const err = await caught(
        taskGroup(async (g) => {
          const t = g.createTask(async () => {
            name = currentTask()!.getName();
          }, { name: 'yolo' });
          expect(t.getName()).toBe('yolo');
          g.createTask(() => crashAfter(1));
          g.createTask(async () => {
            try {
              await sleep(LONG);
            } catch {
              try {
                g.createTask(() => sleep(0));
              } catch (e) {
                refused = e;
              }
            }
          });
        }),
      );
      expect(name).toBe('yolo');
      expect(errorTypes(err)).toEqual(new Set([ZeroDiv]));
      expect(refused).toBeInstanceOf(InvalidStateError);
      expect(String((refused as Error).message)).toMatch(/is shutting down/);

      let ran = false;
      const lazy = coroutine(async () => {
        ran = true;
      });
      let group!: TaskGroup;
      await taskGroup((g) => {
        group = g;
      });
      expect(group.state).toBe('finished');
      const c = lazy();
      expect(() => group.createTask(c)).toThrow(/is finished/);
      expect(c.started()).toBe(true); // closed: it will never run nor be reported as never awaited
      await sleep(0);
      expect(ran).toBe(false);
    });
  });

  it('refuses to run outside a task', async () => {
    const { Loop } = await import('./helpers.ts');
    const loop = new Loop();
    let err: unknown;
    loop.callSoon(() => {
      taskGroup(() => undefined).catch((e: unknown) => {
        err = e;
        loop.stop();
      });
    });
    await loop.runForever();
    loop.close();
    expect(err).toBeInstanceOf(InvalidStateError);
    expect(String((err as Error).message)).toMatch(/parent task/);
  });

  it('keeps the cancelling() level: the group\'s own cancellation never leaks out (cancelling_level_preserved, does_not_leak_out)', async () => {
    await runVirtual(async () => {
      const err = await caught(
        taskGroup((tg) => {
          tg.createTask(() => crashAfter(0, () => new MyExc()));
        }),
      );
      expect(errorTypes(err)).toEqual(new Set([MyExc]));
      expect(currentTask()!.cancelling()).toBe(0);
      // Still running normally: a sleep after the group is not cancelled.
      expect(await sleep(1, 'alive')).toBe('alive');
      // A group whose child fails at once, without awaiting, before the body returns.
      const err2 = await caught(
        taskGroup((tg) => {
          tg.createTask(() => {
            throw new MyExc();
          });
        }),
      );
      expect(errorTypes(err2)).toEqual(new Set([MyExc]));
      expect(await sleep(0, 'alive')).toBe('alive');
    });
  });

  it('nested groups both cancelled: the inner handles its error, the outer cancellation stays pending (nested_groups_both_cancelled)', async () => {
    await runVirtual(async () => {
      const task = currentTask()!;
      let levelInside = -1;
      const err = await caught(
        taskGroup(async (outer) => {
          const inner = await caught(
            taskGroup((innerTg) => {
              innerTg.createTask(() => crashAfter(0, () => new MyExc('inner')));
              outer.createTask(() => crashAfter(0, () => new ZeroDiv('outer')));
            }),
          );
          expect(errorTypes(inner)).toEqual(new Set([MyExc]));
          levelInside = task.cancelling();
        }),
      );
      expect(levelInside).toBe(1);
      expect(errorTypes(err)).toEqual(new Set([ZeroDiv]));
      expect(task.cancelling()).toBe(0);
    });
  });

  it('an error and an outside cancellation together: the group raises, the cancellation is delivered after (error_and_cancel)', async () => {
    await runVirtual(async () => {
      const event = new Event();
      let levelInGroup = -1;
      let levelAfter = -1;
      let reachedEnd = false;
      const inner = async (): Promise<void> => {
        const err = await caught(
          taskGroup(async (tg) => {
            tg.createTask(async () => {
              event.set();
              await sleep(0);
              throw new MyExc();
            });
            await sleep(LONG);
            reachedEnd = true;
          }),
        );
        expect(errorTypes(err)).toEqual(new Set([MyExc]));
        levelInGroup = currentTask()!.cancelling();
        levelAfter = currentTask()!.cancelling();
        await sleep(LONG);
        reachedEnd = true;
      };
      const t = getRunningLoop().createTask(inner);
      await event.wait();
      expect(t.cancelling()).toBe(0);
      t.cancel();
      expect(t.cancelling()).toBe(1);
      expect(await caught(t)).toBeInstanceOf(CancelledError);
      expect(t.cancelled()).toBe(true);
      expect(levelInGroup).toBe(1);
      expect(levelAfter).toBe(1);
      expect(reachedEnd).toBe(false);
    });
  });

  it('a task created by a child that fails at once cancels that child at its next await, eager or not (gh-128550)', async () => {
    for (const eager of [false, true]) {
      await runVirtual(async () => {
        if (eager) getRunningLoop().setTaskFactory(eagerTaskFactory);
        let ran = false;
        const err = await caught(
          taskGroup((tg) => {
            tg.createTask(async () => {
              tg.createTask(() => {
                throw new MyExc('third task failed');
              });
              try {
                await sleep(0); // eager tasks are cancelled here
                await sleep(0); // lazy ones here
              } catch (e) {
                if (!(e instanceof CancelledError)) throw e;
                ran = true;
              }
            });
          }),
        );
        expect(ran).toBe(true);
        expect(errorTypes(err)).toEqual(new Set([MyExc]));
      });
    }
  });

  it('an expired timeout around a group comes out as TimeoutError, with the cancellation as cause', async () => {
    await runVirtual(async () => {
      const err = await caught(timeout(-1, () => taskGroup(() => sleep(0))));
      expect(err).toBeInstanceOf(TimeoutError);
      expect((err as Error).cause).toBeInstanceOf(CancelledError);
      // A timeout inside a group: the group sees the TimeoutError as a body error.
      const err2 = await caught(
        taskGroup(async (tg) => {
          tg.createTask(() => sleep(LONG));
          await timeout(1, () => sleep(LONG));
        }),
      );
      expect(errorTypes(err2)).toEqual(new Set([TimeoutError]));
      expect(currentTask()!.cancelling()).toBe(0);
    });
  });

  it('prints its live state', async () => {
    await runVirtual(async () => {
      await taskGroup(async (tg) => {
        tg.createTask(() => sleep(2));
        expect(String(tg)).toBe('<TaskGroup running tasks=1>');
        const { inspect } = await import('node:util');
        expect(inspect(tg)).toBe('<TaskGroup running tasks=1>');
      });
    });
  });
});
