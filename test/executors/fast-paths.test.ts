// The fast paths of executors and the thread bridge keep the behaviour of the slow ones:
// eager bridge tasks, answers without a loop iteration, clone checks done by the real
// clone, synchronous tasks answered without a promise, cancellation at once.
import { afterAll, describe, expect, it } from 'vitest';
import {
  CancelledError,
  NotCloneableError,
  ThreadPoolExecutor,
  connectBridge,
  currentTask,
  getRunningLoop,
  run,
  sleep,
  workerTask,
} from '../../src/index.ts';
import { rejection, tasks, thrown, pollUntil } from './helpers.ts';

const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
afterAll(() => pool.shutdown({ wait: true, timeout: 0 }));

/** A task module given inline: an async export that rejects, and one that resolves. */
const inline = `data:text/javascript,${encodeURIComponent('export async function rejectWith(m) { await null; throw new RangeError(m); }\nexport async function later(x) { await new Promise((r) => setTimeout(r, 5)); return x * 2; }')}`;

describe('executor fast paths', () => {
  it('answers synchronous and asynchronous tasks; an async rejection keeps its class, message and stack', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      expect(await loop.runInExecutor(pool, tasks.add, 40, 2)).toBe(42);
      expect(await loop.runInExecutor(pool, workerTask<(x: number) => Promise<number>>(inline, 'later'), 21)).toBe(42);
      const e = await rejection(loop.runInExecutor(pool, workerTask<(m: string) => Promise<never>>(inline, 'rejectWith'), 'out of range'));
      expect(e).toBeInstanceOf(RangeError);
      expect(e.message).toBe('out of range');
      expect(e.stack).toContain('rejectWith');
    });
  });

  it('cancelling the future stops the running job at once, before any loop iteration', async () => {
    const p = new ThreadPoolExecutor({ maxWorkers: 1 });
    try {
      await run(async () => {
        const loop = getRunningLoop();
        const fut = loop.runInExecutor(p, tasks.sleepMs, 20_000);
        expect(await pollUntil(() => p.running === 1)).toBe(true);
        expect(fut.cancel()).toBe(true);
        expect(p.running).toBe(0);
        expect(fut.cancel()).toBe(false);
        expect(await rejection(fut)).toBeInstanceOf(CancelledError);
        expect(await loop.runInExecutor(p, tasks.add, 1, 2)).toBe(3);
      });
    } finally {
      await p.shutdown({ timeout: 0 });
    }
  });

  it('checks large arguments quickly and names a deep culprit', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const big = Array.from({ length: 200_000 }, (_, i) => i);
      expect(await loop.runInExecutor(pool, tasks.echo, big)).toHaveLength(200_000);
      const e = thrown(() => loop.runInExecutor(pool, tasks.echo, [1, new Map([['k', { deep: [0, () => 1] }]])]));
      expect(e).toBeInstanceOf(NotCloneableError);
      expect(e.message).toContain('args[0][1].get(<key 0>).deep[1] is a function');
    });
  });
});

