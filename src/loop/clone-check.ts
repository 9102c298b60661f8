/**
 * Finds, before anything is sent, the value that structured clone would refuse, so
 * that the caller gets a clear error at the call (naming the path to the value)
 * instead of a failure later on another thread. It recognises what plain code passes
 * (functions, symbols, promises, weak collections, MessagePorts not being moved);
 * exotic host objects are still caught by the real clone, later.
 * @module
 * @internal
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
 */
export function findUncloneable(root: unknown, rootPath: string, movable: ReadonlySet<unknown> | null): string | null {
  const t = typeof root;
  if (t !== 'object' && t !== 'function' && t !== 'symbol') return null;
  if (root === null) return null;
  const seen = new Set<object>();
  const stack: Array<[unknown, string]> = [[root, rootPath]];
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (typeof v === 'function') return `${path} is a function (functions cannot cross threads: name a module and an export instead)`;
    if (typeof v === 'symbol') return `${path} is a symbol`;
    if (v === null || typeof v !== 'object') continue;
    if (seen.has(v)) continue;
    seen.add(v);
    const bad = refused(v, movable);
    if (bad !== null) return `${path} is ${bad}`;
    if (v instanceof MessagePort || isOpaqueCloneable(v)) continue;
    if (v instanceof Map) {
      let i = 0;
      for (const [k, val] of v) {
        stack.push([k, `${path}.<key ${i}>`], [val, `${path}.get(<key ${i}>)`]);
        i++;
      }
      continue;
    }
    if (v instanceof Set) {
      let i = 0;
      for (const val of v) stack.push([val, `${path}.<entry ${i++}>`]);
      continue;
    }
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], `${path}[${i}]`]);
      continue;
    }
    for (const key of Object.keys(v)) stack.push([(v as Record<string, unknown>)[key], `${path}.${key}`]);
  }
  return null;
}
