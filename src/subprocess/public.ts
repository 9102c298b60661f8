// The public names of src/subprocess; src/index.ts re-exports this list.
import './loop-methods.ts';

export { PIPE, STDOUT, DEVNULL, INHERIT } from './options.ts';
export type { SubprocessOptions, StdioOption } from './options.ts';
export type { SubprocessTransport, ExitInfo } from './contract.ts';
export type { SignalLike } from './signals.ts';
export { Process, createSubprocessExec, createSubprocessShell } from './process.ts';
export type { ProcessOptions } from './process.ts';
