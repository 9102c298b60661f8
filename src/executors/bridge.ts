/**
 * The thread bridge, worker side: how a worker thread reaches the main loop.
 *
 * The main loop exposes named handlers (`loop.exposeThreadsafe(name, fn)`) and hands
 * out endpoints (`loop.bridgeEndpoint()`, a MessagePort to pass to the worker in
 * `workerData` with a transfer list). In the worker, {@link connectBridge} wraps the
 * port; {@link callSoonThreadsafe} and {@link runCoroutineThreadsafe} call handlers.
 *
 * Wire protocol (one MessagePort pair per endpoint). Messages are flat arrays, small
 * to clone: the arguments themselves, then the handler, then the operation last. A
 * handler is named by its string the first time this endpoint uses it, and by its
 * number (order of first use, 0, 1, ...) after that.
 *
 * ```
 * worker -> main   [...args, handler, 0]          run the handler as a loop callback
 *                  [...args, handler, id]         (id >= 1) run the handler as a task, answer id
 *                  [-id]                          cancel the task of call id
 * main -> worker   [id, value]                    the call's result
 *                  [id, 'err', SerializedError] | [id, 'unknown', name] | [id, 'cancelled', null]
 * ```
 *
 * The port closing (the main loop closed, or the endpoint was closed) rejects every
 * call still waiting with {@link BridgeError} `ERR_PROTOLOOP_BRIDGE_CLOSED`.
 * @module
 */
import { inspect } from 'node:util';
import { MessagePort } from 'node:worker_threads';
import { BridgeError, InvalidArgumentError, NotCloneableError } from '../errors.ts';
import { allPrimitive, findUncloneable } from './clone-check.ts';
import { taskStorage } from '../loop/internal.ts';
import { isSerializedError, rebuildError } from './remote-error.ts';
import { unwrapTransfers, type TransferItem } from './transfer.ts';

/** What names a bridge call: the handler's name, or the name with options. */
export type BridgeCallTarget = string | { name: string; signal?: AbortSignal };

interface PendingCall {
  readonly name: string;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
  readonly signal: AbortSignal | null;
  readonly onAbort: (() => void) | null;
}

type ClientState = 'open' | 'closed';

/**
 * A worker's connection to the main loop's handlers. Create it with
 * {@link connectBridge}. While calls are waiting the port keeps the worker alive;
 * otherwise it does not, so a worker that is done exits.
 */
export class BridgeClient {
  #port: MessagePort;
  #state: ClientState = 'open';
  #nextId = 0;
  #pending = new Map<number, PendingCall>();
  /** Handler names already sent on this port, with the number that stands for them now. */
  #names = new Map<string, number>();

  /** @internal Use {@link connectBridge}. */
  constructor(port: MessagePort) {
    this.#port = port;
    port.on('message', clientOnMessage.bind(this));
    port.on('close', clientOnClose.bind(this));
    port.unref();
  }

  /** `'open'`, or `'closed'` once the main side went away or {@link close} was called. */
  get state(): ClientState {
    return this.#state;
  }

  /**
   * Schedules the main loop's handler `name` with `args`, as a loop callback
   * (asyncio's `call_soon_threadsafe`). Returns at once; the handler's errors, and an
   * unknown name, go to the main loop's exception handler. Throws
   * {@link BridgeError} `ERR_PROTOLOOP_BRIDGE_CLOSED` when the bridge is closed and
   * `NotCloneableError` when an argument cannot be sent.
   */
  callSoonThreadsafe(name: string, ...args: unknown[]): void {
    this.#checkOpen(name);
    const transferList: TransferItem[] = [];
    this.#post(this.#prepare(args, transferList), name, 0, transferList);
  }

