// OpenTelemetry through the diagnostics channels, with the real @opentelemetry/api and
// @opentelemetry/sdk-trace-base (in-memory exporter, no network) and examples/otel.ts's
// instrumentation: a Fastify request span with child spans for the task it awaited, the
// child it ran and the executor job; and the active context through tasks, callSoon
// (with propagateContext) and the thread bridge.
import type { MessagePort } from 'node:worker_threads';
import { context, trace, type Span } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import Fastify from 'fastify';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError, Loop, ThreadPoolExecutor, createSubprocessExec, getRunningLoop, run, sleep, toThread, transfer, workerTask } from '../../src/index.ts';
import { protoloopFastify, serveFastify } from '../../src/fastify/index.ts';
import { StoreContextManager, instrumentProtoloop } from '../../examples/otel.ts';
import { tasks } from '../executors/helpers.ts';
import { agent } from '../fastify/helpers.ts';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer = provider.getTracer('protoloop-test');
const manager = new StoreContextManager();
let stop: () => void = () => {};

beforeAll(() => {
  context.setGlobalContextManager(manager);
  stop = instrumentProtoloop(tracer, manager);
});
afterAll(async () => {
  stop();
  context.disable();
  await provider.shutdown();
});
beforeEach(() => exporter.reset());

const opts = { signals: [] };
const spanId = (s: Span | undefined): string | undefined => s?.spanContext().spanId;

describe('OpenTelemetry over the diagnostics channels', () => {
  it('a Fastify request span with child spans for its task, its child process and its executor job', async () => {
    await run(async () => {
      const app = Fastify();
      await app.register(protoloopFastify);
      app.get('/report/:id', async (req) => {
        const loop = getRunningLoop();
        const id = (req.params as { id: string }).id;
        const user = await loop.createTask(async () => {
          await sleep(2);
          return { id };
        }, { name: 'load-user' });
        const child = await createSubprocessExec(process.execPath, ['-e', 'process.exit(0)']);
        await child.wait();
        const sum = await toThread(tasks.add, 40, 2);
        return { user, sum, traceId: trace.getActiveSpan()?.spanContext().traceId };
      });
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const dispatcher = agent();
      try {
        const r = await request(`${server.url}/report/7`, { dispatcher });
        const body = (await r.body.json()) as { user: { id: string }; sum: number; traceId: string };
        expect(body.user).toEqual({ id: '7' });
        expect(body.sum).toBe(42);
        const spans = exporter.getFinishedSpans();
        const root = spans.find((s) => s.name === 'GET /report/:id')!;
        expect(root).toBeDefined();
        expect(root.parentSpanContext).toBeUndefined();
        expect(root.attributes).toMatchObject({ 'http.request.method': 'GET', 'http.route': '/report/:id', 'url.path': '/report/7' });
        // The handler saw its request span as the active one, after every await.
        expect(body.traceId).toBe(root.spanContext().traceId);
        const children = spans.filter((s) => s.parentSpanContext?.spanId === root.spanContext().spanId).map((s) => s.name).sort();
        expect(children).toEqual(['executor add', 'subprocess node', 'task load-user']);
        const task = spans.find((s) => s.name === 'task load-user')!;
        expect(task.attributes['protoloop.task.state']).toBe('result');
        const child = spans.find((s) => s.name === 'subprocess node')!;
        expect(child.attributes['process.exit.code']).toBe(0);
        expect(child.attributes['process.pid']).toBeGreaterThan(0);
        // Nothing outside the request got a span (no active span there).
        expect(spans.every((s) => s.spanContext().traceId === root.spanContext().traceId)).toBe(true);
      } finally {
        await dispatcher.close();
        await server.close();
      }
    }, opts);
  });

  it('the active context follows tasks (across awaits and toThread), and callSoon with propagateContext', async () => {
    const seen: Record<string, string | undefined> = {};
    await run(async () => {
      const loop = getRunningLoop();
      await tracer.startActiveSpan('outer', async (span) => {
        const inner = loop.createTask(async () => {
          seen.taskStart = spanId(trace.getActiveSpan());
          await sleep(1);
          seen.taskAfterSleep = spanId(trace.getActiveSpan());
          await toThread(tasks.add, 1, 2);
          seen.taskAfterThread = spanId(trace.getActiveSpan());
        });
        await inner;
        const called = loop.createFuture<void>();
        loop.callSoon(() => {
          seen.callSoon = spanId(trace.getActiveSpan());
          called.setResult();
        });
        await called;
        const timer = loop.createFuture<void>();
        loop.callLater(1, () => {
          seen.callLater = spanId(trace.getActiveSpan());
          timer.setResult();
        });
        await timer;
        seen.outer = spanId(span);
        span.end();
      });
    }, { ...opts, propagateContext: true });
    expect(seen.outer).toMatch(/^[0-9a-f]{16}$/);
    for (const k of ['taskStart', 'taskAfterSleep', 'taskAfterThread', 'callSoon', 'callLater']) expect([k, seen[k]]).toEqual([k, seen.outer]);
  });

  it('propagateContext must be a boolean', () => {
    expect(() => new Loop({ propagateContext: 'yes' as never })).toThrow(InvalidArgumentError);
  });

  it('without propagateContext, callSoon callbacks run in the loop’s own context', async () => {
    let inCallback: string | undefined = 'not called';
    await run(async () => {
      const loop = getRunningLoop();
      await tracer.startActiveSpan('outer', async (span) => {
        const called = loop.createFuture<void>();
        loop.callSoon(() => {
          inCallback = spanId(trace.getActiveSpan());
          called.setResult();
        });
        await called;
        span.end();
      });
    }, opts);
    expect(inCallback).toBeUndefined();
  });

  it('a thread-bridge call from an executor job runs in the context where the job and its endpoint were made', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    let inHandler: string | undefined = 'not called';
    let outer: string | undefined;
    try {
      await run(async () => {
        const loop = getRunningLoop();
        loop.exposeThreadsafe('double', async (x: number) => {
          await sleep(1);
          inHandler = spanId(trace.getActiveSpan());
          return x * 2;
        });
        const askMain = workerTask<(port: MessagePort, x: number) => Promise<number>>(new URL('../fixtures/executors/bridge-task.ts', import.meta.url), 'askMain');
        await tracer.startActiveSpan('job', async (span) => {
          outer = spanId(span);
          expect(await loop.runInExecutor(pool, askMain, transfer(loop.bridgeEndpoint()), 21)).toBe(42);
          span.end();
        });
      }, opts);
    } finally {
      await pool.shutdown({ timeout: 0 });
    }
    expect(inHandler).toBe(outer);
    const names = exporter.getFinishedSpans().map((s) => s.name);
    expect(names).toContain('executor askMain');
  });
});
