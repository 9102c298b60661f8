/**
 * The one flow-control mix-in every writing transport uses (asyncio's water marks):
 * the protocol is told `pauseWriting()` when the buffer goes strictly above `high`,
 * and `resumeWriting()` when it drains to `low` or below. Defaults 64 KiB / 16 KiB.
 * @module
 */
import { InvalidArgumentError } from '../errors.ts';

/** Default high-water mark, bytes (asyncio's). */
export const DEFAULT_HIGH_WATER = 64 * 1024;
/** Default low-water mark, bytes (asyncio's: a quarter of the high mark). */
export const DEFAULT_LOW_WATER = 16 * 1024;

/** Validates and completes a (high, low) pair as asyncio does. */
export function resolveWaterMarks(high?: number, low?: number): [high: number, low: number] {
  for (const [name, v] of [['high', high], ['low', low]] as const) {
    if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v))) {
      throw new InvalidArgumentError(`${name} water mark must be a finite number of bytes, got ${String(v)}`);
    }
  }
  let h: number;
  let l: number;
  if (high === undefined) {
    h = low === undefined ? DEFAULT_HIGH_WATER : 4 * low;
  } else {
    h = high;
  }
  if (low === undefined) l = Math.floor(h / 4);
  else l = low;
  if (!(h >= l && l >= 0)) throw new InvalidArgumentError(`high (${h}) must be >= low (${l}) must be >= 0`);
  return [h, l];
}

/** Who is told when the water marks are crossed (a transport: no closure per connection). */
export interface FlowTarget {
  flowChanged(method: 'pauseWriting' | 'resumeWriting'): void;
}

/**
 * Flow-control state of one transport. The transport calls {@link afterWrite} when its
 * buffer grows and {@link afterDrain} when it shrinks; the target is told on each
 * crossing, once: `pauseWriting` and `resumeWriting` alternate, starting with a pause.
 */
export class FlowControl {
  high = DEFAULT_HIGH_WATER;
  low = DEFAULT_LOW_WATER;
  /** Whether the protocol was told to pause and not yet to resume. */
  paused = false;
  readonly #target: FlowTarget;

  constructor(target: FlowTarget, high = DEFAULT_HIGH_WATER, low = DEFAULT_LOW_WATER) {
    this.#target = target;
    this.high = high;
    this.low = low;
  }

  /** Sets the water marks (see {@link resolveWaterMarks}), then rechecks `size`. */
  setLimits(size: number, high?: number, low?: number): void {
    [this.high, this.low] = resolveWaterMarks(high, low);
    this.afterWrite(size);
    this.afterDrain(size);
  }

  /** The buffer now holds `size` bytes after a write: pause when strictly above `high`. */
  afterWrite(size: number): void {
    if (!this.paused && size > this.high) {
      this.paused = true;
      this.#target.flowChanged('pauseWriting');
    }
  }

  /** The buffer now holds `size` bytes after some of it went out: resume at or below `low`. */
  afterDrain(size: number): void {
    if (this.paused && size <= this.low) {
      this.paused = false;
      this.#target.flowChanged('resumeWriting');
    }
  }
}
