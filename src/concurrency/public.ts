// The public names of structured concurrency, timeouts, sync primitives and queues; src/index.ts re-exports this list.
export { taskGroup, TaskGroup } from './taskgroup.ts';
export type { TaskGroupState } from './taskgroup.ts';
export { timeout, timeoutAt, waitFor, Timeout } from './timeouts.ts';
export type { TimeoutState } from './timeouts.ts';
export { gather } from './gather.ts';
export type { GatherOptions, GatherResults, GatherSettled } from './gather.ts';
export { wait, asCompleted, AsCompleted } from './wait.ts';
export type { ReturnWhen, WaitForOptions, WaitResult, AsCompletedOptions } from './wait.ts';
export { shield } from './shield.ts';
export { Lock, Event, Condition, Releaser } from './locks.ts';
export type { LockState, EventState } from './locks.ts';
export { Semaphore, BoundedSemaphore } from './semaphores.ts';
export { Barrier } from './barrier.ts';
export type { BarrierState } from './barrier.ts';
export { Queue, PriorityQueue, LifoQueue } from './queues.ts';
export type { QueueOptions, PriorityQueueOptions, QueueState } from './queues.ts';
export type { Awaitable, AwaitedOf, WaitOptions } from './waiters.ts';
export { eagerTaskFactory } from './eager.ts';
