// OpenTelemetry spans from protoloop's diagnostics channels (docs/observability.md),
// with no monkey-patching: a span per Fastify request, and under it a span for each
// task the handler created, each child process it ran and each executor job.
//
// - The request span is made the active context of the handler through the
//   `protoloop:fastify:handler` TracingChannel: its `start` channel binds the context
//   manager's AsyncLocalStorage (`bindStore`), so the handler and everything it starts
//   see the span as `context.active()`.
// - Tasks run in their creator's async context, so the context follows them across
//   every await; `task:created` is published in the creator's context, so a task's
//   span is parented on the span that was active where it was created.
// - Children and executor jobs are parented the same way, on the context of the code
//   that started them.
//
//   node examples/otel.ts      (needs @opentelemetry/api and @opentelemetry/sdk-trace-base)
import { AsyncLocalStorage } from 'node:async_hooks';
import diagnosticsChannel from 'node:diagnostics_channel';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT_CONTEXT, SpanStatusCode, context, trace, type Context, type ContextManager, type Span, type Tracer } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import Fastify from 'fastify';
import {
  channelNames,
  createSubprocessExec,
  getRunningLoop,
  run,
  sleep,
  toThread,
  workerTask,
  type ExecutorJobMessage,
  type FastifyHandlerMessage,
  type SubprocessMessage,
  type TaskCreatedMessage,
  type TaskDoneMessage,
} from '../src/index.ts';
import { protoloopFastify, serveFastify } from '../src/fastify/index.ts';

/**
 * An OpenTelemetry context manager on an AsyncLocalStorage of its own (the one of
 * `@opentelemetry/context-async-hooks` is private), so that a diagnostics channel can
 * bind it with `channel.bindStore(manager.storage, ...)`.
 */
export class StoreContextManager implements ContextManager {
  readonly storage = new AsyncLocalStorage<Context>();

  active(): Context {
    return this.storage.getStore() ?? ROOT_CONTEXT;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.storage.run(ctx, () => fn.apply(thisArg, args));
  }

  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const fn = target as unknown as (...a: unknown[]) => unknown;
    const manager = this;
    return function bound(this: unknown, ...args: unknown[]) {
      return manager.with(ctx, () => fn.apply(this, args));
    } as unknown as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.storage.disable();
    return this;
  }
}

function endSpan(span: Span | undefined, error: unknown): void {
  if (span === undefined) return;
  if (error !== undefined) {
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
  }
  span.end();
}

/**
 * Subscribes to protoloop's channels and turns them into spans of `tracer`, with
 * `manager` as the active-context manager. Tasks, children and jobs get a span only
 * under an active span (a request's), so the loop's own housekeeping makes none.
 * Returns the function that unsubscribes.
 */
