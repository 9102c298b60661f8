// Queue, LifoQueue, PriorityQueue. Ported from CPython's test_queues.py (behaviours, not code).
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runVirtual } from '../helpers.ts';
import {
  CancelledError,
  caught,
  gather,
  getRunningLoop,
  InvalidArgumentError,
  InvalidStateError,
  LifoQueue,
  PriorityQueue,
  Queue,
  QueueEmpty,
  QueueFull,
  QueueShutDown,
  sleep,
  taskGroup,
  TimeoutError,
  waitFor,
  type Task,
} from './helpers.ts';

async function tick(n = 1): Promise<void> {
  for (let i = 0; i < n; i++) await sleep(0);
}

const kinds = [
  ['Queue', Queue],
  ['LifoQueue', LifoQueue],
  ['PriorityQueue', PriorityQueue],
] as const;

describe('Queue basics', () => {
  it('prints its state (repr, format)', async () => {
    await runVirtual(async () => {
      const q = new Queue<number>();
      expect(String(q)).toBe('<Queue maxsize=0>');
      q.putNowait(1);
      q.putNowait(2);
      expect(inspect(q)).toBe('<Queue maxsize=0 items=[ 1, 2 ] tasks=2>');
      const q2 = new Queue<number>({ maxsize: 3 });
      const t = getRunningLoop().createTask(() => q2.get());
      await tick();
      expect(String(q2)).toBe('<Queue maxsize=3 getters[1]>');
      q2.shutdown();
      await caught(t);
      expect(String(q2)).toBe('<Queue maxsize=3 shutdown>');
      expect(q2.state).toBe('shut-down');
    });
  });

  it('empty(), full(), qsize(), maxsize; validates maxsize (empty, full, maxsize)', async () => {
    await runVirtual(async () => {
      const q = new Queue<number>();
      expect(q.empty()).toBe(true);
      q.putNowait(1);
      expect(q.empty()).toBe(false);
      expect(q.getNowait()).toBe(1);
      const f = new Queue<number>(1);
      expect(f.full()).toBe(false);
      f.putNowait(1);
      expect(f.full()).toBe(true);
      expect(f.maxsize).toBe(1);
      expect(new Queue(-1).full()).toBe(false);
      const inf = new Queue<number>(Infinity);
      for (let i = 0; i < 100; i++) inf.putNowait(i);
      expect(inf.full()).toBe(false);
      expect(inf.qsize()).toBe(100);
      expect(() => new Queue(1.3)).toThrow(InvalidArgumentError);
      expect(() => new Queue(Number.NaN)).toThrow(InvalidArgumentError);
      expect(() => new Queue('2' as never)).toThrow(InvalidArgumentError);
      expect(() => new Queue({ maxsize: 'x' as never })).toThrow(InvalidArgumentError);
    });
  });

  it('a bounded queue makes put() wait until a get() (maxsize, blocking_put_wait)', async () => {
    await runVirtual(async () => {
      const q = new Queue<number>(2);
      const have: number[] = [];
      const putter = getRunningLoop().createTask(async () => {
        for (let i = 0; i < 3; i++) {
          await q.put(i);
          have.push(i);
        }
        return true;
      });
      await tick(2);
      expect(have).toEqual([0, 1]);
      expect(q.getNowait()).toBe(0);
      await tick(2);
      expect(have).toEqual([0, 1, 2]);
      expect(await putter).toBe(true);
      expect(q.qsize()).toBe(2);
    });
  });

  it('get() waits for a put(); getNowait()/putNowait() throw QueueEmpty/QueueFull (blocking_get_wait, nonblocking)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const q = new Queue<string>(1);
      expect(() => q.getNowait()).toThrow(QueueEmpty);
      q.putNowait('a');
      const err = (() => {
        try {
          q.putNowait('b');
        } catch (e) {
          return e;
        }
        return null;
      })();
      expect(err).toBeInstanceOf(QueueFull);
      expect((err as QueueFull).code).toBe('ERR_PROTOLOOP_QUEUE_FULL');
      expect(q.getNowait()).toBe('a');
      loop.callLater(2, () => q.putNowait('late'));
      expect(await q.get()).toBe('late');
    });
  });

  it('a get cancelled after being woken passes the item on: nothing is dropped (get_cancelled_race, get_cancel_drop_*)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const q = new Queue<number>();
      let reader: Task<number> = loop.createTask(() => q.get());
      await tick();
      q.putNowait(1);
      q.putNowait(2);
      reader.cancel();
      if ((await caught(reader)) instanceof CancelledError) {
        reader = loop.createTask(() => q.get());
        await reader;
      }
      expect(reader.result()).toBe(1);

      const q2 = new Queue<number>();
      let r2!: Task<number>;
      let r3!: Task<number>;
      await taskGroup(async (tg) => {
        const r1 = tg.createTask(() => q2.get());
        r2 = tg.createTask(() => q2.get());
        r3 = tg.createTask(() => q2.get());
        await tick();
        q2.putNowait(1);
        q2.putNowait(2);
        r1.cancel();
        expect(await caught(r1)).toBeInstanceOf(CancelledError);
        await r3;
      });
      expect(new Set([r2.result(), r3.result()])).toEqual(new Set([1, 2]));
    });
  });

  it('a put cancelled after being woken passes the slot on (put_cancel_drop, put_cancelled_race)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const q = new Queue<number>(1);
      q.putNowait(1);
      let writer = loop.createTask(() => q.put(2));
      await tick();
      expect(q.getNowait()).toBe(1);
      writer.cancel();
      if ((await caught(writer)) instanceof CancelledError) {
        writer = loop.createTask(() => q.put(2));
        await writer;
      }
      expect(q.getNowait()).toBe(2);
      expect(q.qsize()).toBe(0);

      const q2 = new Queue<string>(1);
      q2.putNowait('x');
      const p1 = loop.createTask(() => q2.put('a'));
      const p2 = loop.createTask(() => q2.put('b'));
      await tick();
      expect(q2.getNowait()).toBe('x'); // wakes p1...
      p1.cancel(); // ...which leaves: p2 must get the slot
      await p2;
      expect(p1.cancelled()).toBe(true);
      expect(q2.getNowait()).toBe('b');
    });
  });

  it('cancelled getters and putters do not stay queued (cancelled_getters/puts_not_being_held)', async () => {
    await runVirtual(async () => {
      const q = new Queue<number>(1);
      expect(await caught(waitFor(() => q.get(), 2))).toBeInstanceOf(TimeoutError);
      expect(String(q)).toBe('<Queue maxsize=1>');
      q.putNowait(1);
      expect(await caught(waitFor(() => q.put(2), 2))).toBeInstanceOf(TimeoutError);
      expect(String(q)).toBe('<Queue maxsize=1 items=[ 1 ] tasks=1>');
    });
  });

  it('getters and putters wait in FIFO order (why_are_getters_waiting, why_are_putters_waiting)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const q = new Queue<number>();
      const got: string[] = [];
      const consumers = ['a', 'b', 'c'].map((name) =>
        loop.createTask(async () => {
          got.push(`${name}${await q.get()}`);
        }),
      );
      await tick();
      for (let i = 1; i <= 3; i++) q.putNowait(i);
      await gather(consumers);
      expect(got).toEqual(['a1', 'b2', 'c3']);

      const bounded = new Queue<number>(1);
      bounded.putNowait(0);
      const putters = [1, 2, 3].map((n) => loop.createTask(() => bounded.put(n)));
      await tick();
      const out: number[] = [];
      for (let i = 0; i < 4; i++) out.push(await bounded.get());
      await gather(putters);
      expect(out).toEqual([0, 1, 2, 3]);
    });
  });

  it('taskDone()/join(): join waits for every item to be processed (task_done, join_empty_queue, underflow)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const q = new Queue<number>();
      expect(() => q.taskDone()).toThrow(InvalidStateError);
      await q.join(); // nothing unfinished: returns at once
      for (let i = 0; i < 100; i++) q.putNowait(i);
      let accumulator = 0;
      let running = true;
      const worker = async (): Promise<void> => {
        while (running) {
          const item = await q.get();
          accumulator += item;
          q.taskDone();
        }
      };
      const workers = [loop.createTask(worker), loop.createTask(worker)];
      await q.join();
      expect(accumulator).toBe(4950);
      expect(q.unfinishedTasks()).toBe(0);
      running = false;
      for (const w of workers) w.cancel();
      for (const w of workers) expect(await caught(w)).toBeInstanceOf(CancelledError);
      q.putNowait(1);
      const j2 = loop.createTask(() => q.join());
      await tick();
      expect(j2.awaiting()?.description).toBe('Queue.join()');
      q.getNowait();
      q.taskDone();
      await j2;
    });
  });
});

