/**
 * `serveWorkers()`: one loop per core. The primary process runs no loop of its own: it
 * forks the workers (node:cluster), supervises them and turns signals into drains.
 *
 * A worker slot goes through
 * ```
 * starting --ready--> serving --drain--> draining --exit--> (gone)
 *     \________________\__crash (exit while not draining)__--> restarted after a backoff
 * ```
 * Crashes are counted over a sliding window; past `crashLimit` the pool stops every
 * worker and `done` rejects with {@link WorkerCrashLoopError}.
 * @module
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { InvalidArgumentError, InvalidStateError, RemoteError, WorkerCrashLoopError } from '../errors.ts';
import { envInspect } from '../loop/inspector.ts';
import { isWorkerMessage, WORKER_ENV, type WorkerSpec } from './messages.ts';
import { choosePortSharing, type PortSharing } from './port-sharing.ts';
import type { ListenHandle } from './listeners.ts';
import { startPoolInspector, type PoolInspector } from './inspect.ts';

const WORKER_FILE = fileURLToPath(new URL(`./worker-main${extname(new URL(import.meta.url).pathname)}`, import.meta.url));

/**
 * What a worker module's `serve()` returns: anything it can be stopped with. A
 * protoloop `Server` or `WebSocketServer` (drained: it stops listening, its clients get
 * up to 1 s to finish on their own, then `shutdown({ closeClients: true })`), or an
 * object with `close()` (the examples' `Served`). `url`/`port`, when given, are reported.
 */
export interface Served {
  shutdown?(options: { closeClients?: boolean; timeout?: number }): Promise<unknown>;
  close?(): unknown;
  url?: string;
  port?: number;
}

/** What every worker's `serve()` is called with. */
export interface WorkerServeOptions {
  /** Where to listen (as given to `serveWorkers`). */
  host?: string;
  /** The port every worker listens on (a free one picked by the primary when 0 was asked). */
  port: number;
  /**
   * Pass this on to `createServer()`: true when the kernel shares the port
   * (SO_REUSEPORT). A server that ignores it still shares the port, through
   * node:cluster's round-robin.
   */
  reusePort: boolean;
  /** The worker's slot, 1 to `workers` (kept across restarts). */
  workerId: number;
  [option: string]: unknown;
}

/** Options of {@link serveWorkers}. */
export interface ServeWorkersOptions {
  /** How many workers: a number, or `'auto'` (the default) for `os.availableParallelism()`. */
  workers?: number | 'auto';
  /** Given to `serve()`. */
  host?: string;
  /** Given to `serve()`; 0 (the default) has the primary pick one free port for all. */
  port?: number;
  /** More options given to every `serve()` (structured-clonable: they cross as JSON). */
  serveOptions?: Record<string, unknown>;
  /** The export to call. Default `'serve'`. */
  exportName?: string;
  /** `'auto'` (default): reusePort where the platform has it, else `'cluster'`. */
  portSharing?: PortSharing | 'auto';
  /** First restart delay after a crash, ms; doubles per crash of that slot. Default 100. */
  restartDelay?: number;
  /** Longest restart delay, ms. Default 5000. */
  maxRestartDelay?: number;
  /** Crashes tolerated within `crashWindow` before giving up. Default 5. */
  crashLimit?: number;
  /** The window of `crashLimit`, ms. Default 60_000. */
  crashWindow?: number;
  /** How long (ms) a worker may take to become ready. Default 30_000. */
  startTimeout?: number;
  /** How long (ms) a draining worker may take before its clients are aborted; it is killed 2 s later. Default 10_000. */
  drainTimeout?: number;
  /** SIGTERM/SIGINT drain the pool (exit code 0/130), SIGHUP restarts it worker by worker. Default true. */
  handleSignals?: boolean;
  /** Inspection for `protoloop ps <primary pid>` (and each worker's pid). Default: `PROTOLOOP_INSPECT` set. */
  inspect?: boolean;
  /** Where the pool writes its one-line notes. Default `console.error`. */
  log?: (line: string) => void;
}

