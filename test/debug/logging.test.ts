// How reports read through the default logger and through an injected pino-style
// logger; the zero-cost claim of debug mode; the main-thread guard.
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { createLogger, Loop, MainThreadOnlyError, sleep, type Logger } from '../../src/index.ts';
import { assertMainThread, stepTimingActive } from '../../src/loop/debug.ts';
import { VirtualClock } from '../../src/testing/index.ts';
import { afterIterations } from '../helpers.ts';

function block(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

function capture(): { lines: () => string; logger: Logger } {
  let text = '';
  return { lines: () => text, logger: createLogger({ stream: { write: (s: string) => (text += s) } }) };
}

describe('the default logger', () => {
  it('writes level, name, message, then indented context lines and the error without loop machinery', async () => {
    const out = capture();
    const loop = new Loop({ logger: out.logger });
    await loop.runUntilComplete(async () => {
      const failed = loop.createTask(
        async function failing() {
          throw new RangeError('out of range');
        },
        { name: 'worker' },
      );
      await afterIterations(() => failed.done(), 'the task to fail');
    });
    loop.close();
    const text = out.lines();
    expect(text).toMatch(
      /^ERROR protoloop: Task exception was never retrieved\n {2}task: <Task finished name="worker" coro=failing\(\) exception=RangeError\("out of range"\)>\n {2}hint: await the task .* \(PROTOLOOP_DEBUG=1 shows where it was created\)\n {2}RangeError: out of range\n {6}at failing \(test\/debug\/logging\.test\.ts:\d+:\d+\)\n$/,
    );
  });

  it('logs slow callbacks at warn level, and at debug level in debug mode the loop lifecycle', async () => {
    const out = capture();
    const loop = new Loop({ debug: true, logger: out.logger, slowCallbackDuration: 40 });
    await loop.runUntilComplete(async () => {
      let ran = false;
      loop.callSoon(function slowOne() {
        block(60);
        ran = true;
      });
      await afterIterations(() => ran, 'the slow callback');
    });
    loop.close();
    expect(out.lines()).toMatch(/^WARN protoloop: Executing <Handle slowOne\(\) created at .*> took 0\.\d{3} seconds\n {2}source_traceback: Object created at \(most recent call last\):\n {4}at /m);
    expect(out.lines()).toMatch(/^DEBUG protoloop: Close <Loop Loop-\d+ idle debug=true>$/m);
  });

  it('in normal mode the level is info: debug lines are not written', async () => {
    const out = capture();
    // Virtual time: the timer is work for the loop, not a wait.
    const loop = new Loop({ debug: false, logger: out.logger, clock: new VirtualClock({ autojump: 0 }) });
    await loop.runUntilComplete(() => sleep(1));
    loop.close();
    expect(out.lines()).toBe('');
  });
});

describe('an injected pino-style logger', () => {
  it('gets a child named protoloop and each report at its level, with err', async () => {
    const calls: Array<[string, unknown, string]> = [];
    const make = (level: string) => (obj: unknown, msg?: string) => calls.push([level, obj, msg ?? '']);
    const child: Logger = { level: 'info', debug: make('debug'), info: make('info'), warn: make('warn'), error: make('error') };
    const bindings: unknown[] = [];
    const parent: Logger = { ...child, child: (b) => (bindings.push(b), child) };
    const loop = new Loop({ debug: true, logger: parent, slowCallbackDuration: 40 });
    const boom = new Error('boom');
    await loop.runUntilComplete(async () => {
      let ran = false;
      loop.callSoon(() => {
        block(60);
        ran = true;
      });
      loop.createFuture('lookup').setException(boom);
      await afterIterations(() => ran, 'the slow callback');
    });
    loop.close();
    expect(bindings).toEqual([{ name: 'protoloop' }]);
    expect(child.level).toBe('debug'); // debug mode sets the level
    const warn = calls.find((c) => c[0] === 'warn' && c[2].includes('<Handle'))!;
    expect(warn[2]).toMatch(/^Executing <Handle <anonymous>\(\) created at .*> took/);
    const error = calls.find((c) => c[0] === 'error')!;
    expect(error[1]).toEqual({ err: boom });
    expect(error[2]).toMatch(/^Future exception was never retrieved\nfuture: <Future lookup finished exception=Error\("boom"\) created at /);
  });
});

describe('debug mode costs nothing when off', () => {
  it('the promise hooks that time task steps exist only while a debug loop runs', async () => {
    // Virtual time: the sleeps only make the task step through a timer.
    const plain = new Loop({ debug: false, clock: new VirtualClock({ autojump: 0 }) });
    await plain.runUntilComplete(async () => {
      expect(stepTimingActive()).toBe(false);
      await sleep(1);
    });
    plain.close();
    const debug = new Loop({ debug: true, logger: createLogger({ stream: { write() {} } }), clock: new VirtualClock({ autojump: 0 }) });
    expect(stepTimingActive()).toBe(false);
    await debug.runUntilComplete(async () => {
      expect(stepTimingActive()).toBe(true);
      debug.setDebug(false);
      expect(stepTimingActive()).toBe(false);
      debug.setDebug(true);
      expect(stepTimingActive()).toBe(true);
      await sleep(1);
    });
    expect(stepTimingActive()).toBe(false);
    debug.close();
  });
});

describe('assertMainThread()', () => {
  it('does nothing on the main thread', () => {
    expect(() => assertMainThread('anything')).not.toThrow();
  });

  it('throws MainThreadOnlyError in a worker, naming the API and the thread bridge', async () => {
    const worker = new Worker(new URL('./fixtures/main-thread-guard.ts', import.meta.url));
    const [msg] = (await once(worker, 'message')) as [{ threw: boolean; name: string; code: string; message: string }];
    await once(worker, 'exit');
    expect(msg).toMatchObject({ threw: true, name: 'MainThreadOnlyError', code: new MainThreadOnlyError('x').code });
    expect(msg.message).toMatch(/^loop\.addSignalHandler\(\) may only be used on the main thread; .*runCoroutineThreadsafe\(\)/);
  });
});
