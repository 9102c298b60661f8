/**
 * The subprocess transport: one child started through execa, its pipes, and the
 * protocol calls in asyncio's order (see `contract.ts` for the state diagram).
 *
 * Protocol calls are made straight from Node's events while the loop runs (as
 * asyncio's selector callbacks do); when it does not, they are queued with `callSoon`
 * in arrival order, and the read pipes are held once more than {@link BACKLOG_LIMIT}
 * bytes wait, so a stopped loop never buffers a child's output without bound.
 * Nothing is called once the loop is closed.
 * @module
 */
import { inspect } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import type { Writable, Readable } from 'node:stream';
import type { Result, ResultPromise } from 'execa';
import { execaLib } from '../loop/lazy.ts';
import { CancelledError, SubprocessError, TransportClosedError } from '../errors.ts';
import type { Future } from '../loop/future.ts';
import { outsideTask } from '../loop/internal.ts';
import { kDescribe } from '../loop/symbols.ts';
import { nodeDebug, nodeDebugEnabled, subprocessExitChannel, subprocessSpawnChannel } from '../loop/channels.ts';
import type { Loop } from '../loop/loop.ts';
import { trackResource, type ResourceToken } from '../loop/resources.ts';
import type { BaseProtocol } from '../protocols/protocols.ts';
import type { ReadTransport, WriteTransport } from '../transports/transports.ts';
import { TransportBase, asError } from '../transports/base.ts';
import type { ExitInfo, SubprocessTransport } from './contract.ts';
import { kHold, kOwner, kPipeClosed, kPipeData, kPipeFlow, kStop, kWaitFinished } from '../loop/symbols.ts';
import { STDOUT, toExecaOptions, type ResolvedOptions } from './options.ts';
import { ReadPipeTransport, WritePipeTransport, type PipeOwner } from './pipes.ts';
import { returncodeOf, signalName, type SignalLike } from './signals.ts';
import { release, supervise } from './supervisor.ts';

/** Undelivered output (bytes) queued while the loop is not running before the pipes are held. */
export const BACKLOG_LIMIT = 1024 * 1024;
/** How long stopping a child waits after SIGKILL for it to be reaped, ms. */
const REAP_WAIT = 2000;

type ProcessState = 'starting' | 'running' | 'exited' | 'finished' | 'failed';
type Event = 'connectionMade' | 'pipeDataReceived' | 'pipeConnectionLost' | 'processExited' | 'connectionLost' | 'pauseWriting' | 'resumeWriting';
type ExecaResult = Result<Record<string, never>>;
type OwnedChild = ChildProcess & { [kOwner]?: ExecaSubprocessTransport };

/** What the loop methods pass to start a child. @internal */
export interface SpawnRequest {
  file: string;
  args: readonly string[];
  shell: boolean;
  options: ResolvedOptions;
}

/** Describes a spawn failure: `failed to start 'x': executable not found (ENOENT)`. */
function spawnError(file: string, err: unknown): SubprocessError {
  const code = (err as { code?: unknown } | null)?.code;
  const errno = typeof code === 'string' ? code : undefined;
  const why =
    errno === 'ENOENT' ? 'executable or working directory not found' : errno === 'EACCES' ? 'permission denied (is it executable?)' : (err as Error | null)?.message ?? String(err);
  return new SubprocessError(`failed to start '${file}': ${why}${errno !== undefined && errno !== why ? ` (${errno})` : ''}`, { cause: err });
}

