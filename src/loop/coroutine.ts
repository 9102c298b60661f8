/**
 * Lazy coroutines: the contract of a Python coroutine object in JavaScript.
 *
 * A JavaScript `async` function starts running the moment it is called. A function
 * wrapped with {@link coroutine} does not: its call returns a {@link Coroutine} that
 * runs only once it is awaited or passed to `loop.createTask()`. A coroutine that is
 * garbage-collected without ever being started is logged as never awaited, which
 * catches the classic "forgot the await" bug.
 * @module
 */
import { inspect } from 'node:util';
import { captureStack } from './internal.ts';
import { kSourceTraceback, kStart } from './symbols.ts';
import type { ExceptionContext, Loop } from './loop.ts';
import { activeLoop, envDebug } from './running.ts';
import { formatExceptionContext, hints } from './debug.ts';
import { createLogger } from './log.ts';

interface NeverAwaitedRecord {
  name: string;
  loop: Loop | null;
  sourceTraceback: string | undefined;
  reported: boolean;
}

/**
 * Coroutines created while a loop ran and not started yet. A short program may exit
 * before any garbage collection: the loop's close() reports these, so the trap is
 * caught deterministically (asyncio relies on reference counting for this).
 */
const unstarted = new Set<NeverAwaitedRecord>();

let fallbackLogger: ReturnType<typeof createLogger> | null = null;

const neverAwaited = new FinalizationRegistry<NeverAwaitedRecord>(reportNeverAwaited);

function reportNeverAwaited(rec: NeverAwaitedRecord): void {
  unstarted.delete(rec);
  if (rec.reported) return;
  rec.reported = true;
  const ctx: ExceptionContext = { message: `Coroutine ${rec.name}() was never awaited`, coroutine: `${rec.name}()`, hint: hints.neverAwaited };
  if (rec.sourceTraceback !== undefined) ctx.sourceTraceback = rec.sourceTraceback;
  if (rec.loop !== null) {
    // Also once the loop is closed: its exception handler is still the user's choice.
    rec.loop.callExceptionHandler(ctx);
  } else {
    // Created while no loop ran: no exception handler to route through.
    fallbackLogger ??= createLogger();
    fallbackLogger.error(formatExceptionContext(ctx, rec.sourceTraceback !== undefined || envDebug()));
  }
}

/** @internal Reports the coroutines created on `loop` that never started (loop close). */
export function reportUnstartedCoroutines(loop: Loop): void {
  for (const rec of [...unstarted]) if (rec.loop === loop) reportNeverAwaited(rec);
}

/**
 * A started-on-demand computation: the result of calling a function wrapped with
 * {@link coroutine}. It is a thenable; it runs the first time it is awaited or
 * handed to `createTask()`, and only once.
 */
export class Coroutine<T = unknown> implements PromiseLike<T> {
  #fn: ((...args: any[]) => PromiseLike<T> | T) | null;
  #args: unknown[] | null;
  #promise: Promise<T> | null = null;
  #record: NeverAwaitedRecord | null;
  /** The wrapped function's name. */
  readonly name: string;
  /** @internal Where the coroutine was created, in debug mode. */
  [kSourceTraceback]: string | undefined;

  /** @internal Use {@link coroutine}. */
  constructor(fn: (...args: any[]) => PromiseLike<T> | T, args: unknown[], name: string) {
    this.#fn = fn;
    this.#args = args;
    this.name = name;
    const loop = activeLoop();
    const debug = loop !== null ? loop.getDebug() : envDebug();
    if (debug) this[kSourceTraceback] = captureStack();
    this.#record = { name, loop, sourceTraceback: this[kSourceTraceback], reported: false };
    if (loop !== null) unstarted.add(this.#record);
    neverAwaited.register(this, this.#record, this);
  }

  /** Whether the coroutine has started running. */
  started(): boolean {
    return this.#promise !== null;
  }

  /** @internal Starts the body (once) and returns its promise. */
  [kStart](): Promise<T> {
    if (this.#promise !== null) return this.#promise;
    neverAwaited.unregister(this);
    if (this.#record !== null) unstarted.delete(this.#record);
    this.#record = null;
    const fn = this.#fn!;
    const args = this.#args!;
    this.#fn = null;
    this.#args = null;
    try {
      this.#promise = Promise.resolve(fn(...args));
    } catch (e) {
      this.#promise = Promise.reject(e);
    }
    return this.#promise;
  }

  /** Starts the coroutine if needed and waits for it. */
  then<R1 = T, R2 = never>(
    onFulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: any) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this[kStart]().then(onFulfilled, onRejected);
  }

  /** @internal Marks the coroutine as handled without running it (a task cancelled before it started). */
  close(): void {
    if (this.#promise !== null) return;
    neverAwaited.unregister(this);
    if (this.#record !== null) unstarted.delete(this.#record);
    this.#record = null;
    this.#fn = null;
    this.#args = null;
    this.#promise = Promise.resolve(undefined as T);
  }

  toString(): string {
    return `<Coroutine ${this.name}() ${this.#promise === null ? 'not started' : 'started'}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * Wraps an async function into a *lazy* coroutine function: calling it returns a
 * {@link Coroutine} that does nothing until it is awaited or passed to
 * `loop.createTask()`. If it is never started, protoloop logs it as never awaited
 * (with the creation stack in debug mode).
 *
 * ```ts
 * const fetchUser = coroutine(async (id: number) => { ... });
 * const c = fetchUser(1);        // nothing runs yet
 * const user = await c;          // runs now
 * ```
 */
export function coroutine<A extends unknown[], T>(fn: (...args: A) => PromiseLike<T> | T): (...args: A) => Coroutine<Awaited<T>> {
  const name = fn.name || 'anonymous';
  const wrapper = (...args: A): Coroutine<Awaited<T>> => new Coroutine<Awaited<T>>(fn as (...a: any[]) => PromiseLike<Awaited<T>>, args, name);
  Object.defineProperty(wrapper, 'name', { value: name });
  return wrapper;
}

/** Whether a value is a protoloop {@link Coroutine}. */
export function isCoroutine(x: unknown): x is Coroutine<unknown> {
  return x instanceof Coroutine;
}
