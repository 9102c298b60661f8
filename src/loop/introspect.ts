/**
 * Snapshots of a loop's state for `protoloop ps`, `pstree` and `stats`: what each
 * task is, how old, what it awaits and who started it.
 * @module
 */
import { Future } from './future.ts';
import { kSourceTraceback, kStats } from './symbols.ts';
import type { Loop } from './loop.ts';
import { Task } from './task.ts';

/** One task, as `protoloop ps` prints it. */
export interface TaskInfo {
  /** Unique number in creation order. */
  id: number;
  name: string;
  /** `waiting` (on a protoloop future), `pending` (scheduled, or in foreign code). */
  state: 'waiting' | 'pending';
  /** Cancellation requests pending (`task.cancelling()`). */
  cancelling: number;
  /** Milliseconds since the task was created. */
  ageMs: number;
  /** What the task awaits: a future's description (`sleep(100 ms)`, `Lock.acquire()`, ...) or `Task <name>`. */
  awaiting: string | null;
  /** The id of the task it awaits, when it awaits a task. */
  awaitingTask: number | null;
  /** The id and name of the task that created it. */
  parent: number | null;
  parentName: string | null;
  /** Where it was created (debug mode only). */
  createdAt: string | null;
}

/** A loop's counters and rates, as `protoloop stats` prints them. */
export interface LoopSnapshot {
  pid: number;
  debug: boolean;
  running: boolean;
  uptimeMs: number;
  /** Loop lag: how late a 100 ms timer fired, last and max over the last minute (ms). */
  lagMs: { last: number; max: number };
  rates: { callbacksPerSec: number; taskStepsPerSec: number; iterationsPerSec: number };
  totals: { callbacks: number; iterations: number; tasksCreated: number; taskSteps: number; slowCallbacks: number };
  tasksPending: number;
  openResources: Record<string, number>;
  /** The slowest of the last slow callbacks (debug mode, or timed for a subscriber), slowest first: what ran, how long, how long ago (ms). */
  slowRecent: { what: string; durationMs: number; agoMs: number }[];
  extra: Record<string, unknown>;
}

function describeAwaited(fut: Future<unknown>): string {
  if (fut instanceof Task) return `Task ${fut.getName()}`;
  return fut.description ?? fut.constructor.name;
}

function creationSite(task: Task<unknown>): string | null {
  const tb = task[kSourceTraceback];
  if (tb === undefined) return null;
  // Most recent call last: the last line outside protoloop's own files is the site.
  const lines = tb.split('\n').map((l) => l.trim());
  const own = /[/\\]src[/\\](loop|transports|protocols|subprocess|fastify)[/\\]/;
  return lines.reverse().find((l) => !own.test(l)) ?? lines[0] ?? null;
}

/** The pending tasks of `loop`, oldest first. */
export function taskInfos(loop: Loop): TaskInfo[] {
  const now = loop.time();
  return [...loop.pendingTasks()]
    .sort((a, b) => a.id - b.id)
    .map((t) => {
      const w = t.awaiting();
      return {
        id: t.id,
        name: t.getName(),
        state: w !== null ? 'waiting' : 'pending',
        cancelling: t.cancelling(),
        ageMs: Math.max(0, now - t.createdAt),
        awaiting: w !== null ? describeAwaited(w) : null,
        awaitingTask: w instanceof Task ? w.id : null,
        parent: t.parent?.id ?? null,
        parentName: t.parent?.getName() ?? null,
        createdAt: creationSite(t),
      };
    });
}

const providers = new WeakMap<Loop, Map<string, () => unknown>>();

/** Adds a named section to `protoloop stats` for `loop` (the executors' queues, ...). @internal */
export function registerStatsProvider(loop: Loop, name: string, provider: () => unknown): void {
  let m = providers.get(loop);
  if (m === undefined) providers.set(loop, (m = new Map()));
  m.set(name, provider);
}

/** @internal Samples the loop's lag and rates while inspection is on. */
export class LoopMonitor {
  readonly #loop: Loop;
  readonly #started: number;
  #timer: ReturnType<Loop['callLater']> | null = null;
  #expected = 0;
  #lags: number[] = [];
  #last = { t: 0, callbacks: 0, steps: 0, iterations: 0 };
  #rates = { callbacksPerSec: 0, taskStepsPerSec: 0, iterationsPerSec: 0 };

  constructor(loop: Loop) {
    this.#loop = loop;
    this.#started = loop.time();
    const s = loop[kStats];
    this.#last = { t: loop.time(), callbacks: s.callbacks, steps: s.taskSteps, iterations: s.iterations };
  }

  start(): void {
    this.#schedule();
  }

  stop(): void {
    this.#timer?.cancel();
    this.#timer = null;
  }

  #schedule(): void {
    if (this.#loop.isClosed()) return;
    this.#expected = this.#loop.time() + 100;
    this.#timer = this.#loop.callLater(100, LoopMonitor.#tick, this);
  }

  static #tick(m: LoopMonitor): void {
    const loop = m.#loop;
    const now = loop.time();
    m.#lags.push(Math.max(0, now - m.#expected));
    if (m.#lags.length > 600) m.#lags.shift();
    const dt = (now - m.#last.t) / 1000;
    if (dt >= 1) {
      const s = loop[kStats];
      m.#rates = {
        callbacksPerSec: (s.callbacks - m.#last.callbacks) / dt,
        taskStepsPerSec: (s.taskSteps - m.#last.steps) / dt,
        iterationsPerSec: (s.iterations - m.#last.iterations) / dt,
      };
      m.#last = { t: now, callbacks: s.callbacks, steps: s.taskSteps, iterations: s.iterations };
    }
    m.#schedule();
  }

  snapshot(): LoopSnapshot {
    const loop = this.#loop;
    const s = loop[kStats];
    const st = loop.stats();
    const extra: Record<string, unknown> = {};
    for (const [name, fn] of providers.get(loop) ?? []) {
      try {
        extra[name] = fn();
      } catch (e) {
        extra[name] = { error: String(e) };
      }
    }
    return {
      pid: process.pid,
      debug: loop.getDebug(),
      running: loop.isRunning(),
      uptimeMs: loop.time() - this.#started,
      lagMs: { last: this.#lags.at(-1) ?? 0, max: this.#lags.length ? Math.max(...this.#lags) : 0 },
      rates: this.#rates,
      totals: { callbacks: s.callbacks, iterations: s.iterations, tasksCreated: s.tasksCreated, taskSteps: s.taskSteps, slowCallbacks: s.slowCallbacks },
      tasksPending: st.tasksPending,
      openResources: st.openResources,
      slowRecent: [...loop.recentSlowCallbacks()]
        .sort((a, b) => b.durationMs - a.durationMs)
        .slice(0, 5)
        .map((r) => ({ what: r.what, durationMs: r.durationMs, agoMs: loop.time() - r.at })),
      extra,
    };
  }
}
