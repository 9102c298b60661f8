// The public names of executors and the thread bridge; src/index.ts re-exports this list.
// Their Loop methods (runInExecutor, setDefaultExecutor, shutdownDefaultExecutor,
// exposeThreadsafe, unexposeThreadsafe, bridgeEndpoint) are written in src/loop/loop.ts
// (see src/loop/contract.ts), which loads this area's code on first use.
export { toThread, workerTask, isExecutor } from './executor.ts';
export type { Executor, ExecutorState, WorkerTask, SubmitOptions, ExecutorShutdownOptions } from './executor.ts';
export { transfer } from './transfer.ts';
export type { TransferItem } from './transfer.ts';
export { ThreadPoolExecutor } from './thread-pool.ts';
export type { ThreadPoolExecutorOptions } from './thread-pool.ts';
export { ProcessPoolExecutor } from './process-pool.ts';
export type { ProcessPoolExecutorOptions } from './process-pool.ts';
export { BridgeClient, connectBridge, callSoonThreadsafe, runCoroutineThreadsafe } from './bridge.ts';
export type { BridgeCallTarget } from './bridge.ts';
export type { ThreadsafeHandler } from './bridge-server.ts';
