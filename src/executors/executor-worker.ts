/**
 * The worker side of the executors: loads a task's module (once per worker), calls
 * the named export with the arguments and hands back the result, or a serialized
 * error (see remote-error.ts). `thread-worker.ts` (worker threads) and
 * `process-worker.ts` (child processes) wrap {@link runJob}.
 *
 * It imports nothing of the loop, so that a worker starts quickly.
 * @module
 */
import { applyArgs } from './apply.ts';
import { findUncloneable } from './clone-check.ts';
import { serializeError } from './remote-error.ts';
import { isTransferMarker, type TransferItem } from './transfer.ts';

type TaskFn = (...args: unknown[]) => unknown;

const modules = new Map<string, Promise<Record<string, unknown>>>();

async function loadModule(url: string): Promise<Record<string, unknown>> {
  let p = modules.get(url);
  if (p === undefined) {
    p = import(url) as Promise<Record<string, unknown>>;
    modules.set(url, p);
  }
  try {
    return await p;
  } catch (e) {
    modules.delete(url);
    const reason = e instanceof Error ? e.message : String(e);
    throw serializeError(new Error(`cannot load the task module ${url}: ${reason}`, { cause: e }), 'module');
  }
}

/** Resolved task functions by module URL, then export name: a job of a known task costs two map reads. */
const resolved = new Map<string, Map<string, TaskFn>>();

async function resolveTask(url: string, name: string): Promise<TaskFn> {
  const mod = await loadModule(url);
  const fn = mod[name];
  if (typeof fn !== 'function') {
    const why = fn === undefined ? `has no export named '${name}'` : `exports '${name}' as a ${typeof fn}, not a function`;
    throw serializeError(new Error(`the task module ${url} ${why} (exports: ${Object.keys(mod).join(', ') || 'none'})`), 'module');
  }
  let byName = resolved.get(url);
  if (byName === undefined) resolved.set(url, (byName = new Map()));
  byName.set(name, fn as TaskFn);
  return fn as TaskFn;
}

let lastUrl = '';
let lastName = '';
let lastFn: TaskFn | undefined;

function lookUp(url: string, name: string): TaskFn | undefined {
  const fn = resolved.get(url)?.get(name);
  if (fn !== undefined) {
    lastUrl = url;
    lastName = name;
    lastFn = fn;
  }
  return fn;
}

/**
 * Runs one job: `name` of module `url` with the first `argc` values of `args` (the
 * message may carry more after them). Returns the result (and what to move with it, in
 * `transferList`), or a promise of it when the module is not loaded yet or the task is
 * async; throws (or rejects with) a SerializedError. A synchronous task of a loaded
 * module costs no promise at all.
 * `movable` says whether results may move buffers (threads) or must be copied (processes).
 */
export function runJob(url: string, name: string, args: unknown[], argc: number, movable: boolean, transferList: TransferItem[]): unknown {
  // The task of the last job first: comparing the strings is cheaper than hashing them.
  const fn = url === lastUrl && name === lastName ? lastFn : lookUp(url, name);
  if (fn === undefined) return resolveTask(url, name).then((f) => callTask(f, name, args, argc, movable, transferList));
  return callTask(fn, name, args, argc, movable, transferList);
}

function callTask(fn: TaskFn, name: string, args: unknown[], argc: number, movable: boolean, transferList: TransferItem[]): unknown {
  let result: unknown;
  try {
    result = applyArgs(fn, args, argc);
  } catch (e) {
    throw serializeError(e);
  }
  if (result !== null && (typeof result === 'object' || typeof result === 'function') && typeof (result as PromiseLike<unknown>).then === 'function') {
    return Promise.resolve(result).then(
      (value) => finishJob(value, name, movable, transferList),
      (e: unknown) => {
        throw serializeError(e);
      },
    );
  }
  return finishJob(result, name, movable, transferList);
}

function finishJob(result: unknown, name: string, movable: boolean, transferList: TransferItem[]): unknown {
  const t = typeof result;
  // Primitives clone as they are: nothing to unwrap or check.
  if (result === null || (t !== 'object' && t !== 'function' && t !== 'symbol')) return result;
  if (isTransferMarker(result)) {
    if (movable) for (const item of result.list) transferList.push(item);
    result = result.value;
  }
  const bad = findUncloneable(result, 'the result', movable ? new Set<unknown>(transferList) : null);
  if (bad !== null) throw serializeError(new Error(`the result of ${name}() cannot be sent back: ${bad}`), 'uncloneable');
  return result;
}
