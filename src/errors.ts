/**
 * Every error a protoloop user can meet, in one table.
 *
 * Each class is exported from the package and carries a stable `code`
 * (`ERR_PROTOLOOP_*`), except where the error comes from the OS or Node: then `code`,
 * `errno` and `syscall` are Node's (`ECONNREFUSED`, `-111`, `connect`) and the class
 * says which family it belongs to. The taxonomy follows Trio's: an operation fails because
 * *you* closed the resource ({@link TransportClosedError}), because the *peer*
 * broke it ({@link ConnectionResetError}, {@link BrokenPipeError}), or because
 * it is *busy* ({@link ResourceBusyError}). `test/errors.test.ts` checks this
 * table against `docs/errors.md`.
 *
 * @module
 */

// This module is the first that src/index.ts evaluates (it imports nothing), so an old
// Node stops here with one clear line instead of failing deep inside a dependency.
{
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  if (major < 22 || (major === 22 && minor < 19)) {
    throw new Error(`protoloop needs Node.js 22.19 or later (22, 24 and 26 are supported); this is Node ${process.versions.node}`);
  }
}

/** Base class of every protoloop error that is not one of the special families below. */
export class ProtoloopError extends Error {
  /** Stable machine-readable code, `ERR_PROTOLOOP_*`. */
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

// ---------------------------------------------------------------- loop core

/**
 * The operation was cancelled: thrown at the `await` of a cancelled task, and
 * by `result()` of a cancelled future. Let it propagate (or rethrow it) so the
 * task ends cancelled; catching it and returning ends the task normally.
 */
export class CancelledError extends ProtoloopError {
  constructor(message = 'the operation was cancelled', options?: ErrorOptions) {
    super('ERR_PROTOLOOP_CANCELLED', message, options);
  }
}

/** A future or task was used in a state that does not allow the call (result of a pending future, setting a done one). */
export class InvalidStateError extends ProtoloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_PROTOLOOP_INVALID_STATE', message, options);
  }
}

/** A deadline passed: `waitFor`, `timeout`, `timeoutAt`, `asCompleted`, and the TLS and WebSocket handshake timeouts. (`wait()` returns instead; a subprocess `timeout` ends the child and sets `timedOut`.) */
export class TimeoutError extends ProtoloopError {
  constructor(message = 'the operation timed out', options?: ErrorOptions) {
    super('ERR_PROTOLOOP_TIMEOUT', message, options);
  }
}

/** The loop is closed and refuses new work. Create a new `Loop` (or use `run()`). */
export class LoopClosedError extends ProtoloopError {
  constructor(message = 'Event loop is closed', options?: ErrorOptions) {
    super('ERR_PROTOLOOP_LOOP_CLOSED', message, options);
  }
}

/** The call needs a loop that is not running (close, a second runForever, a nested run). */
export class LoopRunningError extends ProtoloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_PROTOLOOP_LOOP_RUNNING', message, options);
  }
}

/** The call needs a running loop (`getRunningLoop()`, `sleep()` outside a loop). */
export class NoRunningLoopError extends ProtoloopError {
  constructor(message = 'no running event loop: call this from code that the loop runs (a task or a callback), or start one with run()', options?: ErrorOptions) {
    super('ERR_PROTOLOOP_NO_RUNNING_LOOP', message, options);
  }
}

/** `runUntilComplete()` returned because `stop()` was called before its future completed. */
export class LoopStoppedError extends ProtoloopError {
  constructor(message = 'Event loop stopped before Future completed.', options?: ErrorOptions) {
    super('ERR_PROTOLOOP_LOOP_STOPPED', message, options);
  }
}

/** `run(main, { strict: true })`: main returned but left tasks, transports, servers, timers, children or jobs open; `leaks` lists them (they were cleaned up). */
export class LeakError extends ProtoloopError {
  /** One line per thing left open, e.g. `task <Task pending name=worker>`. */
  readonly leaks: readonly string[];
  constructor(leaks: readonly string[], options?: ErrorOptions) {
    super('ERR_PROTOLOOP_LEAK', `main returned and left ${leaks.length} thing${leaks.length === 1 ? '' : 's'} open:\n  ${leaks.join('\n  ')}`, options);
    this.leaks = leaks;
  }
}

