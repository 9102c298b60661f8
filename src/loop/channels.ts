/**
 * The diagnostics channels protoloop publishes on (`node:diagnostics_channel`), all
 * named and created here, in the lowest layer that publishes, so that one table lists
 * them: the loop publishes the task and slow-callback events, the transports, the
 * servers, the subprocess transport, the executors and the Fastify adapter import
 * their channel from this module. docs/observability.md documents each message.
 *
 * Cost: a publisher reads `channel.hasSubscribers` (one property read) and builds its
 * message only when it is true. With no subscriber nothing is allocated.
 * @module
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { debuglog } from 'node:util';

/** The names of protoloop's diagnostics channels. */
export const channelNames = {
  /** A task was created: {@link TaskCreatedMessage}. */
  taskCreated: 'protoloop:task:created',
  /** A task finished: {@link TaskDoneMessage}. */
  taskDone: 'protoloop:task:done',
  /** A callback, task step or protocol call blocked the loop: {@link SlowCallbackMessage}. */
  callbackSlow: 'protoloop:callback:slow',
  /** A connection was made (`connectionMade` is about to run): {@link ConnectionMessage}. */
  connectionMade: 'protoloop:connection:made',
  /** A connection was lost (`connectionLost` is about to run): {@link ConnectionMessage}. */
  connectionLost: 'protoloop:connection:lost',
  /** A server started listening: {@link ServerMessage}. */
  serverListen: 'protoloop:server:listen',
  /** A server stopped listening: {@link ServerMessage}. */
  serverClose: 'protoloop:server:close',
  /** A child process started: {@link SubprocessMessage}. */
  subprocessSpawn: 'protoloop:subprocess:spawn',
  /** A child process exited: {@link SubprocessMessage}. */
  subprocessExit: 'protoloop:subprocess:exit',
  /** An executor job, as a TracingChannel (`tracing:protoloop:executor:job:start`, ...): {@link ExecutorJobMessage}. */
  executorJob: 'protoloop:executor:job',
  /** A Fastify route handler task, as a TracingChannel: {@link FastifyHandlerMessage}. */
  fastifyHandler: 'protoloop:fastify:handler',
} as const;

/** What a transport carries, in {@link ConnectionMessage.kind}. */
export type ConnectionKind = 'tcp' | 'unix' | 'tls' | 'udp' | 'websocket' | 'memory';

/** `protoloop:task:created`: published from inside `loop.createTask()` (the task's first step has not run, unless it is eager). */
export interface TaskCreatedMessage {
  /** The Task. */
  task: unknown;
  /** `task.id`. */
  id: number;
  /** `task.getName()`. */
  name: string;
  /** The id of the task that created it, or null. */
  parentId: number | null;
  /** The loop. */
  loop: unknown;
}

/** `protoloop:task:done`: published when a task finishes, before its done callbacks run. */
export interface TaskDoneMessage extends TaskCreatedMessage {
  /** How it finished. */
  state: 'result' | 'exception' | 'cancelled';
  /** The error, when `state` is `'exception'`. */
  exception?: unknown;
  /** Loop milliseconds from creation to the end. */
  durationMs: number;
}

/** `protoloop:callback:slow`. */
export interface SlowCallbackMessage {
  /** What ran, as the debug report names it (`<Handle fn()>`, `<Task ...>`, `MyProtocol.dataReceived() on <...>`). */
  what: string;
  /** How long it ran, in milliseconds. */
  durationMs: number;
  /** The loop. */
  loop: unknown;
  /** The objects involved, when known: `handle`, `task`, `protocol`, `transport`, `route`. */
  handle?: unknown;
  task?: unknown;
  protocol?: unknown;
  transport?: unknown;
  route?: unknown;
}

/** `protoloop:connection:made` and `protoloop:connection:lost`. */
export interface ConnectionMessage {
  /** The transport kind. */
  kind: ConnectionKind;
  /** The transport. */
  transport: unknown;
  /** The local address: `{ address, port, family }`, a Unix path, or undefined. */
  local: unknown;
  /** The peer's address, same forms. */
  peer: unknown;
  /** On `lost`: the error the connection was lost with, undefined after a clean close. */
  error?: Error | undefined;
}