/** One worker as {@link WorkerPool.workers} lists it. */
export interface WorkerInfo {
  /** Slot, 1-based. */
  id: number;
  pid: number;
  state: 'starting' | 'serving' | 'draining';
  /** Restarts of this slot after crashes. */
  restarts: number;
  /** When it was forked (ms since the epoch). */
  startedAt: number;
}

interface Slot {
  id: number;
  restarts: number;
  /** Consecutive crashes, for the backoff. */
  streak: number;
  timer: NodeJS.Timeout | null;
}

interface Live {
  slot: Slot;
  worker: Worker;
  info: WorkerInfo;
  /** Settled when the worker is ready (or failed to be). */
  ready: PromiseWithResolvers<void>;
  exited: PromiseWithResolvers<void>;
  killTimer: NodeJS.Timeout | null;
}

type PoolState = 'starting' | 'serving' | 'closing' | 'closed';

/** @internal The validated options of a pool. */
export interface PoolSettings {
  restartDelay: number;
  maxRestartDelay: number;
  crashLimit: number;
  crashWindow: number;
  startTimeout: number;
  drainTimeout: number;
  handleSignals: boolean;
  log: (line: string) => void;
}

function positiveMs(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new InvalidArgumentError(`serveWorkers() ${name} is a number of ms >= 0, got ${String(value)}`);
  return value;
}

/**
 * A running pool of workers. Made by {@link serveWorkers}.
 */
export class WorkerPool {
  /** How the port is shared: `'reusePort'` or `'cluster'`. */
  readonly portSharing: PortSharing;
  /** The port every worker listens on. */
  readonly port: number;
  /**
   * Resolves with the exit code the primary should end with once the pool is closed:
   * 0 after `close()` or SIGTERM, 130 after SIGINT. Rejects with
   * {@link WorkerCrashLoopError} when workers crash faster than `crashLimit` allows.
   * With `handleSignals`, `process.exitCode` is set to it too.
   */
  readonly done: Promise<number>;
  #state: PoolState = 'starting';
  #spec: Omit<WorkerSpec, 'workerId' | 'inherit'> & { inherit?: number };
  #o: PoolSettings;
  #live = new Set<Live>();
  #slots: Slot[] = [];
  #crashes: number[] = [];
  #done = Promise.withResolvers<number>();
  #closing: Promise<void> | null = null;
  #rolling: Promise<void> | null = null;
  #interrupts = 0;
  #inspector: PoolInspector | null = null;

  /** @internal Use {@link serveWorkers}. */
  constructor(spec: Omit<WorkerSpec, 'workerId' | 'inherit'> & { inherit?: number }, portSharing: PortSharing, port: number, count: number, o: PoolSettings) {
    this.#spec = spec;
    this.portSharing = portSharing;
    this.port = port;
    this.#o = o;
    this.done = this.#done.promise;
    // A rejection nobody awaited yet must not crash the primary: it is `done`'s to report.
    this.done.catch(() => undefined);
    for (let id = 1; id <= count; id++) this.#slots.push({ id, restarts: 0, streak: 0, timer: null });
  }

