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
 * answers without awaiting costs no trip through the loop. For an async handler, the
 * {@link HandlerCall} stands in for its promise: the task and Fastify subscribe to the
 * call, the call to the promise, and one reaction settles the task and hands the
 * answer to Fastify. No loop iteration, and no extra promise, sits on the hot path.
 * @module
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { inspect } from 'node:util';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CancelledError, InvalidStateError, LoopClosedError } from '../errors.ts';
import type { Future } from '../loop/future.ts';
import { outsideTask, taskStorage } from '../loop/internal.ts';
import { kCloseHooks, kShutdownHooks } from '../loop/symbols.ts';
import { currentTask, type Loop } from '../loop/loop.ts';
import { onRunnerDrain } from '../loop/runner.ts';
import type { Task, TaskOptions } from '../loop/task.ts';
import { probeSignalSlot } from './fastify-internals.ts';
import { fastifyHandlerChannel, timeCallbacks, type FastifyHandlerMessage } from '../loop/channels.ts';
import { HandlerCall } from './handler-call.ts';

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
  /** The route's URL pattern. */
  readonly url: string;
  /** The task options (the name, `GET /users/:id`, and eager start), made once per route. */
  readonly options: TaskOptions;
  /** The same by method, for routes declared with several methods (`GET /x`, `POST /x`). */
  readonly optionsByMethod: Readonly<Record<string, TaskOptions>> | null;
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
 * Reached as `app.protoloop`. It is the `CallOwner` of its handler calls structurally,
 * not in an implements clause: those methods are internal, stripped from the .d.ts.
 */
export class FastifyAdapter {
  /** The loop the handlers run on. */
  readonly loop: Loop;
  /** How long in-flight handlers get once the app closes, ms. */
  readonly closeTimeout: number;
  #state: AdapterState = 'open';
  #app: FastifyInstance;
  // The calls in flight: an intrusive list (HandlerCall.prev/next), cheaper than a Set.
  #head: HandlerCall | null = null;
  #inFlight = 0;
  #servers = new Set<ClosableServer>();
  #slotMode: 'unknown' | 'own' | 'public' = 'unknown';
  #emptyWaiter: Future<void> | null = null;
  #drain: Task<void> | null = null;
  #closed: Promise<void>;
  #resolveClosed!: () => void;
  /** Resolves when the loop closes: what the close waits for on the loop is then over. */
  #loopGone: Promise<void>;
  #resolveLoopGone!: () => void;
  #stats = { requests: 0, errors: 0, disconnects: 0, cancelledAtClose: 0 };
  /** Disposers of the loop hooks added by the constructor. */
  #removeShutdownHook: () => void;
  #removeCloseHook: () => void;
  #removeDrainHook: () => void;
  #warnedContext = false;
  /** The server's connections (see {@link closeIdleConnections}). */
  readonly #sockets = new Set<Socket>();

