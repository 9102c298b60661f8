/**
 * Eager tasks (Python 3.12's `eager_task_factory`).
 * @module
 */
import type { Loop, TaskFactory } from '../loop/loop.ts';
import { Task, type TaskOptions, type TaskTarget } from '../loop/task.ts';

/**
 * A task factory whose tasks run their first step synchronously inside
 * `createTask()`, up to their first await, when the loop is running. Work that
 * finishes without awaiting then skips a trip through the loop.
 *
 * ```ts
 * loop.setTaskFactory(eagerTaskFactory);
 * ```
 */
export const eagerTaskFactory: TaskFactory = <T>(loop: Loop, target: TaskTarget<T>, options?: TaskOptions): Task<T> =>
  new Task<T>(loop, target, { ...options, eagerStart: true });
