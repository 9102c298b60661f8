/**
 * The adapter behind `app.protoloop`: runs each route handler as a loop task and
 * drives the app's shutdown.
 *
 * ```
 * open --app.close() (preClose)--> closing --(in-flight answered, or cancelled at the deadline)-->
 *      --(Fastify's server closed, onClose)--> closed
 * ```
 *
 * The handler's first step runs eagerly, inside Fastify's own call, so a handler that
 * answers without awaiting costs no trip through the loop; the answer of an async
 * handler reaches Fastify straight from the handler's promise (the task has settled
 * just before, since it subscribed first), so no loop iteration sits on the hot path.
 * @internal
 * @module
 */
import type { Server } from 'node:http';
import { inspect } from 'node:util';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CancelledError, LoopClosedError } from '../errors.ts';
import type { Future } from '../loop/future.ts';
import { kCloseHooks, kShutdownHooks, outsideTask, taskStorage } from '../loop/internal.ts';
import { currentTask, type Loop } from '../loop/loop.ts';
import type { Task } from '../loop/task.ts';
import { probeSignalSlot } from './fastify-internals.ts';
import { HandlerCall, type CallOwner } from './handler-call.ts';

/** How long in-flight handlers get to finish once the app closes, in ms (default of `closeTimeout`). */
export const DEFAULT_CLOSE_TIMEOUT = 10_000;
/** After cancelling the handlers still running at the deadline, how long (ms) to wait for them before dropping their connections. */
export const CANCEL_GRACE = 1_000;

/** The adapter's lifecycle. */
export type AdapterState = 'open' | 'closing' | 'closed';

/** Counters of the adapter's work (`app.protoloop.stats()`). */
export interface FastifyAdapterStats {
  /** Requests whose handler ran as a task. */
  requests: number;
  /** Requests being handled or answered now. */
  inFlight: number;
  /** Handlers that threw or rejected (answered by Fastify's error handler). */
  errors: number;
  /** Clients that went away before their answer (their tasks were cancelled). */
  disconnects: number;
  /** Handlers cancelled because the app closed before they finished. */
  cancelledAtClose: number;
}

/** A route handler as Fastify calls it. */
export type RouteHandler = (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) => unknown;

/** @internal A wrapped route. */
interface RouteRecord {
  readonly handler: RouteHandler;
  /** The task name (`GET /users/:id`). */
  readonly name: string;
  /** Task names by method, for routes declared with several methods. */
  readonly names: Readonly<Record<string, string>> | null;
}

const kOriginal = Symbol('protoloop.fastify.originalHandler');

type Wrapped = RouteHandler & { [kOriginal]?: RouteHandler };

/** The part of a route's options the adapter reads and rewrites. */
export interface RouteShape {
  method: string | string[];
  url: string;
  handler: RouteHandler;
  config?: unknown;
}

/** A server the adapter closes with the app (WebSocket routes). */
export interface ClosableServer {
  close(): void;
  closeClients(): void;
  abortClients(): void;
  waitClosed(): Promise<void>;
}

function retrieveException(task: Future<unknown>): void {
  if (!task.cancelled()) task.exception();
}

/**
 * Runs an app's route handlers as tasks of `loop` and closes the app with the loop.
 * Reached as `app.protoloop`.
 */
export class FastifyAdapter implements CallOwner {
  /** The loop the handlers run on. */
  readonly loop: Loop;
  /** How long in-flight handlers get once the app closes, ms. */
  readonly closeTimeout: number;
  #state: AdapterState = 'open';
  #app: FastifyInstance;
  #calls = new Set<HandlerCall>();
  #servers = new Set<ClosableServer>();
  #slotMode: 'unknown' | 'own' | 'public' = 'unknown';
  #emptyWaiter: Future<void> | null = null;
  #drain: Task<void> | null = null;
  #closed: Promise<void>;
  #resolveClosed!: () => void;
  #stats = { requests: 0, errors: 0, disconnects: 0, cancelledAtClose: 0 };
  #shutdownHook = (): Promise<void> => this.close();
  #closeHook = (): void => this.#loopClosed();
  #warnedContext = false;

