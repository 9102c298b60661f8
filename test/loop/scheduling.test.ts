import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, Loop, LoopClosedError, LoopRunningError, LoopStoppedError, type ExceptionContext } from '../../src/index.ts';

function collectErrors(loop: Loop): ExceptionContext[] {
  const seen: ExceptionContext[] = [];
  loop.setExceptionHandler((_l, ctx) => seen.push(ctx));
  return seen;
}

describe('Loop scheduling', () => {
  it('runs callSoon callbacks FIFO with their arguments', async () => {
    const loop = new Loop();
    const order: unknown[] = [];
    loop.callSoon((a: number, b: string) => order.push([a, b]), 1, 'x');
    loop.callSoon(() => order.push(2));
    loop.callSoon(() => order.push(3));
    loop.callSoon(() => loop.stop());
    await loop.runForever();
    expect(order).toEqual([[1, 'x'], 2, 3]);
    loop.close();
  });

  it('runs callbacks scheduled while draining in the next iteration', async () => {
    const loop = new Loop();
    const order: string[] = [];
    loop.callSoon(() => {
      order.push('a');
      loop.callSoon(() => order.push('c'));
    });
    loop.callSoon(() => {
      order.push('b');
      loop.stop();
    });
    await loop.runForever();
    // stop() lets the current batch finish; 'c' was scheduled by it, so it waits for the next run.
    expect(order).toEqual(['a', 'b']);
    loop.callSoon(() => loop.stop());
    await loop.runForever();
    expect(order).toEqual(['a', 'b', 'c']);
    loop.close();
  });

  it('stop() before runForever() runs exactly one iteration', async () => {
    const loop = new Loop();
    const order: string[] = [];
    loop.callSoon(() => {
      order.push('first');
      loop.callSoon(() => order.push('second'));
    });
    loop.stop();
    await loop.runForever();
    expect(order).toEqual(['first']);
    loop.close();
  });

  it('never runs a cancelled handle', async () => {
    const loop = new Loop();
    const ran: string[] = [];
    const h = loop.callSoon(() => ran.push('cancelled one'));
    loop.callSoon(() => ran.push('kept'));
    h.cancel();
    h.cancel();
    expect(h.cancelled()).toBe(true);
    const t = loop.callLater(1, () => ran.push('cancelled timer'));
    t.cancel();
    loop.callLater(5, () => loop.stop());
    await loop.runForever();
    expect(ran).toEqual(['kept']);
    loop.close();
  });

  it('runs timers in deadline order, ties in scheduling order, negative delays first', async () => {
    const loop = new Loop();
    const order: string[] = [];
    const base = loop.time() + 20;
    loop.callAt(base + 10, () => order.push('late'));
    loop.callAt(base, () => order.push('tie-1'));
    loop.callAt(base, () => order.push('tie-2'));
    loop.callLater(-1, () => order.push('-1'));
    loop.callLater(-2, () => order.push('-2'));
    loop.callAt(base + 10, () => loop.stop());
    await loop.runForever();
    expect(order).toEqual(['-2', '-1', 'tie-1', 'tie-2', 'late']);
    loop.close();
  });

  it('fires a timer no earlier than its deadline', async () => {
    const loop = new Loop();
    const start = loop.time();
    let firedAt = 0;
    const h = loop.callLater(30, () => {
      firedAt = loop.time();
      loop.stop();
    });
    expect(h.when()).toBeCloseTo(start + 30, 0);
    await loop.runForever();
    expect(firedAt).toBeGreaterThanOrEqual(h.when());
    loop.close();
  });

  it('handles many timers, most of them cancelled, without running the cancelled ones', async () => {
    const loop = new Loop();
    let ran = 0;
    const handles = [];
    for (let i = 0; i < 1000; i++) handles.push(loop.callLater(5 + (i % 10), () => ran++));
    for (let i = 0; i < 1000; i++) if (i % 4 !== 0) handles[i]!.cancel();
    loop.callLater(30, () => loop.stop());
    await loop.runForever();
    expect(ran).toBe(250);
    expect(loop.stats().timersScheduled).toBe(0);
    loop.close();
  });

  it('runs nothing while the loop is not running', async () => {
    const loop = new Loop();
    let ran = false;
    loop.callSoon(() => {
      ran = true;
    });
    loop.callLater(0, () => {
      ran = true;
    });
    // Five turns of Node's event loop (its timers phase included): nothing runs while the loop is stopped.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(ran).toBe(false);
    loop.callSoon(() => loop.stop());
    await loop.runForever();
    expect(ran).toBe(true);
    loop.close();
  });

  it('routes an exception thrown by a callback to the exception handler and keeps running', async () => {
    const loop = new Loop();
    const errors = collectErrors(loop);
    const boom = new Error('boom');
    let after = false;
    const h = loop.callSoon(function explode() {
      throw boom;
    });
    loop.callSoon(() => {
      after = true;
      loop.stop();
    });
    await loop.runForever();
    expect(after).toBe(true);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.exception).toBe(boom);
    expect(errors[0]!.handle).toBe(h);
    expect(errors[0]!.message).toMatch(/^Exception in callback explode\(\)/);
    loop.close();
  });

  it('survives an exception handler that throws', async () => {
    const loop = new Loop({ logger: { debug() {}, info() {}, warn() {}, error() {} } });
    loop.setExceptionHandler(() => {
      throw new Error('handler broken');
    });
    loop.callSoon(() => {
      throw new Error('first');
    });
    loop.callSoon(() => loop.stop());
    await loop.runForever();
    loop.close();
  });

  it('refuses a second runForever() and close() while running', async () => {
    const loop = new Loop();
    let inner: unknown;
    let closeErr: unknown;
    loop.callSoon(() => {
      loop.runForever().catch((e: unknown) => {
        inner = e;
      });
      try {
        loop.close();
      } catch (e) {
        closeErr = e;
      }
      loop.callLater(1, () => loop.stop());
    });
    await loop.runForever();
    expect(inner).toBeInstanceOf(LoopRunningError);
    expect((inner as LoopRunningError).message).toBe('This event loop is already running');
    expect(closeErr).toBeInstanceOf(LoopRunningError);
    expect((closeErr as LoopRunningError).code).toBe('ERR_PROTOLOOP_LOOP_RUNNING');
    loop.close();
  });

  it('refuses to run a loop while another one runs on this thread', async () => {
    const a = new Loop();
    const b = new Loop();
    let err: unknown;
    a.callSoon(() => {
      b.runForever().catch((e: unknown) => {
        err = e;
        a.stop();
      });
    });
    await a.runForever();
    expect(err).toBeInstanceOf(LoopRunningError);
    expect((err as Error).message).toMatch(/another loop is running/);
    a.close();
    b.close();
  });

  it('a closed loop refuses new work with LoopClosedError; close() is idempotent', async () => {
    const loop = new Loop();
    loop.close();
    loop.close();
    expect(loop.isClosed()).toBe(true);
    expect(() => loop.callSoon(() => {})).toThrow(LoopClosedError);
    expect(() => loop.callLater(1, () => {})).toThrow(LoopClosedError);
    expect(() => loop.createTask(async () => {})).toThrow(LoopClosedError);
    await expect(loop.runForever()).rejects.toBeInstanceOf(LoopClosedError);
    await expect(loop.runUntilComplete(async () => 1)).rejects.toThrow(/Event loop is closed/);
  });

  it('runUntilComplete() of a future that never completes, stopped from a callback, rejects with LoopStoppedError', async () => {
    const loop = new Loop();
    const fut = loop.createFuture();
    loop.callLater(5, () => loop.stop());
    await expect(loop.runUntilComplete(fut)).rejects.toBeInstanceOf(LoopStoppedError);
    expect(fut.done()).toBe(false);
    fut.cancel();
    loop.close();
  });

  it('runUntilComplete() returns the result or throws the error of what it ran', async () => {
    const loop = new Loop();
    expect(await loop.runUntilComplete(async () => 7)).toBe(7);
    await expect(
      loop.runUntilComplete(async () => {
        throw new TypeError('bad');
      }),
    ).rejects.toThrow(TypeError);
    expect(loop.isRunning()).toBe(false);
    loop.close();
  });

  it('validates its arguments eagerly with InvalidArgumentError', () => {
    const loop = new Loop();
    expect(() => loop.callSoon(42 as never)).toThrow(InvalidArgumentError);
    expect(() => loop.callLater(Number.NaN, () => {})).toThrow(InvalidArgumentError);
    expect(() => loop.callAt('soon' as never, () => {})).toThrow(InvalidArgumentError);
    expect(() => new Loop({ slowCallbackDuration: -1 })).toThrow(InvalidArgumentError);
    expect(() => loop.createTask(Promise.resolve(1) as never)).toThrow(/already running/);
    loop.close();
  });

  it('reads time from an injected clock', async () => {
    let now = 1000;
    const loop = new Loop({ clock: () => now });
    expect(loop.time()).toBe(1000);
    const fired: number[] = [];
    loop.callAt(1500, () => fired.push(loop.time()));
    loop.callSoon(() => {
      now = 2000;
    });
    loop.callLater(0, () => loop.callSoon(() => loop.stop()));
    await loop.runForever();
    expect(fired).toEqual([2000]);
    loop.close();
  });

  it('stats() counts iterations, callbacks and tasks', async () => {
    const loop = new Loop();
    await loop.runUntilComplete(async () => {
      await Promise.resolve();
    });
    const s = loop.stats();
    expect(s.iterations).toBeGreaterThan(0);
    expect(s.callbacks).toBeGreaterThan(0);
    expect(s.tasksCreated).toBe(1);
    expect(s.tasksPending).toBe(0);
    loop.close();
  });
});