/** An argument or option has the wrong type or value. Raised eagerly, before any work starts. */
export class InvalidArgumentError extends ProtoloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_PROTOLOOP_INVALID_ARGUMENT', message, options);
  }
}

/** `run()` ended because SIGINT (Ctrl-C) cancelled the main task. Left uncaught, protoloop prints one line (no stack) and the process exits with code 130. */
export class KeyboardInterrupt extends ProtoloopError {
  constructor(message = 'interrupted by SIGINT', options?: ErrorOptions) {
    super('ERR_PROTOLOOP_INTERRUPTED', message, options);
  }
}

/** `run()` ended because SIGTERM (or another of its `signals` but SIGINT) cancelled the main task. Left uncaught, protoloop prints one line (no stack) and the process exits with `exitCode` (0: a requested stop). */
export class SystemExit extends ProtoloopError {
  /** The signal that stopped the run (`'SIGTERM'`). */
  readonly signal: NodeJS.Signals;
  /** The exit code the process gets when this error is left uncaught. */
  readonly exitCode: number;
  constructor(signal: NodeJS.Signals = 'SIGTERM', exitCode = 0, options?: ErrorOptions) {
    super('ERR_PROTOLOOP_SYSTEM_EXIT', `terminated by ${signal}`, options);
    this.signal = signal;
    this.exitCode = exitCode;
  }
}

/** A main-thread-only API (subprocesses, signal handlers) was called from a worker thread. */
export class MainThreadOnlyError extends ProtoloopError {
  constructor(what: string, options?: ErrorOptions) {
    super(
      'ERR_PROTOLOOP_MAIN_THREAD_ONLY',
      `${what} may only be used on the main thread; from a worker, ask the main loop through the thread bridge ` +
        `(expose a handler with loop.exposeThreadsafe() and call it with runCoroutineThreadsafe())`,
      options,
    );
  }
}

// ---------------------------------------------------- structured concurrency

/**
 * Several errors raised together, as by a task group whose children failed.
 * A subclass of `AggregateError`, so `errors` holds them.
 */
export class ExceptionGroup extends AggregateError {
  /** Stable machine-readable code. */
  readonly code = 'ERR_PROTOLOOP_EXCEPTION_GROUP';
  constructor(message: string, errors: Iterable<unknown>, options?: ErrorOptions) {
    super(errors, message, options);
    this.name = new.target.name;
  }
}

/** A `Barrier` was reset or aborted while tasks waited on it. */
export class BrokenBarrierError extends ProtoloopError {
  constructor(message = 'the barrier is broken', options?: ErrorOptions) {
    super('ERR_PROTOLOOP_BROKEN_BARRIER', message, options);
  }
}

/** `getNowait()` on an empty queue. */
export class QueueEmpty extends ProtoloopError {
  constructor(message = 'the queue is empty', options?: ErrorOptions) {
    super('ERR_PROTOLOOP_QUEUE_EMPTY', message, options);
  }
}

/** `putNowait()` on a full queue. */
export class QueueFull extends ProtoloopError {
  constructor(message = 'the queue is full', options?: ErrorOptions) {
    super('ERR_PROTOLOOP_QUEUE_FULL', message, options);
  }
}

/** `put()`/`get()` on a queue that was shut down. */
export class QueueShutDown extends ProtoloopError {
  constructor(message = 'the queue was shut down', options?: ErrorOptions) {
    super('ERR_PROTOLOOP_QUEUE_SHUT_DOWN', message, options);
  }
}

// ------------------------------------------------------ transports and streams

/** Closed by you: the transport or stream was already closed (or is closing) when you wrote to it. */
export class TransportClosedError extends ProtoloopError {
  constructor(message = 'the transport is closed', options?: ErrorOptions) {
    super('ERR_PROTOLOOP_TRANSPORT_CLOSED', message, options);
  }
}

/**
 * What Node reports about a system error. protoloop keeps these on its own error classes
 * so that Node's habit `err.code === 'EADDRINUSE'` works on them too.
 */
