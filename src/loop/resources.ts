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
  readonly ref: WeakRef<TrackedResource>;
  readonly abort: (owner: any) => void;
  readonly description: string;
  readonly sourceTraceback: string | undefined;
  readonly loop: Loop;

  constructor(loop: Loop, kind: string, owner: TrackedResource, abort: (owner: any) => void, sourceTraceback: string | undefined) {
    this.kind = kind;
    this.ref = new WeakRef(owner);
    this.abort = abort;
    this.description = owner[kDescribe]();
    this.sourceTraceback = sourceTraceback;
    this.loop = loop;
  }

  untrack(): void {
    if (this.loop[kResources].delete(this)) collected.unregister(this);
  }
}

const collected = new FinalizationRegistry<Entry>((entry) => {
  if (!entry.loop[kResources].delete(entry)) return;
  report(entry, entry.description);
});

function report(entry: Entry, description: string): void {
  const ctx: ExceptionContext = {
    message: `unclosed ${entry.kind} ${description}`,
    [entry.kind.includes('server') ? 'server' : 'transport']: entry.ref.deref() ?? description,
    hint: hints.unclosed,
  };
  if (entry.sourceTraceback !== undefined) ctx.sourceTraceback = entry.sourceTraceback;
  entry.loop.callExceptionHandler(ctx);
}

/**
 * Tracks `owner` on `loop`. `abort` must not capture `owner` (it is called with it),
 * or the owner can never be collected.
 */
export function trackResource<T extends TrackedResource>(loop: Loop, kind: string, owner: T, abort: (owner: T) => void): ResourceToken {
  const entry = new Entry(loop, kind, owner, abort, loop.getDebug() ? captureStack() : undefined);
  loop[kResources].add(entry);
  collected.register(owner, entry, entry);
  return entry;
}

/** Reports and aborts every resource still open on `loop`. Called by `loop.close()`. */
export function closeUnclosedResources(loop: Loop): void {
  const entries = [...loop[kResources]];
  loop[kResources].clear();
  for (const entry of entries) {
    collected.unregister(entry);
    const owner = entry.ref.deref();
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
