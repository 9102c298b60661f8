/**
 * What the primary and its workers say to each other over the cluster IPC channel,
 * and the environment a worker starts with.
 *
 * ```
 * primary -> worker  env PROTOLOOP_WORKER = JSON WorkerSpec     at fork
 * worker -> primary  { t: 'ready', url, port }                 serve() returned
 * worker -> primary  { t: 'failed', message, stack }           import or serve() threw
 * primary -> worker  { t: 'drain' }                            stop accepting, finish
 * worker -> primary  { t: 'drained' }                          done; then waits for bye
 * primary -> worker  { t: 'bye' }                              exit 0
 *
 * rolling restart, reusePort (see listeners.ts):
 * primary -> old     { t: 'handover' }                         send your listening sockets
 * old -> primary     { t: 'listeners', count }, then count x { t: 'listener' } + handle
 * new -> primary     { t: 'inherit' }                          (spec.inherit = count) ready to take them
 * primary -> new     count x { t: 'listener' } + handle
 * ```
 * A worker also drains on SIGTERM/SIGINT, and when the primary goes away (IPC disconnect).
 *
 * Why the drained/bye round trip: with node:cluster's round-robin the primary may have
 * sent a connection to a worker just before it learnt that the worker stopped
 * listening; a worker that exited without reading it would leave that client hanging
 * (the primary waits for an answer that never comes). Node's cluster sends such late
 * connections back to the primary, which hands them to another worker, but only while
 * the worker still reads its channel. Messages keep their order on the channel, so once
 * `bye` arrives every connection sent before it has been read and returned.
 * @module
 */

/** What a worker is told to run. */
export interface WorkerSpec {
  /** The module whose `serve` export runs in the worker. */
  moduleUrl: string;
  /** The export to call. */
  exportName: string;
  /** 1-based slot number: a restarted worker keeps its slot. */
  workerId: number;
  /** The options given to `serve()`. */
  serveOptions: Record<string, unknown>;
  /** How long (ms) a drain may take before the worker aborts what is left. */
  drainTimeout: number;
  /** Open the worker's inspection endpoint (for `protoloop ps <primary pid>`). */
  inspect: boolean;
  /** How many listening sockets of its predecessor arrive (`listener` messages) before `serve()` runs. */
  inherit: number;
}

export const WORKER_ENV = 'PROTOLOOP_WORKER';

export type WorkerMessage =
  | { t: 'ready'; url: string | null; port: number | null }
  | { t: 'failed'; message: string; stack: string | undefined }
  | { t: 'drained' }
  | { t: 'listeners'; count: number }
  | { t: 'listener' }
  | { t: 'inherit' };

export type PrimaryMessage = { t: 'drain' } | { t: 'bye' } | { t: 'handover' } | { t: 'listener' };

const WORKER_KINDS = new Set(['ready', 'failed', 'drained', 'listeners', 'listener', 'inherit']);
const PRIMARY_KINDS = new Set(['drain', 'bye', 'handover', 'listener']);

/** Whether `m` is one of ours (cluster also carries Node's internal messages). */
export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return typeof m === 'object' && m !== null && WORKER_KINDS.has((m as { t?: unknown }).t as string);
}

/** Whether `m` is one of the primary's. */
export function isPrimaryMessage(m: unknown): m is PrimaryMessage {
  return typeof m === 'object' && m !== null && PRIMARY_KINDS.has((m as { t?: unknown }).t as string);
}
