/**
 * Debug-mode machinery: timing of task steps and callbacks, the way every trap report
 * reads, and the main-thread guard.
 *
 * Every trap report is an exception-handler context (asyncio's shape: `message`,
 * `exception`, `task`/`future`/`handle`/`coroutine`/`transport`, `sourceTraceback`),
 * plus two protoloop keys: `level` (`'warn'` for reports that are not errors, such as
 * slow callbacks; absent means `'error'`) and `hint` (what to do about it). The
 * default handler logs the context at its level; a custom handler (Sentry, a test)
 * receives every report.
 *
 * Costs: nothing here runs unless a loop is in debug mode. The promise hooks that time
 * task steps are installed while a debug loop runs and removed when it stops.
 * @module
 */
import { inspect } from 'node:util';
import { promiseHooks } from 'node:v8';
import { performance } from 'node:perf_hooks';
import { MainThreadOnlyError } from '../errors.ts';
import { isMainThread, outsideTask, taskStorage } from './internal.ts';
import { kSourceTraceback, kStats } from './symbols.ts';
import type { Handle } from './handle.ts';
import type { ExceptionContext, Loop } from './loop.ts';
import type { Task } from './task.ts';

// ------------------------------------------------------------- main thread

/**
 * Throws {@link MainThreadOnlyError} when called off the main thread. Main-thread-only
 * APIs (subprocesses, signal handlers) call it first, so a worker learns at once,
 * with the way out (the thread bridge) in the message.
 *
 * ```ts
 * assertMainThread('loop.subprocessExec()');
 * ```
 */
export function assertMainThread(what: string): void {
  if (!isMainThread) throw new MainThreadOnlyError(what);
}

// ---------------------------------------------------------------- hints

/** What to do about each trap: the `hint` of its report. */
export const hints = {
  neverAwaited: 'await it, or schedule it with loop.createTask(); a coroutine does nothing until then',
  taskNeverRetrieved: 'await the task (or read task.exception() in a done callback) so that its error is handled',
  futureNeverRetrieved: 'await the future (or read future.exception()) so that its error is handled',
  destroyedPending: 'await or cancel the task before the loop closes; run() cancels and awaits leftover tasks for you',
  slow: 'move blocking work off the loop with toThread() or loop.runInExecutor(), or split it with await sleep(0)',
  unclosed: "close it (or use 'await using') when you are done with it",
  leftovers: 'await the tasks you start (or run them in a taskGroup()) so that main finishes after them',
} as const;

// ------------------------------------------------------------- formatting

/** Context keys printed first, in this order: the objects a report is about. */
const SUBJECT_KEYS = ['task', 'future', 'handle', 'coroutine', 'protocol', 'transport', 'server', 'socket'];
/** Keys that are data for handlers, not lines for people. */
const DATA_KEYS = new Set(['message', 'exception', 'level', 'durationMs', 'hint', 'sourceTraceback', 'handleTraceback']);

/**
 * Formats an exception context as the default handler logs it: the message, one line
 * per context key (the objects involved first; a key whose text the message already
 * shows is left out), the creation stack, then the hint. Without debug mode a report
 * that could carry a creation stack says how to get one.
 * @internal
 */
export function formatExceptionContext(context: ExceptionContext, debug = true): string {
  const message = context.message || 'Unhandled exception in event loop';
  const lines = [message];
  const keys = Object.keys(context);
  const ordered = [...SUBJECT_KEYS.filter((k) => keys.includes(k)), ...keys.filter((k) => !SUBJECT_KEYS.includes(k) && !DATA_KEYS.has(k)).sort()];
  for (const key of ordered) {
    const value = context[key];
    if (value === undefined) continue;
    const text = render(value);
    if (text.length > 0 && message.includes(text)) continue;
    lines.push(text.startsWith('\n') ? `${key}:${text}` : `${key}: ${text}`);
  }
  const stack = context.sourceTraceback;
  if (stack) {
    const label = context.coroutine !== undefined && context.task === undefined ? 'Coroutine object created at' : 'source_traceback: Object created at';
    lines.push(`${label} (most recent call last):\n${stack}`);
  }
  if (context.handleTraceback) lines.push(`handle_traceback: Handle created at (most recent call last):\n${String(context.handleTraceback)}`);
  if (typeof context.hint === 'string') {
    const more = !debug && !context.sourceTraceback ? ' (PROTOLOOP_DEBUG=1 shows where it was created)' : '';
    lines.push(`hint: ${context.hint}${more}`);
  }
  return lines.join('\n');
}

function render(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map((v) => `\n  ${render(v)}`).join('');
  return inspect(value, { depth: 1, breakLength: Infinity });
}

/** The log level of a context: `context.level` when it is one the logger has, else `'error'`. @internal */
export function contextLevel(context: ExceptionContext): 'debug' | 'info' | 'warn' | 'error' {
  const level = context.level;
  return level === 'debug' || level === 'info' || level === 'warn' ? level : 'error';
}

// ------------------------------------------------------------ slow callbacks

/**
 * Reports a loop handle that ran for `ms` milliseconds (debug mode). A task's first
 * step runs as a handle: the report names the task, not the loop's step function.
 * @internal
 */
