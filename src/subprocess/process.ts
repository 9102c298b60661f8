/**
 * The high-level subprocess API: `createSubprocessExec()` / `createSubprocessShell()`
 * return a {@link Process} whose pipes are a StreamWriter (stdin) and StreamReaders
 * (stdout, stderr), as asyncio's `asyncio.subprocess`.
 *
 * ```
 * running --(child exits and its pipes close)--> finished     wait() resolves
 * ```
 * Cancelling a task that awaits `wait()` or `communicate()` cancels the waiting, not
 * the child: it keeps running (asyncio's rule). Stop it with `terminate()`/`kill()`,
 * the `timeout`/`signal` options, or `await using` (stops it politely on scope exit).
 * Whatever is left when `run()` ends or the loop closes is stopped for you.
 * @module
 */
import { inspect } from 'node:util';
import { BrokenPipeError, ConnectionResetError, InvalidArgumentError, MaxBufferError } from '../errors.ts';
import { assertMainThread } from '../loop/debug.ts';
import { gather } from '../concurrency/gather.ts';
import { getRunningLoop, type Loop } from '../loop/loop.ts';
import { SubprocessProtocol } from '../protocols/protocols.ts';
import { StreamReaderProtocol } from '../streams/stream-protocol.ts';
import { checkLimit, StreamReader } from '../streams/stream-reader.ts';
import { StreamWriter } from '../streams/stream-writer.ts';
import type { Transport } from '../transports/transports.ts';
import type { SubprocessTransport } from './contract.ts';
import { kStop, kWaitFinished } from '../loop/symbols.ts';
import { subprocessArea } from '../loop/lazy.ts';
import type { startSubprocess } from './loop-methods.ts';
import { checkArgs, checkCommand, INHERIT, resolveOptions, type SubprocessOptions } from './options.ts';
import { signalName, type SignalLike } from './signals.ts';
import { WritePipeTransport } from './pipes.ts';
import type { ExecaSubprocessTransport } from './transport.ts';

/** Options of {@link createSubprocessExec} and {@link createSubprocessShell}. */
export interface ProcessOptions extends SubprocessOptions {
  /** The `limit` of the stdout/stderr StreamReaders, bytes (longest line; reading pauses above twice this). Default 64 KiB. */
  limit?: number;
}

/** Options of {@link Process.communicate}. */
export interface CommunicateOptions {
  /**
   * The most bytes kept from each of stdout and stderr. Past it the child is stopped
   * (`killSignal`, SIGKILL after `forceKillAfterDelay`), reaped, and communicate()
   * rejects with MaxBufferError carrying the output read so far (at most this much per
   * stream). `Infinity` keeps everything. Default 100 MB (100,000,000 bytes, execa's).
   */
  maxBuffer?: number;
}

/** communicate()'s default `maxBuffer`: 100 MB (100,000,000 bytes, as execa's). @internal */
export const DEFAULT_MAX_BUFFER = 100_000_000;
// How much communicate() takes from a reader at a time.
const COMMUNICATE_CHUNK = 64 * 1024;

function checkMaxBuffer(options: unknown): number {
  if (options === undefined) return DEFAULT_MAX_BUFFER;
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError(`communicate() options must be an object, got ${inspect(options, { depth: 0 })}`);
  for (const key of Object.keys(options)) {
    if (key !== 'maxBuffer') throw new InvalidArgumentError(`unknown communicate() option '${key}'`);
  }
  const { maxBuffer } = options as CommunicateOptions;
  if (maxBuffer === undefined) return DEFAULT_MAX_BUFFER;
  if (typeof maxBuffer !== 'number' || !(maxBuffer >= 0) || (maxBuffer !== Infinity && !Number.isInteger(maxBuffer))) {
    throw new InvalidArgumentError(`options.maxBuffer must be a whole number of bytes (>= 0) or Infinity, got ${inspect(maxBuffer)}`);
  }
  return maxBuffer;
}

/** The protocol behind a {@link Process}: feeds the readers, flow-controls the writer (asyncio's SubprocessStreamProtocol). @internal */
class SubprocessStreamProtocol extends SubprocessProtocol {
  stdin: StreamWriter | null = null;
  stdout: StreamReader | null = null;
  stderr: StreamReader | null = null;
  readonly #loop: Loop;
  readonly #limit: number;
  #transport: SubprocessTransport | null = null;
  /** Carries drain()/waitClosed() of the stdin writer. */
  #stdinProtocol: StreamReaderProtocol | null = null;
  #openReaders = new Set<number>();
  #exited = false;

