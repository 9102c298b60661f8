/**
 * The Loop contract: every method of `Loop`, with its documentation, in one
 * list (asyncio's `AbstractEventLoop` in events.py is the model). `Loop` implements
 * it in src/loop/loop.ts: the core (scheduling, running, futures and tasks, errors and
 * debug mode) there, and the I/O methods as thin forwarders to the module of their
 * area, loaded on first use through src/loop/lazy.ts (so that src/loop imports no
 * higher folder at run time, and ws and execa load only when used).
 *
 * The types of the I/O methods' options live with their areas; this file imports them
 * as types only.
 * @module
 */
import type net from 'node:net';
import type { FileHandle } from 'node:fs/promises';
import type { MessagePort } from 'node:worker_threads';
import type { Executor, WorkerTask } from '../executors/executor.ts';
import type { ThreadsafeHandler } from '../executors/bridge-server.ts';
import type { BaseProtocol, DatagramProtocol, MessageProtocol } from '../protocols/protocols.ts';
import type { SubprocessTransport } from '../subprocess/contract.ts';
import type { SubprocessOptions } from '../subprocess/options.ts';
import type { AcceptedSocketOptions, ConnectionOptions, UnixConnectionOptions } from '../transports/net/connect.ts';
import type { DatagramEndpointOptions, DatagramSocketTransport } from '../transports/net/datagram.ts';
import type { ServerOptions, UnixServerOptions } from '../transports/net/listen.ts';
import type { SendfileOptions } from '../transports/net/sendfile.ts';
import type { Server } from '../transports/net/server.ts';
import type { SocketTransport, StreamProtocol } from '../transports/net/socket-transport.ts';
import type { StartTlsOptions } from '../transports/net/tls.ts';
import type { Transport } from '../transports/transports.ts';
import type { WebSocketConnectOptions, WebSocketServerOptions } from '../transports/websocket/options.ts';
import type { WebSocketServer } from '../transports/websocket/server.ts';
import type { WebSocketTransport } from '../transports/websocket/transport.ts';
import type { Future } from './future.ts';
import type { Handle, TimerHandle } from './handle.ts';
import type { Logger } from './log.ts';
import type { ExceptionContext, ExceptionHandler, LoopStats, TaskFactory } from './loop.ts';
import type { Task, TaskOptions, TaskTarget } from './task.ts';

/** Every method of `Loop`. */
export interface LoopContract {
  // ------------------------------------------------------------ time

  /** The loop's monotonic time in milliseconds. */
  time(): number;

  // ------------------------------------------------------ scheduling

  /** Schedules `callback(...args)` for the next iteration. FIFO. Returns a {@link Handle}. */
  callSoon<A extends unknown[]>(callback: (...args: A) => unknown, ...args: A): Handle;
  /** Schedules `callback(...args)` in `delay` ms (negative means now). Returns a {@link TimerHandle}. */
  callLater<A extends unknown[]>(delay: number, callback: (...args: A) => unknown, ...args: A): TimerHandle;
  /** Schedules `callback(...args)` at loop time `when` (see {@link time}). Returns a {@link TimerHandle}. */
  callAt<A extends unknown[]>(when: number, callback: (...args: A) => unknown, ...args: A): TimerHandle;

  // --------------------------------------------------------- running

  /** Whether the loop is running. */
  isRunning(): boolean;
  /** Whether the loop is closed. */
  isClosed(): boolean;
  /**
   * Runs the loop until `stop()` is called. Resolves then. Rejects with
   * `LoopRunningError` if this or another loop is running on this thread, and with
   * `LoopClosedError` if the loop is closed.
   */
  runForever(): Promise<void>;
  /**
   * Runs the loop until `x` completes and returns its result (or throws its error).
   * `x` may be a Future/Task, a Coroutine or a function returning a promise (both are
   * wrapped in a task), or the promise of a stream read (its future). Rejects with
   * `LoopStoppedError` if `stop()` ends the loop first.
   */
  runUntilComplete<T>(x: Future<T> | TaskTarget<T>): Promise<T>;
  /**
   * Stops the loop after the current iteration: the callbacks already running finish;
   * what they schedule runs when the loop runs again. Called before `runForever()`, the
   * next run does one iteration and stops.
   */
  stop(): void;
  /**
   * Closes the loop: reports tasks still pending ("Task was destroyed but it is
   * pending!"), exceptions never retrieved and resources never closed, runs the close
   * hooks (executors, subprocesses, signal handlers, bridge endpoints), drops every
   * scheduled callback. Idempotent. Throws `LoopRunningError` on a running loop.
   */
  close(): void;

