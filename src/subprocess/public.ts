// The public names of src/subprocess; src/index.ts re-exports this list. The Loop's
// subprocessExec()/subprocessShell() are written in src/loop/loop.ts, which loads
// ./loop-methods.ts on first use.
export { PIPE, STDOUT, DEVNULL, INHERIT } from './options.ts';
export type { SubprocessOptions, StdioOption } from './options.ts';
export type { SubprocessTransport, ExitInfo } from './contract.ts';
export type { SignalLike } from './signals.ts';
export { Process, createSubprocessExec, createSubprocessShell } from './process.ts';
export type { ProcessOptions, CommunicateOptions } from './process.ts';
