/**
 * The thread bridge, main side: what serves the endpoints `loop.bridgeEndpoint()`
 * hands out, with the handlers of `loop.exposeThreadsafe(name, fn)` (see bridge.ts for
 * the worker side and the wire protocol). The Loop's methods (src/loop/loop.ts) keep
 * the handler table and create the channel synchronously; they load this module on
 * first use and attach the loop's end of each channel with {@link attachEndpoint}
 * (a worker's messages wait in the port until then).
 *
 * Each endpoint is one MessageChannel: the loop keeps one port, the worker gets the
 * other. A callSoon message runs the handler as a loop callback; a call message runs
 * it as a task named `bridge:<name>#<id>` (started at once, see onMessage) and answers
 * with its result. Closing
 * the loop closes every endpoint, which rejects whatever the workers still wait for
 * with `ERR_PROTOLOOP_BRIDGE_CLOSED`.
 * @module
 */
import type { MessagePort } from 'node:worker_threads';
import { BridgeError } from '../errors.ts';
import { applyArgs } from './apply.ts';
import { findUncloneable } from './clone-check.ts';
import { kCloseHooks, kIoEvent, kThreadsafeHandlers } from '../loop/symbols.ts';
import type { Loop } from '../loop/loop.ts';
import { serializeError } from './remote-error.ts';
import type { Future } from '../loop/future.ts';
import type { Task } from '../loop/task.ts';

/** A handler the main loop exposes to workers: called with the worker's arguments; may return a promise (or a Coroutine). */
export type ThreadsafeHandler = (...args: any[]) => unknown;

type EndpointState = 'open' | 'closed';

/** @internal The main side of one endpoint. */
class BridgeEndpoint {
  state: EndpointState = 'open';
  readonly port: MessagePort;
  readonly server: BridgeServer;
  readonly calls = new Map<number, Task<unknown>>();
  /** Calls the worker cancelled: their task's end must not be answered. */
  readonly cancelledByWorker = new Set<number>();
  /** `'soon'` handlers received but not run yet: while there are some, calls start lazily, behind them. */
  soonPending = 0;
  /** Handler names by the number the worker uses for them (order of first use). */
  readonly names: string[] = [];

  constructor(server: BridgeServer, port: MessagePort) {
    this.server = server;
    this.port = port;
    port.on('message', endpointOnMessage.bind(this));
    port.on('close', endpointOnClose.bind(this));
    // While the loop runs it keeps the process alive; the port must not on its own.
    port.unref();
  }

  send(msg: unknown[]): void {
    if (this.state !== 'open') return;
    try {
      this.port.postMessage(msg);
    } catch {
      // Answers other than results are strings and plain records: nothing else to send.
    }
  }

  /** Answers call `id` with a handler's result. The real clone is the check; on failure the walk names the culprit. */
  sendResult(id: number, value: unknown, task: Task<unknown>): void {
    if (this.state !== 'open') return;
    try {
      this.port.postMessage([id, value]);
    } catch (e) {
      const bad = findUncloneable(value, 'the result', null) ?? (e instanceof Error ? e.message : String(e));
      this.port.postMessage([id, 'err', serializeError(new Error(`the result of the bridge handler "${task.getName()}" cannot be sent to the worker: ${bad}`), 'uncloneable')]);
    }
  }

  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.server.endpoints.delete(this);
    this.port.close();
  }
}

/** @internal A loop's handlers and endpoints. */
class BridgeServer {
  readonly loop: Loop;
  readonly endpoints = new Set<BridgeEndpoint>();

  /** The loop's table (`exposeThreadsafe()` fills it, even before this module loads). */
  get handlers(): Map<string, ThreadsafeHandler> {
    return this.loop[kThreadsafeHandlers];
  }

  constructor(loop: Loop) {
    this.loop = loop;
    loop[kCloseHooks].add(() => {
      for (const ep of [...this.endpoints]) ep.close();
    });
  }

