// The exception-handler contexts of every trap report, in-process: what a custom
// handler (Sentry, a test) receives.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { coroutine, CancelledError, createLogger, type ExceptionContext, type Handle, Loop, sleep, type Task } from '../../src/index.ts';
import { VirtualClock } from '../../src/testing/index.ts';
import { runVirtual } from '../helpers.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const thisFile = 'test/debug/reports.test.ts';
/** Debug loops log their lifecycle at debug level: keep the test output clean. */
const quiet = createLogger({ stream: { write() {} } });

/** Collects garbage and lets FinalizationRegistry callbacks run. */
async function collect(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function block(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/** A loop whose reports are captured, and that is closed after the test. */
const open: Loop[] = [];
function capturingLoop(debug: boolean, slowCallbackDuration?: number): { loop: Loop; seen: ExceptionContext[] } {
  // Unless a test is about timing, nothing counts as slow (a full GC can take 100 ms).
  // On virtual time: the reports are about what the code did, not about how long it
  // waited; slow-callback durations are still measured on real time.
  const loop = new Loop({ debug, slowCallbackDuration: slowCallbackDuration ?? 60_000, logger: quiet, clock: new VirtualClock({ autojump: 0 }) });
  const seen: ExceptionContext[] = [];
  loop.setExceptionHandler((_l, ctx) => seen.push(ctx));
  open.push(loop);
  return { loop, seen };
}
afterEach(() => {
  for (const loop of open.splice(0)) loop.close();
});

describe('coroutine never awaited', () => {
  it('is reported when collected, with where it was created in debug mode', async () => {
    const { loop, seen } = capturingLoop(true);
    const fetchUser = coroutine(async function fetchUser(id: number) {
      return id;
    });
    await loop.runUntilComplete(async function forgetful() {
      fetchUser(1); // never awaited, unreferenced: collectable at once
      await collect();
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ message: 'Coroutine fetchUser() was never awaited', coroutine: 'fetchUser()', hint: expect.stringContaining('await it') });
    expect(seen[0]!.sourceTraceback).toMatch(new RegExp(`at forgetful \\(${thisFile}:\\d+:\\d+\\)$`));
    expect(seen[0]!.sourceTraceback).not.toContain('src/loop/');
  });

  it('is reported at loop close at the latest, once, and not once started', async () => {
    const { loop, seen } = capturingLoop(false);
    const job = coroutine(async function job() {});
    const kept: unknown[] = [];
    await loop.runUntilComplete(async () => {
      kept.push(job()); // still referenced: no collection can report it
      await job(); // awaited: fine
      loop.createTask(job()); // scheduled: fine
      await sleep(1);
    });
    expect(seen).toEqual([]);
    loop.close();
    expect(seen.map((c) => c.message)).toEqual(['Coroutine job() was never awaited']);
    expect(seen[0]!.sourceTraceback).toBeUndefined();
    await collect();
    expect(seen).toHaveLength(1);
    expect(kept).toHaveLength(1);
  });
});

describe('exception never retrieved', () => {
  it('a task is reported when collected (its error does not keep it alive)', async () => {
    const { loop, seen } = capturingLoop(true);
    await loop.runUntilComplete(async function main() {
      loop.createTask(async function failing() {
        throw new Error('lost');
      });
      await sleep(5);
      await collect();
      // reported before the loop closes: at collection, not at close
      expect(seen.map((c) => c.message)).toEqual(['Task exception was never retrieved']);
    });
    const ctx = seen[0]!;
    expect(ctx.exception).toBeInstanceOf(Error);
    expect((ctx.exception as Error).message).toBe('lost');
    expect(String(ctx.task)).toMatch(/^<Task finished name="Task-\d+" coro=failing\(\) exception=Error\("lost"\) created at main/);
    expect(ctx.sourceTraceback).toMatch(new RegExp(`at main \\(${thisFile}:\\d+:\\d+\\)$`));
    expect(ctx.hint).toContain('await the task');
  });

  it('at loop close the context carries the task itself; a retrieved one is not reported', async () => {
    const { loop, seen } = capturingLoop(false);
    let lost!: Task<void>;
    await loop.runUntilComplete(async () => {
      lost = loop.createTask(async () => {
        throw new Error('lost');
      });
      const seenOne = loop.createTask(async () => {
        throw new Error('seen');
      });
      await sleep(5);
      expect((seenOne.exception() as Error).message).toBe('seen');
    });
    loop.close();
    expect(seen).toHaveLength(1);
    expect(seen[0]!.task).toBe(lost);
    expect(seen[0]!.sourceTraceback).toBeUndefined();
  });

  it('a future is reported as "Future exception was never retrieved"', async () => {
    const { loop, seen } = capturingLoop(false);
    await loop.runUntilComplete(async () => {
      loop.createFuture('lookup').setException(new TypeError('bad'));
      await sleep(1);
    });
    loop.close();
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ message: 'Future exception was never retrieved', hint: expect.stringContaining('await the future') });
    expect(String(seen[0]!.future)).toContain('<Future lookup finished exception=TypeError("bad")');
  });

  it('never becomes an unhandled rejection', async () => {
    const rejections: unknown[] = [];
    const onRejection = (r: unknown): void => {
      rejections.push(r);
    };
    process.on('unhandledRejection', onRejection);
    try {
      const { loop } = capturingLoop(false);
      await loop.runUntilComplete(async () => {
        loop.createTask(async () => {
          throw new Error('quiet');
        });
        loop.createTask(coroutine(async () => {
          await sleep(1);
          throw new Error('quiet too');
        })());
        await sleep(10);
      });
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.removeListener('unhandledRejection', onRejection);
    }
    expect(rejections).toEqual([]);
  });
});

