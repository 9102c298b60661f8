/**
 * The symbol table: every symbol through which one protoloop module reaches another
 * one's internals is declared here, once, with what it is for (undici's
 * `lib/core/symbols.js` is the model). A symbol private to one file stays in that
 * file. Nothing here is exported from the package, and the members keyed by these
 * symbols are left out of the published declarations (`stripInternal`), so users
 * cannot reach them by accident.
 *
 * Grouped by the object that carries the member; the arrow reads "who calls -> who
 * implements" where the member is a method.
 * @module
 */

// ---------------------------------------------------------------- Loop

/** Loop: callSoon without an argument array, for protoloop's own callbacks. */
export const kCallSoon = Symbol('protoloop.callSoon');
/** Future/Task -> Loop: a task started (counts it, lists it in `allTasks()`). */
export const kTaskStarted = Symbol('protoloop.taskStarted');
/** Future/Task -> Loop: a task finished. */
export const kTaskDone = Symbol('protoloop.taskDone');
/** Task: its neighbours in its loop's list of pending tasks (an intrusive list: no Set entry per task). */
export const kPendingPrev = Symbol('protoloop.pendingPrev');
export const kPendingNext = Symbol('protoloop.pendingNext');
/** TimerHandle -> Loop: a scheduled timer was cancelled (the heap compacts lazily). */
export const kTimerCancelled = Symbol('protoloop.timerCancelled');
/** Loop: the futures whose exception nobody retrieved yet, reported at close. */
export const kUnretrieved = Symbol('protoloop.unretrieved');
/** Loop: a {@link HookList} of sync hooks `close()` runs, in order (executors, subprocesses, signals, bridge, Fastify). */
export const kCloseHooks = Symbol('protoloop.closeHooks');
/** Loop: a {@link HookList} of async hooks `run()`/`Runner` await before `close()`. */
export const kShutdownHooks = Symbol('protoloop.shutdownHooks');
/** Loop: tracked resources (transports, servers, subprocesses) for "unclosed" reports. */
export const kResources = Symbol('protoloop.resources');
/** Loop: counters shown by `loop.stats()`. */
export const kStats = Symbol('protoloop.stats');
/** Loop: the timers still scheduled and not cancelled (`run(main, { strict: true })`). */
export const kPendingTimers = Symbol('protoloop.pendingTimers');
/**
 * executors/bridge -> Loop: runs `fn(a, b, c)` as an I/O event of the loop's (a worker's
 * answer or message arrived): a wake-up it requests runs the loop's iteration from a
 * microtask of this very event instead of a setImmediate later.
 */
export const kIoEvent = Symbol('protoloop.ioEvent');
/** runInExecutor -> Loop: count of executor jobs in flight, real work a virtual clock's autojump waits for. */
export const kRealWork = Symbol('protoloop.realWork');
/** Loop -> LoopClock: the clock drives the loop's timer wait (protoloop/testing's VirtualClock). */
export const kTimerDriver = Symbol('protoloop.timerDriver');
/** createConnection/createServer -> Network: run on a network other than the OS's (protoloop/testing's MemoryNetwork). */
export const kNetworkConnect = Symbol('protoloop.networkConnect');
export const kNetworkListen = Symbol('protoloop.networkListen');

// ------------------------------------------------- handles, futures, tasks

/** Handle: runs the callback (with the loop's error routing). */
export const kRun = Symbol('protoloop.run');
/** TimerHandle: whether it still sits in the loop's heap (a cancelled one may). */
export const kScheduled = Symbol('protoloop.scheduled');
/** Handle/Future/Task/transport: where it was created, captured in debug mode. */
export const kSourceTraceback = Symbol('protoloop.sourceTraceback');
/** Handle/Future: the creation stack as captured, formatted when kSourceTraceback is read (debug mode). */
export const kRawStack = Symbol('protoloop.rawStack');
/** Future: the call site its done callbacks are scheduled from (debug mode; a Task's is none). */
export const kSettleSite = Symbol('protoloop.settleSite');
/** Coroutine: starts it (idempotent) and returns its promise. */
export const kStart = Symbol('protoloop.start');
/** Task: whether to log "destroyed but pending" (false for runUntilComplete()'s own tasks). */
export const kLogDestroyPending = Symbol('protoloop.logDestroyPending');
/** Any awaitable: describes itself for task introspection (`protoloop ps`). */
export const kDescribe = Symbol('protoloop.describe');
/**
 * On a function protoloop schedules for itself: `(args) => what the call is for`, used
 * by reports instead of the function's name: the Task for a task step, else a text.
 */
