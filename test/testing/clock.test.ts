// Virtual time: the loop's timers, sleeps and timeouts on a VirtualClock, advanced by
// hand or by autojump, and autojump waiting for real work in flight.
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, Loop, TimeoutError, getRunningLoop, run, sleep, timeout, waitFor } from '../../src/index.ts';
import { VirtualClock } from '../../src/testing/index.ts';

describe('VirtualClock', () => {
  it('starts at 0 (or start) and moves only with advance()', () => {
    const c = new VirtualClock({ start: 5 });
    expect(c.now()).toBe(5);
    c.advance(10);
    expect(c.now()).toBe(15);
    expect(() => c.advance(-1)).toThrow(InvalidArgumentError);
    expect(() => c.advance(Number.NaN)).toThrow(InvalidArgumentError);
    expect(() => new VirtualClock({ autojump: -1 })).toThrow(InvalidArgumentError);
    expect(new VirtualClock({ autojump: true }).autojump).toBe(0);
    expect(new VirtualClock().autojump).toBeNull();
  });

  it('is the loop time: run(main, { clock }) and new Loop({ clock })', async () => {
    const clock = new VirtualClock({ start: 1000 });
    await run(async () => {
      expect(getRunningLoop().time()).toBe(1000);
    }, { clock });
    const loop = new Loop({ clock });
    expect(loop.time()).toBe(1000);
    loop.close();
  });

  it('autojump: an hour of sleeps and timeouts runs in well under a second of wall time', async () => {
    const clock = new VirtualClock({ autojump: 0 });
    const t0 = performance.now();
    const order: number[] = [];
    const result = await run(async () => {
      const loop = getRunningLoop();
      loop.callLater(300, () => order.push(300));
      loop.callLater(100, () => order.push(100));
      loop.callLater(200, () => order.push(200));
      for (let i = 0; i < 60; i++) await sleep(60_000);
      await expect(waitFor(sleep(10_000), 5_000)).rejects.toBeInstanceOf(TimeoutError);
      await expect(timeout(1_000, () => sleep(2_000))).rejects.toBeInstanceOf(TimeoutError);
      return loop.time();
    }, { clock });
    expect(result).toBe(3_600_000 + 5_000 + 1_000);
    expect(order).toEqual([100, 200, 300]);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('without autojump, time moves only when advanced: a timer is not run early', async () => {
    const clock = new VirtualClock();
    await run(async () => {
      const loop = getRunningLoop();
      const fired: number[] = [];
      loop.callLater(50, () => fired.push(loop.time()));
      const due = loop.createFuture<void>();
      loop.callLater(100, () => due.setResult());
      // Let the loop go idle many times on real time: nothing may fire.
      for (let i = 0; i < 50; i++) await sleep(0);
      expect(fired).toEqual([]);
      clock.advance(49);
      for (let i = 0; i < 10; i++) await sleep(0);
      expect(fired).toEqual([]);
      clock.advance(1);
      await sleep(0);
      await sleep(0);
      expect(fired).toEqual([50]);
      // advance() from outside the loop's callbacks wakes an idle loop.
      setImmediate(() => clock.advance(50));
      await due;
      expect(loop.time()).toBe(100);
    }, { clock });
  });

  it('autojump waits for real I/O in flight (a file read) before jumping', async () => {
    // A FileHandle read: Node lists it among its active resources on every version we
    // support (fs.readFile() on Node 26 is not listed: see docs/testing.md).
    const { open } = await import('node:fs/promises');
    const clock = new VirtualClock({ autojump: 0 });
    await run(async () => {
      const loop = getRunningLoop();
      let timedOut = false;
      const t = loop.callLater(10, () => {
        timedOut = true;
      });
      const handle = await open(new URL(import.meta.url));
      const { bytesRead, buffer } = await handle.read(Buffer.alloc(4096), 0, 4096, 0);
      await handle.close();
      const data = buffer.subarray(0, bytesRead);
      // The read finished before the 10 ms timer: autojump did not jump over it.
      expect(data.byteLength).toBeGreaterThan(0);
      expect(timedOut).toBe(false);
      t.cancel();
    }, { clock });
  });

  it('timers on virtual time cost about what they do on real time (many timers, one loop)', async () => {
    const clock = new VirtualClock({ autojump: 0 });
    const n = 20_000;
    const got = await run(async () => {
      const loop = getRunningLoop();
      let fired = 0;
      const done = loop.createFuture<void>();
      for (let i = 0; i < n; i++) {
        loop.callLater(i % 1000, () => {
          if (++fired === n) done.setResult();
        });
      }
      await done;
      return fired;
    }, { clock });
    expect(got).toBe(n);
  });

  it('one clock drives several loops in turn', async () => {
    const clock = new VirtualClock({ autojump: 0 });
    await run(() => sleep(1000), { clock });
    await run(() => sleep(1000), { clock });
    expect(clock.now()).toBe(2000);
  });
});