  /** The live workers (a restarting slot may briefly have two). */
  workers(): WorkerInfo[] {
    return [...this.#live].map((l) => ({ ...l.info })).sort((a, b) => a.id - b.id || a.startedAt - b.startedAt);
  }

  /** @internal Forks every slot and waits until all are ready. */
  async start(): Promise<void> {
    if (this.#o.handleSignals) this.#installSignals();
    if (this.#spec.inspect) this.#inspector = startPoolInspector(() => this.workers());
    try {
      await Promise.all(this.#slots.map((slot) => this.#fork(slot).ready.promise));
    } catch (err) {
      await this.#stopAll();
      this.#finish();
      throw err;
    }
    if (this.#state === 'starting') this.#state = 'serving';
  }

  /** Forks a worker for `slot`; `handles` are listening sockets for it to take over (reusePort rolls). */
  #fork(slot: Slot, handles: ListenHandle[] = []): Live {
    const spec: WorkerSpec = { ...this.#spec, workerId: slot.id, inherit: handles.length };
    const worker = cluster.fork({ [WORKER_ENV]: JSON.stringify(spec) });
    const live: Live = {
      slot,
      worker,
      info: { id: slot.id, pid: worker.process.pid ?? 0, state: 'starting', restarts: slot.restarts, startedAt: Date.now() },
      ready: Promise.withResolvers<void>(),
      exited: Promise.withResolvers<void>(),
      killTimer: null,
    };
    live.ready.promise.catch(() => undefined);
    this.#live.add(live);
    const startTimer = setTimeout(() => {
      live.ready.reject(new InvalidStateError(`worker ${slot.id} (pid ${live.info.pid}) was not ready within ${this.#o.startTimeout} ms`));
      worker.process.kill('SIGKILL');
    }, this.#o.startTimeout);
    worker.on('message', (m: unknown) => {
      if (!isWorkerMessage(m)) return;
      if (m.t === 'inherit') {
        // The worker listens for its predecessor's sockets now: send them.
        for (const h of handles) worker.send({ t: 'listener' }, h as never);
      } else if (m.t === 'drained') {
        // The worker reads its channel until this arrives: see messages.ts.
        if (worker.isConnected()) worker.send({ t: 'bye' });
      } else if (m.t === 'listeners' || m.t === 'listener') {
        // Answers to #takeListeners(), which listens for them itself.
      } else if (m.t === 'ready') {
        clearTimeout(startTimer);
        live.info.state = 'serving';
        slot.streak = 0;
        live.ready.resolve();
      } else {
        clearTimeout(startTimer);
        const name = /^(\w+): /.exec(m.message)?.[1] ?? 'Error';
        live.ready.reject(new RemoteError(name, `worker ${slot.id} failed to start: ${m.message}`, m.stack));
      }
    });
    worker.on('exit', (code, signal) => {
      clearTimeout(startTimer);
      if (live.killTimer !== null) clearTimeout(live.killTimer);
      this.#live.delete(live);
      const expected = live.info.state === 'draining';
      live.ready.reject(new InvalidStateError(`worker ${slot.id} exited (${signal ?? `code ${code}`}) before it was ready`));
      live.exited.resolve();
      if (!expected) this.#crashed(live, signal ?? `exit code ${code}`);
    });
    return live;
  }

  #crashed(live: Live, how: string): void {
    const slot = live.slot;
    if (this.#state === 'closing' || this.#state === 'closed') return;
    const now = Date.now();
    this.#crashes.push(now);
    while (this.#crashes.length > 0 && this.#crashes[0]! < now - this.#o.crashWindow) this.#crashes.shift();
    if (this.#crashes.length > this.#o.crashLimit) {
      const err = new WorkerCrashLoopError(this.#crashes.length, this.#o.crashWindow);
      this.#o.log(`protoloop: ${err.message}`);
      void this.#shutDown(err);
      return;
    }
    // A worker that never got ready while the pool starts: start() reports it.
    if (this.#state === 'starting' && live.info.state === 'starting') return;
    const delay = Math.min(this.#o.maxRestartDelay, this.#o.restartDelay * 2 ** slot.streak);
    slot.streak++;
    this.#o.log(`protoloop: worker ${slot.id} (pid ${live.info.pid}) crashed (${how}); restarting it in ${delay} ms`);
    slot.timer = setTimeout(() => {
      slot.timer = null;
      if (this.#state === 'closing' || this.#state === 'closed') return;
      slot.restarts++;
      this.#fork(slot).ready.promise.catch((err: unknown) => this.#o.log(`protoloop: worker ${slot.id} restart failed: ${(err as Error).message}`));
    }, delay);
  }

  #drain(live: Live): Promise<void> {
    if (live.info.state !== 'draining') {
      live.info.state = 'draining';
      try {
        live.worker.send({ t: 'drain' });
      } catch {
        live.worker.process.kill('SIGTERM');
      }
      live.killTimer = setTimeout(() => live.worker.process.kill('SIGKILL'), this.#o.drainTimeout + 2000);
    }
    return live.exited.promise;
  }

  async #stopAll(): Promise<void> {
    for (const slot of this.#slots) if (slot.timer !== null) clearTimeout(slot.timer);
    await Promise.all([...this.#live].map((l) => this.#drain(l)));
  }

  /**
   * Restarts the workers one at a time: a new worker for the slot is forked and ready
   * before the old one drains, so the port always has a listener. With reusePort the
   * new worker takes over the old one's listening sockets instead of binding new ones
   * (closing one would reset the connections in its accept queue; see listeners.ts).
   * Resolves when done; a new worker that fails to start stops the roll and leaves the
   * old one serving.
   */
  restart(): Promise<void> {
    if (this.#state !== 'serving') return Promise.reject(new InvalidStateError(`the pool is ${this.#state}: nothing to restart`));
    return (this.#rolling ??= this.#roll().finally(() => (this.#rolling = null)));
  }

  async #roll(): Promise<void> {
    this.#o.log(`protoloop: restarting ${this.#slots.length} worker(s) one at a time`);
    for (const slot of this.#slots) {
      if (this.#state !== 'serving') return;
      const old = [...this.#live].filter((l) => l.slot === slot);
      // reusePort: the new worker takes over the old one's sockets, so none is closed (listeners.ts).
      const handles = this.portSharing === 'reusePort' && old.length === 1 ? await this.#takeListeners(old[0]!) : [];
      const fresh = this.#fork(slot, handles);
      try {
        await fresh.ready.promise;
      } catch (err) {
        this.#o.log(`protoloop: restart stopped: ${(err as Error).message}`);
        throw err;
      } finally {
        // The new worker has its own descriptors now (or is gone): the primary's are not needed.
        for (const h of handles) h.close();
      }
      await Promise.all(old.map((l) => this.#drain(l)));
    }
    this.#o.log('protoloop: restart finished');
  }

  /**
   * Asks `live` for duplicates of its listening reusePort sockets. An answer that does
   * not come within 5 s (an old worker busy, or gone) gives none: the new worker then
   * binds sockets of its own, as at start.
   */
  #takeListeners(live: Live): Promise<ListenHandle[]> {
    return new Promise((resolve) => {
      const got: ListenHandle[] = [];
      let count = -1;
      const finish = (): void => {
        clearTimeout(timer);
        live.worker.off('message', onMessage);
        live.worker.off('exit', finish);
        resolve(got);
      };
      const onMessage = (m: unknown, handle: unknown): void => {
        if (!isWorkerMessage(m)) return;
        if (m.t === 'listeners') count = m.count;
        else if (m.t === 'listener' && handle != null) got.push(handle as ListenHandle);
        else return;
        if (got.length >= count && count >= 0) finish();
      };
      const timer = setTimeout(() => {
        this.#o.log(`protoloop: worker ${live.slot.id} (pid ${live.info.pid}) did not hand over its listening sockets; the new one binds its own`);
        finish();
      }, 5000);
      live.worker.on('message', onMessage);
      live.worker.once('exit', finish);
      try {
        live.worker.send({ t: 'handover' });
      } catch {
        finish();
      }
    });
  }

  /** Drains every worker; `done` then resolves with `exitCode` (default 0). Idempotent. */
  close(exitCode = 0): Promise<void> {
    return this.#shutDown(null, exitCode);
  }

  #shutDown(error: Error | null, exitCode = 0): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    this.#state = 'closing';
    this.#closing = (async () => {
      await this.#stopAll();
      this.#finish();
      if (error !== null) this.#done.reject(error);
      else this.#done.resolve(exitCode);
      if (this.#o.handleSignals) process.exitCode = error !== null ? 1 : exitCode;
    })();
    return this.#closing;
  }

  #finish(): void {
    this.#state = 'closed';
    this.#inspector?.close();
    this.#inspector = null;
    this.#removeSignals();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ------------------------------------------------------------ signals

  readonly #onTerm = (): void => {
    this.#o.log('protoloop: SIGTERM: draining the workers');
    void this.close(0);
  };

  readonly #onInt = (): void => {
    if (++this.#interrupts > 1) {
      // A second Ctrl-C: stop waiting.
      for (const l of this.#live) l.worker.process.kill('SIGKILL');
      process.exit(130);
    }
    this.#o.log('protoloop: SIGINT: draining the workers (again to kill them)');
    void this.close(130);
  };

  readonly #onHup = (): void => {
    if (this.#state !== 'serving') {
      this.#o.log(`protoloop: SIGHUP ignored: the pool is ${this.#state}`);
      return;
    }
    this.restart().catch(() => undefined);
  };

  #installSignals(): void {
    process.on('SIGTERM', this.#onTerm);
    process.on('SIGINT', this.#onInt);
    process.on('SIGHUP', this.#onHup);
  }

  #removeSignals(): void {
    process.off('SIGTERM', this.#onTerm);
    process.off('SIGINT', this.#onInt);
    process.off('SIGHUP', this.#onHup);
  }
}

let inUse = false;

/**
 * Starts `workers` processes, each running `moduleUrl`'s exported `serve()` (see
 * {@link WorkerServeOptions}) under its own loop with `run()`, all on one port.
 * Resolves once every worker is ready. Call it from the primary process only.
 *
 * Throws `InvalidArgumentError` on bad options, `InvalidStateError` from a cluster
 * worker or when a pool is already running in this process, and a `RemoteError` when
 * a worker fails to start (the module or its `serve()` threw).
 */
export async function serveWorkers(moduleUrl: string | URL, options: ServeWorkersOptions = {}): Promise<WorkerPool> {
  if (!cluster.isPrimary) throw new InvalidStateError('serveWorkers() runs in the primary process, not in a worker');
  if (inUse) throw new InvalidStateError('one serveWorkers() pool per process: node:cluster settings are process-wide');
  const url = moduleUrl instanceof URL ? moduleUrl.href : /^[a-z][a-z0-9+.-]*:/i.test(moduleUrl) && !/^[a-z]:[\\/]/i.test(moduleUrl) ? moduleUrl : pathToFileURL(moduleUrl).href;
  const w = options.workers ?? 'auto';
  const count = w === 'auto' ? availableParallelism() : w;
  if (!Number.isInteger(count) || count < 1) throw new InvalidArgumentError(`serveWorkers() workers is an integer >= 1 or 'auto', got ${String(w)}`);
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`serveWorkers() port is an integer from 0 to 65535, got ${String(port)}`);
  const wanted = options.portSharing ?? 'auto';
  if (wanted !== 'auto' && wanted !== 'reusePort' && wanted !== 'cluster') throw new InvalidArgumentError(`serveWorkers() portSharing is 'auto', 'reusePort' or 'cluster', got ${String(wanted)}`);
  const o: PoolSettings = {
    restartDelay: positiveMs('restartDelay', options.restartDelay, 100),
    maxRestartDelay: positiveMs('maxRestartDelay', options.maxRestartDelay, 5000),
    crashLimit: positiveMs('crashLimit', options.crashLimit, 5),
    crashWindow: positiveMs('crashWindow', options.crashWindow, 60_000),
    startTimeout: positiveMs('startTimeout', options.startTimeout, 30_000),
    drainTimeout: positiveMs('drainTimeout', options.drainTimeout, 10_000),
    handleSignals: options.handleSignals ?? true,
    log: options.log ?? ((line: string) => console.error(line)),
  };
  inUse = true;
  try {
    const { sharing, port: chosen } = await choosePortSharing(options.host, port, wanted);
    const serveOptions = { ...options.serveOptions, ...(options.host !== undefined ? { host: options.host } : {}), port: chosen, reusePort: sharing === 'reusePort' };
    // Round-robin in the primary (set before the first fork); the OS's choice spreads unevenly.
    cluster.schedulingPolicy = cluster.SCHED_RR;
    cluster.setupPrimary({ exec: WORKER_FILE, args: [] });
    const pool = new WorkerPool(
      { moduleUrl: url, exportName: options.exportName ?? 'serve', serveOptions, drainTimeout: o.drainTimeout, inspect: options.inspect ?? envInspect(), inherit: 0 },
      sharing,
      chosen,
      count,
      o,
    );
    await pool.start();
    void pool.done.finally(() => (inUse = false)).catch(() => undefined);
    return pool;
  } catch (err) {
    inUse = false;
    throw err;
  }
}
