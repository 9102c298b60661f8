import Fastify from 'fastify';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { currentTask, getRunningLoop, run, sleep, type Task } from '../../src/index.ts';
import { Task as TaskClass, type TaskOptions, type TaskTarget } from '../../src/loop/task.ts';
import type { Loop } from '../../src/loop/loop.ts';
import { protoloopFastify, serveFastify } from '../../src/fastify/index.ts';
import { agent } from './helpers.ts';

const opts = { handleSigint: false };

// The adapter starts most handler tasks through one shared target (the eager first step
// runs inside createTask()); these cover the other ways in.
describe('protoloopFastify: how a handler task starts', () => {
  it('runs handlers as tasks made by the loop\'s task factory', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const made: string[] = [];
      loop.setTaskFactory(<T>(l: Loop, target: TaskTarget<T>, options?: TaskOptions): Task<T> => {
        made.push(options?.name ?? '?');
        return new TaskClass<T>(l, target, options);
      });
      try {
        const app = Fastify();
        await app.register(protoloopFastify);
        app.get('/f/:id', async (req) => {
          const own = req.task === currentTask();
          await sleep(1);
          return { id: (req.params as { id: string }).id, own, name: currentTask()?.getName() };
        });
        app.get('/sync', (req) => ({ own: req.task === currentTask() }));
        const server = await serveFastify(app, { host: '127.0.0.1' });
        const dispatcher = agent();
        try {
          const a = await request(`${server.url}/f/7`, { dispatcher });
          expect(await a.body.json()).toEqual({ id: '7', own: true, name: 'GET /f/:id' });
          const b = await request(`${server.url}/sync`, { dispatcher });
          expect(await b.body.json()).toEqual({ own: true });
          expect(made.filter((n) => n !== 'Fastify app close')).toEqual(['GET /f/:id', 'GET /sync']);
        } finally {
          await dispatcher.close();
          await server.close();
        }
      } finally {
        loop.setTaskFactory(null);
      }
    }, opts);
  });

  it('gives a request served from inside another handler\'s first step a task of its own', async () => {
    await run(async () => {
      const app = Fastify();
      await app.register(protoloopFastify);
      const tasks: Task<unknown>[] = [];
      app.get('/inner', async (req) => {
        tasks.push(req.task!);
        return { inner: currentTask()?.getName() };
      });
      app.get('/outer', async (req) => {
        tasks.push(req.task!);
        const inner = app.inject({ method: 'GET', url: '/inner' });
        const own = req.task === currentTask();
        const r = await inner;
        return { outer: currentTask()?.getName(), own, inner: r.json() as unknown };
      });
      const server = await serveFastify(app, { host: '127.0.0.1' });
      const dispatcher = agent();
      try {
        const r = await request(`${server.url}/outer`, { dispatcher });
        expect(await r.body.json()).toEqual({ outer: 'GET /outer', own: true, inner: { inner: 'GET /inner' } });
        expect(tasks.map((t) => t.getName())).toEqual(['GET /outer', 'GET /inner']);
        expect(tasks[0]).not.toBe(tasks[1]);
        expect(tasks.every((t) => t.done())).toBe(true);
      } finally {
        await dispatcher.close();
        await server.close();
      }
    }, opts);
  });
});