/** `protoloop:server:listen` and `protoloop:server:close`. */
export interface ServerMessage {
  /** The server. */
  server: unknown;
  /** `'tcp'` (also TLS and Unix servers), `'websocket'`, `'fastify'` or `'memory'`. */
  kind: string;
  /** Where it listens, as `server.toString()` shows it. */
  address: string;
}

/** `protoloop:subprocess:spawn` and `protoloop:subprocess:exit`. */
export interface SubprocessMessage {
  /** The program (or the shell command). */
  file: string;
  /** Its arguments. */
  args: readonly string[];
  /** The child's pid. */
  pid: number;
  /** On exit: the return code (negative: killed by that signal). */
  returncode?: number | null;
  /** On exit: the signal that killed it, or null. */
  signal?: string | null;
  /** The subprocess transport. */
  transport: unknown;
}

/** The context object of `protoloop:executor:job` (the same object goes to each of its events). */
export interface ExecutorJobMessage {
  /** The executor's class name (`ThreadPoolExecutor`, `ProcessPoolExecutor`, ...). */
  executor: string;
  /** The task's module (its URL, as given). */
  module: string;
  /** The task's export. */
  export: string;
  /** The future `runInExecutor()` returned. */
  future: unknown;
  /** Set before `asyncStart`: the job's result. */
  result?: unknown;
  /** Set before `error`: the job's error (a `CancelledError` when it was cancelled). */
  error?: unknown;
}

/** The context object of `protoloop:fastify:handler` (the same object goes to each of its events). */
export interface FastifyHandlerMessage {
  /** The route's URL pattern (`/users/:id`). */
  route: string;
  /** The request's method. */
  method: string;
  /** The request's URL. */
  url: string;
  /** The Fastify request and reply. */
  request: unknown;
  reply: unknown;
  /** The handler's task (`start` runs inside it). */
  task: unknown;
  /** Set before `asyncStart`: the handler's answer. */
  result?: unknown;
  /** Set before `error`: the handler's error. */
  error?: unknown;
}

/** @internal */
export const taskCreatedChannel = diagnosticsChannel.channel(channelNames.taskCreated);
/** @internal */
export const taskDoneChannel = diagnosticsChannel.channel(channelNames.taskDone);
/** @internal */
export const callbackSlowChannel = diagnosticsChannel.channel(channelNames.callbackSlow);
/** @internal */
export const connectionMadeChannel = diagnosticsChannel.channel(channelNames.connectionMade);
/** @internal */
export const connectionLostChannel = diagnosticsChannel.channel(channelNames.connectionLost);
/** @internal */
export const serverListenChannel = diagnosticsChannel.channel(channelNames.serverListen);
/** @internal */
export const serverCloseChannel = diagnosticsChannel.channel(channelNames.serverClose);
/** @internal */
export const subprocessSpawnChannel = diagnosticsChannel.channel(channelNames.subprocessSpawn);
/** @internal */
export const subprocessExitChannel = diagnosticsChannel.channel(channelNames.subprocessExit);
/** @internal */
export const executorJobChannel = diagnosticsChannel.tracingChannel<object, ExecutorJobMessage & object>(channelNames.executorJob);
/** @internal */
export const fastifyHandlerChannel = diagnosticsChannel.tracingChannel<object, FastifyHandlerMessage & object>(channelNames.fastifyHandler);

/**
 * `NODE_DEBUG=protoloop`: Node's `util.debuglog` for the section `protoloop` (lines
 * `PROTOLOOP <pid>: ...` on stderr). {@link nodeDebugEnabled} is read once, at load.
 * @internal
 */
export const nodeDebug = debuglog('protoloop');
/** @internal Whether `NODE_DEBUG` names `protoloop`. */
export const nodeDebugEnabled: boolean = nodeDebug.enabled;

/**
 * @internal Whether the loop must time its callbacks although it is not in debug mode:
 * someone listens for slow callbacks, or NODE_DEBUG=protoloop prints them. Read once
 * per batch of callbacks.
 */
export function timeCallbacks(): boolean {
  return nodeDebugEnabled || callbackSlowChannel.hasSubscribers;
}
