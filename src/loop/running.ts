/**
 * Which loop runs on this thread. Kept apart from loop.ts so that the modules the
 * loop itself imports (coroutines, tasks) can ask without an import cycle.
 * @module
 */
import type { Loop } from './loop.ts';

let running: Loop | null = null;

/** The loop running on this thread, or null. */
export function activeLoop(): Loop | null {
  return running;
}

/** Called by the loop as it starts and stops running. */
export function setActiveLoop(loop: Loop | null): void {
  running = loop;
}

/** Whether PROTOLOOP_DEBUG asks for debug mode. */
export function envDebug(): boolean {
  const v = process.env.PROTOLOOP_DEBUG;
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}
