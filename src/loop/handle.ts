/**
 * Handles returned by `callSoon`, `callLater` and `callAt`.
 * @module
 */
import { inspect } from 'node:util';
import { kRun, kScheduled, kSourceTraceback, kTimerCancelled } from './internal.ts';
import type { ExceptionContext, Loop } from './loop.ts';

/** A callback scheduled on a loop. `cancel()` before it runs and it never runs. */
export class Handle {
  #callback: ((...args: any[]) => unknown) | null;
  #args: unknown[] | null;
  #cancelled = false;
  #repr: string | null = null;
  /** @internal */
  readonly loop: Loop;
  /** @internal Where the handle was scheduled, in debug mode. */
  [kSourceTraceback]: string | undefined;

  /** @internal Use `loop.callSoon()`. */
  constructor(callback: (...args: any[]) => unknown, args: unknown[], loop: Loop, sourceTraceback?: string) {
    this.#callback = callback;
    this.#args = args;
    this.loop = loop;
    this[kSourceTraceback] = sourceTraceback;
  }

  /** Cancels the callback. Harmless once it ran or was cancelled. */
  cancel(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    if (this.loop.getDebug()) this.#repr = this.toString();
    this.#callback = null;
    this.#args = null;
  }

  /** Whether `cancel()` was called. */
  cancelled(): boolean {
    return this.#cancelled;
  }

  /** @internal Runs the callback; an exception goes to the loop's exception handler. */
  [kRun](): void {
    const cb = this.#callback;
    if (cb === null) return;
    const args = this.#args!;
    try {
      switch (args.length) {
        case 0: cb(); break;
        case 1: cb(args[0]); break;
        case 2: cb(args[0], args[1]); break;
        default: cb(...args);
      }
    } catch (exception) {
      const ctx: ExceptionContext = { message: `Exception in callback ${callbackName(cb, args)}`, exception, handle: this };
      if (this[kSourceTraceback] !== undefined) ctx.sourceTraceback = this[kSourceTraceback];
      this.loop.callExceptionHandler(ctx);
    }
  }

  /** The callback and its arguments, as the slow-callback report names them. @internal */
  describeCallback(): string {
    return this.#callback === null ? (this.#repr ?? 'cancelled') : callbackName(this.#callback, this.#args!);
  }

  toString(): string {
    if (this.#repr !== null) return this.#repr;
    const parts = [this.constructor.name];
    if (this.#cancelled) parts.push('cancelled');
    if (this.#callback !== null) parts.push(callbackName(this.#callback, this.#args!));
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
  constructor(when: number, seq: number, callback: (...args: any[]) => unknown, args: unknown[], loop: Loop, sourceTraceback?: string) {
    super(callback, args, loop, sourceTraceback);
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

/** A readable name for a callback and its arguments. @internal */
export function callbackName(cb: (...args: any[]) => unknown, args: readonly unknown[]): string {
  const name = cb.name ? cb.name.replace(/^bound /, '') : '<anonymous>';
  if (args.length === 0) return `${name}()`;
  const shown = args.slice(0, 3).map((a) => inspect(a, { depth: 0, breakLength: Infinity, maxStringLength: 40, maxArrayLength: 5 }));
  if (args.length > 3) shown.push('...');
  return `${name}(${shown.join(', ')})`;
}
