/**
 * One HTTP request served by a route handler running as a loop task.
 *
 * ```
 * running --(handler settles)--> answered --(response closed)--> closed
 *    |                               |
 *    +------(client went away)-------+--> gone (task cancelled, request.signal aborted)
 * ```
 *
 * A client is gone when the response closes before it was ended (`res` emits
 * `'close'` with `writableEnded` false). The raw request's `'close'` is not used: it
 * also fires when a request body has been read to its end.
 * @module
 */
import { inspect } from 'node:util';
import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CancelledError } from '../errors.ts';
import type { Task } from '../loop/task.ts';
import { fastifySymbols, type SignalSlot } from './fastify-internals.ts';

/** Where a request is in its life. */
export type HandlerCallState = 'running' | 'answered' | 'gone' | 'closed';

/** What a HandlerCall reports back to its adapter. */
export interface CallOwner {
  callClosed(call: HandlerCall): void;
  clientGone(call: HandlerCall): void;
  /**
   * The handler's promise settled: sets `call.outcome` to what Fastify gets, and
   * returns true for an answer, false for an error.
   */
  decide(call: HandlerCall, ok: boolean, value: unknown): boolean;
}

const kCall = Symbol('protoloop.fastify.call');

type Res = ServerResponse & { [kCall]?: HandlerCall };

/** Named listener: the response closed, finished or not. */
function resOnClose(this: Res): void {
  const call = this[kCall];
  if (call === undefined) return;
  this[kCall] = undefined;
  call.responseClosed(!this.writableEnded);
}

/** Named listener: Fastify's own controller aborted (its handler timeout). */
function foreignSignalOnAbort(this: AbortSignal & { [kCall]?: HandlerCall }): void {
  const call = this[kCall];
  if (call !== undefined) call.cancel('the route handler timed out');
}

/** The message of a task cancelled because its client disconnected. */
export const CLIENT_GONE = 'client disconnected';

/** A `then()` subscriber of a {@link HandlerCall}. */
type OnOk = (value: unknown) => unknown;
type OnErr = (error: unknown) => unknown;

/**
 * A request in flight: the task, the response, and the controller behind
 * `request.signal` (it sits in Fastify's `kRequestSignal` slot, see fastify-internals).
 *
 * When the handler's first step returns a promise, the call stands in for it: both the
 * task and Fastify subscribe to the call with `then()`, and the call subscribes to the
 * handler's promise once. When that promise settles, the task's callbacks run first
 * (the task is done), then the adapter decides the answer and hands it to Fastify's
 * callbacks, all in the same reaction: no extra promise and no extra microtask.
 */
export class HandlerCall implements SignalSlot, PromiseLike<unknown> {
  state: HandlerCallState = 'running';
  /** The handler's task (null until created). */
  task: Task<unknown> | null = null;
  /** Set by the probe in fastify-internals. */
  probed = false;
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
  /** The adapter's list of calls in flight (intrusive: no Set per request). */
  prev: HandlerCall | null = null;
  next: HandlerCall | null = null;
  /** Whether the call is in its owner's list. */
  listed = false;
  #owner: CallOwner;
  #controller: AbortController | null = null;
  #abortReason: CancelledError | null = null;
  /** Fastify's raw `'close'` listener when Fastify made the controller itself. */
  #foreignAbort: (() => void) | null = null;
  #taskSettled = false;
  #responseClosed = false;
  // then() subscribers: the first is the task, the second Fastify.
  #subscribers = 0;
  /** Settled before Fastify subscribed: 1 with an answer, 2 with an error. */
  #early: 0 | 1 | 2 = 0;
  #settled = false;
  #taskOk: OnOk | null = null;
  #taskErr: OnErr | null = null;
  #replyOk: OnOk | null = null;
  #replyErr: OnErr | null = null;

  constructor(owner: CallOwner, request: FastifyRequest, reply: FastifyReply) {
    this.#owner = owner;
    this.request = request;
    this.reply = reply;
  }

