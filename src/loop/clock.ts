/**
 * The loop's time source and how it waits for its next timer. By default the loop
 * reads `performance.now()` and sleeps on one native `setTimeout`; a clock object
 * (`protoloop/testing`'s `VirtualClock`) can replace both, so that time moves only
 * when the clock says so.
 * @module
 */
import { kTimerDriver } from './symbols.ts';
import type { Loop } from './loop.ts';

/**
 * How a loop waits for its earliest timer: `arm()` must call `fire` once, outside
 * any loop callback, when the loop's time reaches `when` (`delay` is `when` minus the
 * time now, in ms, rounded up); `disarm()` cancels an armed wait.
 * @internal
 */
export interface TimerDriver {
  arm(when: number, delay: number, fire: () => void): unknown;
  disarm(token: unknown): void;
}

/** What a loop tells a clock that drives it. @internal */
export interface LoopHooks {
  /** Whether the loop is running with nothing ready to run and no wake-up pending. */
  idle(): boolean;
}

/**
 * A clock a loop can run on (`new Loop({ clock })`, `run(main, { clock })`):
 * `now()` is the loop's time in ms; a clock that also implements the internal
 * driver hook decides when the loop's timers fire (see `VirtualClock`).
 */
export interface LoopClock {
  /** The time now, in milliseconds, monotonic. */
  now(): number;
  /** @internal Called once by each loop that runs on this clock. */
  [kTimerDriver]?(loop: Loop, hooks: LoopHooks): TimerDriver;
}

/** The default driver: one native timer, on real time. @internal */
export const realTimerDriver: TimerDriver = {
  arm(_when, delay, fire) {
    return setTimeout(fire, delay);
  },
  disarm(token) {
    clearTimeout(token as NodeJS.Timeout);
  },
};