  /**
   * Runs the main loop's handler `name` with `args` as a task on the main loop and
   * returns a promise of its result (asyncio's `run_coroutine_threadsafe`). Errors
   * come back as for executors (built-in classes as themselves, others as
   * `RemoteError`). `target` may be `{ name, signal }`: aborting the signal cancels the
   * handler's task on the main side and rejects with the signal's reason. Inside a
   * task of a loop running in this worker, that task's cancellation does the same.
   *
   * Rejects with {@link BridgeError}: `ERR_PROTOLOOP_BRIDGE_UNKNOWN_HANDLER` (no
   * handler by that name), `ERR_PROTOLOOP_BRIDGE_CLOSED` (the main loop closed, or
   * closes before answering). Throws `NotCloneableError` for an argument that cannot
   * be sent.
   */
  runCoroutineThreadsafe<R = unknown>(target: BridgeCallTarget, ...args: unknown[]): Promise<R> {
    let name: string;
    let signal: AbortSignal | null = null;
    if (typeof target === 'string') {
      name = target;
    } else if (target !== null && typeof target === 'object' && typeof target.name === 'string') {
      name = target.name;
      if (target.signal !== undefined) {
        if (!(target.signal instanceof AbortSignal)) throw new InvalidArgumentError('runCoroutineThreadsafe(): signal must be an AbortSignal');
        signal = target.signal;
      }
    } else {
      throw new InvalidArgumentError('runCoroutineThreadsafe() needs a handler name, or { name, signal }');
    }
    signal ??= taskStorage.getStore()?.signal ?? null;
    if (this.#state === 'closed') return Promise.reject(closedError(name));
    const transferList: TransferItem[] = [];
    const plain = this.#prepare(args, transferList);
    if (signal?.aborted === true) return Promise.reject(signal.reason as Error);
    const id = ++this.#nextId;
    // Sent before anything is registered: a value the clone refuses throws here, synchronously.
    this.#post(plain, name, id, transferList);
    return new Promise<R>((resolve, reject) => {
      const onAbort = signal !== null ? this.#cancel.bind(this, id) : null;
      this.#pending.set(id, { name, resolve: resolve as (v: unknown) => void, reject, signal, onAbort });
      if (signal !== null) signal.addEventListener('abort', onAbort!, { once: true });
      if (this.#pending.size === 1) this.#port.ref();
    });
  }

  /** Closes this side of the bridge: waiting calls reject with `ERR_PROTOLOOP_BRIDGE_CLOSED`. Idempotent. */
  close(): void {
    if (this.#state === 'closed') return;
    this.#port.close();
    this.onClose();
  }

  #checkOpen(name: string): void {
    if (this.#state === 'closed') throw closedError(name);
  }

  /**
   * Unwraps `transfer()` markers of `args` (a rest-parameter array, so ours) into
   * `transferList`. The result is ours too: the message is built on it.
   */
  #prepare(args: unknown[], transferList: TransferItem[]): unknown[] {
    return allPrimitive(args) ? args : unwrapTransfers(args, transferList);
  }

  /**
   * Sends `args` (an array of ours: the message is built on it) to handler `name` with
   * operation `op` (0: callSoon, else the call id). The real structured clone is the
   * check (no walk before every call); when it refuses, the walk names the culprit in
   * a {@link NotCloneableError}.
   */
  #post(args: unknown[], name: string, op: number, transferList: TransferItem[]): void {
    const known = this.#names.get(name);
    args.push(known ?? name, op);
    try {
      this.#port.postMessage(args, transferList);
    } catch (e) {
      args.length -= 2;
      const bad = findUncloneable(args, 'args', new Set<unknown>(transferList)) ?? (e instanceof Error ? e.message : String(e));
      throw new NotCloneableError(`cannot send the arguments of the bridge call "${name}" to the main thread: ${bad}`, { cause: e });
    }
    if (known === undefined) this.#names.set(name, this.#names.size);
  }

  #cancel(id: number): void {
    const call = this.#take(id);
    if (call === undefined) return;
    call.reject(call.signal!.reason);
    if (this.#state === 'open') this.#port.postMessage([-id]);
  }

  #take(id: number): PendingCall | undefined {
    const call = this.#pending.get(id);
    if (call === undefined) return undefined;
    this.#pending.delete(id);
    if (call.signal !== null && call.onAbort !== null) call.signal.removeEventListener('abort', call.onAbort);
    if (this.#pending.size === 0 && this.#state === 'open') this.#port.unref();
    return call;
  }

  /** @internal */
  onMessage(msg: unknown): void {
    if (!Array.isArray(msg)) return;
    const call = this.#take(msg[0] as number);
    if (call === undefined) return;
    if (msg.length === 2) {
      call.resolve(msg[1]);
      return;
    }
    switch (msg[1]) {
      case 'err':
        call.reject(isSerializedError(msg[2]) ? rebuildError(msg[2], `main thread, bridge handler "${call.name}"`) : msg[2]);
        break;
      case 'unknown':
        call.reject(new BridgeError('ERR_PROTOLOOP_BRIDGE_UNKNOWN_HANDLER', `the main loop has no thread-bridge handler named "${call.name}": expose it with loop.exposeThreadsafe("${call.name}", fn)`));
        break;
      case 'cancelled':
        call.reject(new BridgeError('ERR_PROTOLOOP_BRIDGE_CLOSED', `the main loop cancelled the handler "${call.name}" before it answered (is it shutting down?)`));
        break;
      default:
        call.reject(new BridgeError('ERR_PROTOLOOP_BRIDGE_CLOSED', `unexpected bridge message ${inspect(msg[1])}`));
    }
  }

  /** @internal The port closed: fail every waiting call. */
  onClose(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    const calls = [...this.#pending.keys()];
    for (const id of calls) {
      const call = this.#take(id)!;
      call.reject(closedError(call.name, true));
    }
  }

  toString(): string {
    return `<BridgeClient ${this.#state} pending=${this.#pending.size}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

function closedError(name: string, waiting = false): BridgeError {
  const what = waiting ? `closed before the handler "${name}" answered` : `is closed, so "${name}" cannot be called`;
  return new BridgeError('ERR_PROTOLOOP_BRIDGE_CLOSED', `the thread bridge ${what} (the main loop closed, or the endpoint or the worker's bridge was closed)`);
}

function clientOnMessage(this: BridgeClient, msg: unknown): void {
  this.onMessage(msg);
}

function clientOnClose(this: BridgeClient): void {
  this.onClose();
}

let threadBridge: BridgeClient | null = null;

/**
 * Connects this worker to the main loop through `port` (from the main loop's
 * `loop.bridgeEndpoint()`, received in `workerData` or a message) and makes it this
 * thread's bridge, used by the module functions {@link callSoonThreadsafe} and
 * {@link runCoroutineThreadsafe}. Returns the {@link BridgeClient}.
 * Throws `InvalidArgumentError` when `port` is not a MessagePort.
 */
export function connectBridge(port: MessagePort): BridgeClient {
  if (!(port instanceof MessagePort)) throw new InvalidArgumentError('connectBridge() needs the MessagePort from loop.bridgeEndpoint()');
  const client = new BridgeClient(port);
  threadBridge = client;
  return client;
}

function currentBridge(name: string): BridgeClient {
  if (threadBridge === null) {
    throw new BridgeError('ERR_PROTOLOOP_BRIDGE_CLOSED', `no thread bridge is connected, so "${name}" cannot be called: call connectBridge(port) with the port from the main loop's loop.bridgeEndpoint()`);
  }
  return threadBridge;
}

/** {@link BridgeClient.callSoonThreadsafe} on this thread's bridge (see {@link connectBridge}). */
export function callSoonThreadsafe(name: string, ...args: unknown[]): void {
  currentBridge(name).callSoonThreadsafe(name, ...args);
}

/** {@link BridgeClient.runCoroutineThreadsafe} on this thread's bridge (see {@link connectBridge}). */
export function runCoroutineThreadsafe<R = unknown>(target: BridgeCallTarget, ...args: unknown[]): Promise<R> {
  const name = typeof target === 'string' ? target : String((target as { name?: unknown } | null)?.name);
  try {
    return currentBridge(name).runCoroutineThreadsafe<R>(target, ...args);
  } catch (e) {
    if (e instanceof BridgeError) return Promise.reject(e);
    throw e;
  }
}