describe('ordering', () => {
  it('Queue is FIFO, LifoQueue LIFO, PriorityQueue smallest first (order)', async () => {
    await runVirtual(async () => {
      const items = [1, 3, 2];
      const out = (q: Queue<number>): number[] => {
        for (const i of items) q.putNowait(i);
        return items.map(() => q.getNowait());
      };
      expect(out(new Queue())).toEqual([1, 3, 2]);
      expect(out(new LifoQueue())).toEqual([2, 3, 1]);
      expect(out(new PriorityQueue())).toEqual([1, 2, 3]);
    });
  });

  it('PriorityQueue orders [priority, data] arrays like Python tuples, or by options.compare', async () => {
    await runVirtual(async () => {
      const pq = new PriorityQueue<[number, string]>();
      const input: [number, string][] = [
        [5, 'e'],
        [1, 'a'],
        [3, 'c'],
        [1, 'A'],
        [9, 'z'],
        [2, 'b'],
        [3, 'b'],
      ];
      for (const x of input) pq.putNowait(x);
      expect(inspect(pq)).toMatch(/^<PriorityQueue maxsize=0 items=\[/);
      const out: string[] = [];
      while (!pq.empty()) out.push(pq.getNowait().join(''));
      expect(out).toEqual(['1A', '1a', '2b', '3b', '3c', '5e', '9z']);

      const byLen = new PriorityQueue<string>({ compare: (a, b) => a.length - b.length });
      for (const s of ['ccc', 'a', 'bb']) byLen.putNowait(s);
      expect([byLen.getNowait(), byLen.getNowait(), byLen.getNowait()]).toEqual(['a', 'bb', 'ccc']);

      // Many random items: a heap invariant check.
      const rnd = new PriorityQueue<number>();
      const nums = Array.from({ length: 500 }, (_, i) => (i * 7919) % 1009);
      for (const n of nums) rnd.putNowait(n);
      const sorted: number[] = [];
      while (!rnd.empty()) sorted.push(rnd.getNowait());
      expect(sorted).toEqual([...nums].sort((a, b) => a - b));

      // Items that cannot be ordered are refused, and the queue stays intact.
      const objs = new PriorityQueue<unknown>();
      objs.putNowait(1);
      objs.putNowait(2);
      expect(() => objs.putNowait({})).toThrow(InvalidArgumentError);
      expect(objs.qsize()).toBe(2);
      expect(objs.getNowait()).toBe(1);
      expect(() => new PriorityQueue({ compare: 'x' as never })).toThrow(InvalidArgumentError);
    });
  });
});

describe.each(kinds)('%s shutdown()', (_name, Kind) => {
  it('on an empty queue: blocked get() and new put()/get() throw QueueShutDown; join() returns (shutdown_empty)', async () => {
    await runVirtual(async () => {
      const q = new Kind<string>();
      const getTask = getRunningLoop().createTask(() => q.get());
      await tick();
      q.shutdown();
      expect(q.qsize()).toBe(0);
      await q.join();
      expect(await caught(getTask)).toBeInstanceOf(QueueShutDown);
      expect(await caught(q.put('data'))).toBeInstanceOf(QueueShutDown);
      expect(() => q.putNowait('data')).toThrow(QueueShutDown);
      expect(await caught(q.get())).toBeInstanceOf(QueueShutDown);
      expect(() => q.getNowait()).toThrow(QueueShutDown);
      q.shutdown(); // idempotent
      expect(q.isShutDown()).toBe(true);
    });
  });

  it('on a non-empty queue: blocked put() throws, items left can still be got, then get() throws (shutdown_nonempty)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const q = new Kind<string>(1);
      q.putNowait('data');
      const joinTask = loop.createTask(() => q.join());
      const putTask = loop.createTask(() => q.put('data2'));
      await tick();
      expect(putTask.done()).toBe(false);
      q.shutdown();
      expect(q.qsize()).toBe(1);
      expect(await caught(putTask)).toBeInstanceOf(QueueShutDown);
      expect(await q.get()).toBe('data');
      await tick();
      expect(joinTask.done()).toBe(false);
      expect(await caught(q.put('data'))).toBeInstanceOf(QueueShutDown);
      expect(await caught(q.get())).toBeInstanceOf(QueueShutDown);
      q.taskDone();
      await joinTask;
      expect(() => q.taskDone()).toThrow(InvalidStateError);
    });
  });

  it('immediate: drops the items (counted done for join()), get() throws at once (shutdown_immediate, _with_unfinished)', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const q = new Kind<string>();
      q.putNowait('data');
      const joinTask = loop.createTask(() => q.join());
      q.shutdown(true);
      expect(q.qsize()).toBe(0);
      await joinTask;
      expect(await caught(q.get())).toBeInstanceOf(QueueShutDown);
      expect(() => q.taskDone()).toThrow(InvalidStateError);

      const q2 = new Kind<string>();
      q2.putNowait('data');
      q2.putNowait('data');
      const join2 = loop.createTask(() => q2.join());
      expect(await q2.get()).toBe('data');
      q2.shutdown(true);
      expect(q2.qsize()).toBe(0);
      await tick();
      expect(join2.done()).toBe(false);
      expect(() => q2.getNowait()).toThrow(QueueShutDown);
      q2.taskDone();
      expect(() => q2.taskDone()).toThrow(InvalidStateError);
      await join2;
    });
  });
});