describe('pending task destroyed', () => {
  it('is reported at loop close with the task, its creation site and a hint', async () => {
    const { loop, seen } = capturingLoop(true);
    let t!: Task<void>;
    await loop.runUntilComplete(async function starter() {
      t = loop.createTask(() => sleep(60_000), { name: 'forgotten' });
      await sleep(1);
    });
    loop.close();
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ message: 'Task was destroyed but it is pending!', task: t, hint: expect.stringContaining('run() cancels') });
    expect(seen[0]!.sourceTraceback).toMatch(new RegExp(`at starter \\(${thisFile}:\\d+:\\d+\\)$`));
  });

  it('run() in debug mode reports the leftovers it cancels, at warn level', async () => {
    const seen: ExceptionContext[] = [];
    let leftover!: Task<void>;
    await runVirtual(
      async () => {
        const loop = (await import('../../src/index.ts')).getRunningLoop();
        loop.setExceptionHandler((_l, ctx) => seen.push(ctx));
        leftover = loop.createTask(() => sleep(60_000), { name: 'leftover' });
        await sleep(1);
      },
      { debug: true, logger: quiet, slowCallbackDuration: 60_000 },
    );
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ message: 'run() is cancelling 1 task still pending when the main task finished', level: 'warn', tasks: [leftover] });
    expect(leftover.cancelled()).toBe(true);
  });

  it('run() without debug mode cancels leftovers silently', async () => {
    const seen: ExceptionContext[] = [];
    await runVirtual(async () => {
      const loop = (await import('../../src/index.ts')).getRunningLoop();
      loop.setExceptionHandler((_l, ctx) => seen.push(ctx));
      loop.createTask(() => sleep(60_000));
      await sleep(1);
    });
    expect(seen).toEqual([]);
  });
});

