/**
 * Signal names and numbers for the subprocess API: validation of what callers pass
 * (`'SIGTERM'`, `15`) and asyncio's return code for a child a signal ended (`-15`).
 * @module
 */
import { constants } from 'node:os';
import { inspect } from 'node:util';
import { InvalidSignalError } from '../errors.ts';

const NUMBERS = constants.signals as Readonly<Record<string, number>>;
const NAMES = new Map<number, NodeJS.Signals>();
for (const [name, num] of Object.entries(NUMBERS)) {
  if (!NAMES.has(num)) NAMES.set(num, name as NodeJS.Signals);
}

/** A signal as callers may give it: a name (`'SIGTERM'`) or a number (`15`). */
export type SignalLike = NodeJS.Signals | number;

/**
 * Validates `signal` and returns its name.
 * @throws InvalidSignalError when it is not a signal this platform knows (0, the
 * "is it alive" probe, is refused too: use `getReturncode()`).
 */
export function signalName(signal: unknown, what: string): NodeJS.Signals {
  if (typeof signal === 'string' && Object.hasOwn(NUMBERS, signal)) return signal as NodeJS.Signals;
  if (typeof signal === 'number' && NAMES.has(signal)) return NAMES.get(signal)!;
  throw new InvalidSignalError(`${what}: ${inspect(signal)} is not a signal this platform knows (use a name such as 'SIGTERM' or its number)`);
}

/** The number of a signal name (`'SIGKILL'` -> 9). */
export function signalNumber(name: NodeJS.Signals): number {
  return NUMBERS[name]!;
}

/** asyncio's return code: the exit code, or minus the number of the signal that ended the child. */
export function returncodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  if (signal !== null) return -signalNumber(signal);
  // Neither: Node could not tell (never seen on POSIX); asyncio reports 255 for an unknown status.
  return 255;
}
