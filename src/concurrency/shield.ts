/**
 * `shield(x)`: protect work from the cancellation of whoever awaits it.
 * @module
 */
import { Future } from '../loop/future.ts';
import { getRunningLoop, type ExceptionContext } from '../loop/loop.ts';
import { kSourceTraceback } from '../loop/symbols.ts';
import { ensureFuture, type Awaitable } from './waiters.ts';

/** Links an inner future to the outer one that shield() returns. */
class ShieldLink<T> {
  readonly inner: Future<T>;
  readonly outer: Future<T>;
  readonly onInner: (f: Future<T>) => void;
  readonly onOuter: (f: Future<T>) => void;
  constructor(inner: Future<T>, outer: Future<T>) {
    this.inner = inner;
    this.outer = outer;
    this.onInner = (f) => innerDone(this, f);
    this.onOuter = () => outerDone(this);
  }
}

function innerDone<T>(link: ShieldLink<T>, inner: Future<T>): void {
  const outer = link.outer;
  if (outer.cancelled()) return;
  if (inner.cancelled()) {
    outer.cancel();
    return;
  }
  const exc = inner.exception();
  if (exc !== null) outer.setException(exc);
  else outer.setResult(inner.result());
}

/** Once nobody waits for it, a failure of the shielded work is reported, not lost. */
function logOnException(inner: Future<unknown>): void {
  if (inner.cancelled()) return;
  const exception = inner.exception();
  if (exception === null) return;
  const name = exception instanceof Error ? exception.name : typeof exception;
  const ctx: ExceptionContext = { message: `${name} exception in shielded future`, exception, future: inner };
  if (inner[kSourceTraceback] !== undefined) ctx.sourceTraceback = inner[kSourceTraceback];
  inner.getLoop().callExceptionHandler(ctx);
}

function outerDone<T>(link: ShieldLink<T>): void {
  const inner = link.inner;
  if (!inner.done()) {
    inner.removeDoneCallback(link.onInner);
    // Keep a single logging callback however many shields cover the same future.
    inner.removeDoneCallback(logOnException);
    inner.addDoneCallback(logOnException);
  }
}

/**
 * Returns a future that follows `x` but whose cancellation does not reach `x`: if the
 * task awaiting `await shield(x)` is cancelled, that await throws
 * {@link CancelledError} while `x` keeps running. If `x` is cancelled by other means,
 * the shield is cancelled too. Should `x` fail after its shield was cancelled, the
 * error goes to the loop's exception handler ("... exception in shielded future").
 * A Coroutine or function is started as a task; keep the task if you want its result.
 *
 * ```ts
 * const save = loop.createTask(() => saveToDisk(state));
 * try { await shield(save); } catch (e) { if (e instanceof CancelledError) await save; throw e; }
 * ```
 */
export function shield<T>(x: Awaitable<T>): Future<T> {
  const loop = getRunningLoop();
  const inner = ensureFuture(x, loop, 'shield()');
  if (inner.done()) return inner;
  const outer = loop.createFuture<T>(`shield(${inner.description ?? inner.constructor.name})`);
  const link = new ShieldLink(inner, outer);
  inner.addDoneCallback(link.onInner);
  outer.addDoneCallback(link.onOuter);
  return outer;
}
