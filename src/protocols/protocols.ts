/**
 * Protocol contracts: the callbacks a transport calls, and in which order.
 *
 * Extend one of these classes and override what you need; every method has a no-op
 * default. A transport calls its protocol in this order, whatever happens:
 *
 * ```
 * connectionMade -> (dataReceived | messageReceived | datagramReceived | pipeDataReceived)*
 *                -> eofReceived? -> connectionLost        (exactly once)
 * pauseWriting / resumeWriting: any time between connectionMade and connectionLost,
 *                               alternating, starting with pauseWriting
 * ```
 *
 * An exception thrown from a protocol method goes to the loop's exception handler
 * (with `protocol` and `transport` in the context) and aborts the connection; it never
 * crashes the process.
 * @module
 */
import type { BaseTransport, DatagramTransport, Transport } from '../transports/transports.ts';

/** Where a datagram came from or goes to. */
export interface DatagramAddress {
  address: string;
  port: number;
  family?: 'IPv4' | 'IPv6';
}

/** The callbacks common to every protocol. */
export class BaseProtocol {
  /** The connection is up; `transport` is how to write and close. Called first, once. */
  connectionMade(_transport: BaseTransport): void {}
  /**
   * The connection is gone. Called last, exactly once. `exc` is undefined after a
   * regular close or EOF, and the error otherwise (typed: `ConnectionResetError`,
   * `TlsError`, ...).
   */
  connectionLost(_exc: Error | undefined): void {}
  /** The transport's write buffer went above its high-water mark: stop writing until {@link resumeWriting}. */
  pauseWriting(): void {}
  /** The transport's write buffer drained to its low-water mark or below: writing may resume. */
  resumeWriting(): void {}
}

/** A stream protocol (TCP, Unix, TLS): the data arrives as owned Buffers. */
export class Protocol extends BaseProtocol {
  override connectionMade(_transport: Transport): void {}
  /** Bytes arrived. The Buffer is yours to keep. */
  dataReceived(_data: Buffer): void {}
  /**
   * The peer closed its writing side. Return true to keep our writing side open
   * (half-close); otherwise the transport closes itself.
   */
  eofReceived(): boolean | void {}
}

/**
 * A stream protocol that supplies its own receive buffer: the fast path. The
 * transport reads straight into the buffer `getBuffer()` returns (through Node's
 * `onread`), with no allocation per read.
 */
export class BufferedProtocol extends BaseProtocol {
  override connectionMade(_transport: Transport): void {}
  /** Returns the buffer to read into (at least 1 byte). `sizeHint` is a suggestion, -1 for none. */
  getBuffer(_sizeHint: number): Uint8Array {
    throw new Error('BufferedProtocol.getBuffer() must be implemented');
  }
  /** `nbytes` bytes were written at the start of the buffer last returned by {@link getBuffer}. */
  bufferUpdated(_nbytes: number): void {}
  /** As {@link Protocol.eofReceived}. */
  eofReceived(): boolean | void {}
}

/** A datagram (UDP) protocol. */
export class DatagramProtocol extends BaseProtocol {
  override connectionMade(_transport: DatagramTransport): void {}
  /** A datagram arrived from `addr`. */
  datagramReceived(_data: Buffer, _addr: DatagramAddress): void {}
  /** A send or receive failed (ICMP unreachable, ...). The endpoint stays open. */
  errorReceived(_exc: Error): void {}
}

/** A message protocol (WebSocket): whole messages, text or binary. */
export class MessageProtocol extends BaseProtocol {
  /** A whole message arrived: a string for text messages, a Buffer for binary ones. */
  messageReceived(_data: Buffer | string, _isBinary: boolean): void {}
}

/** A subprocess protocol: the child's pipes and its exit. */
export class SubprocessProtocol extends BaseProtocol {
  /** The child wrote `data` to its stdout (fd 1) or stderr (fd 2). */
  pipeDataReceived(_fd: number, _data: Buffer): void {}
  /** One of the child's pipes closed. */
  pipeConnectionLost(_fd: number, _exc: Error | undefined): void {}
  /** The child exited (its pipes may still hold data). */
  processExited(): void {}
}
