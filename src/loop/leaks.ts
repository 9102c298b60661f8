/**
 * Leak checks for `run(main, { strict: true })`: what main left open when it returned —
 * tasks, transports, servers, subprocesses (every tracked resource), timers, and jobs
 * still running in an executor. Listed before run() cleans up, so that a test can say
 * what it forgot instead of having it closed quietly.
 * @module
 * @internal
 */
import { LeakError } from '../errors.ts';
import { kDescribe, kPendingTimers, kRealWork, kResources } from './symbols.ts';
import type { Loop } from './loop.ts';
import type { Task } from './task.ts';

/** One line per thing `main` left open on `loop` (empty when it left nothing). */
export function collectLeaks(loop: Loop, main: Task<unknown>): string[] {
  const leaks: string[] = [];
  for (const task of loop.pendingTasks()) if (task !== main) leaks.push(`task ${task.toString()}`);
  for (const entry of loop[kResources]) {
    const owner = entry.owner();
    if (owner !== undefined) leaks.push(`${entry.kind} ${owner[kDescribe]()}`);
  }
  for (const timer of loop[kPendingTimers]()) leaks.push(`timer ${timer.toString()}`);
  const jobs = loop[kRealWork];
  if (jobs > 0) leaks.push(`${jobs} executor job${jobs === 1 ? '' : 's'} still running (workers)`);
  return leaks;
}

/** Throws {@link LeakError} if `main` left anything open on `loop`. */
export function checkLeaks(loop: Loop, main: Task<unknown>): void {
  const leaks = collectLeaks(loop, main);
  if (leaks.length > 0) throw new LeakError(leaks);
}