describe('slow callbacks and task steps (debug mode)', () => {
  it('a slow callback is reported with its handle, creation site and level warn', async () => {
    const { loop, seen } = capturingLoop(true, 40);
    let h!: ReturnType<Loop['callSoon']>;
    await loop.runUntilComplete(async function scheduler() {
      h = loop.callSoon(function blocker() {
        block(60);
      });
      await sleep(5);
    });
    // (on a loaded machine other steps may be slow too: look at this handle's report)
    const mine = seen.filter((c) => c.handle === h);
    expect(mine).toHaveLength(1);
    const ctx = mine[0]!;
    expect(ctx.message).toMatch(new RegExp(`^Executing <Handle blocker\\(\\) created at scheduler \\(${thisFile}:\\d+:\\d+\\)> took 0\\.\\d{3} seconds$`));
    expect(ctx).toMatchObject({ level: 'warn', handle: h, hint: expect.stringContaining('toThread()') });
    expect(ctx.durationMs).toBeGreaterThanOrEqual(40);
    expect(ctx.sourceTraceback).toMatch(/at scheduler/);
  });

  it('a slow first step names the task, not the loop step function', async () => {
    const { loop, seen } = capturingLoop(true, 40);
    let t!: Task<void>;
    await loop.runUntilComplete(async () => {
      t = loop.createTask(
        async () => {
          block(60);
        },
        { name: 'eager-worker' },
      );
      await sleep(5);
    });
    const mine = seen.filter((c) => c.task === t);
    expect(mine).toHaveLength(1);
    expect(mine[0]!.message).toMatch(/^Executing <Task (pending|finished) name="eager-worker" .*> took 0\.\d{3} seconds$/);
    expect(seen.map((c) => c.message).join()).not.toContain('#step');
  });

  it('a slow step after an await (a promise reaction, not a loop handle) is reported', async () => {
    const { loop, seen } = capturingLoop(true, 40);
    let t!: Task<void>;
    await loop.runUntilComplete(async () => {
      t = loop.createTask(
        async () => {
          await sleep(1);
          block(60);
          await sleep(1);
        },
        { name: 'resumed' },
      );
      await t;
      await sleep(1);
    });
    const mine = seen.filter((c) => c.task === t);
    expect(mine).toHaveLength(1);
    expect(mine[0]!.message).toMatch(/^Executing <Task .*name="resumed".*> took 0\.\d{3} seconds$/);
    expect(mine[0]!.level).toBe('warn');
  });

  it('reactions of one task that follow each other form one step', async () => {
    const { loop, seen } = capturingLoop(true, 50);
    async function helper(): Promise<void> {
      await null; // resumes the caller in another reaction, without yielding to the loop
      block(30);
    }
    const main = loop.createTask(async () => {
      await sleep(1);
      await helper();
      await helper();
      await sleep(1);
    });
    await loop.runUntilComplete(main);
    // Each reaction takes 30 ms, under the 50 ms threshold: only their sum is slow.
    const mine = seen.filter((c) => c.task === main);
    expect(mine).toHaveLength(1);
    expect(mine[0]!.durationMs).toBeGreaterThanOrEqual(60);
  });

  it('a slow done callback is named by the callback and its future', async () => {
    const { loop, seen } = capturingLoop(true, 40);
    await loop.runUntilComplete(async () => {
      const f = loop.createFuture<number>('answer');
      f.addDoneCallback(function onAnswer() {
        block(60);
      });
      f.setResult(42);
      await sleep(5);
    });
    const mine = seen.filter((c) => String(c.message).includes('onAnswer'));
    expect(mine).toHaveLength(1);
    expect(mine[0]!.message).toMatch(/^Executing <Handle onAnswer\(<Future answer finished result=42 created at .*>\) created at .*> took/);
  });

  it('nothing is timed without debug mode, and setDebug() switches timing on a running loop', async () => {
    const { loop, seen } = capturingLoop(false, 40);
    await loop.runUntilComplete(async () => {
      loop.callSoon(() => block(60));
      await sleep(1);
      block(60);
      await sleep(1);
      expect(seen).toEqual([]);
      loop.setDebug(true);
      await sleep(1);
      block(60);
      await sleep(1);
      loop.setDebug(false);
      const reported = seen.length;
      await sleep(1);
      block(60);
      await sleep(1);
      expect(seen.length).toBe(reported);
    });
    expect(seen.length).toBeGreaterThanOrEqual(1);
    expect(seen.every((c) => c.durationMs !== undefined)).toBe(true);
  });
});

