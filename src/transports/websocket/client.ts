/**
 * `loop.createWebSocketConnection()`: the opening handshake of a client WebSocket,
 * then a {@link WebSocketTransport} with the protocol `protocolFactory()` makes.
 *
 * ```
 * connecting --open--> (protocol made, connectionMade) --> resolved [transport, protocol]
 * connecting --error/refusal/timeout/cancel/abort--> rejected (typed error)
 * ```
 * The ws client is created outside any task (its events never inherit a task's
 * context) with safe defaults: maxPayload 1 MiB, no compression, no redirects.
 * @module
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { wsLib } from '../../loop/lazy.ts';
import { CancelledError, InvalidArgumentError, TimeoutError } from '../../errors.ts';
import type { Future } from '../../loop/future.ts';
import type { TimerHandle } from '../../loop/handle.ts';
import { outsideTask } from '../../loop/internal.ts';
import type { Loop } from '../../loop/loop.ts';
import { kStartTransport } from '../../loop/symbols.ts';
import type { MessageProtocol } from '../../protocols/protocols.ts';
import { handshakeError } from './errors.ts';
import { resolveCommon, validateConnectOptions, DEFAULT_HANDSHAKE_TIMEOUT, type WebSocketConnectOptions, type TransportSettings } from './options.ts';
import { WebSocketTransport } from './transport.ts';

const kAttempt = Symbol('protoloop.wsAttempt');

type AttemptState = 'connecting' | 'done';

/** One connection attempt; its listeners are named and reach it through the ws object. */
class ConnectAttempt<P extends MessageProtocol> {
  state: AttemptState = 'connecting';
  readonly #loop: Loop;
  readonly #future: Future<[WebSocketTransport, P]>;
  readonly #factory: () => P;
  readonly #settings: TransportSettings;
  readonly #url: string;
  readonly #signal: AbortSignal | undefined;
  #ws: WebSocket | null = null;
  #timer: TimerHandle | null = null;
  #status: number | undefined = undefined;
  #error: Error | undefined = undefined;
  /** Why we stopped the attempt ourselves, if we did. */
  #stopReason: Error | undefined = undefined;
  #response: IncomingMessage | null = null;

  constructor(loop: Loop, future: Future<[WebSocketTransport, P]>, factory: () => P, settings: TransportSettings, url: string, signal: AbortSignal | undefined) {
    this.#loop = loop;
    this.#future = future;
    this.#factory = factory;
    this.#settings = settings;
    this.#url = url;
    this.#signal = signal;
  }

  start(ws: WebSocket, handshakeTimeout: number): void {
    this.#ws = ws;
    (ws as any)[kAttempt] = this;
    ws.on('upgrade', ConnectAttempt.#onUpgrade);
    ws.on('unexpected-response', ConnectAttempt.#onUnexpectedResponse);
    ws.on('open', ConnectAttempt.#onOpen);
    ws.on('error', ConnectAttempt.#onError);
    ws.on('close', ConnectAttempt.#onClose);
    this.#timer = this.#loop.callLater(handshakeTimeout, attemptTimedOut, this, handshakeTimeout);
    this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
    this.#future.addDoneCallback(this.#onFutureDone);
  }

  static #onUpgrade = function onUpgrade(this: WebSocket, res: IncomingMessage): void {
    (this as any)[kAttempt].#response = res;
  };

  static #onUnexpectedResponse = function onUnexpectedResponse(this: WebSocket, _req: unknown, res: IncomingMessage): void {
    const a = (this as any)[kAttempt] as ConnectAttempt<MessageProtocol>;
    a.#status = res.statusCode;
    res.resume();
    // In CONNECTING, terminate() aborts the request; 'error' and 'close' follow.
    this.terminate();
  };

  static #onError = function onError(this: WebSocket, err: Error): void {
    const a = (this as any)[kAttempt] as ConnectAttempt<MessageProtocol>;
    a.#error ??= err;
  };

  static #onClose = function onClose(this: WebSocket): void {
    const a = (this as any)[kAttempt] as ConnectAttempt<MessageProtocol>;
    if (a.state !== 'connecting') return;
    const err = a.#stopReason ?? handshakeError(a.#error ?? new Error('the connection closed during the handshake'), a.#url, a.#status);
    a.#fail(err);
  };

  static #onOpen = function onOpen(this: WebSocket): void {
    (this as any)[kAttempt].#opened();
  };

