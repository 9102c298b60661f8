/**
 * The one transport base: what every transport (socket, datagram, WebSocket, the
 * subprocess pipes) shares, written once.
 *
 * ```
 * open --close()--> closing --(buffer flushed)--> closed     connectionLost(undefined)
 * open --abort()/fatal error/peer gone-----------> closed     connectionLost(exc)
 *                                                    |
 *                      forceClose(): release(), then scheduleLost() once, with callSoon
 * ```
 * - One exit path, CPython's `_SelectorTransport._force_close`/`_call_connection_lost`:
 *   {@link TransportBase.forceClose} is a no-op the second time; it releases the
 *   resource and schedules `connectionLost` exactly once with `callSoon`, so it comes
 *   after every callback already queued (data read before the close is delivered
 *   first, and `connectionMade`, scheduled when the transport was made, comes before).
 *   A subclass may hold `connectionLost` back while it still has data to hand over
 *   ({@link TransportBase.holdLost}); it then calls {@link TransportBase.scheduleLost}.
 * - One protocol-call wrapper, {@link TransportBase.callProtocol}, with one policy: an
 *   exception from a protocol method goes to the loop's exception handler with a
 *   context (`message`, `exception`, `protocol`, `transport`), then that connection is
 *   aborted with it; an exception from `connectionLost` is only reported. A thrown
 *   value that is not an Error is wrapped by {@link asError}. Timed in debug mode.
 * - Flow control: {@link FlowControl} (pause strictly above high, resume at or below
 *   low), its calls made through the wrapper (so they obey the same policy) and, while
 *   the loop does not run or before `connectionMade`, through `callSoon`.
 * - Writes after the peer broke the connection are dropped and counted; one warning
 *   once the count reaches {@link LOG_THRESHOLD_FOR_CONNLOST_WRITES} (asyncio's).
 * @module
 */
import { performance } from 'node:perf_hooks';
import { inspect } from 'node:util';
import type { Future } from '../loop/future.ts';
import type { Loop } from '../loop/loop.ts';
import { DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER, FlowControl } from './flow-control.ts';
import { kLostExc } from '../loop/symbols.ts';
import { callbackSlowChannel, connectionLostChannel, connectionMadeChannel, nodeDebugEnabled, type ConnectionKind, type ConnectionMessage } from '../loop/channels.ts';

/** What the diagnostics channels say about a connection (see {@link TransportBase.connectionInfo}). */
export interface ConnectionInfo {
  kind: ConnectionKind;
  local: unknown;
  peer: unknown;
}

/** The lifecycle every transport shares (drawn in the module notes). */
export type TransportState = 'open' | 'closing' | 'closed';

/** Writes dropped after the connection was lost before one warning is logged (asyncio's constant). */
export const LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5;

const B_MADE = 1;
const B_CLOSED_BY_USER = 2;
const B_LOST_SCHEDULED = 4;

/** A protocol method name the wrapper may call. */
export type ProtocolMethod = string;

/**
 * `x` as an Error: itself, or an Error naming the thrown value (kept as `cause`).
 * The one wrapping of a non-Error thrown by a protocol, used by every transport.
 */
export function asError(x: unknown): Error {
  if (x instanceof Error) return x;
  return new Error(`a protocol method threw a non-Error value: ${inspect(x, { depth: 1 })}`, { cause: x });
}

/**
 * The shared machinery of a transport driving protocol `P`. Subclasses implement
 * {@link release} (let go of the OS resource) and may override the hooks.
 */
export abstract class TransportBase<P extends object = object> {
  /** The loop the transport belongs to. */
  protected readonly loop: Loop;
  /** The protocol being driven. */
  protected protocol: P;
  /** Where the transport is in its life (see the module notes). */
  protected lifecycle: TransportState = 'open';
  /** `made`, `closedByUser` and whether connectionLost was scheduled, one bit each (one field per transport rather than three). */
  #bits = 0;
  /** What `connectionLost` carries; set once by {@link forceClose}. */
  protected lostExc: Error | undefined = undefined;
  /** Made on first need (custom water marks, or the buffer above the default high mark). */
  protected flow: FlowControl | null = null;
  #writesAfterLost = 0;
  /** The addresses read when `connectionMade` was published (the socket may not tell them once it is gone). */
  #info: ConnectionInfo | null = null;

