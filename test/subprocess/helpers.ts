// Shared helpers of the subprocess tests (not a test file).
import { readFileSync } from 'node:fs';

/** The state letter of `pid` in /proc (R, S, D, Z, T, ...), or null when it no longer exists. */
export function procState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may contain spaces: the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

/** Whether `pid` is gone (or, for a process that is not our child, at least dead: a zombie of init). */
export function isDead(pid: number): boolean {
  const s = procState(pid);
  return s === null || s === 'Z' || s === 'X';
}


export { pollUntil } from '../helpers.ts';
