// The loop core's part of the public API. src/index.ts re-exports this list.
export { Loop, getRunningLoop, currentTask, allTasks } from './loop.ts';
export type { LoopOptions, LoopStats, ExceptionContext, ExceptionHandler, TaskFactory } from './loop.ts';
export { Handle, TimerHandle } from './handle.ts';
export { Future, isFuture } from './future.ts';
export type { FutureState, DoneCallback } from './future.ts';
export { Task } from './task.ts';
export type { TaskOptions, TaskTarget, StackOptions } from './task.ts';
export { Coroutine, coroutine, isCoroutine } from './coroutine.ts';
export { sleep } from './sleep.ts';
export { run, Runner } from './runner.ts';
export type { RunOptions } from './runner.ts';
export { createLogger } from './log.ts';
export type { Logger, LogLevel, CreateLoggerOptions } from './log.ts';
export { channelNames } from './channels.ts';
export type { ConnectionKind, ConnectionMessage, ExecutorJobMessage, FastifyHandlerMessage, ServerMessage, SlowCallbackMessage, SubprocessMessage, TaskCreatedMessage, TaskDoneMessage } from './channels.ts';
