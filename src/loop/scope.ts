/**
 * Cancel scopes: the part of a task's work that a cancellation reaches.
 *
 * A Python task runs one await at a time, so asyncio can cancel "the task". A
 * JavaScript task runs many (Promise.all, Promise.race, several loops), so protoloop
 * keeps, per task, a tree of scopes that follows the code: every task has a root
 * scope; `timeout()`, `timeoutAt()`, `waitFor()` and `taskGroup()` run their callback
 * in a child scope of the scope they were called from (through the async context that
 * `taskStorage` holds). Each protoloop await (Future.then() in task code) is recorded in
 * the scope it was made in. Cancelling a scope cancels the awaits recorded in it and in
 * its child scopes, and nothing else; `task.cancel()` cancels the root scope, so all of
 * the task's awaits.
 *
 * Delivery follows asyncio's rule per scope (edge, not level as in Trio): a request
 * cancels every pending await of the subtree at once; if it found none (the code was
 * in a foreign promise), it is remembered and the next protoloop await made in the
 * scope or under it throws. Requests are counted per scope (`cancelling()` is the sum
 * along the chain to the root, `uncancel()` withdraws the innermost), which is what
 * timeouts and task groups compare to tell their own cancellation from one coming from
 * outside.
 *
 * An await still pending when its scope closes (a branch that outlived its callback)
 * moves to the enclosing scope, where `task.cancel()` still reaches it; an await made
 * later in a closed scope that had been cancelled is cancelled at once (the work of a
 * passed deadline stops).
 * @module
 */
import { CancelledError } from '../errors.ts';
import type { Future } from './future.ts';
import type { Task } from './task.ts';

/** @internal One node of a task's scope tree; what `taskStorage` holds. */
export class CancelScope {
  /** The task whose code runs in this scope. */
  readonly task: Task<unknown>;
  /** The enclosing scope (null for the task's root). */
  parent: CancelScope | null;
  // Pending protoloop awaits made in this scope: one slot (the usual case, no
  // allocation) and a set for the others.
  #wait: Future<any> | null = null;
  #more: Set<Future<any>> | null = null;
  #children: Set<CancelScope> | null = null;
  /** Cancellation requests made on this scope and not withdrawn. */
  #count = 0;
  /** A request that found no await to cancel: the next await in the subtree throws. */
  #pending = false;
  #pendingMsg: string | undefined = undefined;
  #closed = false;
  #everCancelled = false;
  #controller: AbortController | null = null;
  #reason: CancelledError | null = null;