  constructor(loop: Loop, limit: number) {
    super();
    this.#loop = loop;
    this.#limit = limit;
  }

  override connectionMade(transport: SubprocessTransport): void {
    this.#transport = transport;
    for (const fd of [1, 2] as const) {
      const pipe = transport.getPipeTransport(fd);
      if (pipe === null) continue;
      const reader = new StreamReader({ limit: this.#limit, loop: this.#loop });
      reader.setTransport(pipe);
      if (fd === 1) this.stdout = reader;
      else this.stderr = reader;
      this.#openReaders.add(fd);
    }
    const stdin = transport.getPipeTransport(0);
    if (stdin !== null) {
      // The writer's flow control and loss reporting are a stream protocol's; its
      // reader is never fed (stdin is write-only).
      const proto = new StreamReaderProtocol(new StreamReader({ loop: this.#loop }), this.#loop);
      this.#stdinProtocol = proto;
      this.stdin = new StreamWriter(stdin as unknown as Transport, proto, null, this.#loop);
    }
  }

  override pipeDataReceived(fd: number, data: Buffer): void {
    (fd === 1 ? this.stdout : fd === 2 ? this.stderr : null)?.feedData(data);
  }

  override pipeConnectionLost(fd: number, exc: Error | undefined): void {
    if (fd === 0) {
      // Lost without an error and not closed by us: the child exited (or closed it).
      // drain() then says the pipe broke, which is what happened.
      const pipe = this.#transport?.getPipeTransport(0);
      const byUs = pipe instanceof WritePipeTransport && pipe.closedByUs;
      this.#stdinProtocol?.connectionLost(exc ?? (byUs ? undefined : new BrokenPipeError("the child's stdin pipe is closed (the child exited or closed it)")));
      return;
    }
    const reader = fd === 1 ? this.stdout : fd === 2 ? this.stderr : null;
    if (reader !== null) {
      if (exc === undefined) reader.feedEof();
      else reader.setException(exc);
    }
    this.#openReaders.delete(fd);
    this.#maybeCloseTransport();
  }

  override processExited(): void {
    this.#exited = true;
    this.#maybeCloseTransport();
  }

  override pauseWriting(): void {
    this.#stdinProtocol?.pauseWriting();
  }

  override resumeWriting(): void {
    this.#stdinProtocol?.resumeWriting();
  }

  #maybeCloseTransport(): void {
    if (this.#openReaders.size === 0 && this.#exited) this.#transport?.close();
  }
}

/**
 * A child process started by {@link createSubprocessExec} or
 * {@link createSubprocessShell} (asyncio's `Process`).
 */
export class Process implements AsyncDisposable {
  readonly #transport: ExecaSubprocessTransport;
  readonly #loop: Loop;
  /** The child's process id (the shell's, for {@link createSubprocessShell}). */
  readonly pid: number;
  /** The child's stdin with `stdin: PIPE`, else null. */
  readonly stdin: StreamWriter | null;
  /** The child's stdout with `stdout: PIPE`, else null. */
  readonly stdout: StreamReader | null;
  /** The child's stderr with `stderr: PIPE`, else null (with `STDOUT` it arrives on {@link stdout}). */
  readonly stderr: StreamReader | null;

  /** @internal Use createSubprocessExec()/createSubprocessShell(). */
  constructor(transport: ExecaSubprocessTransport, protocol: SubprocessStreamProtocol, loop: Loop) {
    this.#transport = transport;
    this.#loop = loop;
    this.pid = transport.getPid();
    this.stdin = protocol.stdin;
    this.stdout = protocol.stdout;
    this.stderr = protocol.stderr;
  }

  /** `null` while the child runs; then its exit code, or minus the signal number that ended it (`-9` after SIGKILL). */
  get returncode(): number | null {
    return this.#transport.getReturncode();
  }

  /** The name of the signal that ended the child (`'SIGKILL'`), or null. */
  get signal(): NodeJS.Signals | null {
    const rc = this.#transport.getReturncode();
    return rc !== null && rc < 0 ? signalName(-rc, 'returncode') : null;
  }

  /** Whether the `timeout` option stopped the child (known once {@link wait} resolved). */
  get timedOut(): boolean {
    return this.#transport.getExitInfo()?.timedOut === true;
  }

  /** Whether the `signal` option (an AbortSignal) stopped the child (known once {@link wait} resolved). */
  get cancelled(): boolean {
    return this.#transport.getExitInfo()?.cancelled === true;
  }

  /** The subprocess transport (low-level access: pipes, extra info). */
  get transport(): SubprocessTransport {
    return this.#transport;
  }

  /**
   * Waits until the child exited and its pipes closed; returns {@link returncode}.
   * Cancelling the awaiting task leaves the child running; a later `wait()` works.
   * Unread PIPE output can block the child: read it, or use {@link communicate}.
   */
  async wait(): Promise<number> {
    return await this.#transport[kWaitFinished]();
  }

  /**
   * Writes `input` to stdin and closes it, reads stdout and stderr to their end (all
   * at once, so large input and output cannot deadlock), waits for the exit, and
   * returns `[stdout, stderr]` (null for a stream that is not a pipe). A child that
   * stops reading its stdin early is not an error. Cancelling the awaiting task stops
   * the reading and writing; the child keeps running.
   *
   * At most `maxBuffer` bytes (default 100 MB) are kept per stream: a child writing
   * more is stopped (its `killSignal`, SIGKILL after `forceKillAfterDelay`) and reaped,
   * and the call rejects with MaxBufferError, which holds the output read so far.
   * `communicate({ maxBuffer })` is `communicate(undefined, { maxBuffer })`.
   * @throws InvalidArgumentError when `input` is given without `stdin: PIPE`, is not
   * bytes, or an option is bad; MaxBufferError past `maxBuffer`.
   */
  async communicate(input?: Uint8Array | string, options?: CommunicateOptions): Promise<[stdout: Buffer | null, stderr: Buffer | null]>;
  async communicate(options: CommunicateOptions): Promise<[stdout: Buffer | null, stderr: Buffer | null]>;
  async communicate(input?: Uint8Array | string | CommunicateOptions, options?: CommunicateOptions): Promise<[stdout: Buffer | null, stderr: Buffer | null]> {
    let data: Uint8Array | string | undefined;
    if (input !== null && typeof input === 'object' && !(input instanceof Uint8Array) && options === undefined) options = input;
    else data = input as Uint8Array | string | undefined;
    if (data !== undefined) {
      if (typeof data !== 'string' && !(data instanceof Uint8Array)) throw new InvalidArgumentError(`communicate() input must be a Buffer, Uint8Array or string, got ${inspect(data, { depth: 0 })}`);
      if (this.stdin === null) throw new InvalidArgumentError('communicate(input) needs stdin: PIPE');
    }
    const maxBuffer = checkMaxBuffer(options);
    const loop = this.#loop;
    const { stdin, stdout, stderr } = this;
    // The first stream over maxBuffer, and the stopping of the child it started.
    let over: 'stdout' | 'stderr' | null = null;
    let stopping: PromiseLike<boolean> | null = null;
    const collect = async (reader: StreamReader, stream: 'stdout' | 'stderr'): Promise<Buffer> => {
      const blocks: Buffer[] = [];
      let size = 0;
      for (;;) {
        const block = await reader.read(COMMUNICATE_CHUNK);
        if (block.length === 0) break;
        if (size + block.length > maxBuffer) {
          blocks.push(block.subarray(0, maxBuffer - size));
          size = maxBuffer;
          over ??= stream;
          // Stopped at once, not after the other stream's end: a child blocked on this
          // full pipe would never end the other one.
          stopping ??= loop.createTask(() => this.#transport[kStop](), { name: `communicate maxBuffer stop pid ${this.pid}` });
          break;
        }
        blocks.push(block);
        size += block.length;
      }
      return blocks.length === 1 ? blocks[0]! : Buffer.concat(blocks, size);
    };
    const [, out, err] = await gather([
      stdin === null ? Promise.resolve(null) : loop.createTask(() => this.#feedStdin(stdin, data), { name: `communicate stdin pid ${this.pid}` }),
      stdout === null ? Promise.resolve(null) : loop.createTask(() => collect(stdout, 'stdout'), { name: `communicate stdout pid ${this.pid}` }),
      stderr === null ? Promise.resolve(null) : loop.createTask(() => collect(stderr, 'stderr'), { name: `communicate stderr pid ${this.pid}` }),
    ]);
    if (stopping !== null) {
      await stopping;
      throw new MaxBufferError(over!, maxBuffer, out, err);
    }
    await this.wait();
    return [out, err];
  }

  async #feedStdin(stdin: StreamWriter, input: Uint8Array | string | undefined): Promise<null> {
    try {
      if (input !== undefined && input.length > 0) stdin.write(input);
      await stdin.drain();
    } catch (e) {
      // The child stopped reading (or exited): what it did not read is dropped, as asyncio does.
      if (!(e instanceof BrokenPipeError) && !(e instanceof ConnectionResetError)) throw e;
    }
    stdin.close();
    return null;
  }

  /** Sends `signal` (to the whole group with `processGroup`); a child that exited is left alone. @throws InvalidSignalError for an unknown signal. */
  sendSignal(signal: SignalLike): void {
    const name = signalName(signal, 'sendSignal()');
    if (this.returncode !== null || this.#transport.isClosing()) return;
    this.#transport.sendSignal(name);
  }

  /** Sends SIGTERM. */
  terminate(): void {
    this.sendSignal('SIGTERM');
  }

  /** Sends SIGKILL. */
  kill(): void {
    this.sendSignal('SIGKILL');
  }

  /**
   * Stops the child if it still runs (`killSignal`, SIGKILL after
   * `forceKillAfterDelay`) and waits until it is reaped: `await using proc = ...`.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#transport[kStop]();
  }

  toString(): string {
    const rc = this.returncode;
    return `<Process ${this.pid} ${rc === null ? 'running' : `returncode=${rc}`}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}

function splitOptions(options: ProcessOptions | undefined): [number, SubprocessOptions | undefined] {
  if (options === undefined || options === null || typeof options !== 'object') return [checkLimit(undefined), options];
  const { limit, ...rest } = options;
  return [checkLimit(limit), rest];
}

async function createProcess(loop: Loop, limit: number, request: Parameters<typeof startSubprocess>[2]): Promise<Process> {
  // The spawning code (and execa) loads on the first child, not with import('protoloop').
  const [transport, protocol] = await subprocessArea.use((m) => m.startSubprocess(loop, () => new SubprocessStreamProtocol(loop, limit), request));
  return new Process(transport, protocol, loop);
}

/**
 * Starts `file` with `args` on the running loop (no shell; arguments are passed as
 * they are, never joined) and returns its {@link Process}. stdin, stdout and stderr
 * are inherited unless set to PIPE, DEVNULL or (stderr) STDOUT. Main thread only.
 *
 * ```ts
 * const proc = await createSubprocessExec('git', ['log', '-1'], { stdout: PIPE });
 * const [out] = await proc.communicate();
 * ```
 * @throws MainThreadOnlyError at once in a worker thread; InvalidArgumentError /
 * InvalidSignalError for bad arguments (at once); SubprocessError (`code` ENOENT,
 * EACCES, ...) when it cannot start; NoRunningLoopError outside a loop.
 */
export function createSubprocessExec(file: string, args?: readonly string[], options?: ProcessOptions): Promise<Process> {
  assertMainThread('createSubprocessExec()');
  const [limit, rest] = splitOptions(options);
  const request = { file: checkCommand(file, 'file'), args: checkArgs(args), shell: false, options: resolveOptions(rest, INHERIT) };
  return createProcess(getRunningLoop(), limit, request);
}

/**
 * Runs `command` through `/bin/sh -c` on the running loop (quoting is the caller's
 * job) and returns its {@link Process}; `pid` is the shell's. Otherwise as
 * {@link createSubprocessExec}.
 */
export function createSubprocessShell(command: string, options?: ProcessOptions): Promise<Process> {
  assertMainThread('createSubprocessShell()');
  const [limit, rest] = splitOptions(options);
  const request = { file: checkCommand(command, 'command'), args: [], shell: true, options: resolveOptions(rest, INHERIT) };
  return createProcess(getRunningLoop(), limit, request);
}
