/**
 * Structured concurrency: `taskGroup(async (tg) => ...)`, asyncio's `TaskGroup`.
 *
 * The body runs in the calling task, in a cancel scope of its own (loop/scope.ts)
 * under the code that called `taskGroup()`; `tg.createTask()` starts children. The
 * group ends when the body and every child have finished. The first child that fails
 * (with anything but a {@link CancelledError}) cancels the other children and the
 * body (the awaits made in the body's scope, not those of other branches of the
 * task); the errors come out together as an {@link ExceptionGroup}. A cancellation of
 * the calling task from outside cancels the children too and comes out as a
 * cancellation. The group counts its request on its scope and withdraws it at the
 * end, as asyncio does with `cancel()`/`uncancel()` on the parent task, so that its
 * own cancellation never leaks out while an outside one always does. `tg.cancel()`
 * (asyncio 3.15) stops the group on purpose: it exits without an error.
 *
 * ```
 * created --taskGroup()--> running --body done--> exiting (waits for children) --> finished
 *                              \--child failed / body threw / cancelled--> aborting --/
 * ```
 * @module
 */
import { inspect } from 'node:util';
import { CancelledError, ExceptionGroup, InvalidArgumentError, InvalidStateError, KeyboardInterrupt } from '../errors.ts';
import { Coroutine } from '../loop/coroutine.ts';
import type { Future } from '../loop/future.ts';
import { taskStorage } from '../loop/internal.ts';
import { getRunningLoop, type Loop } from '../loop/loop.ts';
import { CancelScope } from '../loop/scope.ts';
import type { Task, TaskOptions, TaskTarget } from '../loop/task.ts';

/** The states of a {@link TaskGroup}. */
export type TaskGroupState = 'running' | 'exiting' | 'aborting' | 'finished';

const kExit = Symbol('TaskGroup.exit');

/** Errors that are re-thrown bare rather than grouped (asyncio: KeyboardInterrupt, SystemExit). */
function isBaseError(e: unknown): boolean {
  return e instanceof KeyboardInterrupt;
}

function onTaskDone(this: TaskGroup, task: Future<unknown>): void {
  this[kTaskDone](task as Task<unknown>);
}
const kTaskDone = Symbol('TaskGroup.taskDone');

/** The group handed to the body of {@link taskGroup}: it starts the children. */
export class TaskGroup {
  #state: TaskGroupState = 'running';
  #exiting = false;
  #aborting = false;
  readonly #loop: Loop;
  #parent: Task<unknown> | null;
  /** The body's scope: the group's cancellation of the body is a request on it. */
  readonly #scope: CancelScope;
  #parentCancelRequested = false;
  readonly #tasks = new Set<Task<unknown>>();
  #errors: unknown[] = [];
  #baseError: unknown = undefined;
  #hasBaseError = false;
  #onCompleted: Future<boolean> | null = null;
  readonly #onTaskDone: (task: Future<unknown>) => void;

  /** @internal Use {@link taskGroup}. */
  constructor(loop: Loop, scope: CancelScope) {
    this.#loop = loop;
    this.#parent = scope.task;
    this.#scope = scope;
    this.#onTaskDone = onTaskDone.bind(this);
  }

  /**
   * Aborted when the group starts cancelling (a child failed, the body threw,
   * `cancel()`) or the code around it is cancelled, with a {@link CancelledError} as
   * reason: pass it to foreign APIs the body uses so they stop too.
   */
  get signal(): AbortSignal {
    return this.#scope.signal;
  }

