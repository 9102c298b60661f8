// ThreadPoolExecutor and runInExecutor/toThread with real worker threads.
import { existsSync, rmSync } from 'node:fs';
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
import { pollUntil, rejection, runScript, startMarker, tasks, thrown } from './helpers.ts';

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
      expect(e.message).toContain('exited with code 3');
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

describe("the pool's threads", () => {
  it('reuses a free thread, starts one per job running at once up to maxWorkers, and each is gone after shutdown', async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 2 });
    expect(p.threads).toBe(0); // started on demand
    const first = await p.submit(tasks.where, []);
    const again = await p.submit(tasks.where, []);
    expect(again.threadId).toBe(first.threadId);
    expect(p.threads).toBe(1);
    const all = await Promise.all([1, 2, 3, 4].map(() => p.submit(tasks.echo, [0]).then(() => p.threads)));
    expect(Math.max(...all)).toBe(2);
    await p.shutdown();
    expect(p.threads).toBe(0);
    expect(String(p)).toContain('threads=0');
  });

  it('an idle thread exits after idleTimeout, down to minWorkers, which start with the first job', async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 3, minWorkers: 1, idleTimeout: 20 });
    try {
      expect(await p.submit(tasks.add, [1, 1])).toBe(2);
      expect(p.threads).toBe(1);
      const three = [p.submit(tasks.sleepMs, [30]), p.submit(tasks.sleepMs, [30]), p.submit(tasks.sleepMs, [30])];
      expect(p.threads).toBe(3); // started with the jobs
      await Promise.all(three);
      expect(await pollUntil(() => p.threads === 1, 10_000)).toBe(true);
      // The one kept stays past its timeout (a window, not a synchronisation: nothing should happen in it).
      expect(await pollUntil(() => p.threads === 0, 100)).toBe(false);
    } finally {
      await p.shutdown();
    }
    const q = new ThreadPoolExecutor({ maxWorkers: 2, idleTimeout: 0 });
    await q.submit(tasks.add, [1, 2]);
    expect(await pollUntil(() => q.threads === 0, 10_000)).toBe(true);
    expect(await q.submit(tasks.add, [2, 2])).toBe(4); // a new thread for the next job
    await q.shutdown();
  });

  it('a thread over its resourceLimits fails its job with WorkerCrashedError (ERR_WORKER_OUT_OF_MEMORY); the pool goes on', async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 1, resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 } });
    try {
      const e = await rejection(p.submit(tasks.exhaustHeap, []));
      expect(e).toBeInstanceOf(WorkerCrashedError);
      expect((e.cause as { code?: string }).code).toBe('ERR_WORKER_OUT_OF_MEMORY');
      expect(await p.submit(tasks.add, [20, 22])).toBe(42);
    } finally {
      await p.shutdown();
    }
  });

  it('an error thrown in a thread outside any job is a ProtoloopWarning, not a crash; the thread is replaced', async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 1 });
    const warned = new Promise<Error>((resolve) => {
      const onWarning = (w: Error): void => {
        if (w.name !== 'ProtoloopWarning' || !w.message.includes('outside a job')) return;
        process.off('warning', onWarning);
        resolve(w);
      };
      process.on('warning', onWarning);
    });
    try {
      const before = (await p.submit(tasks.where, [])).threadId;
      expect(await p.submit(tasks.throwAfterAnswer, ['late boom'])).toBe(1);
      expect((await warned).message).toContain('late boom');
      const after = (await p.submit(tasks.where, [])).threadId;
      expect(after).not.toBe(before);
    } finally {
      await p.shutdown();
    }
  });

  it("a timer a task leaves behind runs while its thread waits for jobs, and while it runs job after job", async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 1 });
    try {
      // Idle: the thread waits for the next job, and still turns its event loop.
      const idle = startMarker();
      expect(await p.submit(tasks.markLater, [idle.path, 2])).toBe(2);
      await idle.started();
      // Busy: job after job answered synchronously, back to back, until the timer has run.
      const busy = startMarker();
      await p.submit(tasks.markLater, [busy.path, 2]);
      let fired = false;
      void busy.started().then(() => (fired = true));
      const deadline = Date.now() + 10_000;
      let jobs = 0;
      while (!fired && Date.now() < deadline) await p.submit(tasks.add, [jobs++, 1]);
      expect(fired).toBe(true);
      expect(jobs).toBeGreaterThan(0);
    } finally {
      await p.shutdown();
    }
  });

  it('with every thread busy, a job is staged behind one: counted as queued, and a thread that frees up first takes it', async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 2 });
    const long = startMarker();
    const short = startMarker();
    try {
      const a = p.submit(tasks.holdMarked, [long.path, 1]);
      const b = p.submit(tasks.holdMarked, [short.path, 2]);
      const c = p.submit(tasks.where, []);
      expect(await pollUntil(() => existsSync(long.path) && existsSync(short.path), 10_000)).toBe(true);
      expect([p.running, p.queued]).toEqual([2, 1]);
      await short.started(); // lets b finish
      expect(await b).toBe(2);
      // c runs on b's thread, whichever thread it was staged behind, while a still holds its own.
      expect((await c).isMainThread).toBe(false);
      expect(existsSync(long.path)).toBe(true);
      await long.started(); // lets a finish
      expect(await a).toBe(1);
    } finally {
      rmSync(long.path, { force: true });
      rmSync(short.path, { force: true });
      await p.shutdown({ timeout: 0 });
    }
  });

  it('a staged job that is cancelled never runs, and costs no thread', async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 1 });
    try {
      const hold = startMarker();
      const a = p.submit(tasks.holdMarked, [hold.path, 1]);
      const ranMarker = startMarker();
      const ac = new AbortController();
      const b = rejection(p.submit(tasks.sleepMarked, [ranMarker.path, 0], { signal: ac.signal }));
      expect(await pollUntil(() => existsSync(hold.path), 10_000)).toBe(true);
      expect([p.running, p.queued]).toEqual([1, 1]);
      ac.abort(new Error('not needed'));
      expect((await b).message).toBe('not needed');
      expect(p.queued).toBe(0);
      await hold.started();
      expect(await a).toBe(1);
      // The thread skipped b's message: the next job runs on the same thread, and b never ran.
      expect(await p.submit(tasks.add, [1, 1])).toBe(2);
      expect(existsSync(ranMarker.path)).toBe(false);
      expect(p.threads).toBe(1);
    } finally {
      await p.shutdown({ timeout: 0 });
    }
  });

  it('a job staged behind one whose thread dies goes back to the queue and runs on a new thread', async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 1 });
    const hold = startMarker();
    try {
      const a = rejection(p.submit(tasks.holdThenExit, [hold.path, 7]));
      const b = p.submit(tasks.add, [40, 2]);
      await hold.started(); // a's thread exits
      const e = await a;
      expect(e).toBeInstanceOf(WorkerCrashedError);
      expect(e.message).toContain('exited with code 7');
      expect(await b).toBe(42);
    } finally {
      rmSync(hold.path, { force: true });
      await p.shutdown({ timeout: 0 });
    }
  });

  it('shutdown({ cancelFutures }) also drops the jobs staged behind running ones', async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 1 });
    const hold = startMarker();
    try {
      const a = p.submit(tasks.holdMarked, [hold.path, 5]);
      const b = rejection(p.submit(tasks.add, [1, 1]));
      const c = rejection(p.submit(tasks.add, [2, 2]));
      expect(await pollUntil(() => existsSync(hold.path), 10_000)).toBe(true);
      expect([p.running, p.queued]).toEqual([1, 2]);
      const closed = p.shutdown({ cancelFutures: true });
      expect(await b).toBeInstanceOf(ExecutorShutdownError);
      expect(await c).toBeInstanceOf(ExecutorShutdownError);
      await hold.started();
      expect(await a).toBe(5);
      await closed;
    } finally {
      rmSync(hold.path, { force: true });
      await p.shutdown({ timeout: 0 });
    }
  });

  it('under a mix of synchronous and asynchronous jobs with cancellations, every job gets its own answer or its cancellation', async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 2 });
    try {
      const jobs: { i: number; cancelled: boolean; outcome: Promise<unknown> }[] = [];
      const controllers: AbortController[] = [];
      for (let i = 0; i < 400; i++) {
        const ac = new AbortController();
        controllers.push(ac);
        const call = i % 3 === 0 ? p.submit(tasks.echo, [i], { signal: ac.signal }) : p.submit(tasks.add, [i, 0], { signal: ac.signal });
        jobs.push({ i, cancelled: false, outcome: call.then((v) => v, (e: unknown) => e) });
        // Cancel some at once (queued or staged) and some a little later (running or done).
        if (i % 7 === 3) {
          ac.abort(new Error(`cancel ${i}`));
          jobs[i]!.cancelled = true;
        }
        if (i % 11 === 5) void jobs[i - 2]!.outcome.then(() => controllers[i]!.abort(new Error(`late ${i}`)));
      }
      const outcomes = await Promise.all(jobs.map((j) => j.outcome));
      for (const [k, j] of jobs.entries()) {
        const got = outcomes[k];
        if (j.cancelled) expect((got as Error).message).toBe(`cancel ${j.i}`);
        else if (got instanceof Error) expect(got.message).toBe(`late ${j.i}`);
        else expect(got).toBe(j.i);
      }
      expect(p.threads).toBeLessThanOrEqual(2);
      expect([p.running, p.queued]).toEqual([0, 0]);
      expect(await p.submit(tasks.add, [1, 2])).toBe(3);
    } finally {
      await p.shutdown();
    }
  });

  it('a bad execArgv fails the job with WorkerCrashedError, not the caller', async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 1, execArgv: ['--no-such-node-flag'] });
    try {
      const e = await rejection(p.submit(tasks.add, [1, 1]));
      expect(e).toBeInstanceOf(WorkerCrashedError);
    } finally {
      await p.shutdown();
    }
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
    expect(thrown(() => new ThreadPoolExecutor({ execArgv: [1] as never }))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => new ThreadPoolExecutor({ resourceLimits: 'big' as never }))).toBeInstanceOf(InvalidArgumentError);
    expect(String(pool)).toMatch(/^<ThreadPoolExecutor-\d+ running maxWorkers=2/);
  });
});

describe('process lifetime', () => {
  it('what jobs print reaches the parent, job after job, and the process exits by itself', async () => {
    const r = await runScript(new URL('../fixtures/executors/print-exits.ts', import.meta.url));
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.filter((l) => l.endsWith('from the worker'))).toHaveLength(100);
    expect(lines.at(-1)).toBe('printed 100');
  });

  it('after run() returns, no worker keeps the process alive', async () => {
    for (const mode of ['default', 'custom']) {
      const r = await runScript(new URL('../fixtures/executors/run-exits.ts', import.meta.url), [mode]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe('42');
    }
  });
});