describe('creation stacks', () => {
  it('are not captured without debug mode', async () => {
    const { loop } = capturingLoop(false);
    await loop.runUntilComplete(async () => {
      const t = loop.createTask(() => sleep(1));
      const h = loop.callSoon(() => {});
      const th = loop.callLater(1, () => {});
      expect(t.sourceTraceback).toBeUndefined();
      expect(h.sourceTraceback).toBeUndefined();
      expect(th.sourceTraceback).toBeUndefined();
      expect(String(t)).not.toContain('created at');
      await t;
    });
  });

  it('in debug mode hold the user frames only, most recent call last', async () => {
    const { loop } = capturingLoop(true);
    function schedule(): Task<void> {
      return loop.createTask(() => sleep(1));
    }
    await loop.runUntilComplete(async function outer() {
      const t = schedule();
      const h = loop.callSoon(() => {});
      const lines = t.sourceTraceback!.split('\n');
      expect(lines.at(-1)).toMatch(new RegExp(`^ {2}at schedule \\(${thisFile}:\\d+:\\d+\\)$`));
      expect(lines.at(-2)).toMatch(/^ {2}at outer /);
      expect(t.sourceTraceback).not.toMatch(/src\/loop|node:/);
      expect(h.sourceTraceback).toMatch(/at outer \(/);
      expect(String(t)).toMatch(new RegExp(`created at schedule \\(${thisFile}:\\d+:\\d+\\)>$`));
      await t;
    });
  });
});

describe('done callbacks (debug mode)', () => {
  it('a callback that raises names where its future was settled; every callback of one settle shares it', async () => {
    const { loop, seen } = capturingLoop(true);
    await loop.runUntilComplete(async () => {
      const fut = loop.createFuture<number>();
      const done = loop.createFuture<void>();
      fut.addDoneCallback(function first() {
        throw new Error('first');
      });
      fut.addDoneCallback(function second() {
        throw new Error('second');
      });
      fut.addDoneCallback(() => done.setResult());
      (function settler() {
        fut.setResult(1);
      })();
      await done;
    });
    expect(seen.map((c) => (c.exception as Error).message)).toEqual(['first', 'second']);
    for (const ctx of seen) expect(ctx.sourceTraceback).toMatch(new RegExp(`at settler \\(${thisFile}:\\d+:\\d+\\)$`));
    expect((seen[0]!.handle as Handle).sourceTraceback).toBe((seen[1]!.handle as Handle).sourceTraceback);
  });

  it("a task's done callback has no creation site: the task settles from its own step", async () => {
    const { loop, seen } = capturingLoop(true);
    await loop.runUntilComplete(async () => {
      const t = loop.createTask(async () => 1);
      const done = loop.createFuture<void>();
      t.addDoneCallback(function raiser() {
        done.setResult();
        throw new Error('raiser');
      });
      await done;
    });
    expect(seen).toHaveLength(1);
    expect((seen[0]!.exception as Error).message).toBe('raiser');
    expect(seen[0]!.sourceTraceback).toBeUndefined();
  });
});

describe('cancelled leftovers are not reported as never retrieved', () => {
  it('a task cancelled by run() raises nothing', async () => {
    const seen: ExceptionContext[] = [];
    await runVirtual(async () => {
      const loop = (await import('../../src/index.ts')).getRunningLoop();
      loop.setExceptionHandler((_l, ctx) => seen.push(ctx));
      loop.createTask(async () => {
        try {
          await sleep(60_000);
        } catch (e) {
          expect(e).toBeInstanceOf(CancelledError);
          throw e;
        }
      });
      await sleep(1);
    });
    expect(seen).toEqual([]);
  });
});
