/**
 * How an error crosses from a worker back to the caller. The worker sends a plain
 * record ({@link SerializedError}); the caller rebuilds it:
 *
 * - errors of JavaScript's built-in classes (`Error`, `TypeError`, `RangeError`,
 *   `SyntaxError`, `ReferenceError`, `EvalError`, `URIError`) come back as the same
 *   class, with the message, the worker's stack as `stack`, and their own data
 *   properties (`code`, `errno`, `syscall`, `path`, ...), so `instanceof TypeError`
 *   and `err.code === 'ENOENT'` work as if the call had been local;
 * - every other class comes back as {@link RemoteError}, `remoteName` naming it and
 *   `remoteStack` holding the worker's stack;
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

function simpleProps(e: object): Record<string, unknown> | undefined {
  let out: Record<string, unknown> | undefined;
  for (const key of Object.keys(e)) {
    if (SKIP.has(key)) continue;
    const v = (e as Record<string, unknown>)[key];
    const t = typeof v;
    // Only data that surely clones: a host object in an error must not break the report.
    if (v === null || t === 'string' || t === 'number' || t === 'boolean' || t === 'bigint' || t === 'undefined') (out ??= {})[key] = v;
  }
  return out;
}

/** @internal Serializes what a task threw. */
export function serializeError(e: unknown, kind: SerializedError[typeof kMarker] = 'remote', depth = 0): SerializedError {
  if (e instanceof Error) {
    const name = typeof e.name === 'string' && e.name !== '' ? e.name : e.constructor.name;
    return {
      [kMarker]: kind,
      name,
      message: String(e.message),
      stack: typeof e.stack === 'string' ? e.stack : undefined,
      props: simpleProps(e),
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
