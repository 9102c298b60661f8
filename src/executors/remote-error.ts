/**
 * How an error crosses from a worker back to the caller. The worker sends a plain
 * record ({@link SerializedError}); the caller rebuilds it:
 *
 * - errors of JavaScript's built-in classes (`Error`, `TypeError`, `RangeError`,
 *   `SyntaxError`, `ReferenceError`, `EvalError`, `URIError`) come back as the same
 *   class, with the message, the worker's stack as `stack`, and their own data
 *   properties (`code`, `errno`, `syscall`, `path`, ...), so `instanceof TypeError`
 *   and `err.code === 'ENOENT'` work as if the call had been local;
 * - every other class comes back as {@link RemoteError}, `remoteName` naming it (its
 *   `name`, or its constructor's name when `name` is only the inherited `'Error'`) and
 *   `remoteStack` holding the worker's stack, with its own fields that survive a
 *   structured clone (numbers, strings, plain objects, arrays, Dates, Maps, buffers...);
 *   a field that cannot be cloned (a function, a socket) is left out, never fatal;
 * - a failure to load the task is a {@link TaskModuleError}; a result that cannot be
 *   cloned is a {@link NotCloneableError}.
 *
 * `cause` chains are carried (up to a few levels). Shared by both sides.
 * @module
 */
import { NotCloneableError, RemoteError, TaskModuleError } from '../errors.ts';

/** Marks the record so that it cannot be mistaken for a value a task threw on purpose. */
const kMarker = '__protoloopError';

/** @internal The wire form of an error. */
export interface SerializedError {
  readonly [kMarker]: 'remote' | 'module' | 'uncloneable';
  readonly name: string;
  readonly message: string;
  readonly stack: string | undefined;
  readonly props: Record<string, unknown> | undefined;
  readonly cause: SerializedError | undefined;
}

const BUILTINS: Record<string, ErrorConstructor> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
};

const SKIP = new Set(['name', 'message', 'stack', 'cause']);

/** Whether `v` crosses a thread or process as itself (a copy), without a clone error. */
function clones(v: unknown): boolean {
  const t = typeof v;
  if (v === null || t === 'string' || t === 'number' || t === 'boolean' || t === 'bigint' || t === 'undefined') return true;
  if (t === 'function' || t === 'symbol') return false;
  try {
    // An error path only: the cost of a trial clone does not matter, a broken report does.
    structuredClone(v);
    return true;
  } catch {
    return false;
  }
}

function ownProps(e: object): Record<string, unknown> | undefined {
  let out: Record<string, unknown> | undefined;
  for (const key of Object.keys(e)) {
    if (SKIP.has(key)) continue;
    let v: unknown;
    try {
      v = (e as Record<string, unknown>)[key];
    } catch {
      continue; // a throwing getter
    }
    if (clones(v)) (out ??= {})[key] = v;
  }
  return out;
}

/**
 * The class name to report: `name` when the class set one, else the constructor's name
 * (a `class HttpError extends Error {}` without `name` still says `HttpError`).
 */
function className(e: Error): string {
  const name = typeof e.name === 'string' && e.name !== '' ? e.name : 'Error';
  const ctor = (e as { constructor?: unknown }).constructor;
  const ctorName = typeof ctor === 'function' && typeof ctor.name === 'string' ? ctor.name : '';
  // `name` inherited from a built-in's prototype while the class is another one.
  if (ctorName !== '' && ctorName !== name && Object.hasOwn(BUILTINS, name) && ctor !== BUILTINS[name]) return ctorName;
  return name;
}

/** @internal Serializes what a task threw. */
export function serializeError(e: unknown, kind: SerializedError[typeof kMarker] = 'remote', depth = 0): SerializedError {
  if (e instanceof Error) {
    return {
      [kMarker]: kind,
      name: className(e),
      message: String(e.message),
      stack: typeof e.stack === 'string' ? e.stack : undefined,
      props: ownProps(e),
      cause: e.cause !== undefined && depth < 4 ? serializeError(e.cause, 'remote', depth + 1) : undefined,
    };
  }
  let message: string;
  try {
    message = typeof e === 'string' ? e : JSON.stringify(e) ?? String(e);
  } catch {
    message = String(e);
  }
  return { [kMarker]: kind, name: `thrown ${e === null ? 'null' : typeof e}`, message, stack: undefined, props: undefined, cause: undefined };
}

/** @internal Whether `x` is a {@link SerializedError}. */
export function isSerializedError(x: unknown): x is SerializedError {
  return x !== null && typeof x === 'object' && typeof (x as Record<string, unknown>)[kMarker] === 'string';
}

/** @internal Rebuilds the caller-side error from its wire form; `where` names the worker ("worker thread 3"). */
export function rebuildError(s: SerializedError, where: string): Error {
  const kind = s[kMarker];
  const cause = s.cause !== undefined ? rebuildError(s.cause, where) : undefined;
  const opts = cause !== undefined ? { cause } : undefined;
  if (kind === 'module') return new TaskModuleError(s.message, opts);
  if (kind === 'uncloneable') return new NotCloneableError(s.message, opts);
  const Builtin = Object.hasOwn(BUILTINS, s.name) ? BUILTINS[s.name] : undefined;
  let err: Error;
  if (Builtin !== undefined) {
    err = new Builtin(s.message, opts);
    if (s.stack !== undefined) err.stack = `${s.stack}\n    at <${where}>`;
  } else {
    err = new RemoteError(s.name, s.message, s.stack, opts);
    if (s.stack !== undefined) err.stack = `RemoteError [${s.name}]: ${s.message}\n${stackFrames(s.stack)}\n    at <${where}>`;
  }
  if (s.props !== undefined) {
    for (const [k, v] of Object.entries(s.props)) {
      if (!(k in err)) (err as unknown as Record<string, unknown>)[k] = v;
      else if (Builtin !== undefined && k === 'code') (err as unknown as Record<string, unknown>)[k] = v;
    }
  }
  return err;
}

function stackFrames(stack: string): string {
  const i = stack.indexOf('\n    at ');
  return i < 0 ? '' : stack.slice(i + 1);
}
