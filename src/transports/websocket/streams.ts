/**
 * The stream-style WebSocket API: {@link openWebSocket} and {@link startWebSocketServer}
 * give a {@link WebSocketStream} per connection, read with `await ws.receive()` or
 * `for await (const message of ws)`, written with `await ws.send()`.
 *
 * Backpressure both ways: at most `maxQueue` received messages wait for the reader
 * (then the socket stops being read, so the peer slows down), and `send()` waits while
 * the transport's write buffer is above its high-water mark.
 *
 * ```ts
 * await using ws = await openWebSocket('ws://127.0.0.1:8080/chat');
 * await ws.send('hello');
 * for await (const message of ws) console.log(message);
 * ```
 * @module
 */
import { reportHandlerError } from '../server-limits.ts';
import { inspect } from 'node:util';
import { CancelledError, InvalidArgumentError, ResourceBusyError, TransportClosedError } from '../../errors.ts';
import type { Future } from '../../loop/future.ts';
import { kLostExc } from '../../loop/symbols.ts';
import { getRunningLoop, type Loop } from '../../loop/loop.ts';
import type { Task } from '../../loop/task.ts';
import { MessageProtocol } from '../../protocols/protocols.ts';
import { webSocketArea } from '../../loop/lazy.ts';
import type { WebSocketConnectOptions, WebSocketServerOptions } from './options.ts';
import { createWebSocketServer, type WebSocketServer } from './server.ts';
import type { WebSocketTransport } from './transport.ts';

/** A received message: a string (text) or a Buffer (binary). */
export type WebSocketMessage = string | Buffer;

/** The option the stream helpers add. */
export interface WebSocketStreamOptions {
  /** Received messages held for the reader before the socket stops being read. Default 16. */
  maxQueue?: number;
}

/** Options of {@link openWebSocket}. */
export type OpenWebSocketOptions = WebSocketConnectOptions & WebSocketStreamOptions;
/** Options of {@link startWebSocketServer}. */
export type StartWebSocketServerOptions = WebSocketServerOptions & WebSocketStreamOptions;
/** The per-connection handler of {@link startWebSocketServer}. */
export type WebSocketHandler = (ws: WebSocketStream) => Promise<void> | void;

type StreamState = 'open' | 'closed';

const DEFAULT_MAX_QUEUE = 16;

function checkMaxQueue(v: unknown): number {
  if (v === undefined) return DEFAULT_MAX_QUEUE;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new InvalidArgumentError(`maxQueue must be an integer >= 1, got ${String(v)}`);
  return v;
}

function splitOptions<T extends WebSocketStreamOptions>(options: T | undefined, what: string): [number, Omit<T, 'maxQueue'>] {
  if (options === undefined) return [DEFAULT_MAX_QUEUE, {} as Omit<T, 'maxQueue'>];
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError(`${what}() options must be an object`);
  const { maxQueue, ...rest } = options;
  return [checkMaxQueue(maxQueue), rest];
}

/** @internal The protocol behind a {@link WebSocketStream}: a bounded queue and two kinds of waiters. */
class StreamProtocol extends MessageProtocol {
  state: StreamState = 'open';
  readonly loop: Loop;
  readonly maxQueue: number;
  transport: WebSocketTransport | null = null;
  readonly queue: WebSocketMessage[] = [];
  #head = 0;
  #readingPaused = false;
  #writingPaused = false;
  /** The reader waiting for a message. */
  #reader: Future<void> | null = null;
  /** Senders waiting for the write buffer to drain: one future each, so cancelling one task leaves the others waiting. */
  #drainers: Future<void>[] = [];
  /** The connection's end: `connectionLost`'s error, once it came. */
  lostError: Error | undefined = undefined;
  readonly closed: Future<void>;
  /** Called once the connection is up (the server starts the handler here). */
  onMade: ((p: StreamProtocol) => void) | null = null;

  constructor(loop: Loop, maxQueue: number) {
    super();
    this.loop = loop;
    this.maxQueue = maxQueue;
    this.closed = loop.createFuture<void>('WebSocket stream closed');
  }

  override connectionMade(transport: WebSocketTransport): void {
    this.transport = transport;
    const cb = this.onMade;
    this.onMade = null;
    cb?.(this);
  }

  override messageReceived(data: WebSocketMessage): void {
    this.queue.push(data);
    if (this.queue.length - this.#head >= this.maxQueue && !this.#readingPaused) {
      this.#readingPaused = true;
      this.transport!.pauseReading();
    }
    const r = this.#reader;
    if (r !== null) {
      this.#reader = null;
      if (!r.done()) r.setResult(undefined);
    }
  }

