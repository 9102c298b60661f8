/** Unit tests of the waiter queue behind locks, semaphores, conditions and queues. */
import { describe, expect, it } from 'vitest';
import { Loop } from '../../src/index.ts';
import { someNotCancelled, WaiterQueue } from '../../src/concurrency/waiters.ts';

describe('WaiterQueue', () => {
  it('is FIFO, with length and at() from the head', () => {
    const q = new WaiterQueue<string>();
    expect(q.length).toBe(0);
    expect(q.shift()).toBeUndefined();
    q.push('a');
    q.push('b');
    q.push('c');
    expect(q.length).toBe(3);
    expect([q.at(0), q.at(1), q.at(2)]).toEqual(['a', 'b', 'c']);
    expect(q.shift()).toBe('a');
    expect(q.at(0)).toBe('b');
    expect(q.length).toBe(2);
  });

  it('removes the head, a middle waiter, or reports one that is not queued', () => {
    const q = new WaiterQueue<string>();
    for (const x of ['a', 'b', 'c', 'd']) q.push(x);
    expect(q.remove('a')).toBe(true);
    expect(q.remove('c')).toBe(true);
    expect(q.remove('zz')).toBe(false);
    expect(q.remove('a')).toBe(false);
    expect([q.shift(), q.shift(), q.shift()]).toEqual(['b', 'd', undefined]);
  });

  it('stays FIFO across many pushes and shifts (the head moves and is compacted)', () => {
    const q = new WaiterQueue<number>();
    const out: number[] = [];
    let n = 0;
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 3000; i++) q.push(n++);
      for (let i = 0; i < 2500; i++) out.push(q.shift()!);
    }
    while (q.length > 0) out.push(q.shift()!);
    expect(out).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  it('clear empties it', () => {
    const q = new WaiterQueue<number>();
    q.push(1);
    q.push(2);
    q.clear();
    expect(q.length).toBe(0);
    expect(q.shift()).toBeUndefined();
  });

  it('someNotCancelled looks past cancelled futures', () => {
    const loop = new Loop();
    try {
      const q = new WaiterQueue<ReturnType<Loop['createFuture']>>();
      expect(someNotCancelled(q)).toBe(false);
      const a = loop.createFuture();
      const b = loop.createFuture();
      q.push(a);
      q.push(b);
      a.cancel();
      expect(someNotCancelled(q)).toBe(true);
      b.cancel();
      expect(someNotCancelled(q)).toBe(false);
    } finally {
      loop.close();
    }
  });
});