  constructor(app: FastifyInstance, loop: Loop, closeTimeout: number) {
    this.#app = app;
    this.loop = loop;
    this.closeTimeout = closeTimeout;
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    this.#loopGone = new Promise((resolve) => {
      this.#resolveLoopGone = resolve;
    });
    // run() closes the app before it cancels the tasks left: in-flight handlers are
    // tasks, and they must get to answer (within closeTimeout), not be cut.
    this.#removeDrainHook = onRunnerDrain(loop, () => this.close());
    this.#removeShutdownHook = loop[kShutdownHooks].add(() => this.close());
    this.#removeCloseHook = loop[kCloseHooks].add(() => this.#loopClosed());
    const sockets = this.#sockets;
    (app.server as Server | undefined)?.on?.('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
  }

  /**
   * @internal Closes the keep-alive connections between requests (Node's
   * `closeIdleConnections()`), and the connections that never sent a byte: Node 22
   * counts those as waiting for a request's headers, so a client that opened one just
   * before the close (undici reconnects after an aborted request) held the close up
   * until the client let it go.
   */
  closeIdleConnections(): void {
    (this.#app.server as Server).closeIdleConnections?.();
    for (const socket of this.#sockets) if (socket.bytesRead === 0 && !socket.destroyed) socket.destroy();
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
    return { ...this.#stats, inFlight: this.#inFlight };
  }

  /** The tasks of the handlers running now. */
  tasks(): Task<unknown>[] {
    const out: Task<unknown>[] = [];
    for (let call = this.#head; call !== null; call = call.next) if (call.task !== null && !call.task.done()) out.push(call.task);
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
      url: route.url,
      options: { name: `${methods.join(',')} ${route.url}`, eagerStart: true },
      optionsByMethod: methods.length > 1 ? Object.fromEntries(methods.map((m) => [m, { name: `${m} ${route.url}`, eagerStart: true }])) : null,
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
    this.#link(call);
    this.#stats.requests++;
    const options = route.optionsByMethod === null ? route.options : (route.optionsByMethod[request.method] ?? route.options);
    const debug = loop.getDebug() || timeCallbacks(); // timed for debug mode, a slow-callback subscriber or NODE_DEBUG
    const t0 = debug ? performance.now() : 0;
    // The common case: the loop runs and makes its own tasks, so the eager first step
    // runs inside createTask(). The route's one target function then reads this request
    // from `dispatching`: no closure per request. Otherwise (a task factory, or the
    // loop not running now) the step may run later, and the request gets a closure.
    const inline = loop.isRunning() && loop.getTaskFactory() === null;
    // One record serves every request, but a handler whose first step serves another
    // request synchronously (re-entrance) gets a fresh one.
    const shared = inline && !sharedBusy;
    const d: Dispatch = shared ? sharedDispatch : { route, instance, call, started: false, eager: true, pending: null, result: undefined };
    if (shared) {
      sharedBusy = true;
      d.route = route;
      d.instance = instance;
      d.call = call;
      d.started = false;
      d.eager = true;
    }
    let task: Task<unknown>;
    let started: boolean;
    let pending: PromiseLike<unknown> | null;
    let result: unknown;
    try {
      if (inline) {
        dispatching = d;
        task = loop.createTask(routeTarget, options);
      } else {
        task = loop.createTask(() => runTarget(d), options);
      }
    } catch (e) {
      call.taskSettled();
      reply.code(503);
      throw e;
    } finally {
      d.eager = false;
      if (inline) dispatching = null;
      started = d.started;
      pending = d.pending;
      result = d.result;
      if (shared) {
        // The shared record outlives the request: drop its references.
        d.route = d.instance = d.call = null!;
        d.pending = null;
        d.result = undefined;
        sharedBusy = false;
      }
    }
    call.task = task;
    if (debug) this.#checkSlow(task, options.name!, performance.now() - t0);
    if (!started) {
      if (inline) throw new InvalidStateError('protoloop: the route handler did not start inside createTask()');
      return this.#late(call, task);
    }
    if (pending !== null) {
      const thenable: PromiseLike<unknown> = pending;
      // Fastify's callbacks run in the context where then() is called: if the server
      // was started inside a task, do not let that task's context leak into them.
      if (taskStorage.getStore() !== undefined) {
        this.#warnContext();
        outsideTask(() => thenable.then((v) => call.settle(true, v), (e: unknown) => call.settle(false, e)));
      } else {
        thenable.then((v) => call.settle(true, v), (e: unknown) => call.settle(false, e));
      }
      return call;
    }
    if (!task.done()) return this.#late(call, task);
    // The handler returned a value, or threw, without awaiting.
    if (task.cancelled()) return this.#viaPromise(call, false, task.makeCancelledError());
    const exception = task.exception();
    if (exception !== null) {
      call.taskSettled();
      this.#stats.errors++;
      throw exception;
    }
    call.taskSettled();
    return result;
  }

  /** @internal The handler's promise settled: what Fastify gets (`call.outcome`), and whether it is an answer (true) or an error. */
  decide(call: HandlerCall, ok: boolean, value: unknown): boolean {
    call.taskSettled();
    const reply = call.reply;
    if (ok) {
      if (call.isGone()) {
        reply.hijack();
        call.outcome = undefined;
        return true;
      }
      // Cancelled, but finished anyway, after Fastify answered (its handler timeout).
      call.outcome = call.cancelRequested() && reply.sent ? undefined : value;
      return true;
    }
    const task = call.task!;
    // Fastify gets the error: the task's copy of it is retrieved here, so it is never
    // reported as "Task exception was never retrieved".
    if (task.done()) retrieveException(task);
    else task.addDoneCallback(retrieveException);
    call.outcome = undefined;
    if (call.isGone()) {
      // Cancelled because the client left: no answer, and nothing to log.
      reply.hijack();
      return true;
    }
    if (value instanceof CancelledError || call.cancelRequested() || task.cancelled()) {
      // Cancelled by the app's shutdown (or Fastify's handler timeout, which answered already).
      if (reply.sent) return true;
      reply.code(503);
      call.outcome = value;
      return false;
    }
    this.#stats.errors++;
    call.outcome = value;
    return false;
  }

  /** {@link decide} as a promise reaction: returns the answer or throws the error. */
  #viaPromise(call: HandlerCall, ok: boolean, value: unknown): unknown {
    const fine = this.decide(call, ok, value);
    const out = call.outcome;
    call.outcome = undefined;
    if (fine) return out;
    throw out;
  }

  /** The loop was not running when the request came: the task starts when it runs. */
  #late(call: HandlerCall, task: Task<unknown>): Promise<unknown> {
    return outsideTask(() => task.then((v) => this.#viaPromise(call, true, v), (e: unknown) => this.#viaPromise(call, false, e)));
  }

  #checkSlow(task: Task<unknown>, name: string, ms: number): void {
    if (ms >= this.loop.slowCallbackDuration) this.loop.reportSlow(`route handler '${name}' (${task})`, ms, { task, route: name });
  }

  #warnContext(): void {
    if (this.#warnedContext) return;
    this.#warnedContext = true;
    this.loop.logger.warn(
      `Fastify requests run inside task '${String(taskStorage.getStore()?.task.getName())}': the server was started from a task. ` +
        `Start it with serveFastify() (or call app.listen() outside tasks) so that requests do not inherit a task's context`,
    );
  }

  // --------------------------------------------------------- HandlerCall

  #link(call: HandlerCall): void {
    const head = this.#head;
    call.next = head;
    if (head !== null) head.prev = call;
    this.#head = call;
    call.listed = true;
    this.#inFlight++;
  }

  /** The calls in flight, as an array (for loops that may unlink). */
  #callList(): HandlerCall[] {
    const out: HandlerCall[] = [];
    for (let call = this.#head; call !== null; call = call.next) out.push(call);
    return out;
  }

  /** @internal */
  callClosed(call: HandlerCall): void {
    if (!call.listed) return;
    call.listed = false;
    const { prev, next } = call;
    if (prev !== null) prev.next = next;
    else this.#head = next;
    if (next !== null) next.prev = prev;
    call.prev = call.next = null;
    this.#inFlight--;
    const waiter = this.#emptyWaiter;
    if (this.#inFlight === 0 && waiter !== null && !waiter.done()) waiter.setResult();
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
    for (let call = this.#head; call !== null; call = call.next) {
      // Answers still to come close their keep-alive connection behind them.
      const res = call.reply.raw;
      if (!res.headersSent && !res.destroyed) res.setHeader('connection', 'close');
    }
    for (const server of this.#servers) {
      server.close();
      server.closeClients();
    }
    // A loop that is not running now still runs again (run() drains its servers after
    // main returned: that is where `server.close(); return` lands): the drain waits for
    // it. Only a closed loop has nothing to drain with.
    if (!this.loop.isClosed()) {
      this.#drain = this.loop.createTask(() => this.#drainCalls(), { name: 'Fastify app close' });
    } else {
      this.#force();
    }
  }

  /** @internal Fastify's onClose: the server is closed. */
  async finishClose(): Promise<void> {
    const drain = this.#drain;
    if (drain !== null && !drain.done() && !this.loop.isClosed()) {
      // The drain ends when the loop runs it; a loop closed meanwhile ends the wait too.
      await Promise.race([outsideTask(() => drain.then(undefined, () => undefined)), this.#loopGone]);
    }
    if (!this.loop.isClosed()) {
      const servers = Promise.all([...this.#servers].map((s) => s.waitClosed().then(undefined, () => undefined)));
      await Promise.race([servers, this.#loopGone]);
    }
    this.#finish();
  }

  async #drainCalls(): Promise<void> {
    try {
      if (this.#inFlight > 0) await this.#waitCalls(this.closeTimeout);
      if (this.#inFlight > 0) {
        for (const call of this.#callList()) {
          this.#stats.cancelledAtClose++;
          call.cancel('the Fastify app is closing');
        }
        await this.#waitCalls(CANCEL_GRACE);
      }
    } finally {
      this.closeIdleConnections();
      if (this.#inFlight > 0) (this.#app.server as Server).closeAllConnections?.();
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
    for (const call of this.#callList()) call.cancel('the Fastify app is closing');
    for (const server of this.#servers) server.abortClients();
    const server = this.#app.server as Server;
    server.closeAllConnections?.();
  }

  /** The loop closed (kCloseHooks) with the app still open. */
  #loopClosed(): void {
    this.#resolveLoopGone();
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
    this.#removeDrainHook();
    this.#removeShutdownHook();
    this.#removeCloseHook();
  }

  toString(): string {
    return `<FastifyAdapter ${this.#state} inFlight=${this.#inFlight} requests=${this.#stats.requests} closeTimeout=${this.closeTimeout}ms>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * A route handler seen by the `protoloop:fastify:handler` TracingChannel: `start` (its
 * stores bound around the handler, inside its task) and `end` around the call, `error`
 * if it throws; then `error` (a rejection), `asyncStart` and `asyncEnd` once its
 * answer is known (at once for a handler that returns a plain value).
 */
function tracedHandler(route: RouteRecord, handler: RouteHandler, instance: FastifyInstance, request: FastifyRequest, reply: FastifyReply): unknown {
  const ctx: FastifyHandlerMessage = { route: route.url, method: request.method, url: request.url, request, reply, task: currentTask() };
  const ended = (): void => {
    fastifyHandlerChannel.asyncStart.publish(ctx);
    fastifyHandlerChannel.asyncEnd.publish(ctx);
  };
  const result: unknown = fastifyHandlerChannel.traceSync(handler as (...a: unknown[]) => unknown, ctx, instance, request, reply);
  if (isThenable(result)) {
    // Outside the task: a then() on a protoloop future from inside it would count as the task's await.
    outsideTask(() =>
      result.then(
        (value) => {
          ctx.result = value;
          ended();
        },
        (error: unknown) => {
          ctx.error = error;
          fastifyHandlerChannel.error.publish(ctx);
          ended();
        },
      ),
    );
  } else {
    ctx.result = result;
    ended();
  }
  return result;
}

/** One request's handler call, as the task's target sees it. */
interface Dispatch {
  route: RouteRecord;
  instance: FastifyInstance;
  call: HandlerCall;
  /** The target ran. */
  started: boolean;
  /** Still inside createTask(): a promise the handler returns is handed over, not awaited by the task. */
  eager: boolean;
  /** The handler's promise, when its first step returned one during the eager step. */
  pending: PromiseLike<unknown> | null;
  /** What the handler returned. */
  result: unknown;
}

/** The request whose task createTask() is starting now (see dispatch). */
let dispatching: Dispatch | null = null;
/** The record `dispatching` points to on the inline path: one for all requests. */
const sharedDispatch: Dispatch = { route: null!, instance: null!, call: null!, started: false, eager: false, pending: null, result: undefined };
/** Whether a dispatch is using {@link sharedDispatch} now. */
let sharedBusy = false;

/** The task target of every route on the inline path: runs the request createTask() is starting. */
function routeTarget(): unknown {
  const d = dispatching;
  if (d === null) throw new InvalidStateError('protoloop: a route handler task started outside its request');
  dispatching = null;
  return runTarget(d);
}

/** Runs the handler inside its task. */
function runTarget(d: Dispatch): unknown {
  d.started = true;
  const call = d.call;
  const request = call.request;
  const reply = call.reply;
  const route = d.route;
  call.task = request.task = currentTask();
  const result = fastifyHandlerChannel.hasSubscribers ? tracedHandler(route, route.handler, d.instance, request, reply) : route.handler.call(d.instance, request, reply);
  d.result = result;
  if (d.eager && isThenable(result)) {
    // The task subscribes to the call; the dispatch subscribes to the handler's promise.
    d.pending = result;
    return call;
  }
  return result;
}

function isThenable(x: unknown): x is PromiseLike<unknown> {
  if (x instanceof Promise) return true;
  return x !== null && (typeof x === 'object' || typeof x === 'function') && typeof (x as { then?: unknown }).then === 'function';
}

function settleWaiter(waiter: Future<void>): void {
  if (!waiter.done()) waiter.setResult();
}
