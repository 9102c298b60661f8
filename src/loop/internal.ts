/**
 * Symbols through which protoloop's modules reach each other's internals.
 * Nothing here is exported from the package, so users cannot reach it by accident.
 * @internal
 * @module
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Task } from './task.ts';

/** Runs a Handle's callback (with the loop's error routing). */
export const kRun = Symbol('protoloop.run');
/** A TimerHandle's place in the heap is stale (it was cancelled). */
export const kScheduled = Symbol('protoloop.scheduled');
/** Where an object was created, captured in debug mode. */
export const kSourceTraceback = Symbol('protoloop.sourceTraceback');
/** Starts a Coroutine (idempotent) and returns its promise. */
export const kStart = Symbol('protoloop.start');
/** Loop bookkeeping entry points used by Future/Task. */
export const kTaskStarted = Symbol('protoloop.taskStarted');
export const kTaskDone = Symbol('protoloop.taskDone');
export const kTimerCancelled = Symbol('protoloop.timerCancelled');
export const kUnretrieved = Symbol('protoloop.unretrieved');
/** Task: the future the task currently awaits (asyncio's `_fut_waiter`). */
export const kAwaiting = Symbol('protoloop.awaiting');
/** Task: don't log "destroyed but pending" (tasks created by runUntilComplete). */
export const kLogDestroyPending = Symbol('protoloop.logDestroyPending');
/** Loop: sync hooks run by close(), async hooks run by run()/Runner before close. */
export const kCloseHooks = Symbol('protoloop.closeHooks');
export const kShutdownHooks = Symbol('protoloop.shutdownHooks');
/** Loop: tracked resources (transports, servers, subprocesses) for "unclosed" reports. */
export const kResources = Symbol('protoloop.resources');
/** Loop: counters shown by loop.stats(). */
export const kStats = Symbol('protoloop.stats');
/** Describes an awaited object for task introspection. */
export const kDescribe = Symbol('protoloop.describe');

/**
 * The task whose code is running now. Task bodies run inside `taskStorage.run(task, ...)`;
 * the context follows every `await` of the body, so `currentTask()` is right after any await.
 */
export const taskStorage = new AsyncLocalStorage<Task<unknown>>();

/**
 * Runs `fn` outside any task's context. The loop's own wake-ups and the sockets that
 * transports create go through this, so that a callback or protocol method never
 * inherits the context of the task that happened to schedule it.
 */
export function outsideTask<T>(fn: () => T): T {
  return taskStorage.exit(fn);
}

/** Whether this thread is Node's main thread. */
export { isMainThread } from 'node:worker_threads';

/** Captures the current stack (without this frame) for debug-mode reports. */
export function captureStack(skip = 1): string {
  const err: { stack?: string } = {};
  Error.captureStackTrace(err, captureStack);
  const lines = (err.stack ?? '').split('\n').slice(1 + skip - 1);
  return lines.map((l) => l.trim()).filter(Boolean).reverse().map((l) => `  ${l}`).join('\n');
}
