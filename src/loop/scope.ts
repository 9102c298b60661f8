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
import { withFlag } from './internal.ts';
import type { Task } from './task.ts';

/**
 * @internal A pending await, linked into the scope it is recorded in: Future.then()'s
 * Waiter is the node (an intrusive list: recording an await allocates nothing).
 */
export interface ScopedAwait {
  readonly future: Future<any>;
  /** The native promise then() returned for this await. */
  readonly promise: Promise<unknown>;
  /** The scope the await is recorded in (it moves to the parent when its scope closes). */
  scope: CancelScope | undefined;
  prev: ScopedAwait | null;
  /** The next await of the list; the node itself while it is in no list (a flag less per await). */
  next: ScopedAwait | null;
}

/** Whether `node` is recorded in a scope's list now. */
function isLinked(node: ScopedAwait): boolean {
  return node.next !== node;
}

/** The awaits CancelScope.futureOf() walked past, by their promise (filled only by that walk). */
const walked = new WeakMap<Promise<unknown>, ScopedAwait>();
const SHORT_WALK = 16;

/** A scope's rarely needed parts (see CancelScope.#extra). */
interface ScopeExtra {
  pendingMsg: string | undefined;
  controller: AbortController | null;
  reason: CancelledError | null;
}

const PENDING = 1;
const CLOSED = 2;
const EVER_CANCELLED = 4;

