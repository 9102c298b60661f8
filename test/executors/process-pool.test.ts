// ProcessPoolExecutor with real child processes.
import { afterAll, describe, expect, it } from 'vitest';
import {
  CancelledError,
  ExecutorShutdownError,
  InvalidArgumentError,
  NotCloneableError,
  ProcessPoolExecutor,
  RemoteError,
  TaskModuleError,
  WorkerCrashedError,
  getRunningLoop,
  run,
  transfer,
} from '../../src/index.ts';
import { alive, rejection, runScript, startMarker, tasks, thrown, pollUntil } from './helpers.ts';

const pool = new ProcessPoolExecutor({ maxWorkers: 2 });
afterAll(() => pool.shutdown({ wait: true, timeout: 0 }));

describe('ProcessPoolExecutor', () => {
  it('runs jobs in another process and returns structured-cloned results', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      expect(await loop.runInExecutor(pool, tasks.add, 2, 3)).toBe(5);
      const w = await loop.runInExecutor(pool, tasks.where);
      expect(w.pid).not.toBe(process.pid);
      const big = { when: new Date(0), set: new Set([1, 2]), bytes: new Uint8Array([1, 2, 3]) };
      expect(await loop.runInExecutor(pool, tasks.echo, big)).toEqual(big);
      // transfer() copies to a process: the caller keeps its buffer.
      const bytes = new Uint8Array(10);
      expect(await loop.runInExecutor(pool, tasks.byteLength, transfer(bytes))).toBe(10);
      expect(bytes.byteLength).toBe(10);
    });
  });

  it('brings errors back: built-in classes as themselves, others as RemoteError, load failures as TaskModuleError', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const t = await rejection(loop.runInExecutor(pool, tasks.throwType, 'x'));
      expect(t).toBeInstanceOf(TypeError);
      expect(t.stack).toContain('throwType');
      expect((await rejection(loop.runInExecutor(pool, tasks.throwSystem))).code).toBe('ENOENT');
      const c = await rejection(loop.runInExecutor(pool, tasks.throwCustom, 'y'));
      expect(c).toBeInstanceOf(RemoteError);
      expect(c.remoteName).toBe('ValidationError');
      expect(await rejection(loop.runInExecutor(pool, tasks.missingModule))).toBeInstanceOf(TaskModuleError);
      expect(await rejection(loop.runInExecutor(pool, tasks.missingExport))).toBeInstanceOf(TaskModuleError);
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

  it('raises NotCloneableError in the caller for functions and MessagePorts, and for results', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      expect(thrown(() => loop.runInExecutor(pool, tasks.echo, [1, () => 2]))).toBeInstanceOf(NotCloneableError);
      const { port1, port2 } = new MessageChannel();
      const e = thrown(() => loop.runInExecutor(pool, tasks.echo, transfer(port1)));
      expect(e).toBeInstanceOf(NotCloneableError);
      expect(e.message).toContain('child process cannot receive one');
      port1.close();
      port2.close();
      expect(await rejection(loop.runInExecutor(pool, tasks.returnFunction))).toBeInstanceOf(NotCloneableError);
    });
  });

  it('a child that exits or is killed fails its job with WorkerCrashedError; the next job gets a new child', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const e = await rejection(loop.runInExecutor(pool, tasks.exitNow, 7));
      expect(e).toBeInstanceOf(WorkerCrashedError);
      expect(e.message).toContain('exited with code 7');
      const k = await rejection(loop.runInExecutor(pool, tasks.killSelf));
      expect(k).toBeInstanceOf(WorkerCrashedError);
      expect(k.message).toContain('SIGKILL');
      expect(await loop.runInExecutor(pool, tasks.add, 1, 1)).toBe(2);
    });
  });

  it('cancelling the future kills the child running the job', async () => {
    const p = new ProcessPoolExecutor({ maxWorkers: 1 });
    try {
      await run(async () => {
        const loop = getRunningLoop();
        const marker = startMarker();
        const fut = loop.runInExecutor(p, tasks.spinMarked, marker.path, 20_000);
        let pid = -1;
        expect(await pollUntil(() => p.running === 1 && (pid = p.pids[0] ?? -1) > 0)).toBe(true);
        await marker.started(); // the child is running the job
        fut.cancel();
        expect(await rejection(fut)).toBeInstanceOf(CancelledError);
        expect(await pollUntil(() => !alive(pid))).toBe(true);
        expect(await loop.runInExecutor(p, tasks.add, 2, 2)).toBe(4);
      });
    } finally {
      await p.shutdown({ timeout: 0 });
    }
  });

  it('shutdown: wait lets jobs finish, cancelFutures fails queued ones, timeout stops the rest; children exit', async () => {
    const p = new ProcessPoolExecutor({ maxWorkers: 1 });
    const marker = startMarker();
    const a = p.submit(tasks.holdMarked, [marker.path, 200]);
    const b = rejection(p.submit(tasks.add, [1, 2]));
    expect(await pollUntil(() => p.pids.length === 1)).toBe(true);
    const pids = p.pids;
    await marker.started(); // a runs; b is queued
    await p.shutdown({ wait: true, cancelFutures: true });
    expect(await a).toBe(200);
    expect(await b).toBeInstanceOf(ExecutorShutdownError);
    expect(p.state).toBe('shutdown');
    expect(await pollUntil(() => pids.every((pid) => !alive(pid)))).toBe(true);
    expect(thrown(() => p.submit(tasks.add, [1, 1]))).toBeInstanceOf(ExecutorShutdownError);

    const q = new ProcessPoolExecutor({ maxWorkers: 1 });
    const spinning = rejection(q.submit(tasks.spin, [20_000]));
    expect(await pollUntil(() => q.running === 1 && q.pids.length === 1)).toBe(true);
    await q.shutdown({ wait: true, timeout: 100 });
    expect(await spinning).toBeInstanceOf(ExecutorShutdownError);
  });

  it('validates options', () => {
    expect(thrown(() => new ProcessPoolExecutor({ maxWorkers: 1.5 }))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => new ProcessPoolExecutor({ execArgv: 'x' as never }))).toBeInstanceOf(InvalidArgumentError);
  });

  it('idle children do not keep the parent alive, and exit with it', async () => {
    const r = await runScript(new URL('../fixtures/executors/idle-process-pool.ts', import.meta.url));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const childPid = Number(r.stdout.trim());
    expect(childPid).toBeGreaterThan(0);
    expect(await pollUntil(() => !alive(childPid))).toBe(true);
  });
});