  /**
   * Stops the group (asyncio 3.15's `TaskGroup.cancel()`): cancels the children not
   * done and the body's awaits, and the group then exits without an error (the
   * cancellation does not come out of `taskGroup()`, which returns `undefined` if the
   * body did not finish). A cancellation from outside still comes out. Does nothing
   * once the group has finished; calling it again changes nothing.
   */
  cancel(): void {
    if (this.#exiting && this.#tasks.size === 0) return;
    if (!this.#aborting) this.#abort();
    if (!this.#parentCancelRequested) {
      this.#parentCancelRequested = true;
      this.#scope.cancel();
    }
  }

  /** `running` (body), `exiting` (waiting for children), `aborting` (cancelling them), `finished`. */
  get state(): TaskGroupState {
    return this.#state;
  }

  /** The number of children not done yet. */
  get size(): number {
    return this.#tasks.size;
  }

  /**
   * Starts a child task running `target` (a Coroutine or a function returning a
   * promise); `options.name` names it. Throws {@link InvalidStateError} once the group
   * is finished or shutting down (a Coroutine given then is closed, never run).
   */
  createTask<T>(target: TaskTarget<T>, options?: TaskOptions): Task<T> {
    let refusal: string | null = null;
    if (this.#exiting && this.#tasks.size === 0) refusal = 'is finished';
    else if (this.#aborting) refusal = 'is shutting down';
    if (refusal !== null) {
      if (target instanceof Coroutine) target.close();
      throw new InvalidStateError(`TaskGroup ${String(this)} ${refusal}: it takes no new tasks`);
    }
    const task = this.#loop.createTask(target, options);
    // Always through the done callback, even if an eager task already finished: failing
    // right now would cancel the parent too early (asyncio gh-128550).
    this.#tasks.add(task as Task<unknown>);
    task.addDoneCallback(this.#onTaskDone);
    return task;
  }

  #abort(): void {
    this.#aborting = true;
    this.#state = 'aborting';
    this.#scope.abort(new CancelledError('the task group is cancelling'));
    for (const t of this.#tasks) if (!t.done()) t.cancel();
  }

  /** @internal A child finished. */
  [kTaskDone](task: Task<unknown>): void {
    this.#tasks.delete(task);
    const waiter = this.#onCompleted;
    if (waiter !== null && this.#tasks.size === 0 && !waiter.done()) waiter.setResult(true);
    if (task.cancelled()) return;
    const exc = task.exception();
    if (exc === null) return;
    this.#errors.push(exc);
    if (isBaseError(exc) && !this.#hasBaseError) {
      this.#baseError = exc;
      this.#hasBaseError = true;
    }
    const parent = this.#parent;
    if (parent === null || parent.done()) {
      this.#loop.callExceptionHandler({
        message: `Task ${task.getName()} failed but its task group's parent task is already done`,
        exception: exc,
        task,
      });
      return;
    }
    if (!this.#aborting && !this.#parentCancelRequested) {
      // Interrupt whatever the body awaits now; exit() withdraws this request again, so
      // the body's caller sees the ExceptionGroup, not a cancellation.
      this.#abort();
      this.#parentCancelRequested = true;
      this.#scope.cancel();
    }
  }

  /**
   * @internal asyncio's `TaskGroup.__aexit__`: waits for the children, then throws what
   * the group must throw (base error, cancellation, ExceptionGroup) or returns.
   */
  async [kExit](failed: boolean, error: unknown): Promise<void> {
    this.#exiting = true;
    if (this.#state === 'running') this.#state = 'exiting';
    try {
      if (failed && isBaseError(error) && !this.#hasBaseError) {
        this.#baseError = error;
        this.#hasBaseError = true;
      }
      let propagateCancellation: CancelledError | null = failed && error instanceof CancelledError ? error : null;
      // The body threw, or the parent task is being cancelled: stop the children.
      if (failed && !this.#aborting) this.#abort();

      // A loop: the wait can be cancelled several times if the parent task is cancelled
      // repeatedly (or once while our own cancellation is already in progress).
      while (this.#tasks.size > 0) {
        this.#onCompleted ??= this.#loop.createFuture<boolean>(`TaskGroup: ${this.#tasks.size} task(s) to finish`);
        try {
          await this.#onCompleted;
        } catch (e) {
          if (!(e instanceof CancelledError)) throw e;
          if (!this.#aborting) {
            // The parent was cancelled from outside while waiting for the children.
            propagateCancellation = e;
            this.#abort();
          }
        }
        this.#onCompleted = null;
      }

      if (this.#hasBaseError) throw this.#baseError;

      const scope = this.#scope;
      // If we asked for the body's cancellation we must withdraw it; if no other request
      // reaches the body (from the enclosing scopes, the task's own included), the
      // CancelledError it caused is ours and must not leak out.
      if (this.#parentCancelRequested) {
        scope.uncancel();
        if (scope.cancelling() === 0) propagateCancellation = null;
      }

      // Errors take priority over a cancellation.
      if (propagateCancellation !== null && this.#errors.length === 0) throw propagateCancellation;

      if (failed && !(error instanceof CancelledError)) this.#errors.push(error);
      if (this.#errors.length > 0) {
        // Cancelled from outside as well: keep the request count stable and let the
        // cancellation be delivered at the next await of the code around the group.
        if (scope.cancelling() > 0) scope.parent!.remind();
        const errors = this.#errors;
        throw new ExceptionGroup(`unhandled errors in a TaskGroup (${errors.length} sub-exception${errors.length === 1 ? '' : 's'})`, errors);
      }
    } finally {
      this.#state = 'finished';
      // Errors are heavy; don't keep them (or the parent) alive through the group.
      this.#parent = null;
      this.#errors = [];
      this.#baseError = undefined;
    }
  }

  toString(): string {
    const info: string[] = [this.#state];
    if (this.#tasks.size > 0) info.push(`tasks=${this.#tasks.size}`);
    if (this.#errors.length > 0) info.push(`errors=${this.#errors.length}`);
    return `<TaskGroup ${info.join(' ')}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

async function callBody<T>(body: (tg: TaskGroup) => PromiseLike<T> | T, tg: TaskGroup): Promise<T> {
  return await body(tg);
}

/**
 * Runs `body` (in the current task) with a new {@link TaskGroup}, waits until the body
 * and every task it started are done, and returns the body's result.
 *
 * - A child failing cancels the other children and the body (whose current await
 *   throws {@link CancelledError}); then all the errors, the body's included, are
 *   thrown together as an {@link ExceptionGroup} (`errors` holds them).
 * - Cancelling the calling task cancels the children; `taskGroup()` then throws the
 *   {@link CancelledError} once they are all done.
 * - A {@link KeyboardInterrupt} from the body or a child is re-thrown as is, after the
 *   children are cancelled and done.
 *
 * - `tg.cancel()` stops the group on purpose: children and body are cancelled and
 *   `taskGroup()` returns (`undefined` if the body did not finish) without an error.
 * - The body runs in a cancel scope of its own: a failing child cancels the awaits
 *   of the body, not those of other branches of the task (Promise.all).
 *
 * Throws {@link InvalidStateError} outside a task.
 *
 * ```ts
 * const [a, b] = await taskGroup(async (tg) => {
 *   const a = tg.createTask(() => fetchA(), { name: 'fetch A' });
 *   const b = tg.createTask(() => fetchB());
 *   return [a, b];
 * }).then(([a, b]) => [a.result(), b.result()]);
 * ```
 */
export async function taskGroup<T>(body: (tg: TaskGroup) => PromiseLike<T> | T): Promise<T> {
  if (typeof body !== 'function') throw new InvalidArgumentError('taskGroup() needs a function (tg) => ...');
  const loop = getRunningLoop();
  const outer = taskStorage.getStore();
  if (outer === undefined) throw new InvalidStateError('taskGroup() must be called inside a task: it cannot determine the parent task');
  const scope = new CancelScope(outer.task, outer);
  const tg = new TaskGroup(loop, scope);
  let result: T | undefined;
  let failed = false;
  let error: unknown;
  try {
    // The body and every await it makes run in the group's scope; the exit (waiting
    // for the children) runs in the caller's.
    result = await taskStorage.run(scope, callBody, body, tg);
  } catch (e) {
    failed = true;
    error = e;
  }
  scope.close();
  await tg[kExit](failed, error);
  // kExit throws whenever the body failed with anything it must not swallow; when it
  // returns after a failure, the failure was the group's own cancellation.
  return result as T;
}