export const kDescribeCall = Symbol('protoloop.describeCall');

// ------------------------------------------------------------- streams

/** StreamProtocol -> StreamReader: startTls() replaced the transport the reader pauses and resumes. */
export const kReplaceTransport = Symbol('protoloop.streams.replaceTransport');

// ---------------------------------------------------------- subprocess

/** Pipe -> subprocess transport: bytes arrived on a read pipe. */
export const kPipeData = Symbol('protoloop.subprocess.pipeData');
/** Pipe -> subprocess transport: a pipe closed (with the error that broke it, if any). */
export const kPipeClosed = Symbol('protoloop.subprocess.pipeClosed');
/** Stdin pipe -> subprocess transport: its water marks were crossed. */
export const kPipeFlow = Symbol('protoloop.subprocess.pipeFlow');
/** Subprocess transport -> read pipe: hold (or release) reading while undelivered data piles up. */
export const kHold = Symbol('protoloop.subprocess.hold');
/** The back-reference from a Node stream or ChildProcess to the protoloop object that owns it. */
export const kOwner = Symbol('protoloop.subprocess.owner');
/** Subprocess transport: a loop Future resolved with the return code once the transport finished. */
export const kWaitFinished = Symbol('protoloop.subprocess.waitFinished');
/** Subprocess transport: stop the child politely, then SIGKILL after the grace period, then wait until it is reaped. */
export const kStop = Symbol('protoloop.subprocess.stop');

// ---------------------------------------------------------- transports

/** The back-reference from a Node socket, dgram socket or ws object to the transport that owns it. */
export const kTransport = Symbol('protoloop.transports.transport');
/** WebSocket server/client -> WebSocketTransport: start it (connectionMade, heartbeat, idle timer). */
export const kStartTransport = Symbol('protoloop.transports.start');
/** Transport -> its server: the error its connectionLost got (to count peer drops and limits). */
export const kLostExc = Symbol('protoloop.transports.lostExc');

// ---------------------------------------------------------- the thread bridge

/** Loop: the handlers `exposeThreadsafe()` registered, by name (the bridge server reads them). */
export const kThreadsafeHandlers = Symbol('protoloop.threadsafeHandlers');

// ---------------------------------------------------------- scheduling order

/** Task: the last `then()` registration the task made on a protoloop Future (its suspension point). */
export const kLastWait = Symbol('protoloop.lastWait');
/** @internal Future method: `then()` without handlers whose promise leads back to the future (see future.ts). */
export const kAwait = Symbol('protoloop.await');
/** @internal Loop method: a task calling `fn(...args)`, without a closure (see loop.ts). */
export const kCreateTaskCalling = Symbol('protoloop.createTaskCalling');
/** @internal A done handler object's method (Future[kAddDoneHandler]): called with the future, through callSoon. */
export const kOnDone = Symbol('protoloop.onDone');
/** @internal Future method: adds a done handler object (no closure per registration). */
export const kAddDoneHandler = Symbol('protoloop.addDoneHandler');
/** Loop: a callback of the running batch woke `task` (it settled the await `task` is suspended on). */
export const kWoke = Symbol('protoloop.woke');
/** Future: set the result and settle its awaits now, inside the current callback (sleep(0)). */
export const kSetResultNow = Symbol('protoloop.setResultNow');
/** TaskOptions: an object whose kTaskName() makes the task's name when it is first asked for. */
export const kNameSource = Symbol('protoloop.nameSource');
/** The method of a kNameSource object that makes the name. */
export const kTaskName = Symbol('protoloop.taskName');
/** Future: finish with a result made when it is first read or delivered (kMakeResult). */
export const kSetResultLazy = Symbol('protoloop.setResultLazy');
/** Future subclass: makes the result of a future finished with kSetResultLazy. */
export const kMakeResult = Symbol('protoloop.makeResult');
/** Future: the CancelledError to re-raise when the future is awaited (a task that ended with one). */
export const kCancelledError = Symbol('protoloop.cancelledError');

// ---------------------------------------------------------- observability

/** Future: its exception (or undefined), read without marking it retrieved (the diagnostics channels). */
export const kPeekException = Symbol('protoloop.peekException');
