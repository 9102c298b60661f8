/**
 * What the primary and its workers say to each other over the cluster IPC channel,
 * and the environment a worker starts with.
 *
 * ```
 * primary -> worker  env PROTOLOOP_WORKER = JSON WorkerSpec     at fork
 * worker -> primary  { t: 'ready', url, port }                 serve() returned
 * worker -> primary  { t: 'failed', message, stack }           import or serve() threw
 * primary -> worker  { t: 'drain' }                            stop accepting, finish, exit 0
 * ```
 * A worker also drains on SIGTERM/SIGINT, and when the primary goes away (IPC disconnect).
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
}

export const WORKER_ENV = 'PROTOLOOP_WORKER';

export type WorkerMessage = { t: 'ready'; url: string | null; port: number | null } | { t: 'failed'; message: string; stack: string | undefined };

export type PrimaryMessage = { t: 'drain' };

/** Whether `m` is one of ours (cluster also carries Node's internal messages). */
export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return typeof m === 'object' && m !== null && ((m as { t?: unknown }).t === 'ready' || (m as { t?: unknown }).t === 'failed');
}