  onMessage(ep: BridgeEndpoint, msg: unknown): void {
    if (!Array.isArray(msg) || msg.length === 0 || ep.state !== 'open') return;
    const loop = this.loop;
    const op = msg[msg.length - 1] as number;
    if (op < 0) {
      // [-id]: the worker cancelled call id.
      const id = -op;
      const task = ep.calls.get(id);
      if (task === undefined) return;
      ep.cancelledByWorker.add(id);
      task.cancel('cancelled by the worker that called it');
      return;
    }
    // [...args, handler, op]: the arguments are all but the last two (left in place: no length change).
    const ref = msg[msg.length - 2] as string | number;
    let name: string;
    if (typeof ref === 'string') {
      name = ref;
      ep.names.push(ref);
    } else {
      name = ep.names[ref]!;
    }
    const args = msg as unknown[];
    const argc = args.length - 2;
    if (op === 0) {
      if (loop.isClosed()) return;
      ep.soonPending++;
      loop.callSoon(runSoonHandler, this, ep, name, args, argc);
      return;
    }
    const id = op;
    const fn = this.handlers.get(name);
    if (fn === undefined) {
      ep.send([id, 'unknown', name]);
      return;
    }
    if (loop.isClosed()) {
      ep.close();
      return;
    }
    // Start the handler's task now (it runs to its first await here, in this event)
    // rather than one loop iteration later; a handler that finishes at once is
    // answered at once. Not behind 'soon' handlers still waiting (they came first),
    // and not in debug mode (slow steps are timed in loop iterations).
    const eager = ep.soonPending === 0 && loop.isRunning() && !loop.getDebug();
    const task = loop.createTask(() => applyArgs(fn, args, argc), eager ? { name: `bridge:${name}#${id}`, eagerStart: true } : { name: `bridge:${name}#${id}` });
    if (task.done()) {
      answerCall(ep, id, task);
    } else {
      ep.calls.set(id, task);
      task.addDoneCallback(answerCall.bind(null, ep, id));
    }
  }
}

function runSoonHandler(server: BridgeServer, ep: BridgeEndpoint, name: string, args: unknown[], argc: number): void {
  ep.soonPending--;
  const fn = server.handlers.get(name);
  const loop = server.loop;
  if (fn === undefined) {
    loop.callExceptionHandler({
      message: `callSoonThreadsafe("${name}") from a worker: no thread-bridge handler by that name`,
      exception: new BridgeError('ERR_PROTOLOOP_BRIDGE_UNKNOWN_HANDLER', `the main loop has no thread-bridge handler named "${name}": expose it with loop.exposeThreadsafe("${name}", fn)`),
    });
    return;
  }
  // Handle runs the callback with the loop's error routing; a promise it returns is watched here.
  const result = applyArgs(fn, args, argc);
  if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
    loop.createTask(() => result as PromiseLike<unknown>, { name: `bridge:${name}` });
  }
}

function answerCall(ep: BridgeEndpoint, id: number, fut: Future<unknown>): void {
  const task = fut as Task<unknown>;
  ep.calls.delete(id);
  if (ep.cancelledByWorker.delete(id)) {
    if (!task.cancelled()) task.exception(); // the worker gave up: retrieve, do not report
    return;
  }
  if (task.cancelled()) {
    ep.send([id, 'cancelled', null]);
    return;
  }
  const exception = task.exception();
  if (exception !== null) {
    ep.send([id, 'err', serializeError(exception)]);
    return;
  }
  ep.sendResult(id, task.result(), task);
}

function endpointOnMessage(this: BridgeEndpoint, msg: unknown): void {
  // A worker's message is an I/O event of the loop's: a wake-up it causes runs from here.
  this.server.loop[kIoEvent](serverOnMessage, this.server, this, msg);
}

function serverOnMessage(server: BridgeServer, ep: BridgeEndpoint, msg: unknown): void {
  server.onMessage(ep, msg);
}

function endpointOnClose(this: BridgeEndpoint): void {
  // The worker went away: cancel what it was waiting for.
  this.close();
  for (const task of this.calls.values()) task.cancel('the worker that called it closed its bridge');
}

const servers = new WeakMap<Loop, BridgeServer>();

function serverOf(loop: Loop): BridgeServer {
  let s = servers.get(loop);
  if (s === undefined) {
    s = new BridgeServer(loop);
    servers.set(loop, s);
  }
  return s;
}

/** Serves `port`, the loop's end of a channel made by `loop.bridgeEndpoint()`; closes it if the loop closed meanwhile. */
export function attachEndpoint(loop: Loop, port: MessagePort): void {
  if (loop.isClosed()) {
    port.close();
    return;
  }
  const server = serverOf(loop);
  server.endpoints.add(new BridgeEndpoint(server, port));
}
