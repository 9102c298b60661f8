/**
 * Unclosed-resource tracking: transports, servers and subprocess transports register
 * here when they open and untrack when they close. One still open when its loop
 * closes, or garbage-collected while open, is reported as `unclosed <kind> <...>`
 * (with where it was created, in debug mode) and, at loop close, aborted.
 * @module
 */
import { hints } from './debug.ts';
import { captureStack } from './internal.ts';
import { kDescribe, kResources } from './symbols.ts';
import type { ExceptionContext, Loop } from './loop.ts';

/** What a tracked resource must offer: a live description. */
export interface TrackedResource {
  [kDescribe](): string;
}

/** A registration; call `untrack()` when the resource closes. */
export interface ResourceToken {
  untrack(): void;
}

/** One tracked resource; it is its own token (no closure per resource). */
class Entry implements ResourceToken {
  readonly kind: string;
  /** The owner by a WeakRef, or itself for an owner that something else keeps alive while open. */
  readonly #ref: WeakRef<TrackedResource> | TrackedResource;
  readonly abort: (owner: any) => void;
  /** The owner's description when tracked (what a report after collection shows); null when held. */
  readonly description: string | null;
  readonly sourceTraceback: string | undefined;
  readonly loop: Loop;

  constructor(loop: Loop, kind: string, owner: TrackedResource, abort: (owner: any) => void, sourceTraceback: string | undefined, held: boolean) {
    this.kind = kind;
    this.#ref = held ? owner : new WeakRef(owner);
    this.abort = abort;
    this.description = held ? null : owner[kDescribe]();
    this.sourceTraceback = sourceTraceback;
    this.loop = loop;
  }

  /** The owner, unless it was collected. */
  owner(): TrackedResource | undefined {
    const ref = this.#ref;
    return ref instanceof WeakRef ? ref.deref() : ref;
  }

  untrack(): void {
    if (this.loop[kResources].delete(this) && this.description !== null) collected.unregister(this);
  }
}

/** @internal What a loop's resource set holds. */
export type ResourceEntry = Entry;

const collected = new FinalizationRegistry<Entry>((entry) => {
  if (!entry.loop[kResources].delete(entry)) return;
  report(entry, entry.description!);
});

function report(entry: Entry, description: string): void {
  const ctx: ExceptionContext = {
    message: `unclosed ${entry.kind} ${description}`,
    [entry.kind.includes('server') ? 'server' : 'transport']: entry.owner() ?? description,
    hint: hints.unclosed,
  };
  if (entry.sourceTraceback !== undefined) ctx.sourceTraceback = entry.sourceTraceback;
  entry.loop.callExceptionHandler(ctx);
}

/**
 * Tracks `owner` on `loop`. `abort` must not capture `owner` (it is called with it),
 * or the owner can never be collected. `held`: the owner cannot be collected while
 * open anyway (a socket transport: its open socket's native handle holds it), so it is
 * kept by a plain reference, with no WeakRef and no finalization registration (about
 * 100 bytes less per open resource); it is still reported and aborted at loop close.
 */
export function trackResource<T extends TrackedResource>(loop: Loop, kind: string, owner: T, abort: (owner: T) => void, held = false): ResourceToken {
  const entry = new Entry(loop, kind, owner, abort, loop.getDebug() ? captureStack() : undefined, held);
  loop[kResources].add(entry);
  if (!held) collected.register(owner, entry, entry);
  return entry;
}

/** Reports and aborts every resource still open on `loop`. Called by `loop.close()`. */
export function closeUnclosedResources(loop: Loop): void {
  const entries = [...loop[kResources]];
  loop[kResources].clear();
  for (const entry of entries) {
    if (entry.description !== null) collected.unregister(entry);
    const owner = entry.owner();
    if (owner === undefined) continue;
    report(entry, owner[kDescribe]());
    try {
      entry.abort(owner);
    } catch (exception) {
      loop.callExceptionHandler({ message: `error while aborting unclosed ${entry.kind}`, exception });
    }
  }
}

/** Number of tracked open resources by kind, for stats. */
export function openResourceCounts(loop: Loop): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const e of loop[kResources]) counts[e.kind] = (counts[e.kind] ?? 0) + 1;
  return counts;
}
