/**
 * Virtual time: a clock that moves only when told, or (with `autojump`) as soon as
 * every task is blocked — Trio's MockClock for protoloop.
 *
 * ```
 * arm(next timer) --time reaches it (advance() or a jump)--> fire --loop runs it--> arm(next)
 * ```
 *
 * The autojump rule: a loop on an autojumping clock is *idle* when it runs with no
 * ready callback and no wake-up pending. When it has been idle for `autojump` ms of
 * real time (with `0`: for two full passes of Node's event loop, so that I/O already
 * delivered by the OS is seen first) and no real operation is in flight, the clock
 * jumps to the loop's next timer. Real operations in flight are: a live child process,
 * a pending Node request (file system, DNS, connect, write, shutdown, UDP send, zlib),
 * and a job submitted with `loop.runInExecutor()`/`toThread()`. While one is in flight
 * the clock waits (polling every {@link REAL_WORK_POLL_MS} ms of real time). An open
 * socket waiting for its peer is not work in flight; native timers (`setTimeout` in
 * foreign code) run on real time and are not waited for.
 * @module
 */
import { InvalidArgumentError } from '../errors.ts';
import type { LoopClock, LoopHooks, TimerDriver } from '../loop/clock.ts';
import { kCloseHooks, kRealWork, kStats, kTimerDriver } from '../loop/symbols.ts';
import type { Loop } from '../loop/loop.ts';

/** How often (real ms) an autojumping clock looks again while real work is in flight. */
export const REAL_WORK_POLL_MS = 1;

/** Node resource types (`process.getActiveResourcesInfo()`) that mean real work in flight. */
const IN_FLIGHT = /Req|ConnectWrap|^WriteWrap$|^ShutdownWrap$|SendWrap|^ProcessWrap$|Zlib/;

/** Options of {@link VirtualClock}. */
export interface VirtualClockOptions {
  /**
   * Jump to the next timer once every task has been blocked for this many ms of real
   * time (`0`: as soon as nothing can run and no real I/O is in flight; `true` means
   * `0`). Default: no jumps, time moves only with {@link VirtualClock.advance}.
   */
  autojump?: number | boolean;
  /** The time the clock starts at, in ms. Default 0. */
  start?: number;
}

function checkThreshold(v: unknown): number | null {
  if (v === undefined || v === false) return null;
  if (v === true) return 0;
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  throw new InvalidArgumentError(`autojump must be a number of milliseconds >= 0 or a boolean, got ${String(v)}`);
}

/**
 * A clock for tests. Pass it to `run(main, { clock })` or `new Loop({ clock })`; the
 * loop's `time()`, `sleep()`, `callLater()`, timeouts and every protocol deadline of
 * protoloop then run on it. One clock may drive several loops in turn.
 *
 * ```ts
 * import { run, sleep } from 'protoloop';
 * import { VirtualClock } from 'protoloop/testing';
 *
 * const clock = new VirtualClock({ autojump: 0 });
 * await run(async () => {
 *   await sleep(30 * 60_000); // half an hour, at once
 * }, { clock });
 * console.log(clock.now()); // 1800000
 * ```
 */
export class VirtualClock implements LoopClock {
  #now: number;
  #autojump: number | null;
  readonly #drivers = new Set<VirtualDriver>();

  constructor(options: VirtualClockOptions = {}) {
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('VirtualClock options must be an object');
    const start = options.start ?? 0;
    if (!(typeof start === 'number' && Number.isFinite(start))) throw new InvalidArgumentError('VirtualClock options.start must be a finite number of milliseconds');
    this.#now = start;
    this.#autojump = checkThreshold(options.autojump);
  }

  /** The virtual time now, in ms. */
  now(): number {
    return this.#now;
  }

  /**
   * Moves time forward by `ms` (>= 0). Timers that become due run on the loop's next
   * iteration, not inside this call. Throws {@link InvalidArgumentError} for a
   * negative or non-finite `ms`.
   */
  advance(ms: number): void {
    if (!(typeof ms === 'number' && Number.isFinite(ms) && ms >= 0)) throw new InvalidArgumentError(`advance() needs a finite number of milliseconds >= 0, got ${String(ms)}`);
    this.#setTime(this.#now + ms);
  }

  /** The autojump threshold in real ms, or null when the clock does not jump. */
  get autojump(): number | null {
    return this.#autojump;
  }

