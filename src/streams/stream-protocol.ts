/**
 * StreamReaderProtocol: the glue between a transport and a StreamReader/StreamWriter
 * pair (asyncio's `StreamReaderProtocol` with its `FlowControlMixin`).
 *
 * ```
 * new --connectionMade--> open --connectionLost(exc?)--> lost
 * ```
 * Received bytes go to the reader; EOF is fed to the reader and keeps the write side
 * open (half-close), except over TLS; `connectionLost` ends the reader (EOF, or the
 * error) and wakes `drain()` and `waitClosed()` callers. On the server side,
 * `connectionMade` creates the writer and runs the client callback as a task; an
 * error escaping it goes to the loop's exception handler and closes the connection.
 * @module
 */
import { reportHandlerError } from '../transports/server-limits.ts';
import { inspect } from 'node:util';
import { ConnectionResetError } from '../errors.ts';
import type { Future } from '../loop/future.ts';
import type { Loop } from '../loop/loop.ts';
import type { Task } from '../loop/task.ts';
import type { Transport } from '../transports/transports.ts';
import { Protocol } from '../protocols/protocols.ts';
import { kAddDoneHandler, kCreateTaskCalling, kNameSource, kOnDone, kReplaceTransport, kTaskName } from '../loop/symbols.ts';
import type { StreamReader } from './stream-reader.ts';
import { StreamWriter } from './stream-writer.ts';

/** The callback `startServer()` runs (as a task) for each new connection. */
export type ClientConnectedCallback = (reader: StreamReader, writer: StreamWriter) => PromiseLike<unknown> | unknown;

type ProtocolState = 'new' | 'open' | 'lost';

/** @internal The protocol of a stream pair. Users meet it only as `writer.transport.getProtocol()`. */
export class StreamReaderProtocol extends Protocol {
  #state: ProtocolState = 'new';
  #reader: StreamReader | null;
  #clientConnected: ClientConnectedCallback | null;
  #transport: Transport | null = null;
  #lostExc: Error | undefined = undefined;
  // Flow control (asyncio's FlowControlMixin): drain() waits while the transport
  // says its write buffer is above the high-water mark.
  #writePaused = false;
  // Allocated on first use: most connections never wait on either.
  #drainWaiters: Future<void>[] | null = null;
  #closeWaiters: Future<void>[] | null = null;
  #task: Task<unknown> | null = null;
  readonly loop: Loop;

  constructor(reader: StreamReader, loop: Loop, clientConnected: ClientConnectedCallback | null = null) {
    super();
    this.#reader = reader;
    this.loop = loop;
    this.#clientConnected = clientConnected;
  }

  /** 'new' until connectionMade, 'open', then 'lost' once connectionLost ran. */
  get state(): ProtocolState {
    return this.#state;
  }

  /** The transport while the connection is up, else null. */
  get transport(): Transport | null {
    return this.#state === 'lost' ? null : this.#transport;
  }

  /** @internal Whether the transport asked us to stop writing (pauseWriting without resumeWriting yet). */
  get writePaused(): boolean {
    return this.#writePaused;
  }

  /** Whether connectionLost has run. */
  get lost(): boolean {
    return this.#state === 'lost';
  }

  override connectionMade(transport: Transport): void {
    this.#state = 'open';
    this.#transport = transport;
    const reader = this.#reader!;
    reader.setTransport(transport);
    const cb = this.#clientConnected;
    if (cb === null) return;
    const writer = new StreamWriter(transport, this, reader, this.loop);
    // The name (`client 127.0.0.1:PORT`) is made when first asked for (most never are),
    // from the transport, which keeps answering after the connection is lost: asking
    // once now makes the socket remember its peer.
    transport.getExtraInfo('peername');
    // The callback and its arguments go to the task's first step, and this protocol is
    // the done handler: no closure, context or bound function kept per connection.
    const task = this.loop[kCreateTaskCalling](cb, [reader, writer], { [kNameSource]: this });
    this.#task = task;
    task[kAddDoneHandler](this);
  }