  constructor(app: FastifyInstance, loop: Loop, closeTimeout: number) {
    this.#app = app;
    this.loop = loop;
    this.closeTimeout = closeTimeout;
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    loop[kShutdownHooks].push(this.#shutdownHook);
    loop[kCloseHooks].push(this.#closeHook);
  }

  /** @internal The app. */
  get app(): FastifyInstance {
    return this.#app;
  }

  /** `'open'`, `'closing'` (draining in-flight handlers) or `'closed'`. */
  get state(): AdapterState {
    return this.#state;
  }

  /** Counters of the adapter's work. */
  stats(): FastifyAdapterStats {
    return { ...this.#stats, inFlight: this.#calls.size };
  }

  /** The tasks of the handlers running now. */
  tasks(): Task<unknown>[] {
    const out: Task<unknown>[] = [];
    for (const call of this.#calls) if (call.task !== null && !call.task.done()) out.push(call.task);
    return out;
  }

  /**
   * Closes the app (`app.close()`): stops accepting, gives in-flight handlers
   * `closeTimeout` ms, cancels the rest, closes WebSocket routes with 1001. Idempotent;
   * resolves when the app is closed.
   */
  async close(): Promise<void> {
    if (this.#state === 'open') await this.#app.close();
    await this.#closed;
  }

  /** Resolves once the app is closed (by `app.close()`, the loop's shutdown, ...). */
  waitClosed(): Promise<void> {
    return this.#closed;
  }

  // ------------------------------------------------------------- routes

  /** @internal Rewrites a route's handler (Fastify's onRoute hook). */
  wrapRoute(route: RouteShape): void {
    const config = route.config as { protoloop?: unknown } | undefined;
    if (config?.protoloop === false) return;
    let handler = route.handler as Wrapped;
    // Fastify clones a GET route's options for its HEAD twin before our hook ran on
    // the GET, but a route added again with an already wrapped handler is unwrapped.
    if (handler[kOriginal] !== undefined) handler = handler[kOriginal];
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const record: RouteRecord = {
      handler,
      name: `${methods.join(',')} ${route.url}`,
      names: methods.length > 1 ? Object.fromEntries(methods.map((m) => [m, `${m} ${route.url}`])) : null,
    };
    const adapter = this;
    const wrapped: Wrapped = function protoloopRouteHandler(this: FastifyInstance, request: FastifyRequest, reply: FastifyReply): unknown {
      return adapter.dispatch(record, this, request, reply);
    };
    wrapped[kOriginal] = handler;
    route.handler = wrapped;
  }

  /** @internal Serves one request: the handler as a task. */
  dispatch(route: RouteRecord, instance: FastifyInstance, request: FastifyRequest, reply: FastifyReply): unknown {
    const loop = this.loop;
    if (loop.isClosed()) {
      reply.code(503);
      throw new LoopClosedError('the event loop of this Fastify app is closed');
    }
    const call = new HandlerCall(this, request, reply);
    if (this.#slotMode === 'unknown') {
      const own = probeSignalSlot(request, call);
      if (own !== null) this.#slotMode = own ? 'own' : 'public';
    }
    if (!call.attach(this.#slotMode === 'own')) {
      // The client left before the handler could start: nothing to run, nothing to answer.
      this.#stats.disconnects++;
      reply.hijack();
      return undefined;
    }
    this.#calls.add(call);
    this.#stats.requests++;
    const name = route.names?.[request.method] ?? route.name;
    const handler = route.handler;
    let started = false;
    let result: unknown;
    const target = (): unknown => {
      started = true;
      call.task = request.task = currentTask();
      result = handler.call(instance, request, reply);
      return result;
    };
    const debug = loop.getDebug();
    const t0 = debug ? performance.now() : 0;
    let task: Task<unknown>;
    try {
      task = loop.createTask(target, { name, eagerStart: true });
    } catch (e) {
      call.taskSettled();
      reply.code(503);
      throw e;
    }
    call.task = task;
    if (debug) this.#checkSlow(task, name, performance.now() - t0);
    if (!started) return this.#late(call, task);
    if (task.done()) {
      call.taskSettled();
      if (task.cancelled()) return this.#failed(call, task.makeCancelledError());
      const exception = task.exception();
      if (exception !== null) {
        this.#stats.errors++;
        throw exception;
      }
      return result;
    }
    const thenable = result as PromiseLike<unknown>;
    // Fastify's callbacks run in the context where then() is called: if the server
    // was started inside a task, do not let that task's context leak into them.
    if (taskStorage.getStore() !== undefined) {
      this.#warnContext();
      return outsideTask(() => thenable.then((v) => this.#answered(call, v), (e: unknown) => this.#failed(call, e)));
    }
    return thenable.then((v) => this.#answered(call, v), (e: unknown) => this.#failed(call, e));
  }

  #answered(call: HandlerCall, value: unknown): unknown {
    call.taskSettled();
    if (call.isGone()) {
      call.reply.hijack();
      return undefined;
    }
    // Cancelled, but finished anyway, after Fastify answered (its handler timeout).
    if (call.cancelRequested() && call.reply.sent) return undefined;
    return value;
  }

  #failed(call: HandlerCall, error: unknown): unknown {
    call.taskSettled();
    const task = call.task!;
    // Fastify gets the error: the task's copy of it is retrieved here, so it is never
    // reported as "Task exception was never retrieved".
    if (task.done()) retrieveException(task);
    else task.addDoneCallback(retrieveException);
    const reply = call.reply;
    if (call.isGone()) {
      // Cancelled because the client left: no answer, and nothing to log.
      reply.hijack();
      return undefined;
    }
    if (error instanceof CancelledError || call.cancelRequested() || task.cancelled()) {
      // Cancelled by the app's shutdown (or Fastify's handler timeout, which answered already).
      if (reply.sent) return undefined;
      reply.code(503);
      throw error;
    }
    this.#stats.errors++;
    throw error;
  }

  /** The loop was not running when the request came: the task starts when it runs. */
  #late(call: HandlerCall, task: Task<unknown>): Promise<unknown> {
    return outsideTask(() => task.then((v) => this.#answered(call, v), (e: unknown) => this.#failed(call, e)));
  }

  #checkSlow(task: Task<unknown>, name: string, ms: number): void {
    if (ms >= this.loop.slowCallbackDuration) this.loop.reportSlow(`route handler '${name}' (${task})`, ms, { task, route: name });
  }

  #warnContext(): void {
    if (this.#warnedContext) return;
    this.#warnedContext = true;
    this.loop.logger.warn(
      `Fastify requests run inside task '${String(taskStorage.getStore()?.getName())}': the server was started from a task. ` +
        `Start it with serveFastify() (or call app.listen() outside tasks) so that requests do not inherit a task's context`,
    );
  }

  // --------------------------------------------------------- HandlerCall

  /** @internal */
  callClosed(call: HandlerCall): void {
    this.#calls.delete(call);
    const waiter = this.#emptyWaiter;
    if (this.#calls.size === 0 && waiter !== null && !waiter.done()) waiter.setResult();
  }

  /** @internal */
  clientGone(_call: HandlerCall): void {
    this.#stats.disconnects++;
  }

  // ---------------------------------------------------------- WebSockets

  /** @internal Closes `server` with the app (at once if the app is closing already). */
  addServer(server: ClosableServer): void {
    if (this.#state !== 'open') {
      server.close();
      server.abortClients();
      return;
    }
    this.#servers.add(server);
  }

  // -------------------------------------------------------------- closing

  /** @internal Fastify's preClose: stop WebSocket routes, start draining. */
  beginClose(): void {
    if (this.#state !== 'open') return;
    this.#state = 'closing';
    for (const call of this.#calls) {
      // Answers still to come close their keep-alive connection behind them.
      const res = call.reply.raw;
      if (!res.headersSent && !res.destroyed) res.setHeader('connection', 'close');
    }
    for (const server of this.#servers) {
      server.close();
      server.closeClients();
    }
    if (this.loop.isRunning()) {
      this.#drain = this.loop.createTask(() => this.#drainCalls(), { name: 'Fastify app close' });
    } else {
      this.#force();
    }
  }

  /** @internal Fastify's onClose: the server is closed. */
  async finishClose(): Promise<void> {
    const drain = this.#drain;
    if (drain !== null && !drain.done() && this.loop.isRunning()) {
      try {
        await outsideTask(() => drain.then(undefined, () => undefined));
      } catch {
        // the drain's own errors were reported
      }
    }
    if (this.loop.isRunning()) await Promise.all([...this.#servers].map((s) => s.waitClosed().then(undefined, () => undefined)));
    this.#finish();
  }

  async #drainCalls(): Promise<void> {
    try {
      if (this.#calls.size > 0) await this.#waitCalls(this.closeTimeout);
      if (this.#calls.size > 0) {
        for (const call of [...this.#calls]) {
          this.#stats.cancelledAtClose++;
          call.cancel('the Fastify app is closing');
        }
        await this.#waitCalls(CANCEL_GRACE);
      }
    } finally {
      const server = this.#app.server as Server;
      server.closeIdleConnections?.();
      if (this.#calls.size > 0) server.closeAllConnections?.();
    }
  }

  async #waitCalls(ms: number): Promise<void> {
    const waiter = this.loop.createFuture<void>('in-flight Fastify requests');
    this.#emptyWaiter = waiter;
    const timer = this.loop.callLater(ms, settleWaiter, waiter);
    try {
      await waiter;
    } finally {
      timer.cancel();
      this.#emptyWaiter = null;
    }
  }

  /** No loop to drain with: cancel what runs and drop the connections. */
  #force(): void {
    for (const call of [...this.#calls]) call.cancel('the Fastify app is closing');
    for (const server of this.#servers) server.abortClients();
    const server = this.#app.server as Server;
    server.closeAllConnections?.();
  }

  /** The loop closed (kCloseHooks) with the app still open. */
  #loopClosed(): void {
    if (this.#state === 'closed') return;
    this.#removeHooks();
    if (this.#state === 'open') {
      this.#app.close().then(undefined, (exception: unknown) => {
        process.stderr.write(`protoloop: closing the Fastify app failed: ${inspect(exception)}\n`);
      });
    } else {
      this.#force();
    }
  }

  #finish(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#removeHooks();
    this.#resolveClosed();
  }

  #removeHooks(): void {
    const shutdown = this.loop[kShutdownHooks];
    const i = shutdown.indexOf(this.#shutdownHook);
    if (i >= 0) shutdown.splice(i, 1);
    const close = this.loop[kCloseHooks];
    const j = close.indexOf(this.#closeHook);
    if (j >= 0) close.splice(j, 1);
  }

  toString(): string {
    return `<FastifyAdapter ${this.#state} inFlight=${this.#calls.size} requests=${this.#stats.requests} closeTimeout=${this.closeTimeout}ms>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

function settleWaiter(waiter: Future<void>): void {
  if (!waiter.done()) waiter.setResult();
}