  #onAbort = (): void => {
    this.#stop(new CancelledError('the WebSocket connection attempt was aborted by its signal', { cause: this.#signal?.reason }));
  };

  #onFutureDone = (): void => {
    // The awaiting task was cancelled: give up the handshake.
    if (this.state === 'connecting') this.#stop(new CancelledError('the WebSocket connection attempt was cancelled'));
  };

  /** @internal */
  timedOut(ms: number): void {
    this.#timer = null;
    this.#stop(new TimeoutError(`WebSocket handshake with ${this.#url} timed out after ${ms} ms`));
  }

  #stop(reason: Error): void {
    if (this.state !== 'connecting') return;
    this.#stopReason = reason;
    this.#ws?.terminate();
  }

  #cleanup(): void {
    this.state = 'done';
    this.#timer?.cancel();
    this.#timer = null;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    const ws = this.#ws!;
    ws.removeListener('upgrade', ConnectAttempt.#onUpgrade);
    ws.removeListener('unexpected-response', ConnectAttempt.#onUnexpectedResponse);
    ws.removeListener('open', ConnectAttempt.#onOpen);
    ws.removeListener('error', ConnectAttempt.#onError);
    ws.removeListener('close', ConnectAttempt.#onClose);
    (ws as any)[kAttempt] = undefined;
  }

  #fail(err: Error): void {
    this.#cleanup();
    // Keep a listener: ws may still report the socket's end.
    this.#ws!.on('error', noop);
    if (!this.#future.done()) this.#future.setException(err);
  }

  #opened(): void {
    const ws = this.#ws!;
    this.#cleanup();
    if (this.#future.done()) {
      ws.on('error', noop);
      ws.terminate();
      return;
    }
    let protocol: P;
    try {
      protocol = this.#factory();
    } catch (exc) {
      ws.on('error', noop);
      ws.terminate();
      this.#future.setException(exc);
      return;
    }
    const res = this.#response;
    const socket = (res?.socket ?? (ws as any)._socket) as Socket;
    const transport = new WebSocketTransport(this.#loop, ws, socket, protocol, this.#settings, { url: ws.url, headers: res?.headers }, null);
    this.#response = null;
    transport[kStartTransport]();
    this.#future.setResult([transport, protocol]);
  }
}

function noop(): void {}

function attemptTimedOut(a: ConnectAttempt<MessageProtocol>, ms: number): void {
  a.timedOut(ms);
}

/**
 * Connects to `url` (ws: or wss:) and returns `[transport, protocol]` once the
 * handshake is done and `protocol.connectionMade()` ran. Rejects with
 * `WebSocketHandshakeError` (with `status`) when the server refuses,
 * `ConnectionRefusedError`/`DnsError`/`TlsError` when it cannot be reached,
 * `TimeoutError` after `handshakeTimeout`, `CancelledError` when `signal` aborts or
 * the awaiting task is cancelled. Throws `InvalidArgumentError` for bad options.
 */
export async function createWebSocketConnection<P extends MessageProtocol>(
  loop: Loop,
  protocolFactory: () => P,
  url: string | URL,
  options: WebSocketConnectOptions = {},
): Promise<[WebSocketTransport, P]> {
  if (typeof protocolFactory !== 'function') throw new InvalidArgumentError('createWebSocketConnection() needs a protocol factory function');
  const parsed = validateConnectOptions(url, options);
  const common = resolveCommon(options, 'createWebSocketConnection()');
  const { signal } = options;
  if (signal?.aborted) throw new CancelledError('the WebSocket connection attempt was aborted by its signal', { cause: signal.reason });
  // ws is loaded on first use, not by import('protoloop').
  const { WebSocket: WebSocketClass } = wsLib.value ?? (await wsLib.load());
  if (signal?.aborted) throw new CancelledError('the WebSocket connection attempt was aborted by its signal', { cause: signal.reason });
  const future = loop.createFuture<[WebSocketTransport, P]>(`WebSocket connection to ${parsed.href}`);
  const attempt = new ConnectAttempt(loop, future, protocolFactory, common, parsed.href, signal);
  const wsOptions = {
    ...(options.tls ?? {}),
    headers: options.headers,
    origin: options.origin,
    maxPayload: common.maxPayload,
    perMessageDeflate: common.perMessageDeflate,
    closeTimeout: common.closeTimeout,
    followRedirects: false,
    autoPong: true,
  };
  const protocols = options.protocols === undefined ? [] : Array.isArray(options.protocols) ? options.protocols : [options.protocols];
  let ws: WebSocket;
  try {
    ws = outsideTask(() => new WebSocketClass(parsed, protocols, wsOptions as WebSocket.ClientOptions));
  } catch (err) {
    throw new InvalidArgumentError(`createWebSocketConnection(): ${(err as Error).message}`, { cause: err });
  }
  attempt.start(ws, options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT);
  return await future;
}