interface SystemErrorInfo {
  /** Node's code: `ECONNREFUSED`, `EADDRINUSE`, `ENOENT`, or OpenSSL's for TLS. */
  code: string;
  /** The negative libuv error number (`-111` for ECONNREFUSED on Linux), when there is one. */
  errno: number | undefined;
  /** The system call that failed (`connect`, `listen`, `getaddrinfo`, `spawn ls`), when known. */
  syscall: string | undefined;
}

/** Options of the error classes that wrap a Node error: its details are read from `cause`. */
export type SystemErrorOptions = ErrorOptions & {
  /** Node's code when `cause` does not carry one (a code protoloop detected itself). */
  code?: string;
};

/** Reads Node's `code`, `errno` and `syscall` off `cause`, when it has a string code. */
function systemErrorInfo(options: SystemErrorOptions | undefined): SystemErrorInfo | undefined {
  const cause = options?.cause as { code?: unknown; errno?: unknown; syscall?: unknown } | null | undefined;
  const causeCode = cause !== null && typeof cause === 'object' && typeof cause.code === 'string' ? cause.code : undefined;
  const code = options?.code ?? causeCode;
  if (code === undefined) return undefined;
  const fromCause = causeCode === code && cause !== null && typeof cause === 'object';
  return {
    code,
    errno: fromCause && typeof cause.errno === 'number' ? cause.errno : undefined,
    syscall: fromCause && typeof cause.syscall === 'string' ? cause.syscall : undefined,
  };
}

/**
 * A network operation failed. Base of the connection errors, and used as is for system errors with no more specific class (EADDRINUSE, ETIMEDOUT, EHOSTUNREACH, ...). When the OS or Node reported the error, `code`, `errno` and `syscall` are Node's (`err.code === 'EADDRINUSE'`); the class says which family it is.
 */
export class ConnectionError extends ProtoloopError {
  /** The code of a ConnectionError that neither the OS nor Node described. */
  static readonly GENERIC_CODE = 'ERR_PROTOLOOP_CONNECTION';
  /** The negative libuv error number, when the OS reported the error. */
  readonly errno: number | undefined;
  /** The system call that failed (`connect`, `listen`, `getaddrinfo`, ...), when known. */
  readonly syscall: string | undefined;
  /** `code` is used only when `options.cause` (or `options.code`) carries no code of Node's. */
  constructor(code: string, message: string, options?: SystemErrorOptions) {
    const info = systemErrorInfo(options);
    super(info?.code ?? code, message, options);
    this.errno = info?.errno;
    this.syscall = info?.syscall;
  }
}

/** Broken by the peer: the connection was reset (ECONNRESET) or ended before it should have. */
export class ConnectionResetError extends ConnectionError {
  constructor(message = 'the connection was reset by the peer', options?: SystemErrorOptions) {
    super('ERR_PROTOLOOP_CONNECTION_RESET', message, options);
  }
}

/** The peer refused the connection (ECONNREFUSED): nothing listens there. */
export class ConnectionRefusedError extends ConnectionError {
  constructor(message = 'the connection was refused', options?: SystemErrorOptions) {
    super('ERR_PROTOLOOP_CONNECTION_REFUSED', message, options);
  }
}

/** Broken by the peer: it closed its reading side while we were still writing (EPIPE). */
export class BrokenPipeError extends ConnectionError {
  constructor(message = 'the peer closed the pipe while we were writing', options?: SystemErrorOptions) {
    super('ERR_PROTOLOOP_BROKEN_PIPE', message, options);
  }
}

/** A host name could not be resolved (ENOTFOUND, EAI_AGAIN). */
export class DnsError extends ConnectionError {
  constructor(message: string, options?: SystemErrorOptions) {
    super('ERR_PROTOLOOP_DNS', message, options);
  }
}

/** The TLS handshake or a TLS record failed (bad certificate, plain text to a TLS port, ...); `code` is OpenSSL's or Node's (`DEPTH_ZERO_SELF_SIGNED_CERT`, `ERR_SSL_WRONG_VERSION_NUMBER`). */
export class TlsError extends ConnectionError {
  constructor(message: string, options?: SystemErrorOptions) {
    super('ERR_PROTOLOOP_TLS', message, options);
  }
}

/** Busy: another task is already waiting on this resource (two concurrent reads of one StreamReader). */
export class ResourceBusyError extends ProtoloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_PROTOLOOP_BUSY', message, options);
  }
}

