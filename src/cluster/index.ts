/**
 * `protoloop/cluster`: one loop per core. A subpath of its own because it is used in
 * one place (the entry script of a deployment) and pulls in node:cluster and process
 * supervision, which library code that imports `protoloop` never needs.
 * @packageDocumentation
 */
export { serveWorkers, WorkerPool } from './serve-workers.ts';
export type { ServeWorkersOptions, WorkerServeOptions, WorkerInfo, Served } from './serve-workers.ts';
export type { PortSharing } from './port-sharing.ts';
export { WorkerCrashLoopError, ProxyProtocolError } from '../errors.ts';
