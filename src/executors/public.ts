// The public names of executors, the thread bridge and signals; src/index.ts re-exports this list.
// The Loop methods of this area (runInExecutor, setDefaultExecutor, shutdownDefaultExecutor,
// exposeThreadsafe, unexposeThreadsafe, bridgeEndpoint, addSignalHandler, removeSignalHandler)
// are installed by these side-effect imports.
import './loop-methods.ts';
import './bridge-server.ts';
import '../loop/signals.ts';

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