  /** @internal The client callback's task is done: report its error, close the connection. */
  [kOnDone](task: Future<unknown>): void {
    const transport = this.transport;
    if (task.cancelled()) {
      transport?.close();
      return;
    }
    const exception = task.exception();
    if (exception === null) return;
    // A peer that dropped (reset, idle timeout, EOF mid-read) is not an error in user code.
    reportHandlerError(this.loop, exception, {
      message: 'Unhandled exception in the startServer() client callback',
      exception,
      task,
      protocol: this,
      transport,
    });
    transport?.close();
  }

  override dataReceived(data: Buffer): void {
    this.#reader?.feedData(data);
  }

  override eofReceived(): boolean {
    this.#reader?.feedEof();
    // Keep our writing side open (half-close) where the transport can half-close; asyncio
    // makes the same choice, and lets TLS transports (which could not) close.
    return this.#transport?.canWriteEof() ?? false;
  }

  override connectionLost(exc: Error | undefined): void {
    if (this.#state === 'lost') return;
    this.#state = 'lost';
    this.#lostExc = exc;
    const reader = this.#reader;
    if (reader !== null) {
      if (exc === undefined) reader.feedEof();
      else reader.setException(exc);
    }
    for (const w of this.#closeWaiters?.splice(0) ?? []) {
      if (w.done()) continue;
      if (exc === undefined) w.setResult();
      else w.setException(exc);
    }
    // Waiting drains learn about the loss (asyncio only wakes them if paused; they
    // can only be waiting if paused).
    for (const w of this.#drainWaiters?.splice(0) ?? []) {
      if (w.done()) continue;
      w.setException(exc ?? new ConnectionResetError('Connection lost'));
    }
    this.#reader = null;
    // A server-side protocol keeps its transport, where the client task's name comes from.
    if (this.#clientConnected === null) this.#transport = null;
    this.#task = null;
  }

  override pauseWriting(): void {
    this.#writePaused = true;
  }

  override resumeWriting(): void {
    this.#writePaused = false;
    for (const w of this.#drainWaiters?.splice(0) ?? []) if (!w.done()) w.setResult();
  }

  /** @internal drain(): waits while writing is paused; throws once the connection is lost. */
  async drainHelper(): Promise<void> {
    if (this.#state === 'lost') throw this.#lostExc ?? new ConnectionResetError('Connection lost');
    if (!this.#writePaused) return;
    await this.#waitIn((this.#drainWaiters ??= []), 'StreamWriter.drain()');
  }

  /** Waits on a new future kept in `waiters` until it is resolved (or the wait cancelled). */
  async #waitIn(waiters: Future<void>[], what: string): Promise<void> {
    const waiter = this.loop.createFuture<void>(what);
    waiters.push(waiter);
    try {
      await waiter;
    } finally {
      const i = waiters.indexOf(waiter);
      if (i !== -1) waiters.splice(i, 1);
    }
  }

  /** @internal waitClosed(): resolves once connectionLost ran, throws its error if it had one. */
  async waitClosed(): Promise<void> {
    if (this.#state === 'lost') {
      if (this.#lostExc !== undefined) throw this.#lostExc;
      return;
    }
    await this.#waitIn((this.#closeWaiters ??= []), 'StreamWriter.waitClosed()');
  }

  /** @internal After a TLS upgrade: the new transport carries the stream. */
  replaceTransport(transport: Transport): void {
    this.#transport = transport;
    this.#reader?.[kReplaceTransport](transport);
  }

  /** @internal Whether this protocol serves the server side (startServer). */
  get serverSide(): boolean {
    return this.#clientConnected !== null;
  }

  /** @internal The name of the client task (server side). */
  [kTaskName](): string {
    return `client ${formatPeer(this.#transport?.getExtraInfo<unknown>('peername'))}`;
  }

  override toString(): string {
    const parts = [`StreamReaderProtocol ${this.#state}`];
    if (this.#writePaused) parts.push('write-paused');
    if (this.#task !== null) parts.push(`task=${this.#task.getName()}`);
    return `<${parts.join(' ')}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

function formatPeer(peer: unknown): string {
  if (Array.isArray(peer)) return peer.join(':');
  if (peer !== null && typeof peer === 'object' && 'address' in peer) {
    const p = peer as { address: unknown; port?: unknown };
    return p.port === undefined ? String(p.address) : `${String(p.address)}:${String(p.port)}`;
  }
  return peer === undefined ? 'unknown peer' : String(peer);
}