  constructor(loop: Loop, protocol: P) {
    this.loop = loop;
    this.protocol = protocol;
  }

  /** `connectionMade` ran (or was not due: startTls). */
  protected get made(): boolean {
    return (this.#bits & B_MADE) !== 0;
  }
  protected set made(on: boolean) {
    this.#bits = on ? this.#bits | B_MADE : this.#bits & ~B_MADE;
  }

  /** close() or abort() (or a fatal protocol error) ended it: later writes throw rather than being dropped. */
  protected get closedByUser(): boolean {
    return (this.#bits & B_CLOSED_BY_USER) !== 0;
  }
  protected set closedByUser(on: boolean) {
    this.#bits = on ? this.#bits | B_CLOSED_BY_USER : this.#bits & ~B_CLOSED_BY_USER;
  }

  get #lostScheduled(): boolean {
    return (this.#bits & B_LOST_SCHEDULED) !== 0;
  }
  set #lostScheduled(on: boolean) {
    this.#bits = on ? this.#bits | B_LOST_SCHEDULED : this.#bits & ~B_LOST_SCHEDULED;
  }

  /** The transport's state: `'open'`, `'closing'` or `'closed'`. */
  get state(): TransportState {
    return this.lifecycle;
  }

  /** @internal The error connectionLost got (or will get). */
  get [kLostExc](): Error | undefined {
    return this.lostExc;
  }

  /** Whether the transport is closing or closed. */
  isClosing(): boolean {
    return this.lifecycle !== 'open';
  }

  // ---------------------------------------------------------------- exit path

  /** Lets go of the OS resource (destroy the socket, stop timers). Called once, by {@link forceClose}. */
  protected abstract release(): void;

  /** Whether `connectionLost` must wait (data still to hand over); the subclass then calls {@link scheduleLost}. */
  protected holdLost(): boolean {
    return false;
  }

  /** After `connectionLost` ran (or could not: the loop is closed): drop references, tell the owner. */
  protected afterLost(): void {}

  /**
   * The one exit path. A no-op the second time. Marks the transport closed, records
   * `exc`, releases the resource, and schedules `connectionLost(exc)` once.
   */
  protected forceClose(exc: Error | undefined): void {
    if (this.lifecycle === 'closed') return;
    this.lifecycle = 'closed';
    this.lostExc = exc;
    try {
      this.release();
    } finally {
      if (!this.holdLost()) this.scheduleLost();
    }
  }

  /** Schedules `connectionLost` with `callSoon`, once (after callbacks already queued). */
  protected scheduleLost(): void {
    if (this.#lostScheduled) return;
    this.#lostScheduled = true;
    if (this.loop.isClosed()) {
      // Nobody is left to deliver to.
      this.afterLost();
      return;
    }
    this.loop.callSoon(TransportBase.#callLost, this);
  }

  /** The resource was handed to another transport (startTls): closed, and no connectionLost. */
  protected handedOver(): void {
    this.lifecycle = 'closed';
    this.#lostScheduled = true;
  }

  /** Whether `connectionLost` was scheduled (or delivered). */
  protected get lostScheduled(): boolean {
    return this.#lostScheduled;
  }

  static #callLost(t: TransportBase): void {
    if (t.made && connectionLostChannel.hasSubscribers) t.#publishLost();
    try {
      t.deliverLost(t.lostExc);
    } finally {
      t.afterLost();
    }
  }

  // ---------------------------------------------------------------- diagnostics channels

  /**
   * The kind and addresses of this connection for `protoloop:connection:made`/`lost`;
   * null (the default) publishes nothing (the subprocess pipes).
   */
  protected connectionInfo(): ConnectionInfo | null {
    return null;
  }

  /**
   * The connection starts: `connectionMade` (published first), then `waiter` (whoever
   * awaits the connection) is settled, with the error if the connection is already gone.
   */
  protected startConnection(waiter: Future<void> | null): void {
    this.made = true;
    this.callConnectionMade();
    if (waiter !== null && !waiter.done()) {
      if (this.lifecycle === 'closed' && this.lostExc !== undefined) waiter.setException(this.lostExc);
      else waiter.setResult(undefined);
    }
  }

  /** Calls `connectionMade(this)` on the protocol, after publishing `protoloop:connection:made`. */
  protected callConnectionMade(): void {
    if (connectionMadeChannel.hasSubscribers || connectionLostChannel.hasSubscribers) this.#publishMade();
    this.callProtocol('connectionMade', this);
  }

  #publishMade(): void {
    const info = (this.#info = this.connectionInfo());
    if (info === null || !connectionMadeChannel.hasSubscribers) return;
    const message: ConnectionMessage = { kind: info.kind, transport: this, local: info.local, peer: info.peer };
    connectionMadeChannel.publish(message);
  }

  #publishLost(): void {
    const info = this.#info ?? this.connectionInfo();
    if (info === null) return;
    const message: ConnectionMessage = { kind: info.kind, transport: this, local: info.local, peer: info.peer, error: this.lostExc };
    connectionLostChannel.publish(message);
  }

  /** Tells the protocol the connection is gone (the pipes tell their subprocess transport instead). */
  protected deliverLost(exc: Error | undefined): void {
    if (this.made) this.callProtocol('connectionLost', exc);
  }

  // ---------------------------------------------------------------- protocol calls

  /**
   * Calls `protocol[method](a, b)` and returns its result. A missing optional method is
   * skipped. An exception goes to {@link protocolFailed}. Timed in debug mode.
   */
  protected callProtocol(method: ProtocolMethod, a?: unknown, b?: unknown): unknown {
    const p = this.protocol as Record<string, unknown>;
    const fn = p[method] as ((a?: unknown, b?: unknown) => unknown) | undefined;
    if (typeof fn !== 'function') return undefined;
    if (!this.loop.getDebug() && !nodeDebugEnabled && !callbackSlowChannel.hasSubscribers) {
      try {
        return fn.call(p, a, b);
      } catch (exception) {
        this.protocolFailed(method, exception);
        return undefined;
      }
    }
    const t0 = performance.now();
    let r: unknown;
    try {
      r = fn.call(p, a, b);
    } catch (exception) {
      this.protocolFailed(method, exception);
    }
    const dt = performance.now() - t0;
    if (dt >= this.loop.slowCallbackDuration) this.loop.reportSlow(`${p.constructor?.name ?? 'protocol'}.${method}() on ${this.toString()}`, dt, { protocol: p, transport: this });
    return r;
  }

  /**
   * `callProtocol('dataReceived', data)` for the per-read call: the method is read by
   * name (a monomorphic load per protocol class) rather than through the generic keyed
   * lookup. Same policy; timed in debug mode through {@link callProtocol}.
   */
  protected callDataReceived(data: Buffer): void {
    const p = this.protocol as { dataReceived?: unknown };
    this.#callPerRead(p, p.dataReceived, 'dataReceived', data);
  }

  /** `callProtocol('bufferUpdated', nbytes)` for the per-read call, as {@link callDataReceived}. */
  protected callBufferUpdated(nbytes: number): void {
    const p = this.protocol as { bufferUpdated?: unknown };
    this.#callPerRead(p, p.bufferUpdated, 'bufferUpdated', nbytes);
  }

  /** Calls `fn` (the protocol's `method`, already read) with `arg`, with callProtocol's policy. */
  #callPerRead(p: object, fn: unknown, method: 'dataReceived' | 'bufferUpdated', arg: unknown): void {
    if (this.loop.getDebug() || nodeDebugEnabled || callbackSlowChannel.hasSubscribers) {
      this.callProtocol(method, arg);
      return;
    }
    if (typeof fn !== 'function') return;
    try {
      fn.call(p, arg);
    } catch (exception) {
      this.protocolFailed(method, exception);
    }
  }