/** The stream ended before the requested bytes arrived; `partial` holds what did. */
export class IncompleteReadError extends ProtoloopError {
  /** The bytes read before the end of the stream. */
  readonly partial: Buffer;
  /** How many bytes were wanted (`null` for "until the separator"). */
  readonly expected: number | null;
  constructor(partial: Buffer, expected: number | null, options?: ErrorOptions) {
    super(
      'ERR_PROTOLOOP_INCOMPLETE_READ',
      `${partial.length} bytes read on a total of ${expected === null ? 'undefined' : expected} expected bytes`,
      options,
    );
    this.partial = partial;
    this.expected = expected;
  }
}

/** A line or separator-terminated chunk is longer than the stream's `limit`; `consumed` bytes are still in the buffer. */
export class LimitOverrunError extends ProtoloopError {
  /** How many bytes of the buffer the search covered. */
  readonly consumed: number;
  constructor(message: string, consumed: number, options?: ErrorOptions) {
    super('ERR_PROTOLOOP_LIMIT_OVERRUN', message, options);
    this.consumed = consumed;
  }
}

/** `sendfile()` cannot use a zero-copy path here and `fallback` was false. */
export class SendfileNotAvailableError extends ProtoloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_PROTOLOOP_SENDFILE_NOT_AVAILABLE', message, options);
  }
}

// ----------------------------------------------------------------- WebSocket

/** A WebSocket connection ended with a close code other than a normal one; `closeCode` and `reason` say why. */
export class WebSocketError extends ProtoloopError {
  /** The WebSocket close code (1002 protocol error, 1007 invalid data, 1009 too big, ...). */
  readonly closeCode: number;
  /** The close reason, possibly empty. */
  readonly reason: string;
  constructor(message: string, closeCode: number, reason = '', options?: ErrorOptions) {
    super('ERR_PROTOLOOP_WEBSOCKET', message, options);
    this.closeCode = closeCode;
    this.reason = reason;
  }
}

/** The WebSocket opening handshake failed (bad status, wrong path, rejected origin); `status` is the HTTP status when there was one. */
export class WebSocketHandshakeError extends ProtoloopError {
  /** The HTTP status of the refusal, when there was one. */
  readonly status: number | undefined;
  constructor(message: string, status?: number, options?: ErrorOptions) {
    super('ERR_PROTOLOOP_WEBSOCKET_HANDSHAKE', message, options);
    this.status = status;
  }
}

/** The peer did not answer a heartbeat ping in time; its connection was aborted. */
export class HeartbeatTimeoutError extends ProtoloopError {
  constructor(message = 'the peer did not answer the heartbeat ping in time', options?: ErrorOptions) {
    super('ERR_PROTOLOOP_HEARTBEAT_TIMEOUT', message, options);
  }
}

/**
 * A server limit ended the connection: no byte was read or written for the server's
 * `idleTimeout`. Given to the protocol's `connectionLost` (or thrown by the stream
 * reader); only that connection is closed.
 */
export class IdleTimeoutError extends ProtoloopError {
  constructor(message = 'the connection was idle for longer than idleTimeout', options?: ErrorOptions) {
    super('ERR_PROTOLOOP_IDLE_TIMEOUT', message, options);
  }
}

// -------------------------------------------------------------- subprocesses

/** A child process could not be started (executable missing, permission denied); `code`, `errno` and `syscall` are Node's (`ENOENT`, `EACCES`, `spawn ls`) when the OS said why. */
export class SubprocessError extends ProtoloopError {
  /** The negative libuv error number, when the OS reported the error. */
  readonly errno: number | undefined;
  /** The system call that failed (`spawn ls`), when known. */
  readonly syscall: string | undefined;
  constructor(message: string, options?: SystemErrorOptions) {
    const info = systemErrorInfo(options);
    super(info?.code ?? 'ERR_PROTOLOOP_SUBPROCESS', message, options);
    this.errno = info?.errno;
    this.syscall = info?.syscall;
  }
}

/**
 * `communicate()` read more than `maxBuffer` bytes from one of the child's streams: the
 * child was stopped (its `killSignal`) and reaped; `stdout` and `stderr` hold what was
 * read (at most `maxBuffer` bytes each; null for a stream that is not a pipe).
 */