export function instrumentProtoloop(tracer: Tracer, manager: StoreContextManager): () => void {
  const undo: Array<() => void> = [];
  const on = (name: string, fn: (message: never) => void): void => {
    const listener = fn as (m: unknown) => void;
    diagnosticsChannel.subscribe(name, listener);
    undo.push(() => diagnosticsChannel.unsubscribe(name, listener));
  };
  const underSpan = (): Context | null => (trace.getSpan(manager.active()) === undefined ? null : manager.active());

  // Fastify requests: the span opens in `start`, becomes the handler's context, ends in `asyncEnd`.
  const requests = new WeakMap<object, Span>();
  const handler = diagnosticsChannel.tracingChannel<unknown, FastifyHandlerMessage & object>(channelNames.fastifyHandler);
  handler.start.bindStore(manager.storage, (msg) => {
    const span = tracer.startSpan(`${msg.method} ${msg.route}`, { attributes: { 'http.request.method': msg.method, 'http.route': msg.route, 'url.path': msg.url } }, manager.active());
    requests.set(msg, span);
    return trace.setSpan(manager.active(), span);
  });
  const requestEnded = (m: unknown): void => {
    const msg = m as FastifyHandlerMessage;
    endSpan(requests.get(msg), msg.error);
  };
  handler.asyncEnd.subscribe(requestEnded);
  undo.push(() => {
    handler.asyncEnd.unsubscribe(requestEnded);
    handler.start.unbindStore(manager.storage);
  });

  // Tasks.
  const tasks = new WeakMap<object, Span>();
  on(channelNames.taskCreated, (msg: TaskCreatedMessage) => {
    const parent = underSpan();
    if (parent !== null) tasks.set(msg.task as object, tracer.startSpan(`task ${msg.name}`, { attributes: { 'protoloop.task.id': msg.id } }, parent));
  });
  on(channelNames.taskDone, (msg: TaskDoneMessage) => {
    const span = tasks.get(msg.task as object);
    span?.setAttribute('protoloop.task.state', msg.state);
    endSpan(span, msg.exception);
  });

  // Children.
  const children = new WeakMap<object, Span>();
  on(channelNames.subprocessSpawn, (msg: SubprocessMessage) => {
    const parent = underSpan();
    if (parent !== null) children.set(msg.transport as object, tracer.startSpan(`subprocess ${basename(msg.file)}`, { attributes: { 'process.pid': msg.pid, 'process.executable.path': msg.file } }, parent));
  });
  on(channelNames.subprocessExit, (msg: SubprocessMessage) => {
    const span = children.get(msg.transport as object);
    span?.setAttribute('process.exit.code', msg.returncode ?? -1);
    endSpan(span, msg.returncode === 0 ? undefined : `exit code ${msg.returncode}`);
  });

  // Executor jobs.
  const jobs = new WeakMap<object, Span>();
  const job = diagnosticsChannel.tracingChannel<unknown, ExecutorJobMessage & object>(channelNames.executorJob);
  const jobStarted = (m: unknown): void => {
    const msg = m as ExecutorJobMessage;
    const parent = underSpan();
    if (parent !== null) jobs.set(msg, tracer.startSpan(`executor ${msg.export}`, { attributes: { 'protoloop.executor': msg.executor, 'code.function.name': msg.export } }, parent));
  };
  const jobEnded = (m: unknown): void => {
    const msg = m as ExecutorJobMessage;
    endSpan(jobs.get(msg), msg.error);
  };
  job.start.subscribe(jobStarted);
  job.asyncEnd.subscribe(jobEnded);
  undo.push(() => {
    job.start.unsubscribe(jobStarted);
    job.asyncEnd.unsubscribe(jobEnded);
  });

  return () => {
    for (const u of undo.splice(0)) u();
  };
}

/** The demo: one request to a route that awaits a task, runs a child and a thread job; prints the span tree. */
async function main(): Promise<void> {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const manager = new StoreContextManager();
  context.setGlobalContextManager(manager);
  const stop = instrumentProtoloop(provider.getTracer('protoloop-example'), manager);
  const hash = workerTask(fileURLToPath(import.meta.url), 'sha1');
  try {
    await run(async () => {
      const app = Fastify();
      await app.register(protoloopFastify);
      app.get('/report/:id', async (req) => {
        const loop = getRunningLoop();
        const user = await loop.createTask(async () => {
          await sleep(5);
          return { id: (req.params as { id: string }).id };
        }, { name: 'load-user' });
        const child = await createSubprocessExec(process.execPath, ['-e', '']);
        await child.wait();
        const digest = await toThread(hash, user.id);
        return { user, digest };
      });
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const res = await fetch(`${server.url}/report/7`);
      console.log(res.status, await res.json());
      await server.close();
    }, { signals: [] });
  } finally {
    stop();
    context.disable();
  }
  const spans = exporter.getFinishedSpans();
  const root = spans.find((s) => s.parentSpanContext === undefined)!;
  console.log(root.name);
  for (const s of spans.filter((x) => x.parentSpanContext?.spanId === root.spanContext().spanId)) console.log(`  ${s.name}`);
  await provider.shutdown();
}

/** The executor job of the demo (runs in a worker thread). */
export async function sha1(text: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  return createHash('sha1').update(text).digest('hex');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