  /** The policy for a throwing protocol: report it; unless it was `connectionLost`, abort the connection with it. */
  protected protocolFailed(method: ProtocolMethod, exception: unknown): void {
    if (method === 'connectionLost') {
      this.loop.callExceptionHandler({ message: 'Exception in protocol.connectionLost()', exception: asError(exception), protocol: this.protocol, transport: this });
      return;
    }
    this.fatal(exception, `protocol.${method}() call failed`);
  }

  /** Reports `exception` to the loop's exception handler, then aborts the connection with it. */
  protected fatal(exception: unknown, message: string): void {
    const error = asError(exception);
    this.loop.callExceptionHandler({ message: `Fatal error on transport: ${message}`, exception: error, protocol: this.protocol, transport: this });
    if (this.lifecycle === 'closed') return;
    this.closedByUser = true;
    this.forceClose(error);
  }

  // ---------------------------------------------------------------- flow control

  /** The flow control, made on first use. */
  protected flowControl(): FlowControl {
    return (this.flow ??= new FlowControl(this));
  }

  /** The buffer grew to `size` bytes: `pauseWriting()` strictly above the high-water mark. */
  protected afterWrite(size: number): void {
    const flow = this.flow;
    if (flow !== null) flow.afterWrite(size);
    else if (size > DEFAULT_HIGH_WATER) this.flowControl().afterWrite(size);
  }