  // ------------------------------------------------- futures, tasks

  /** Creates a Future bound to this loop; `description` names what it stands for in task listings. */
  createFuture<T = unknown>(description?: string): Future<T>;
  /**
   * Wraps `target` in a Task scheduled on this loop. `target` is a Coroutine or a
   * function returning a promise; a promise that is already running cannot be
   * cancelled and is refused with `InvalidArgumentError`.
   */
  createTask<T>(target: TaskTarget<T>, options?: TaskOptions): Task<T>;
  /** Sets the factory `createTask()` uses (null restores the default). See `eagerTaskFactory`. */
  setTaskFactory(factory: TaskFactory | null): void;
  /** The factory `createTask()` uses, or null for the default. */
  getTaskFactory(): TaskFactory | null;
  /** The tasks of this loop that are not done. A new set each call. */
  pendingTasks(): Set<Task<unknown>>;

  // ----------------------------------------------- errors and debug

  /** Sets the handler for errors no one else caught (null restores the default). */
  setExceptionHandler(handler: ExceptionHandler | null): void;
  /** The handler set with `setExceptionHandler()`, or null. */
  getExceptionHandler(): ExceptionHandler | null;
  /** Routes `context` to the exception handler (or the default one). Never throws. */
  callExceptionHandler(context: ExceptionContext): void;
  /**
   * The default handler: logs `message` at `context.level` (default error), then one
   * line per context key, the creation stack (`sourceTraceback`), the `hint`, and the
   * exception's stack.
   */
  defaultExceptionHandler(context: ExceptionContext): void;
  /** Whether debug mode is on. */
  getDebug(): boolean;
  /** Turns debug mode on or off (the logger follows: debug level when on). */
  setDebug(enabled: boolean): void;
  /** In debug mode, callbacks and task steps taking at least this many ms are logged. Default 100. */
  slowCallbackDuration: number;
  /** The loop's logger (named `protoloop`). */
  readonly logger: Logger;
  /** Counters of the loop's work. */
  stats(): LoopStats;

  // ---------------------------------------- sockets, TLS, UDP (net)