/** A child process started through execa and connected to a `SubprocessProtocol`. @internal */
export class ExecaSubprocessTransport extends TransportBase<BaseProtocol> implements SubprocessTransport, PipeOwner {
  #state: ProcessState = 'starting';
  /** Set by close(): the pipes are closed and a running child was killed. */
  #closed = false;
  readonly #file: string;
  readonly #args: readonly string[];
  readonly #options: ResolvedOptions;
  readonly #subprocess: ResultPromise;
  readonly #child: OwnedChild;
  #pid = 0;
  #returncode: number | null = null;
  #exitSignal: NodeJS.Signals | null = null;
  #result: ExecaResult | null = null;
  #exitInfo: ExitInfo | null = null;
  #forced = false;
  /** No protocol call at all: the create call was cancelled before the child ran. */
  #silent = false;
  readonly #pipes = new Map<number, ReadPipeTransport | WritePipeTransport>();
  #openPipes = 0;
  /** Protocol calls waiting in the loop's ready queue, and the bytes they carry. */
  #queued = 0;
  #backlog = 0;
  #held = false;
  readonly #spawned: Future<void>;
  #exitWaiters: Future<boolean>[] = [];
  #finishWaiters: Future<number>[] = [];
  #token: ResourceToken | null = null;
  /** connectionLost was delivered (or could not be: the loop closed). */
  #lostDone = false;

