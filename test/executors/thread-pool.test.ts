// ThreadPoolExecutor and runInExecutor/toThread with real worker threads.
import { afterAll, describe, expect, it } from 'vitest';
import {
  CancelledError,
  ExecutorShutdownError,
  InvalidArgumentError,
  NotCloneableError,
  RemoteError,
  TaskModuleError,
  ThreadPoolExecutor,
  WorkerCrashedError,
  getRunningLoop,
  run,
  sleep,
  toThread,
  transfer,
  workerTask,
} from '../../src/index.ts';
import { rejection, runScript, startMarker, tasks, thrown } from './helpers.ts';

const pool = new ThreadPoolExecutor({ maxWorkers: 2 });
afterAll(() => pool.shutdown({ wait: true, timeout: 0 }));

describe('results and errors', () => {
  it('runs a task module export off the main thread and returns its result', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      expect(await loop.runInExecutor(pool, tasks.add, 2, 3)).toBe(5);
      const w = await loop.runInExecutor(pool, tasks.where);
      expect(w.isMainThread).toBe(false);
      expect(w.pid).toBe(process.pid);
      expect(await loop.runInExecutor(pool, tasks.echo, { a: [1, 2], m: new Map([[1, 'x']]) })).toEqual({ a: [1, 2], m: new Map([[1, 'x']]) });
    });
  });

  it('toThread uses the default executor, and run() shuts it down', async () => {
    let loopRef: ReturnType<typeof getRunningLoop> | null = null;
    const digest = await run(async () => {
      loopRef = getRunningLoop();
      return await toThread(tasks.sha256, 'abc');
    });
    expect(digest).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    // After run() the default executor is shut down and the loop is closed.
    expect(() => loopRef!.runInExecutor(null, tasks.add, 1, 2)).toThrow();
  });

  it('rebuilds built-in error classes with the worker stack and their data properties', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const e = await rejection(loop.runInExecutor(pool, tasks.throwType, 'bad input'));
      expect(e).toBeInstanceOf(TypeError);
      expect(e.message).toBe('bad input');
      expect(e.stack).toContain('throwType');
      expect(e.stack).toContain('tasks.ts');
      const sys = await rejection(loop.runInExecutor(pool, tasks.throwSystem));
      expect(sys).toBeInstanceOf(Error);
      expect(sys.code).toBe('ENOENT');
      expect(sys.errno).toBe(-2);
    });
  });

  it('returns other error classes as RemoteError with remoteName, remoteStack and the cause', async () => {
    await run(async () => {
      const e = await rejection(getRunningLoop().runInExecutor(pool, tasks.throwCustom, 'nope'));
      expect(e).toBeInstanceOf(RemoteError);
      expect(e.code).toBe('ERR_PROTOLOOP_REMOTE');
      expect(e.remoteName).toBe('ValidationError');
      expect(e.message).toBe('nope');
      expect(e.remoteStack).toContain('throwCustom');
      expect(e.cause).toBeInstanceOf(RangeError);
    });
  });

  it('names an error class that sets no name after its constructor, with its own cloneable fields', async () => {
    await run(async () => {
      const e = await rejection(getRunningLoop().runInExecutor(pool, tasks.throwUnnamed, 3));
      expect(e).toBeInstanceOf(RemoteError);
      expect(e.remoteName).toBe('QuotaExceeded');
      expect(e.message).toBe('quota of 3 exceeded');
      expect(e.limit).toBe(3);
      expect(e.details).toEqual({ user: 'ada', tags: ['a', 'b'], since: new Date(0) });
      // A function cannot cross: left out, the rest of the error still arrives.
      expect('retry' in e).toBe(false);
    });
  });

  it('fails with TaskModuleError for a missing module, a module that throws, a missing export, a non-function export', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      for (const t of [tasks.missingModule, tasks.brokenModule, tasks.missingExport, tasks.notAFunction]) {
        const e = await rejection(loop.runInExecutor(pool, t));
        expect(e).toBeInstanceOf(TaskModuleError);
        expect(e.code).toBe('ERR_PROTOLOOP_TASK_MODULE');
      }
      const e = await rejection(loop.runInExecutor(pool, tasks.missingExport));
      expect(e.message).toContain("no export named 'noSuchExport'");
      expect((await rejection(loop.runInExecutor(pool, tasks.brokenModule))).message).toContain('broken on purpose');
      // The pool still works.
      expect(await loop.runInExecutor(pool, tasks.add, 1, 1)).toBe(2);
    });
  });

  it('refuses bad task references at once', () => {
    expect(thrown(() => workerTask('relative/path.ts', 'f'))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => workerTask(tasks.add.module, ''))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => pool.submit((() => 1) as never, []))).toBeInstanceOf(InvalidArgumentError);
  });
});