  /** `request.signal` when the adapter owns Fastify's slot: created on first use. */
  get signal(): AbortSignal {
    this.probed = true;
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#abortReason !== null) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  /**
   * Links `request.signal` and the response's `'close'` to this call. `ownSlot` says
   * whether the adapter may fill Fastify's signal slot. Returns false when the
   * client is already gone.
   */
  attach(ownSlot: boolean): boolean {
    const res = this.reply.raw as Res;
    if (res.destroyed || res.writableEnded) return false;
    res[kCall] = this;
    res.on('close', resOnClose);
    const symbols = fastifySymbols;
    if (!ownSlot || symbols === null) return true;
    const req = this.request as unknown as Record<symbol, any>;
    const existing = req[symbols.kRequestSignal] as AbortController | HandlerCall | undefined;
    if (existing === undefined || existing === this) {
      req[symbols.kRequestSignal] = this;
      return true;
    }
    if (!(existing instanceof AbortController)) return true;
    // Fastify made the controller (handlerTimeout, or a hook read request.signal):
    // keep it, but move its abort from the raw 'close' (premature on bodies) to a
    // real disconnect, and let its handler timeout cancel the task.
    const onAbort = req[symbols.kOnAbort] as (() => void) | null | undefined;
    if (typeof onAbort === 'function') {
      this.request.raw.removeListener('close', onAbort);
      this.#foreignAbort = onAbort;
    }
    const signal = existing.signal as AbortSignal & { [kCall]?: HandlerCall };
    if (!signal.aborted) {
      signal[kCall] = this;
      signal.addEventListener('abort', foreignSignalOnAbort, { once: true });
    }
    return true;
  }

  // ------------------------------------------------- standing in for the handler's promise

  /** Subscribes the task (first call) or Fastify (second call); the return value is not a new promise. */
  then<R1 = unknown, R2 = never>(onOk?: ((value: unknown) => R1 | PromiseLike<R1>) | null, onErr?: ((reason: any) => R2 | PromiseLike<R2>) | null): PromiseLike<R1 | R2> {
    if (this.#subscribers++ === 0) {
      this.#taskOk = onOk ?? null;
      this.#taskErr = onErr ?? null;
    } else if (this.#early === 0) {
      this.#replyOk = onOk ?? null;
      this.#replyErr = onErr ?? null;
    } else {
      // Settled before Fastify subscribed (a thenable that calls back at once): deliver
      // in a microtask, as a promise would.
      const cb = this.#early === 1 ? onOk : onErr;
      const answer = this.outcome;
      this.outcome = undefined;
      this.#early = 0;
      if (typeof cb === 'function') queueMicrotask(() => void cb(answer));
    }
    return this as PromiseLike<R1 | R2>;
  }

  /**
   * The handler's promise settled (`ok`: fulfilled with `value`, else rejected with it):
   * the task's callback runs first, then the owner decides the answer, which goes to
   * Fastify's callback.
   */
  settle(ok: boolean, value: unknown): void {
    if (this.#settled) return; // a thenable that calls back twice
    this.#settled = true;
    const taskCb = ok ? this.#taskOk : this.#taskErr;
    this.#taskOk = this.#taskErr = null;
    if (taskCb !== null) taskCb(value);
    const fine = this.#owner.decide(this, ok, value);
    if (this.#subscribers < 2) {
      // Fastify has not subscribed yet: then() delivers `outcome`.
      this.#early = fine ? 1 : 2;
      return;
    }
    const answer = this.outcome;
    this.outcome = undefined;
    const replyCb = fine ? this.#replyOk : this.#replyErr;
    this.#replyOk = this.#replyErr = null;
    if (replyCb !== null) replyCb(answer);
  }

  /** @internal The answer {@link CallOwner.decide} leaves for Fastify. */
  outcome: unknown = undefined;

  // ---------------------------------------------------------------------------

  /** Cancels the task and aborts `request.signal`, with `msg` as the reason. */
  cancel(msg: string): void {
    if (this.#abortReason === null) {
      this.#abortReason = new CancelledError(msg);
      const c = this.#controller;
      if (c !== null && !c.signal.aborted) c.abort(this.#abortReason);
      const foreign = this.#foreignAbort;
      if (foreign !== null) {
        this.#foreignAbort = null;
        foreign();
      }
    }
    this.task?.cancel(msg);
  }

  /** The handler settled (the task is done or about to be). */
  taskSettled(): void {
    if (this.#taskSettled) return;
    this.#taskSettled = true;
    if (this.state === 'running') this.state = 'answered';
    if (this.#responseClosed) this.#close();
  }

  /** Called by the response's `'close'`; `early` when it closed before being ended. */
  responseClosed(early: boolean): void {
    if (this.#responseClosed) return;
    this.#responseClosed = true;
    if (early && this.state !== 'closed') {
      this.state = 'gone';
      this.cancel(CLIENT_GONE);
      this.#owner.clientGone(this);
    }
    if (this.#taskSettled || this.task === null) this.#close();
  }

  /** Whether {@link cancel} was called (client gone, app closing, handler timeout). */
  cancelRequested(): boolean {
    return this.#abortReason !== null;
  }

  /** Whether the client went away before the response was ended. */
  isGone(): boolean {
    return this.state === 'gone';
  }

  #close(): void {
    if (this.state !== 'gone') this.state = 'closed';
    this.#owner.callClosed(this);
  }

  toString(): string {
    return `<HandlerCall ${this.request.method} ${this.request.url} ${this.state}${this.task ? ` task=${this.task.getName()}` : ''}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}