  override connectionLost(exc: Error | undefined): void {
    this.state = 'closed';
    this.lostError = exc;
    const r = this.#reader;
    this.#reader = null;
    if (r !== null && !r.done()) r.setResult(undefined);
    this.#wakeDrainers();
    if (!this.closed.done()) this.closed.setResult(undefined);
  }

  override pauseWriting(): void {
    this.#writingPaused = true;
  }

  override resumeWriting(): void {
    this.#writingPaused = false;
    this.#wakeDrainers();
  }

  #wakeDrainers(): void {
    for (const d of this.#drainers.splice(0)) if (!d.done()) d.setResult(undefined);
  }

  /** The next message, null at a normal end; throws the connection's error after an abnormal one. */
  async receive(): Promise<WebSocketMessage | null> {
    while (this.#head === this.queue.length) {
      if (this.state === 'closed') {
        if (this.lostError !== undefined) throw this.lostError;
        return null;
      }
      if (this.#reader !== null) throw new ResourceBusyError('receive() is already waiting on this WebSocket: read it from one task only');
      const r = this.loop.createFuture<void>('WebSocket receive');
      this.#reader = r;
      try {
        await r;
      } finally {
        if (this.#reader === r) this.#reader = null;
      }
    }
    const message = this.queue[this.#head]!;
    this.queue[this.#head++] = undefined as unknown as WebSocketMessage;
    if (this.#head === this.queue.length) {
      this.queue.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.queue.length) {
      this.queue.splice(0, this.#head);
      this.#head = 0;
    }
    if (this.#readingPaused && this.queue.length - this.#head <= this.maxQueue >> 2) {
      this.#readingPaused = false;
      this.transport!.resumeReading();
    }
    return message;
  }

  /** Resolves once the write buffer is at or below its low-water mark (or the connection is gone). */
  async drain(): Promise<void> {
    while (this.#writingPaused && this.state === 'open') {
      const d = this.loop.createFuture<void>('WebSocket drain');
      this.#drainers.push(d);
      await d;
    }
  }

  get queued(): number {
    return this.queue.length - this.#head;
  }
}

/**
 * One WebSocket connection as a stream of messages. Create it with
 * {@link openWebSocket}, or receive it in {@link startWebSocketServer}'s handler.
 */
export class WebSocketStream implements AsyncIterable<WebSocketMessage>, AsyncDisposable {
  readonly #p: StreamProtocol;
  readonly #transport: WebSocketTransport;

  /** @internal */
  constructor(protocol: StreamProtocol, transport: WebSocketTransport) {
    this.#p = protocol;
    this.#transport = transport;
  }

  /** The transport underneath (ping, extra info, write-buffer limits). */
  get transport(): WebSocketTransport {
    return this.#transport;
  }

  /** The negotiated subprotocol ('' for none). */
  get subprotocol(): string {
    return this.#transport.getExtraInfo<string>('protocol') ?? '';
  }

  /** The error that ended the connection (undefined while open and after a normal close). */
  get closeError(): Error | undefined {
    return this.#p.lostError;
  }

  /** Whether the connection is closing or closed. */
  isClosing(): boolean {
    return this.#transport.isClosing();
  }

  /** Extra information of the transport (`url`, `protocol`, `peername`, `headers`, ...). */
  getExtraInfo<T = unknown>(name: string, defaultValue?: T): T | undefined {
    return this.#transport.getExtraInfo(name, defaultValue);
  }

  /**
   * The next message (string for text, Buffer for binary), or null once the connection
   * ended normally. Messages that arrived before the end are all delivered first.
   * @throws the connection's error (`WebSocketError`, `HeartbeatTimeoutError`, ...)
   * after an abnormal end; `ResourceBusyError` if another receive() is waiting;
   * `CancelledError` if the task is cancelled while waiting.
   */
  receive(): Promise<WebSocketMessage | null> {
    return this.#p.receive();
  }

  /** Iterates over the messages until a normal end; throws the connection's error after an abnormal one. */
  async *[Symbol.asyncIterator](): AsyncIterator<WebSocketMessage> {
    for (;;) {
      const m = await this.#p.receive();
      if (m === null) return;
      yield m;
    }
  }

  /**
   * Sends a message (string: text, bytes: binary; do not modify the bytes afterwards)
   * and waits while the write buffer is above its high-water mark.
   * @throws the connection's error if the peer broke it; `TransportClosedError` once it
   * is closed; `CancelledError` if the task is cancelled while waiting (the message is
   * still sent).
   */
  async send(data: string | Uint8Array): Promise<void> {
    const p = this.#p;
    if (p.state === 'closed' || this.#transport.isClosing()) {
      // The peer's error (a drop: 1006) even before connectionLost came, not a TransportClosedError.
      throw p.lostError ?? this.#transport[kLostExc] ?? new TransportClosedError('the WebSocket is closed');
    }
    this.#transport.send(data);
    await p.drain();
  }

  /** Waits until the write buffer is at or below its low-water mark. */
  drain(): Promise<void> {
    return this.#p.drain();
  }

  /** Sends a ping. */
  ping(data?: string | Uint8Array): void {
    this.#transport.ping(data);
  }

  /**
   * Closes with `code` (default 1000) and `reason`, and waits for the connection to end
   * (the closing handshake, bounded by the transport's closeTimeout). Idempotent.
   */
  async close(code = 1000, reason = ''): Promise<void> {
    this.#transport.close(code, reason);
    await this.waitClosed();
  }

  /** Resolves once the connection is gone (whatever the reason; see {@link closeError}). */
  async waitClosed(): Promise<void> {
    await this.#p.closed;
  }

  /** `close()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** @internal */
  [inspect.custom](): string {
    return `<WebSocketStream ${this.#p.state} queued=${this.#p.queued} ${inspect(this.#transport)}>`;
  }
}

/**
 * Connects to a WebSocket server and returns the connection as a stream.
 * @throws as `loop.createWebSocketConnection()` (WebSocketHandshakeError,
 * ConnectionRefusedError, TimeoutError, CancelledError, InvalidArgumentError).
 */
export async function openWebSocket(url: string | URL, options?: OpenWebSocketOptions): Promise<WebSocketStream> {
  const [maxQueue, rest] = splitOptions(options, 'openWebSocket');
  const loop = getRunningLoop();
  const protocol = new StreamProtocol(loop, maxQueue);
  const [transport] = await webSocketArea.use((m) => m.createWebSocketConnection(loop, () => protocol, url, rest));
  return new WebSocketStream(protocol, transport);
}

function handlerDone(task: Task<void>, stream: WebSocketStream, loop: Loop): void {
  if (task.cancelled()) {
    endStream(stream, 1001, 'going away');
    return;
  }
  const exception = task.exception();
  if (exception !== null && exception !== undefined) {
    if (!(exception instanceof CancelledError)) {
      // A peer that dropped (1006, reset) or sent malformed frames is not an error in user code.
      reportHandlerError(loop, exception, { message: 'Unhandled exception in a WebSocket handler', exception, task, transport: stream.transport });
    }
    endStream(stream, 1011, 'internal error');
    return;
  }
  endStream(stream, 1000);
}

/**
 * The handler is done with `stream`: closes it with `code`, or, when the peer closed it
 * already, drops the messages nobody will read (connectionLost waits for them otherwise,
 * and the server would keep counting the connection).
 */
function endStream(stream: WebSocketStream, code: number, reason?: string): void {
  if (!stream.isClosing()) stream.transport.close(code, reason);
  else if (stream.transport.state === 'closed') stream.transport.close();
}

/**
 * Starts a WebSocket server that runs `handler(ws)` as a task per connection (named
 * `websocket <peer>`). When the handler returns the connection is closed (1000); when
 * it throws, the error goes to the loop's exception handler and the connection is
 * closed with 1011. Returns the {@link WebSocketServer}.
 * @throws as `loop.createWebSocketServer()`.
 */
export async function startWebSocketServer(handler: WebSocketHandler, options?: StartWebSocketServerOptions): Promise<WebSocketServer> {
  if (typeof handler !== 'function') throw new InvalidArgumentError(`startWebSocketServer() needs a handler (ws) => ..., got ${typeof handler}`);
  const [maxQueue, rest] = splitOptions(options, 'startWebSocketServer');
  const loop = getRunningLoop();
  const onMade = (p: StreamProtocol): void => {
    const transport = p.transport!;
    const stream = new WebSocketStream(p, transport);
    const peer = transport.getExtraInfo<{ address: string; port: number }>('peername');
    const task = loop.createTask(async () => handler(stream), { name: `websocket ${peer ? `${peer.address}:${peer.port}` : '?'}` });
    task.addDoneCallback((t) => handlerDone(t as Task<void>, stream, loop));
  };
  return await createWebSocketServer(
    loop,
    () => {
      const p = new StreamProtocol(loop, maxQueue);
      p.onMade = onMade;
      return p;
    },
    rest,
  );
}