describe('crossing the thread boundary', () => {
  it('raises NotCloneableError in the caller, synchronously, for an argument that cannot be cloned', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const e = thrown(() => loop.runInExecutor(pool, tasks.echo, { onDone: () => {} }));
      expect(e).toBeInstanceOf(NotCloneableError);
      expect(e.message).toContain('args[0].onDone is a function');
      expect(thrown(() => loop.runInExecutor(pool, tasks.echo, Promise.resolve(1)))).toBeInstanceOf(NotCloneableError);
      expect(thrown(() => loop.runInExecutor(pool, tasks.echo, Symbol('x')))).toBeInstanceOf(NotCloneableError);
    });
  });

  it('fails with NotCloneableError when the result cannot be sent back', async () => {
    await run(async () => {
      const e = await rejection(getRunningLoop().runInExecutor(pool, tasks.returnFunction));
      expect(e).toBeInstanceOf(NotCloneableError);
      expect(e.message).toContain('the result is a function');
    });
  });

  it('moves buffers wrapped in transfer() both ways', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const bytes = new Uint8Array(1 << 16).fill(7);
      expect(await loop.runInExecutor(pool, tasks.byteLength, transfer(bytes))).toBe(1 << 16);
      expect(bytes.byteLength).toBe(0); // detached: it was moved, not copied
      const back = await loop.runInExecutor(pool, tasks.fillAndReturn, 1000, 9);
      expect(back).toBeInstanceOf(Uint8Array);
      expect(back.length).toBe(1000);
      expect(back[999]).toBe(9);
    });
  });
});

describe('crashes and cancellation', () => {
  it('fails the job with WorkerCrashedError when the worker exits, and the pool goes on', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const e = await rejection(loop.runInExecutor(pool, tasks.exitNow, 3));
      expect(e).toBeInstanceOf(WorkerCrashedError);
      expect(e.message).toContain('exited with code: 3');
      const e2 = await rejection(loop.runInExecutor(pool, tasks.crashLater));
      expect(e2).toBeInstanceOf(WorkerCrashedError);
      expect(e2.message).toContain('uncaught in the worker');
      expect(await loop.runInExecutor(pool, tasks.add, 40, 2)).toBe(42);
    });
  });

  it('cancelling the future stops the running job (its worker is replaced)', async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 1 });
    try {
      await run(async () => {
        const loop = getRunningLoop();
        const marker = startMarker();
        const fut = loop.runInExecutor(p, tasks.spinMarked, marker.path, 20_000);
        await marker.started();
        expect(p.running).toBe(1);
        fut.cancel();
        expect(await rejection(fut)).toBeInstanceOf(CancelledError);
        // With one worker, this only completes quickly if the spinning thread was stopped.
        const t0 = Date.now();
        expect(await loop.runInExecutor(p, tasks.add, 1, 2)).toBe(3);
        expect(Date.now() - t0).toBeLessThan(10_000);
      });
    } finally {
      await p.shutdown({ timeout: 0 });
    }
  });

  it('cancelling the task that awaits the job aborts the job; a queued job just leaves the queue', async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 1 });
    try {
      await run(async () => {
        const loop = getRunningLoop();
        const marker = startMarker();
        const running = loop.createTask(async () => await loop.runInExecutor(p, tasks.spinMarked, marker.path, 20_000));
        const queued = loop.createTask(async () => await loop.runInExecutor(p, tasks.add, 1, 1));
        await marker.started();
        expect(p.running).toBe(1);
        expect(p.queued).toBe(1);
        queued.cancel();
        await sleep(0);
        expect(p.queued).toBe(0);
        running.cancel();
        expect(await rejection(running)).toBeInstanceOf(CancelledError);
        expect(await rejection(queued)).toBeInstanceOf(CancelledError);
        expect(await loop.runInExecutor(p, tasks.add, 2, 2)).toBe(4);
      });
    } finally {
      await p.shutdown({ timeout: 0 });
    }
  });

  it('an AbortSignal given to submit() cancels the job', async () => {
    const ac = new AbortController();
    const marker = startMarker();
    const job = pool.submit(tasks.sleepMarked, [marker.path, 20_000], { signal: ac.signal });
    // Abort the running job (not a queued one): once it has started.
    await marker.started();
    ac.abort(new Error('enough'));
    expect((await rejection(job)).message).toBe('enough');
  });
});

