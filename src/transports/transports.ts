/**
 * Transport contracts: what a protocol can ask of its transport. The machinery lives
 * in the other modules of src/transports.
 *
 * ```
 * open --close()--> closing --(buffer flushed)--> closed      connectionLost(undefined)
 * open --abort()-----------------------------------> closed   connectionLost(undefined)
 * open --(peer reset, error)-----------------------> closed   connectionLost(error)
 * ```
 * `close()` flushes what is buffered first; `abort()` drops it. Both are idempotent
 * and end in the same place: `connectionLost` is called exactly once.
 * @module
 */
import type { BaseProtocol, DatagramAddress } from '../protocols/protocols.ts';

/** What every transport offers. */
export interface BaseTransport {
  /** Extra information (`peername`, `sockname`, `socket`, `peercert`, `cipher`, ...), or `defaultValue`. */
  getExtraInfo<T = unknown>(name: string, defaultValue?: T): T | undefined;
  /** Whether the transport is closing or closed. */
  isClosing(): boolean;
  /** Closes the transport after flushing buffered data. Idempotent. */
  close(): void;
  /** Replaces the protocol. */
  setProtocol(protocol: BaseProtocol): void;
  /** The current protocol. */
  getProtocol(): BaseProtocol;
}

/** The reading side. */
export interface ReadTransport extends BaseTransport {
  /** Whether the transport is delivering received data. */
  isReading(): boolean;
  /** Stops delivering received data until {@link resumeReading} (the peer feels backpressure). Idempotent. */
  pauseReading(): void;
  /** Resumes delivering received data. Idempotent. */
  resumeReading(): void;
}

/** The writing side, with asyncio's flow control. */
export interface WriteTransport extends BaseTransport {
  /**
   * Sets the water marks, in bytes: above `high` the protocol's `pauseWriting()` is
   * called, at or below `low` its `resumeWriting()`. Defaults 64 KiB and 16 KiB; when
   * only one is given, `low = high / 4` or `high = 4 * low`.
   */
  setWriteBufferLimits(high?: number, low?: number): void;
  /** The current water marks. */
  getWriteBufferLimits(): [low: number, high: number];
  /** Bytes accepted by `write()` and not yet handed to the OS. */
  getWriteBufferSize(): number;
  /**
   * Writes bytes (a string is UTF-8 encoded). Never blocks; the bytes are copied if
   * they cannot be written at once, so the caller may reuse its buffer. Throws
   * `TransportClosedError` after `close()`/`abort()`/`writeEof()`.
   */
  write(data: Uint8Array | string): void;
  /** Writes each chunk of `list` in order. */
  writeLines(list: Iterable<Uint8Array | string>): void;
  /** Closes the writing side after flushing (half-close). */
  writeEof(): void;
  /** Whether {@link writeEof} is supported (not on TLS before Node's support, and not on WebSockets). */
  canWriteEof(): boolean;
  /** Closes at once, dropping buffered data. Idempotent. */
  abort(): void;
}

/** A bidirectional stream transport (TCP, Unix, TLS). */
export interface Transport extends ReadTransport, WriteTransport {}

/** A datagram transport (UDP). */
export interface DatagramTransport extends BaseTransport {
  /** Sends one datagram to `addr` (or to the connected remote address). */
  sendto(data: Uint8Array | string, addr?: DatagramAddress): void;
  /** Closes at once. */
  abort(): void;
  /** Bytes queued for sending. */
  getWriteBufferSize(): number;
}

/**
 * The server contract shared by TCP, Unix and WebSocket servers.
 *
 * ```
 * serving --close()--> closed (no new connections) --(clients gone)--> waitClosed() resolves
 * ```
 */
export interface ServerLike extends AsyncDisposable {
  /** Stops listening. Existing connections stay open (see `closeClients`/`abortClients`). Idempotent. */
  close(): void;
  /** Resolves once the server is closed and every connection it accepted is gone. */
  waitClosed(): Promise<void>;
  /** Starts accepting if the server was created with `startServing: false`. */
  startServing(): Promise<void>;
  /** Starts accepting and waits until the server is closed; cancelling the awaiting task closes it. */
  serveForever(): Promise<void>;
  /** Whether the server accepts connections. */
  isServing(): boolean;
  /** Closes every open connection gracefully (flushing). */
  closeClients(): void;
  /** Aborts every open connection. */
  abortClients(): void;
  /** `close()`, `closeClients()` and `waitClosed()`. */
  [Symbol.asyncDispose](): Promise<void>;
}
