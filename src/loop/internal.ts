/**
 * What protoloop's own modules share that is not a symbol: the task context
 * (`taskStorage`, `outsideTask`) and creation stacks (`captureStack`). Symbols are in
 * symbols.ts. Nothing here is exported from the package.
 * @module
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { CancelScope } from './scope.ts';


/**
 * The cancel scope whose code is running now, and through it the task (`.task`). A
 * task's first step enters its root scope; `timeout()`, `taskGroup()` and the like run
 * their callback in a child scope (`taskStorage.run(scope, ...)`). The context follows
 * every `await`, so `currentTask()` is right after any await, in every branch.
 */
export const taskStorage = new AsyncLocalStorage<CancelScope>();

/**
 * Runs `fn` outside any task's context. The loop's own wake-ups and the sockets that
 * transports create go through this, so that a callback or protocol method never
 * inherits the context of the task that happened to schedule it.
 */
export function outsideTask<T>(fn: () => T): T {
  return taskStorage.exit(fn);
}

/** Whether this thread is Node's main thread. */
export { isMainThread } from 'node:worker_threads';

/** Frames kept in a creation stack (asyncio's DEBUG_STACK_DEPTH). */
const STACK_DEPTH = 10;
/** protoloop's own modules (`src/` or `dist/`): their frames are left out of creation stacks. */
const libraryRoot = new URL('../', import.meta.url);
const libraryRootPath = libraryRoot.protocol === 'file:' ? fileURLToPath(libraryRoot) : libraryRoot.href;
let cwdPrefixes: { cwd: string; url: string; path: string } | null = null;

/** Whether a stack line is a frame of protoloop itself or of Node's internals. @internal */
export function isInternalFrame(line: string): boolean {
  return line.includes(libraryRoot.href) || line.includes(libraryRootPath) || /[( ]node:/.test(line);
}

/**
 * Where the code calling protoloop was, captured but not formatted: V8 keeps the
 * structured frames and formats them only when {@link formatStack} reads them, so
 * debug mode pays a stack walk per object and the formatting only for the objects a
 * report names. Kept only on objects that may retain the frames' receivers (handles,
 * futures, tasks): a record held by a FinalizationRegistry must take the formatted
 * text ({@link captureStack}), or the frames would keep its object alive.
 */
export interface RawStack {
  stack?: unknown;
  /** The formatted text, once read (null: no user frame). */
  text?: string | null;
}

/** Captures the current stack without formatting it (see {@link RawStack}). */
export function captureRawStack(): RawStack {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 20; // room for protoloop's own frames above the user's
  const holder: RawStack = {};
  Error.captureStackTrace(holder, captureRawStack);
  Error.stackTraceLimit = limit;
  return holder;
}

/**
 * The user's frames of a captured stack: protoloop's own and Node's internal frames are
 * left out (so the last line is the user's call), at most {@link STACK_DEPTH} of them,
 * most recent call last, with paths relative to the working directory. Undefined when
 * no user frame is left (work that protoloop scheduled for itself). Formatted once.
 */
export function formatStack(raw: RawStack | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (raw.text !== undefined) return raw.text ?? undefined;
  const prepare = Error.prepareStackTrace;
  Error.prepareStackTrace = returnCallSites;
  let sites: unknown;
  try {
    sites = raw.stack;
  } finally {
    Error.prepareStackTrace = prepare;
  }
  raw.stack = undefined; // let the frames (and what they hold) go
  const frames: string[] = [];
  if (Array.isArray(sites)) {
    for (const site of sites as NodeJS.CallSite[]) {
      const file = site.getFileName();
      // No file: native frames (new Promise, Array.map); node: and protoloop's own modules.
      if (file === undefined || file === null || file.startsWith('node:') || file.startsWith(libraryRoot.href) || file.startsWith(libraryRootPath)) continue;
      frames.push(`  at ${relativePath(String(site))}`);
      if (frames.length === STACK_DEPTH) break;
    }
  }
  raw.text = frames.length === 0 ? null : frames.reverse().join('\n');
  return raw.text ?? undefined;
}

/** {@link captureRawStack} formatted at once, for records that must not hold the frames. */
export function captureStack(): string | undefined {
  return formatStack(captureRawStack());
}

function returnCallSites(_err: Error, sites: NodeJS.CallSite[]): NodeJS.CallSite[] {
  return sites;
}

/** Shortens the paths of a stack line that lie under the working directory. @internal */
export function relativePath(frame: string): string {
  const cwd = process.cwd();
  if (cwdPrefixes?.cwd !== cwd) cwdPrefixes = { cwd, url: pathToFileURL(cwd).href + '/', path: cwd + sep };
  return frame.replaceAll(cwdPrefixes.url, '').replaceAll(cwdPrefixes.path, '');
}

/** @internal `bits` with `flag` set or cleared (flags packed into one small integer field). */
export function withFlag(bits: number, flag: number, on: boolean): number {
  return on ? bits | flag : bits & ~flag;
}