describe('shutdown', () => {
  it('shutdown({ wait }) lets running and queued jobs finish, then refuses new ones', async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 1 });
    const a = p.submit(tasks.sleepMs, [100]);
    const b = p.submit(tasks.add, [1, 2]);
    await p.shutdown({ wait: true });
    expect(p.state).toBe('shutdown');
    expect(await a).toBe(100);
    expect(await b).toBe(3);
    expect(thrown(() => p.submit(tasks.add, [1, 1]))).toBeInstanceOf(ExecutorShutdownError);
    await p.shutdown(); // idempotent
  });

  it('shutdown({ cancelFutures }) fails the queued jobs with ExecutorShutdownError; the running one completes', async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 1 });
    const marker = startMarker();
    const a = p.submit(tasks.holdMarked, [marker.path, 150]);
    const b = rejection(p.submit(tasks.add, [1, 2]));
    const c = rejection(p.submit(tasks.add, [3, 4]));
    await marker.started(); // a runs; b and c are queued
    await p.shutdown({ wait: true, cancelFutures: true });
    expect(await a).toBe(150);
    expect(await b).toBeInstanceOf(ExecutorShutdownError);
    expect(await c).toBeInstanceOf(ExecutorShutdownError);
  });

  it('shutdown({ timeout }) stops jobs that outlive it; wait: false returns at once', async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 1 });
    const marker = startMarker();
    const a = rejection(p.submit(tasks.spinMarked, [marker.path, 20_000]));
    await marker.started();
    const t0 = Date.now();
    await p.shutdown({ wait: false, timeout: 100 });
    expect(p.state).toBe('shuttingDown');
    const e = await a;
    expect(e).toBeInstanceOf(ExecutorShutdownError);
    expect(Date.now() - t0).toBeLessThan(10_000);
    await p.shutdown({ wait: true });
    expect(p.state).toBe('shutdown');
  });

  it('await using shuts the pool down', async () => {
    let seen: ThreadPoolExecutor;
    {
      await using p = new ThreadPoolExecutor({ maxWorkers: 1 });
      seen = p;
      expect(await p.submit(tasks.add, [2, 2])).toBe(4);
    }
    expect(seen.state).toBe('shutdown');
  });

  it('setDefaultExecutor / shutdownDefaultExecutor', async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 1 });
    await run(async () => {
      const loop = getRunningLoop();
      loop.setDefaultExecutor(p);
      expect(await toThread(tasks.add, 5, 5)).toBe(10);
      await loop.shutdownDefaultExecutor();
      expect(p.state).toBe('shutdown');
      expect(thrown(() => loop.runInExecutor(null, tasks.add, 1, 1))).toBeInstanceOf(ExecutorShutdownError);
      expect(thrown(() => loop.setDefaultExecutor({} as never))).toBeInstanceOf(InvalidArgumentError);
    });
  });

  it('validates options eagerly', () => {
    expect(thrown(() => new ThreadPoolExecutor({ maxWorkers: 0 }))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => new ThreadPoolExecutor({ maxWorkers: 1, minWorkers: 2 }))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => new ThreadPoolExecutor({ idleTimeout: -1 }))).toBeInstanceOf(InvalidArgumentError);
    expect(String(pool)).toMatch(/^<ThreadPoolExecutor-\d+ running maxWorkers=2/);
  });
});

describe('process lifetime', () => {
  it('after run() returns, no worker keeps the process alive', async () => {
    for (const mode of ['default', 'custom']) {
      const r = await runScript(new URL('../fixtures/executors/run-exits.ts', import.meta.url), [mode]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe('42');
    }
  });
});
