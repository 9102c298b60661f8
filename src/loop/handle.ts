/**
 * Handles returned by `callSoon`, `callLater` and `callAt`.
 * @module
 */
import { inspect } from 'node:util';
import { formatStack, type RawStack } from './internal.ts';
import { kDescribeCall, kRawStack, kRun, kScheduled, kSourceTraceback, kTimerCancelled } from './symbols.ts';
import type { ExceptionContext, Loop } from './loop.ts';

/** A callback scheduled on a loop. `cancel()` before it runs and it never runs. */
export class Handle {
  #callback: ((...args: any[]) => unknown) | null;
  // Arguments: an array for public calls; internal calls with one or two arguments
  // store them inline (no array per callback on the hot path). #argc < 0: use #args.
  #args: unknown[] | null;
  #a0: unknown;
  #a1: unknown;
  #argc: number;
  #cancelled = false;
  #repr: string | null = null;
  /** @internal */
  readonly loop: Loop;
  /** @internal Where the handle was scheduled, in debug mode (formatted when read). */
  [kRawStack]: RawStack | undefined;

  /** @internal Use `loop.callSoon()`. */
  constructor(callback: (...args: any[]) => unknown, args: unknown[] | null, loop: Loop, rawStack?: RawStack, argc = -1, a0?: unknown, a1?: unknown) {
    this.#callback = callback;
    this.#args = args;
    this.#argc = argc;
    this.#a0 = a0;
    this.#a1 = a1;
    this.loop = loop;
    this[kRawStack] = rawStack;
  }

  /** The arguments as an array (for descriptions). */
  #argList(): unknown[] {
    if (this.#argc < 0) return this.#args ?? [];
    return this.#argc === 0 ? [] : this.#argc === 1 ? [this.#a0] : [this.#a0, this.#a1];
  }

  /** Cancels the callback. Harmless once it ran or was cancelled. */
  cancel(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    if (this.loop.getDebug()) this.#repr = this.toString();
    this.#callback = null;
    this.#args = null;
    this.#a0 = undefined;
    this.#a1 = undefined;
  }

  /** Whether `cancel()` was called. */
  cancelled(): boolean {
    return this.#cancelled;
  }

  /** Where the handle was scheduled (the user's frames, most recent call last), in debug mode; undefined otherwise. */
  get sourceTraceback(): string | undefined {
    return formatStack(this[kRawStack]);
  }

  /** @internal The same, for protoloop's reports. */
  get [kSourceTraceback](): string | undefined {
    return formatStack(this[kRawStack]);
  }

  /** @internal Runs the callback; an exception goes to the loop's exception handler. */
  [kRun](): void {
    const cb = this.#callback;
    if (cb === null) return;
    try {
      switch (this.#argc) {
        case 1: cb(this.#a0); break;
        case 2: cb(this.#a0, this.#a1); break;
        case 0: cb(); break;
        default: cb(...this.#args!);
      }
    } catch (exception) {
      const ctx: ExceptionContext = { message: `Exception in callback ${callbackName(cb, this.#argList(), this.loop.getDebug())}`, exception, handle: this };
      if (this[kSourceTraceback] !== undefined) ctx.sourceTraceback = this[kSourceTraceback];
      this.loop.callExceptionHandler(ctx);
    }
  }

  /** The callback and its arguments, as the slow-callback report names them. @internal */
  describeCallback(): string {
    return this.#callback === null ? (this.#repr ?? 'cancelled') : callbackName(this.#callback, this.#argList(), this.loop.getDebug());
  }

  /**
   * @internal What the handle runs, for debug reports: the Task when it runs a task's
   * step, a text for protoloop's own callbacks that describe themselves, else undefined.
   */
  subject(): unknown {
    const describe = (this.#callback as { [kDescribeCall]?: (args: unknown[]) => unknown } | null)?.[kDescribeCall];
    return typeof describe === 'function' ? describe(this.#argList()) : undefined;
  }

  toString(): string {
    if (this.#repr !== null) return this.#repr;
    const parts = [this.constructor.name];
    if (this.#cancelled) parts.push('cancelled');
    if (this.#callback !== null) parts.push(callbackName(this.#callback, this.#argList(), this.loop.getDebug()));
    const site = this[kSourceTraceback]?.split('\n').at(-1)?.trim();
    if (site) parts.push(`created ${site}`);
    return `<${parts.join(' ')}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

/** A callback scheduled at a point in the loop's time. */
export class TimerHandle extends Handle {
  /** @internal heap key */
  readonly heapWhen: number;
  /** @internal heap tie-breaker: scheduling order */
  readonly heapSeq: number;
  /** @internal false once popped from the heap or cancelled */
  [kScheduled] = true;

  /** @internal Use `loop.callLater()` / `loop.callAt()`. */
  constructor(when: number, seq: number, callback: (...args: any[]) => unknown, args: unknown[] | null, loop: Loop, rawStack?: RawStack) {
    super(callback, args, loop, rawStack);
    this.heapWhen = when;
    this.heapSeq = seq;
  }

  /** The loop time (ms, see `loop.time()`) at which the callback is due. */
  when(): number {
    return this.heapWhen;
  }

  override cancel(): void {
    if (!this.cancelled() && this[kScheduled]) this.loop[kTimerCancelled]();
    super.cancel();
  }

  override toString(): string {
    return super.toString().replace(/^<TimerHandle/, `<TimerHandle when=${this.heapWhen.toFixed(3)}`);
  }
}

/**
 * A readable name for a callback and its arguments. The arguments are shown only when
 * `showArgs` (debug mode), as asyncio does: they may hold secrets. A function with a
 * `kDescribeCall` describer (protoloop's own callbacks) is named by it. @internal
 */
export function callbackName(cb: (...args: any[]) => unknown, args: readonly unknown[], showArgs = true): string {
  const describe = (cb as { [kDescribeCall]?: (args: readonly unknown[]) => unknown })[kDescribeCall];
  if (typeof describe === 'function') return String(describe(args));
  const name = cb.name ? cb.name.replace(/^bound /, '') : '<anonymous>';
  if (args.length === 0) return `${name}()`;
  if (!showArgs) return `${name}(...)`;
  const shown = args.slice(0, 3).map((a) => inspect(a, { depth: 0, breakLength: Infinity, maxStringLength: 40, maxArrayLength: 5 }));
  if (args.length > 3) shown.push('...');
  return `${name}(${shown.join(', ')})`;
}
