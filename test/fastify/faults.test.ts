import Fastify from 'fastify';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { CancelledError, getRunningLoop, run, sleep, type Task } from '../../src/index.ts';
import { protoloopFastify, serveFastify } from '../../src/fastify/index.ts';
import { agent, appWithLog, captureExceptions, captureLogger, startUpstream, pollUntil } from './helpers.ts';

const opts = { handleSigint: false };

describe('Fastify adapter faults', () => {
  it('client disconnects mid-handler: task cancelled, upstream request aborted, nothing answered or logged', async () => {
    const upstream = await startUpstream(-1);
    try {
      await run(async () => {
        const seen = captureExceptions(getRunningLoop());
        const { app, lines } = appWithLog();
        await app.register(protoloopFastify);
        const tasks: Task<unknown>[] = [];
        let signalReason: unknown;
        app.get('/proxy', async (req) => {
          tasks.push(req.task!);
          req.signal.addEventListener('abort', () => (signalReason = req.signal.reason));
          const res = await request(`${upstream.url}/slow`, { signal: req.signal });
          return await res.body.text();
        });
        app.get('/sleepy', async (req) => {
          tasks.push(req.task!);
          await sleep(60_000);
        });
        app.get('/stubborn', async (req) => {
          tasks.push(req.task!);
          try {
            await sleep(60_000);
          } catch {
            // swallows the cancellation and answers anyway: the adapter must not write it
          }
          return 'too late';
        });
        const server = await serveFastify(app, { host: '127.0.0.1' });
        const dispatcher = agent();
        try {
          const ac = new AbortController();
          const client = request(`${server.url}/proxy`, { signal: ac.signal, dispatcher });
          expect(await pollUntil(() => upstream.started() === 1)).toBe(true);
          ac.abort();
          await expect(client).rejects.toThrow();
          expect(await pollUntil(() => upstream.aborted() === 1)).toBe(true);
          expect(await pollUntil(() => tasks[0]!.done())).toBe(true);
          expect(tasks[0]!.cancelled()).toBe(true);
          expect(signalReason).toBeInstanceOf(CancelledError);

          for (const path of ['/sleepy', '/stubborn']) {
            const ac2 = new AbortController();
            const n = tasks.length;
            const c = request(`${server.url}${path}`, { signal: ac2.signal, dispatcher });
            expect(await pollUntil(() => tasks.length === n + 1)).toBe(true);
            ac2.abort();
            await expect(c).rejects.toThrow();
            expect(await pollUntil(() => tasks[n]!.done())).toBe(true);
          }
          expect(tasks[1]!.cancelled()).toBe(true);
          expect(tasks[2]!.result()).toBe('too late');
          expect(app.protoloop.stats()).toMatchObject({ requests: 3, disconnects: 3, errors: 0 });
          await sleep(20);
          expect(lines.filter((l) => l.level >= 40)).toEqual([]);
          expect(seen).toEqual([]);
        } finally {
          await dispatcher.close();
          await server.close();
          await server.waitClosed();
        }
      }, opts);
    } finally {
      await upstream.close();
    }
  });

  it('aborts request.signal when the client leaves while a returned stream is still being sent', async () => {
    await run(async () => {
      const app = Fastify();
      await app.register(protoloopFastify);
      let aborted = false;
      let task: Task<unknown> | null = null;
      app.get('/stream', async (req, reply) => {
        task = req.task;
        const signal = req.signal;
        signal.addEventListener('abort', () => (aborted = true));
        async function* ticks(): AsyncGenerator<string> {
          while (!signal.aborted) {
            yield 'tick\n';
            await new Promise((r) => setTimeout(r, 5));
          }
        }
        reply.type('text/plain');
        const { Readable } = await import('node:stream');
        return Readable.from(ticks());
      });
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const dispatcher = agent();
      try {
        const ac = new AbortController();
        const res = await request(`${server.url}/stream`, { signal: ac.signal, dispatcher });
        for await (const chunk of res.body) {
          expect(String(chunk)).toContain('tick');
          break;
        }
        expect(task!.done()).toBe(true);
        expect(aborted).toBe(false);
        ac.abort();
        expect(await pollUntil(() => aborted)).toBe(true);
      } finally {
        await dispatcher.close();
        await server.close();
        await server.waitClosed();
      }
    }, opts);
  });

  it('cancels handlers still running when the app closes, after the deadline, and answers them 503', async () => {
    await run(async () => {
      const seen = captureExceptions(getRunningLoop());
      const app = Fastify();
      await app.register(protoloopFastify, { closeTimeout: 150 });
      const tasks: Task<unknown>[] = [];
      let quickDone = false;
      app.get('/forever', async (req) => {
        tasks.push(req.task!);
        await sleep(60_000);
      });
      app.get('/foreign', async (req) => {
        tasks.push(req.task!);
        // A promise of someone else's that only request.signal can stop.
        await new Promise((_resolve, reject) => req.signal.addEventListener('abort', () => reject(req.signal.reason as Error)));
      });
      app.get('/quick', async (req) => {
        tasks.push(req.task!);
        await sleep(50);
        quickDone = true;
        return 'finished in time';
      });
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const dispatcher = agent();
      try {
        const answers = ['/forever', '/foreign', '/quick'].map((p) =>
          request(`${server.url}${p}`, { dispatcher }).then(async (r) => ({ status: r.statusCode, body: await r.body.text() })),
        );
        expect(await pollUntil(() => tasks.length === 3)).toBe(true);
        const t0 = Date.now();
        await server.close();
        await server.waitClosed();
        const elapsed = Date.now() - t0;
        expect(elapsed).toBeGreaterThanOrEqual(140);
        expect(elapsed).toBeLessThan(5000);
        const [forever, foreign, quick] = await Promise.all(answers);
        expect(quick).toEqual({ status: 200, body: 'finished in time' });
        expect(quickDone).toBe(true);
        for (const a of [forever!, foreign!]) {
          expect(a.status).toBe(503);
          expect(JSON.parse(a.body)).toMatchObject({ statusCode: 503, code: 'ERR_PROTOLOOP_CANCELLED', error: 'Service Unavailable' });
        }
        expect(tasks.map((t) => t.cancelled())).toEqual([true, true, false]);
        expect(app.protoloop.state).toBe('closed');
        expect(app.protoloop.stats()).toMatchObject({ cancelledAtClose: 2, inFlight: 0 });
        expect(seen).toEqual([]);
      } finally {
        await dispatcher.close();
      }
    }, opts);
  });

  it('drops the connection of a handler that ignores cancellation, so close() never hangs', async () => {
    await run(async () => {
      const app = Fastify();
      await app.register(protoloopFastify, { closeTimeout: 50 });
      let started = false;
      let release!: () => void;
      const stuck = new Promise<void>((r) => (release = r));
      app.get('/stuck', async () => {
        started = true;
        await stuck; // ignores request.signal and the task's cancellation
        return 'never sent';
      });
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const dispatcher = agent();
      try {
        const answer = request(`${server.url}/stuck`, { dispatcher }).then(
          (r) => r.statusCode,
          (e: Error) => e,
        );
        expect(await pollUntil(() => started)).toBe(true);
        const t0 = Date.now();
        await server.close();
        await server.waitClosed();
        expect(Date.now() - t0).toBeLessThan(5000);
        expect(await answer).toBeInstanceOf(Error);
      } finally {
        release();
        await dispatcher.close();
      }
    }, opts);
  });

  it('reports a handler blocking the loop in debug mode as a slow callback, with the route', async () => {
    const { logger, text } = captureLogger();
    await run(
      async () => {
        const loop = getRunningLoop();
        loop.slowCallbackDuration = 40;
        const app = Fastify();
        await app.register(protoloopFastify);
        const busy = (ms: number): void => {
          const end = performance.now() + ms;
          while (performance.now() < end) {
            // blocks the loop
          }
        };
        app.get('/reports/:id', () => {
          busy(60);
          return 'done';
        });
        app.get('/after-await', async () => {
          await sleep(1);
          busy(60);
          return 'done too';
        });
        app.get('/fine', async () => 'fine');
        const server = await serveFastify(app, { host: '127.0.0.1' });
        const dispatcher = agent();
        try {
          const before = loop.stats().slowCallbacks;
          for (const [path, body] of [['/reports/7', 'done'], ['/after-await', 'done too'], ['/fine', 'fine']]) {
            const r = await request(`${server.url}${path}`, { dispatcher });
            expect(await r.body.text()).toBe(body);
          }
          expect(loop.stats().slowCallbacks).toBeGreaterThanOrEqual(before + 2);
        } finally {
          await dispatcher.close();
          await server.close();
          await server.waitClosed();
        }
      },
      { ...opts, debug: true, logger },
    );
    const slow = text()
      .split('\n')
      .filter((l) => / took \d+\.\d+ seconds/.test(l));
    // The synchronous handler (timed by the adapter) and the step after an await (timed by the loop's task-step timing).
    // At least once: on a loaded machine another step of the same task can be slow too.
    expect(slow.filter((l) => l.includes("route handler 'GET /reports/:id'")).length).toBeGreaterThanOrEqual(1);
    expect(slow.filter((l) => l.includes('name="GET /after-await"')).length).toBeGreaterThanOrEqual(1);
    expect(slow.filter((l) => l.includes('/fine'))).toEqual([]);
  });

  it('answers or refuses cleanly each of 500 concurrent requests while the app closes', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const seen = captureExceptions(loop);
      const { app, lines } = appWithLog();
      await app.register(protoloopFastify, { closeTimeout: 2000 });
      const startedSet = new Set<number>();
      app.get('/work/:n', async (req) => {
        startedSet.add(Number((req.params as { n: string }).n));
        await sleep(Number((req.params as { n: string }).n) % 40);
        return { n: Number((req.params as { n: string }).n) };
      });
      const server = await serveFastify(app, { host: '127.0.0.1', backlog: 1024 });
      const dispatcher = agent();
      try {
        const outcomes = Array.from({ length: 500 }, (_, n) =>
          request(`${server.url}/work/${n}`, { dispatcher, headersTimeout: 10_000, bodyTimeout: 10_000 }).then(
            async (r) => ({ n, status: r.statusCode, body: await r.body.text() }),
            (e: Error & { code?: string }) => ({ n, error: e.code ?? e.name }),
          ),
        );
        expect(await pollUntil(() => startedSet.size >= 100)).toBe(true);
        const closing = server.shutdown({ timeout: 5000 });
        const results = await Promise.race([Promise.all(outcomes), sleep(15_000, null)]);
        expect(results).not.toBeNull();
        await closing;
        let answered = 0;
        let refused = 0;
        for (const r of results!) {
          if ('status' in r && r.status === 200) {
            expect(JSON.parse(r.body)).toEqual({ n: r.n });
            answered++;
          } else {
            // Refused: Fastify's 503 while closing, or the connection was never served
            // (reset in the listen backlog, or closed idle): either way the handler
            // never ran, so the client may retry safely.
            if ('status' in r) expect(r.status).toBe(503);
            else expect(['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']).toContain(r.error);
            expect(startedSet.has(r.n)).toBe(false);
            refused++;
          }
        }
        expect(answered).toBeGreaterThanOrEqual(100);
        expect(answered + refused).toBe(500);
        expect(app.protoloop.stats()).toMatchObject({ inFlight: 0, errors: 0, cancelledAtClose: 0 });
        expect([...loop.pendingTasks()].map((t) => t.getName())).toEqual(['main']);
        expect(lines.filter((l) => l.level >= 50)).toEqual([]);
        expect(seen).toEqual([]);
      } finally {
        await dispatcher.close();
      }
    }, opts);
  });
});