describe('thread bridge fast paths', () => {
  // The main thread connects to its own loop's endpoint: the protocol is the same as a worker's.
  it('a handler that returns at once is answered at once, and still runs as a bridge task', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const names: string[] = [];
      loop.exposeThreadsafe('double', (x: number) => {
        names.push(currentTask()?.getName() ?? 'no task');
        return x * 2;
      });
      const client = connectBridge(loop.bridgeEndpoint());
      try {
        for (let i = 0; i < 5; i++) expect(await client.runCoroutineThreadsafe('double', i)).toBe(i * 2);
        expect(names).toHaveLength(5);
        for (const n of names) expect(n).toMatch(/^bridge:double#\d+$/);
        expect(String(client)).toContain('pending=0');
      } finally {
        client.close();
      }
    });
  });

  it('calls keep their order with callSoonThreadsafe handlers sent before and after them', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const order: string[] = [];
      loop.exposeThreadsafe('rec', (what: string) => {
        order.push(what);
        return what;
      });
      const client = connectBridge(loop.bridgeEndpoint());
      try {
        client.callSoonThreadsafe('rec', 'soon 1');
        const a = client.runCoroutineThreadsafe('rec', 'call 1');
        client.callSoonThreadsafe('rec', 'soon 2');
        const b = client.runCoroutineThreadsafe('rec', 'call 2');
        expect(await Promise.all([a, b])).toEqual(['call 1', 'call 2']);
        expect(await pollUntil(() => order.length === 4)).toBe(true);
        expect(order).toEqual(['soon 1', 'call 1', 'soon 2', 'call 2']);
      } finally {
        client.close();
      }
    });
  });

  it('runs handlers in debug mode too (started in a loop iteration)', async () => {
    await run(
      async () => {
        const loop = getRunningLoop();
        loop.exposeThreadsafe('slowAdd', async (a: number, b: number) => {
          await sleep(1);
          return a + b;
        });
        loop.exposeThreadsafe('add', (a: number, b: number) => a + b);
        const client = connectBridge(loop.bridgeEndpoint());
        try {
          expect(await client.runCoroutineThreadsafe('add', 1, 2)).toBe(3);
          expect(await client.runCoroutineThreadsafe('slowAdd', 2, 3)).toBe(5);
        } finally {
          client.close();
        }
      },
      { debug: true },
    );
  });

  it('an argument the clone refuses throws NotCloneableError at the call, naming it; nothing is sent', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      let calls = 0;
      loop.exposeThreadsafe('count', () => ++calls);
      const client = connectBridge(loop.bridgeEndpoint());
      try {
        const e = thrown(() => client.runCoroutineThreadsafe('count', { ok: 1, nested: [{ onDone() {} }] }));
        expect(e).toBeInstanceOf(NotCloneableError);
        expect(e.message).toContain('args[0].nested[0].onDone is a function');
        expect(thrown(() => client.callSoonThreadsafe('count', Symbol('s')))).toBeInstanceOf(NotCloneableError);
        expect(String(client)).toContain('pending=0');
        expect(await client.runCoroutineThreadsafe('count')).toBe(1);
        expect(calls).toBe(1);
      } finally {
        client.close();
      }
    });
  });

  it('handlers are named by number after their first use; a call the clone refused does not count as a use', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const seen: string[] = [];
      loop.exposeThreadsafe('a', (x: number) => `a${x}`);
      loop.exposeThreadsafe('b', (x: number) => `b${x}`);
      loop.exposeThreadsafe('c', (x: unknown) => `c${typeof x}`);
      loop.exposeThreadsafe('note', (x: string) => void seen.push(x));
      const client = connectBridge(loop.bridgeEndpoint());
      try {
        const got: unknown[] = [];
        for (let i = 0; i < 3; i++) {
          got.push(await client.runCoroutineThreadsafe('a', i), await client.runCoroutineThreadsafe('b', i));
          client.callSoonThreadsafe('note', `n${i}`);
        }
        expect(got).toEqual(['a0', 'b0', 'a1', 'b1', 'a2', 'b2']);
        expect(thrown(() => client.runCoroutineThreadsafe('c', () => 1))).toBeInstanceOf(NotCloneableError);
        expect(await client.runCoroutineThreadsafe('c', 1)).toBe('cnumber');
        expect(await client.runCoroutineThreadsafe('a', 9)).toBe('a9');
        const e = await rejection(client.runCoroutineThreadsafe('missing'));
        expect(e.code).toBe('ERR_PROTOLOOP_BRIDGE_UNKNOWN_HANDLER');
        expect(e.message).toContain('"missing"');
        expect(await client.runCoroutineThreadsafe('b', 7)).toBe('b7');
        expect(await pollUntil(() => seen.length === 3)).toBe(true);
        expect(seen).toEqual(['n0', 'n1', 'n2']);
      } finally {
        client.close();
      }
    });
  });

  it('a result the clone refuses fails the call with NotCloneableError naming it', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      loop.exposeThreadsafe('leaky', () => ({ value: 1, callback: () => 2 }));
      loop.exposeThreadsafe('leakyLater', async () => {
        await sleep(1);
        return [new WeakMap()];
      });
      const client = connectBridge(loop.bridgeEndpoint());
      try {
        const e = await rejection(client.runCoroutineThreadsafe('leaky'));
        expect(e).toBeInstanceOf(NotCloneableError);
        expect(e.message).toContain('the result.callback is a function');
        expect(e.message).toMatch(/bridge:leaky#\d+/);
        const later = await rejection(client.runCoroutineThreadsafe('leakyLater'));
        expect(later).toBeInstanceOf(NotCloneableError);
        expect(later.message).toContain('the result[0] is a WeakMap');
      } finally {
        client.close();
      }
    });
  });
});
