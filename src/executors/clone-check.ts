/**
 * Finds, before anything is sent, the value that structured clone would refuse, so
 * that the caller gets a clear error at the call (naming the path to the value)
 * instead of a failure later on another thread. It recognises what plain code passes
 * (functions, symbols, promises, weak collections, MessagePorts not being moved);
 * exotic host objects are still caught by the real clone, later.
 * @module
 */
import { MessagePort } from 'node:worker_threads';

/** Built-in objects that structured clone copies without looking inside (or refuses, below). */
function isOpaqueCloneable(v: object): boolean {
  return (
    ArrayBuffer.isView(v) ||
    v instanceof ArrayBuffer ||
    v instanceof SharedArrayBuffer ||
    v instanceof Date ||
    v instanceof RegExp ||
    v instanceof Error ||
    v instanceof Boolean ||
    v instanceof Number ||
    v instanceof String ||
    v instanceof Blob
  );
}

function refused(v: object, movable: ReadonlySet<unknown> | null): string | null {
  if (v instanceof Promise) return 'a Promise';
  if (v instanceof WeakMap || v instanceof WeakSet || v instanceof WeakRef) return `a ${v.constructor.name}`;
  if (v instanceof MessagePort && (movable === null || !movable.has(v))) {
    return movable === null ? 'a MessagePort (a child process cannot receive one)' : 'a MessagePort that is not moved (wrap it in transfer())';
  }
  return null;
}

/** Whether every value of `args` is a primitive that clones as is (the common, fast case). */
export function allPrimitive(args: readonly unknown[]): boolean {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const t = typeof a;
    if ((t === 'object' && a !== null) || t === 'function' || t === 'symbol') return false;
  }
  return true;
}

/**
 * Returns a description of the first value in `root` that cannot be structured-cloned
 * (`"args[1].onDone is a function"`), or null. `movable` holds what is being moved
 * (null: nothing can be moved, as to a child process).
 *
 * Paths are only spelled out for the culprit: the walk records, for each object it
 * visits, its parent and the step from it, so that checking a large array of numbers
 * allocates nothing per element.
 */
export function findUncloneable(root: unknown, rootPath: string, movable: ReadonlySet<unknown> | null): string | null {
  const t = typeof root;
  if (t !== 'object' && t !== 'function' && t !== 'symbol') return null;
  if (root === null) return null;
  // Visited objects, in order: each one's parent index and the step that reaches it.
  const parents: number[] = [];
  const steps: Step[] = [];
  const pending: Array<[unknown, number, Step]> = [[root, -1, null]];
  const seen = new Set<object>();
  const pathOf = (parent: number, step: Step): string => {
    const parts: Step[] = [step];
    for (let i = parent; i >= 0; i = parents[i]!) parts.push(steps[i]!);
    let path = rootPath;
    for (let i = parts.length - 1; i >= 0; i--) path += spell(parts[i]!);
    return path;
  };
  while (pending.length > 0) {
    const [v, parent, step] = pending.pop()!;
    if (typeof v === 'function') return `${pathOf(parent, step)} is a function (functions cannot cross threads: name a module and an export instead)`;
    if (typeof v === 'symbol') return `${pathOf(parent, step)} is a symbol`;
    if (v === null || typeof v !== 'object') continue;
    if (seen.has(v)) continue;
    seen.add(v);
    const bad = refused(v, movable);
    if (bad !== null) return `${pathOf(parent, step)} is ${bad}`;
    if (v instanceof MessagePort || isOpaqueCloneable(v)) continue;
    const self = parents.length;
    parents.push(parent);
    steps.push(step);
    if (v instanceof Map) {
      let i = 0;
      for (const [k, val] of v) {
        if (mayRefuse(k)) pending.push([k, self, { key: i }]);
        if (mayRefuse(val)) pending.push([val, self, { get: i }]);
        i++;
      }
    } else if (v instanceof Set) {
      let i = 0;
      for (const val of v) {
        if (mayRefuse(val)) pending.push([val, self, { entry: i }]);
        i++;
      }
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) if (mayRefuse(v[i])) pending.push([v[i], self, i]);
    } else {
      for (const key of Object.keys(v)) {
        const val = (v as Record<string, unknown>)[key];
        if (mayRefuse(val)) pending.push([val, self, key]);
      }
    }
  }
  return null;
}

/** One step of a path: an array index, a property name, a Map key or value, a Set entry (null: the root). */
type Step = number | string | { key: number } | { get: number } | { entry: number } | null;

function spell(step: Step): string {
  if (step === null) return '';
  if (typeof step === 'number') return `[${step}]`;
  if (typeof step === 'string') return `.${step}`;
  if ('key' in step) return `.<key ${step.key}>`;
  if ('get' in step) return `.get(<key ${step.get}>)`;
  return `.<entry ${step.entry}>`;
}

/** Whether `v` needs a look: primitives other than symbols always clone. */
function mayRefuse(v: unknown): boolean {
  const t = typeof v;
  return (t === 'object' && v !== null) || t === 'function' || t === 'symbol';
}
