/**
 * Child supervision: every loop knows the children it started and that have not
 * finished (exited and every pipe closed).
 *
 * - `run()`/`Runner.close()` end: a shutdown hook stops the survivors the polite way
 *   (`killSignal`, SIGKILL after `forceKillAfterDelay`), closes their pipes and waits
 *   (bounded) until each one is reaped. In debug mode each is logged as unclosed.
 * - `loop.close()`: children still tracked are reported as unclosed and SIGKILLed
 *   (resources.ts); a close hook SIGKILLs the ones closed but not yet reaped. Node
 *   reaps them (libuv's SIGCHLD handler) as long as this process lives; execa's
 *   `cleanup` kills them if it exits first.
 * @module
 */
import { kCloseHooks, kShutdownHooks } from '../loop/symbols.ts';
import type { Loop } from '../loop/loop.ts';
import { kStop } from '../loop/symbols.ts';

/** What the supervisor needs of a transport. */
export interface Supervised {
  [kStop](): Promise<boolean>;
  close(): void;
  isClosing(): boolean;
  getPid(): number;
}

const registries = new WeakMap<Loop, Set<Supervised>>();

/** Tracks `t` on `loop` until {@link release}; installs the loop's hooks on first use. */
export function supervise(loop: Loop, t: Supervised): void {
  let live = registries.get(loop);
  if (live === undefined) {
    live = new Set();
    registries.set(loop, live);
    const set = live;
    loop[kShutdownHooks].add(() => stopAll(loop, set));
    loop[kCloseHooks].add(() => {
      for (const child of set) child.close();
      set.clear();
    });
  }
  live.add(t);
}

/** Stops tracking `t` (it finished). */
export function release(loop: Loop, t: Supervised): void {
  registries.get(loop)?.delete(t);
}

async function stopAll(loop: Loop, live: Set<Supervised>): Promise<void> {
  const children = [...live];
  if (children.length === 0) return;
  if (loop.getDebug()) {
    for (const t of children) {
      if (!t.isClosing()) loop.logger.warn(`unclosed subprocess transport ${String(t)}: run() is stopping it (close it, or await wait(), before main returns)`);
    }
  }
  const finished = await Promise.all(children.map((t) => t[kStop]()));
  finished.forEach((ok, i) => {
    if (!ok) loop.logger.warn(`child process ${children[i]!.getPid()} did not go away after SIGKILL; it may be left behind`);
  });
}