  /**
   * Opens a TCP connection (TLS with `options.tls`) and resolves with
   * `[transport, protocol]` once `protocol.connectionMade()` ran.
   * Rejects with `ConnectionRefusedError`, `DnsError`, `TlsError`, `ConnectionError`,
   * `TimeoutError` (TLS handshake), `InvalidArgumentError`, or the signal's reason.
   * @example
   * const [transport, protocol] = await loop.createConnection(() => new MyProtocol(), { host: '127.0.0.1', port: 8080 });
   */
  createConnection<P extends StreamProtocol>(protocolFactory: () => P, options: ConnectionOptions): Promise<[SocketTransport, P]>;
  /** Opens a connection to a Unix socket; see `createConnection()`. */
  createUnixConnection<P extends StreamProtocol>(protocolFactory: () => P, path: string, options?: UnixConnectionOptions): Promise<[SocketTransport, P]>;
  /**
   * Creates a TCP server (TLS with `options.tls`) listening on `options.host` (a name
   * or a list) and `options.port`; `protocolFactory` is called once per connection.
   * Resolves once it listens (and serves, unless `startServing: false`). Rejects with
   * `ConnectionError` (`code` `EADDRINUSE`, `EACCES`, ...) or `DnsError`.
   */
  createServer(protocolFactory: () => StreamProtocol, options?: ServerOptions): Promise<Server>;
  /** Creates a Unix-socket server at `path`; see `createServer()`. */
  createUnixServer(protocolFactory: () => StreamProtocol, path: string, options?: UnixServerOptions): Promise<Server>;
  /** Wraps an already connected `net.Socket` in a transport (server-side TLS with `options.tls`). */
  connectAcceptedSocket<P extends StreamProtocol>(protocolFactory: () => P, socket: net.Socket, options?: AcceptedSocketOptions): Promise<[SocketTransport, P]>;
  /** Creates a UDP endpoint; resolves with `[transport, protocol]` once `connectionMade` ran. */
  createDatagramEndpoint<P extends DatagramProtocol>(protocolFactory: () => P, options?: DatagramEndpointOptions): Promise<[DatagramSocketTransport, P]>;
  /**
   * Upgrades an open transport to TLS (client side, or `serverSide: true`) and resolves
   * with the new transport; stop using the old one. `protocol` keeps receiving data.
   * Rejects with `TlsError`, `TimeoutError` (`handshakeTimeout`, default 60_000 ms),
   * `TransportClosedError`.
   */
  startTls(transport: Transport, protocol: StreamProtocol, options?: StartTlsOptions): Promise<SocketTransport>;
  /**
   * Sends a file (path, FileHandle or fd) over `transport`, honouring flow control;
   * resolves with the bytes sent. Node has no zero-copy path for sockets: with
   * `fallback: false` it rejects with `SendfileNotAvailableError`.
   */
  sendfile(transport: Transport, file: string | FileHandle | number, options?: SendfileOptions): Promise<number>;

  // ------------------------------------------------------- WebSocket

  /**
   * Creates a WebSocket server: each accepted connection gets a WebSocketTransport and
   * the MessageProtocol `protocolFactory()` returns. Listens on `host`/`port` (or
   * shares `server`), serves at once unless `startServing: false`. Safe defaults:
   * maxPayload 1 MiB (larger messages close the connection with 1009), heartbeat on
   * (ping every 30 s, pong due in 10 s), permessage-deflate off. Rejects with a
   * `ConnectionError` when the port cannot be bound and with `InvalidArgumentError` for
   * bad options.
   */
  createWebSocketServer(protocolFactory: () => MessageProtocol, options?: WebSocketServerOptions): Promise<WebSocketServer>;
  /**
   * Connects to a WebSocket server (`ws:` or `wss:` URL) and resolves with
   * `[transport, protocol]` once `protocol.connectionMade()` ran. Rejects with
   * `WebSocketHandshakeError` (`status` set when the server answered with an HTTP
   * error), `ConnectionRefusedError`, `DnsError`, `TlsError`, `TimeoutError` (after
   * `handshakeTimeout`, default 10 s), `InvalidArgumentError` or `CancelledError`
   * (signal, or the awaiting task was cancelled).
   */
  createWebSocketConnection<P extends MessageProtocol>(protocolFactory: () => P, url: string | URL, options?: WebSocketConnectOptions): Promise<[WebSocketTransport, P]>;

  // ---------------------------------------------------- subprocesses

  /**
   * Starts `file` with `args` (never joined into a command line, no shell) and
   * connects it to the protocol `protocolFactory()` returns. stdin, stdout and stderr
   * default to `PIPE`. Resolves once the child runs and `connectionMade` was called.
   * Main thread only.
   *
   * ```ts
   * const [transport, protocol] = await loop.subprocessExec(() => new MyProtocol(), 'ls', ['-l']);
   * ```
   * @throws MainThreadOnlyError at once in a worker thread. Rejects with
   * InvalidArgumentError / InvalidSignalError for bad arguments; SubprocessError
   * (`code` ENOENT, EACCES, ...) when the child cannot be started;
   * `options.signal.reason` when the signal is already aborted; LoopClosedError on a
   * closed loop. Cancelling the awaiting task kills a child that was starting.
   */
  subprocessExec<P extends BaseProtocol>(protocolFactory: () => P, file: string, args?: readonly string[], options?: SubprocessOptions): Promise<[SubprocessTransport, P]>;
  /**
   * Runs `command` through `/bin/sh -c` (quoting is the caller's job) and connects it
   * to the protocol; otherwise as `subprocessExec()`.
   */
  subprocessShell<P extends BaseProtocol>(protocolFactory: () => P, command: string, options?: SubprocessOptions): Promise<[SubprocessTransport, P]>;

