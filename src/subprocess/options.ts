/**
 * Subprocess options: the public constants and option types, their eager validation,
 * and how each option maps onto execa's (what execa does best: `timeout`,
 * `cancelSignal`, `killSignal`, `forceKillAfterDelay`, `killDescendants`, `cleanup`).
 * Every default lives here.
 * @module
 */
import { inspect } from 'node:util';
import type { Options as ExecaOptions } from 'execa';
import { InvalidArgumentError } from '../errors.ts';
import { signalName, type SignalLike } from './signals.ts';

/** Connect the child's stream to a pipe: `stdin` becomes writable, `stdout`/`stderr` readable (asyncio's `PIPE`). */
export const PIPE = 'pipe';
/** For `stderr` only: send the child's stderr into the same place as its stdout (asyncio's `STDOUT`). */
export const STDOUT = 'stdout';
/** Connect the child's stream to `/dev/null` (asyncio's `DEVNULL`; Node's `'ignore'`). */
export const DEVNULL = 'ignore';
/** Let the child use this process's stream (asyncio's `None`). */
export const INHERIT = 'inherit';

/**
 * Where one of the child's standard streams goes: {@link PIPE}, {@link DEVNULL},
 * {@link INHERIT} (also `null`), or an open file descriptor of this process.
 */
export type StdioOption = typeof PIPE | typeof DEVNULL | typeof INHERIT | number | null;

/** Options shared by `loop.subprocessExec()`/`subprocessShell()` and `createSubprocessExec()`/`createSubprocessShell()`. */
export interface SubprocessOptions {
  /** The child's stdin. Default {@link PIPE} for the loop methods, {@link INHERIT} for `createSubprocess*()` (as asyncio). */
  stdin?: StdioOption;
  /** The child's stdout. Defaults as `stdin`. */
  stdout?: StdioOption;
  /** The child's stderr; {@link STDOUT} merges it into stdout (fd 1). Defaults as `stdin`. */
  stderr?: StdioOption | typeof STDOUT;
  /** The child's working directory. Default: this process's. */
  cwd?: string | URL;
  /**
   * The child's whole environment (as Node and asyncio: it replaces, not extends; spread
   * `process.env` to extend). Default: this process's environment.
   */
  env?: Readonly<Record<string, string | undefined>>;
  /**
   * After this many ms the child is sent `killSignal`, then SIGKILL after
   * `forceKillAfterDelay`; the result says `timedOut`. Default: no timeout.
   */
  timeout?: number;
  /** The signal sent by `timeout`, by `signal` and at loop shutdown. Default `'SIGTERM'`. */
  killSignal?: SignalLike;
  /**
   * Grace period, ms, between `killSignal` and SIGKILL when protoloop stops the child
   * (timeout, abort, loop shutdown). Default 5000 (execa's).
   */
  forceKillAfterDelay?: number;
  /** Aborting it stops the child (`killSignal`, then SIGKILL after the grace period). Already aborted: nothing is started and the call throws `signal.reason`. */
  signal?: AbortSignal;
  /**
   * Start the child in a new process group (a new session) and send every signal to
   * the whole group, so that children the child started are stopped with it. Default
   * false: the group no longer receives the terminal's Ctrl-C.
   */
  processGroup?: boolean;
}

/** The validated options. @internal */
export interface ResolvedOptions {
  stdin: StdioOption;
  stdout: StdioOption;
  stderr: StdioOption | typeof STDOUT;
  cwd: string | URL | undefined;
  env: Readonly<Record<string, string | undefined>> | undefined;
  timeout: number;
  killSignal: NodeJS.Signals;
  forceKillAfterDelay: number;
  signal: AbortSignal | undefined;
  processGroup: boolean;
}

/** Default grace period between `killSignal` and SIGKILL, ms. */
export const DEFAULT_FORCE_KILL_AFTER_DELAY = 5000;
// execa (and Node's timers) refuse longer delays.
const MAX_DELAY = 2 ** 31 - 1;

const KNOWN = new Set(['stdin', 'stdout', 'stderr', 'cwd', 'env', 'timeout', 'killSignal', 'forceKillAfterDelay', 'signal', 'processGroup']);

function checkStdio(name: string, value: unknown, allowStdout: boolean): StdioOption | typeof STDOUT {
  if (value === null || value === PIPE || value === DEVNULL || value === INHERIT) return value;
  if (allowStdout && value === STDOUT) return value;
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
  const extra = allowStdout ? ', STDOUT' : '';
  throw new InvalidArgumentError(`options.${name} must be PIPE, DEVNULL, INHERIT${extra}, null or a file descriptor, got ${inspect(value)}`);
}

function checkDelay(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= 0) || value > MAX_DELAY) {
    throw new InvalidArgumentError(`options.${name} must be a number of milliseconds between 0 and ${MAX_DELAY}, got ${inspect(value)}`);
  }
  return Math.ceil(value);
}

