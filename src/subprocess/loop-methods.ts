/**
 * What `loop.subprocessExec()` and `loop.subprocessShell()` run (asyncio's
 * `loop.subprocess_exec`/`subprocess_shell`); the methods themselves are in
 * src/loop/loop.ts, which loads this module on first use (src/loop/lazy.ts).
 * Main thread only: the Loop checks it before loading anything.
 * @module
 */
import { inspect } from 'node:util';
import { CancelledError, InvalidArgumentError, LoopClosedError } from '../errors.ts';
import { execaLib } from '../loop/lazy.ts';
import type { Loop } from '../loop/loop.ts';
import type { BaseProtocol } from '../protocols/protocols.ts';
import type { SubprocessTransport } from './contract.ts';
import { checkArgs, checkCommand, PIPE, resolveOptions, type SubprocessOptions } from './options.ts';
import { ExecaSubprocessTransport, type SpawnRequest } from './transport.ts';

/**
 * Starts a child for `request` on `loop` with a new protocol. Spawn failures come out
 * as SubprocessError with nothing left behind; cancelling the awaiting task while the
 * child starts kills it. @internal
 */
export async function startSubprocess<P extends BaseProtocol>(loop: Loop, protocolFactory: () => P, request: SpawnRequest): Promise<[ExecaSubprocessTransport, P]> {
  if (loop.isClosed()) throw new LoopClosedError();
  const signal = request.options.signal;
  if (signal?.aborted) throw signal.reason;
  // execa is loaded by the first child, not by import('protoloop').
  if (execaLib.value === undefined) {
    await execaLib.load();
    if (loop.isClosed()) throw new LoopClosedError();
    if (signal?.aborted) throw signal.reason;
  }
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

/** `loop.subprocessExec()`: `file` with `args`, no shell. */
export function subprocessExec<P extends BaseProtocol>(
  loop: Loop,
  protocolFactory: () => P,
  file: string,
  args?: readonly string[],
  options?: SubprocessOptions,
): Promise<[SubprocessTransport, P]> {
  checkFactory(protocolFactory);
  const request: SpawnRequest = { file: checkCommand(file, 'file'), args: checkArgs(args), shell: false, options: resolveOptions(options, PIPE) };
  return startSubprocess(loop, protocolFactory, request);
}

/** `loop.subprocessShell()`: `command` through `/bin/sh -c`. */
export function subprocessShell<P extends BaseProtocol>(loop: Loop, protocolFactory: () => P, command: string, options?: SubprocessOptions): Promise<[SubprocessTransport, P]> {
  checkFactory(protocolFactory);
  const request: SpawnRequest = { file: checkCommand(command, 'command'), args: [], shell: true, options: resolveOptions(options, PIPE) };
  return startSubprocess(loop, protocolFactory, request);
}