  // ------------------------------------------------------- executors

  /**
   * Runs `task(...args)` on `executor` (null: the loop's default executor, a
   * ThreadPoolExecutor created on first use) and returns a Future of its result.
   * Cancelling the future — or the task awaiting it — aborts the job. Throws at once
   * `LoopClosedError` on a closed loop, and `ExecutorShutdownError` (the executor, or
   * the default one after `shutdownDefaultExecutor()`), `NotCloneableError`,
   * `InvalidArgumentError` — except for the process's very first call, made while the
   * executors module loads: that call's future fails with them instead. The future
   * fails with what the job failed with (see docs/executors.md).
   */
  runInExecutor<A extends unknown[], R>(executor: Executor | null, task: WorkerTask<A, R>, ...args: A): Future<R>;
  /**
   * Sets the executor `runInExecutor(null, ...)` and `toThread()` use. The loop does
   * not shut a replaced one down. Throws `InvalidArgumentError` for a non-executor.
   */
  setDefaultExecutor(executor: Executor): void;
  /**
   * Shuts the default executor down and waits for its workers (asyncio's
   * `shutdown_default_executor`). After `timeout` ms (default: no limit) it logs a
   * warning and stops the workers still running. Afterwards `runInExecutor(null, ...)`
   * throws `ExecutorShutdownError`. `run()` calls it with a 300 000 ms timeout.
   */
  shutdownDefaultExecutor(timeout?: number): Promise<void>;

  // ------------------------------------------------- the thread bridge

  /**
   * Exposes `fn` to worker threads under `name` (replacing a handler of that name).
   * Workers call it with `callSoonThreadsafe(name, ...args)` (as a loop callback) or
   * `runCoroutineThreadsafe(name, ...args)` (as a task on this loop, whose result goes
   * back). Arguments and results are structured-cloned. Throws `InvalidArgumentError`
   * for an empty name or a non-function, `LoopClosedError` on a closed loop.
   */
  exposeThreadsafe(name: string, fn: ThreadsafeHandler): void;
  /** Withdraws the handler `name`; returns whether there was one. Calls already running go on. */
  unexposeThreadsafe(name: string): boolean;
  /**
   * A new endpoint of this loop's thread bridge: a MessagePort to hand to one worker
   * (`new Worker(file, { workerData: { bridge: port }, transferList: [port] })`), which
   * connects with `connectBridge(port)`. The endpoint closes with the loop. Throws
   * `LoopClosedError` on a closed loop.
   */
  bridgeEndpoint(): MessagePort;

  // --------------------------------------------------------- signals

  /**
   * Runs `callback(...args)` as a loop callback each time the process receives `sig`
   * (a name such as `'SIGUSR2'`, or its number). Replaces this loop's previous handler
   * for `sig`. Throws `MainThreadOnlyError` in a worker thread, `InvalidSignalError`
   * for a name this platform lacks or a signal that cannot be caught (SIGKILL,
   * SIGSTOP, and SIGSEGV/SIGBUS/SIGFPE/SIGILL, which Node cannot handle safely),
   * `InvalidArgumentError` when `callback` is not a function, and `LoopClosedError` on
   * a closed loop.
   */
  addSignalHandler<A extends unknown[]>(sig: NodeJS.Signals | number, callback: (...args: A) => unknown, ...args: A): void;
  /**
   * Removes this loop's handler for `sig`; returns whether there was one. When no other
   * listener remains, Node's default behaviour for the signal is back. Throws
   * `MainThreadOnlyError` in a worker thread and `InvalidSignalError` for an unknown
   * signal.
   */
  removeSignalHandler(sig: NodeJS.Signals | number): boolean;
}