  /** Starts the child. Await {@link spawned} before using the transport. */
  constructor(loop: Loop, protocol: BaseProtocol, request: SpawnRequest) {
    super(loop, protocol);
    this.#file = request.file;
    this.#args = request.args ?? [];
    this.#options = request.options;
    this.#spawned = loop.createFuture<void>(`spawn ${request.file}`);
    // Created outside any task, so that the child's events never run in a task's context.
    // execa is loaded on first use: startSubprocess() awaits it before constructing.
    const { execa } = execaLib.value!;
    this.#subprocess = outsideTask(() => execa(request.file, request.args as string[], toExecaOptions(request.options, request.shell)));
    this.#child = this.#subprocess.nodeChildProcess;
    this.#child[kOwner] = this;
    this.#child.on('spawn', ExecaSubprocessTransport.#onSpawn);
    this.#child.on('error', ExecaSubprocessTransport.#onChildError);
    this.#child.on('exit', ExecaSubprocessTransport.#onExit);
    this.#subprocess.then(
      (result) => this.#onSettled(result as unknown as ExecaResult),
      (err: unknown) => this.#onSettled(null, err),
    );
    if (loop.getDebug()) loop.logger.debug(`execute program '${request.file}'${request.shell ? ' (shell)' : ''} ${this.#stdioSummary()}`);
  }

  /** A future done once the child runs (connectionMade was delivered), or failed with SubprocessError. */
  get spawned(): Future<void> {
    return this.#spawned;
  }

  // ------------------------------------------------------------ child events

  static #onSpawn(this: OwnedChild): void {
    // Node emits 'spawn' from a nextTick, and runs the nextTicks of a macrotask before its
    // microtasks: when the create call ran in a macrotask (a loop iteration started by
    // setImmediate), the await of `spawned` that would deliver a cancellation requested
    // meanwhile is still a queued microtask. Handled after it, a cancelled create call
    // kills the child without a protocol call, whichever way the iteration ran.
    queueMicrotask(ExecaSubprocessTransport.#spawnedNow.bind(this));
  }

  static #spawnedNow(this: OwnedChild): void {
    const t = this[kOwner]!;
    if (t.#state !== 'starting') return;
    t.#state = 'running';
    t.#pid = this.pid!;
    t.#connectPipes();
    supervise(t.loop, t);
    if (t.#closed || t.#spawned.cancelled()) {
      // The create call was cancelled while the child started: nobody will ever use it.
      t.#silent = true;
      t.#closed = true;
      for (const p of t.#pipes.values()) p.close();
      t.#signal('SIGKILL');
      return;
    }
    t.#token = trackResource(t.loop, 'subprocess transport', t, (owner) => owner.close());
    if (t.loop.getDebug()) t.loop.logger.debug(`process '${t.#file}' created: pid ${t.#pid}`);
    t.made = true;
    if (subprocessSpawnChannel.hasSubscribers) subprocessSpawnChannel.publish({ file: t.#file, args: t.#args, pid: t.#pid, transport: t });
    if (nodeDebugEnabled) nodeDebug('spawned %s (pid %d)', t.#file, t.#pid);
    t.#deliver('connectionMade', 0, t);
    if (!t.#spawned.done()) t.#spawned.setResult();
  }

  static #onChildError(this: OwnedChild, err: Error): void {
    const t = this[kOwner]!;
    if (t.#state === 'starting') {
      t.#fail(err);
      return;
    }
    // After the spawn only a failed kill() lands here (EPERM on a setuid child, ...).
    if (!t.loop.isClosed()) t.loop.callExceptionHandler({ message: `error from child process ${t.#pid}`, exception: err, transport: t });
  }

  static #onExit(this: OwnedChild, code: number | null, signal: NodeJS.Signals | null): void {
    const t = this[kOwner]!;
    if (t.#state !== 'running') return;
    t.#state = 'exited';
    t.#returncode = returncodeOf(code, signal);
    t.#exitSignal = signal;
    if (subprocessExitChannel.hasSubscribers) subprocessExitChannel.publish({ file: t.#file, args: t.#args, pid: t.#pid, returncode: t.#returncode, signal, transport: t });
    if (nodeDebugEnabled) nodeDebug('%s (pid %d) exited with return code %d', t.#file, t.#pid, t.#returncode);
    if (t.loop.getDebug()) t.loop.logger.debug(`${t} exited with return code ${t.#returncode}`);
    for (const w of t.#exitWaiters.splice(0)) if (!w.done()) w.setResult(true);
    t.#deliver('processExited', 0, undefined);
    t.#tryFinish();
  }

  #onSettled(result: ExecaResult | null, err?: unknown): void {
    // execa with `reject: false` resolves even on failure; a rejection would be a bug in it.
    this.#result = result ?? ({ timedOut: false, isCanceled: false, isForcefullyTerminated: false } as ExecaResult);
    if (this.#state === 'starting') {
      // A spawn that failed synchronously (EMFILE, EINVAL) never emits 'spawn' nor 'error'.
      const cause = (result as { cause?: unknown } | null)?.cause ?? err ?? new Error('the child could not be started');
      this.#fail(cause);
      return;
    }
    this.#tryFinish();
  }

  #fail(err: unknown): void {
    this.#state = 'failed';
    // Nothing leaks: the streams Node opened for the child are destroyed at once.
    for (const s of this.#child.stdio) (s as Readable | Writable | null)?.destroy();
    if (!this.#spawned.done()) this.#spawned.setException(spawnError(this.#file, err));
  }

  #connectPipes(): void {
    const { stdin, stdout, stderr } = this.#child;
    const o = this.#options;
    if (stdin !== null && o.stdin === 'pipe') this.#pipes.set(0, new WritePipeTransport(this.loop, this, stdin));
    if (stdout !== null && o.stdout === 'pipe') {
      const merged = stderr !== null && o.stderr === STDOUT ? [stdout, stderr] : [stdout];
      this.#pipes.set(1, new ReadPipeTransport(this.loop, this, 1, merged));
    }
    if (stderr !== null && o.stderr === 'pipe') this.#pipes.set(2, new ReadPipeTransport(this.loop, this, 2, [stderr]));
    this.#openPipes = this.#pipes.size;
  }

  // ---------------------------------------------------------- pipe events

  /** @internal */
  [kPipeData](fd: number, data: Buffer): void {
    this.#deliver('pipeDataReceived', fd, data);
  }

  /** @internal */
  [kPipeClosed](fd: number, exc: Error | undefined): void {
    this.#openPipes--;
    this.#deliver('pipeConnectionLost', fd, exc);
    this.#tryFinish();
  }

  /** @internal */
  [kPipeFlow](method: 'pauseWriting' | 'resumeWriting'): void {
    this.#deliver(method, 0, undefined);
  }

  #tryFinish(): void {
    if (this.#state !== 'exited' || this.#openPipes > 0 || this.#result === null) return;
    this.#state = 'finished';
    const r = this.#result;
    this.#exitInfo = {
      returncode: this.#returncode!,
      signal: this.#exitSignal,
      timedOut: r.timedOut === true,
      cancelled: r.isCanceled === true,
      forcefullyTerminated: r.isForcefullyTerminated === true || this.#forced,
    };
    // The one exit path: connectionLost follows with callSoon, after every call queued before it.
    this.forceClose(undefined);
  }

  protected override release(): void {
    this.#token?.untrack();
    release(this.loop, this);
  }

  protected override deliverLost(): void {
    if (!this.#silent && this.made) this.callProtocol('connectionLost');
  }

  protected override afterLost(): void {
    this.#lostDone = true;
    for (const w of this.#finishWaiters.splice(0)) if (!w.done()) w.setResult(this.#returncode!);
  }

  // ------------------------------------------------------ protocol calls

  #deliver(event: Event, fd: number, arg: unknown): void {
    const loop = this.loop;
    if (this.#silent || loop.isClosed()) return;
    if (this.#queued === 0 && loop.isRunning()) {
      this.#invoke(event, fd, arg);
      return;
    }
    this.#queued++;
    if (event === 'pipeDataReceived') {
      this.#backlog += (arg as Buffer).length;
      if (this.#backlog > BACKLOG_LIMIT) this.#hold(true);
    }
    loop.callSoon(ExecaSubprocessTransport.#runQueued, this, event, fd, arg);
  }

  static #runQueued(t: ExecaSubprocessTransport, event: Event, fd: number, arg: unknown): void {
    t.#queued--;
    if (event === 'pipeDataReceived') t.#backlog -= (arg as Buffer).length;
    if (t.#queued === 0 && t.#held) t.#hold(false);
    t.#invoke(event, fd, arg);
  }

  #hold(held: boolean): void {
    this.#held = held;
    for (const p of this.#pipes.values()) if (p instanceof ReadPipeTransport) p[kHold](held);
  }

  #invoke(event: Event, fd: number, arg: unknown): void {
    if (event === 'pipeDataReceived' || event === 'pipeConnectionLost') this.callProtocol(event, fd, arg);
    else if (event === 'connectionMade') this.callProtocol(event, this);
    else this.callProtocol(event);
  }

  /** This transport's policy for a throwing protocol (through the base's wrapper): report, then kill the child. */
  protected override protocolFailed(method: string, exception: unknown): void {
    this.loop.callExceptionHandler({ message: `Exception in ${method}() of the subprocess protocol: the child is killed`, exception: asError(exception), protocol: this.protocol, transport: this });
    if (method !== 'connectionLost') this.close();
  }

  // ---------------------------------------------------------- public API

  /** The child's process id (0 before it started). */
  getPid(): number {
    return this.#pid;
  }

  /** `null` while the child runs; its exit code, or minus the number of the signal that ended it. */
  getReturncode(): number | null {
    return this.#returncode;
  }

  /** How the child ended, once the transport finished; null before. */
  getExitInfo(): ExitInfo | null {
    return this.#exitInfo;
  }

  getPipeTransport(fd: 0): WriteTransport | null;
  getPipeTransport(fd: 1 | 2): ReadTransport | null;
  getPipeTransport(fd: number): WriteTransport | ReadTransport | null;
  /** The transport of pipe `fd` (0, 1 or 2), or null when that stream is not a pipe. */
  getPipeTransport(fd: number): WriteTransport | ReadTransport | null {
    return this.#pipes.get(fd) ?? null;
  }

  /**
   * Sends `signal` (to the whole group with `processGroup`). A child that already
   * exited is left alone.
   * @throws InvalidSignalError for an unknown signal; TransportClosedError after close().
   */
  sendSignal(signal: SignalLike): void {
    const name = signalName(signal, 'sendSignal()');
    if (this.#closed) throw new TransportClosedError(`the subprocess transport of pid ${this.#pid} is closed: it cannot send ${name}`);
    this.#signal(name);
  }

  /** Sends SIGTERM. @throws TransportClosedError after close(). */
  terminate(): void {
    this.sendSignal('SIGTERM');
  }

  /** Sends SIGKILL. @throws TransportClosedError after close(). */
  kill(): void {
    this.sendSignal('SIGKILL');
  }

  #signal(name: NodeJS.Signals): boolean {
    const s = this.#state;
    if (s === 'starting' || s === 'failed' || s === 'finished') return false;
    if (this.#options.processGroup) {
      // The group outlives its leader while members run (they may hold our pipes).
      try {
        return process.kill(-this.#pid, name);
      } catch {
        // The group is gone: fall through to the child itself.
      }
    }
    return s === 'running' ? this.#child.kill(name) : false;
  }

  /** Whether close() was called. */
  override isClosing(): boolean {
    return this.#closed;
  }

  /**
   * Closes the pipes and SIGKILLs the child if it still runs (its whole group with
   * `processGroup`). `connectionLost` follows once it is reaped. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.lifecycle === 'open') this.lifecycle = 'closing';
    this.#token?.untrack();
    for (const p of this.#pipes.values()) p.close();
    if (this.#state === 'running' || (this.#state === 'exited' && this.#options.processGroup)) {
      if (this.loop.getDebug() && this.#state === 'running') this.loop.logger.warn(`Close running child process: kill ${this}`);
      this.#signal('SIGKILL');
    }
  }

  /** `'subprocess'` (Node's ChildProcess), `'execa'` (execa's subprocess), `'pid'`. */
  getExtraInfo<T = unknown>(name: string, defaultValue?: T): T | undefined {
    if (name === 'subprocess') return this.#child as T;
    if (name === 'execa') return this.#subprocess as T;
    if (name === 'pid') return this.#pid as T;
    return defaultValue;
  }


  // ---------------------------------------------------------- supervision

  /** @internal A future resolved with the return code once the transport finished. */
  [kWaitFinished](): Future<number> {
    const f = this.loop.createFuture<number>(`wait() for pid ${this.#pid}`);
    if (this.#lostDone) f.setResult(this.#returncode!);
    else this.#finishWaiters.push(f);
    return f;
  }

  /** Resolves true once the child exited, false after `ms`. */
  async #waitExit(ms: number): Promise<boolean> {
    if (this.#state !== 'running') return true;
    const f = this.loop.createFuture<boolean>(`exit of pid ${this.#pid}`);
    this.#exitWaiters.push(f);
    const timer = this.loop.callLater(ms, () => {
      if (!f.done()) f.setResult(false);
    });
    try {
      return await f;
    } finally {
      timer.cancel();
    }
  }

  /**
   * @internal Stops the child the way protoloop does (loop shutdown): `killSignal`,
   * SIGKILL after the grace period, then closes the pipes and waits (bounded) until
   * the transport finished. Resolves whether it finished.
   */
  async [kStop](): Promise<boolean> {
    if (this.#state === 'starting' || this.#state === 'failed') return true;
    if (this.#state === 'running') {
      this.#signal(this.#options.killSignal);
      if (!(await this.#waitExit(this.#options.forceKillAfterDelay))) {
        this.#forced = true;
        this.#signal('SIGKILL');
        await this.#waitExit(REAP_WAIT);
      }
    }
    this.close();
    if (this.#state === 'finished') return true;
    const done = this[kWaitFinished]();
    const timer = this.loop.callLater(REAP_WAIT, () => done.cancel());
    try {
      await done;
      return true;
    } catch (e) {
      if (e instanceof CancelledError && done.cancelled()) return false;
      throw e;
    } finally {
      timer.cancel();
    }
  }

  #stdioSummary(): string {
    const o = this.#options;
    const name = (v: unknown): string => (v === null ? 'inherit' : String(v));
    return `stdin=${name(o.stdin)} stdout=${name(o.stdout)} stderr=${name(o.stderr)}`;
  }

  /** @internal */
  [kDescribe](): string {
    return this.toString();
  }

  override toString(): string {
    const parts = [`SubprocessTransport pid=${this.#pid}`, this.#state];
    if (this.#closed) parts.push('closed');
    if (this.#returncode !== null) parts.push(`returncode=${this.#returncode}`);
    parts.push(`'${this.#file}'`);
    return `<${parts.join(' ')}>`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }
}