export class MaxBufferError extends ProtoloopError {
  /** The stream that went over the limit. */
  readonly stream: 'stdout' | 'stderr';
  /** The limit, bytes. */
  readonly maxBuffer: number;
  /** What was read from stdout. */
  readonly stdout: Buffer | null;
  /** What was read from stderr. */
  readonly stderr: Buffer | null;
  constructor(stream: 'stdout' | 'stderr', maxBuffer: number, stdout: Buffer | null, stderr: Buffer | null, options?: ErrorOptions) {
    super('ERR_PROTOLOOP_MAX_BUFFER', `the child's ${stream} went over communicate()'s maxBuffer of ${maxBuffer} bytes: the child was stopped (raise maxBuffer, or read the stream yourself)`, options);
    this.stream = stream;
    this.maxBuffer = maxBuffer;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

// ---------------------------------------------------- executors and threads

/** The executor was shut down: it takes no new jobs, and `cancelFutures` cancelled the queued ones. */
export class ExecutorShutdownError extends ProtoloopError {
  constructor(message = 'the executor was shut down', options?: ErrorOptions) {
    super('ERR_PROTOLOOP_EXECUTOR_SHUTDOWN', message, options);
  }
}

/** A worker thread or process died while running a job. The pool replaces it. */
export class WorkerCrashedError extends ProtoloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_PROTOLOOP_WORKER_CRASHED', message, options);
  }
}

/** An error thrown in a worker, carried back with its class name (`remoteName`), message and the worker's stack. */
export class RemoteError extends ProtoloopError {
  /** The class name of the error in the worker (`TypeError`, ...). */
  readonly remoteName: string;
  /** The stack as the worker printed it. */
  readonly remoteStack: string | undefined;
  constructor(remoteName: string, message: string, remoteStack?: string, options?: ErrorOptions) {
    super('ERR_PROTOLOOP_REMOTE', message, options);
    this.remoteName = remoteName;
    this.remoteStack = remoteStack;
  }
}

/** An executor task names a module that cannot be loaded or an export that is not a function. */
export class TaskModuleError extends ProtoloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_PROTOLOOP_TASK_MODULE', message, options);
  }
}

/** An argument or result cannot cross a thread (structured clone failed). Raised in the caller. */
export class NotCloneableError extends ProtoloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_PROTOLOOP_NOT_CLONEABLE', message, options);
  }
}

/** A thread-bridge call failed: no handler by that name, or the main loop closed before answering. */
export class BridgeError extends ProtoloopError {
  constructor(code: 'ERR_PROTOLOOP_BRIDGE_UNKNOWN_HANDLER' | 'ERR_PROTOLOOP_BRIDGE_CLOSED', message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

/** `addSignalHandler()` got a name that is not a signal this platform can handle. */
export class InvalidSignalError extends ProtoloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_PROTOLOOP_INVALID_SIGNAL', message, options);
  }
}

// ---------------------------------------------------------------- scale-out

/**
 * A connection's PROXY protocol header was refused: `ERR_PROTOLOOP_PROXY_UNTRUSTED` when
 * the peer is not in `trustedProxies`, `ERR_PROTOLOOP_PROXY_MALFORMED` when the header
 * does not parse, is incomplete, or is late. Only that connection is closed.
 */
export class ProxyProtocolError extends ProtoloopError {
  constructor(code: 'ERR_PROTOLOOP_PROXY_UNTRUSTED' | 'ERR_PROTOLOOP_PROXY_MALFORMED', message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

/**
 * `serveWorkers()` gave up: workers kept crashing faster than the restart policy allows
 * (`crashes` crashes within `windowMs`). Fix what makes `serve()` fail, then start again.
 */
export class WorkerCrashLoopError extends ProtoloopError {
  /** Crashes counted within the window. */
  readonly crashes: number;
  /** The window, ms. */
  readonly windowMs: number;
  constructor(crashes: number, windowMs: number, options?: ErrorOptions) {
    super('ERR_PROTOLOOP_WORKER_CRASH_LOOP', `workers crashed ${crashes} times within ${windowMs} ms: stopped restarting them (see the worker errors logged above)`, options);
    this.crashes = crashes;
    this.windowMs = windowMs;
  }
}
