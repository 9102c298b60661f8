/**
 * The low-level subprocess methods of `Loop`: `subprocessExec()` and
 * `subprocessShell()` (asyncio's `loop.subprocess_exec`/`subprocess_shell`).
 * Main thread only.
 * @module
 */
import { inspect } from 'node:util';
import { CancelledError, InvalidArgumentError, LoopClosedError } from '../errors.ts';
import { assertMainThread } from '../loop/debug.ts';
import { Loop } from '../loop/loop.ts';
import type { BaseProtocol } from '../protocols/protocols.ts';
import type { SubprocessTransport } from './contract.ts';
import { PIPE, resolveOptions, type SubprocessOptions } from './options.ts';
import { ExecaSubprocessTransport, type SpawnRequest } from './transport.ts';

declare module '../loop/loop.ts' {
  interface Loop {
    /**
     * Starts `file` with `args` (never joined into a command line, no shell) and
     * connects it to the protocol `protocolFactory()` returns. stdin, stdout and
     * stderr default to {@link PIPE}. Resolves once the child runs and
     * `connectionMade` was called. Main thread only.
     *
     * ```ts
     * const [transport, protocol] = await loop.subprocessExec(() => new MyProtocol(), 'ls', ['-l']);
     * ```
     * @throws MainThreadOnlyError at once in a worker thread; InvalidArgumentError /
     * InvalidSignalError for bad arguments (at once); SubprocessError (`code`
     * ENOENT, EACCES, ...) when the child cannot be started; `options.signal.reason`
     * when the signal is already aborted; LoopClosedError on a closed loop. Cancelling
     * the awaiting task kills a child that was starting.
     */
    subprocessExec<P extends BaseProtocol>(
      protocolFactory: () => P,
      file: string,
      args?: readonly string[],
      options?: SubprocessOptions,
    ): Promise<[SubprocessTransport, P]>;
    /**
     * Runs `command` through `/bin/sh -c` (quoting is the caller's job) and connects
     * it to the protocol; otherwise as {@link Loop.subprocessExec}.
     */
    subprocessShell<P extends BaseProtocol>(protocolFactory: () => P, command: string, options?: SubprocessOptions): Promise<[SubprocessTransport, P]>;
  }
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

/**
 * Starts a child for `request` on `loop` with a new protocol. Spawn failures come out
 * as SubprocessError with nothing left behind; cancelling the awaiting task while the
 * child starts kills it. @internal
 */
export async function startSubprocess<P extends BaseProtocol>(loop: Loop, protocolFactory: () => P, request: SpawnRequest): Promise<[ExecaSubprocessTransport, P]> {
  if (loop.isClosed()) throw new LoopClosedError();
  const signal = request.options.signal;
  if (signal?.aborted) throw signal.reason;
  const protocol = protocolFactory();
  if (protocol === null || typeof protocol !== 'object') throw new InvalidArgumentError(`protocolFactory() must return a protocol object, got ${inspect(protocol)}`);
  const transport = new ExecaSubprocessTransport(loop, protocol, request);
  try {
    await transport.spawned;
  } catch (e) {
    // Cancelled while starting: the child must not outlive the call.
    if (e instanceof CancelledError) transport.close();
    throw e;
  }
  return [transport, protocol];
}

function checkFactory(protocolFactory: unknown): void {
  if (typeof protocolFactory !== 'function') throw new InvalidArgumentError(`protocolFactory must be a function returning a protocol, got ${inspect(protocolFactory)}`);
}

Loop.prototype.subprocessExec = function subprocessExec<P extends BaseProtocol>(
  this: Loop,
  protocolFactory: () => P,
  file: string,
  args?: readonly string[],
  options?: SubprocessOptions,
): Promise<[SubprocessTransport, P]> {
  assertMainThread('loop.subprocessExec()');
  checkFactory(protocolFactory);
  const request: SpawnRequest = { file: checkCommand(file, 'file'), args: checkArgs(args), shell: false, options: resolveOptions(options, PIPE) };
  return startSubprocess(this, protocolFactory, request);
};

Loop.prototype.subprocessShell = function subprocessShell<P extends BaseProtocol>(
  this: Loop,
  protocolFactory: () => P,
  command: string,
  options?: SubprocessOptions,
): Promise<[SubprocessTransport, P]> {
  assertMainThread('loop.subprocessShell()');
  checkFactory(protocolFactory);
  const request: SpawnRequest = { file: checkCommand(command, 'command'), args: [], shell: true, options: resolveOptions(options, PIPE) };
  return startSubprocess(this, protocolFactory, request);
};