/** @internal One node of a task's scope tree; what `taskStorage` holds. */
export class CancelScope {
  /** The task whose code runs in this scope. */
  readonly task: Task<unknown>;
  /** The enclosing scope (null for the task's root). */
  parent: CancelScope | null;
  // Pending protoloop awaits recorded in this scope, most recent first.
  #head: ScopedAwait | null = null;
  #children: Set<CancelScope> | null = null;
  // The request count and three flags in one small integer (a scope per task: three
  // slots less each), read and written through the accessors below.
  #bits = 0;
  // What only a cancelled scope, or one whose signal was asked for, has: made then.
  #extra: ScopeExtra | null = null;
  /** The message of the remembered request. */
  get #pendingMsg(): string | undefined {
    return this.#extra?.pendingMsg;
  }
  set #pendingMsg(msg: string | undefined) {
    if (msg !== undefined || this.#extra !== null) this.#more().pendingMsg = msg;
  }
  get #controller(): AbortController | null {
    return this.#extra?.controller ?? null;
  }
  get #reason(): CancelledError | null {
    return this.#extra?.reason ?? null;
  }
  set #reason(reason: CancelledError | null) {
    this.#more().reason = reason;
  }
  #more(): ScopeExtra {
    return (this.#extra ??= { pendingMsg: undefined, controller: null, reason: null });
  }

  /** Cancellation requests made on this scope and not withdrawn. */
  get #count(): number {
    return this.#bits >>> 3;
  }
  set #count(n: number) {
    this.#bits = (n << 3) | (this.#bits & 7);
  }
  /** A request that found no await to cancel: the next await in the subtree throws. */
  get #pending(): boolean {
    return (this.#bits & PENDING) !== 0;
  }
  set #pending(on: boolean) {
    this.#bits = withFlag(this.#bits, PENDING, on);
  }
  get #closed(): boolean {
    return (this.#bits & CLOSED) !== 0;
  }
  set #closed(on: boolean) {
    this.#bits = withFlag(this.#bits, CLOSED, on);
  }
  get #everCancelled(): boolean {
    return (this.#bits & EVER_CANCELLED) !== 0;
  }
  set #everCancelled(on: boolean) {
    this.#bits = withFlag(this.#bits, EVER_CANCELLED, on);
  }

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
    let controller = this.#controller;
    if (controller === null) {
      controller = this.#more().controller = new AbortController();
      for (let s: CancelScope | null = this; s !== null; s = s.parent) {
        if (s.#reason !== null) {
          this.#reason = s.#reason;
          controller.abort(s.#reason);
          break;
        }
      }
    }
    return controller.signal;
  }

  /** Requests (pending count in this scope and the enclosing ones). */
  cancelling(): number {
    let n = 0;
    for (let s: CancelScope | null = this; s !== null; s = s.parent) n += s.#count;
    return n;
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
    // Cancelling a future only schedules its callbacks: the list does not change under us.
    for (let n = this.#head; n !== null; n = n.next) if (n.future.cancel(msg)) hit = true;
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
   * Future.then() in this scope's code made the await `node`. Records it if its future
   * is pending and delivers a remembered request: returns the error to throw when the
   * future is done.
   */
  awaitStarted(node: ScopedAwait): CancelledError | null {
    const fut = node.future;
    let s: CancelScope = this;
    let err: CancelledError | null;
    if (s.#closed) {
      // A branch that outlived its callback: recorded in the nearest open scope.
      const cancelled = s.#everCancelled;
      while (s.#closed && s.parent !== null) s = s.parent;
      err = cancelled ? new CancelledError(this.#reason?.message) : s.takePending();
    } else err = s.takePending();
    if (!fut.done()) {
      s.#link(node);
      if (err !== null) fut.cancel(err.message);
      return null;
    }
    return err;
  }

  #link(node: ScopedAwait): void {
    node.scope = this;
    node.prev = null;
    node.next = this.#head;
    if (this.#head !== null) this.#head.prev = node;
    this.#head = node;
  }

  static #unlink(node: ScopedAwait): void {
    const scope = node.scope!;
    if (node.prev !== null) node.prev.next = node.next;
    else scope.#head = node.next;
    if (node.next !== null) node.next.prev = node.prev;
    node.prev = null;
    node.next = node;
  }

  /**
   * The await `node` resumes. Returns the error to throw instead of its future's
   * outcome: a request remembered after the future completed but before the code
   * resumed (asyncio throws it into the coroutine at that point). Null for an await
   * that was not recorded (its future was done already).
   */
  awaitResumed(node: ScopedAwait): CancelledError | null {
    if (!isLinked(node)) return null;
    CancelScope.#unlink(node);
    const s = node.scope!;
    return s.#closed ? null : s.takePending();
  }

  /** The scope's callback ended: its pending awaits and child scopes move to the parent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const parent = this.parent;
    if (parent === null) return;
    parent.#children?.delete(this);
    for (let n = this.#head; n !== null; ) {
      const next = n.next;
      parent.#link(n);
      n = next;
    }
    this.#head = null;
    if (this.#children !== null) {
      for (const c of this.#children) {
        c.parent = parent;
        (parent.#children ??= new Set()).add(c);
      }
      this.#children = null;
    }
  }

  /** The task finished: forget every pending await of the tree. */
  reset(): void {
    for (let n = this.#head; n !== null; ) {
      const next = n.next;
      n.prev = null;
      n.next = n;
      n = next;
    }
    this.#head = null;
    this.#children = null;
  }

  /**
   * The future behind `promise`, if `promise` is what then() returned for a pending
   * await recorded in this scope or an enclosing one (the promise of a stream read made
   * in this task, say), else null. This is how `waitFor(reader.read(n), ms)` and
   * `ensureFuture()` cancel the read itself rather than a future following its promise.
   */
  futureOf(promise: Promise<unknown>): Future<unknown> | null {
    const seen = walked.get(promise);
    if (seen !== undefined) return isLinked(seen) && this.#reaches(seen.scope) ? seen.future : null;
    let found: ScopedAwait | null = null;
    let passed = 0;
    for (let s: CancelScope | null = this; s !== null; s = s.parent) {
      for (let n = s.#head; n !== null; n = n.next) {
        if (n.promise === promise) found = n;
        // Remember what a long walk passed: gather() of many reads asks once per
        // promise, and each answer is then found at once, not by another walk. A short
        // walk is as quick as the lookup.
        else if (++passed > SHORT_WALK) walked.set(n.promise, n);
      }
    }
    return found?.future ?? null;
  }

  /** Whether `scope` is this scope or an enclosing one. */
  #reaches(scope: CancelScope | undefined): boolean {
    for (let s: CancelScope | null = this; s !== null; s = s.parent) if (s === scope) return true;
    return false;
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
    return this.#head?.future ?? null;
  }
}
