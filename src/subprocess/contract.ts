/**
 * The subprocess transport contract: what a `SubprocessProtocol` can ask of the child
 * it is connected to. The machinery lives in `transport.ts` and `pipes.ts`.
 *
 * ```
 * starting --(spawned)--> running --(child exits)--> exited --(every pipe closed)--> finished
 *    \--(spawn fails: the create call throws SubprocessError, no protocol call)
 * ```
 * Protocol calls, in order: `connectionMade`, then `pipeDataReceived(fd, data)*`,
 * `pipeConnectionLost(fd, exc)` once per pipe and `processExited()` once (these two
 * in any order), then `connectionLost(undefined)` exactly once, after the exit AND
 * the last pipe. `pauseWriting`/`resumeWriting` report the stdin pipe's water marks.
 * `close()` closes the pipes and SIGKILLs a child still running; `connectionLost`
 * still waits for the child to be reaped.
 * @module
 */
import type { BaseTransport, ReadTransport, WriteTransport } from '../transports/transports.ts';
import type { SignalLike } from './signals.ts';

/** How a finished child ended. */
export interface ExitInfo {
  /** The exit code, or minus the signal number when a signal ended the child (asyncio's). */
  returncode: number;
  /** The name of the signal that ended the child, or null. */
  signal: NodeJS.Signals | null;
  /** Whether the `timeout` option stopped the child. */
  timedOut: boolean;
  /** Whether the `signal` option (an AbortSignal) stopped the child. */
  cancelled: boolean;
  /** Whether the child ignored the polite signal and had to be SIGKILLed after the grace period. */
  forcefullyTerminated: boolean;
}

/** The transport of a child process (asyncio's SubprocessTransport). */
export interface SubprocessTransport extends BaseTransport {
  /** The child's process id. */
  getPid(): number;
  /** `null` while the child runs; then its exit code, or minus the signal number that ended it. */
  getReturncode(): number | null;
  /**
   * The transport of one of the child's pipes: fd 0 (stdin) is a write transport with
   * flow control, fds 1 and 2 are read transports (`pauseReading()` makes the child
   * block on its writes). `null` when that stream is not a pipe.
   */
  getPipeTransport(fd: 0): WriteTransport | null;
  getPipeTransport(fd: 1 | 2): ReadTransport | null;
  getPipeTransport(fd: number): WriteTransport | ReadTransport | null;
  /**
   * Sends `signal` to the child (to its whole group with `processGroup`). A child that
   * already exited is left alone.
   * @throws InvalidSignalError for an unknown signal; TransportClosedError after `close()`.
   */
  sendSignal(signal: SignalLike): void;
  /** `sendSignal('SIGTERM')`. */
  terminate(): void;
  /** `sendSignal('SIGKILL')`. */
  kill(): void;
  /** How the child ended, once the transport finished (exit and every pipe closed); null before. */
  getExitInfo(): ExitInfo | null;
}