export function reportSlowHandle(loop: Loop, handle: Handle, ms: number): void {
  const subject = handle.subject();
  if (subject !== null && typeof subject === 'object') {
    reportSlowTask(loop, subject as Task<unknown>, ms);
    return;
  }
  loop.reportSlow(handle.toString(), ms, { handle, sourceTraceback: handle[kSourceTraceback] });
}

function reportSlowTask(loop: Loop, task: Task<unknown>, ms: number): void {
  loop.reportSlow(task.toString(), ms, { task, sourceTraceback: task[kSourceTraceback] });
}

// ------------------------------------------------------------- task steps

// A task's first step runs inside a loop handle (timed with the handle). Every later
// step — the synchronous stretch after an await — runs as a promise-reaction
// microtask, which no loop handle wraps. While a debug loop runs, V8's promise hooks
// time those reactions: `before`/`after` fire around each one. Which task a reaction
// belongs to: on Node 24 the task's AsyncLocalStorage context is already current in
// `before` (AsyncLocalStorage rides on V8's continuation data there). On Node 22 it
// rides on async_hooks, whose context is switched after our `before` runs; so `init`
// notes the task current when each promise is made (the await's promise is made by
// the task's own code), and `before` reads that note first. The note costs a WeakMap
// entry per promise, so it is kept only where AsyncLocalStorage runs on async_hooks
// (Node 22, or Node 24 with --no-async-context-frame): that implementation has the
// `_propagate` method the AsyncContextFrame one lacks.
//
// A step can span several reactions (awaiting an async helper that does not suspend
// resumes the caller in a second reaction): reactions of one task that follow each
// other form one step and their times add up. The step ends when a reaction of
// anything else runs, when a loop iteration ran in between (the task waited on the
// loop), or when the microtask queue drains (process.nextTick runs only then: the
// task waits for I/O or a timer). A slow step is reported when it ends.

const timingLoops = new Set<Loop>();
let stopHooks: (() => unknown) | null = null;
let stepTask: Task<unknown> | null = null;
let stepMs = 0;
let stepIterations = 0;
let reactionStart = 0;
let flushScheduled = false;
/** The task current when each promise was made (see above), while step timing runs. */
let madeIn = new WeakMap<Promise<unknown>, Task<unknown>>();
/** Whether `before` must look up {@link madeIn}: the context is not current there yet. */
const contextLagsInBefore = typeof (taskStorage as unknown as { _propagate?: unknown })._propagate === 'function';

function promiseMade(promise: Promise<unknown>): void {
  const task = taskStorage.getStore()?.task;
  if (task !== undefined) madeIn.set(promise, task);
}

function beforeReaction(promise: Promise<unknown>): void {
  if (reactionStart !== 0) return; // not expected (reactions do not nest); keep the outer one
  const task = madeIn.get(promise) ?? taskStorage.getStore()?.task ?? null;
  if (stepTask !== null && (task !== stepTask || stepTask.getLoop()[kStats].iterations !== stepIterations)) endStep();
  if (task === null) return;
  stepTask = task;
  reactionStart = performance.now();
}

function afterReaction(): void {
  if (reactionStart === 0) return;
  stepMs += performance.now() - reactionStart;
  reactionStart = 0;
  stepIterations = stepTask!.getLoop()[kStats].iterations;
  if (!flushScheduled) {
    flushScheduled = true;
    outsideTask(scheduleFlush);
  }
}

function scheduleFlush(): void {
  process.nextTick(flushStep);
}

function flushStep(): void {
  flushScheduled = false;
  if (reactionStart === 0 && stepTask !== null) endStep();
}

function endStep(): void {
  const task = stepTask!;
  const ms = stepMs;
  stepTask = null;
  stepMs = 0;
  const loop = task.getLoop();
  if (ms >= loop.slowCallbackDuration && timingLoops.has(loop) && !loop.isClosed()) reportSlowTask(loop, task, ms);
}

/** Starts timing task steps for `loop` (debug mode, while it runs). Idempotent. @internal */
export function startStepTiming(loop: Loop): void {
  timingLoops.add(loop);
  stopHooks ??= promiseHooks.createHook(contextLagsInBefore ? { init: promiseMade, before: beforeReaction, after: afterReaction } : { before: beforeReaction, after: afterReaction }) as () => void;
}

/** Stops timing task steps for `loop`; the hooks go once no loop needs them. Idempotent. @internal */
export function stopStepTiming(loop: Loop): void {
  if (!timingLoops.has(loop)) return;
  if (stepTask !== null && stepTask.getLoop() === loop) {
    // Called from inside a reaction (setDebug(false) in a task): count it up to now.
    if (reactionStart !== 0) stepMs += performance.now() - reactionStart;
    reactionStart = 0;
    endStep();
  }
  timingLoops.delete(loop);
  if (timingLoops.size > 0 || stopHooks === null) return;
  stopHooks();
  stopHooks = null;
  madeIn = new WeakMap();
  stepTask = null;
  stepMs = 0;
  reactionStart = 0;
}

/** Whether task steps are being timed (for tests of the zero-cost claim). @internal */
export function stepTimingActive(): boolean {
  return stopHooks !== null;
}
