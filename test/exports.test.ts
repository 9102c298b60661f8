/**
 * The public surface, pinned: adding or removing an export is a deliberate change to this
 * list (and to the README/docs in the same commit).
 */
import { describe, expect, it } from 'vitest';
import * as protoloop from '../src/index.ts';
import * as fastify from '../src/fastify/index.ts';
import * as testing from '../src/testing/index.ts';
import * as cluster from '../src/cluster/index.ts';
import { ProtoloopError } from '../src/index.ts';

describe('public surface', () => {
  it('protoloop exports exactly these names', () => {
    expect(Object.keys(protoloop).sort()).toEqual([
    'AsCompleted',
    'Barrier',
    'BaseProtocol',
    'BaseServer',
    'BoundedSemaphore',
    'BridgeClient',
    'BridgeError',
    'BrokenBarrierError',
    'BrokenPipeError',
    'BufferedProtocol',
    'CancelledError',
    'Condition',
    'ConnectionError',
    'ConnectionRefusedError',
    'ConnectionResetError',
    'Coroutine',
    'DEFAULT_LIMIT',
    'DEVNULL',
    'DatagramProtocol',
    'DatagramSocketTransport',
    'DnsError',
    'Event',
    'ExceptionGroup',
    'ExecutorShutdownError',
    'Future',
    'Handle',
    'HeartbeatTimeoutError',
    'INHERIT',
    'IdleTimeoutError',
    'IncompleteReadError',
    'InvalidArgumentError',
    'InvalidSignalError',
    'InvalidStateError',
    'KeyboardInterrupt',
    'LeakError',
    'LifoQueue',
    'LimitOverrunError',
    'Lock',
    'Loop',
    'LoopClosedError',
    'LoopRunningError',
    'LoopStoppedError',
    'MainThreadOnlyError',
    'MaxBufferError',
    'MessageProtocol',
    'NoRunningLoopError',
    'NotCloneableError',
    'PIPE',
    'PriorityQueue',
    'Process',
    'ProcessPoolExecutor',
    'Protocol',
    'ProtoloopError',
    'ProxyProtocolError',
    'Queue',
    'QueueEmpty',
    'QueueFull',
    'QueueShutDown',
    'Releaser',
    'RemoteError',
    'ResourceBusyError',
    'Runner',
    'STDOUT',
    'Semaphore',
    'SendfileNotAvailableError',
    'Server',
    'SocketTransport',
    'StreamReader',
    'StreamWriter',
    'SubprocessError',
    'SubprocessProtocol',
    'SystemExit',
    'Task',
    'TaskGroup',
    'TaskModuleError',
    'ThreadPoolExecutor',
    'Timeout',
    'TimeoutError',
    'TimerHandle',
    'TlsError',
    'TransportClosedError',
    'WebSocketError',
    'WebSocketHandshakeError',
    'WebSocketServer',
    'WebSocketStream',
    'WebSocketTransport',
    'WorkerCrashLoopError',
    'WorkerCrashedError',
    'allTasks',
    'asCompleted',
    'callSoonThreadsafe',
    'channelNames',
    'connectBridge',
    'coroutine',
    'createLogger',
    'createSubprocessExec',
    'createSubprocessShell',
    'currentTask',
    'eagerTaskFactory',
    'ensureFuture',
    'gather',
    'getRunningLoop',
    'isCoroutine',
    'isExecutor',
    'isFuture',
    'openConnection',
    'openUnixConnection',
    'openWebSocket',
    'run',
    'runCoroutineThreadsafe',
    'shield',
    'sleep',
    'startServer',
    'startUnixServer',
    'startWebSocketServer',
    'taskGroup',
    'timeout',
    'timeoutAt',
    'toThread',
    'transfer',
    'wait',
    'waitFor',
    'workerTask',
    'wrapFuture',
    ]);
  });

  it('protoloop/fastify exports exactly these names', () => {
    expect(Object.keys(fastify).sort()).toEqual([
    'FastifyServer',
    'protoloopFastify',
    'serveFastify',
    ]);
  });

  it('protoloop/cluster exports exactly these names', () => {
    expect(Object.keys(cluster).sort()).toEqual([
    'ProxyProtocolError',
    'WorkerCrashLoopError',
    'WorkerPool',
    'serveWorkers',
    ]);
  });

  it('protoloop/testing exports exactly these names', () => {
    expect(Object.keys(testing).sort()).toEqual([
    'LeakError',
    'MemoryLink',
    'MemoryNetwork',
    'MemoryServer',
    'MemoryTransport',
    'VirtualClock',
    'createMemoryConnection',
    'memoryStreamPair',
    ]);
  });

  it('every exported error class extends ProtoloopError (or AggregateError, for ExceptionGroup)', () => {
    const errors = Object.entries(protoloop).filter(([name, v]) => typeof v === 'function' && (name.endsWith('Error') || ['KeyboardInterrupt', 'SystemExit', 'QueueEmpty', 'QueueFull', 'QueueShutDown', 'ExceptionGroup'].includes(name)));
    expect(errors.length).toBeGreaterThan(30);
    for (const [name, cls] of errors) {
      const proto = (cls as { prototype: unknown }).prototype;
      expect(cls === ProtoloopError || proto instanceof ProtoloopError || proto instanceof AggregateError, name).toBe(true);
    }
  });
});
