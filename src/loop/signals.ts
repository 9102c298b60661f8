/**
 * Signal handlers as loop callbacks: `loop.addSignalHandler(sig, cb, ...args)` and
 * `loop.removeSignalHandler(sig)`, asyncio's Unix-loop methods.
 *
 * A handler is a `process.on(sig)` listener that only schedules `cb(...args)` with
 * `callSoon`, so the callback runs inside the loop, like any other callback, with its
 * errors routed to the exception handler. One handler per signal and loop (adding
 * again replaces it). Removing the last handler removes the listener, so Node's
 * default behaviour for the signal comes back (SIGTERM/SIGINT terminate again).
 * Main thread only: Node delivers signals to the main thread, and workers must ask
 * the main loop through the thread bridge. The Loop's methods (src/loop/loop.ts) call
 * the functions here.
 * @module
 */
import { constants } from 'node:os';
import { InvalidArgumentError, InvalidSignalError, LoopClosedError } from '../errors.ts';
import { assertMainThread } from './debug.ts';
import { kCloseHooks } from './symbols.ts';
import type { Loop } from './loop.ts';

/** Signals a process cannot catch, or that Node cannot deliver to JavaScript safely. */
const UNCATCHABLE: Record<string, string> = {
  SIGKILL: 'SIGKILL cannot be caught',
  SIGSTOP: 'SIGSTOP cannot be caught',
  SIGSEGV: 'SIGSEGV cannot be handled in JavaScript (the process state is unsafe after it)',
  SIGBUS: 'SIGBUS cannot be handled in JavaScript (the process state is unsafe after it)',
  SIGFPE: 'SIGFPE cannot be handled in JavaScript (the process state is unsafe after it)',
  SIGILL: 'SIGILL cannot be handled in JavaScript (the process state is unsafe after it)',
};

const signalNumbers = constants.signals as Record<string, number>;

/** @internal Checks `sig` and returns its name. Throws {@link InvalidSignalError}. */
export function signalName(sig: unknown): NodeJS.Signals {
  let name: string | undefined;
  if (typeof sig === 'string') {
    name = Object.hasOwn(signalNumbers, sig) ? sig : undefined;
  } else if (typeof sig === 'number' && Number.isInteger(sig)) {
    name = Object.keys(signalNumbers).find((k) => signalNumbers[k] === sig);
  }
  if (name === undefined) throw new InvalidSignalError(`invalid signal ${JSON.stringify(sig) ?? String(sig)}: use a name such as 'SIGUSR2' or 'SIGTERM' (see os.constants.signals)`);
  const why = UNCATCHABLE[name];
  if (why !== undefined) throw new InvalidSignalError(why);
  return name as NodeJS.Signals;
}

/** One installed handler: the process listener and what it schedules. */
interface Installed {
  readonly listener: () => void;
}

const installedByLoop = new WeakMap<Loop, Map<NodeJS.Signals, Installed>>();

function tableOf(loop: Loop): Map<NodeJS.Signals, Installed> {
  let t = installedByLoop.get(loop);
  if (t === undefined) {
    const table = new Map<NodeJS.Signals, Installed>();
    installedByLoop.set(loop, table);
    loop[kCloseHooks].add(() => {
      for (const [sig, h] of table) process.removeListener(sig, h.listener);
      table.clear();
    });
    t = table;
  }
  return t;
}

/** @internal Whether `loop` has a handler for `sig` (added with addSignalHandler). run() leaves such a signal to it. */
export function hasSignalHandler(loop: Loop, sig: NodeJS.Signals): boolean {
  return installedByLoop.get(loop)?.has(sig) === true;
}

function deliver(loop: Loop, sig: NodeJS.Signals, callback: (...a: unknown[]) => unknown, args: unknown[]): void {
  if (loop.isClosed()) return;
  loop.callSoon(runSignalCallback, loop, sig, callback, args);
}

function runSignalCallback(loop: Loop, sig: NodeJS.Signals, callback: (...a: unknown[]) => unknown, args: unknown[]): void {
  const result = callback(...args);
  // An async handler: watch it as a task so that its failure is reported, not lost.
  if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
    loop.createTask(() => result as PromiseLike<unknown>, { name: `signal handler ${sig}` });
  }
}

/** `loop.addSignalHandler()`. */
export function addSignalHandler(loop: Loop, sig: NodeJS.Signals | number, callback: (...args: unknown[]) => unknown, args: unknown[]): void {
  assertMainThread('loop.addSignalHandler()');
  const name = signalName(sig);
  if (typeof callback !== 'function') throw new InvalidArgumentError(`addSignalHandler(${name}) needs a function`);
  if (loop.isClosed()) throw new LoopClosedError();
  const table = tableOf(loop);
  const previous = table.get(name);
  const listener = deliver.bind(null, loop, name, callback, args);
  // Add the new listener before removing the old one, so the default action never comes back in between.
  process.on(name, listener);
  if (previous !== undefined) process.removeListener(name, previous.listener);
  table.set(name, { listener });
}

/** `loop.removeSignalHandler()`. */
export function removeSignalHandler(loop: Loop, sig: NodeJS.Signals | number): boolean {
  assertMainThread('loop.removeSignalHandler()');
  const name = signalName(sig);
  const table = installedByLoop.get(loop);
  const h = table?.get(name);
  if (h === undefined) return false;
  table!.delete(name);
  process.removeListener(name, h.listener);
  return true;
}