  /** Sets the autojump threshold (see {@link VirtualClockOptions.autojump}); `false` stops jumping. */
  set autojump(value: number | boolean | null) {
    this.#autojump = checkThreshold(value ?? false);
    for (const d of this.#drivers) d.rearmCheck();
  }

  #setTime(t: number): void {
    if (t <= this.#now) return;
    this.#now = t;
    for (const d of this.#drivers) d.timeMoved();
  }

  /** @internal Called by each loop created on this clock. */
  [kTimerDriver](loop: Loop, hooks: LoopHooks): TimerDriver {
    const driver = new VirtualDriver(this, loop, hooks, (t) => this.#setTime(t));
    this.#drivers.add(driver);
    loop[kCloseHooks].add(() => {
      driver.disarm();
      this.#drivers.delete(driver);
    });
    return driver;
  }

  toString(): string {
    return `<VirtualClock now=${this.#now}ms autojump=${this.#autojump === null ? 'off' : `${this.#autojump}ms`}>`;
  }
}

/** Whether something real is still working for `loop` (see the module notes). */
function realWorkInFlight(loop: Loop): boolean {
  if (loop[kRealWork] > 0) return true;
  for (const type of process.getActiveResourcesInfo()) if (IN_FLIGHT.test(type)) return true;
  return false;
}

/** One loop's timer wait on a virtual clock. */
class VirtualDriver implements TimerDriver {
  readonly #clock: VirtualClock;
  readonly #loop: Loop;
  readonly #hooks: LoopHooks;
  readonly #jump: (t: number) => void;
  #when = Infinity;
  #fire: (() => void) | null = null;
  #firing: NodeJS.Immediate | null = null;
  #check: NodeJS.Immediate | NodeJS.Timeout | null = null;
  #baseline = -1;
  #passes = 0;

  constructor(clock: VirtualClock, loop: Loop, hooks: LoopHooks, jump: (t: number) => void) {
    this.#clock = clock;
    this.#loop = loop;
    this.#hooks = hooks;
    this.#jump = jump;
  }

  arm(when: number, _delay: number, fire: () => void): unknown {
    this.#when = when;
    this.#fire = fire;
    if (when <= this.#clock.now()) this.#fireSoon();
    else this.rearmCheck();
    return this;
  }

  disarm(): void {
    this.#fire = null;
    this.#when = Infinity;
    if (this.#firing !== null) clearImmediate(this.#firing);
    this.#firing = null;
    this.#clearCheck();
  }

  /** The clock moved: fire if the armed timer is now due. */
  timeMoved(): void {
    if (this.#fire !== null && this.#when <= this.#clock.now()) this.#fireSoon();
  }

  /** (Re)starts the idle watch that leads to a jump. */
  rearmCheck(): void {
    this.#clearCheck();
    if (this.#fire === null || this.#clock.autojump === null) return;
    this.#baseline = this.#loop[kStats].iterations;
    this.#passes = 0;
    this.#scheduleCheck(this.#clock.autojump);
  }

  #scheduleCheck(ms: number): void {
    this.#check = ms > 0 ? setTimeout(this.#onCheck, ms) : setImmediate(this.#onCheck);
  }

  #clearCheck(): void {
    if (this.#check === null) return;
    clearTimeout(this.#check as NodeJS.Timeout);
    clearImmediate(this.#check as NodeJS.Immediate);
    this.#check = null;
  }

  #onCheck = (): void => {
    this.#check = null;
    const threshold = this.#clock.autojump;
    if (this.#fire === null || threshold === null) return;
    if (!this.#hooks.idle() || this.#loop[kStats].iterations !== this.#baseline) {
      this.rearmCheck();
      return;
    }
    if (threshold === 0 && ++this.#passes < 2) {
      this.#scheduleCheck(0);
      return;
    }
    if (realWorkInFlight(this.#loop)) {
      this.#scheduleCheck(REAL_WORK_POLL_MS);
      return;
    }
    this.#jump(this.#when);
  };

  #fireSoon(): void {
    this.#clearCheck();
    if (this.#firing !== null) return;
    this.#firing = setImmediate(this.#onFire);
  }

  #onFire = (): void => {
    this.#firing = null;
    const fire = this.#fire;
    if (fire === null || this.#when > this.#clock.now()) return;
    this.#fire = null;
    this.#when = Infinity;
    fire();
  };
}
