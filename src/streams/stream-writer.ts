/**
 * StreamWriter: the writing half of a stream pair, a thin layer over the transport
 * that adds `drain()` (flow control as an await) and `waitClosed()`.
 *
 * ```
 * open --close()--> closing --(connection lost)--> closed
 * open --(peer reset / error)-----------------> closed    (drain() and waitClosed() throw the error)
 * ```
 * Pair every burst of `write()` calls with `await writer.drain()`: `write()` never
 * blocks, so without `drain()` a peer that does not read makes the buffer grow.
 * @module
 */
import { inspect } from 'node:util';
import { CancelledError } from '../errors.ts';
import type { Loop } from '../loop/loop.ts';
import { sleep } from '../loop/sleep.ts';
import type { StartTlsOptions, TlsClientOptions, TlsServerOptions } from '../transports/net/tls.ts';
import type { Transport } from '../transports/transports.ts';
import type { StreamReaderProtocol } from './stream-protocol.ts';
import type { StreamReader } from './stream-reader.ts';

type WriterState = 'open' | 'closing' | 'closed';

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * Options of {@link StreamWriter.startTls}: Node's TLS options for the side the stream
 * is on (client: `ca`, `servername`, `rejectUnauthorized`, ...; server: `key`, `cert`,
 * ...), plus `handshakeTimeout` in ms (default 60_000).
 */
export type StreamStartTlsOptions = TlsClientOptions | TlsServerOptions;

/**
 * The writing half of a stream pair, made by `openConnection()` and passed to the
 * `startServer()` callback. `await using writer = ...` closes it (and waits) at the
 * end of the block.
 */
export class StreamWriter implements AsyncDisposable {
  #transport: Transport;
  readonly #protocol: StreamReaderProtocol;
  readonly #reader: StreamReader | null;
  readonly #loop: Loop;

  /** @internal Made by the streams helpers. */
  constructor(transport: Transport, protocol: StreamReaderProtocol, reader: StreamReader | null, loop: Loop) {
    this.#transport = transport;
    this.#protocol = protocol;
    this.#reader = reader;
    this.#loop = loop;
  }

  /** The underlying transport. */
  get transport(): Transport {
    return this.#transport;
  }

  /** `'open'`, `'closing'` (closed by us, flushing) or `'closed'` (the connection is gone). */
  get state(): WriterState {
    if (this.#protocol.lost) return 'closed';
    return this.#transport.isClosing() ? 'closing' : 'open';
  }

  /**
   * Writes bytes (a string is UTF-8 encoded). Never blocks: follow with {@link drain}.
   * The bytes may be reused by the caller right after the call.
   * @throws TransportClosedError after `close()` or `writeEof()`.
   */
  write(data: Uint8Array | string): void {
    this.#transport.write(data);
  }

  /** Writes each chunk in order. As {@link write}. */
  writeLines(list: Iterable<Uint8Array | string>): void {
    this.#transport.writeLines(list);
  }

  /** Closes the writing side once the buffer is flushed (TCP half-close). */
  writeEof(): void {
    this.#transport.writeEof();
  }

  /** Whether {@link writeEof} is supported (not over TLS). */
  canWriteEof(): boolean {
    return this.#transport.canWriteEof();
  }

  /** Closes the connection after flushing what is buffered. Idempotent. */
  close(): void {
    this.#transport.close();
  }

  /** Whether the writer is closing or closed. */
  isClosing(): boolean {
    return this.#transport.isClosing();
  }

  /** Extra information of the transport (`peername`, `sockname`, `socket`, `peercert`, `cipher`, ...), or `defaultValue`. */
  getExtraInfo<T = unknown>(name: string, defaultValue?: T): T | undefined {
    return this.#transport.getExtraInfo<T>(name, defaultValue);
  }

  /**
   * Waits until the write buffer is at or below the low-water mark (at once if it is
   * not above the high-water mark). Several tasks may drain at once.
   * @throws the error the connection was lost with, or `ConnectionResetError` if it
   * was lost cleanly (writing to it would be useless); the reader's error if the
   * stream failed; `CancelledError` if the task is cancelled while waiting.
   */
  drain(): Promise<void> {
    const exc = this.#reader?.exception();
    if (exc !== undefined) return Promise.reject(exc as Error);
    const protocol = this.#protocol;
    // The common case, checked without awaiting anything: nothing to wait for (and
    // no promise made: awaiting the shared resolved one is all it costs).
    if (!protocol.writePaused && !protocol.lost && !this.#transport.isClosing()) return RESOLVED;
    return this.#drainSlow();
  }

  async #drainSlow(): Promise<void> {
    // A closing transport may be about to call connectionLost: let it, so that the
    // loss is reported here rather than at the next drain.
    if (this.#transport.isClosing()) await sleep(0);
    await this.#protocol.drainHelper();
  }

  /**
   * Resolves once the connection is closed (after {@link close}, or when the peer
   * closes it). Throws the error the connection was lost with, if any.
   */
  async waitClosed(): Promise<void> {
    await this.#protocol.waitClosed();
  }

  /**
   * Upgrades the connection to TLS (STARTTLS-style), on the client side for
   * `openConnection()` streams and on the server side for `startServer()` ones. Drains
   * first; the reader and writer keep working over the new TLS transport.
   * @throws TlsError when the handshake fails; as {@link drain}.
   */
  async startTls(options: StreamStartTlsOptions = {}): Promise<void> {
    await this.drain();
    const serverSide = this.#protocol.serverSide;
    const tlsOptions = { ...options, serverSide } as StartTlsOptions;
    const next = await this.#loop.startTls(this.#transport, this.#protocol, tlsOptions);
    this.#transport = next;
    this.#protocol.replaceTransport(next);
  }

  /** Closes and waits until closed; an error the connection was lost with is not rethrown here. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    try {
      await this.waitClosed();
    } catch (e) {
      // Cancellation must still propagate; connection errors were the reads' business.
      if (e instanceof CancelledError) throw e;
    }
  }

  toString(): string {
    return `<StreamWriter ${this.state} transport=${String(this.#transport)}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}