  /** The buffer shrank to `size` bytes: `resumeWriting()` at or below the low-water mark. */
  protected afterDrain(size: number): void {
    if (this.lifecycle !== 'closed') this.flow?.afterDrain(size);
  }

  /** @internal FlowTarget: calls the protocol now if the loop runs and it was made, else through the loop. */
  flowChanged(method: 'pauseWriting' | 'resumeWriting'): void {
    if (this.loop.isRunning() && this.made) this.callProtocol(method);
    else if (!this.loop.isClosed()) this.loop.callSoon(TransportBase.#callFlow, this, method);
  }

  static #callFlow(t: TransportBase, method: 'pauseWriting' | 'resumeWriting'): void {
    if (t.lifecycle !== 'closed') t.callProtocol(method);
  }

  /** See `WriteTransport.setWriteBufferLimits`. Throws `InvalidArgumentError` for bad marks. */
  setWriteBufferLimits(high?: number, low?: number): void {
    this.flowControl().setLimits(this.getWriteBufferSize(), high, low);
  }

  /** The current water marks, `[low, high]` in bytes (asyncio's order). */
  getWriteBufferLimits(): [low: number, high: number] {
    const flow = this.flow;
    return flow === null ? [DEFAULT_LOW_WATER, DEFAULT_HIGH_WATER] : [flow.low, flow.high];
  }

  /** Bytes accepted for writing and not yet handed to the OS (0 for a read-only transport). */
  getWriteBufferSize(): number {
    return 0;
  }

  // ---------------------------------------------------------------- writes after lost

  /**
   * A write arrived after the peer broke the connection (connectionLost is on its way):
   * it is dropped, as asyncio drops it; one warning once
   * {@link LOG_THRESHOLD_FOR_CONNLOST_WRITES} were dropped.
   */
  protected dropWriteAfterLost(what = 'write()'): void {
    if (++this.#writesAfterLost === LOG_THRESHOLD_FOR_CONNLOST_WRITES) {
      this.loop.logger.warn(`${this.toString()}: ${what} after the connection was lost: ${LOG_THRESHOLD_FOR_CONNLOST_WRITES} writes dropped so far (wait for connectionLost)`);
    }
  }

  /** Writes dropped after the connection was lost. */
  protected get writesAfterLost(): number {
    return this.#writesAfterLost;
  }

  // ---------------------------------------------------------------- protocol accessors

  /** Replaces the protocol. */
  setProtocol(protocol: P): void {
    this.protocol = protocol;
  }

  /** The current protocol. */
  getProtocol(): P {
    return this.protocol;
  }
}
