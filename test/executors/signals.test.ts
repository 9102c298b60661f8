// Signal handlers as loop callbacks, with real signals.
import { constants } from 'node:os';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, InvalidSignalError, Loop, LoopClosedError, currentTask, getRunningLoop, run } from '../../src/index.ts';
import { afterIterations, eventually } from '../helpers.ts';
import { runScript, thrown } from './helpers.ts';

describe('signals', () => {
  it('a SIGUSR2 sent to this process runs the handler as a loop callback, with its arguments', async () => {
    const calls: unknown[] = [];
    await run(async () => {
      const loop = getRunningLoop();
      loop.addSignalHandler('SIGUSR2', (a: string, b: number) => {
        calls.push({ a, b, inTask: currentTask() !== null, loop: getRunningLoop() === loop });
      }, 'x', 2);
      process.kill(process.pid, 'SIGUSR2');
      await eventually(() => calls.length > 0, 5000, 'the signal handler');
      expect(loop.removeSignalHandler('SIGUSR2')).toBe(true);
      expect(loop.removeSignalHandler('SIGUSR2')).toBe(false);
    });
    expect(calls).toEqual([{ a: 'x', b: 2, inTask: false, loop: true }]);
    expect(process.listenerCount('SIGUSR2')).toBe(0);
  });

  it('adding again replaces the handler; signal numbers work too; errors go to the exception handler', async () => {
    const seen: string[] = [];
    const errors: unknown[] = [];
    await run(async () => {
      const loop = getRunningLoop();
      loop.setExceptionHandler((_l, ctx) => errors.push(ctx.exception));
      loop.addSignalHandler('SIGUSR2', () => seen.push('first'));
      loop.addSignalHandler('SIGUSR2', () => {
        seen.push('second');
        throw new Error('handler failed');
      });
      expect(process.listenerCount('SIGUSR2')).toBe(1);
      process.kill(process.pid, 'SIGUSR2');
      await eventually(() => seen.length > 0, 5000, 'the signal handler');
      // A replaced handler would run from the same signal, as a callback queued beside it.
      let spins = 0;
      await afterIterations(() => spins++ >= 10, '10 iterations', 11);
      loop.removeSignalHandler(constants.signals.SIGUSR2);
    });
    expect(seen).toEqual(['second']);
    expect((errors[0] as Error).message).toBe('handler failed');
  });

  it('refuses invalid and uncatchable signals with InvalidSignalError', () => {
    const loop = new Loop();
    try {
      for (const sig of ['SIGFOO', 'sigusr2', 'SIGKILL', 'SIGSTOP', 'SIGSEGV', 9999, 9]) {
        const e = thrown(() => loop.addSignalHandler(sig as never, () => {}));
        expect(e).toBeInstanceOf(InvalidSignalError);
        expect(e.code).toBe('ERR_PROTOLOOP_INVALID_SIGNAL');
      }
      expect(thrown(() => loop.addSignalHandler('SIGKILL', () => {})).message).toContain('cannot be caught');
      expect(thrown(() => loop.removeSignalHandler('SIGFOO' as never))).toBeInstanceOf(InvalidSignalError);
      expect(thrown(() => loop.addSignalHandler('SIGUSR2', 'no' as never))).toBeInstanceOf(InvalidArgumentError);
    } finally {
      loop.close();
    }
    expect(thrown(() => loop.addSignalHandler('SIGUSR2', () => {}))).toBeInstanceOf(LoopClosedError);
  });

  it('loop.close() removes its handlers', () => {
    const loop = new Loop();
    const before = process.listenerCount('SIGUSR1');
    loop.addSignalHandler('SIGUSR1', () => {});
    expect(process.listenerCount('SIGUSR1')).toBe(before + 1);
    loop.close();
    expect(process.listenerCount('SIGUSR1')).toBe(before);
  });

  it("removing the last handler restores Node's default: SIGUSR2 terminates the process again", async () => {
    const r = await runScript(new URL('../fixtures/executors/signal-restore.ts', import.meta.url));
    expect(r.stdout).toContain('handled 1');
    expect(r.stdout).toContain('removed true');
    expect(r.stdout).not.toContain('still alive');
    expect(r.signal).toBe('SIGUSR2');
  });

  it('a worker thread gets MainThreadOnlyError', async () => {
    const { MessageChannel } = await import('node:worker_threads');
    const { port1, port2 } = new MessageChannel();
    const w = new Worker(new URL('../fixtures/executors/bridge-worker.ts', import.meta.url), { workerData: { bridge: port2, script: 'signal-in-worker' }, transferList: [port2] });
    const result = await new Promise<any>((resolve, reject) => {
      w.on('message', (m: { result: unknown }) => resolve(m.result));
      w.on('error', reject);
    });
    await w.terminate();
    port1.close();
    expect(result).toMatchObject({ cls: 'MainThreadOnlyError', code: 'ERR_PROTOLOOP_MAIN_THREAD_ONLY' });
    expect(result.message).toContain('thread bridge');
  });
});
