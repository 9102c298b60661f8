import { describe, expect, it } from 'vitest';
import {
  CancelledError,
  createSubprocessExec,
  currentTask,
  getRunningLoop,
  Loop,
  PIPE,
  run,
  sleep,
  SubprocessProtocol,
  type ExceptionContext,
  type Logger,
} from '../../src/index.ts';
import { pollUntil, isDead, procState } from './helpers.ts';
import { MAX_BURST_MS } from '../../src/loop/loop.ts';

function captureLogger(lines: string[]): Logger {
  const log =
    (level: string) =>
    (...args: unknown[]): void => {
      lines.push(`${level} ${args.map((a) => (typeof a === 'string' ? a : '')).join(' ')}`);
    };
  const logger: Logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), trace: log('trace'), level: 'debug', child: () => logger };
  return logger;
}

describe('child supervision', () => {
  it('run() ending stops survivors and reaps them: no zombies, no orphans in /proc', async () => {
    const pids: number[] = [];
    await run(async () => {
      for (let i = 0; i < 3; i++) pids.push((await createSubprocessExec('sleep', ['30'])).pid);
      // A child that ignores SIGTERM is killed after its grace period.
      const stubborn = await createSubprocessExec('sh', ['-c', 'trap "" TERM; echo ready; while :; do sleep 0.05; done'], { stdout: PIPE, forceKillAfterDelay: 150 });
      await stubborn.stdout!.readLine();
      pids.push(stubborn.pid);
      for (const pid of pids) expect(procState(pid)).not.toBeNull();
    });
    // run() has returned: every child is gone from /proc (reaped, not a zombie).
    for (const pid of pids) expect(procState(pid)).toBeNull();
  });

  it('processGroup: grandchildren are stopped with the child', async () => {
    const grandchildren: number[] = [];
    let pid = 0;
    await run(async () => {
      const proc = await createSubprocessExec('sh', ['-c', 'sleep 30 & echo $!; sleep 30 & echo $!; wait'], { stdout: PIPE, processGroup: true });
      pid = proc.pid;
      for (let i = 0; i < 2; i++) grandchildren.push(Number((await proc.stdout!.readLine()).toString()));
      for (const g of grandchildren) expect(isDead(g)).toBe(false);
    });
    expect(procState(pid)).toBeNull();
    // The grandchildren are not our children (init reaps them): they must at least be dead.
    expect(await pollUntil(() => grandchildren.every(isDead))).toBe(true);
  });

  it('processGroup: kill() and the timeout reach the whole group', async () => {
    const grandchildren: number[] = [];
    await run(async () => {
      const proc = await createSubprocessExec('sh', ['-c', 'sleep 30 & echo $!; wait'], { stdout: PIPE, processGroup: true, timeout: 200 });
      grandchildren.push(Number((await proc.stdout!.readLine()).toString()));
      // wait() also waits for the pipes: the grandchild holds stdout open until the group dies.
      expect(await proc.wait()).toBe(-15);
      expect(proc.timedOut).toBe(true);
    });
    expect(await pollUntil(() => grandchildren.every(isDead))).toBe(true);
  });

  it('cancelling a task that awaits wait() leaves the child running; a later wait() works', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const proc = await createSubprocessExec('sleep', ['30']);
      const waiter = loop.createTask(() => proc.wait(), { name: 'waiter' });
      await sleep(20);
      waiter.cancel();
      await expect(waiter).rejects.toBeInstanceOf(CancelledError);
      expect(proc.returncode).toBeNull();
      expect(procState(proc.pid)).not.toBeNull();
      proc.terminate();
      expect(await proc.wait()).toBe(-15);
    });
  });

  it('cancelling a task that awaits communicate() leaves the child running', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const proc = await createSubprocessExec('sh', ['-c', 'echo partial; exec sleep 30'], { stdin: PIPE, stdout: PIPE });
      const task = loop.createTask(() => proc.communicate('input'), { name: 'communicate' });
      await sleep(50);
      task.cancel();
      await expect(task).rejects.toBeInstanceOf(CancelledError);
      expect(proc.returncode).toBeNull();
      proc.kill();
      expect(await proc.wait()).toBe(-9);
    });
  });

  it('cancelling the create call while the child starts kills it at once', async () => {
    const wraps = (): number => process.getActiveResourcesInfo().filter((r) => r === 'ProcessWrap').length;
    const before = wraps();
    let made = false;
    await run(async () => {
      const loop = getRunningLoop();
      class Watch extends SubprocessProtocol {
        override connectionMade(): void {
          made = true;
        }
      }
      const task = loop.createTask(
        async () => {
          const starting = loop.subprocessExec(() => new Watch(), 'sleep', ['30']);
          // The child is forked but Node has not reported the spawn yet.
          currentTask()!.cancel();
          return await starting;
        },
        { name: 'starter' },
      );
      await expect(task).rejects.toBeInstanceOf(CancelledError);
      // Killed and reaped while the loop still runs, not at its end.
      expect(await pollUntil(() => wraps() === before)).toBe(true);
    });
    expect(made).toBe(false);
  });

  it('the same when the create call runs in an iteration started by setImmediate (Node reports the spawn before that macrotask\'s microtasks)', async () => {
    const wraps = (): number => process.getActiveResourcesInfo().filter((r) => r === 'ProcessWrap').length;
    const before = wraps();
    let made = 0;
    await run(async () => {
      const loop = getRunningLoop();
      class Watch extends SubprocessProtocol {
        override connectionMade(): void {
          made++;
        }
      }
      for (let i = 0; i < 3; i++) {
        // A step longer than a burst may last: the next iteration (the task's first step) starts from setImmediate.
        const end = performance.now() + MAX_BURST_MS * 5;
        while (performance.now() < end);
        const task = loop.createTask(async () => {
          const starting = loop.subprocessExec(() => new Watch(), 'sleep', ['30']);
          currentTask()!.cancel();
          return await starting;
        });
        await expect(task).rejects.toBeInstanceOf(CancelledError);
      }
      expect(await pollUntil(() => wraps() === before)).toBe(true);
    });
    expect(made).toBe(0);
  });

  it('debug mode logs the children run() had to stop as unclosed', async () => {
    const lines: string[] = [];
    await run(
      async () => {
        await createSubprocessExec('sleep', ['30']);
      },
      { debug: true, logger: captureLogger(lines) },
    );
    expect(lines.some((l) => l.startsWith('warn unclosed subprocess transport') && l.includes("'sleep'"))).toBe(true);
  });

  it('loop.close() without run() reports an open child as unclosed and kills it', async () => {
    const loop = new Loop();
    const seen: ExceptionContext[] = [];
    loop.setExceptionHandler((_l, ctx) => seen.push(ctx));
    const [transport] = await loop.runUntilComplete(() => loop.subprocessExec(() => new SubprocessProtocol(), 'sleep', ['30']));
    const pid = transport.getPid();
    loop.close();
    expect(seen.map((c) => c.message)).toEqual([expect.stringMatching(/^unclosed subprocess transport <SubprocessTransport pid=\d+ running 'sleep'>/)]);
    // Node reaps it as soon as this process's event loop turns.
    expect(await pollUntil(() => procState(pid) === null)).toBe(true);
  });
});
