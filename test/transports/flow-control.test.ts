// FlowControl: pause strictly above high, resume at or below low, each once per crossing.
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/index.ts';
import { DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER, FlowControl, resolveWaterMarks } from '../../src/transports/flow-control.ts';

function recorder(): { calls: string[]; flowChanged(m: string): void } {
  const calls: string[] = [];
  return { calls, flowChanged: (m: string) => calls.push(m) };
}

describe('FlowControl', () => {
  it('defaults to 64 KiB / 16 KiB', () => {
    const f = new FlowControl(recorder());
    expect([f.high, f.low]).toEqual([64 * 1024, 16 * 1024]);
    expect([DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER]).toEqual([65536, 16384]);
  });

  it('pauses only strictly above high, and only once', () => {
    const r = recorder();
    const f = new FlowControl(r, 100, 25);
    f.afterWrite(100);
    expect(r.calls).toEqual([]);
    f.afterWrite(101);
    f.afterWrite(500);
    expect(r.calls).toEqual(['pauseWriting']);
    expect(f.paused).toBe(true);
  });

  it('resumes at or below low, only once, and only after a pause', () => {
    const r = recorder();
    const f = new FlowControl(r, 100, 25);
    f.afterDrain(0);
    expect(r.calls).toEqual([]);
    f.afterWrite(101);
    f.afterDrain(26);
    expect(r.calls).toEqual(['pauseWriting']);
    f.afterDrain(25);
    f.afterDrain(0);
    expect(r.calls).toEqual(['pauseWriting', 'resumeWriting']);
    expect(f.paused).toBe(false);
  });

  it('setLimits() rechecks the current size both ways', () => {
    const r = recorder();
    const f = new FlowControl(r);
    f.setLimits(1000, 500);
    expect(r.calls).toEqual(['pauseWriting']);
    f.setLimits(1000, 4000, 1000);
    expect(r.calls).toEqual(['pauseWriting', 'resumeWriting']);
  });

  it('resolves water marks as asyncio does and rejects bad ones', () => {
    expect(resolveWaterMarks()).toEqual([65536, 16384]);
    expect(resolveWaterMarks(1000)).toEqual([1000, 250]);
    expect(resolveWaterMarks(undefined, 100)).toEqual([400, 100]);
    expect(resolveWaterMarks(0, 0)).toEqual([0, 0]);
    expect(() => resolveWaterMarks(10, 20)).toThrow(InvalidArgumentError);
    expect(() => resolveWaterMarks(-1)).toThrow(InvalidArgumentError);
    expect(() => resolveWaterMarks(Number.NaN)).toThrow(InvalidArgumentError);
  });
});