  constructor(task: Task<unknown>, parent: CancelScope | null) {
    this.task = task;
    this.parent = parent;
    if (parent !== null) (parent.#children ??= new Set()).add(this);
  }

  /** Whether the scope's callback has ended. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The reason the scope's signal was aborted with, if it was. */
  get abortReason(): CancelledError | null {
    return this.#reason;
  }

  /**
   * Aborted when this scope or an enclosing one (the task included) is cancelled, with
   * the {@link CancelledError} as reason.
   */
  get signal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      for (let s: CancelScope | null = this; s !== null; s = s.parent) {
        if (s.#reason !== null) {
          this.#reason = s.#reason;
          this.#controller.abort(s.#reason);
          break;
        }
      }
    }
    return this.#controller.signal;
  }

  /** Requests (pending count in this scope and the enclosing ones). */
  cancelling(): number {
    let n = 0;
    for (let s: CancelScope | null = this; s !== null; s = s.parent) n += s.#count;
    return n;
  }

  /** This scope's own request count. */
  ownCount(): number {
    return this.#count;
  }

  /** A counted request: cancels the awaits of the subtree, or remembers it. */
  cancel(msg?: string): void {
    this.#count++;
    this.#everCancelled = true;
    this.abort(new CancelledError(msg));
    this.#deliver(msg);
  }

  /** Withdraws one of this scope's own requests; at zero a remembered one is dropped. */
  uncancel(): number {
    if (this.#count > 0) {
      this.#count--;
      if (this.#count === 0) this.#pending = false;
    }
    return this.#count;
  }

  /** Withdraws the innermost request of the chain from here; returns the chain's count after. */
  uncancelInnermost(): number {
    for (let s: CancelScope | null = this; s !== null; s = s.parent) {
      if (s.#count > 0) {
        s.uncancel();
        break;
      }
    }
    const left = this.cancelling();
    if (left === 0) for (let s: CancelScope | null = this; s !== null; s = s.parent) s.#pending = false;
    return left;
  }

  /** Delivers a cancellation again at the next await here, without counting a request (asyncio's `uncancel(); cancel()`). */
  remind(msg?: string): void {
    this.#pending = true;
    this.#pendingMsg = msg;
  }

  /** Aborts the signals of this scope and its subtree (once; the first reason stays). */
  abort(reason: CancelledError): void {
    if (this.#reason === null) {
      this.#reason = reason;
      this.#controller?.abort(reason);
    }
    const children = this.#children;
    if (children !== null) for (const c of children) c.abort(reason);
  }

  #deliver(msg: string | undefined): void {
    if (!this.#cancelAwaits(msg)) {
      this.#pending = true;
      this.#pendingMsg = msg;
    }
  }

  #cancelAwaits(msg: string | undefined): boolean {
    let hit = false;
    const w = this.#wait;
    if (w !== null && w.cancel(msg)) hit = true;
    const more = this.#more;
    if (more !== null && more.size > 0) for (const f of [...more]) if (f.cancel(msg)) hit = true;
    const children = this.#children;
    if (children !== null && children.size > 0) for (const c of [...children]) if (c.#cancelAwaits(msg)) hit = true;
    return hit;
  }

  /** A remembered request of this scope or an enclosing one, taken (or null). */
  takePending(): CancelledError | null {
    for (let s: CancelScope | null = this; s !== null; s = s.parent) {
      if (s.#pending) {
        s.#pending = false;
        return new CancelledError(s.#pendingMsg);
      }
    }
    return null;
  }

  /** Whether this scope itself holds a remembered request (the root: the task ends cancelled). */
  takeOwnPending(): CancelledError | null {
    if (!this.#pending) return null;
    this.#pending = false;
    return new CancelledError(this.#pendingMsg);
  }

  /**
   * Future.then() in this scope's code awaits `fut`. Records it if pending and
   * delivers a remembered request: returns the error to throw when `fut` is done.
   */
  awaitStarted(fut: Future<any>): CancelledError | null {
    let s: CancelScope = this;
    let err: CancelledError | null;
    if (s.#closed) {
      // A branch that outlived its callback: recorded in the nearest open scope.
      const cancelled = s.#everCancelled;
      while (s.#closed && s.parent !== null) s = s.parent;
      err = cancelled ? new CancelledError(this.#reason?.message) : s.takePending();
    } else err = s.takePending();
    if (!fut.done()) {
      if (s.#wait === null) s.#wait = fut;
      else if (s.#wait !== fut) (s.#more ??= new Set()).add(fut);
      if (err !== null) fut.cancel(err.message);
      return null;
    }
    return err;
  }

  /**
   * The await of `fut` made in this scope resumes. Returns the error to throw instead
   * of `fut`'s outcome: a request remembered after `fut` completed but before the code
   * resumed (asyncio throws it into the coroutine at that point).
   */
  awaitResumed(fut: Future<any>): CancelledError | null {
    let s: CancelScope | null = this;
    while (s !== null && !s.#remove(fut)) s = s.parent;
    if (s === null) return null;
    return s.#closed ? null : s.takePending();
  }

  #remove(fut: Future<any>): boolean {
    if (this.#wait === fut) {
      this.#wait = null;
      return true;
    }
    return this.#more !== null && this.#more.delete(fut);
  }

  /** The scope's callback ended: its pending awaits and child scopes move to the parent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const parent = this.parent;
    if (parent === null) return;
    parent.#children?.delete(this);
    const w = this.#wait;
    if (w !== null && !w.done()) parent.#adopt(w);
    if (this.#more !== null) for (const f of this.#more) if (!f.done()) parent.#adopt(f);
    this.#wait = null;
    this.#more = null;
    if (this.#children !== null) {
      for (const c of this.#children) {
        c.parent = parent;
        (parent.#children ??= new Set()).add(c);
      }
      this.#children = null;
    }
  }

  #adopt(fut: Future<any>): void {
    if (this.#wait === null) this.#wait = fut;
    else if (this.#wait !== fut) (this.#more ??= new Set()).add(fut);
  }

  /** The task finished: forget every pending await of the tree. */
  reset(): void {
    this.#wait = null;
    this.#more = null;
    this.#children = null;
  }

  /**
   * A pending await of the subtree, innermost and most recent first (introspection:
   * `task.awaiting()`).
   */
  anyPending(): Future<unknown> | null {
    if (this.#children !== null) {
      let last: CancelScope | null = null;
      for (const c of this.#children) last = c;
      const inner = last?.anyPending() ?? null;
      if (inner !== null) return inner;
    }
    if (this.#more !== null && this.#more.size > 0) {
      let last: Future<unknown> | null = null;
      for (const f of this.#more) last = f;
      return last;
    }
    return this.#wait;
  }
}