describe('iteration, signals, descriptions', () => {
  it('for await yields items until the queue is shut down and drained', async () => {
    await runVirtual(async () => {
      const q = new Queue<number>(2);
      const producer = getRunningLoop().createTask(async () => {
        for (let i = 0; i < 10; i++) await q.put(i);
        q.shutdown();
      });
      const got: number[] = [];
      for await (const item of q) {
        got.push(item);
        q.taskDone();
      }
      await producer;
      expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      await q.join();
      // Breaking out early leaves the rest in the queue.
      const q2 = new Queue<number>();
      for (let i = 0; i < 5; i++) q2.putNowait(i);
      for await (const item of q2) if (item === 1) break;
      expect(q2.qsize()).toBe(3);
    });
  });

  it('get()/put() take an AbortSignal; waiting tasks are described as Queue.get()/Queue.put()', async () => {
    await runVirtual(async () => {
      const loop = getRunningLoop();
      const q = new Queue<number>(1);
      const ac = new AbortController();
      const getter = loop.createTask(() => q.get({ signal: ac.signal }), { name: 'getter' });
      await tick();
      expect(getter.awaiting()?.description).toBe('Queue.get()');
      const reason = new Error('stop');
      ac.abort(reason);
      expect(await caught(getter)).toBe(reason);
      q.putNowait(1);
      const putter = loop.createTask(() => q.put(2, { signal: AbortSignal.timeout(3) }));
      await tick();
      expect(putter.awaiting()?.description).toBe('Queue.put()');
      expect(((await caught(putter)) as Error).name).toBe('TimeoutError');
      expect(q.qsize()).toBe(1);
      expect(await caught(q.get({ signal: AbortSignal.abort(reason) }))).toBe(reason);
      expect(q.qsize()).toBe(1);
      const lq = new LifoQueue<number>();
      const t = loop.createTask(() => lq.get());
      await tick();
      expect(t.awaiting()?.description).toBe('LifoQueue.get()');
      lq.putNowait(5);
      expect(await t).toBe(5);
    });
  });
});
