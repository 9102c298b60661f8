import Fastify from 'fastify';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, InvalidStateError, Loop, NoRunningLoopError, currentTask, getRunningLoop, run, sleep, type Task } from '../../src/index.ts';
import { protoloopFastify, serveFastify } from '../../src/fastify/index.ts';
import { agent, appWithLog, captureExceptions, captureLogger, pollUntil } from './helpers.ts';

const opts = { handleSigint: false };

describe('protoloopFastify: handlers as tasks', () => {
  it('runs each handler as a task named after its route, visible as request.task and currentTask()', async () => {
    await run(async () => {
      const seen: Task<unknown>[] = [];
      const app = Fastify();
      await app.register(protoloopFastify);
      app.get('/users/:id', async (req) => {
        seen.push(req.task!);
        await sleep(1);
        return { id: (req.params as { id: string }).id, name: currentTask()?.getName(), same: req.task === currentTask() };
      });
      app.route({ method: ['PUT', 'PATCH'], url: '/items/:id', handler: async (req) => ({ name: req.task?.getName() }) });
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const dispatcher = agent();
      try {
        const r = await request(`${server.url}/users/42`, { dispatcher });
        expect(r.statusCode).toBe(200);
        expect(await r.body.json()).toEqual({ id: '42', name: 'GET /users/:id', same: true });
        expect(seen[0]!.done()).toBe(true);
        expect(seen[0]!.result()).toEqual({ id: '42', name: 'GET /users/:id', same: true });
        const head = await request(`${server.url}/users/1`, { method: 'HEAD', dispatcher });
        await head.body.dump();
        expect(head.statusCode).toBe(200);
        expect(seen[1]!.getName()).toBe('HEAD /users/:id');
        for (const method of ['PUT', 'PATCH'] as const) {
          const m = await request(`${server.url}/items/3`, { method, dispatcher });
          expect(await m.body.json()).toEqual({ name: `${method} /items/:id` });
        }
      } finally {
        await dispatcher.close();
        await server.close();
        await server.waitClosed();
      }
    }, opts);
  });

  it('keeps callback-style handlers (reply.send later, returning nothing) working', async () => {
    await run(async () => {
      const app = Fastify();
      await app.register(protoloopFastify);
      app.get('/later', (_req, reply) => {
        setTimeout(() => {
          void reply.send('sent later');
        }, 20);
      });
      app.get('/sync', () => 'sync value');
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const dispatcher = agent();
      try {
        const a = await request(`${server.url}/later`, { dispatcher });
        expect(await a.body.text()).toBe('sent later');
        const b = await request(`${server.url}/sync`, { dispatcher });
        expect(await b.body.text()).toBe('sync value');
      } finally {
        await dispatcher.close();
        await server[Symbol.asyncDispose]();
      }
    }, opts);
  });

  it('settles the task before Fastify sends the answer, also for thenables that call back at once or twice', async () => {
    await run(async () => {
      const app = Fastify();
      await app.register(protoloopFastify);
      const doneAtSend: boolean[] = [];
      app.addHook('onSend', async (req, _reply, payload) => {
        if (req.task !== null) doneAtSend.push(req.task.done());
        return payload;
      });
      app.get('/async', async () => {
        await sleep(1);
        return 'async value';
      });
      // Not promises: a thenable that calls back inside then(), one that calls back twice, one that rejects.
      app.get('/at-once', () => ({ then: (ok: (v: unknown) => void) => ok('at once') }));
      app.get('/twice', () => ({
        then: (ok: (v: unknown) => void) => {
          ok('first');
          ok('second');
        },
      }));
      app.get('/rejects', () => ({ then: (_ok: unknown, fail: (e: unknown) => void) => fail(Object.assign(new Error('thenable failed'), { statusCode: 409 })) }));
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const dispatcher = agent();
      try {
        const a = await request(`${server.url}/async`, { dispatcher });
        expect(await a.body.text()).toBe('async value');
        const b = await request(`${server.url}/at-once`, { dispatcher });
        expect(await b.body.text()).toBe('at once');
        const c = await request(`${server.url}/twice`, { dispatcher });
        expect(await c.body.text()).toBe('first');
        const d = await request(`${server.url}/rejects`, { dispatcher });
        expect(d.statusCode).toBe(409);
        expect(((await d.body.json()) as { message: string }).message).toBe('thenable failed');
        expect(doneAtSend).toEqual([true, true, true, true]);
        expect(app.protoloop.stats()).toMatchObject({ requests: 4, errors: 1, inFlight: 0 });
      } finally {
        await dispatcher.close();
        await server.close();
        await server.waitClosed();
      }
    }, opts);
  });

  it('answers handler errors as Fastify does (500, its body, its log) and never reports them as never retrieved', async () => {
    const leaked: unknown[] = [];
    await run(async () => {
      const loop = getRunningLoop();
      const seen = captureExceptions(loop);
      const { app, lines } = appWithLog();
      await app.register(protoloopFastify);
      const tasks: Task<unknown>[] = [];
      app.get('/async', async (req) => {
        tasks.push(req.task!);
        await sleep(1);
        throw new Error('async boom');
      });
      app.get('/sync', (req) => {
        tasks.push(req.task!);
        throw new Error('sync boom');
      });
      app.get('/coded', async () => {
        throw Object.assign(new Error('teapot'), { statusCode: 418 });
      });
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const dispatcher = agent();
      try {
        for (const [path, message] of [['/async', 'async boom'], ['/sync', 'sync boom']]) {
          const r = await request(`${server.url}${path}`, { dispatcher });
          expect(r.statusCode).toBe(500);
          expect(await r.body.json()).toEqual({ statusCode: 500, error: 'Internal Server Error', message });
        }
        const t = await request(`${server.url}/coded`, { dispatcher });
        expect(t.statusCode).toBe(418);
        await t.body.dump();
        // The tasks ended with the errors (read without retrieving them: the adapter must have).
        expect(tasks.map((x) => x.done() && !x.cancelled())).toEqual([true, true]);
        expect(String(tasks[0])).toContain('async boom');
        expect(String(tasks[1])).toContain('sync boom');
        expect(lines.filter((l) => l.level === 50).map((l) => l.err?.message)).toEqual(['async boom', 'sync boom']);
        expect(app.protoloop.stats()).toMatchObject({ requests: 3, errors: 3, inFlight: 0 });
      } finally {
        await dispatcher.close();
        await server.close();
        await server.waitClosed();
      }
      leaked.push(...seen);
    }, opts);
    expect(leaked).toEqual([]);
  });

  it('answers a malformed JSON body with Fastify’s 400 without running the handler', async () => {
    await run(async () => {
      const seen = captureExceptions(getRunningLoop());
      const app = Fastify();
      await app.register(protoloopFastify);
      let ran = 0;
      app.post('/echo', async (req) => {
        ran++;
        return req.body;
      });
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const dispatcher = agent();
      try {
        const bad = await request(`${server.url}/echo`, { method: 'POST', body: '{"a": 1,', headers: { 'content-type': 'application/json' }, dispatcher });
        expect(bad.statusCode).toBe(400);
        expect(await bad.body.json()).toMatchObject({ statusCode: 400, code: 'FST_ERR_CTP_INVALID_JSON_BODY', error: 'Bad Request' });
        expect(ran).toBe(0);
        const good = await request(`${server.url}/echo`, { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' }, dispatcher });
        expect(await good.body.json()).toEqual({ a: 1 });
        expect(seen).toEqual([]);
      } finally {
        await dispatcher.close();
        await server.close();
        await server.waitClosed();
      }
    }, opts);
  });

  it('does not abort request.signal when a POST body finishes reading (fastify#6725)', async () => {
    await run(async () => {
      const app = Fastify();
      await app.register(protoloopFastify);
      app.post('/work', async (req) => {
        const signal = req.signal;
        await sleep(30);
        return { aborted: signal.aborted, task: req.task?.cancelling() };
      });
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const dispatcher = agent();
      try {
        const r = await request(`${server.url}/work`, { method: 'POST', body: JSON.stringify({ x: 'y'.repeat(1000) }), headers: { 'content-type': 'application/json' }, dispatcher });
        expect(await r.body.json()).toEqual({ aborted: false, task: 0 });
      } finally {
        await dispatcher.close();
        await server.close();
        await server.waitClosed();
      }
    }, opts);
  });

  it('works with Fastify’s handlerTimeout: the timeout cancels the task, the body does not abort the signal', async () => {
    await run(async () => {
      const { app, lines } = appWithLog();
      await app.register(protoloopFastify);
      let task: Task<unknown> | null = null;
      app.get('/timeout', { handlerTimeout: 50 }, async (req) => {
        task = req.task;
        await sleep(5000);
        return 'too late';
      });
      app.post('/body', { handlerTimeout: 5000 }, async (req) => {
        const signal = req.signal;
        await sleep(30);
        return { aborted: signal.aborted };
      });
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const dispatcher = agent();
      try {
        const r = await request(`${server.url}/timeout`, { dispatcher });
        expect(r.statusCode).toBe(503);
        expect(await r.body.json()).toMatchObject({ code: 'FST_ERR_HANDLER_TIMEOUT' });
        expect(await pollUntil(() => task?.done() === true)).toBe(true);
        expect(task!.cancelled()).toBe(true);
        const b = await request(`${server.url}/body`, { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' }, dispatcher });
        expect(await b.body.json()).toEqual({ aborted: false });
        // Fastify logs its timeout; nothing else (no "reply already sent") follows.
        expect(lines.filter((l) => l.level >= 40).map((l) => l.err?.message)).toEqual(["Request timed out after 50 ms on route '/timeout'"]);
      } finally {
        await dispatcher.close();
        await server.close();
        await server.waitClosed();
      }
    }, opts);
  });

  it('leaves routes added with config.protoloop false alone', async () => {
    await run(async () => {
      const app = Fastify();
      await app.register(protoloopFastify);
      app.get('/plain', { config: { protoloop: false } }, async (req) => ({ task: req.task, current: currentTask()?.getName() ?? null }));
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const dispatcher = agent();
      try {
        const r = await request(`${server.url}/plain`, { dispatcher });
        expect(await r.body.json()).toEqual({ task: null, current: null });
      } finally {
        await dispatcher.close();
        await server.close();
        await server.waitClosed();
      }
    }, opts);
  });

  it('keeps the task context of an app listening from inside a task out of Fastify\'s callbacks, with one warning', async () => {
    const { logger, text } = captureLogger();
    await run(
      async () => {
        const app = Fastify();
        await app.register(protoloopFastify);
        const atSend: (string | null)[] = [];
        app.addHook('onSend', async (_req, _reply, payload) => {
          atSend.push(currentTask()?.getName() ?? null);
          return payload;
        });
        app.get('/ctx', async (req) => {
          await sleep(1);
          return { task: currentTask()?.getName() ?? null, same: currentTask() === req.task };
        });
        // app.listen() from the main task, not serveFastify(): requests inherit its context.
        await app.listen({ host: '127.0.0.1', port: 0 });
        const { port } = app.server.address() as { port: number };
        const dispatcher = agent();
        try {
          for (let i = 0; i < 2; i++) {
            const r = await request(`http://127.0.0.1:${port}/ctx`, { dispatcher });
            expect(await r.body.json()).toEqual({ task: 'GET /ctx', same: true });
          }
          expect(atSend).toEqual([null, null]);
        } finally {
          await dispatcher.close();
          await app.close();
        }
      },
      { ...opts, logger },
    );
    expect(text().match(/Fastify requests run inside task 'main'/g)).toHaveLength(1);
  });

  it('warns about routes declared before it loaded, which it cannot run as tasks', async () => {
    const { logger, text } = captureLogger();
    await run(
      async () => {
        const app = Fastify();
        app.get('/early', async () => ({ task: currentTask()?.getName() ?? null }));
        await app.register(protoloopFastify);
        app.get('/late', async () => ({ task: currentTask()?.getName() ?? null }));
        expect((await app.inject('/late')).json()).toEqual({ task: 'GET /late' });
        await app.close();
        // serveFastify() refuses to add the plugin behind routes' backs.
        const bare = Fastify();
        bare.get('/x', async () => 'x');
        await expect(serveFastify(bare)).rejects.toBeInstanceOf(InvalidStateError);
        await bare.close();
        // With no routes yet, it registers the plugin itself.
        const empty = Fastify();
        const server = await serveFastify(empty, { host: '127.0.0.1' });
        expect(empty.protoloop.state).toBe('open');
        await server[Symbol.asyncDispose]();
      },
      { ...opts, logger },
    );
    expect(text()).toMatch(/WARN protoloop: protoloopFastify: these routes were declared before the plugin loaded[^\n]*\n.*\/early \(GET, HEAD\)/);
    expect(text()).not.toMatch(/\/late/);
  });

  it('validates its options and refuses to load without a loop', async () => {
    const noLoop = Fastify();
    noLoop.register(protoloopFastify);
    await expect(noLoop.ready()).rejects.toBeInstanceOf(NoRunningLoopError);
    await noLoop.close();
    await run(async () => {
      for (const bad of [{ closeTimeout: -1 }, { closeTimeout: 'soon' }, { loop: {} }]) {
        const app = Fastify();
        app.register(protoloopFastify, bad as never);
        await expect(app.ready()).rejects.toBeInstanceOf(InvalidArgumentError);
        await app.close();
      }
      const closed = new Loop();
      closed.close();
      const app = Fastify();
      app.register(protoloopFastify, { loop: closed });
      await expect(app.ready()).rejects.toBeInstanceOf(InvalidArgumentError);
      await app.close();
      const twice = Fastify();
      twice.register(protoloopFastify);
      twice.register(protoloopFastify);
      await expect(twice.ready()).rejects.toThrow(/registered twice/);
      await twice.close();
      await expect(serveFastify(Fastify(), { port: 70000 })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(serveFastify({} as never)).rejects.toBeInstanceOf(InvalidArgumentError);
    }, opts);
  });
});