/**
 * Validates `options` eagerly, before anything starts, and fills in the defaults
 * (`stdio` is the default of the three streams).
 * @throws InvalidArgumentError on an unknown option or a bad value; InvalidSignalError on a bad `killSignal`.
 * @internal
 */
export function resolveOptions(options: unknown, stdio: StdioOption): ResolvedOptions {
  if (options === undefined) options = {};
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError(`subprocess options must be an object, got ${inspect(options)}`);
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!KNOWN.has(key)) throw new InvalidArgumentError(`unknown subprocess option '${key}'`);
  }
  const { cwd, env, signal, processGroup } = o;
  if (cwd !== undefined && typeof cwd !== 'string' && !(cwd instanceof URL)) throw new InvalidArgumentError(`options.cwd must be a path string or a file URL, got ${inspect(cwd)}`);
  if (env !== undefined) {
    if (env === null || typeof env !== 'object') throw new InvalidArgumentError(`options.env must be an object of strings, got ${inspect(env)}`);
    for (const [k, v] of Object.entries(env)) {
      if (v !== undefined && typeof v !== 'string') throw new InvalidArgumentError(`options.env.${k} must be a string, got ${inspect(v)}`);
    }
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new InvalidArgumentError(`options.signal must be an AbortSignal, got ${inspect(signal)}`);
  if (processGroup !== undefined && typeof processGroup !== 'boolean') throw new InvalidArgumentError('options.processGroup must be a boolean');
  return {
    stdin: checkStdio('stdin', o.stdin === undefined ? stdio : o.stdin, false) as StdioOption,
    stdout: checkStdio('stdout', o.stdout === undefined ? stdio : o.stdout, false) as StdioOption,
    stderr: checkStdio('stderr', o.stderr === undefined ? stdio : o.stderr, true),
    cwd: cwd as string | URL | undefined,
    env: env as Record<string, string | undefined> | undefined,
    timeout: checkDelay('timeout', o.timeout, 0),
    killSignal: o.killSignal === undefined ? 'SIGTERM' : signalName(o.killSignal, 'options.killSignal'),
    forceKillAfterDelay: checkDelay('forceKillAfterDelay', o.forceKillAfterDelay, DEFAULT_FORCE_KILL_AFTER_DELAY),
    signal: signal as AbortSignal | undefined,
    processGroup: processGroup === true,
  };
}

function execaStdio(value: StdioOption | typeof STDOUT): 'pipe' | 'ignore' | 'inherit' | number {
  if (value === null) return 'inherit';
  // STDOUT: stderr gets its own pipe, whose data the transport reports as fd 1.
  if (value === STDOUT) return 'pipe';
  return value;
}

/** The execa options for `o`. `shell` is true only for the shell variant. @internal */
export function toExecaOptions(o: ResolvedOptions, shell: boolean): ExecaOptions {
  return {
    // execa types file descriptors as literals; any fd of this process is valid here.
    stdin: execaStdio(o.stdin) as 'pipe',
    stdout: execaStdio(o.stdout) as 'pipe',
    stderr: execaStdio(o.stderr) as 'pipe',
    // The transport streams everything to its protocol: execa buffers nothing, decodes
    // nothing, and never rejects (exit codes and signals are results, not errors).
    buffer: false,
    encoding: 'buffer',
    stripFinalNewline: false,
    reject: false,
    verbose: 'none',
    ipc: false,
    preferLocal: false,
    shell,
    cwd: o.cwd,
    env: o.env,
    extendEnv: o.env === undefined,
    timeout: o.timeout,
    killSignal: o.killSignal,
    forceKillAfterDelay: o.forceKillAfterDelay,
    cancelSignal: o.signal,
    killDescendants: o.processGroup,
    // Kills the child if this process exits without closing its loop (process.exit(),
    // an uncaught error); nothing can when it is SIGKILLed.
    cleanup: true,
    windowsHide: true,
  };
}

/** Validates a program name or shell command. @internal */
export function checkCommand(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new InvalidArgumentError(`${what} must be a non-empty string, got ${inspect(value)}`);
  if (value.includes('\0')) throw new InvalidArgumentError(`${what} must not contain NUL bytes`);
  return value;
}

/** Validates an argument list: an array of strings, each passed to the child as is. @internal */
export function checkArgs(args: unknown): readonly string[] {
  if (args === undefined) return [];
  if (!Array.isArray(args)) throw new InvalidArgumentError(`args must be an array of strings, got ${inspect(args)}: arguments are never split or joined`);
  for (const [i, a] of args.entries()) {
    if (typeof a !== 'string') throw new InvalidArgumentError(`args[${i}] must be a string, got ${inspect(a)}`);
    if (a.includes('\0')) throw new InvalidArgumentError(`args[${i}] must not contain NUL bytes`);
  }
  return [...(args as string[])];
}
